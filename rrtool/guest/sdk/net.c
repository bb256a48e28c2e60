/*
 * net.c - driver for the network cards and a tiny IP stack on top:
 * Ethernet, ARP (answers and a small cache), IPv4 without fragments, ICMP
 * echo replies and UDP.
 *
 * Everything that comes off the wire is untrusted: every length is checked
 * against the frame's own length before a byte is read, and anything
 * malformed, with a bad checksum or not for us is dropped and counted.
 * Multi-byte header fields are read and written a byte at a time (get16 and
 * friends): frames have no alignment to speak of, and this keeps the code
 * free of casts to packed structs.
 */
#include "rrtool.h"

#define RX_DESCS 32 /* per card; a power of two, so free-running counters wrap cleanly */
#define TX_DESCS 8  /* sends complete synchronously, so a few are plenty */
#define ARP_ENTRIES 16
#define ARP_TRIES 3
#define ARP_WAIT_NS 100000000u /* 100 ms of virtual time per try */
#define UDP_BINDINGS 16

#define ETH_HDR 14
#define IP_HDR 20 /* what we send; received headers may carry options */
#define UDP_HDR 8
#define ETH_IPV4 0x0800
#define ETH_ARP 0x0806
#define IP_ICMP 1
#define IP_UDP 17

struct card {
    int up;
    uint8_t mac[6];
    uint32_t ip;
    uint32_t rx_next; /* frames consumed; the device has filled up to RX_HEAD */
    uint32_t rx_tail; /* buffers posted: always rx_next + RX_DESCS */
    uint32_t tx_tail;
    /* The device writes these behind the compiler's back: see vdesc(). */
    struct rr_net_desc rx[RX_DESCS];
    struct rr_net_desc tx[TX_DESCS];
    uint8_t rx_buf[RX_DESCS][RR_NET_BUF_SIZE];
    uint8_t tx_buf[TX_DESCS][RR_NET_BUF_SIZE];
};

static struct card cards[RR_NET_CARDS];
static struct rr_net_stats stats;

/* Descriptors are accessed through volatile pointers: the device writes
 * them at instruction boundaries the compiler knows nothing about. */
static volatile struct rr_net_desc *vdesc(struct rr_net_desc *d) { return d; }

static struct card *card_up(int card)
{
    if (card < 0 || card >= RR_NET_CARDS || !cards[card].up)
        return NULL;
    return &cards[card];
}

/* ---- Driver ----------------------------------------------------------- */

int rr_net_present(int card)
{
    if (card < 0 || card >= RR_NET_CARDS)
        return 0;
    return inl(RR_NET_MAC_HI(card)) != RR_NET_ABSENT;
}

/* Received frames only need to wake a hlt; rr_irq_dispatch acknowledges. */
static void on_net_irq(int line) { (void)line; }

/* The ring addresses are 32-bit registers; the image lives far below 4 GiB. */
static uint32_t addr32(const void *p) { return (uint32_t)(uintptr_t)p; }

static void post_rx(struct card *c, uint32_t n)
{
    unsigned i = n % RX_DESCS;
    volatile struct rr_net_desc *d = vdesc(&c->rx[i]);
    d->addr = addr32(c->rx_buf[i]);
    d->len = RR_NET_BUF_SIZE;
    d->flags = 0;
}

