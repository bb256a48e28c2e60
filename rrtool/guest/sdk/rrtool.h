/*
 * rrtool.h - the guest SDK for rrtool's virtual machine.
 *
 * The machine is a Unicorn x86-64 CPU in long mode with flat memory and no
 * OS. A guest is a static ELF linked at 0x100000 (see guest.ld); crt0.S calls
 * main() and passes its return value to rr_exit(). Everything the guest can
 * observe from outside (time, randomness, input, interrupts, disk, network)
 * comes through the port I/O devices below, which is what lets rrtool record
 * and replay a run. Every SDK source (crt0.S, libc.c, blk.c for the block
 * device, net.c for the network cards and IP stack) is linked into every
 * guest; all of it is declared in this one header.
 *
 * Build flags (rrtool/guest/build.py) include -mgeneral-regs-only (no floating
 * point anywhere: the host saves only the general purpose registers on an
 * interrupt) and -mno-red-zone (the host pushes interrupt frames directly
 * below RSP, which would clobber a leaf function's red zone).
 *
 * ======================================================================
 * Device registers (port I/O). All registers are 32 bits wide and accessed
 * with inl/outl, except where noted.
 * ======================================================================
 *
 * Console (base 0x3F0)
 *   0x3F0 CON_BUF_ADDR outl: stage the address of a string to print.
 *   0x3F4 CON_BUF_LEN  outl: print that many bytes (1..4096) from the staged
 *                      address: a whole string for one exit to the host.
 *   0x3F8 CON_DATA    outb: write one byte of console output.
 *                     inl:  next input byte, or 0xFFFFFFFF when none waits.
 *   0x3FC CON_STATUS  inl:  bit0 = input available.
 *   Input arrival raises IRQ line 4.
 *
 * Clock (base 0x100): virtual time in ns, deterministic under replay.
 *   0x100 CLOCK_LO    inl: latch the 64-bit clock, return the low half.
 *   0x104 CLOCK_HI    inl: high half of the latched value.
 *
 * Timers 0..3 (base 0x110 + 0x10*i)
 *   +0x0 DEADLINE_LO  outl: stage an absolute deadline (virtual ns), low half.
 *   +0x4 DEADLINE_HI  outl: staged deadline, high half.
 *   +0x8 PERIOD       outl: period in ns, 0 = one-shot.
 *   +0xC CTRL         outl: 1 = arm with the staged deadline and period,
 *                           0 = disarm.  inl: bit0 = armed.
 *   Expiry of timer i raises IRQ line i. Timer 3 is reserved for rr_sleep_ns.
 *   A deadline or period above 2^62 ns (about 146 years) is refused: the
 *   timer stays disarmed and CTRL reads 0.
 *
 * RTC (base 0x150): host wall-clock time, ns since the Unix epoch.
 *   0x150 RTC_LO      inl: latch the time, return the low half.
 *   0x154 RTC_HI      inl: high half of the latched value.
 *
 * RNG
 *   0x160 RNG         inl: 32 random bits.
 *
 * Interrupt controller (base 0x180)
 *   0x180 IRQ_PENDING    inl: pending bits; outl: write 1s to acknowledge.
 *   0x184 IRQ_ENABLE     inl/outl: enable mask.
 *   0x188 IRQ_VECTOR_LO  outl: handler address, low half.
 *   0x18C IRQ_VECTOR_HI  outl: handler address, high half; commits it.
 *   Lines: 0-3 timers 0-3, 4 console RX, 5 block device, 6-9 network 0-3.
 *   Delivery: when a line is pending and enabled and RFLAGS.IF is set, the
 *   host aligns RSP down to 16, pushes a 64-bit iretq frame (SS, RSP, RFLAGS,
 *   CS, RIP) and jumps to the vector with IF cleared, like the CPU would.
 *   The SDK's vector is rr_irq_entry (crt0.S), which calls rr_irq_dispatch().
 *   Interrupts start disabled (IF=0) until the guest executes sti.
 *
 * System (base 0x1F0)
 *   0x1F0 EXIT        outl: exit code; the run ends.
 *   0x1F4 ICOUNT_LO   inl: latch the exact guest instruction count (this
 *                     instruction included), return the low half.
 *   0x1F8 ICOUNT_HI   inl: high half of the latched value.
 *   0x1FC RESET       outl (any value): restart the guest from its ELF image.
 *                     RAM is reloaded, the CPU, timers, interrupt controller,
 *                     console and NIC rings are reset and block requests in
 *                     flight are dropped; the disk keeps its contents and
 *                     virtual time goes on.
 *
 * Block device (base 0x200, up to 0x23F)
 *   0x200 BLK_CAPACITY_LO  inl: disk size in 512-byte sectors, low half
 *   0x204 BLK_CAPACITY_HI  inl: high half (capacity 0 = no disk attached).
 *   0x208 BLK_RING_LO      outl: guest address of the descriptor array, low.
 *   0x20C BLK_RING_HI      outl: high half; commits the address.
 *   0x210 BLK_RING_SIZE    outl: number of descriptors (power of two, <= 256).
 *   0x214 BLK_SUBMIT       outl: index of a filled descriptor to submit.
 *                          Several requests may be in flight at once.
 *   0x218 BLK_COMPLETED    inl: completions so far (free-running).
 *   0x21C BLK_MAX_SECTORS  inl: most sectors one request may move (256).
 *   0x220 BLK_ERRORS       inl: rejected submits so far.
 *   0x224 BLK_LAST_ERROR   inl: status code of the last rejected submit.
 *   A request is a 32-byte struct rr_blk_desc in the ring. The guest fills it
 *   with flags = 0 and writes its index to BLK_SUBMIT; when the request
 *   completes the device writes `status` and sets flags bit0 (DONE), then
 *   raises IRQ line 5. Completions come from a host thread pool, so they
 *   arrive asynchronously and in any order. A malformed request completes at
 *   once with an error status (DONE set, IRQ raised); an index outside the
 *   ring is only counted (BLK_ERRORS, BLK_LAST_ERROR = BADINDEX).
 *
 * Network cards 0..3 (base 0x240 + 0x40*i, sixteen 32-bit registers each)
 *   +0x00 MAC_LO     inl: MAC bytes 0-3 (byte 0 in the low byte).
 *   +0x04 MAC_HI     inl: MAC bytes 4-5 in the low 16 bits. A card that is
 *                    not configured reads 0xFFFFFFFF in every register;
 *                    MAC_HI == 0xFFFFFFFF is the presence test.
 *   +0x08 STATUS     inl: bit0 = link up.
 *   +0x0C CTRL       outl: bit0 = enable receive.
 *   +0x10 RX_RING    outl: guest address of the RX descriptors (32-bit).
 *   +0x14 RX_SIZE    outl: RX descriptors (power of two, <= 256).
 *   +0x18 RX_HEAD    inl: descriptors the device has filled (free-running).
 *   +0x1C RX_TAIL    outl: buffers the guest has posted (free-running). The
 *                    device fills descriptor [HEAD % SIZE] while HEAD != TAIL.
 *   +0x20 TX_RING    outl: guest address of the TX descriptors (32-bit).
 *   +0x24 TX_SIZE    outl: TX descriptors (power of two, <= 256).
 *   +0x28 TX_TAIL    outl: frames queued (free-running). The write sends every
 *                    descriptor from TX_HEAD to TX_TAIL before it returns.
 *   +0x2C TX_HEAD    inl: descriptors the device has sent.
 *   +0x30 RX_DROPS   inl: frames dropped because no buffer was posted.
 *   +0x34 RX_ERRORS  inl: bad frames from outside (or too big for a buffer).
 *   +0x38 TX_ERRORS  inl: bad TX descriptors from the guest.
 *   +0x3C IPV4       inl: the IPv4 address the host assigned to the card, in
 *                    memory order (a | b<<8 | c<<16 | d<<24), 0 if none. The
 *                    gateway is .2 of the same /24 (10.0.2.15 -> 10.0.2.2).
 *   Descriptors are 8-byte struct rr_net_desc. RX: the guest sets addr, len =
 *   buffer capacity (>= 1536) and flags = 0, then bumps RX_TAIL; the device
 *   stores a frame, sets len to its length and flags = DONE (DONE|ERR if it
 *   did not fit) and raises IRQ line 6+i. TX: the guest writes the frame
 *   (14..1514 bytes, no FCS), sets addr, len and flags = 0 and bumps TX_TAIL;
 *   the device sets flags to DONE, or DONE|ERR for a bad descriptor.
 */
