"""File calls: open, read, write, stat, directories, links, descriptors, the terminal.

Every path is resolved by the sandbox (`rrtool.linux.sandbox`) inside the root.
What the host answers is logged in the row: an open's result says what was
opened (`kind:guest-path` as data, so replay knows it is a file, a directory
or one of the virtual devices without looking), a read's bytes, a stat
buffer, a directory listing, an error number. Writes to files go to the
overlay (or the root with writeback); their bytes are compared in replay by
digest. Writes to stdout and stderr are console output: a `console_out` row
on that device as well as the call's row.
"""

from __future__ import annotations

import errno
import os
import stat as st
import struct
from collections.abc import Callable

from rrtool.linux.calls import net, pipes
from rrtool.linux.fds import (
    MAX_FDS,
    O_ACCMODE,
    O_APPEND,
    O_CLOEXEC,
    O_CREAT,
    O_DIRECTORY,
    O_EXCL,
    O_NOFOLLOW,
    O_NONBLOCK,
    O_PATH,
    O_TRUNC,
    O_WRONLY,
    Errno,
    OpenFile,
)
from rrtool.linux.kernel import Call, Kernel, syscall
from rrtool.linux.sandbox import VIRTUAL_DIRS, VIRTUAL_FILES, Root
from rrtool.machine.units import EventRejected

AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW, AT_REMOVEDIR, AT_SYMLINK_FOLLOW, AT_EMPTY_PATH = 0x100, 0x200, 0x400, 0x1000
#: One read or write moves at most this much (Linux's own cap is 0x7ffff000).
MAX_IO = 1 << 24
F_DUPFD, F_GETFD, F_SETFD, F_GETFL, F_SETFL, F_GETLK, F_SETLK, F_SETLKW = 0, 1, 2, 3, 4, 5, 6, 7
F_DUPFD_CLOEXEC, F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW = 1030, 36, 37, 38
FD_CLOEXEC = 1
F_UNLCK = 2
TCGETS, TIOCGWINSZ, TIOCGPGRP, FIONREAD, FIONBIO, FIOCLEX = 0x5401, 0x5413, 0x540F, 0x541B, 0x5421, 0x5451
#: File kinds that live on the host (their results are events); the others are the kernel's own.
_HOST_KINDS = frozenset({"file", "dir", "exe"})
_CONSOLE = frozenset({"stdin", "stdout", "stderr"})
_STAT = struct.Struct("<QQQIIIxxxxQqqqqqqqqq24x")


def _fd(value: int) -> int:
    """A descriptor argument: the low 32 bits, signed (AT_FDCWD is -100)."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def pack_stat(s: os.stat_result) -> bytes:
    return _STAT.pack(
        s.st_dev, s.st_ino, s.st_nlink, s.st_mode, s.st_uid, s.st_gid, s.st_rdev, s.st_size, s.st_blksize,
        s.st_blocks, int(s.st_atime), s.st_atime_ns % 10**9, int(s.st_mtime), s.st_mtime_ns % 10**9,
        int(s.st_ctime), s.st_ctime_ns % 10**9,
    )  # fmt: skip


def _char_device_stat(rdev: int) -> bytes:
    """What fstat says of the kernel's own devices (the console, /dev/null): fixed, so no event is needed."""
    return _STAT.pack(5, rdev, 1, st.S_IFCHR | 0o666, 0, 0, rdev, 0, 4096, 0, 0, 0, 0, 0, 0, 0)


_DEVICE_RDEV = {"null": 0x103, "zero": 0x105, "urandom": 0x109, "stdin": 0x8800, "stdout": 0x8800, "stderr": 0x8800}


# -- lookups -------------------------------------------------------------------
def _base(k: Kernel, dirfd: int, path: str) -> str:
    """The directory `path` starts from: `/` for an absolute path (the descriptor is then ignored, as Linux
    ignores it), else the cwd or the directory descriptor's path."""
    if path.startswith("/"):
        return "/"
    if dirfd == AT_FDCWD:
        return k.proc.cwd
    file = k.fds.file(dirfd)
    if file.kind != "dir":
        raise Errno(errno.ENOTDIR)
    return file.path


def _root(k: Kernel) -> Root:
    assert k.root is not None, "host calls run only live, where the root is there"
    return k.root


def _decode_opened(call: Call, data: bytes | None) -> tuple[str, str]:
    """The `kind:path` an open logged; anything else in a trace is rejected."""
    if data is None:
        raise EventRejected(call.ev, "an open that succeeded without saying what it opened")
    kind, sep, path = data.decode("utf-8", "surrogateescape").partition(":")
    if not sep or kind not in _HOST_KINDS | set(VIRTUAL_FILES.values()) or not path.startswith("/"):
        raise EventRejected(call.ev, "an open whose result names no file rrtool could have opened")
    virtual = VIRTUAL_FILES.get(path)
    if (virtual is not None and kind != virtual) or (virtual is None and kind not in ("file", "dir")):
        raise EventRejected(call.ev, f"an open whose result calls {path} a {kind}, which it cannot be")
    return kind, path