int rr_net_init(int card)
{
    if (!rr_net_present(card))
        return -1;
    struct card *c = &cards[card];
    c->up = 0;
    outl(RR_NET_CTRL(card), 0); /* no receiving while the rings change */

    uint32_t lo = inl(RR_NET_MAC_LO(card)), hi = inl(RR_NET_MAC_HI(card));
    for (int i = 0; i < 4; i++)
        c->mac[i] = (uint8_t)(lo >> (8 * i));
    c->mac[4] = (uint8_t)hi;
    c->mac[5] = (uint8_t)(hi >> 8);
    c->ip = inl(RR_NET_IPV4(card));

    /* Start from wherever the device's counters are (0 after a reset, but
     * rr_net_init may be called twice), so HEAD % SIZE lines up with ours. */
    c->rx_next = inl(RR_NET_RX_HEAD(card));
    for (uint32_t n = 0; n < RX_DESCS; n++)
        post_rx(c, c->rx_next + n);
    c->tx_tail = inl(RR_NET_TX_HEAD(card));
    outl(RR_NET_RX_RING(card), addr32(c->rx));
    outl(RR_NET_RX_SIZE(card), RX_DESCS);
    outl(RR_NET_TX_RING(card), addr32(c->tx));
    outl(RR_NET_TX_SIZE(card), TX_DESCS);
    c->rx_tail = c->rx_next + RX_DESCS;
    outl(RR_NET_RX_TAIL(card), c->rx_tail);

    rr_irq_handler(RR_IRQ_NET(card), on_net_irq);
    c->up = 1;
    outl(RR_NET_CTRL(card), RR_NET_CTRL_RX_ENABLE);
    return 0;
}

const uint8_t *rr_net_mac(int card)
{
    struct card *c = card_up(card);
    return c ? c->mac : NULL;
}

uint32_t rr_net_ip(int card)
{
    struct card *c = card_up(card);
    return c ? c->ip : 0;
}

int rr_net_send(int card, const void *frame, unsigned len)
{
    struct card *c = card_up(card);
    if (!c || len < RR_NET_MIN_FRAME || len > RR_NET_MAX_FRAME)
        return -1;
    unsigned i = c->tx_tail % TX_DESCS;
    memcpy(c->tx_buf[i], frame, len);
    volatile struct rr_net_desc *d = vdesc(&c->tx[i]);
    d->addr = addr32(c->tx_buf[i]);
    d->len = (uint16_t)len;
    d->flags = 0;
    c->tx_tail++;
    /* The device sends before the outl returns, so the flags are final. */
    outl(RR_NET_TX_TAIL(card), c->tx_tail);
    uint16_t flags = d->flags;
    return (flags & RR_NET_DESC_DONE) && !(flags & RR_NET_DESC_ERR) ? 0 : -1;
}

static int rx_waiting(struct card *c, int card) { return c->rx_next != inl(RR_NET_RX_HEAD(card)); }

/* Give the oldest filled buffer back to the device. */
static void rx_release(struct card *c, int card)
{
    post_rx(c, c->rx_next);
    c->rx_next++;
    c->rx_tail++;
    outl(RR_NET_RX_TAIL(card), c->rx_tail);
}

const uint8_t *rr_net_rx_peek(int card, unsigned *len)
{
    struct card *c = card_up(card);
    if (!c)
        return NULL;
    while (rx_waiting(c, card)) {
        unsigned i = c->rx_next % RX_DESCS;
        volatile struct rr_net_desc *d = vdesc(&c->rx[i]);
        uint16_t flags = d->flags, n = d->len;
        __asm__ volatile("" ::: "memory"); /* read the frame only after its descriptor */
        if ((flags & RR_NET_DESC_DONE) && !(flags & RR_NET_DESC_ERR) && n >= RR_NET_MIN_FRAME
            && n <= RR_NET_MAX_FRAME) {
            *len = n;
            return c->rx_buf[i];
        }
        rx_release(c, card); /* did not fit, or nonsense: skip it */
    }
    return NULL;
}

void rr_net_rx_release(int card)
{
    struct card *c = card_up(card);
    if (c && rx_waiting(c, card))
        rx_release(c, card);
}

int rr_net_recv(int card, void *buf, unsigned cap)
{
    unsigned len;
    const uint8_t *frame = rr_net_rx_peek(card, &len);
    if (!frame)
        return -1;
    memcpy(buf, frame, len < cap ? len : cap);
    rr_net_rx_release(card);
    return (int)len;
}

int rr_net_rx_pending(void)
{
    for (int i = 0; i < RR_NET_CARDS; i++)
        if (cards[i].up && rx_waiting(&cards[i], i))
            return 1;
    return 0;
}

static int rx_pending_cb(void *arg)
{
    (void)arg;
    return rr_net_rx_pending();
}

