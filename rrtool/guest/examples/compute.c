/* compute.c - CPU-bound: mix a 1 MiB buffer, print a checksum. */
/*
 * Honest work only (no sleeps, no device reads in the loop), so it measures
 * how fast the machine executes guest code. The result depends on nothing
 * but the code, so it is the same on every run.
 */
#include "rrtool.h"

#define WORDS (1u << 18) /* 2^18 32-bit words = 1 MiB */
#ifndef ROUNDS
#define ROUNDS 72 /* ~21 instructions per word per round (gcc 12 -O2): ~400M */
#endif

static uint32_t buf[WORDS];

/* A cheap integer mixer (xorshift-multiply, as in murmur3's finaliser). */
static inline uint32_t mix32(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x85EBCA6Bu;
    x ^= x >> 13;
    x *= 0xC2B2AE35u;
    x ^= x >> 16;
    return x;
}

int main(void)
{
    uint64_t start = rr_icount();

    /* Fill with a linear congruential generator (Numerical Recipes). */
    uint32_t lcg = 12345;
    for (uint32_t i = 0; i < WORDS; i++) {
        lcg = lcg * 1664525u + 1013904223u;
        buf[i] = lcg;
    }

    /* Each round folds in a word from a round-dependent, far-away index so
     * the whole buffer stays involved and the loop cannot be vectorised
     * away (there is no SIMD anyway: -mgeneral-regs-only). */
    uint32_t acc = 0;
    for (uint32_t r = 0; r < ROUNDS; r++) {
        uint32_t stride = 2 * r + 3; /* odd: j runs over a permutation */
        for (uint32_t i = 0; i < WORDS; i++) {
            uint32_t j = (i * stride + r + 1) & (WORDS - 1);
            /* Mixing i in keeps the state away from mix32's fixed point 0. */
            acc = mix32(acc ^ (buf[i] + i)) + buf[j];
            buf[i] = acc;
        }
    }

    uint64_t sum = 0;
    for (uint32_t i = 0; i < WORDS; i++)
        sum = sum * 31 + buf[i];

    rr_printf("compute: %u rounds over %u KiB, checksum %016lx, acc %08x\n",
              (unsigned)ROUNDS, WORDS * 4 / 1024, sum, acc);
    rr_printf("compute: %lu guest instructions\n", rr_icount() - start);
    return 0;
}