#ifndef RRTOOL_H
#define RRTOOL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* ---- Port numbers ---------------------------------------------------- */

#define RR_CON_BUF_ADDR 0x3F0
#define RR_CON_BUF_LEN 0x3F4
#define RR_CON_BUF_MAX 4096u
#define RR_CON_DATA 0x3F8
#define RR_CON_STATUS 0x3FC
#define RR_CON_STATUS_RX 0x1u

#define RR_CLOCK_LO 0x100
#define RR_CLOCK_HI 0x104

#define RR_TIMER_COUNT 4
#define RR_TIMER_BASE(i) (0x110 + 0x10 * (i))
#define RR_TIMER_DEADLINE_LO(i) (RR_TIMER_BASE(i) + 0x0)
#define RR_TIMER_DEADLINE_HI(i) (RR_TIMER_BASE(i) + 0x4)
#define RR_TIMER_PERIOD(i) (RR_TIMER_BASE(i) + 0x8)
#define RR_TIMER_CTRL(i) (RR_TIMER_BASE(i) + 0xC)
#define RR_TIMER_CTRL_ARM 0x1u
#define RR_SLEEP_TIMER 3 /* reserved for rr_sleep_ns */

#define RR_RTC_LO 0x150
#define RR_RTC_HI 0x154

#define RR_RNG 0x160

