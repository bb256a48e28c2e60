"""C sources of the small guests the tests build (the SDK's examples cover the rest)."""

ICOUNT_PROBE = r"""
#include "rrtool.h"
int main(void) {
    volatile uint64_t acc = 0;
    for (int round = 0; round < 5; round++) {
        for (int i = 0; i < 1000 * (round + 1); i++) acc += (uint64_t)i * 2654435761u;
        rr_printf("icount %lu\n", rr_icount());
    }
    rr_printf("acc %lx\n", acc);
    return 0;
}
"""

TIMER_AT = r"""
#include "rrtool.h"
static volatile int fired;
static volatile uint64_t fired_icount;
static void on_timer(int line) { (void)line; fired_icount = rr_icount(); fired = 1; }
int main(void) {
    rr_irq_init();
    rr_irq_handler(0, on_timer);
    rr_sti();
    rr_timer_oneshot(0, 3000000);          /* ns_per_insn=1: icount 3,000,000 */
    volatile uint64_t spin = 0;
    while (!fired) spin++;
    rr_printf("handler icount %lu clock %lu\n", fired_icount, rr_clock_ns());
    return 0;
}
"""

SLEEPER = r"""
#include "rrtool.h"
/* Mostly idle: TICKS sleeps of SLEEP_NS virtual time, an RNG read each. */
#ifndef TICKS
#define TICKS 20
#endif
#ifndef SLEEP_NS
#define SLEEP_NS 100000000ull
#endif
int main(void) {
    rr_irq_init();
    rr_sti();
    uint32_t sum = 0;
    for (int i = 0; i < TICKS; i++) {
        uint64_t before = rr_clock_ns();
        rr_sleep_ns(SLEEP_NS);
        uint64_t after = rr_clock_ns();
        uint32_t r = rr_random();
        sum = sum * 31 + r;
        rr_printf("tick %d slept %lu rnd %08x\n", i, after - before, r);
    }
    rr_printf("sum %08x\n", sum);
    return 0;
}
"""

FAULTS = {
    "null_read": ("volatile int *p = (int *)0x10; return *p;", "invalid memory read at 0x10"),
    "wild_write": ("volatile int *p = (int *)0x7ffff000000; *p = 1; return 0;", "invalid memory write"),
    "bad_opcode": ('__asm__ volatile("ud2"); return 0;', "invalid opcode"),
    "jump_out": ("void (*f)(void) = (void (*)(void))0xdead0000; f(); return 0;", "jump outside RAM"),
    "div_zero": ("volatile int a = 1, b = 0; return a / b;", "division by zero"),
}


def fault_source(body: str) -> str:
    return '#include "rrtool.h"\nint main(void) {\n    ' + body + "\n}\n"


HALT_NO_IRQ = r"""
#include "rrtool.h"
int main(void) { rr_puts("about to sleep forever\n"); rr_sti(); __asm__ volatile("hlt"); return 0; }
"""

CLI_HLT = r"""
#include "rrtool.h"
int main(void) { rr_cli(); __asm__ volatile("hlt"); return 0; }
"""

RDTSC = r"""
#include "rrtool.h"
static inline uint64_t rdtsc(void) {
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}
int main(void) {
    uint64_t a = rdtsc();
    uint64_t c = rr_clock_ns();
    uint64_t b = rdtsc();
    rr_printf("tsc %lu clock %lu tsc %lu\n", a, c, b);
    return 0;
}
"""

