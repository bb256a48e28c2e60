"""File descriptors and open file descriptions, kept by rrtool so that replay has them without the host.

A guest descriptor number is chosen here (the lowest free one, as Linux does),
never by the host, so it is the same in record and replay. An `OpenFile` is
what dup'd descriptors share: what it is, its guest path and flags, and in a
live run the host resources behind it (a host descriptor, a directory's
listing). In replay those host fields stay empty: every result comes from
the trace, and the open file only tells the kernel what kind of thing the
program is talking to.
"""

from __future__ import annotations

import contextlib
import errno
import os
from dataclasses import dataclass, field
from typing import Any

#: RLIMIT_NOFILE as the guest sees it.
MAX_FDS = 1024
O_ACCMODE = 0o3
O_WRONLY, O_RDWR = 0o1, 0o2
O_CREAT, O_EXCL, O_NOCTTY, O_TRUNC, O_APPEND, O_NONBLOCK = 0o100, 0o200, 0o400, 0o1000, 0o2000, 0o4000
O_DIRECTORY, O_NOFOLLOW, O_CLOEXEC, O_PATH, O_TMPFILE = 0o200000, 0o400000, 0o2000000, 0o10000000, 0o20200000


class Errno(Exception):
    """A system call fails with this errno (deterministic: decided from guest-visible state)."""

    def __init__(self, code: int) -> None:
        super().__init__(os.strerror(code))
        self.errno = code


@dataclass
class OpenFile:
    #: file, dir, stdin, stdout, stderr, null, zero, urandom, exe, pipe, socket, epoll
    kind: str
    path: str = ""
    flags: int = 0
    #: Host side, live runs only: a descriptor, a directory listing still to hand out, other resources.
    host: int | None = None
    listing: list[bytes] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: How many guest descriptors refer to this description.
    refs: int = 0

    @property
    def readable(self) -> bool:
        return self.flags & O_ACCMODE != O_WRONLY

    @property
    def writable(self) -> bool:
        return self.flags & O_ACCMODE in (O_WRONLY, O_RDWR)

    def state(self) -> str:
        """Guest-visible state of the description, for the digest: what it is, and what the kernel holds for it
        (a pipe's buffered bytes, an epoll set), through the `digest` callable its family puts in `extra`."""
        more = self.extra.get("digest")
        return f"{self.kind}:{self.path}:{self.flags:o}" + (f":{more()}" if more is not None else "")

    def close_host(self) -> None:
        if self.host is not None:
            with contextlib.suppress(OSError):
                os.close(self.host)
            self.host = None
        closer = self.extra.pop("close", None)
        if closer is not None:
            closer()


@dataclass
class Fd:
    file: OpenFile
    cloexec: bool = False


class FdTable:
    def __init__(self) -> None:
        self._fds: dict[int, Fd] = {}

    def get(self, fd: int) -> Fd:
        entry = self._fds.get(fd)
        if entry is None:
            raise Errno(errno.EBADF)
        return entry

    def file(self, fd: int) -> OpenFile:
        return self.get(fd).file

    def lowest_free(self, start: int = 0) -> int:
        fd = start
        while fd in self._fds:
            fd += 1
        if fd >= MAX_FDS:
            raise Errno(errno.EMFILE)
        return fd

    def install(self, fd: int, file: OpenFile, cloexec: bool = False) -> int:
        if not 0 <= fd < MAX_FDS:
            raise Errno(errno.EBADF)
        if fd in self._fds:
            self.close(fd)
        file.refs += 1
        self._fds[fd] = Fd(file, cloexec)
        return fd

    def close(self, fd: int) -> None:
        entry = self._fds.pop(fd, None)
        if entry is None:
            raise Errno(errno.EBADF)
        entry.file.refs -= 1
        if entry.file.refs == 0:
            entry.file.close_host()

    def close_all(self) -> None:
        for fd in list(self._fds):
            self.close(fd)

    def items(self) -> list[tuple[int, Fd]]:
        return sorted(self._fds.items())

    def state(self) -> bytes:
        """Guest-visible state for the digest: numbers, kinds, paths, flags (never host descriptors)."""
        return ";".join(f"{n}:{e.cloexec:d}:{e.file.state()}" for n, e in self.items()).encode(
            "utf-8", "surrogateescape"
        )
