"""getrandom: host randomness, so an event whose bytes are in the trace (like reads of /dev/urandom)."""

from __future__ import annotations

import errno
import os

from rrtool.linux.kernel import Call, Kernel, syscall

#: One call returns at most this much (Linux returns at most 32 MiB - 1 per call too).
MAX_RANDOM = (32 << 20) - 1
GRND_NONBLOCK, GRND_RANDOM, GRND_INSECURE = 1, 2, 4


@syscall("getrandom")
def sys_getrandom(k: Kernel, call: Call) -> int:
    buf, count, flags = call.a[0], min(call.a[1], MAX_RANDOM), call.a[2]
    if flags & ~(GRND_NONBLOCK | GRND_RANDOM | GRND_INSECURE):
        return -errno.EINVAL
    k.check(buf, count)
    got = k.host_bytes(call, lambda: (count, os.urandom(count)), count)
    if isinstance(got, int):
        return got
    k.write(buf, got)
    return len(got)
