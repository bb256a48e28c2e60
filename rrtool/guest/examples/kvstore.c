/* kvstore.c - UDP key-value store on port 5555, persisted on the disk. */
/*
 * Requests are single datagrams of text (a trailing newline is ignored):
 *   PUT <key> <value>  -> OK            GET <key> -> VALUE <value> | NOTFOUND
 *   DEL <key>          -> OK | NOTFOUND STATS     -> STATS keys=... boots=...
 *   RESTART            -> RESTARTING, then the guest restarts (rr_reset)
 *   QUIT               -> BYE, then exit 0
 * anything else gets "ERR <reason>". Keys are 1-64 bytes without spaces,
 * values up to 400 bytes (spaces allowed).
 *
 * Disk layout: sector 0 is a header (magic, slot count, boot counter);
 * sectors 1..256 hold one key/value slot each. The whole table is read at
 * start; every PUT or DEL writes its slot and flushes before replying, so an
 * OK means the data is on the disk and a RESTART (or a crash) cannot lose
 * it. A slot carries a checksum so that garbage is never taken for a key.
 */
#include "rrtool.h"

#define KV_PORT 5555
#define SLOTS 256u
#define KEY_MAX 64u
#define VALUE_MAX 400u
#define HEADER_MAGIC "RRKVSTO1"
#define SLOT_MAGIC 0x4C53564Bu /* "KVSL" */

union header {
    struct {
        char magic[8];
        uint32_t slots;
        uint32_t boots;
    } h;
    uint8_t raw[RR_BLK_SECTOR_SIZE];
};

union slot {
    struct {
        uint32_t magic; /* SLOT_MAGIC when in use, 0 when free */
        uint16_t klen, vlen;
        uint32_t check; /* slot_check() of the rest */
        uint8_t key[KEY_MAX];
        uint8_t value[VALUE_MAX];
    } s;
    uint8_t raw[RR_BLK_SECTOR_SIZE];
};
_Static_assert(sizeof(union slot) == RR_BLK_SECTOR_SIZE, "one slot per sector");

static struct rr_blk_desc ring[8];
static union header header;
static union slot table[SLOTS]; /* sector 1 + i holds table[i] */
static uint32_t keys, put_count, get_count, del_count, error_count;
static int quit;

/* ---- Storage ------------------------------------------------------------ */

static uint32_t slot_check(const union slot *sl)
{
    uint32_t h = 2166136261u ^ sl->s.klen ^ (uint32_t)sl->s.vlen << 16; /* FNV-1a */
    for (unsigned i = 0; i < sl->s.klen; i++)
        h = (h ^ sl->s.key[i]) * 16777619u;
    for (unsigned i = 0; i < sl->s.vlen; i++)
        h = (h ^ sl->s.value[i]) * 16777619u;
    return h;
}

static int slot_valid(const union slot *sl)
{
    return sl->s.magic == SLOT_MAGIC && sl->s.klen >= 1 && sl->s.klen <= KEY_MAX
        && sl->s.vlen <= VALUE_MAX && sl->s.check == slot_check(sl);
}

static int disk_failed(const char *what, int status)
{
    rr_printf("kvstore: %s failed: %s\n", what, rr_blk_status_name(status));
    return -1;
}

/* Write sector(s) and flush: a reply goes out only once the data is durable. */
static int write_through(uint64_t sector, uint32_t sectors, const void *buf)
{
    int st = rr_blk_write(sector, sectors, buf);
    if (st != RR_BLK_OK)
        return disk_failed("write", st);
    st = rr_blk_flush();
    if (st != RR_BLK_OK)
        return disk_failed("flush", st);
    return 0;
}

/* Read the table in requests of at most BLK_MAX_SECTORS sectors. */
static int load_table(void)
{
    uint32_t max = rr_blk_max_sectors();
    for (uint32_t done = 0; done < SLOTS;) {
        uint32_t n = SLOTS - done < max ? SLOTS - done : max;
        int st = rr_blk_read(1 + done, n, &table[done]);
        if (st != RR_BLK_OK)
            return disk_failed("read", st);
        done += n;
    }
    return 0;
}

