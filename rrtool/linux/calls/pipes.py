"""Pipes: the kernel's own buffer, so no host object, no event data, nothing to replay.

Everything a pipe does follows from what the tasks did before: the bytes
written are kept in a buffer shared by both ends (`OpenFile.extra["pipe"]`,
one object however many processes hold the ends), reads take them, and the
result of every call is recomputed in replay and checked against the row. A
read of an empty pipe gives end of file once every write end is closed; with
a write end still open the reading task blocks until the pipe changes (its
`version`), and another task runs. A small write to a full pipe blocks the
same way; a large one writes what fits. A write with no read end left is
EPIPE and raises SIGPIPE, delivered as the write returns (by default it ends
the process, as `yes | head -1` needs). If every task ends up blocked, the run
ends as a hang that names what each one waits for.
"""

from __future__ import annotations

import errno
import functools
import struct
from dataclasses import dataclass, field

import xxhash

from rrtool.linux.fds import O_CLOEXEC, O_NONBLOCK, O_WRONLY, OpenFile
from rrtool.linux.kernel import Blocked, Call, Kernel, syscall

SIGPIPE = 13

#: The capacity of a pipe (Linux's default, 16 pages) and the size of a write that is atomic.
PIPE_CAPACITY = 65536
PIPE_BUF = 4096
O_DIRECT = 0o40000
POLLIN, POLLOUT, POLLERR, POLLHUP = 0x1, 0x4, 0x8, 0x10


@dataclass
class Pipe:
    """The shared buffer and how many open descriptions each end has (an end is gone at zero)."""

    buf: bytearray = field(default_factory=bytearray)
    readers: int = 0
    writers: int = 0
    #: Bumped on every change (bytes in or out, an end closed): a task blocked on the pipe tries again.
    version: int = 0


def _pipe(file: OpenFile) -> Pipe:
    pipe = file.extra["pipe"]
    assert isinstance(pipe, Pipe)
    return pipe


def _closed(pipe: Pipe, write: bool) -> None:
    pipe.version += 1
    if write:
        pipe.writers -= 1
    else:
        pipe.readers -= 1


def _digest(pipe: Pipe) -> str:
    return f"{xxhash.xxh3_64_intdigest(pipe.buf):x}/{len(pipe.buf)}"


def _end(pipe: Pipe, write: bool, flags: int, name: str) -> OpenFile:
    """One end of `pipe`. Its callables are partials, not closures: a snapshot's deep copy then copies the
    pipe they name together with the one in `extra["pipe"]`, so the copied ends still share one buffer."""
    file = OpenFile("pipe", name, (O_WRONLY if write else 0) | (flags & O_NONBLOCK))
    if write:
        pipe.writers += 1
    else:
        pipe.readers += 1
    file.extra.update(pipe=pipe, close=functools.partial(_closed, pipe, write), digest=functools.partial(_digest, pipe))
    return file


@syscall("pipe", "pipe2")
def sys_pipe(k: Kernel, call: Call) -> int:
    ptr = call.a[0]
    flags = call.a[1] & 0xFFFFFFFF if call.ev.syscall == "pipe2" else 0
    if flags & ~(O_NONBLOCK | O_CLOEXEC | O_DIRECT):
        return -errno.EINVAL
    k.check(ptr, 8)
    read_fd = k.fds.lowest_free()
    write_fd = k.fds.lowest_free(read_fd + 1)
    pipe = Pipe()
    # The name is only for the digest and messages; the call count makes it unique and the same in replay.
    name = f"pipe:[{k.calls}]"
    cloexec = bool(flags & O_CLOEXEC)
    k.fds.install(read_fd, _end(pipe, False, flags, name), cloexec)
    k.fds.install(write_fd, _end(pipe, True, flags, name), cloexec)
    k.write(ptr, struct.pack("<ii", read_fd, write_fd))
    call.ev.fd = read_fd
    return 0


def pipe_read(k: Kernel, call: Call, file: OpenFile, count: int) -> bytes | int:
    """read/readv on a pipe's read end (files.py's `_read_into` calls this)."""
    pipe = _pipe(file)
    if pipe.buf:
        got = bytes(pipe.buf[:count])
        del pipe.buf[:count]
        pipe.version += 1
        return got
    if pipe.writers == 0 or count == 0:
        return b""
    if file.flags & O_NONBLOCK:
        return -errno.EAGAIN
    k.task.block(f"read {file.path}", pipe)  # until a writer writes or closes its end
    raise Blocked()


def pipe_write(k: Kernel, call: Call, file: OpenFile, data: bytes) -> int:
    """write/writev on a pipe's write end (files.py's `_write` calls this; it logged the bytes as output)."""
    pipe = _pipe(file)
    if pipe.readers == 0:
        k.task.pending |= 1 << (SIGPIPE - 1)  # as Linux does: delivered as this call returns
        return -errno.EPIPE
    if not data:
        return 0
    room = PIPE_CAPACITY - len(pipe.buf)
    if len(data) <= room:
        pipe.buf += data
        pipe.version += 1
        return len(data)
    if room > 0 and len(data) > PIPE_BUF:
        pipe.buf += data[:room]  # a large write goes in as far as it fits; the program writes the rest
        pipe.version += 1
        return room
    if file.flags & O_NONBLOCK:
        return -errno.EAGAIN  # a small write is atomic: all of it or nothing
    k.task.block(f"write {file.path}", pipe)  # until a reader makes room or closes its end
    raise Blocked()


def pipe_ready(file: OpenFile) -> int:
    """poll revents of a pipe end, from its buffer and the other end (no host: computed in every mode)."""
    pipe = _pipe(file)
    if file.flags & O_WRONLY:
        if pipe.readers == 0:
            return POLLOUT | POLLERR
        return POLLOUT if PIPE_CAPACITY - len(pipe.buf) >= PIPE_BUF else 0
    revents = POLLIN if pipe.buf else 0
    return revents | (POLLHUP if pipe.writers == 0 else 0)


def is_pipe(file: OpenFile) -> bool:
    return file.kind == "pipe" and isinstance(file.extra.get("pipe"), Pipe)


__all__ = ["Pipe", "is_pipe", "pipe_read", "pipe_ready", "pipe_write"]
