/*
 * Native instruction counter for rrtool's Unicorn machine.
 *
 * Why native: a Python hook per block or per instruction runs at 3-10 MIPS,
 * this block hook at hundreds of MIPS. Why a block hook with a table: the
 * instruction count of a translation block is fixed once translated, so we
 * ask Unicorn for it once (uc_ctl TB_REQUEST_CACHE) and add it on every entry.
 *
 * The counter owns every stop, because uc_emu_stop from a device callback
 * aborts the accessing instruction (see shared/unicorn-notes.md):
 *   - soft deadline: stop at the first block boundary at or after it
 *     (periodic checkpoints, device requests: cheap, no retranslation);
 *   - hard deadline: stop exactly at that icount. A block that would cross it
 *     is refused (it does not run); the host then runs the tail of the block
 *     under rr_code_hook, which counts per instruction and stops exactly.
 *
 * Unicorn's symbols are passed in as function pointers (rr_counter_init), so
 * this library links against nothing and loads with plain ctypes.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

typedef struct uc_struct uc_engine;
typedef struct {
    uint64_t pc;
    uint16_t icount;
    uint16_t size;
} uc_tb;

typedef int (*uc_emu_stop_fn)(uc_engine *);
typedef int (*uc_ctl_fn)(uc_engine *, int, ...);
typedef int (*uc_reg_read_fn)(uc_engine *, int, void *);

#define TABLE_BITS 16
#define TABLE_SIZE (1u << TABLE_BITS)
/* The front cache: direct-mapped, 16 bytes a block (4 KiB in all), so a hot loop's blocks stay in L1. */
#define FRONT_BITS 8
#define FRONT_SIZE (1u << FRONT_BITS)
#define NO_DEADLINE UINT64_MAX

/* uc_ctl(UC_CTL_TB_REQUEST_CACHE, read|write, 2 args) as encoded by unicorn.h */
#define CTL_REQUEST_CACHE ((3 << 30) | (2 << 26) | 8)

enum stop_reason {
    STOP_NONE = 0,
    STOP_SOFT = 1,       /* soft deadline reached at a block boundary */
    STOP_HARD = 2,       /* hard deadline reached exactly */
    STOP_HARD_SPLIT = 3, /* next block would cross the hard deadline: run its tail */
    STOP_IRQ = 4,        /* an interrupt waits and the guest has just enabled interrupts */
};

#define IF_FLAG 0x200

enum mode { MODE_BLOCK = 0, MODE_STEP = 1 };

/* A translation block the counter has seen: what Python needs to place an instruction inside it. */
typedef struct rr_block {
    uint64_t addr;
    uint32_t size;          /* bytes; 0: an empty front-cache entry (no block is 0 bytes long) */
    uint32_t n;             /* instructions */
} rr_block;

/* Shared with Python through ctypes (rrtool/machine/icount.py mirrors it). */
typedef struct rr_counter {
    uint64_t icount;        /* instructions retired (block mode: to end of current block) */
    uint64_t gate;          /* min(soft_deadline, hard_deadline), or 0 while step mode or irq_waiting send every
                               block the slow way: a block goes the fast way only if it ends at or before it */
    uint64_t soft_deadline;
    uint64_t hard_deadline;
    rr_block *current;      /* the current (last counted) block: it started at icount - current->n */
    uint64_t last_insn;     /* step mode: address of the last counted instruction */
    uint64_t refused_addr;  /* block refused at the hard deadline */
    uint64_t misses;        /* table misses (translations seen) */
    uint64_t clears;        /* times the table was cleared: the host drops what it cached from code with it */
    uint32_t stop_reason;
    uint32_t mode;
    uint32_t irq_waiting;   /* set by the host while an interrupt is pending with IF clear */
    uint32_t flags_reg;     /* Unicorn's id of RFLAGS */
    uc_emu_stop_fn emu_stop;
    uc_ctl_fn ctl;
    uc_reg_read_fn reg_read;
    rr_block none;          /* `current` before the first block: zero instructions */
    rr_block parked;        /* `current` after a clear of the front cache, until the next block */
    rr_block front[FRONT_SIZE];
    uint64_t keys[TABLE_SIZE];
    uint32_t vals[TABLE_SIZE];
} rr_counter;

uint64_t rr_counter_size(void) { return sizeof(rr_counter); }

void rr_counter_init(rr_counter *c, void *emu_stop, void *ctl, void *reg_read, uint32_t flags_reg)
{
    memset(c, 0, sizeof(*c));
    c->gate = NO_DEADLINE;
    c->soft_deadline = NO_DEADLINE;
    c->hard_deadline = NO_DEADLINE;
    c->current = &c->none;
    c->emu_stop = (uc_emu_stop_fn)emu_stop;
    c->ctl = (uc_ctl_fn)ctl;
    c->reg_read = (uc_reg_read_fn)reg_read;
    c->flags_reg = flags_reg;
}

