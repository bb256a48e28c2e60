/*
 * loops.h - the loops of loops.c and the one the build selected.
 *
 * Each build passes -DBENCH_MEM_ROUNDS=N (the memory-heavy loop) or
 * -DBENCH_REG_ITERS=N (the register-only loop); both mains call
 * bench_selected() and print its result with bench_name, so the two builds
 * print the same checksum line for the same loop and size.
 */
#ifndef VS_QEMU_LOOPS_H
#define VS_QEMU_LOOPS_H

#include <stdint.h>

uint64_t mem_loop(uint32_t rounds);
uint64_t reg_loop(uint64_t iters);

#if defined(BENCH_MEM_ROUNDS)
#define BENCH_NAME "mem"
#define BENCH_SIZE ((uint64_t)(BENCH_MEM_ROUNDS))
static inline uint64_t bench_selected(void) { return mem_loop(BENCH_MEM_ROUNDS); }
#elif defined(BENCH_REG_ITERS)
#define BENCH_NAME "reg"
#define BENCH_SIZE ((uint64_t)(BENCH_REG_ITERS))
static inline uint64_t bench_selected(void) { return reg_loop(BENCH_REG_ITERS); }
#else
#error "define BENCH_MEM_ROUNDS or BENCH_REG_ITERS"
#endif

#endif