#define RR_IRQ_PENDING 0x180
#define RR_IRQ_ENABLE 0x184
#define RR_IRQ_VECTOR_LO 0x188
#define RR_IRQ_VECTOR_HI 0x18C

#define RR_EXIT 0x1F0
#define RR_ICOUNT_LO 0x1F4
#define RR_ICOUNT_HI 0x1F8
#define RR_SYS_RESET 0x1FC

#define RR_BLK_BASE 0x200
#define RR_BLK_CAPACITY_LO 0x200
#define RR_BLK_CAPACITY_HI 0x204
#define RR_BLK_RING_LO 0x208
#define RR_BLK_RING_HI 0x20C
#define RR_BLK_RING_SIZE 0x210
#define RR_BLK_SUBMIT 0x214
#define RR_BLK_COMPLETED 0x218
#define RR_BLK_MAX_SECTORS 0x21C
#define RR_BLK_ERRORS 0x220
#define RR_BLK_LAST_ERROR 0x224

#define RR_NET_CARDS 4
#define RR_NET_BASE(i) (0x240 + 0x40 * (i))
#define RR_NET_MAC_LO(i) (RR_NET_BASE(i) + 0x00)
#define RR_NET_MAC_HI(i) (RR_NET_BASE(i) + 0x04)
#define RR_NET_STATUS(i) (RR_NET_BASE(i) + 0x08)
#define RR_NET_CTRL(i) (RR_NET_BASE(i) + 0x0C)
#define RR_NET_RX_RING(i) (RR_NET_BASE(i) + 0x10)
#define RR_NET_RX_SIZE(i) (RR_NET_BASE(i) + 0x14)
#define RR_NET_RX_HEAD(i) (RR_NET_BASE(i) + 0x18)
#define RR_NET_RX_TAIL(i) (RR_NET_BASE(i) + 0x1C)
#define RR_NET_TX_RING(i) (RR_NET_BASE(i) + 0x20)
#define RR_NET_TX_SIZE(i) (RR_NET_BASE(i) + 0x24)
#define RR_NET_TX_TAIL(i) (RR_NET_BASE(i) + 0x28)
#define RR_NET_TX_HEAD(i) (RR_NET_BASE(i) + 0x2C)
#define RR_NET_RX_DROPS(i) (RR_NET_BASE(i) + 0x30)
#define RR_NET_RX_ERRORS(i) (RR_NET_BASE(i) + 0x34)
#define RR_NET_TX_ERRORS(i) (RR_NET_BASE(i) + 0x38)
#define RR_NET_IPV4(i) (RR_NET_BASE(i) + 0x3C)
#define RR_NET_ABSENT 0xFFFFFFFFu /* what an unconfigured card's registers read */
#define RR_NET_STATUS_LINK 0x1u
#define RR_NET_CTRL_RX_ENABLE 0x1u