/* Forget cached block sizes: code at these addresses may have changed. This may run in the middle of a
   block (a store to a page of code), and `current` must still describe that block: it is parked first. */
void rr_counter_clear_table(rr_counter *c)
{
    if (c->current != &c->none) {
        c->parked = *c->current;
        c->current = &c->parked;
    }
    memset(c->front, 0, sizeof(c->front));
    memset(c->keys, 0, sizeof(c->keys));
    c->clears++;
}

static uint32_t table_insns(rr_counter *c, uc_engine *uc, uint64_t addr, uint32_t size, uint64_t key)
{
    uint32_t h = (uint32_t)((key * 0x9E3779B97F4A7C15ull) >> (64 - TABLE_BITS));
    for (uint32_t probe = 0; probe < TABLE_SIZE; probe++) {
        uint32_t i = (h + probe) & (TABLE_SIZE - 1);
        if (c->keys[i] == key)
            return c->vals[i];
        if (c->keys[i] == 0) {
            uc_tb tb;
            memset(&tb, 0, sizeof(tb));
            c->ctl(uc, CTL_REQUEST_CACHE, addr, &tb);
            c->misses++;
            c->keys[i] = key;
            c->vals[i] = tb.icount;
            return tb.icount;
        }
    }
    /* Table full (a huge guest): start over rather than fail. */
    rr_counter_clear_table(c);
    return table_insns(c, uc, addr, size, key);
}

/* key 0 means empty; (addr, size) identifies a translation uniquely enough: a block starting mid-way
   through another one has a different addr. */
static inline uint64_t block_key(uint64_t addr, uint32_t size) { return (addr << 12) ^ size ^ 1; }

static inline rr_block *front_slot(rr_counter *c, uint64_t addr)
{
    return &c->front[(uint32_t)(addr ^ (addr >> FRONT_BITS)) & (FRONT_SIZE - 1)];
}

/* Everything but a known block running well before every deadline: stops, interrupts waiting for IF, step
   mode, and a block not in the front cache. Kept out of line so the fast path saves no registers. */
static __attribute__((noinline)) void block_slow(rr_counter *c, uc_engine *uc, uint64_t addr, uint32_t size)
{
    if (c->mode != MODE_BLOCK)
        return;
    if (c->icount >= c->hard_deadline) {
        c->stop_reason = STOP_HARD;
        c->emu_stop(uc);
        return;
    }
    if (c->icount >= c->soft_deadline) {
        c->stop_reason = STOP_SOFT;
        c->emu_stop(uc);
        return;
    }
    if (c->irq_waiting) {
        /* Only while an interrupt waits for IF: one register read per block, so sti (which ends
           its translation block) is followed by delivery at once, as on a real CPU. */
        uint64_t flags = 0;
        c->reg_read(uc, (int)c->flags_reg, &flags);
        if (flags & IF_FLAG) {
            c->stop_reason = STOP_IRQ;
            c->emu_stop(uc);
            return;
        }
    }
    rr_block *b = front_slot(c, addr);
    if (b->addr != addr || b->size != size) {
        /* The entry may be `current` (a block at another address in the same slot): it is rewritten only
           now, when the block it described has ended. */
        b->n = table_insns(c, uc, addr, size, block_key(addr, size));
        b->addr = addr;
        b->size = size;
    }
    if (c->icount + b->n > c->hard_deadline) {
        c->stop_reason = STOP_HARD_SPLIT;
        c->refused_addr = addr;
        c->emu_stop(uc);
        return;
    }
    c->current = b;
    c->icount += b->n;
}

/*
 * The block hook: Unicorn calls it directly from translated code at the start of every block (a single
 * UC_HOOK_BLOCK hook is inlined as a plain call; a second one would go through a generic helper).
 *
 * Why this shape: it runs once per executed block, hundreds of millions of times a second on a
 * register-only loop, and on short blocks it is a measurable part of the whole run (benchmarks/machine.py:
 * rrtool run against Unicorn set up the same way without counting, rows c. and a3.). So its fast path is
 * one front-cache probe that compares the entry with the arguments as they come (a hot loop's blocks stay
 * in L1; the 768 KiB table behind it is probed only on a miss) and one compare of the block's end with
 * `gate`, which folds both deadlines, step mode and a waiting interrupt into one; then two stores. A block
 * that ends past `gate` takes the slow path, which decides: it stops (a deadline was reached or would be
 * crossed) or counts the block as usual.
 */
