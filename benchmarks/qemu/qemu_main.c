/*
 * qemu_main.c - the QEMU side: run the selected loop, print its checksum on
 * the serial port and its instruction count, then end QEMU through
 * isa-debug-exit.
 *
 * Called by boot.S in 64-bit long mode with an identity map. There is no
 * libc, so this file has its own few output routines; they run only after
 * the loop, outside the part both builds share.
 *
 * The instruction count comes from rdtsc: under `-icount shift=0` QEMU's
 * virtual clock advances exactly 1 ns per instruction and rdtsc returns that
 * clock, and rdtsc is an I/O instruction for icount, so the difference of two
 * reads is the exact number of instructions retired between them (plus the
 * few of the reads themselves). Without -icount it is host time and
 * meaningless here; vs_qemu.py reads it from the -icount runs only.
 */
#include <stdint.h>

#include "loops.h"

#define COM1 0x3F8
#define DEBUG_EXIT 0xF4 /* -device isa-debug-exit,iobase=0xf4,iosize=0x04 */

static inline void outb(uint16_t port, uint8_t v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outl(uint16_t port, uint32_t v) { __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port)); }

static inline uint64_t rdtsc(void)
{
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}

/* QEMU's 16550 takes a byte at once, so no need to poll the line status. */
static void put_str(const char *s)
{
    while (*s)
        outb(COM1, (uint8_t)*s++);
}

static void put_dec(uint64_t v)
{
    char tmp[21];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        outb(COM1, (uint8_t)tmp[--n]);
}

static void put_hex16(uint64_t v)
{
    for (int shift = 60; shift >= 0; shift -= 4)
        outb(COM1, (uint8_t)"0123456789abcdef"[(v >> shift) & 0xF]);
}

__attribute__((noreturn)) void kmain(void)
{
    uint64_t start = rdtsc();
    uint64_t sum = bench_selected();
    uint64_t insns = rdtsc() - start;
    put_str("vs_qemu: " BENCH_NAME " ");
    put_dec(BENCH_SIZE);
    put_str(" checksum ");
    put_hex16(sum);
    put_str("\nvs_qemu: loop instructions ");
    put_dec(insns);
    put_str("\n");
    /* isa-debug-exit makes QEMU exit with status (value << 1) | 1: 0 -> 1. */
    outl(DEBUG_EXIT, 0);
    for (;;)
        __asm__ volatile("cli; hlt");
}