int rr_net_wait(uint64_t timeout_ns)
{
    uint64_t deadline = timeout_ns == RR_FOREVER ? RR_FOREVER : rr_clock_ns() + timeout_ns;
    return rr_wait_until(deadline, rx_pending_cb, NULL);
}

/* ---- Byte-level helpers ---------------------------------------------- */

static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

/* IPv4 addresses stay in memory order end to end, so these are copies. */
static uint32_t get_ip(const uint8_t *p) { return RR_IPV4(p[0], p[1], p[2], p[3]); }

static void put_ip(uint8_t *p, uint32_t ip)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(ip >> (8 * i));
}

static const uint8_t broadcast_mac[6] = { 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF };

/* The Internet checksum (RFC 1071): add 16-bit big-endian words, fold the
 * carries, complement. A packet that carries its checksum sums to 0. */
static uint32_t csum_add(uint32_t sum, const uint8_t *p, unsigned len)
{
    for (; len > 1; p += 2, len -= 2)
        sum += get16(p);
    if (len)
        sum += (uint32_t)p[0] << 8;
    return sum;
}

static uint16_t csum_fold(uint32_t sum)
{
    while (sum >> 16)
        sum = (sum & 0xFFFF) + (sum >> 16);
    return (uint16_t)~sum;
}

/* UDP's checksum also covers a pseudo-header of the IP addresses. */
static uint16_t udp_csum(uint32_t src, uint32_t dst, const uint8_t *udp, unsigned len)
{
    uint8_t pseudo[12];
    put_ip(pseudo, src);
    put_ip(pseudo + 4, dst);
    pseudo[8] = 0;
    pseudo[9] = IP_UDP;
    put16(pseudo + 10, (uint16_t)len);
    return csum_fold(csum_add(csum_add(0, pseudo, 12), udp, len));
}

char *rr_ip_str(uint32_t ip, char *buf)
{
    rr_snprintf(buf, 16, "%u.%u.%u.%u", ip & 0xFF, (ip >> 8) & 0xFF, (ip >> 16) & 0xFF, ip >> 24);
    return buf;
}

/* /24 networks: the first three address bytes are the low 24 bits. */
static int same_subnet(uint32_t a, uint32_t b) { return ((a ^ b) & 0x00FFFFFFu) == 0; }
static uint32_t subnet_broadcast(uint32_t ip) { return ip | 0xFF000000u; }
static uint32_t gateway(uint32_t ip) { return (ip & 0x00FFFFFFu) | (2u << 24); }

const struct rr_net_stats *rr_net_stats(void) { return &stats; }

/* ---- Sending ------------------------------------------------------------
 * Outgoing frames are built in one static buffer. Nothing that builds a
 * frame waits in between, so a nested send (an ARP reply sent while
 * rr_udp_send waits for ARP) never finds the buffer half-built. */

static uint8_t out[RR_NET_MAX_FRAME];
static uint16_t ip_id;

static void eth_header(uint8_t *f, const uint8_t *dst, const uint8_t *src, uint16_t type)
{
    memcpy(f, dst, 6);
    memcpy(f + 6, src, 6);
    put16(f + 12, type);
}

/* Send the IP payload of plen bytes already at out + ETH_HDR + IP_HDR. */
static int ip_send(struct card *c, int card, const uint8_t *dst_mac, uint32_t dst_ip, uint8_t proto,
                   unsigned plen)
{
    uint8_t *ip = out + ETH_HDR;
    eth_header(out, dst_mac, c->mac, ETH_IPV4);
    ip[0] = 0x45; /* version 4, 5-word header */
    ip[1] = 0;
    put16(ip + 2, (uint16_t)(IP_HDR + plen));
    put16(ip + 4, ip_id++);
    put16(ip + 6, 0x4000); /* don't fragment */
    ip[8] = 64;            /* TTL */
    ip[9] = proto;
    put16(ip + 10, 0);
    put_ip(ip + 12, c->ip);
    put_ip(ip + 16, dst_ip);
    put16(ip + 10, csum_fold(csum_add(0, ip, IP_HDR)));
    return rr_net_send(card, out, ETH_HDR + IP_HDR + plen);
}