void rr_block_hook(uc_engine *uc, uint64_t addr, uint32_t size, void *user)
{
    rr_counter *c = (rr_counter *)user;
    rr_block *b = front_slot(c, addr);
    uint64_t next = c->icount + b->n;
    if (__builtin_expect(b->addr == addr && b->size == size && next <= c->gate, 1)) {
        c->icount = next;
        c->current = b;
        return;
    }
    block_slow(c, uc, addr, size);
}

void rr_code_hook(uc_engine *uc, uint64_t addr, uint32_t size, void *user)
{
    rr_counter *c = (rr_counter *)user;
    (void)size;
    if (c->mode != MODE_STEP)
        return;
    if (c->icount >= c->hard_deadline) {
        c->stop_reason = STOP_HARD;
        c->emu_stop(uc);
        return;
    }
    c->icount++;
    c->last_insn = addr;
}

/*
 * The TLB fill callback (UC_HOOK_TLB_FILL, with uc_ctl_set_tlb_mode(UC_TLB_VIRTUAL)).
 *
 * Why: with Unicorn 2.1.4's default TLB every entry is readable, writable and executable, and a store
 * to a page whose entry is executable goes through the softmmu slow path on every store, forever
 * (notdirty_write never clears TLB_NOTDIRTY while the entry has a code mapping): about 6x on
 * memory-heavy guests. Here each page is mapped identity with either R|X or R|W, never both, so
 * data stores stay on the fast path. Which one is the page policy (see rrtool/machine/pages.py):
 *   - PAGE_DATA (the image's non-executable segments): R|W; a fetch is refused (NX, as on real
 *     hardware) unless it is the translator decoding on past the end of a block that starts on
 *     another page (it reads bytes it may never run: refusing would fault correct code that ends
 *     right before the page, as the guard page above RAM exists for); such a page becomes
 *     PAGE_DATA_DECODED until its next store, which forgets the counter's cached block sizes;
 *   - PAGE_WRITE / PAGE_EXEC (code segments and RAM outside the image): W^X, switched on the access
 *     that misses: a store makes the page R|W, a fetch makes it R|X again. Unicorn invalidates the
 *     page's translations on the first store to it (its self-modifying-code path), and a switch back
 *     to executable forgets the counter's cached block sizes, since the code there may have changed.
 *   - PAGE_NONE (the Linux platform's unmapped pages): every access is refused, so a wild pointer
 *     faults as it would on Linux; the translator may decode into one past a block's page (granted,
 *     as for data pages) but a jump to it, a read and a write are refused and named in `refused`.
 * Outside RAM a store is refused, so it faults at the access itself (the machine turns off the exit
 * check after each access that a store to unmapped memory otherwise relies on: exit_checks.py). Loads
 * and fetches there are granted everything: the region's own permissions and the invalid-memory hooks
 * (limited to outside RAM) then stop at the access and report them as before.
 * This is called only on a TLB miss (a few hundred times in a run), so it costs nothing measurable.
 */
typedef struct {
    uint64_t paddr;
    uint32_t perms;
} uc_tlb_entry;

#define UC_MEM_READ 16
#define UC_MEM_WRITE 17
#define UC_MEM_FETCH 18
#define PROT_READ 1
#define PROT_WRITE 2
#define PROT_EXEC 4
#define PAGE_MASK (~(uint64_t)0xfff)

/* PAGE_DATA_DECODED: a data page the translator decoded into (see rr_tlb_fill); it still refuses jumps. */
enum page_kind { PAGE_DATA = 0, PAGE_WRITE = 1, PAGE_EXEC = 2, PAGE_DATA_DECODED = 3, PAGE_NONE = 4 };
/* What `refused` says was refused. */
enum refusal { REFUSED_NONE = 0, REFUSED_FETCH = 1, REFUSED_READ = 2, REFUSED_WRITE = 3 };
/* Where the RAM of every address space but the first is mapped (rrtool/machine/pages.py SPACES_START). */
#define SPACES_START (1ULL << 48)

/* Shared with Python through ctypes (rrtool/machine/pages.py mirrors it). */
typedef struct rr_pages {
    uint64_t base;          /* RAM is [base, limit) */
    uint64_t limit;
    uint64_t refused_addr;  /* the address of the last refused access (valid while refused != 0) */
    uint64_t fills;         /* calls, for tests and benchmarks */
    uint64_t to_exec;       /* W -> X switches */
    uint64_t to_write;      /* X -> W switches */
    uint32_t refused;       /* enum refusal of the last refused access; the host clears it */
    uint32_t rip_reg;       /* Unicorn's id of RIP */
    uint64_t offset;        /* RAM page `addr` is physical `addr + offset`: which address space runs (Linux tasks) */
    rr_counter *counter;
    uint8_t *kinds;         /* one enum page_kind per page of [base, limit) */
    uint8_t *dirty;         /* NULL, or one byte per page set on its first store since the host cleared it */
} rr_pages;

uint64_t rr_pages_size(void) { return sizeof(rr_pages); }