def _open(k: Kernel, call: Call, dirfd: int, path: str, flags: int, mode: int) -> int:
    newfd = k.fds.lowest_free()
    call.ev.fd = newfd
    base = _base(k, dirfd, path)
    opened: list[int] = []

    def perform() -> tuple[int, bytes]:
        root = _root(k)
        guest = root.resolve(path, base, follow=not flags & O_NOFOLLOW)
        if guest in VIRTUAL_FILES:
            kind = VIRTUAL_FILES[guest]
            if kind == "exe":
                program = k.proc.program or k.program
                opened.append(os.open(program.image.path, os.O_RDONLY | os.O_CLOEXEC))
            return newfd, f"{kind}:{guest}".encode("utf-8", "surrogateescape")
        if guest in VIRTUAL_DIRS:
            if flags & O_ACCMODE != os.O_RDONLY:
                raise OSError(errno.EISDIR, "is a directory")
            return newfd, f"dir:{guest}".encode("utf-8", "surrogateescape")
        if guest.startswith(("/dev/", "/proc/")):
            raise OSError(errno.ENOENT, "not provided")
        writing = flags & O_ACCMODE != os.O_RDONLY or flags & (O_CREAT | O_TRUNC)
        host = root.locate(guest)
        if host is None and not flags & O_CREAT:
            raise OSError(errno.ENOENT, "no such file")
        if host is not None and flags & O_CREAT and flags & O_EXCL:
            raise OSError(errno.EEXIST, "exists")
        if host is not None and st.S_ISDIR(os.lstat(host).st_mode):
            if writing:
                raise OSError(errno.EISDIR, "is a directory")
            fd = os.open(host, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW)
            opened.append(fd)
            return newfd, f"dir:{guest}".encode("utf-8", "surrogateescape")
        if flags & O_DIRECTORY:
            raise OSError(errno.ENOTDIR, "not a directory")
        if writing:
            host = root.writable(guest)  # copied up whole (O_TRUNC then empties the copy, keeping its mode)
        assert host is not None
        host_flags = (flags & (O_ACCMODE | O_CREAT | O_EXCL | O_TRUNC | O_APPEND)) | os.O_CLOEXEC | os.O_NOFOLLOW
        fd = os.open(host, host_flags, (mode & 0o7777) & ~k.proc.umask)
        opened.append(fd)
        return newfd, f"file:{guest}".encode("utf-8", "surrogateescape")

    ret, data = k.host(call, perform, max_data=8192, max_ret=newfd)
    if ret < 0:
        return ret
    if ret != newfd:
        raise EventRejected(call.ev, f"an open that returned descriptor {ret}, not the lowest free one ({newfd})")
    kind, guest = _decode_opened(call, data)
    file = OpenFile(kind, guest, flags & ~(O_CLOEXEC | O_CREAT | O_EXCL | O_TRUNC | O_NOFOLLOW))
    file.host = opened[0] if opened else None
    k.fds.install(newfd, file, cloexec=bool(flags & O_CLOEXEC))
    return newfd


@syscall("open")
def sys_open(k: Kernel, call: Call) -> int:
    return _open(k, call, AT_FDCWD, k.path_arg(call, call.a[0]), call.a[1], call.a[2])


@syscall("openat")
def sys_openat(k: Kernel, call: Call) -> int:
    return _open(k, call, _fd(call.a[0]), k.path_arg(call, call.a[1]), call.a[2], call.a[3])


@syscall("creat")
def sys_creat(k: Kernel, call: Call) -> int:
    return _open(k, call, AT_FDCWD, k.path_arg(call, call.a[0]), O_CREAT | O_WRONLY | O_TRUNC, call.a[1])


@syscall("close")
def sys_close(k: Kernel, call: Call) -> int:
    fd = _fd(call.a[0])
    call.ev.fd = fd
    k.fds.close(fd)
    return 0


# -- reading and writing -----------------------------------------------------------
def _read_into(k: Kernel, call: Call, file: OpenFile, count: int, offset: int | None) -> bytes | int:
    """The bytes a read of `file` gives (a host call where the host has them), or -errno."""
    if not file.readable or file.flags & O_PATH:
        return -errno.EBADF
    if file.kind == "dir":
        return -errno.EISDIR
    if file.kind == "epoll":
        return -errno.EINVAL
    if file.kind in ("stdout", "stderr", "null"):
        return b""  # a read of stdout as a file: end of file, like reading /dev/null
    if file.kind == "zero":
        return bytes(count)
    count = min(count, MAX_IO)
    if file.kind in ("socket", "pipe"):
        return (net.socket_read if file.kind == "socket" else pipes.pipe_read)(k, call, file, count)
    if file.kind == "urandom":
        return k.host_bytes(call, lambda: (count, os.urandom(count)), count)
    if file.kind == "stdin":
        return k.host_bytes(call, lambda: _stdin_read(k, count), count)
    host = file.host

    def perform() -> tuple[int, bytes]:
        assert host is not None
        got = os.read(host, count) if offset is None else os.pread(host, count, offset)
        return len(got), got

    return k.host_bytes(call, perform, count)


def _stdin_read(k: Kernel, count: int) -> tuple[int, bytes | None]:
    """Wait for stdin in slices, so Ctrl-C (which only sets the port's stop flag) ends a blocked read.

    A read interrupted that way returns EINTR, which is logged like any result: the run then ends at
    its next checkpoint, and replay gives the program the same EINTR.
    """
    if k.stdin_fd is None:
        return 0, b""  # no stdin attached: end of file at once
    import select

    while not select.select([k.stdin_fd], [], [], 0.25)[0]:
        if k.machine.port.stop_requested:
            return -errno.EINTR, None
    got = os.read(k.stdin_fd, count)
    return len(got), got


@syscall("read", "pread64")
def sys_read(k: Kernel, call: Call) -> int:
    fd, buf, count = _fd(call.a[0]), call.a[1], call.a[2]
    call.ev.fd = fd
    file = k.fds.file(fd)
    offset = None
    if call.ev.syscall == "pread64":
        offset = call.a[3]
        if offset >= 1 << 63:
            return -errno.EINVAL
        if file.kind not in ("file", "exe", "zero", "null", "urandom"):
            return -errno.ESPIPE
    k.check(buf, min(count, MAX_IO))
    got = _read_into(k, call, file, count, offset)
    if isinstance(got, int):
        return got
    k.write(buf, got)
    return len(got)


