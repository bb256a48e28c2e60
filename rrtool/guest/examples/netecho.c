/* netecho.c - UDP echo on port 7 of every card; answers ARP and ping. */
/*
 * Every present card is brought up with the address the host assigned it.
 * Each datagram to port 7 is echoed to its sender and logged as one line;
 * a datagram whose payload is exactly QUIT is echoed too and ends the run
 * with exit code 0. The guest halts between frames, so it costs nothing
 * while idle.
 */
#include "rrtool.h"

#define ECHO_PORT 7

static int quit;
static uint32_t datagrams;

static void on_echo(const struct rr_udp_msg *m)
{
    char ip[16];
    datagrams++;
    /* Show the printable start of the payload; binary would garble the console. */
    char text[41];
    unsigned shown = 0;
    while (shown < m->len && shown < sizeof(text) - 1 && m->data[shown] >= 0x20
           && m->data[shown] < 0x7F) {
        text[shown] = (char)m->data[shown];
        shown++;
    }
    text[shown] = '\0';
    rr_printf("netecho: card %d %s:%u -> port %u, %u bytes \"%s\"%s\n", m->card,
              rr_ip_str(m->src_ip, ip), m->src_port, m->dst_port, m->len, text,
              shown < m->len ? "..." : "");
    if (rr_udp_reply(m, m->data, m->len) != 0)
        rr_puts("netecho: reply failed\n");
    if (m->len == 4 && memcmp(m->data, "QUIT", 4) == 0)
        quit = 1;
}

int main(void)
{
    int up = 0;
    for (int card = 0; card < RR_NET_CARDS; card++) {
        if (rr_net_init(card) != 0)
            continue;
        const uint8_t *mac = rr_net_mac(card);
        char ip[16];
        rr_printf("netecho: card %d mac %02x:%02x:%02x:%02x:%02x:%02x ip %s\n", card, mac[0],
                  mac[1], mac[2], mac[3], mac[4], mac[5], rr_ip_str(rr_net_ip(card), ip));
        up++;
    }
    if (!up) {
        rr_puts("netecho: no network card (rrtool run netecho --net ...)\n");
        return 1;
    }
    rr_udp_bind(RR_NET_ANY_CARD, ECHO_PORT, on_echo);
    rr_printf("netecho: echoing UDP port %d; send QUIT to stop\n", ECHO_PORT);
    while (!quit) {
        rr_net_wait(RR_FOREVER);
        rr_net_poll();
    }
    const struct rr_net_stats *s = rr_net_stats();
    rr_printf("netecho: %u datagrams echoed, %u frames, %u pings, %u ARP replies, %u dropped\n",
              datagrams, s->frames, s->pings_answered, s->arp_replies_sent, s->dropped);
    return 0;
}
