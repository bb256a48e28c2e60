"""Clocks and sleeps: wall time is a host value (an event); every other clock is the virtual clock.

CLOCK_REALTIME (and gettimeofday, time) asks the host and is logged, as the
board's RTC is. The monotonic clocks are the machine's virtual clock (icount
times ns_per_insn plus warps), and the CPU-time clocks count instructions, so
neither needs an event. A sleep arms the core's timer and idles: the clock
warps to the deadline (waiting that long when recording, not at all in
replay), exactly like hlt on the board.
"""

from __future__ import annotations

import errno
import struct
import time

from rrtool.linux.kernel import Call, Kernel, syscall

CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID = 0, 1, 2, 3
CLOCK_MONOTONIC_RAW, CLOCK_REALTIME_COARSE, CLOCK_MONOTONIC_COARSE, CLOCK_BOOTTIME = 4, 5, 6, 7
CLOCK_REALTIME_ALARM, CLOCK_BOOTTIME_ALARM, CLOCK_TAI = 8, 9, 11
_WALL = frozenset({CLOCK_REALTIME, CLOCK_REALTIME_COARSE, CLOCK_REALTIME_ALARM, CLOCK_TAI})
_VIRTUAL = frozenset({CLOCK_MONOTONIC, CLOCK_MONOTONIC_RAW, CLOCK_MONOTONIC_COARSE, CLOCK_BOOTTIME,
                      CLOCK_BOOTTIME_ALARM})  # fmt: skip
_CPU = frozenset({CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID})
TIMER_ABSTIME = 1
_NS = 1_000_000_000


def _wall(k: Kernel, call: Call, seconds: bool = False) -> int:
    """Host wall time in ns, as an event (8 bytes of data); the row's result is 0, or the seconds for time()."""

    def now() -> tuple[int, bytes]:
        ns = time.time_ns()
        return (ns // _NS if seconds else 0), struct.pack("<q", ns)

    ret, data = k.host(call, now, max_data=8)
    if data is None or len(data) != 8:
        from rrtool.machine.units import EventRejected

        raise EventRejected(call.ev, "a wall-clock read without its 8-byte time value")
    ns = int(struct.unpack("<q", data)[0])
    if ns < 0 or ret != (ns // _NS if seconds else 0):
        from rrtool.machine.units import EventRejected

        raise EventRejected(call.ev, "a wall-clock result that disagrees with its own time value")
    return ns


def _clock_ns(k: Kernel, call: Call, clock: int) -> int:
    m = k.machine
    if clock in _WALL:
        return _wall(k, call)
    if clock in _VIRTUAL:
        return m.vclock_at(m.now())
    if clock in _CPU:
        return m.now() * m.config.ns_per_insn
    return -1


# Each call checks its buffers before asking the host: a result that is logged must be the one the program
# gets, so no EFAULT may come after the host call.
@syscall("clock_gettime")
def sys_clock_gettime(k: Kernel, call: Call) -> int:
    if call.a[0] in _WALL | _VIRTUAL | _CPU:
        k.check(call.a[1], 16)
    ns = _clock_ns(k, call, call.a[0])
    if ns < 0:
        return -errno.EINVAL
    k.write(call.a[1], struct.pack("<qq", ns // _NS, ns % _NS))
    return 0


@syscall("clock_getres")
def sys_clock_getres(k: Kernel, call: Call) -> int:
    clock = call.a[0]
    if clock not in _WALL | _VIRTUAL | _CPU:
        return -errno.EINVAL
    if call.a[1]:
        coarse = clock in (CLOCK_REALTIME_COARSE, CLOCK_MONOTONIC_COARSE)
        k.write(call.a[1], struct.pack("<qq", 0, 4_000_000 if coarse else 1))
    return 0


@syscall("gettimeofday")
def sys_gettimeofday(k: Kernel, call: Call) -> int:
    if call.a[0]:
        k.check(call.a[0], 16)
    if call.a[1]:
        k.check(call.a[1], 8)
    ns = _wall(k, call)
    if call.a[0]:
        k.write(call.a[0], struct.pack("<qq", ns // _NS, ns % _NS // 1000))
    if call.a[1]:
        k.write(call.a[1], bytes(8))  # struct timezone: UTC
    return 0


@syscall("time")
def sys_time(k: Kernel, call: Call) -> int:
    if call.a[0]:
        k.check(call.a[0], 8)
    seconds = _wall(k, call, seconds=True) // _NS
    if call.a[0]:
        k.write(call.a[0], struct.pack("<q", seconds))
    return seconds


def _timespec(k: Kernel, addr: int) -> int:
    sec, nsec = struct.unpack("<qq", k.read(addr, 16))
    if sec < 0 or not 0 <= nsec < _NS:
        return -1
    return int(sec * _NS + nsec)


@syscall("nanosleep")
def sys_nanosleep(k: Kernel, call: Call) -> int:
    ns = _timespec(k, call.a[0])
    if ns < 0:
        return -errno.EINVAL
    k.sleep(ns)
    return 0


@syscall("clock_nanosleep")
def sys_clock_nanosleep(k: Kernel, call: Call) -> int:
    clock, flags, req = call.a[0], call.a[1], call.a[2]
    ns = _timespec(k, req)
    if ns < 0 or clock not in _WALL | _VIRTUAL | _CPU:
        return -errno.EINVAL
    if flags & TIMER_ABSTIME:
        ns -= _clock_ns(k, call, clock)
    k.sleep(ns)
    return 0