def _iovecs(k: Kernel, addr: int, count: int) -> list[tuple[int, int]]:
    if count > 1024:
        raise Errno(errno.EINVAL)
    raw = k.read(addr, 16 * count)
    return [struct.unpack_from("<QQ", raw, 16 * i) for i in range(count)]


@syscall("readv", "preadv")
def sys_readv(k: Kernel, call: Call) -> int:
    fd = _fd(call.a[0])
    call.ev.fd = fd
    file = k.fds.file(fd)
    vecs = _iovecs(k, call.a[1], call.a[2])
    total = sum(n for _, n in vecs)
    for base, n in vecs:
        k.check(base, min(n, MAX_IO))
    got = _read_into(k, call, file, total, call.a[3] if call.ev.syscall == "preadv" else None)
    if isinstance(got, int):
        return got
    at = 0
    for base, n in vecs:
        piece = got[at : at + n]
        k.write(base, piece)
        at += len(piece)
        if at >= len(got):
            break
    return len(got)


def _write(k: Kernel, call: Call, file: OpenFile, data: bytes, offset: int | None) -> int:
    k.out_data(call, data)
    if not file.writable and file.kind not in _CONSOLE:
        return -errno.EBADF
    if file.kind in ("stdout", "stderr"):
        if data:
            k.console(file.kind, data)
        return len(data)
    if file.kind == "stdin":
        return -errno.EBADF
    if file.kind in ("socket", "pipe"):
        return (net.socket_write if file.kind == "socket" else pipes.pipe_write)(k, call, file, data)
    if file.kind == "epoll":
        return -errno.EINVAL
    if file.kind in ("null", "zero", "urandom"):
        return len(data)
    if file.kind == "dir":
        return -errno.EISDIR
    host = file.host

    def perform() -> tuple[int, None]:
        assert host is not None
        n = os.write(host, data) if offset is None else os.pwrite(host, data, offset)
        return n, None

    ret, _ = k.host(call, perform, max_ret=len(data))
    return ret


@syscall("write", "pwrite64")
def sys_write(k: Kernel, call: Call) -> int:
    fd, buf, count = _fd(call.a[0]), call.a[1], min(call.a[2], MAX_IO)
    call.ev.fd = fd
    file = k.fds.file(fd)
    offset = call.a[3] if call.ev.syscall == "pwrite64" else None
    return _write(k, call, file, k.read(buf, count), offset)


@syscall("writev", "pwritev")
def sys_writev(k: Kernel, call: Call) -> int:
    fd = _fd(call.a[0])
    call.ev.fd = fd
    file = k.fds.file(fd)
    pieces, left = [], MAX_IO  # at most MAX_IO in all: 1024 vectors of 16 MiB each must not make 16 GiB
    for base, n in _iovecs(k, call.a[1], call.a[2]):
        take = min(n, left)
        pieces.append(k.read(base, take))
        left -= take
        if not left:
            break
    return _write(k, call, file, b"".join(pieces), call.a[3] if call.ev.syscall == "pwritev" else None)


@syscall("sendfile")
def sys_sendfile(k: Kernel, call: Call) -> int:
    """sendfile(out, in, offset, count): the bytes read are the event; their write is ordinary output.

    The read and the write are one host call, so one row: its data is what was read, and the
    written copy is the program's output (compared by digest, and the console row for stdout).
    """
    out_fd, in_fd, off_ptr, count = _fd(call.a[0]), _fd(call.a[1]), call.a[2], min(call.a[3], MAX_IO)
    call.ev.fd = out_fd
    out, src = k.fds.file(out_fd), k.fds.file(in_fd)
    if src.kind not in ("file", "exe") or not src.readable or (not out.writable and out.kind not in _CONSOLE):
        return -errno.EINVAL if src.kind not in ("file", "exe") else -errno.EBADF
    offset = struct.unpack("<q", k.read(off_ptr, 8))[0] if off_ptr else None
    sink_host = out.host if out.kind == "file" else None
    if out.kind not in ("file", "stdout", "stderr", "null"):
        return -errno.EINVAL
    src_host = src.host

    def perform() -> tuple[int, bytes]:
        assert src_host is not None
        got = os.read(src_host, count) if offset is None else os.pread(src_host, count, offset)
        if sink_host is not None:
            os.write(sink_host, got)
        return len(got), got

    ret, data = k.host(call, perform, max_data=count, max_ret=count)
    if ret < 0:
        return ret
    data = data or b""
    if len(data) != ret:
        raise EventRejected(call.ev, "a sendfile whose result is not the number of bytes it moved")
    if out.kind in ("stdout", "stderr") and data:
        k.console(out.kind, data)
    if off_ptr and offset is not None:
        k.write(off_ptr, struct.pack("<q", offset + ret))
    return ret


@syscall("lseek")
def sys_lseek(k: Kernel, call: Call) -> int:
    fd, offset, whence = _fd(call.a[0]), call.a[1], call.a[2]
    call.ev.fd = fd
    file = k.fds.file(fd)
    if file.kind in _CONSOLE or file.kind in _SPECIAL_MODE:
        return -errno.ESPIPE
    if file.kind in ("null", "zero", "urandom"):
        return 0
    if whence > 4:
        return -errno.EINVAL
    signed = offset - (1 << 64) if offset >> 63 else offset
    host = file.host
    if file.kind == "dir":
        if signed != 0 or whence != 0:
            return -errno.EINVAL
        file.listing = None  # rewinddir: list afresh

        def rewind() -> tuple[int, None]:
            return 0, None

        return k.host(call, rewind, max_ret=0)[0]

    def perform() -> tuple[int, None]:
        assert host is not None
        return os.lseek(host, signed, whence), None

    return k.host(call, perform)[0]