BAD_TX_DESCRIPTORS = r"""
#include "rrtool.h"
/* Malformed transmit descriptors from the guest: each must come back DONE|ERR and be counted. */
static struct rr_net_desc tx[8];
static uint8_t frame[64];
int main(void) {
    outl(RR_NET_TX_RING(0), (uint32_t)(uint64_t)tx);
    outl(RR_NET_TX_SIZE(0), 8);
    struct rr_net_desc bad[4] = {
        {(uint32_t)(uint64_t)frame, 5, 0},          /* a runt */
        {(uint32_t)(uint64_t)frame, 3000, 0},       /* over the MTU */
        {0xFFFFF000u, 60, 0},                       /* buffer outside RAM */
        {(uint32_t)(uint64_t)frame, 60, 0},         /* a good one, to show the ring still works */
    };
    for (int i = 0; i < 4; i++) {
        tx[i] = bad[i];
        outl(RR_NET_TX_TAIL(0), (uint32_t)(i + 1));
        rr_printf("desc %d flags %u\n", i, tx[i].flags);
    }
    outl(RR_NET_TX_TAIL(0), 100);                   /* claims more frames than the ring holds */
    rr_printf("tx_errors %u tx_head %u\n", inl(RR_NET_TX_ERRORS(0)), inl(RR_NET_TX_HEAD(0)));
    return 0;
}
"""

STI_LATENCY = r"""
#include "rrtool.h"
/* A timer fires while interrupts are off; the guest then enables them and spins without touching a device.
   The interrupt must be taken right after sti (and its one-instruction shadow), not at a later checkpoint. */
static volatile uint64_t handled_at;
static void on_timer(int line) { (void)line; handled_at = rr_icount(); }
int main(void) {
    rr_irq_handler(0, on_timer);
    rr_cli();
    rr_timer_oneshot(0, 10000);
    volatile uint64_t spin = 0;
    while (rr_clock_ns() < 50000) spin++;           /* the timer is due long before this ends */
    uint64_t before = rr_icount();
    rr_sti();
    for (int i = 0; i < 3000000 && !handled_at; i++) spin++;
    rr_printf("sti at %lu handled at %lu\n", before, handled_at);
    return handled_at == 0;
}
"""

#: Guests that touch an I/O port no device owns: (asm body, port in the message). Each must end with a
#: fault at the same pc and icount in record and in replay (tests/test_reliability_guest.py).
UNASSIGNED_PORTS = {
    "outb_imm": ('"movb $1, %%al\\n outb %%al, $0x80"', 0x80),
    "inb_imm": ('"inb $0x80, %%al"', 0x80),
    "outw_dx": ('"movw $0x1234, %%dx\\n movw $7, %%ax\\n outw %%ax, %%dx"', 0x1234),
    "inw_dx": ('"movw $0x1234, %%dx\\n inw %%dx, %%ax"', 0x1234),
    "outl_dx": ('"movw $0xcf8, %%dx\\n movl $0x80000000, %%eax\\n outl %%eax, %%dx"', 0xCF8),
    "inl_dx": ('"movw $0xcfc, %%dx\\n inl %%dx, %%eax"', 0xCFC),
    "insb": ('"lea buf(%%rip), %%rdi\\n movw $0x80, %%dx\\n insb"', 0x80),
    "outsw": ('"lea buf(%%rip), %%rsi\\n movw $0x3e8, %%dx\\n outsw"', 0x3E8),
    "rep_outsb": ('"lea buf(%%rip), %%rsi\\n movw $0x80, %%dx\\n movl $4, %%ecx\\n rep outsb"', 0x80),
    "rep_insl": ('"lea buf(%%rip), %%rdi\\n movw $0x61, %%dx\\n movl $3, %%ecx\\n rep insl"', 0x61),
}


def unassigned_port_source(asm: str) -> str:
    """The access sits in the middle of a block, with stores and console output after it: none may happen."""
    return (
        '#include "rrtool.h"\nuint8_t buf[64];\nvolatile uint64_t after;\n'
        "int main(void) {\n    volatile uint64_t x = 0;\n    for (int i = 0; i < 100; i++) x += i;\n"
        f'    __asm__ volatile({asm} : : : "rax", "rcx", "rdx", "rsi", "rdi", "memory");\n'
        '    after = 1;\n    rr_puts("after the fault\\n");\n    return 0;\n}\n'
    )