static int udp_send_to(struct card *c, int card, const uint8_t *dst_mac, uint32_t dst_ip,
                       uint16_t src_port, uint16_t dst_port, const void *data, unsigned len)
{
    if (len > RR_UDP_MAX_PAYLOAD)
        return -1;
    uint8_t *udp = out + ETH_HDR + IP_HDR;
    put16(udp, src_port);
    put16(udp + 2, dst_port);
    put16(udp + 4, (uint16_t)(UDP_HDR + len));
    put16(udp + 6, 0);
    memcpy(udp + UDP_HDR, data, len);
    uint16_t sum = udp_csum(c->ip, dst_ip, udp, UDP_HDR + len);
    put16(udp + 6, sum ? sum : 0xFFFF); /* 0 would mean "no checksum" */
    return ip_send(c, card, dst_mac, dst_ip, IP_UDP, UDP_HDR + len);
}

/* ---- ARP --------------------------------------------------------------- */

struct arp_entry {
    int card; /* -1: unused */
    uint32_t ip;
    uint8_t mac[6];
};

static struct arp_entry arp_cache[ARP_ENTRIES];
static unsigned arp_victim; /* round-robin replacement */
static int arp_ready;

static struct arp_entry *arp_find(int card, uint32_t ip)
{
    if (!arp_ready) { /* .bss is zero, but card 0 is a valid card */
        for (int i = 0; i < ARP_ENTRIES; i++)
            arp_cache[i].card = -1;
        arp_ready = 1;
    }
    for (int i = 0; i < ARP_ENTRIES; i++)
        if (arp_cache[i].card == card && arp_cache[i].ip == ip)
            return &arp_cache[i];
    return NULL;
}

static void arp_store(int card, uint32_t ip, const uint8_t *mac, int add)
{
    struct arp_entry *e = arp_find(card, ip);
    if (!e) {
        if (!add)
            return;
        e = &arp_cache[arp_victim];
        arp_victim = (arp_victim + 1) % ARP_ENTRIES;
        e->card = card;
        e->ip = ip;
    }
    memcpy(e->mac, mac, 6);
}

static int arp_send(struct card *c, int card, uint16_t op, const uint8_t *eth_dst,
                    const uint8_t *target_mac, uint32_t target_ip)
{
    uint8_t *a = out + ETH_HDR;
    eth_header(out, eth_dst, c->mac, ETH_ARP);
    put16(a, 1);             /* hardware: Ethernet */
    put16(a + 2, ETH_IPV4); /* protocol: IPv4 */
    a[4] = 6;
    a[5] = 4;
    put16(a + 6, op);
    memcpy(a + 8, c->mac, 6);
    put_ip(a + 14, c->ip);
    memcpy(a + 18, target_mac, 6);
    put_ip(a + 24, target_ip);
    /* Pad to the 60-byte Ethernet minimum, as real stacks do. */
    memset(out + ETH_HDR + 28, 0, 60 - ETH_HDR - 28);
    return rr_net_send(card, out, 60);
}

static void arp_input(struct card *c, int card, const uint8_t *a, unsigned len)
{
    if (len < 28 || get16(a) != 1 || get16(a + 2) != ETH_IPV4 || a[4] != 6 || a[5] != 4) {
        stats.dropped++;
        return;
    }
    uint16_t op = get16(a + 6);
    const uint8_t *sha = a + 8;
    uint32_t spa = get_ip(a + 14), tpa = get_ip(a + 24);
    int for_us = c->ip != 0 && tpa == c->ip;
    /* RFC 826: refresh what we know of the sender; learn it if the packet
     * is for us. spa 0 is a probe (RFC 5227) and says nothing. */
    if (spa != 0 && spa != RR_IP_BROADCAST)
        arp_store(card, spa, sha, for_us);
    if (for_us && op == 1) {
        if (arp_send(c, card, 2, sha, sha, spa) == 0)
            stats.arp_replies_sent++;
    } else if (!for_us) {
        stats.dropped++;
    }
}

