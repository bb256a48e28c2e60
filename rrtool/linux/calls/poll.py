"""Waiting for descriptors: poll, ppoll, select, pselect6 and epoll, over sockets, pipes, stdin and files.

Readiness has two sources. Host objects (sockets, stdin) are asked on the host
inside one host call, and what it said (the revents of each host descriptor,
two bytes apiece, in the order the call lists them) is the row's data; replay
takes it from the trace. The kernel's own objects are computed in every mode:
a pipe from its buffer and its other end, a regular file, a directory and
/dev/null are always ready, stdout and stderr always writable. The row's
result is the call's own result (how many are ready), which replay checks
against the revents it was given, so a trace cannot claim more than it shows.

A wait with nothing ready blocks. With host descriptors in the set, the host
call itself waits (polling in 0.1 s slices, so a stop request still ends it
with EINTR) for up to the timeout; the wait takes no virtual time and replay
does not wait at all, since the outcome is in the row. When the timeout ran
out with nothing ready, virtual time moves on by the timeout at once
(`Kernel.waited`: the host already waited it out, so there is no second idle
wait), and a program that times out sees time move as it would on Linux. A
wait on kernel objects alone with a timeout is an idle warp (`Kernel.sleep`),
like nanosleep. A wait on kernel objects alone
that nothing can end (no timeout, and no host object) is a fault that ends
the run, as an empty pipe's blocking read is.

Signal masks (ppoll, pselect6, epoll_pwait) are read past: no signal arrives
asynchronously yet. epoll is level-triggered even for EPOLLET (a program that
drains to EAGAIN, as edge-triggered programs must, sees the same data);
EPOLLONESHOT disarms an entry once it was reported.
"""

from __future__ import annotations

import errno
import functools
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rrtool.linux.calls.net import fd_arg, host_wait
from rrtool.linux.calls.pipes import is_pipe, pipe_ready
from rrtool.linux.fds import O_CLOEXEC, O_RDWR, Errno, OpenFile
from rrtool.linux.kernel import Blocked, Call, Kernel, syscall
from rrtool.machine.units import EventRejected

POLLIN, POLLPRI, POLLOUT, POLLERR, POLLHUP, POLLNVAL = 0x1, 0x2, 0x4, 0x8, 0x10, 0x20
POLLRDNORM, POLLRDBAND, POLLWRNORM, POLLWRBAND, POLLRDHUP = 0x40, 0x80, 0x100, 0x200, 0x2000
_ALWAYS = POLLERR | POLLHUP | POLLNVAL
#: What a host poll is asked for (the rest of a request is mapped onto these or ignored).
_HOST_EVENTS = POLLIN | POLLPRI | POLLOUT | POLLRDHUP
EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD = 1, 2, 3
EPOLLONESHOT, EPOLLET = 1 << 30, 1 << 31
#: struct epoll_event on x86-64 is packed: u32 events, u64 data.
_EPOLL_EVENT = struct.Struct("<IQ")
MAX_WATCHES = 1024
_NS = 1_000_000_000
#: Kinds whose contents are always there to read and write (no waiting on them).
_ALWAYS_READY = frozenset({"file", "dir", "exe", "null", "zero", "urandom"})


@dataclass
class Watch:
    """One descriptor a call waits on: what is asked (poll bits) and the open file (None: not open)."""

    fd: int
    events: int
    file: OpenFile | None


class _AnyOf:
    """What a poll over several pipes waits for: its `version` moves when any of theirs does."""

    def __init__(self, pipes: list[Any]) -> None:
        self.pipes = pipes

    @property
    def version(self) -> int:
        return sum(int(p.version) for p in self.pipes)

    def __repr__(self) -> str:
        return f"any of {len(self.pipes)} pipe(s)"


def _wanted(events: int) -> int:
    """Poll bits in the forms Linux treats alike (RDNORM is IN, WRNORM is OUT), for comparing with revents."""
    out = events & (POLLIN | POLLPRI | POLLOUT | POLLRDHUP)
    out |= POLLIN if events & (POLLRDNORM | POLLRDBAND) else 0
    out |= POLLOUT if events & (POLLWRNORM | POLLWRBAND) else 0
    return out