static int open_store(void)
{
    int st = rr_blk_read(0, 1, &header);
    if (st != RR_BLK_OK)
        return disk_failed("read", st);
    if (memcmp(header.h.magic, HEADER_MAGIC, 8) != 0 || header.h.slots != SLOTS) {
        rr_puts("kvstore: no store on this disk; formatting\n");
        memset(&header, 0, sizeof(header));
        memcpy(header.h.magic, HEADER_MAGIC, 8);
        header.h.slots = SLOTS;
        memset(table, 0, sizeof(table));
        uint32_t max = rr_blk_max_sectors();
        for (uint32_t done = 0; done < SLOTS;) {
            uint32_t n = SLOTS - done < max ? SLOTS - done : max;
            if ((st = rr_blk_write(1 + done, n, &table[done])) != RR_BLK_OK)
                return disk_failed("write", st);
            done += n;
        }
    } else if (load_table() != 0) {
        return -1;
    }
    uint32_t corrupt = 0;
    for (unsigned i = 0; i < SLOTS; i++) {
        if (slot_valid(&table[i])) {
            keys++;
        } else {
            if (table[i].s.magic != 0)
                corrupt++;
            memset(&table[i], 0, sizeof(table[i])); /* garbage counts as free */
        }
    }
    if (corrupt)
        rr_printf("kvstore: %u damaged slots ignored\n", corrupt);
    header.h.boots++;
    return write_through(0, 1, &header); /* also makes a fresh format durable */
}

static int find(const uint8_t *key, unsigned klen)
{
    for (unsigned i = 0; i < SLOTS; i++)
        if (table[i].s.magic == SLOT_MAGIC && table[i].s.klen == klen
            && memcmp(table[i].s.key, key, klen) == 0)
            return (int)i;
    return -1;
}

static int find_free(void)
{
    for (unsigned i = 0; i < SLOTS; i++)
        if (table[i].s.magic != SLOT_MAGIC)
            return (int)i;
    return -1;
}

/* ---- Requests ------------------------------------------------------------
 * The payload is bytes with a length, not a C string: a NUL in it is just
 * another byte of a key or value. */

struct span {
    const uint8_t *p;
    unsigned len;
};

/* Split s at its first space: the word before it goes to *word, s keeps
 * the rest after it. Returns 0 if there was no space. */
static int split(struct span *s, struct span *word)
{
    for (unsigned i = 0; i < s->len; i++) {
        if (s->p[i] == ' ') {
            *word = (struct span){ s->p, i };
            *s = (struct span){ s->p + i + 1, s->len - i - 1 };
            return 1;
        }
    }
    *word = *s;
    *s = (struct span){ s->p + s->len, 0 };
    return 0;
}

static int is(struct span w, const char *text)
{
    unsigned n = (unsigned)strlen(text);
    return w.len == n && memcmp(w.p, text, n) == 0;
}

static int has_space(struct span s)
{
    for (unsigned i = 0; i < s.len; i++)
        if (s.p[i] == ' ')
            return 1;
    return 0;
}

/* Reply text; value bytes (if any) are appended verbatim. */
static char reply[16 + VALUE_MAX];
static unsigned reply_len;

static const char *say(const char *text)
{
    reply_len = (unsigned)rr_snprintf(reply, sizeof(reply), "%s", text);
    return text;
}

static const char *check_key(struct span key)
{
    if (key.len == 0)
        return "ERR missing key";
    if (key.len > KEY_MAX)
        return "ERR key too long";
    if (has_space(key))
        return "ERR key has a space";
    return NULL;
}