/* ---- Receiving ------------------------------------------------------------ */

struct udp_binding {
    int card;
    uint16_t port;
    rr_udp_fn fn;
};

static struct udp_binding bindings[UDP_BINDINGS];
static int resolving; /* inside rr_udp_send's ARP wait: no UDP delivery */

int rr_udp_bind(int card, uint16_t port, rr_udp_fn fn)
{
    for (int i = 0; i < UDP_BINDINGS; i++) {
        if (!bindings[i].fn) {
            bindings[i].card = card;
            bindings[i].port = port;
            bindings[i].fn = fn;
            return 0;
        }
    }
    return -1;
}

static void icmp_input(struct card *c, int card, const uint8_t *eth_src, uint32_t src,
                       const uint8_t *p, unsigned len)
{
    if (len < 8 || p[0] != 8 || p[1] != 0 || csum_fold(csum_add(0, p, len)) != 0) {
        stats.dropped++; /* not an echo request, or damaged */
        return;
    }
    /* The reply is the request with type 0 (echo reply) and a new checksum. */
    uint8_t *icmp = out + ETH_HDR + IP_HDR;
    memcpy(icmp, p, len);
    icmp[0] = 0;
    put16(icmp + 2, 0);
    put16(icmp + 2, csum_fold(csum_add(0, icmp, len)));
    if (ip_send(c, card, eth_src, src, IP_ICMP, len) == 0)
        stats.pings_answered++;
}

static void udp_input(int card, const uint8_t *eth_src, uint32_t src, uint32_t dst,
                      const uint8_t *p, unsigned len)
{
    if (len < UDP_HDR) {
        stats.dropped++;
        return;
    }
    unsigned ulen = get16(p + 4);
    if (ulen < UDP_HDR || ulen > len || (get16(p + 6) && udp_csum(src, dst, p, ulen) != 0)) {
        stats.dropped++;
        return;
    }
    uint16_t dport = get16(p + 2);
    for (int i = 0; i < UDP_BINDINGS; i++) {
        struct udp_binding *b = &bindings[i];
        if (!b->fn || b->port != dport || (b->card != RR_NET_ANY_CARD && b->card != card))
            continue;
        if (resolving) {
            stats.dropped++; /* a handler could send and nest waits without bound */
            return;
        }
        struct rr_udp_msg m = {
            .card = card,
            .src_ip = src,
            .dst_ip = dst,
            .src_port = get16(p),
            .dst_port = dport,
            .data = p + UDP_HDR,
            .len = ulen - UDP_HDR,
        };
        memcpy(m.src_mac, eth_src, 6);
        stats.udp_delivered++;
        b->fn(&m);
        return;
    }
    stats.udp_no_port++;
}

static void ipv4_input(struct card *c, int card, const uint8_t *eth_src, const uint8_t *ip,
                       unsigned len)
{
    if (len < 20 || (ip[0] >> 4) != 4) {
        stats.dropped++;
        return;
    }
    unsigned hlen = (ip[0] & 0xFu) * 4u, total = get16(ip + 2);
    /* total may be less than len: short frames are padded to 60 bytes. */
    if (hlen < 20 || total < hlen || total > len || csum_fold(csum_add(0, ip, hlen)) != 0
        || (get16(ip + 6) & 0x3FFF) != 0) { /* MF flag or an offset: a fragment */
        stats.dropped++;
        return;
    }
    uint32_t src = get_ip(ip + 12), dst = get_ip(ip + 16);
    int unicast = c->ip != 0 && dst == c->ip;
    int bcast = dst == RR_IP_BROADCAST || (c->ip != 0 && dst == subnet_broadcast(c->ip));
    if ((!unicast && !bcast) || src == RR_IP_BROADCAST) {
        stats.dropped++;
        return;
    }
    if (c->ip != 0 && same_subnet(src, c->ip))
        arp_store(card, src, eth_src, 0); /* refresh a known neighbour */
    const uint8_t *payload = ip + hlen;
    unsigned plen = total - hlen;
    if (ip[9] == IP_ICMP && unicast)
        icmp_input(c, card, eth_src, src, payload, plen);
    else if (ip[9] == IP_UDP)
        udp_input(card, eth_src, src, dst, payload, plen);
    else
        stats.dropped++;
}

