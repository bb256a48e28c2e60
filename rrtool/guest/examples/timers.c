/* timers.c - interrupts, timers, clock, RTC and RNG. */
/*
 * A periodic timer (timer 0, every 2 ms of virtual time) drives 20 ticks and
 * a one-shot timer (timer 1) fires once in between; the guest halts between
 * ticks, so the machine is mostly idle. Then a few rr_sleep_ns calls bring
 * the run to about 0.5 s of virtual time. Every line printed is computed from
 * values read from the clock, RTC and RNG, so a replay must reproduce them.
 */
#include "rrtool.h"

#define TICK_NS 2000000u      /* 2 ms */
#define TICKS 20u
#define ONESHOT_NS 15000000u  /* 15 ms after start */
#define SLEEPS 4u
#define SLEEP_NS 110000000u   /* 110 ms each */

/* Written by the interrupt handler, read by main: volatile. */
static volatile uint32_t ticks;
static volatile uint64_t oneshot_at; /* clock when timer 1 fired, 0 = not yet */

static void on_timer(int line)
{
    if (line == RR_IRQ_TIMER(0))
        ticks++;
    else if (line == RR_IRQ_TIMER(1))
        oneshot_at = rr_clock_ns();
}

/* Halt until the handler has counted more than `seen` ticks. The check runs
 * with interrupts off so a tick cannot slip in between it and the hlt. */
static void wait_for_tick(uint32_t seen)
{
    for (;;) {
        rr_cli();
        if (ticks != seen)
            break;
        rr_wait_for_interrupt();
    }
    rr_sti();
}

/* FNV-1a over the 8 bytes of v: a simple order-sensitive checksum. */
static uint64_t fold(uint64_t h, uint64_t v)
{
    for (int i = 0; i < 8; i++, v >>= 8)
        h = (h ^ (v & 0xFF)) * 0x100000001B3ull;
    return h;
}

int main(void)
{
    uint64_t sum = 0xCBF29CE484222325ull;
    uint64_t start = rr_clock_ns();
    uint64_t rtc = rr_rtc_ns();
    rr_printf("timers: start clock %lu ns, rtc %lu.%09lu s\n",
              start, rtc / 1000000000u, rtc % 1000000000u);
    sum = fold(fold(sum, start), rtc);

    rr_irq_handler(RR_IRQ_TIMER(0), on_timer);
    rr_irq_handler(RR_IRQ_TIMER(1), on_timer);
    rr_timer_periodic(0, start + TICK_NS, TICK_NS);
    rr_timer_oneshot(1, start + ONESHOT_NS);

    /* One line per tick, however many ticks the handler has counted: a
     * slow print cannot change the number of lines. */
    for (uint32_t seen = 0; seen < TICKS; seen++) {
        wait_for_tick(seen);
        uint64_t now = rr_clock_ns();
        uint32_t rnd = rr_random();
        sum = fold(fold(sum, now), rnd);
        rr_printf("tick %2u clock %10lu ns (+%7lu) rnd %08x\n",
                  seen + 1, now, now - start, rnd);
    }
    rr_timer_cancel(0);

    for (uint32_t i = 0; i < SLEEPS; i++) {
        rr_sleep_ns(SLEEP_NS);
        uint64_t now = rr_clock_ns();
        rtc = rr_rtc_ns();
        uint32_t rnd = rr_random();
        sum = fold(fold(fold(sum, now), rtc), rnd);
        rr_printf("sleep %u clock %10lu ns rtc %lu rnd %08x\n", i + 1, now, rtc, rnd);
    }

    uint64_t fired = oneshot_at;
    sum = fold(sum, fired);
    uint64_t end = rr_clock_ns();
    rr_printf("one-shot fired at %lu ns (+%lu)\n", fired, fired ? fired - start : 0);
    rr_printf("timers: %u ticks, %lu ns virtual, checksum %016lx\n",
              TICKS, end - start, sum);
    return 0;
}
