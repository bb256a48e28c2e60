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

/* Shared with Python through ctypes (rrtool/machine/icount.py mirrors it). */
typedef struct rr_counter {
    uint64_t icount;        /* instructions retired (block mode: to end of current block) */
    uint64_t soft_deadline;
    uint64_t hard_deadline;
    uint64_t block_start;   /* icount before the current block */
    uint64_t block_addr;    /* address of the current (last counted) block */
    uint64_t last_insn;     /* step mode: address of the last counted instruction */
    uint64_t refused_addr;  /* block refused at the hard deadline */
    uint64_t misses;        /* table misses (translations seen) */
    uint32_t block_size;
    uint32_t block_insns;
    uint32_t stop_reason;
    uint32_t mode;
    uint32_t irq_waiting;   /* set by the host while an interrupt is pending with IF clear */
    uint32_t flags_reg;     /* Unicorn's id of RFLAGS */
    uc_emu_stop_fn emu_stop;
    uc_ctl_fn ctl;
    uc_reg_read_fn reg_read;
    uint64_t keys[TABLE_SIZE];
    uint32_t vals[TABLE_SIZE];
} rr_counter;

uint64_t rr_counter_size(void) { return sizeof(rr_counter); }

void rr_counter_init(rr_counter *c, void *emu_stop, void *ctl, void *reg_read, uint32_t flags_reg)
{
    memset(c, 0, sizeof(*c));
    c->soft_deadline = NO_DEADLINE;
    c->hard_deadline = NO_DEADLINE;
    c->emu_stop = (uc_emu_stop_fn)emu_stop;
    c->ctl = (uc_ctl_fn)ctl;
    c->reg_read = (uc_reg_read_fn)reg_read;
    c->flags_reg = flags_reg;
}

/* Forget cached block sizes: code at these addresses may have changed. */
void rr_counter_clear_table(rr_counter *c) { memset(c->keys, 0, sizeof(c->keys)); }

static uint32_t block_insns(rr_counter *c, uc_engine *uc, uint64_t addr, uint32_t size)
{
    /* key 0 means empty; (addr, size) identifies a translation uniquely enough:
       a block starting mid-way through another one has a different addr. */
    uint64_t key = (addr << 12) ^ size ^ 1;
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
    return block_insns(c, uc, addr, size);
}

void rr_block_hook(uc_engine *uc, uint64_t addr, uint32_t size, void *user)
{
    rr_counter *c = (rr_counter *)user;
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
    uint32_t n = block_insns(c, uc, addr, size);
    if (c->icount + n > c->hard_deadline) {
        c->stop_reason = STOP_HARD_SPLIT;
        c->refused_addr = addr;
        c->emu_stop(uc);
        return;
    }
    c->block_start = c->icount;
    c->block_addr = addr;
    c->block_size = size;
    c->block_insns = n;
    c->icount += n;
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