def _local(k: Kernel, w: Watch) -> int | None:
    """revents of a kernel object, or None for a host object (a socket, stdin)."""
    file = w.file
    if file is None:
        return POLLNVAL
    wanted = _wanted(w.events) | _ALWAYS
    if file.kind in ("socket", "stdin"):
        return None
    if is_pipe(file):
        return pipe_ready(file) & wanted
    if file.kind in ("stdout", "stderr"):
        return POLLOUT & wanted
    if file.kind in _ALWAYS_READY:
        return (POLLIN | POLLOUT) & wanted
    return 0  # an epoll descriptor inside a wait: never ready (nested epoll is not modelled)


def _host_fd(k: Kernel, file: OpenFile) -> int | None:
    """The host descriptor behind a socket or stdin (live only); None for a stdin that is not attached."""
    if file.kind == "stdin":
        return k.stdin_fd
    sock = file.extra.get("sock")
    assert sock is not None, "host sockets exist only in a live run"
    fd: int = sock.fileno()
    return fd


def wait_ready(k: Kernel, call: Call, watches: list[Watch], timeout_ns: int | None,
               result: Callable[[list[int]], int]) -> list[int] | int:  # fmt: skip
    """The revents of every watch (after waiting, if nothing is ready), or -errno; `result` is the call's result.

    `result(revents)` must be what the call returns for those revents: it is the row's result, which is
    why a host call computes it (the handler returns exactly what the row says).
    """
    local = [_local(k, w) for w in watches]
    host = [i for i, r in enumerate(local) if r is None]
    ready_here = any(local[i] for i in range(len(watches)) if local[i] is not None)
    if not host:
        revents = [r or 0 for r in local]
        if result(revents) == 0 and timeout_ns != 0:
            if timeout_ns is None:
                pipes = [w.file.extra["pipe"] for w in watches if w.file is not None and is_pipe(w.file)]
                # Until one of its pipes changes (another task writes or closes); alone, that is a hang.
                k.task.block(f"{call.ev.syscall} on {len(pipes)} pipe(s)", _AnyOf(pipes))
                raise Blocked()
            else:
                k.sleep(timeout_ns)
        return revents

    def merged(host_revents: list[int]) -> list[int]:
        out = [r or 0 for r in local]
        for i, r in zip(host, host_revents, strict=True):
            out[i] = r
        return out

    def perform() -> tuple[int, bytes]:
        found: list[int] = [0] * len(host)
        asked: list[tuple[int, int]] = []
        where: list[int] = []
        for j, i in enumerate(host):
            file, wanted = watches[i].file, _wanted(watches[i].events) & _HOST_EVENTS
            assert file is not None
            fd = _host_fd(k, file)
            if fd is None:
                found[j] = POLLIN & wanted  # no stdin attached: end of file, readable at once
            else:
                asked.append((fd, wanted))
                where.append(j)
        wait = 0 if ready_here or any(found) else timeout_ns
        for j, r in zip(where, host_wait(k, asked, wait) if asked else [], strict=True):
            found[j] = r
        return result(merged(found)), struct.pack(f"<{len(found)}H", *found)

    ret, data = k.host(call, perform, max_data=2 * len(host), max_ret=MAX_WATCHES * 3)
    if ret < 0:
        return ret
    if data is None or len(data) != 2 * len(host):
        raise EventRejected(call.ev, "a wait whose readiness does not cover the descriptors it waited on")
    got = list(struct.unpack(f"<{len(host)}H", data))
    for i, r in zip(host, got, strict=True):
        if r & ~(_wanted(watches[i].events) | _ALWAYS):
            raise EventRejected(call.ev, f"descriptor {watches[i].fd} ready for events it was not asked for")
    revents = merged(got)
    if result(revents) != ret:
        raise EventRejected(call.ev, "a wait whose result is not the number of descriptors it says are ready")
    if ret == 0 and timeout_ns:
        k.waited(timeout_ns)  # the host waited the timeout out already: virtual time catches up, no second wait
    return revents


def _timespec(k: Kernel, addr: int) -> int | None:
    """A relative timeout (struct timespec) in ns, None for NULL (no limit); EINVAL if malformed."""
    if not addr:
        return None
    sec, nsec = struct.unpack("<qq", k.read(addr, 16))
    if sec < 0 or not 0 <= nsec < _NS:
        raise Errno(errno.EINVAL)
    return int(sec * _NS + nsec)


def _ms(value: int) -> int | None:
    value &= 0xFFFFFFFF
    return None if value & 0x80000000 else value * 1_000_000