/* Handle one request; returns a short result for the log. */
static const char *handle(struct span req, struct span *key_out)
{
    struct span cmd, key = { 0, 0 };
    int has_args = split(&req, &cmd);
    const char *bad;

    if (is(cmd, "PUT")) {
        if (!has_args || !split(&req, &key))
            return say("ERR usage: PUT <key> <value>");
        *key_out = key;
        if ((bad = check_key(key)))
            return say(bad);
        if (req.len > VALUE_MAX)
            return say("ERR value too long");
        int i = find(key.p, key.len);
        if (i < 0 && (i = find_free()) < 0)
            return say("ERR store full");
        union slot sl;
        memset(&sl, 0, sizeof(sl));
        sl.s.magic = SLOT_MAGIC;
        sl.s.klen = (uint16_t)key.len;
        sl.s.vlen = (uint16_t)req.len;
        memcpy(sl.s.key, key.p, key.len);
        memcpy(sl.s.value, req.p, req.len);
        sl.s.check = slot_check(&sl);
        if (write_through(1 + (unsigned)i, 1, &sl) != 0)
            return say("ERR disk failure");
        if (table[i].s.magic != SLOT_MAGIC)
            keys++;
        table[i] = sl; /* only once it is on the disk */
        put_count++;
        return say("OK");
    }
    if (is(cmd, "GET") || is(cmd, "DEL")) {
        key = req;
        *key_out = key;
        if ((bad = check_key(key)))
            return say(bad);
        int get = is(cmd, "GET");
        if (get)
            get_count++;
        int i = find(key.p, key.len);
        if (i < 0)
            return say("NOTFOUND");
        if (get) {
            say("VALUE ");
            memcpy(reply + reply_len, table[i].s.value, table[i].s.vlen);
            reply_len += table[i].s.vlen;
            return "VALUE";
        }
        union slot empty;
        memset(&empty, 0, sizeof(empty));
        if (write_through(1 + (unsigned)i, 1, &empty) != 0)
            return say("ERR disk failure");
        table[i] = empty;
        keys--;
        del_count++;
        return say("OK");
    }
    if (!is(cmd, "STATS") && !is(cmd, "RESTART") && !is(cmd, "QUIT"))
        return say("ERR unknown command");
    if (has_args)
        return say("ERR unexpected argument");
    if (is(cmd, "STATS")) {
        reply_len = (unsigned)rr_snprintf(
            reply, sizeof(reply), "STATS keys=%u slots=%u puts=%u gets=%u dels=%u errors=%u boots=%u",
            keys, SLOTS, put_count, get_count, del_count, error_count, header.h.boots);
        return "STATS";
    }
    if (is(cmd, "RESTART"))
        return say("RESTARTING");
    return say("BYE");
}

/* Copy at most size - 1 bytes of s to buf as printable text. */
static void printable(char *buf, unsigned size, struct span s)
{
    unsigned n = s.len < size - 1 ? s.len : size - 1;
    for (unsigned i = 0; i < n; i++)
        buf[i] = s.p[i] >= 0x20 && s.p[i] < 0x7F ? (char)s.p[i] : '.';
    buf[n] = '\0';
}

static void on_request(const struct rr_udp_msg *m)
{
    struct span req = { m->data, m->len }, key = { 0, 0 };
    /* Tools like `echo PUT a b | nc -u` add a newline; it is not data. */
    if (req.len && req.p[req.len - 1] == '\n')
        req.len--;
    if (req.len && req.p[req.len - 1] == '\r')
        req.len--;
    const char *result = handle(req, &key);
    if (result[0] == 'E')
        error_count++;
    rr_udp_reply(m, reply, reply_len);

    /* One log line per request; unprintable bytes of the command word and
     * key are shown as '.' so they cannot garble the console. */
    struct span rest = req, cmd;
    split(&rest, &cmd);
    char shown_cmd[9], shown_key[KEY_MAX + 1];
    printable(shown_cmd, sizeof(shown_cmd), cmd);
    printable(shown_key, sizeof(shown_key), key);
    char ip[16];
    rr_printf("kvstore: %s:%u %s %s -> %s\n", rr_ip_str(m->src_ip, ip), m->src_port, shown_cmd,
              shown_key, result);

    if (strcmp(result, "RESTARTING") == 0) {
        rr_puts("kvstore: restarting\n");
        rr_reset(); /* the reply is already sent: TX completes synchronously */
    }
    if (strcmp(result, "BYE") == 0)
        quit = 1;
}

int main(void)
{
    uint64_t capacity = rr_blk_capacity();
    if (capacity < 1 + SLOTS) {
        rr_printf("kvstore: needs a disk of at least %u sectors (rrtool run kvstore --disk IMAGE)\n",
                  1 + SLOTS);
        return 3;
    }
    if (rr_net_init(0) != 0 || rr_net_ip(0) == 0) {
        rr_puts("kvstore: card 0 missing or without an address (--net user,...)\n");
        return 1;
    }
    rr_blk_init(ring, 8);
    if (open_store() != 0)
        return 1;
    rr_udp_bind(0, KV_PORT, on_request);
    char ip[16];
    rr_printf("kvstore: boot %u, %u keys, listening on %s:%u\n", header.h.boots, keys,
              rr_ip_str(rr_net_ip(0), ip), KV_PORT);
    while (!quit) {
        rr_net_wait(RR_FOREVER);
        rr_net_poll();
    }
    rr_printf("kvstore: bye (%u keys, %u puts, %u gets, %u dels, %u errors)\n", keys, put_count,
              get_count, del_count, error_count);
    return 0;
}