/* ---- IRQ lines ------------------------------------------------------- */

#define RR_IRQ_TIMER(i) (i) /* 0-3 */
#define RR_IRQ_CONSOLE 4
#define RR_IRQ_BLOCK 5
#define RR_IRQ_NET(i) (6 + (i)) /* 6-9 */
#define RR_IRQ_LINES 10

/* ---- Port I/O ---------------------------------------------------------
 * "memory" clobbers keep the compiler from moving memory accesses across a
 * device access (e.g. reordering a buffer write past the EXIT register). */

static inline uint8_t inb(uint16_t port)
{
    uint8_t v;
    __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port) : "memory");
    return v;
}

static inline void outb(uint16_t port, uint8_t v)
{
    __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port) : "memory");
}

static inline uint32_t inl(uint16_t port)
{
    uint32_t v;
    __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port) : "memory");
    return v;
}

static inline void outl(uint16_t port, uint32_t v)
{
    __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port) : "memory");
}

/* Read a latched 64-bit register pair: reading LO latches, so LO must come
 * first (the asm statements are volatile, so the order is kept). */
static inline uint64_t rr_read64(uint16_t lo_port, uint16_t hi_port)
{
    uint32_t lo = inl(lo_port);
    uint32_t hi = inl(hi_port);
    return ((uint64_t)hi << 32) | lo;
}

/* ---- Time, randomness, instruction count ----------------------------- */

/* Virtual clock in ns. */
static inline uint64_t rr_clock_ns(void) { return rr_read64(RR_CLOCK_LO, RR_CLOCK_HI); }

/* Host wall-clock time in ns since the Unix epoch (recorded, then replayed). */
static inline uint64_t rr_rtc_ns(void) { return rr_read64(RR_RTC_LO, RR_RTC_HI); }

/* 32 random bits (recorded, then replayed). */
static inline uint32_t rr_random(void) { return inl(RR_RNG); }

/* Exact number of guest instructions retired, this read included. */
static inline uint64_t rr_icount(void) { return rr_read64(RR_ICOUNT_LO, RR_ICOUNT_HI); }

/* ---- Timers ---------------------------------------------------------- */

static inline void rr_timer_arm(int t, uint64_t deadline_ns, uint32_t period_ns)
{
    outl(RR_TIMER_DEADLINE_LO(t), (uint32_t)deadline_ns);
    outl(RR_TIMER_DEADLINE_HI(t), (uint32_t)(deadline_ns >> 32));
    outl(RR_TIMER_PERIOD(t), period_ns);
    outl(RR_TIMER_CTRL(t), RR_TIMER_CTRL_ARM);
}

/* Fire timer t once at absolute virtual time deadline_ns. */
static inline void rr_timer_oneshot(int t, uint64_t deadline_ns)
{
    rr_timer_arm(t, deadline_ns, 0);
}

/* Fire timer t at first_deadline_ns, then every period_ns. */
static inline void rr_timer_periodic(int t, uint64_t first_deadline_ns, uint32_t period_ns)
{
    rr_timer_arm(t, first_deadline_ns, period_ns);
}

static inline void rr_timer_cancel(int t) { outl(RR_TIMER_CTRL(t), 0); }

static inline int rr_timer_armed(int t) { return (int)(inl(RR_TIMER_CTRL(t)) & 1u); }

/* ---- Interrupts ------------------------------------------------------ */

typedef void (*rr_irq_fn)(int line);

/* The entry stub in crt0.S; its address is what goes in the vector. */
void rr_irq_entry(void);
/* Called by rr_irq_entry: acknowledges and handles pending enabled lines. */
void rr_irq_dispatch(void);
/* Point the interrupt vector at rr_irq_entry (rr_irq_handler does it too). */
void rr_irq_init(void);
/* Register fn for a line (0..RR_IRQ_LINES-1) and enable the line. Lines are
 * only delivered while IF is set: call rr_sti() or rr_wait_for_interrupt(). */
void rr_irq_handler(int line, rr_irq_fn fn);
/* Mask a line (its handler stays registered). */
void rr_irq_disable(int line);