@syscall("ftruncate")
def sys_ftruncate(k: Kernel, call: Call) -> int:
    fd, length = _fd(call.a[0]), call.a[1]
    call.ev.fd = fd
    file = k.fds.file(fd)
    if file.kind != "file" or not file.writable:
        return -errno.EINVAL
    host = file.host

    def perform() -> tuple[int, None]:
        assert host is not None
        os.ftruncate(host, length)
        return 0, None

    return k.host(call, perform, max_ret=0)[0]


@syscall("fsync", "fdatasync", "syncfs")
def sys_fsync(k: Kernel, call: Call) -> int:
    fd = _fd(call.a[0])
    call.ev.fd = fd
    k.fds.file(fd)
    return 0  # the overlay needs no durability, and writeback files are synced when closed by the host


@syscall("flock")
def sys_flock(k: Kernel, call: Call) -> int:
    call.ev.fd = _fd(call.a[0])
    k.fds.file(call.ev.fd)
    return 0  # one process: every lock is granted


# -- metadata ------------------------------------------------------------------
def _stat_of(k: Kernel, call: Call, perform: Callable[[], tuple[int, bytes]], addr: int) -> int:
    k.check(addr, _STAT.size)
    ret, data = k.host(call, perform, max_data=_STAT.size, max_ret=0)
    if ret < 0:
        return ret
    if data is None or len(data) != _STAT.size:
        raise EventRejected(call.ev, "a stat result that is not a struct stat")
    k.write(addr, data)
    return 0


def _stat_path(k: Kernel, base: str, path: str, follow: bool) -> bytes:
    root = _root(k)
    guest = root.resolve(path, base, follow=follow)
    if guest in VIRTUAL_FILES:
        kind = VIRTUAL_FILES[guest]
        if kind == "exe":
            return pack_stat(os.stat(k.program.image.path))
        return _char_device_stat(_DEVICE_RDEV.get(kind, 0x103))
    return pack_stat(root.lstat(guest))


#: What fstat says of pipes, sockets and epoll descriptors: a fixed inode of the right type, no host asked.
_SPECIAL_MODE = {"pipe": st.S_IFIFO | 0o600, "socket": st.S_IFSOCK | 0o777, "epoll": 0o600}


def _fstat_bytes(k: Kernel, file: OpenFile) -> bytes | None:
    """fstat of the kernel's own files needs no host; None for files on the host."""
    if file.kind in _DEVICE_RDEV:
        return _char_device_stat(_DEVICE_RDEV[file.kind])
    if file.kind in _SPECIAL_MODE:
        return _STAT.pack(6, 1, 1, _SPECIAL_MODE[file.kind], 0, 0, 0, 0, 4096, 0, 0, 0, 0, 0, 0, 0)
    return None


@syscall("fstat")
def sys_fstat(k: Kernel, call: Call) -> int:
    fd = _fd(call.a[0])
    call.ev.fd = fd
    return _fstat(k, call, k.fds.file(fd), call.a[1])


def _fstat(k: Kernel, call: Call, file: OpenFile, addr: int) -> int:
    own = _fstat_bytes(k, file)
    if own is not None:
        k.write(addr, own)
        return 0
    host, path = file.host, file.path

    def perform() -> tuple[int, bytes]:
        if host is not None:
            return 0, pack_stat(os.fstat(host))
        return 0, _stat_path(k, "/", path, True)  # a virtual directory

    return _stat_of(k, call, perform, addr)


@syscall("stat", "lstat")
def sys_stat(k: Kernel, call: Call) -> int:
    path = k.path_arg(call, call.a[0])
    cwd, follow = k.proc.cwd, call.ev.syscall == "stat"
    return _stat_of(k, call, lambda: (0, _stat_path(k, cwd, path, follow)), call.a[1])


@syscall("newfstatat")
def sys_newfstatat(k: Kernel, call: Call) -> int:
    dirfd, flags = _fd(call.a[0]), call.a[3]
    path = k.path_arg(call, call.a[1])
    if not path and flags & AT_EMPTY_PATH:
        call.ev.fd = dirfd
        if dirfd == AT_FDCWD:
            cwd = k.proc.cwd
            return _stat_of(k, call, lambda: (0, _stat_path(k, "/", cwd, True)), call.a[2])
        return _fstat(k, call, k.fds.file(dirfd), call.a[2])
    base = _base(k, dirfd, path)
    follow = not flags & AT_SYMLINK_NOFOLLOW
    return _stat_of(k, call, lambda: (0, _stat_path(k, base, path, follow)), call.a[2])


def _statx_from_stat(raw: bytes) -> bytes:
    (dev, ino, nlink, mode, uid, gid, rdev, size, blksize, blocks, at, atn, mt, mtn, ct, ctn) = _STAT.unpack(raw)
    stamp = struct.Struct("<qI4x")
    out = struct.pack("<IIQIIIHxxQQQQ", 0x7FF, blksize, 0, nlink, uid, gid, mode, ino, size, blocks, 0)
    out += stamp.pack(at, atn) + stamp.pack(ct, ctn) + stamp.pack(ct, ctn) + stamp.pack(mt, mtn)
    out += struct.pack("<IIII", os.major(rdev), os.minor(rdev), os.major(dev), os.minor(dev))
    return out.ljust(256, b"\0")


