/* bridge.c - two-port hub forwarding frames between cards 0 and 1. */
/*
 * Frames are forwarded unchanged (no IP stack, no MAC learning), straight
 * from the receive buffer of one card into the other's transmit ring. A
 * count per direction is printed every second of virtual time in which
 * something was forwarded. A frame whose payload (after the Ethernet
 * header) contains "QUIT" is forwarded and then ends the run with exit 0.
 */
#include "rrtool.h"

#define REPORT_NS 1000000000u /* 1 s */

static uint32_t forwarded[2], failed[2];

static int contains_quit(const uint8_t *p, unsigned len)
{
    for (unsigned i = 0; i + 4 <= len; i++)
        if (p[i] == 'Q' && memcmp(p + i, "QUIT", 4) == 0)
            return 1;
    return 0;
}

/* Forward every frame waiting on card `from`; returns 1 if one said QUIT. */
static int pump(int from)
{
    int to = 1 - from, quit = 0;
    unsigned len;
    const uint8_t *frame;
    while (!quit && (frame = rr_net_rx_peek(from, &len))) {
        if (rr_net_send(to, frame, len) == 0)
            forwarded[from]++;
        else
            failed[from]++;
        quit = contains_quit(frame + 14, len - 14); /* peek guarantees len >= 14 */
        rr_net_rx_release(from);
    }
    return quit;
}

static void report(void)
{
    rr_printf("bridge: 0->1 %u frames (%u failed), 1->0 %u frames (%u failed)\n", forwarded[0],
              failed[0], forwarded[1], failed[1]);
}

int main(void)
{
    for (int card = 0; card < 2; card++) {
        if (rr_net_init(card) != 0) {
            rr_printf("bridge: card %d missing (needs two --net cards)\n", card);
            return 1;
        }
    }
    rr_puts("bridge: forwarding between card 0 and card 1\n");
    uint64_t next_report = rr_clock_ns() + REPORT_NS;
    uint32_t reported = 0;
    for (;;) {
        int quit = pump(0) | pump(1);
        uint64_t now = rr_clock_ns();
        if (quit || now >= next_report) {
            if (forwarded[0] + forwarded[1] + failed[0] + failed[1] != reported) {
                reported = forwarded[0] + forwarded[1] + failed[0] + failed[1];
                report();
            }
            next_report = now + REPORT_NS;
        }
        if (quit)
            break;
        rr_net_wait(next_report - now); /* next_report > now here */
    }
    rr_puts("bridge: QUIT seen, stopping\n");
    return 0;
}
