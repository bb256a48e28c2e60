/* blkstress.c - 8 disk requests in flight: write, verify; bad requests. */
/*
 * Phase 1 writes a pattern derived from each sector's number and a seed over
 * the first REGION_SECTORS of the disk (less if the disk is smaller), keeping
 * INFLIGHT requests of CHUNK sectors in flight; completions arrive in any
 * order. Phase 2 flushes and reads everything back the same way, verifying
 * every byte. The checksum printed depends only on the data, not on the
 * completion order, so it is the same on every run with the same seed.
 *
 * Then (unless built with -DBAD_REQUESTS=0) every kind of malformed request
 * is submitted once and its status printed as "bad <name> status <n>".
 *
 * Exit code: 0 if all went well, 1 on a data mismatch or a failed request,
 * 2 if a bad request got the wrong status, 3 if there is no disk.
 */
#include "rrtool.h"

#ifndef SEED
#define SEED 0x5EEDu
#endif
#ifndef BAD_REQUESTS
#define BAD_REQUESTS 1
#endif
#ifndef REGION_SECTORS
#define REGION_SECTORS 8192u /* 4 MiB; -DREGION_SECTORS=N for another size (bounded by the disk) */
#endif
#define CHUNK 16u            /* sectors per request: 8 KiB */
#define INFLIGHT 8u
#define RING 16u             /* more descriptors than requests in flight */
#define MAX_CHUNKS (REGION_SECTORS / CHUNK)
#define CHUNK_WORDS (CHUNK * RR_BLK_SECTOR_SIZE / 8)

static struct rr_blk_desc ring[RING];
static uint64_t bufs[INFLIGHT][CHUNK_WORDS];
static int buf_busy[INFLIGHT];
static uint64_t chunk_hash[MAX_CHUNKS]; /* folded in chunk order at the end */

static uint32_t submitted, completed, failures, mismatches, out_of_order;
static uint32_t next_expected; /* the chunk that would complete next in submit order */

/* splitmix64's finaliser: a good 64-bit mixer. */
static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 27;
    x *= 0x94D049BB133111EBull;
    x ^= x >> 31;
    return x;
}

static uint64_t pattern(uint64_t sector, unsigned word)
{
    return mix64((uint64_t)SEED << 40 ^ sector << 8 ^ word);
}

static void fill(uint64_t *buf, uint64_t first_sector)
{
    for (unsigned s = 0; s < CHUNK; s++)
        for (unsigned w = 0; w < RR_BLK_SECTOR_SIZE / 8; w++)
            buf[s * (RR_BLK_SECTOR_SIZE / 8) + w] = pattern(first_sector + s, w);
}

/* The tag says which chunk and which buffer a request belongs to. */
static uint64_t make_tag(uint32_t chunk, unsigned b) { return (uint64_t)chunk << 8 | b; }

static void on_done(int index, const struct rr_blk_desc *d)
{
    (void)index;
    uint32_t chunk = (uint32_t)(d->tag >> 8);
    unsigned b = (unsigned)(d->tag & 0xFF);
    completed++;
    if (chunk != next_expected)
        out_of_order++;
    next_expected = chunk + 1;
    if (d->status != RR_BLK_OK) {
        if (failures++ < 5)
            rr_printf("blkstress: %s of sector %lu failed: %s\n",
                      d->op == RR_BLK_OP_READ ? "read" : "write", d->sector,
                      rr_blk_status_name(d->status));
    } else if (d->op == RR_BLK_OP_READ) {
        uint64_t h = 0xCBF29CE484222325ull;
        for (unsigned s = 0; s < CHUNK; s++) {
            for (unsigned w = 0; w < RR_BLK_SECTOR_SIZE / 8; w++) {
                uint64_t v = bufs[b][s * (RR_BLK_SECTOR_SIZE / 8) + w];
                if (v != pattern(d->sector + s, w) && mismatches++ < 5)
                    rr_printf("blkstress: mismatch at sector %lu word %u: %016lx\n",
                              d->sector + s, w, v);
                h = mix64(h ^ v);
            }
        }
        chunk_hash[chunk] = h;
    }
    buf_busy[b] = 0;
}