@syscall("statx")
def sys_statx(k: Kernel, call: Call) -> int:
    dirfd, flags, addr = _fd(call.a[0]), call.a[2], call.a[4]
    path = k.path_arg(call, call.a[1])
    k.check(addr, 256)
    if not path and flags & AT_EMPTY_PATH:
        call.ev.fd = dirfd
        file = k.fds.file(dirfd) if dirfd != AT_FDCWD else None
        own = _fstat_bytes(k, file) if file is not None else None
        if own is not None:
            k.write(addr, _statx_from_stat(own))
            return 0
        host = file.host if file is not None else None
        fpath = file.path if file is not None else k.proc.cwd

        def perform() -> tuple[int, bytes]:
            if host is not None:
                return 0, pack_stat(os.fstat(host))
            return 0, _stat_path(k, "/", fpath, True)
    else:
        base = _base(k, dirfd, path)
        follow = not flags & AT_SYMLINK_NOFOLLOW

        def perform() -> tuple[int, bytes]:
            return 0, _stat_path(k, base, path, follow)

    ret, data = k.host(call, perform, max_data=_STAT.size, max_ret=0)
    if ret < 0:
        return ret
    if data is None or len(data) != _STAT.size:
        raise EventRejected(call.ev, "a stat result that is not a struct stat")
    k.write(addr, _statx_from_stat(data))
    return 0


def _access(k: Kernel, call: Call, base: str, path: str, mode: int) -> int:
    def perform() -> tuple[int, None]:
        root = _root(k)
        guest = root.resolve(path, base)
        if guest in VIRTUAL_FILES or guest in VIRTUAL_DIRS:
            return 0, None
        host = root.locate(guest)
        if host is None:
            raise OSError(errno.ENOENT, "no such file")
        if mode and not os.access(host, mode):
            raise OSError(errno.EACCES, "permission denied")
        return 0, None

    return k.host(call, perform, max_ret=0)[0]


@syscall("access")
def sys_access(k: Kernel, call: Call) -> int:
    return _access(k, call, k.proc.cwd, k.path_arg(call, call.a[0]), call.a[1])


@syscall("faccessat", "faccessat2")
def sys_faccessat(k: Kernel, call: Call) -> int:
    dirfd = _fd(call.a[0])
    path = k.path_arg(call, call.a[1])
    return _access(k, call, _base(k, dirfd, path), path, call.a[2])


# -- directories ------------------------------------------------------------------
_DT = {st.S_IFDIR: 4, st.S_IFREG: 8, st.S_IFLNK: 10, st.S_IFCHR: 2, st.S_IFBLK: 6, st.S_IFIFO: 1, st.S_IFSOCK: 12}


def _listing(k: Kernel, path: str) -> list[bytes]:
    """Every linux_dirent64 of a directory, merged from overlay and root, `.` and `..` first."""
    root = _root(k)
    out = []
    for i, name in enumerate([".", "..", *root.listdir(path)]):
        child = (
            path if name == "." else (path.rsplit("/", 1)[0] or "/") if name == ".." else path.rstrip("/") + "/" + name
        )
        try:
            s = root.lstat(child) if child not in VIRTUAL_FILES else None
            ino, kind = (s.st_ino, _DT.get(st.S_IFMT(s.st_mode), 0)) if s is not None else (1000 + i, 2)
        except OSError:
            ino, kind = 1000 + i, 0
        raw = name.encode("utf-8", "surrogateescape") + b"\0"
        reclen = (19 + len(raw) + 7) & ~7
        out.append(struct.pack("<QqHB", ino, i + 1, reclen, kind) + raw.ljust(reclen - 19, b"\0"))
    return out


@syscall("getdents64")
def sys_getdents64(k: Kernel, call: Call) -> int:
    fd, buf, count = _fd(call.a[0]), call.a[1], call.a[2]
    call.ev.fd = fd
    file = k.fds.file(fd)
    if file.kind != "dir":
        return -errno.ENOTDIR
    count = min(count, MAX_IO)
    k.check(buf, count)

    def perform() -> tuple[int, bytes]:
        if file.listing is None:
            file.listing = _listing(k, file.path)
        out = bytearray()
        taken = 0
        while taken < len(file.listing) and len(out) + len(file.listing[taken]) <= count:
            out += file.listing[taken]
            taken += 1
        if not out and file.listing:
            raise OSError(errno.EINVAL, "buffer too small")
        del file.listing[:taken]
        return len(out), bytes(out)

    got = k.host_bytes(call, perform, count)
    if isinstance(got, int):
        return got
    k.write(buf, got)
    return len(got)


@syscall("getcwd")
def sys_getcwd(k: Kernel, call: Call) -> int:
    raw = k.proc.cwd.encode("utf-8", "surrogateescape") + b"\0"
    if call.a[1] < len(raw):
        return -errno.ERANGE
    k.write(call.a[0], raw)
    return len(raw)


def _chdir_to(k: Kernel, call: Call, perform: Callable[[], tuple[int, bytes]]) -> int:
    ret, data = k.host(call, perform, max_data=4096, max_ret=0)
    if ret < 0:
        return ret
    new = (data or b"").decode("utf-8", "surrogateescape")
    if not new.startswith("/"):
        raise EventRejected(call.ev, "a chdir whose result is not an absolute path")
    k.proc.cwd = new
    return 0


def _resolve_dir(k: Kernel, base: str, path: str) -> tuple[int, bytes]:
    root = _root(k)
    guest = root.resolve(path, base)
    if guest not in VIRTUAL_DIRS and not st.S_ISDIR(root.lstat(guest).st_mode):
        raise OSError(errno.ENOTDIR, "not a directory")
    return 0, guest.encode("utf-8", "surrogateescape")


@syscall("chdir")
def sys_chdir(k: Kernel, call: Call) -> int:
    path, cwd = k.path_arg(call, call.a[0]), k.proc.cwd
    return _chdir_to(k, call, lambda: _resolve_dir(k, cwd, path))


