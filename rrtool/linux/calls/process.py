"""Identity and process calls: user ids, uname, limits, TLS (arch_prctl), prctl, sysinfo, times (tasks: calls/tasks).

All of these are decided by the kernel from recorded state (the machine record's
ids, fixed names), so none asks the host anything and replay recomputes them.
"""

from __future__ import annotations

import errno
import struct

from unicorn import x86_const as x86

from rrtool.linux.kernel import PID, Call, Kernel, syscall

RLIM_INFINITY = (1 << 64) - 1
#: getrlimit values by resource (RLIMIT_*): stack 8 MiB, 1024 descriptors, the rest unlimited.
_LIMITS = {3: (8 << 20, RLIM_INFINITY), 7: (1024, 1024 * 1024), 4: (0, RLIM_INFINITY)}
ARCH_SET_GS, ARCH_SET_FS, ARCH_GET_FS, ARCH_GET_GS = 0x1001, 0x1002, 0x1003, 0x1004
PR_SET_NAME, PR_GET_NAME, PR_GET_DUMPABLE, PR_SET_VMA = 15, 16, 3, 0x53564D41
#: uname(2) as every rrtool guest sees it.
UTSNAME = (b"Linux", b"rrtool", b"6.1.0-rrtool", b"#1 SMP rrtool", b"x86_64", b"(none)")


@syscall("getuid", "geteuid")
def sys_getuid(k: Kernel, call: Call) -> int:
    return k.config.uid


@syscall("getgid", "getegid")
def sys_getgid(k: Kernel, call: Call) -> int:
    return k.config.gid


@syscall("getresuid", "getresgid")
def sys_getresid(k: Kernel, call: Call) -> int:
    value = k.config.uid if call.ev.syscall == "getresuid" else k.config.gid
    for addr in call.a[:3]:
        k.write(addr, struct.pack("<I", value))
    return 0


@syscall("getgroups")
def sys_getgroups(k: Kernel, call: Call) -> int:
    return 0


@syscall("setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setgroups", "setsid", "setpgid")
def sys_setid(k: Kernel, call: Call) -> int:
    return -errno.EPERM


@syscall("getpgrp", "getpgid", "getsid")
def sys_getpgrp(k: Kernel, call: Call) -> int:
    return PID  # one session and process group: the first process's


@syscall("uname")
def sys_uname(k: Kernel, call: Call) -> int:
    k.write(call.a[0], b"".join(f.ljust(65, b"\0") for f in UTSNAME))
    return 0


@syscall("prlimit64")
def sys_prlimit64(k: Kernel, call: Call) -> int:
    pid, resource, _new, old = call.a[:4]
    if pid not in (0, k.proc.pid):
        return -errno.ESRCH
    if old:
        k.write(old, struct.pack("<QQ", *_LIMITS.get(resource, (RLIM_INFINITY, RLIM_INFINITY))))
    return 0  # a new limit is accepted and changes nothing: the machine's own limits hold


@syscall("getrlimit")
def sys_getrlimit(k: Kernel, call: Call) -> int:
    k.write(call.a[1], struct.pack("<QQ", *_LIMITS.get(call.a[0], (RLIM_INFINITY, RLIM_INFINITY))))
    return 0


@syscall("setrlimit")
def sys_setrlimit(k: Kernel, call: Call) -> int:
    return 0


@syscall("set_robust_list")
def sys_set_robust_list(k: Kernel, call: Call) -> int:
    return 0


@syscall("rseq")
def sys_rseq(k: Kernel, call: Call) -> int:
    return -errno.ENOSYS  # glibc then does without restartable sequences


@syscall("arch_prctl")
def sys_arch_prctl(k: Kernel, call: Call) -> int:
    code, addr = call.a[0], call.a[1]
    emu = k.machine.emu
    if code == ARCH_SET_FS:
        emu.reg_write(x86.UC_X86_REG_FS_BASE, addr)
    elif code == ARCH_SET_GS:
        emu.reg_write(x86.UC_X86_REG_GS_BASE, addr)
    elif code in (ARCH_GET_FS, ARCH_GET_GS):
        reg = x86.UC_X86_REG_FS_BASE if code == ARCH_GET_FS else x86.UC_X86_REG_GS_BASE
        k.write(addr, struct.pack("<Q", emu.reg_read(reg)))
    else:
        return -errno.EINVAL
    return 0


@syscall("prctl")
def sys_prctl(k: Kernel, call: Call) -> int:
    option = call.a[0]
    if option == PR_SET_NAME:
        k.proc.name = k.cstr(call.a[1], 16)[:15]
    elif option == PR_GET_NAME:
        k.write(call.a[1], k.proc.name.ljust(16, b"\0"))
    elif option == PR_GET_DUMPABLE:
        return 1
    elif option != PR_SET_VMA:
        return -errno.EINVAL
    return 0


@syscall("sysinfo")
def sys_sysinfo(k: Kernel, call: Call) -> int:
    m = k.machine
    uptime = m.vclock_at(m.now()) // 1_000_000_000
    ram = m.config.ram_size
    # long uptime; unsigned long loads[3], totalram, freeram, sharedram, bufferram, totalswap, freeswap;
    # unsigned short procs; pad; unsigned long totalhigh, freehigh; unsigned int mem_unit; padding to 112.
    info = struct.pack("<q3Q6QH6xQQI", uptime, 0, 0, 0, ram, ram // 2, 0, 0, 0, 0, 1, 0, 0, 1)
    k.write(call.a[0], info.ljust(112, b"\0"))
    return 0


@syscall("times")
def sys_times(k: Kernel, call: Call) -> int:
    m = k.machine
    ticks = m.now() * m.config.ns_per_insn // 10_000_000  # CLK_TCK 100: CPU time is instructions run
    if call.a[0]:
        k.write(call.a[0], struct.pack("<4q", ticks, 0, 0, 0))
    return m.vclock_at(m.now()) // 10_000_000


@syscall("sched_getaffinity")
def sys_sched_getaffinity(k: Kernel, call: Call) -> int:
    size = call.a[1]
    if size < 8:
        return -errno.EINVAL
    k.write(call.a[2], struct.pack("<Q", 1))
    return 8


@syscall("sched_yield")
def sys_sched_yield(k: Kernel, call: Call) -> int:
    """Another ready task runs first (the scheduler decides at the stop right after this call)."""
    if len(k.threads) > 1:
        k.decide = "the task yielded"
        k.machine.stop_here()
    return 0


@syscall("sched_setaffinity", "setpriority", "mlock", "munlock", "mlockall", "msync")
def sys_nothing(k: Kernel, call: Call) -> int:
    return 0


@syscall("getpriority")
def sys_getpriority(k: Kernel, call: Call) -> int:
    return 20  # nice 0, in the kernel's 40 - nice form


@syscall("getcpu")
def sys_getcpu(k: Kernel, call: Call) -> int:
    for addr in call.a[:2]:
        if addr:
            k.write(addr, bytes(4))
    return 0


@syscall("getrusage")
def sys_getrusage(k: Kernel, call: Call) -> int:
    m = k.machine
    usec = m.now() * m.config.ns_per_insn // 1000
    k.write(call.a[1], struct.pack("<qq", usec // 1_000_000, usec % 1_000_000).ljust(144, b"\0"))
    return 0