#: A guest whose code ends exactly at the top of its 32 MiB RAM with an `out` to SYS_EXIT: correct code that
#: never runs past the end (EXTRA moves it down; RAM_END must match the machine's RAM size).
TOP_OF_RAM = r"""
#include "rrtool.h"
#ifndef EXTRA
#define EXTRA 0
#endif
#ifndef CODE
#define CODE 0x66, 0xba, 0xf0, 0x01, 0xb8, 7, 0, 0, 0, 0xef   /* mov dx,0x1f0; mov eax,7; out dx,eax */
#endif
static uint8_t stack[65536] __attribute__((aligned(16)));
static void body(void) {
    const uint8_t code[] = {CODE};
    uint8_t *dst = (uint8_t *)(0x2000000ul - sizeof code - EXTRA);
    for (unsigned i = 0; i < sizeof code; i++) dst[i] = code[i];
    ((void (*)(void))dst)();
    rr_exit(1);
}
int main(void) {
    /* the stack moves away first: crt0's frame sits in the top bytes of RAM that the code overwrites */
    __asm__ volatile("mov %0, %%rsp\n call *%1\n" : : "r"(stack + sizeof stack), "r"(body) : "memory");
    return 9;
}
"""

#: Instructions whose result a real CPU takes from the host: each prints what it got, so two runs compare.
HOST_INSNS = r"""
#include "rrtool.h"
static inline void cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4]) {
    __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(sub));
}
int main(void) {
    uint32_t r[4];
    static const uint32_t leaves[] = {0, 1, 2, 4, 7, 0xb, 0xd, 0x40000000, 0x80000000, 0x80000001,
                                      0x80000002, 0x80000003, 0x80000004, 0x80000006, 0x80000007, 0x80000008};
    for (unsigned i = 0; i < sizeof leaves / sizeof leaves[0]; i++) {
        cpuid(leaves[i], 0, r);
        rr_printf("cpuid %x: %x %x %x %x\n", leaves[i], r[0], r[1], r[2], r[3]);
    }
    uint32_t lo, hi, aux;
    __asm__ volatile("rdtscp" : "=a"(lo), "=d"(hi), "=c"(aux));
    uint64_t clock = rr_clock_ns();
    rr_printf("rdtscp %lu aux %u clock %lu\n", ((uint64_t)hi << 32) | lo, aux, clock);
    __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(0x10));
    rr_printf("tsc msr %lu\n", ((uint64_t)hi << 32) | lo);
    uint64_t v = 0;
#if defined(RDSEED)
    __asm__ volatile("rdseed %0" : "=r"(v));
#elif defined(RDRAND)
    __asm__ volatile("rdrand %0" : "=r"(v));
#endif
    rr_printf("random %lx\n", v);
    return 0;
}
"""