# -- poll ----------------------------------------------------------------------------
def _poll(k: Kernel, call: Call, addr: int, nfds: int, timeout_ns: int | None) -> int:
    if nfds > MAX_WATCHES:
        return -errno.EINVAL
    raw = bytearray(k.read(addr, 8 * nfds))
    watches, slots = [], []
    for i in range(nfds):
        fd, events, _ = struct.unpack_from("<ihh", raw, 8 * i)
        struct.pack_into("<h", raw, 8 * i + 6, 0)
        if fd < 0:
            continue  # ignored, its revents 0
        watches.append(Watch(fd, events & 0xFFFF, _open_file(k, fd)))
        slots.append(i)
    got = wait_ready(k, call, watches, timeout_ns, lambda rs: sum(1 for r in rs if r))
    if isinstance(got, int):
        return got
    for i, r in zip(slots, got, strict=True):
        struct.pack_into("<H", raw, 8 * i + 6, r)
    k.write(addr, bytes(raw))
    return sum(1 for r in got if r)


@syscall("poll")
def sys_poll(k: Kernel, call: Call) -> int:
    return _poll(k, call, call.a[0], call.a[1], _ms(call.a[2]))


@syscall("ppoll")
def sys_ppoll(k: Kernel, call: Call) -> int:
    tsp = call.a[2]
    ret = _poll(k, call, call.a[0], call.a[1], _timespec(k, tsp))
    if ret == 0 and tsp:
        k.write(tsp, bytes(16))  # the time left: none
    return ret


# -- select ------------------------------------------------------------------------------
_SET_EVENTS = (POLLIN, POLLOUT, POLLPRI)
#: What counts as ready in each set, as Linux's select reads revents.
_SET_READY = (POLLIN | POLLHUP | POLLERR, POLLOUT | POLLERR, POLLPRI)


def _select(k: Kernel, call: Call, nfds: int, sets: tuple[int, int, int], timeout_ns: int | None) -> int:
    nfds &= 0xFFFFFFFF
    if nfds > MAX_WATCHES:
        return -errno.EINVAL
    words = (nfds + 63) // 64
    bits = [int.from_bytes(k.read(p, 8 * words), "little") if p and words else 0 for p in sets]
    for p in sets:
        if p and words:
            k.check(p, 8 * words)
    watches: list[Watch] = []
    for fd in range(nfds):
        events = 0
        for which, mask in enumerate(_SET_EVENTS):
            if bits[which] >> fd & 1:
                events |= mask
        if events:
            watches.append(Watch(fd, events, k.fds.file(fd)))  # a descriptor that is not open: EBADF

    def marks(revents: list[int]) -> list[int]:
        out = [0, 0, 0]
        for w, r in zip(watches, revents, strict=True):
            for which, ready in enumerate(_SET_READY):
                if w.events & _SET_EVENTS[which] and r & ready:
                    out[which] |= 1 << w.fd
        return out

    got = wait_ready(k, call, watches, timeout_ns, lambda rs: sum(m.bit_count() for m in marks(rs)))
    if isinstance(got, int):
        return got
    out = marks(got)
    for p, m in zip(sets, out, strict=True):
        if p and words:
            k.write(p, m.to_bytes(8 * words, "little"))
    return sum(m.bit_count() for m in out)


@syscall("select")
def sys_select(k: Kernel, call: Call) -> int:
    tv = call.a[4]
    timeout_ns = None
    if tv:
        sec, usec = struct.unpack("<qq", k.read(tv, 16))
        if sec < 0 or usec < 0:
            return -errno.EINVAL
        timeout_ns = sec * _NS + usec * 1000
    ret = _select(k, call, call.a[0], (call.a[1], call.a[2], call.a[3]), timeout_ns)
    if ret == 0 and tv:
        k.write(tv, bytes(16))
    return ret


@syscall("pselect6")
def sys_pselect6(k: Kernel, call: Call) -> int:
    tsp = call.a[4]
    ret = _select(k, call, call.a[0], (call.a[1], call.a[2], call.a[3]), _timespec(k, tsp))
    if ret == 0 and tsp:
        k.write(tsp, bytes(16))
    return ret


# -- epoll ----------------------------------------------------------------------------------
@dataclass
class Interest:
    """One entry of an epoll set: the open file it was added with, the events asked, the user's data."""

    file: OpenFile
    events: int
    data: int


def _interest_digest(interest: dict[int, Interest]) -> str:
    return ",".join(f"{n}:{i.events:x}:{i.data:x}" for n, i in sorted(interest.items()))