void rr_pages_init(rr_pages *p, rr_counter *counter, uint8_t *kinds, uint64_t base, uint64_t limit, uint32_t rip_reg)
{
    memset(p, 0, sizeof(*p));
    p->counter = counter;
    p->kinds = kinds;
    p->base = base;
    p->limit = limit;
    p->rip_reg = rip_reg;
}

/*
 * Dirty tracking for snapshots (rrtool/machine/snapshot.py): while `dirty` is set, a read fill of a
 * clean page grants no write, so the page's first store after the host flushed the TLB comes back
 * here as a write fill and marks it. Stores from the host (device DMA, system call results) do not
 * pass the TLB; the machine marks those itself (Pages.mark_dirty).
 */
void rr_pages_track(rr_pages *p, uint8_t *dirty) { p->dirty = dirty; }

bool rr_tlb_fill(uc_engine *uc, uint64_t addr, int type, uc_tlb_entry *e, void *user)
{
    rr_pages *p = (rr_pages *)user;
    uint64_t full_addr = addr;
    p->fills++;
    addr &= PAGE_MASK;
    e->paddr = addr;
    if (addr >= SPACES_START) {
        /* Guest-physical memory from here on holds the other address spaces (Linux processes): no virtual
           address may reach it by the identity mapping below. */
        p->refused = type == UC_MEM_FETCH ? REFUSED_FETCH : type == UC_MEM_WRITE ? REFUSED_WRITE : REFUSED_READ;
        p->refused_addr = full_addr;
        return false;
    }
    if (addr < p->base || addr >= p->limit) {
        if (type == UC_MEM_WRITE) {
            /* A store outside RAM is refused here, so Unicorn raises the fault at the access itself.
               Past the fill, a store to unmapped memory only sets a flag that the exit check after each
               access reads, and the machine turns those checks off (exit_checks.py). The fill sees only
               the page; the machine names the exact address (pages.access_target). */
            p->refused = REFUSED_WRITE;
            p->refused_addr = full_addr;
            return false;
        }
        /* A load or a jump there: Unicorn's read or fetch of unmapped memory (or of the guard page) stops
           at the access and reports its exact address. */
        e->perms = PROT_READ | PROT_WRITE | PROT_EXEC;
        return true;
    }
    e->paddr = addr + p->offset;
    uint8_t *kind = &p->kinds[(addr - p->base) >> 12];
    if (*kind == PAGE_NONE) {
        uint64_t rip = 0;
        p->counter->reg_read(uc, (int)p->rip_reg, &rip);
        if (type == UC_MEM_FETCH && (rip & PAGE_MASK) != addr) {
            e->perms = PROT_READ | PROT_EXEC;  /* the translator decoding on past a block's page */
            return true;
        }
        p->refused = type == UC_MEM_FETCH ? REFUSED_FETCH : type == UC_MEM_WRITE ? REFUSED_WRITE : REFUSED_READ;
        p->refused_addr = full_addr;
        return false;
    }
    if (type == UC_MEM_FETCH) {
        if (*kind == PAGE_DATA || *kind == PAGE_DATA_DECODED) {
            /* While a block is translated RIP is its first instruction: a fetch from RIP's own page is
               a jump into data; from another page, the translator decoding on past a block's page. */
            uint64_t rip = 0;
            p->counter->reg_read(uc, (int)p->rip_reg, &rip);
            if ((rip & PAGE_MASK) == addr) {
                p->refused = REFUSED_FETCH;
                p->refused_addr = addr;
                return false;
            }
            *kind = PAGE_DATA_DECODED;
        } else if (*kind == PAGE_WRITE) {
            *kind = PAGE_EXEC;
            p->to_exec++;
            rr_counter_clear_table(p->counter);
        }
        e->perms = PROT_READ | PROT_EXEC;
        return true;
    }
    if (type == UC_MEM_WRITE) {
        if (*kind == PAGE_DATA_DECODED) {
            /* A block decoded from these bytes is dropped by this store; its retranslation must not
               reuse the cached count of the old bytes. */
            *kind = PAGE_DATA;
            rr_counter_clear_table(p->counter);
        } else if (*kind == PAGE_EXEC) {
            *kind = PAGE_WRITE;
            p->to_write++;
        }
        if (p->dirty)
            p->dirty[(addr - p->base) >> 12] = 1;
        e->perms = PROT_READ | PROT_WRITE;
        return true;
    }
    if (*kind == PAGE_EXEC)
        e->perms = PROT_READ | PROT_EXEC;
    else if (p->dirty && !p->dirty[(addr - p->base) >> 12])
        e->perms = PROT_READ;  /* the first store refills, and marks the page */
    else
        e->perms = PROT_READ | PROT_WRITE;
    return true;
}