#: A guest that writes extreme values to every register it can reach: each bad request must come back as
#: an error status (or be refused), and the run must end with the guest's own exit, not a host traceback.
HOSTILE_REGISTERS = r"""
#include "rrtool.h"
static struct rr_blk_desc ring[16] __attribute__((aligned(32)));
static uint8_t data[4096];
static const struct { uint8_t op; uint32_t sectors; uint64_t sector, addr; } bad[] = {
    {RR_BLK_OP_READ, 1, 0xFFFFFFFFFFFFFFFFull, 0},          /* sector 2^64-1 */
    {RR_BLK_OP_READ, 1, 0xFFFFFFFFull, 0},                  /* sector 2^32-1 */
    {RR_BLK_OP_READ, 0xFFFFFFFFu, 0, 0},                    /* 2^32-1 sectors */
    {RR_BLK_OP_READ, 0x80000000u, 0xFFFFFFFFFFFFFFFFull, 0},
    {RR_BLK_OP_WRITE, 1, 0, 0xFFFFFFFFFFFFF000ull},         /* buffer far beyond RAM */
    {RR_BLK_OP_READ, 8, 0, 0xFFFFFFFFFFFFFE00ull},          /* addr + length wraps around 2^64 */
    {RR_BLK_OP_READ, 1, 0, 0x2000000ull - 256},             /* straddles the top of RAM */
    {RR_BLK_OP_FLUSH, 0xFFFFFFFFu, 0xFFFFFFFFFFFFFFFFull, 0xFFFFFFFFFFFFFFFFull},  /* flush ignores them */
    {0xFF, 0xFFFFFFFFu, 0xFFFFFFFFFFFFFFFFull, 0xFFFFFFFFFFFFFFFFull},            /* bad op */
};
#define NBAD (sizeof bad / sizeof bad[0])
int main(void) {
    outl(RR_BLK_RING_LO, (uint32_t)(uint64_t)ring);
    outl(RR_BLK_RING_HI, 0);
    outl(RR_BLK_RING_SIZE, 16);
    for (unsigned i = 0; i < NBAD; i++) {
        ring[i] = (struct rr_blk_desc){0};
        ring[i].op = bad[i].op; ring[i].sectors = bad[i].sectors; ring[i].sector = bad[i].sector;
        ring[i].addr = bad[i].addr ? bad[i].addr : (uint64_t)data; ring[i].tag = i;
        outl(RR_BLK_SUBMIT, i);
    }
    outl(RR_BLK_SUBMIT, 0xFFFFFFFFu);                        /* index outside the ring */
    while (inl(RR_BLK_COMPLETED) < NBAD) rr_sleep_ns(1000);  /* the flush completes from the host */
    for (unsigned i = 0; i < NBAD; i++) rr_printf("blk %u status %u flags %u\n", i, ring[i].status, ring[i].flags);
    outl(RR_BLK_RING_LO, 0xFFFFF000u);                       /* a ring beyond RAM */
    outl(RR_BLK_RING_HI, 0xFFFFFFFFu);
    outl(RR_BLK_SUBMIT, 0);
    outl(RR_BLK_RING_SIZE, 0xFFFFFFFFu);
    outl(RR_BLK_SUBMIT, 3);
    rr_printf("blk errors %u last %u\n", inl(RR_BLK_ERRORS), inl(RR_BLK_LAST_ERROR));

    for (int t = 0; t < 3; t++) {                            /* timers: deadlines and periods at 2^64-1 */
        outl(RR_TIMER_DEADLINE_LO(t), 0xFFFFFFFFu);
        outl(RR_TIMER_DEADLINE_HI(t), 0xFFFFFFFFu);
        outl(RR_TIMER_PERIOD(t), 0xFFFFFFFFu);
        outl(RR_TIMER_CTRL(t), 0xFFFFFFFFu);
        rr_printf("timer %d armed %u\n", t, inl(RR_TIMER_CTRL(t)));
    }
    outl(RR_TIMER_DEADLINE_HI(1), 0x3FFFFFFFu);              /* 2^62 - 1 + ...: just inside the limit */
    outl(RR_TIMER_CTRL(1), 1);
    rr_printf("timer 1 near the limit armed %u\n", inl(RR_TIMER_CTRL(1)));
    outl(RR_TIMER_CTRL(1), 0);

    outl(RR_IRQ_VECTOR_LO, 0xFFFFFFFFu);                     /* interrupt controller: IF stays 0 */
    outl(RR_IRQ_VECTOR_HI, 0xFFFFFFFFu);
    outl(RR_IRQ_ENABLE, 0xFFFFFFFFu);
    outl(RR_IRQ_PENDING, 0xFFFFFFFFu);
    rr_printf("irq pending %x enable %x\n", inl(RR_IRQ_PENDING), inl(RR_IRQ_ENABLE));
    outl(RR_IRQ_ENABLE, 0);

    for (unsigned i = 0; i < sizeof data; i++) data[i] = 'a' + i % 26;
    data[sizeof data - 1] = '\n';
    outl(RR_CON_BUF_ADDR, 0xFFFFFFFFu);                      /* console: address and lengths out of range */
    outl(RR_CON_BUF_LEN, 0xFFFFFFFFu);
    outl(RR_CON_BUF_ADDR, 0x1FFFFF0u);
    outl(RR_CON_BUF_LEN, 4096);
    outl(RR_CON_BUF_ADDR, (uint32_t)(uint64_t)data);
    outl(RR_CON_BUF_LEN, 4097);
    outl(RR_CON_BUF_LEN, 4096);                              /* the largest write: fine */
    for (uint32_t p = 0x1F4; p <= 0x1F8; p += 4) outl(p, 0xFFFFFFFFu);   /* read-only system registers */
    outl(0x150, 0xFFFFFFFFu); outl(0x160, 0xFFFFFFFFu);                    /* RTC, RNG: writes ignored */
    for (uint32_t off = 0; off < 0x40; off += 4) outl(0x240 + 0x40 * 3 + off, 0xFFFFFFFFu);  /* absent NIC */
    rr_puts("hostile done\n");
    return 0;
}
"""

