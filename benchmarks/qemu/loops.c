/*
 * loops.c - the two loops vs_qemu.py times, compiled once into each build.
 *
 * This file is linked, unchanged and with the same flags (rrtool's
 * GUEST_CFLAGS), into both the rrtool SDK guest and the QEMU multiboot
 * kernel. It takes its sizes as arguments and is its own translation unit
 * (no LTO), so gcc cannot fold a constant into it and both builds run the
 * same machine code: the same instructions, one for one. That is what lets
 * one instruction count stand for both sides, and vs_qemu.py checks it
 * against QEMU's own count (rdtsc under -icount shift=0).
 */
#include <stdint.h>

#include "loops.h"

#define WORDS (1u << 18) /* 2^18 32-bit words = 1 MiB, as in compute.c */

static uint32_t buf[WORDS];

/* murmur3's finaliser, as in rrtool/guest/examples/compute.c. */
static inline uint32_t mix32(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x85EBCA6Bu;
    x ^= x >> 13;
    x *= 0xC2B2AE35u;
    x ^= x >> 16;
    return x;
}

/*
 * The memory-heavy loop: compute.c's, verbatim but for the round count
 * being an argument. Each round reads a far-away word and stores one word
 * per iteration over 1 MiB, which is what exercises the store path of an
 * emulator's soft MMU.
 */
uint64_t mem_loop(uint32_t rounds)
{
    uint32_t lcg = 12345;
    for (uint32_t i = 0; i < WORDS; i++) {
        lcg = lcg * 1664525u + 1013904223u;
        buf[i] = lcg;
    }
    uint32_t acc = 0;
    for (uint32_t r = 0; r < rounds; r++) {
        uint32_t stride = 2 * r + 3; /* odd: j runs over a permutation */
        for (uint32_t i = 0; i < WORDS; i++) {
            uint32_t j = (i * stride + r + 1) & (WORDS - 1);
            acc = mix32(acc ^ (buf[i] + i)) + buf[j];
            buf[i] = acc;
        }
    }
    uint64_t sum = 0;
    for (uint32_t i = 0; i < WORDS; i++)
        sum = sum * 31 + buf[i];
    return sum ^ acc;
}

/*
 * The register-only loop: the mixing arithmetic of compute's inner loop with
 * no loads or stores at all (the state lives in registers), so it measures
 * how fast translated code runs when the soft MMU is never involved, the
 * "register-only loop" row of unicorn-notes.md. Two chains (a 64-bit and a
 * 32-bit mixer) so gcc has no closed form to replace the loop with.
 */
uint64_t reg_loop(uint64_t iters)
{
    uint64_t x = 0x9E3779B97F4A7C15ull;
    uint32_t acc = 1;
    for (uint64_t i = 0; i < iters; i++) {
        x ^= x >> 31;
        x *= 0xBF58476D1CE4E5B9ull;
        acc = mix32(acc ^ (uint32_t)i) + (uint32_t)x;
    }
    return x ^ acc;
}
