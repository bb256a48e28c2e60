/*
 * rrtool_main.c - the rrtool SDK side: run the selected loop, print its
 * checksum and its exact instruction count (rrtool's ICOUNT register), exit.
 *
 * The checksum line is byte for byte what qemu_main.c prints, so vs_qemu.py
 * can compare the two builds with a string comparison.
 */
#include "rrtool.h"

#include "loops.h"

int main(void)
{
    uint64_t start = rr_icount();
    uint64_t sum = bench_selected();
    uint64_t insns = rr_icount() - start;
    rr_printf("vs_qemu: %s %lu checksum %016lx\n", BENCH_NAME, BENCH_SIZE, sum);
    rr_printf("vs_qemu: loop instructions %lu\n", insns);
    return 0;
}