#: An interrupt arrives while the guest's stack pointer points nowhere: the host cannot push the frame.
WILD_RSP_IRQ = r"""
#include "rrtool.h"
static void on_timer(int line) { (void)line; }
int main(void) {
    rr_irq_handler(0, on_timer);
    rr_timer_oneshot(0, 20000);
    __asm__ volatile("mov $0x10, %%rsp\n sti\n 1: jmp 1b" : : : "memory");
    return 0;
}
"""

#: A guest to debug (built with -g): `step_fn(i)` called ROUNDS times, each writing the global `counter`
#: (0, 1, 5, 18, 58, ...: every write changes it). `spin` loops SPIN times after, with no call and no
#: write of `counter`, so a continue has a long way to go without a stop (Ctrl-C).
STEP_LOOP = r"""
#include "rrtool.h"
#ifndef ROUNDS
#define ROUNDS 10
#endif
#ifndef SPIN
#define SPIN 0
#endif
volatile uint64_t counter;
volatile uint64_t spin;
__attribute__((noinline)) void step_fn(int i) { counter = counter * 3 + (uint64_t)i; }
int main(void) {
    for (int i = 0; i < ROUNDS; i++) step_fn(i);
    for (uint64_t n = 0; n < SPIN; n++) spin += n;
    rr_printf("counter %lu\n", counter);
    return 0;
}
"""


RNG_BRANCH = r"""
#include "rrtool.h"
/* Busy for a while, then one RNG read that is stored and branched on: two recordings differ from that
   instruction on (the value is in rax after the read, in `stored` after the next instruction). */
static volatile uint32_t stored;
int main(void) {
    volatile uint64_t acc = 0;
    for (int i = 0; i < 500; i++) acc += (uint64_t)i * 2654435761u;
    uint32_t r = rr_random();
    stored = r;
    if (r & 1) rr_puts("odd\n"); else rr_puts("even\n");
    for (int i = 0; i < 20000; i++) acc += (uint64_t)i * (r | 1);
    rr_printf("acc %lx\n", acc);
    return 0;
}
"""

RNG_TRANSIENT = r"""
#include "rrtool.h"
/* An RNG value that leaves no trace: stored, overwritten, and every register it was in is reused, all
   before the next checkpoint. Two recordings differ in their events, never in a logged state. */
static volatile uint32_t stored;
int main(void) {
    volatile uint64_t acc = 0;
    for (int i = 0; i < 20000; i++) acc += (uint64_t)i * 2654435761u;
    stored = rr_random();
    stored = 0;
    __asm__ volatile("xor %%eax, %%eax\n\txor %%edx, %%edx" ::: "rax", "rdx");
    for (int i = 0; i < 20000; i++) acc += (uint64_t)i;
    rr_printf("acc %lx\n", acc);
    return 0;
}
"""

BUSY_POLL = r"""
#include "rrtool.h"
/* Busy, with no timer and no sleep: polls the console once per ~1M instructions of arithmetic, for up
   to ROUNDS rounds (about 8G instructions, several seconds), and says in which round a byte arrived. */
#define ROUNDS 8000
int main(void) {
    for (uint64_t round = 0; round < ROUNDS; round++) {
        for (volatile uint32_t i = 0; i < 200000; i++) {
        }
        int c = rr_getc();
        if (c >= 0) {
            rr_printf("got %c in round %lu\n", c, round);
            return 0;
        }
    }
    rr_printf("no input in %d rounds\n", ROUNDS);
    return 1;
}
"""
