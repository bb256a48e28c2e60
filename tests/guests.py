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