@syscall("fchdir")
def sys_fchdir(k: Kernel, call: Call) -> int:
    fd = _fd(call.a[0])
    call.ev.fd = fd
    file = k.fds.file(fd)
    if file.kind != "dir":
        return -errno.ENOTDIR
    k.proc.cwd = file.path
    return 0


def _readlink(k: Kernel, call: Call, base: str, path: str, buf: int, size: int) -> int:
    if size <= 0 or size >= 1 << 31:
        return -errno.EINVAL
    k.check(buf, min(size, 4096))

    def perform() -> tuple[int, bytes]:
        root = _root(k)
        guest = root.resolve(path, base, follow=False)
        if guest == "/proc/self/exe":
            target = k.proc.exe.encode("utf-8", "surrogateescape")
        else:
            host = root.locate(guest)
            if host is None:
                raise OSError(errno.ENOENT, "no such file")
            if not st.S_ISLNK(os.lstat(host).st_mode):
                raise OSError(errno.EINVAL, "not a symlink")
            target = os.fsencode(os.readlink(host))
        target = target[:size]
        return len(target), target

    got = k.host_bytes(call, perform, min(size, 4096))
    if isinstance(got, int):
        return got
    k.write(buf, got)
    return len(got)


@syscall("readlink")
def sys_readlink(k: Kernel, call: Call) -> int:
    return _readlink(k, call, k.proc.cwd, k.path_arg(call, call.a[0]), call.a[1], call.a[2])


@syscall("readlinkat")
def sys_readlinkat(k: Kernel, call: Call) -> int:
    path = k.path_arg(call, call.a[1])
    base = _base(k, _fd(call.a[0]), path)
    return _readlink(k, call, base, path, call.a[2], call.a[3])


# -- changing the tree ---------------------------------------------------------------
def _change(k: Kernel, call: Call, action: Callable[[], None]) -> int:
    def perform() -> tuple[int, None]:
        action()
        return 0, None

    return k.host(call, perform, max_ret=0)[0]


def _guest(k: Kernel, base: str, path: str, follow: bool = False) -> str:
    guest = _root(k).resolve(path, base, follow=follow)
    if guest in VIRTUAL_FILES or guest in VIRTUAL_DIRS or guest.startswith(("/dev/", "/proc/")) or guest == "/":
        raise OSError(errno.EPERM if guest != "/" else errno.EBUSY, "not changeable")
    return guest


def _unlink(k: Kernel, call: Call, base: str, path: str, directory: bool) -> int:
    return _change(k, call, lambda: _root(k).remove(_guest(k, base, path), directory=directory))


@syscall("unlink")
def sys_unlink(k: Kernel, call: Call) -> int:
    return _unlink(k, call, k.proc.cwd, k.path_arg(call, call.a[0]), False)


@syscall("rmdir")
def sys_rmdir(k: Kernel, call: Call) -> int:
    return _unlink(k, call, k.proc.cwd, k.path_arg(call, call.a[0]), True)


@syscall("unlinkat")
def sys_unlinkat(k: Kernel, call: Call) -> int:
    path = k.path_arg(call, call.a[1])
    base = _base(k, _fd(call.a[0]), path)
    return _unlink(k, call, base, path, bool(call.a[2] & AT_REMOVEDIR))


def _mkdir(k: Kernel, call: Call, base: str, path: str, mode: int) -> int:
    umask = k.proc.umask

    def make() -> None:
        root = _root(k)
        guest = root.resolve(path, base, follow=False)
        if guest == "/" or guest in VIRTUAL_DIRS or guest in VIRTUAL_FILES or root.locate(guest) is not None:
            raise OSError(errno.EEXIST, "exists")  # `mkdir -p /a/b` asks for / and /dev too
        root.make_dir(_guest(k, base, path), (mode & 0o7777) & ~umask)

    return _change(k, call, make)


@syscall("mkdir")
def sys_mkdir(k: Kernel, call: Call) -> int:
    return _mkdir(k, call, k.proc.cwd, k.path_arg(call, call.a[0]), call.a[1])


@syscall("mkdirat")
def sys_mkdirat(k: Kernel, call: Call) -> int:
    path = k.path_arg(call, call.a[1])
    return _mkdir(k, call, _base(k, _fd(call.a[0]), path), path, call.a[2])


def _rename(k: Kernel, call: Call, old_base: str, old: str, new_base: str, new: str) -> int:
    def move() -> None:
        root = _root(k)
        src, dst = _guest(k, old_base, old), _guest(k, new_base, new)
        if root.locate(src) is None:
            raise OSError(errno.ENOENT, "no such file")
        if src == dst:
            return
        if dst.startswith(src + "/"):
            raise OSError(errno.EINVAL, "into itself")
        root.rename(src, dst)

    return _change(k, call, move)


@syscall("rename")
def sys_rename(k: Kernel, call: Call) -> int:
    old = k.path_arg(call, call.a[0])
    new = k.cstr(call.a[1]).decode("utf-8", "surrogateescape")
    return _rename(k, call, k.proc.cwd, old, k.proc.cwd, new)


@syscall("renameat", "renameat2")
def sys_renameat(k: Kernel, call: Call) -> int:
    old = k.path_arg(call, call.a[1])
    new = k.cstr(call.a[3]).decode("utf-8", "surrogateescape")
    if call.ev.syscall == "renameat2" and call.a[4]:
        return -errno.EINVAL  # RENAME_NOREPLACE / EXCHANGE / WHITEOUT
    old_base = _base(k, _fd(call.a[0]), old)
    new_base = _base(k, _fd(call.a[2]), new)
    return _rename(k, call, old_base, old, new_base, new)


def _chmod(k: Kernel, call: Call, base: str, path: str, mode: int) -> int:
    def change() -> None:
        root = _root(k)
        guest = _guest(k, base, path, follow=True)
        if root.locate(guest) is None:
            raise OSError(errno.ENOENT, "no such file")
        os.chmod(root.writable(guest), mode & 0o7777, follow_symlinks=False)

    return _change(k, call, change)