static void frame_input(int card, const uint8_t *f, unsigned len)
{
    struct card *c = &cards[card];
    stats.frames++;
    if (len < ETH_HDR || (memcmp(f, c->mac, 6) != 0 && memcmp(f, broadcast_mac, 6) != 0)) {
        stats.dropped++;
        return;
    }
    uint16_t type = get16(f + 12);
    if (type == ETH_ARP)
        arp_input(c, card, f + ETH_HDR, len - ETH_HDR);
    else if (type == ETH_IPV4)
        ipv4_input(c, card, f + 6, f + ETH_HDR, len - ETH_HDR);
    else
        stats.dropped++;
}

int rr_net_poll(void)
{
    int handled = 0;
    for (int card = 0; card < RR_NET_CARDS; card++) {
        /* At most one ring's worth per card, so a busy card cannot starve
         * the others. */
        for (int n = 0; n < RX_DESCS; n++) {
            unsigned len;
            const uint8_t *f = rr_net_rx_peek(card, &len);
            if (!f)
                break;
            /* Copy and release before handling: a handler may send, and a
             * send may wait for ARP and poll again, which must see the
             * next frame rather than this one. */
            uint8_t frame[RR_NET_MAX_FRAME];
            memcpy(frame, f, len);
            rr_net_rx_release(card);
            frame_input(card, frame, len);
            handled++;
        }
    }
    return handled;
}

/* ---- UDP send with ARP resolution -------------------------------------- */

/* Find the MAC for next hop ip on card: from the cache, or by asking with
 * ARP_TRIES requests ARP_WAIT_NS apart while handling incoming frames. */
static int resolve(struct card *c, int card, uint32_t ip, uint8_t *mac)
{
    if (ip == RR_IP_BROADCAST || ip == subnet_broadcast(c->ip)) {
        memcpy(mac, broadcast_mac, 6);
        return 0;
    }
    static const uint8_t zero_mac[6];
    for (int attempt = 0; attempt < ARP_TRIES; attempt++) {
        struct arp_entry *e = arp_find(card, ip);
        if (e) {
            memcpy(mac, e->mac, 6);
            return 0;
        }
        if (arp_send(c, card, 1, broadcast_mac, zero_mac, ip) == 0)
            stats.arp_requests_sent++;
        uint64_t deadline = rr_clock_ns() + ARP_WAIT_NS;
        while (!arp_find(card, ip) && rr_wait_until(deadline, rx_pending_cb, NULL)) {
            resolving++;
            rr_net_poll();
            resolving--;
        }
    }
    struct arp_entry *e = arp_find(card, ip);
    if (!e)
        return -1;
    memcpy(mac, e->mac, 6);
    return 0;
}

int rr_udp_send(int card, uint32_t dst_ip, uint16_t src_port, uint16_t dst_port,
                const void *data, unsigned len)
{
    struct card *c = card_up(card);
    if (!c || c->ip == 0 || len > RR_UDP_MAX_PAYLOAD)
        return -1;
    uint32_t hop = same_subnet(dst_ip, c->ip) || dst_ip == RR_IP_BROADCAST ? dst_ip : gateway(c->ip);
    uint8_t mac[6];
    if (resolve(c, card, hop, mac) != 0)
        return -1;
    return udp_send_to(c, card, mac, dst_ip, src_port, dst_port, data, len);
}

int rr_udp_reply(const struct rr_udp_msg *m, const void *data, unsigned len)
{
    struct card *c = card_up(m->card);
    if (!c || c->ip == 0)
        return -1;
    return udp_send_to(c, m->card, m->src_mac, m->src_ip, m->dst_port, m->src_port, data, len);
}
