"""System calls by family; each module registers its handlers with `rrtool.linux.kernel.syscall`."""