@syscall("chmod")
def sys_chmod(k: Kernel, call: Call) -> int:
    return _chmod(k, call, k.proc.cwd, k.path_arg(call, call.a[0]), call.a[1])


@syscall("fchmodat")
def sys_fchmodat(k: Kernel, call: Call) -> int:
    path = k.path_arg(call, call.a[1])
    return _chmod(k, call, _base(k, _fd(call.a[0]), path), path, call.a[2])


@syscall("fchmod")
def sys_fchmod(k: Kernel, call: Call) -> int:
    fd = _fd(call.a[0])
    call.ev.fd = fd
    file = k.fds.file(fd)
    if file.kind != "file":
        return 0 if file.kind in _DEVICE_RDEV else -errno.EPERM
    host, path = file.host, file.path

    def change() -> None:
        root = _root(k)
        if root.writeback:
            assert host is not None
            os.fchmod(host, call.a[1] & 0o7777)
        else:  # the descriptor may be the root's own file: change the overlay's copy instead
            os.chmod(root.writable(path), call.a[1] & 0o7777, follow_symlinks=False)

    return _change(k, call, change)


@syscall("chown", "fchown", "lchown", "fchownat")
def sys_chown(k: Kernel, call: Call) -> int:
    return 0  # ownership is not modelled: every file belongs to the guest's user


@syscall("utimensat")
def sys_utimensat(k: Kernel, call: Call) -> int:
    dirfd, times_ptr, flags = _fd(call.a[0]), call.a[2], call.a[3]
    times = None
    if times_ptr:
        a_s, a_ns, m_s, m_ns = struct.unpack("<qqqq", k.read(times_ptr, 32))
        times = (a_s, a_ns, m_s, m_ns)
    if call.a[1] == 0:
        call.ev.fd = dirfd
        file = k.fds.file(dirfd)
        if file.kind != "file":
            return 0
        target_host = file.host
        fpath = file.path
        path = None
    else:
        path = k.path_arg(call, call.a[1])
        target_host = None
        fpath = ""
    base = _base(k, dirfd, path) if path is not None else "/"

    def change() -> None:
        ns = None
        if times is not None:
            now = None
            stamps = []
            for sec, nsec in ((times[0], times[1]), (times[2], times[3])):
                if nsec == (1 << 30) - 1:  # UTIME_NOW
                    import time as _time

                    now = now or _time.time_ns()
                    stamps.append(now)
                elif nsec == (1 << 30) - 2:  # UTIME_OMIT: keep what it was
                    stamps.append(-1)
                else:
                    stamps.append(sec * 10**9 + nsec)
            ns = (stamps[0], stamps[1])
        root = _root(k)
        if path is None:
            if root.writeback:
                assert target_host is not None
                _utime(target_host, ns)
            else:  # the descriptor may be the root's own file: change the overlay's copy instead
                _utime(root.writable(fpath), ns)
            return
        guest = _guest(k, base, path, follow=not flags & AT_SYMLINK_NOFOLLOW)
        if root.locate(guest) is None:
            raise OSError(errno.ENOENT, "no such file")
        _utime(root.writable(guest), ns)

    return _change(k, call, change)


def _utime(target: int | os.PathLike[str], ns: tuple[int, int] | None) -> None:
    """utime that never follows a symlink on the host (a guest's symlink may point anywhere)."""
    follow = isinstance(target, int)  # a descriptor has nothing to follow
    if ns is not None and -1 in ns:
        cur = os.stat(target, follow_symlinks=follow)
        ns = (cur.st_atime_ns if ns[0] == -1 else ns[0], cur.st_mtime_ns if ns[1] == -1 else ns[1])
    if ns is None:
        os.utime(target, follow_symlinks=follow)
    else:
        os.utime(target, ns=ns, follow_symlinks=follow)


@syscall("umask")
def sys_umask(k: Kernel, call: Call) -> int:
    old = k.proc.umask
    k.proc.umask = call.a[0] & 0o777
    return old


# -- descriptors -----------------------------------------------------------------
@syscall("dup")
def sys_dup(k: Kernel, call: Call) -> int:
    fd = _fd(call.a[0])
    call.ev.fd = fd
    file = k.fds.file(fd)
    return k.fds.install(k.fds.lowest_free(), file)


@syscall("dup2", "dup3")
def sys_dup2(k: Kernel, call: Call) -> int:
    old, new = _fd(call.a[0]), _fd(call.a[1])
    call.ev.fd = old
    file = k.fds.file(old)
    if old == new:
        return -errno.EINVAL if call.ev.syscall == "dup3" else new
    cloexec = call.ev.syscall == "dup3" and bool(call.a[2] & O_CLOEXEC)
    return k.fds.install(new, file, cloexec)