static inline void rr_cli(void) { __asm__ volatile("cli" ::: "memory"); }
static inline void rr_sti(void) { __asm__ volatile("sti" ::: "memory"); }

/* Enable interrupts and halt until one arrives. The two instructions must be
 * adjacent in one asm statement: sti takes effect only after the following
 * instruction (the "sti shadow"), so an interrupt that became pending while
 * IF was clear is taken once the hlt has started, and wakes it. Were it taken
 * between sti and hlt instead, the hlt would sleep through the wakeup.
 * Pattern: for (;;) { rr_cli(); if (condition) break; rr_wait_for_interrupt(); }
 *          rr_sti(); */
static inline void rr_wait_for_interrupt(void) { __asm__ volatile("sti; hlt" ::: "memory"); }

/* Sleep for ns of virtual time using timer 3; returns with interrupts
 * enabled. Other interrupts are serviced during the sleep. */
void rr_sleep_ns(uint64_t ns);

#define RR_FOREVER UINT64_MAX /* a deadline that never comes */

/* Halt until ready(arg) returns nonzero or the virtual clock reaches
 * deadline_ns (absolute; RR_FOREVER for none, ready NULL for never), using
 * timer 3 for the deadline like rr_sleep_ns. ready is called with interrupts
 * disabled, so it must only look at state (no printing, no waiting).
 * Returns 1 if ready, 0 on timeout; returns with interrupts enabled.
 * Whatever makes ready true must raise an enabled interrupt line, or the
 * halt is only ended by the deadline. */
int rr_wait_until(uint64_t deadline_ns, int (*ready)(void *arg), void *arg);

/* ---- Exit ------------------------------------------------------------ */

/* Write the exit code to the EXIT register; the run ends there. */
__attribute__((noreturn)) void rr_exit(int code);

/* Restart the guest from its image (RR_SYS_RESET). Everything in RAM is
 * lost; only what was written to the disk survives. */
__attribute__((noreturn)) void rr_reset(void);

/* ---- Console --------------------------------------------------------- */

static inline void rr_putc(char c) { outb(RR_CON_DATA, (uint8_t)c); }

/* Next input byte (0..255), or -1 when none is waiting. Never blocks. */
static inline int rr_getc(void)
{
    uint32_t v = inl(RR_CON_DATA);
    return v == 0xFFFFFFFFu ? -1 : (int)(v & 0xFFu);
}

static inline int rr_input_ready(void) { return (int)(inl(RR_CON_STATUS) & RR_CON_STATUS_RX); }

void rr_write(const char *buf, size_t len);
/* Write a NUL-terminated string; no newline is added. */
void rr_puts(const char *s);

/* printf family: %d %i %u %x %X %p %s %c %% with l/ll/z length modifiers,
 * width (number or *), and the '-' (left-align) and '0' (zero-pad) flags.
 * No floating point. Return the number of characters produced (for
 * snprintf: that would have been produced, as in C99). */
__attribute__((format(printf, 1, 2))) int rr_printf(const char *fmt, ...);
__attribute__((format(printf, 3, 4))) int rr_snprintf(char *buf, size_t size, const char *fmt, ...);
int rr_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
int rr_vprintf(const char *fmt, va_list ap);

/* ---- Freestanding libc subset (libc.c) ------------------------------- */

void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);
char *strcpy(char *dst, const char *src);

/* ---- Block device (blk.c) --------------------------------------------- */

#define RR_BLK_SECTOR_SIZE 512
#define RR_BLK_MAX_RING 256

#define RR_BLK_OP_READ 0
#define RR_BLK_OP_WRITE 1
#define RR_BLK_OP_FLUSH 2 /* sector, sectors and addr are ignored */

/* Request status, written by the device together with RR_BLK_FLAG_DONE. */
#define RR_BLK_OK 0
#define RR_BLK_IOERR 1    /* the host's disk failed */
#define RR_BLK_RANGE 2    /* sector + sectors past the end of the disk */
#define RR_BLK_BADADDR 3  /* buffer not entirely in RAM */
#define RR_BLK_BADLEN 4   /* zero sectors, or more than BLK_MAX_SECTORS */
#define RR_BLK_BADOP 5    /* op is not read, write or flush */
#define RR_BLK_BUSY 6     /* the descriptor was already in flight */
#define RR_BLK_BADINDEX 7 /* BLK_SUBMIT index outside the ring (only counted) */

