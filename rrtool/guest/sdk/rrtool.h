/*
 * rrtool.h - the guest SDK for rrtool's virtual machine.
 *
 * The machine is a Unicorn x86-64 CPU in long mode with flat memory and no
 * OS. A guest is a static ELF linked at 0x100000 (see guest.ld); crt0.S calls
 * main() and passes its return value to rr_exit(). Everything the guest can
 * observe from outside (time, randomness, input, interrupts) comes through the
 * port I/O devices below, which is what lets rrtool record and replay a run.
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
 * Console (base 0x3F8)
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
 *
 * Reserved for later
 *   0x200-0x23F       block device.
 *   0x240-0x2BF       network cards 0-3 (0x20 ports each).
 */
#ifndef RRTOOL_H
#define RRTOOL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* ---- Port numbers ---------------------------------------------------- */

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

#define RR_BLOCK_BASE 0x200 /* reserved: 0x200-0x23F */
#define RR_NET_BASE(i) (0x240 + 0x20 * (i)) /* reserved: 0x240-0x2BF */

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

/* ---- Exit ------------------------------------------------------------ */

/* Write the exit code to the EXIT register; the run ends there. */
__attribute__((noreturn)) void rr_exit(int code);

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

#endif /* RRTOOL_H */