@syscall("fcntl")
def sys_fcntl(k: Kernel, call: Call) -> int:
    fd, cmd, arg = _fd(call.a[0]), call.a[1], call.a[2]
    call.ev.fd = fd
    entry = k.fds.get(fd)
    if cmd in (F_DUPFD, F_DUPFD_CLOEXEC):
        if arg & 0xFFFFFFFF >= MAX_FDS:
            return -errno.EINVAL
        return k.fds.install(k.fds.lowest_free(arg & 0xFFFFFFFF), entry.file, cmd == F_DUPFD_CLOEXEC)
    if cmd == F_GETFD:
        return FD_CLOEXEC if entry.cloexec else 0
    if cmd == F_SETFD:
        entry.cloexec = bool(arg & FD_CLOEXEC)
        return 0
    if cmd == F_GETFL:
        return entry.file.flags & (O_ACCMODE | O_APPEND | O_NONBLOCK | O_DIRECTORY)
    if cmd == F_SETFL:
        entry.file.flags = (entry.file.flags & ~(O_APPEND | O_NONBLOCK)) | (arg & (O_APPEND | O_NONBLOCK))
        if entry.file.kind == "file" and entry.file.host is not None:  # live only: the host file must append too
            import fcntl

            host_flags = fcntl.fcntl(entry.file.host, fcntl.F_GETFL)
            fcntl.fcntl(
                entry.file.host, fcntl.F_SETFL, (host_flags & ~os.O_APPEND) | (os.O_APPEND if arg & O_APPEND else 0)
            )
        return 0
    if cmd in (F_GETLK, F_OFD_GETLK):
        # One process holds every lock there is: nothing conflicts, which F_GETLK says as F_UNLCK.
        lock = bytearray(k.read(arg, 32))
        struct.pack_into("<h", lock, 0, F_UNLCK)
        k.write(arg, bytes(lock))
        return 0
    if cmd in (F_SETLK, F_SETLKW, F_OFD_SETLK, F_OFD_SETLKW):
        k.read(arg, 32)  # the struct flock must be readable
        return 0
    return -errno.EINVAL


@syscall("ioctl")
def sys_ioctl(k: Kernel, call: Call) -> int:
    fd, req, arg = _fd(call.a[0]), call.a[1] & 0xFFFFFFFF, call.a[2]
    call.ev.fd = fd
    file = k.fds.file(fd)
    if req == FIOCLEX:
        k.fds.get(fd).cloexec = True
        return 0
    if req == FIONBIO:
        (on,) = struct.unpack("<i", k.read(arg, 4))
        file.flags = file.flags | O_NONBLOCK if on else file.flags & ~O_NONBLOCK
        return 0
    if file.kind not in _CONSOLE or req not in (TCGETS, TIOCGWINSZ, TIOCGPGRP):
        return -errno.ENOTTY
    size = {TCGETS: 60, TIOCGWINSZ: 8, TIOCGPGRP: 4}[req]
    k.check(arg, size)
    host_fd = {"stdin": 0, "stdout": 1, "stderr": 2}[file.kind]
    if file.kind == "stdin" and k.stdin_fd is None:
        return -errno.ENOTTY

    def perform() -> tuple[int, bytes]:
        import fcntl

        buf = bytearray(size)
        fcntl.ioctl(host_fd, req, buf)
        if req == TIOCGPGRP:
            buf = bytearray(struct.pack("<i", 1000))  # the guest's own process group, not the host's
        return 0, bytes(buf)

    ret, data = k.host(call, perform, max_data=size, max_ret=0)
    if ret < 0:
        return ret
    if data is None or len(data) != size:
        raise EventRejected(call.ev, "a terminal query whose answer has the wrong size")
    k.write(arg, data)
    return 0


@syscall("truncate")
def sys_truncate(k: Kernel, call: Call) -> int:
    path, cwd, length = k.path_arg(call, call.a[0]), k.proc.cwd, call.a[1]

    def change() -> None:
        root = _root(k)
        guest = _guest(k, cwd, path, follow=True)
        if root.locate(guest) is None:
            raise OSError(errno.ENOENT, "no such file")
        os.truncate(root.writable(guest), length)

    return _change(k, call, change)


def _link(k: Kernel, call: Call, old_base: str, old: str, new_base: str, new: str, follow: bool) -> int:
    def make() -> None:
        root = _root(k)
        src, dst = _guest(k, old_base, old, follow=follow), _guest(k, new_base, new)
        if root.locate(src) is None:
            raise OSError(errno.ENOENT, "no such file")
        if root.locate(dst) is not None:
            raise OSError(errno.EEXIST, "exists")
        os.link(root.writable(src), root.writable(dst, copy=False), follow_symlinks=False)

    return _change(k, call, make)


@syscall("link")
def sys_link(k: Kernel, call: Call) -> int:
    old = k.path_arg(call, call.a[0])
    new = k.cstr(call.a[1]).decode("utf-8", "surrogateescape")
    return _link(k, call, k.proc.cwd, old, k.proc.cwd, new, False)


@syscall("linkat")
def sys_linkat(k: Kernel, call: Call) -> int:
    old = k.path_arg(call, call.a[1])
    new = k.cstr(call.a[3]).decode("utf-8", "surrogateescape")
    old_base = _base(k, _fd(call.a[0]), old)
    new_base = _base(k, _fd(call.a[2]), new)
    return _link(k, call, old_base, old, new_base, new, bool(call.a[4] & AT_SYMLINK_FOLLOW))


def _symlink(k: Kernel, call: Call, target: str, base: str, new: str) -> int:
    """A symlink holds any text; it is followed later by the sandbox, inside the root, whatever it says."""

    def make() -> None:
        root = _root(k)
        dst = _guest(k, base, new)
        if root.locate(dst) is not None:
            raise OSError(errno.EEXIST, "exists")
        os.symlink(target, root.writable(dst, copy=False))

    return _change(k, call, make)


@syscall("symlink")
def sys_symlink(k: Kernel, call: Call) -> int:
    target = k.path_arg(call, call.a[0])
    new = k.cstr(call.a[1]).decode("utf-8", "surrogateescape")
    return _symlink(k, call, target, k.proc.cwd, new)


@syscall("symlinkat")
def sys_symlinkat(k: Kernel, call: Call) -> int:
    target = k.path_arg(call, call.a[0])
    new = k.cstr(call.a[2]).decode("utf-8", "surrogateescape")
    base = _base(k, _fd(call.a[1]), new)
    return _symlink(k, call, target, base, new)