#define RR_BLK_FLAG_DONE 0x1u

struct rr_blk_desc {
    uint8_t op;
    uint8_t status; /* written by the device */
    uint16_t flags; /* the guest clears it; the device sets DONE */
    uint32_t sectors;
    uint64_t sector;
    uint64_t addr; /* guest physical address of the buffer */
    uint64_t tag;  /* the guest's own id, echoed in the trace */
};
_Static_assert(sizeof(struct rr_blk_desc) == 32, "the device reads 32-byte descriptors");

/* Disk size in sectors, 0 when no disk is attached. */
uint64_t rr_blk_capacity(void);
/* Largest request in sectors (BLK_MAX_SECTORS). */
uint32_t rr_blk_max_sectors(void);

/* Hand the device a ring of size descriptors (a power of two <= 256, e.g. a
 * static array) and enable the block IRQ line. Returns 0, or -1 for a bad
 * size. Call once before any other rr_blk_ function but the two above. */
int rr_blk_init(struct rr_blk_desc *ring, unsigned size);

/* Submit a request without waiting. Returns the descriptor index used, or
 * -1 when every descriptor is still in flight or not yet reaped. Arguments
 * are passed through unchecked, so the device's own checks can be tested;
 * a malformed request completes at once with an error status. For a write,
 * the device takes the data at submit time: buf may be reused at once. */
int rr_blk_submit(int op, uint64_t sector, uint32_t sectors, void *buf, uint64_t tag);

/* Called by rr_blk_poll for each completed request. d is a copy of the
 * descriptor (status included); its index is free again, so the callback
 * may submit new requests. */
typedef void (*rr_blk_done_fn)(int index, const struct rr_blk_desc *d);

/* Reap every completed rr_blk_submit request, calling fn (may be NULL) for
 * each. Returns how many were reaped. Never blocks. */
int rr_blk_poll(rr_blk_done_fn fn);

/* Halt until at least one rr_blk_submit request has completed, then reap
 * like rr_blk_poll. Returns how many were reaped, 0 if none was in flight.
 * Returns with interrupts enabled. */
int rr_blk_wait(rr_blk_done_fn fn);

/* Requests submitted with rr_blk_submit and not reaped yet. */
unsigned rr_blk_in_flight(void);

/* Synchronous requests: submit, halt until done, return the status (RR_BLK_OK
 * = 0), or -1 when no descriptor is free. They do not reap asynchronous
 * requests, so they mix with rr_blk_submit. Return with interrupts enabled. */
int rr_blk_request(int op, uint64_t sector, uint32_t sectors, void *buf);
int rr_blk_read(uint64_t sector, uint32_t sectors, void *buf);
int rr_blk_write(uint64_t sector, uint32_t sectors, const void *buf);
int rr_blk_flush(void);

/* Name of a status code ("ok", "ioerr", "range", ...). */
const char *rr_blk_status_name(int status);

/* ---- Network cards (net.c) ------------------------------------------------ */

#define RR_NET_DESC_DONE 0x1u
#define RR_NET_DESC_ERR 0x2u
#define RR_NET_MIN_FRAME 14   /* an Ethernet header */
#define RR_NET_MAX_FRAME 1514 /* header + 1500-byte payload, no FCS */
#define RR_NET_BUF_SIZE 1536  /* what an RX buffer must hold at least */

struct rr_net_desc {
    uint32_t addr;
    uint16_t len;   /* RX: capacity, then frame length; TX: frame length */
    uint16_t flags; /* the guest clears it; the device sets DONE (and ERR) */
};
_Static_assert(sizeof(struct rr_net_desc) == 8, "the device reads 8-byte descriptors");

/* Does card (0..3) exist? */
int rr_net_present(int card);

/* Set up card: RX/TX rings with the SDK's own buffers, every RX buffer
 * posted, receive enabled, its IRQ line enabled. Reads the MAC and IPv4
 * address for the IP stack. Returns 0, or -1 if the card is absent. */
int rr_net_init(int card);

