/*
 * blk.c - driver for the block device: a descriptor ring, asynchronous
 * submits with rr_blk_poll/rr_blk_wait, and synchronous read/write/flush.
 *
 * The device writes a descriptor's status and DONE flag behind the
 * compiler's back (at any instruction boundary), so the ring is accessed
 * through a volatile pointer. Each descriptor is in one of three states
 * (below); only the driver's own bookkeeping decides when an index may be
 * reused, never the DONE flag alone, so a request is never overwritten
 * before whoever waits for it has seen its status.
 */
#include "rrtool.h"

enum { SLOT_FREE, SLOT_ASYNC, SLOT_SYNC };

static volatile struct rr_blk_desc *ring;
static unsigned ring_size;
static unsigned next_slot; /* where the search for a free slot starts */
static uint8_t slot_state[RR_BLK_MAX_RING];
static unsigned async_in_flight;

/* Completions only need to wake a hlt; rr_irq_dispatch acknowledges. */
static void on_block_irq(int line) { (void)line; }

uint64_t rr_blk_capacity(void)
{
    /* Not latched: the capacity does not change while the guest runs. */
    uint32_t lo = inl(RR_BLK_CAPACITY_LO);
    uint32_t hi = inl(RR_BLK_CAPACITY_HI);
    return ((uint64_t)hi << 32) | lo;
}

uint32_t rr_blk_max_sectors(void) { return inl(RR_BLK_MAX_SECTORS); }

int rr_blk_init(struct rr_blk_desc *r, unsigned size)
{
    if (size == 0 || size > RR_BLK_MAX_RING || (size & (size - 1)))
        return -1;
    memset(r, 0, size * sizeof(*r));
    memset(slot_state, SLOT_FREE, sizeof(slot_state));
    ring = r;
    ring_size = size;
    next_slot = 0;
    async_in_flight = 0;
    uint64_t addr = (uint64_t)(uintptr_t)r;
    outl(RR_BLK_RING_LO, (uint32_t)addr);
    outl(RR_BLK_RING_HI, (uint32_t)(addr >> 32)); /* HI commits */
    outl(RR_BLK_RING_SIZE, size);
    rr_irq_handler(RR_IRQ_BLOCK, on_block_irq);
    return 0;
}

/* Fill a free descriptor and hand it to the device; -1 if none is free. */
static int submit(int state, int op, uint64_t sector, uint32_t sectors, const void *buf,
                  uint64_t tag)
{
    for (unsigned n = 0; n < ring_size; n++) {
        unsigned i = (next_slot + n) & (ring_size - 1);
        if (slot_state[i] != SLOT_FREE)
            continue;
        volatile struct rr_blk_desc *d = &ring[i];
        d->op = (uint8_t)op;
        d->status = 0;
        d->flags = 0; /* the device sets DONE; a stale one would end the wait early */
        d->sectors = sectors;
        d->sector = sector;
        d->addr = (uint64_t)(uintptr_t)buf;
        d->tag = tag;
        slot_state[i] = (uint8_t)state;
        next_slot = (i + 1) & (ring_size - 1);
        /* outl's "memory" clobber orders the descriptor writes before it. */
        outl(RR_BLK_SUBMIT, i);
        return (int)i;
    }
    return -1;
}

int rr_blk_submit(int op, uint64_t sector, uint32_t sectors, void *buf, uint64_t tag)
{
    if (!ring)
        return -1;
    int i = submit(SLOT_ASYNC, op, sector, sectors, buf, tag);
    if (i >= 0)
        async_in_flight++;
    return i;
}

unsigned rr_blk_in_flight(void) { return async_in_flight; }

static int slot_done(unsigned i) { return (ring[i].flags & RR_BLK_FLAG_DONE) != 0; }

int rr_blk_poll(rr_blk_done_fn fn)
{
    int reaped = 0;
    for (unsigned i = 0; i < ring_size; i++) {
        if (slot_state[i] != SLOT_ASYNC || !slot_done(i))
            continue;
        /* Copy first: once the slot is free, fn may submit into it. The
         * barrier keeps reads of the request's buffer after the DONE test. */
        __asm__ volatile("" ::: "memory");
        struct rr_blk_desc copy = {
            .op = ring[i].op,
            .status = ring[i].status,
            .flags = ring[i].flags,
            .sectors = ring[i].sectors,
            .sector = ring[i].sector,
            .addr = ring[i].addr,
            .tag = ring[i].tag,
        };
        slot_state[i] = SLOT_FREE;
        async_in_flight--;
        reaped++;
        if (fn)
            fn((int)i, &copy);
    }
    return reaped;
}

static int any_async_done(void *arg)
{
    (void)arg;
    for (unsigned i = 0; i < ring_size; i++)
        if (slot_state[i] == SLOT_ASYNC && slot_done(i))
            return 1;
    return 0;
}

int rr_blk_wait(rr_blk_done_fn fn)
{
    if (async_in_flight == 0)
        return 0;
    rr_wait_until(RR_FOREVER, any_async_done, NULL);
    return rr_blk_poll(fn);
}

static int one_done(void *arg) { return slot_done((unsigned)(uintptr_t)arg); }

int rr_blk_request(int op, uint64_t sector, uint32_t sectors, void *buf)
{
    if (!ring)
        return -1;
    int i = submit(SLOT_SYNC, op, sector, sectors, buf, 0);
    if (i < 0)
        return -1;
    rr_wait_until(RR_FOREVER, one_done, (void *)(uintptr_t)i);
    __asm__ volatile("" ::: "memory"); /* read buf only after DONE */
    int status = ring[i].status;
    slot_state[i] = SLOT_FREE;
    return status;
}

int rr_blk_read(uint64_t sector, uint32_t sectors, void *buf)
{
    return rr_blk_request(RR_BLK_OP_READ, sector, sectors, buf);
}

int rr_blk_write(uint64_t sector, uint32_t sectors, const void *buf)
{
    /* The device only reads a write's buffer, so dropping const is safe. */
    return rr_blk_request(RR_BLK_OP_WRITE, sector, sectors, (void *)buf);
}

int rr_blk_flush(void) { return rr_blk_request(RR_BLK_OP_FLUSH, 0, 0, NULL); }

const char *rr_blk_status_name(int status)
{
    static const char *const names[] = {
        "ok", "ioerr", "range", "badaddr", "badlen", "badop", "busy", "badindex",
    };
    if (status < 0 || status >= (int)(sizeof(names) / sizeof(names[0])))
        return "unknown";
    return names[status];
}