/* Run one pass (write or read) over nchunks chunks, INFLIGHT at a time. */
static void pass(int op, uint32_t nchunks)
{
    next_expected = 0;
    for (uint32_t chunk = 0; chunk < nchunks;) {
        unsigned b = 0;
        while (b < INFLIGHT && buf_busy[b])
            b++;
        if (b == INFLIGHT) { /* all buffers busy: wait for a completion */
            rr_blk_wait(on_done);
            continue;
        }
        uint64_t sector = (uint64_t)chunk * CHUNK;
        if (op == RR_BLK_OP_WRITE)
            fill(bufs[b], sector);
        if (rr_blk_submit(op, sector, CHUNK, bufs[b], make_tag(chunk, b)) < 0) {
            rr_blk_wait(on_done); /* ring full; cannot happen with RING > INFLIGHT */
            continue;
        }
        buf_busy[b] = 1;
        submitted++;
        chunk++;
    }
    while (rr_blk_in_flight())
        rr_blk_wait(on_done);
}

#if BAD_REQUESTS
/* Submit one malformed request and check the status it completes with. */
static int bad(const char *name, int op, uint64_t sector, uint32_t sectors, void *buf, int want)
{
    int status = rr_blk_request(op, sector, sectors, buf);
    rr_printf("bad %s status %d\n", name, status);
    if (status != want) {
        rr_printf("blkstress: bad %s: expected status %d (%s), got %d (%s)\n", name, want,
                  rr_blk_status_name(want), status, rr_blk_status_name(status));
        return 1;
    }
    return 0;
}

static int bad_requests(uint64_t capacity)
{
    int wrong = 0;
    void *buf = bufs[0];
    uint32_t max = rr_blk_max_sectors();
    wrong += bad("range", RR_BLK_OP_READ, capacity, 1, buf, RR_BLK_RANGE);
    wrong += bad("badaddr", RR_BLK_OP_READ, 0, 1, (void *)0x7FFF00000000ull, RR_BLK_BADADDR);
    wrong += bad("zerolen", RR_BLK_OP_READ, 0, 0, buf, RR_BLK_BADLEN);
    wrong += bad("toolong", RR_BLK_OP_READ, 0, max + 1, buf, RR_BLK_BADLEN);
    wrong += bad("badop", 9, 0, 1, buf, RR_BLK_BADOP);

    /* An index outside the ring cannot complete (there is no descriptor to
     * write to): the device only counts it. */
    uint32_t errors = inl(RR_BLK_ERRORS);
    outl(RR_BLK_SUBMIT, 999);
    uint32_t counted = inl(RR_BLK_ERRORS) - errors;
    int status = (int)inl(RR_BLK_LAST_ERROR);
    rr_printf("bad badindex status %d\n", status);
    if (counted != 1 || status != RR_BLK_BADINDEX) {
        rr_printf("blkstress: bad badindex: expected 1 error with status %d, got %u with %d\n",
                  RR_BLK_BADINDEX, counted, status);
        wrong++;
    }
    return wrong;
}
#endif

int main(void)
{
    uint64_t capacity = rr_blk_capacity();
    if (capacity == 0) {
        rr_puts("blkstress: no disk attached (rrtool run blkstress --disk IMAGE)\n");
        return 3;
    }
    rr_blk_init(ring, RING);
    uint32_t nchunks = (uint32_t)((capacity < REGION_SECTORS ? capacity : REGION_SECTORS) / CHUNK);
    rr_printf("blkstress: disk %lu sectors, testing %u KiB, %u requests of %u KiB in flight\n",
              capacity, nchunks * CHUNK / 2, INFLIGHT, CHUNK / 2);

    uint64_t t0 = rr_clock_ns();
    pass(RR_BLK_OP_WRITE, nchunks);
    int flush = rr_blk_flush();
    if (flush != RR_BLK_OK) {
        rr_printf("blkstress: flush failed: %s\n", rr_blk_status_name(flush));
        failures++;
    }
    uint64_t t1 = rr_clock_ns();
    pass(RR_BLK_OP_READ, nchunks);
    uint64_t t2 = rr_clock_ns();

    uint64_t sum = 0x84222325CBF29CE4ull;
    for (uint32_t i = 0; i < nchunks; i++)
        sum = mix64(sum ^ chunk_hash[i]);
    rr_printf("blkstress: %u requests, %u completed, %u out of order, %u failed, %u mismatches\n",
              submitted, completed, out_of_order, failures, mismatches);
    rr_printf("blkstress: write %lu us, read %lu us (virtual)\n", (t1 - t0) / 1000,
              (t2 - t1) / 1000);
    rr_printf("blkstress: checksum %016lx\n", sum);
    int rc = failures || mismatches ? 1 : 0;

#if BAD_REQUESTS
    if (bad_requests(capacity) && rc == 0)
        rc = 2;
#endif
    rr_printf("blkstress: %s\n", rc == 0 ? "ok" : "FAILED");
    return rc;
}