/* The card's MAC (6 bytes) and IPv4 address (memory order, 0 if none). */
const uint8_t *rr_net_mac(int card);
uint32_t rr_net_ip(int card);

/* Send one raw Ethernet frame (14..1514 bytes; copied, so frame may be
 * reused at once). Returns 0, or -1 for a bad length, an uninitialised card
 * or an error from the device. */
int rr_net_send(int card, const void *frame, unsigned len);

/* Zero-copy receive: the next received frame of card, or NULL when none is
 * waiting. Frames the device marked ERR are skipped (and counted in
 * RX_ERRORS by the device). The frame stays valid until rr_net_rx_release,
 * which gives its buffer back to the device. */
const uint8_t *rr_net_rx_peek(int card, unsigned *len);
void rr_net_rx_release(int card);

/* Copying receive: the next frame's length (its first cap bytes copied to
 * buf), or -1 when none is waiting. */
int rr_net_recv(int card, void *buf, unsigned cap);

/* Is a received frame waiting on any initialised card? Cheap; usable as an
 * rr_wait_until condition. */
int rr_net_rx_pending(void);

/* Halt until a frame is waiting on an initialised card or timeout_ns of
 * virtual time passed (RR_FOREVER: no timeout). Returns 1 if one is. */
int rr_net_wait(uint64_t timeout_ns);

/* ---- IP stack (net.c): Ethernet, ARP, IPv4, ICMP echo, UDP -----------------
 * One IPv4 address per card (RR_NET_IPV4), a /24 network and its .2 address
 * as the gateway. No fragments (they are dropped), no IP options sent.
 * Addresses are uint32_t in memory order (RR_IPV4(10,0,2,15)), ports and
 * lengths are plain host-order numbers. */

#define RR_IPV4(a, b, c, d) \
    ((uint32_t)(a) | (uint32_t)(b) << 8 | (uint32_t)(c) << 16 | (uint32_t)(d) << 24)
#define RR_IP_BROADCAST 0xFFFFFFFFu
#define RR_UDP_MAX_PAYLOAD 1472 /* 1500 - 20 (IPv4) - 8 (UDP) */
#define RR_NET_ANY_CARD (-1)

/* A received datagram, as handed to a UDP handler (valid during the call). */
struct rr_udp_msg {
    int card;
    uint32_t src_ip, dst_ip;
    uint16_t src_port, dst_port;
    uint8_t src_mac[6]; /* who sent the frame: replies go straight back */
    const uint8_t *data;
    unsigned len;
};

typedef void (*rr_udp_fn)(const struct rr_udp_msg *m);

/* Deliver datagrams for port on card (or RR_NET_ANY_CARD) to fn from
 * rr_net_poll. Returns 0, or -1 when the table (16 bindings) is full. */
int rr_udp_bind(int card, uint16_t port, rr_udp_fn fn);

/* Send a datagram, resolving the next hop with ARP if needed (this waits up
 * to about 0.3 s of virtual time, retrying, and handles frames meanwhile;
 * datagrams that arrive during the wait are dropped). Returns 0, or -1 if
 * len > RR_UDP_MAX_PAYLOAD, the card has no address or ARP failed. */
int rr_udp_send(int card, uint32_t dst_ip, uint16_t src_port, uint16_t dst_port,
                const void *data, unsigned len);

/* Answer a received datagram: back to its sender's address, port and MAC
 * (no ARP needed), from the port it was sent to. Returns 0 or -1. */
int rr_udp_reply(const struct rr_udp_msg *m, const void *data, unsigned len);

/* Handle every frame waiting on every initialised card: answer ARP and
 * pings, hand UDP datagrams to their handlers, drop the rest. Returns the
 * number of frames handled. */
int rr_net_poll(void);

/* Counters of the IP stack, for diagnostics. */
struct rr_net_stats {
    uint32_t frames, arp_replies_sent, arp_requests_sent, pings_answered;
    uint32_t udp_delivered, udp_no_port, dropped; /* dropped: malformed or not for us */
};
const struct rr_net_stats *rr_net_stats(void);

/* Format ip as dotted decimal into buf (at least 16 bytes); returns buf. */
char *rr_ip_str(uint32_t ip, char *buf);

#endif /* RRTOOL_H */