def _new_epoll(k: Kernel, call: Call, cloexec: bool) -> int:
    fd = k.fds.lowest_free()
    file = OpenFile("epoll", "anon_inode:[eventpoll]", O_RDWR)
    interest: dict[int, Interest] = {}
    file.extra["interest"] = interest
    file.extra["digest"] = functools.partial(_interest_digest, interest)  # a partial survives a snapshot's copy
    call.ev.fd = fd
    return k.fds.install(fd, file, cloexec)


@syscall("epoll_create")
def sys_epoll_create(k: Kernel, call: Call) -> int:
    if call.a[0] & 0xFFFFFFFF == 0 or call.a[0] & 0x80000000:
        return -errno.EINVAL
    return _new_epoll(k, call, False)


@syscall("epoll_create1")
def sys_epoll_create1(k: Kernel, call: Call) -> int:
    flags = call.a[0] & 0xFFFFFFFF
    if flags & ~O_CLOEXEC:
        return -errno.EINVAL
    return _new_epoll(k, call, bool(flags))


def _interest(k: Kernel, epfd: int) -> dict[int, Interest]:
    file = k.fds.file(epfd)
    if file.kind != "epoll":
        raise Errno(errno.EINVAL)
    table: dict[int, Interest] = file.extra["interest"]
    return table


@syscall("epoll_ctl")
def sys_epoll_ctl(k: Kernel, call: Call) -> int:
    epfd, op, fd, ptr = fd_arg(call.a[0]), call.a[1] & 0xFFFFFFFF, fd_arg(call.a[2]), call.a[3]
    call.ev.fd = fd
    table = _interest(k, epfd)
    target = k.fds.file(fd)
    if fd == epfd:
        return -errno.EINVAL
    if target.kind in _ALWAYS_READY:
        return -errno.EPERM  # as on Linux: regular files and directories cannot be watched by epoll
    if op == EPOLL_CTL_DEL:
        if fd not in table:
            return -errno.ENOENT
        del table[fd]
        return 0
    if op not in (EPOLL_CTL_ADD, EPOLL_CTL_MOD):
        return -errno.EINVAL
    events, data = _EPOLL_EVENT.unpack(k.read(ptr, _EPOLL_EVENT.size))
    if op == EPOLL_CTL_ADD:
        if fd in table and table[fd].file is target:
            return -errno.EEXIST
        table[fd] = Interest(target, events, data)
        return 0
    if fd not in table:
        return -errno.ENOENT
    table[fd] = Interest(target, events, data)
    return 0


def _open_file(k: Kernel, fd: int) -> OpenFile | None:
    try:
        return k.fds.file(fd)
    except Errno:
        return None


def _epoll_wait(k: Kernel, call: Call, timeout_ns: int | None) -> int:
    epfd, out, maxevents = fd_arg(call.a[0]), call.a[1], call.a[2] & 0xFFFFFFFF
    call.ev.fd = epfd
    table = _interest(k, epfd)
    if maxevents == 0 or maxevents & 0x80000000:
        return -errno.EINVAL
    k.check(out, _EPOLL_EVENT.size * min(maxevents, MAX_WATCHES))
    for fd in [fd for fd, it in table.items() if _open_file(k, fd) is not it.file]:
        del table[fd]  # closed since it was added: Linux drops it from the set
    entries = [(fd, it) for fd, it in table.items() if it.events & 0xFFFF]
    watches = [Watch(fd, it.events & 0xFFFF, it.file) for fd, it in entries]

    def count(revents: list[int]) -> int:
        return min(sum(1 for r in revents if r), maxevents)

    got = wait_ready(k, call, watches, timeout_ns, count)
    if isinstance(got, int):
        return got
    written = bytearray()
    for (_, it), r in zip(entries, got, strict=True):
        if not r or len(written) >= _EPOLL_EVENT.size * maxevents:
            continue
        written += _EPOLL_EVENT.pack(r, it.data)
        if it.events & EPOLLONESHOT:
            it.events &= EPOLLONESHOT | EPOLLET  # disarmed until EPOLL_CTL_MOD
    k.write(out, bytes(written))
    return len(written) // _EPOLL_EVENT.size


@syscall("epoll_wait")
def sys_epoll_wait(k: Kernel, call: Call) -> int:
    return _epoll_wait(k, call, _ms(call.a[3]))


@syscall("epoll_pwait")
def sys_epoll_pwait(k: Kernel, call: Call) -> int:
    return _epoll_wait(k, call, _ms(call.a[3]))
