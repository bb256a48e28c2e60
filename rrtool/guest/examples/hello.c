/* hello.c - the smallest useful guest: print a greeting and the clock. */
#include "rrtool.h"

int main(void)
{
    rr_puts("Hello from the rrtool guest!\n");
    rr_printf("virtual clock: %lu ns\n", rr_clock_ns());
    return 0;
}
