"""Sockets as system calls: each call on a socket is one row, its host result the event (QEMU filter-replay's idea).

rrtool does not emulate a network stack for a Linux program; it hands the
program's socket calls to host sockets, as `strace` would see them, and logs
what came back: bytes received, an accepted connection and its peer's
address, a local or peer address, an option value, an error number. Bytes
the program sends are its output (compared by digest in replay). Replay opens
no socket: every result comes from the trace, so a recording replays with the
peer long gone.

Loopback only. A connect or sendto to an address outside 127.0.0.0/8 and ::1
gets ENETUNREACH, and a bind to anything but those or the wildcard gets
EADDRNOTAVAIL (a wildcard bind is made on the host's loopback address).
Those answers are decided from the arguments alone, so they
are ordinary rows (replay recomputes them), and no recording ever talks to
another machine.

Guest descriptors of sockets are rrtool's (`OpenFile("socket")`, with the
domain and type in `extra`); the host socket behind one exists only in a
live run (`extra["sock"]`). Host sockets are always non-blocking: a call that
would block on a blocking guest socket waits on the host inside the host call
(`host_wait`: polls in 0.1 s slices so a stop request still ends it). The
wait takes no virtual time, and its outcome is logged, so replay never waits.
AF_UNIX is refused (EAFNOSUPPORT) and socketpair is not provided (ENOSYS):
both would need a peer inside the machine, which the single-process kernel
does not have yet.
"""

from __future__ import annotations

import errno
import functools
import ipaddress
import select
import socket
import struct
import time
from collections.abc import Callable
from typing import TypeVar

from rrtool.linux.fds import O_CLOEXEC, O_NONBLOCK, O_RDWR, Errno, OpenFile
from rrtool.linux.kernel import Call, Kernel, syscall
from rrtool.machine.units import EventRejected

AF_UNSPEC, AF_UNIX, AF_INET, AF_INET6 = 0, 1, 2, 10
SOCK_STREAM, SOCK_DGRAM = 1, 2
SOCK_NONBLOCK, SOCK_CLOEXEC = O_NONBLOCK, O_CLOEXEC
MSG_OOB, MSG_PEEK, MSG_TRUNC, MSG_DONTWAIT, MSG_WAITALL, MSG_NOSIGNAL = 0x1, 0x2, 0x20, 0x40, 0x100, 0x4000
SIGPIPE = 13
#: The flags a host recv/send is given; the others rrtool implements itself (waiting, signals).
_HOST_MSG_FLAGS = MSG_OOB | MSG_PEEK
SOL_SOCKET, SO_RCVTIMEO, SO_SNDTIMEO = 1, 20, 21
POLLIN, POLLPRI, POLLOUT, POLLERR, POLLHUP, POLLNVAL, POLLRDHUP = 0x1, 0x2, 0x4, 0x8, 0x10, 0x20, 0x2000
#: The longest sockaddr rrtool hands back (sockaddr_in6).
SOCKADDR_MAX = 28
#: One recv or send moves at most this much (the row holds it).
MAX_NET_IO = 1 << 20
#: How long one slice of a host wait is: the longest a stop request (Ctrl-C) waits to be seen.
WAIT_SLICE_S = 0.1
_NS = 1_000_000_000
_T = TypeVar("_T")


def fd_arg(value: int) -> int:
    """A descriptor argument: the low 32 bits, signed (as the kernel reads an int)."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


# -- waiting on the host -----------------------------------------------------------
def host_wait(k: Kernel, wanted: list[tuple[int, int]], timeout_ns: int | None) -> list[int]:
    """Poll host descriptors for `(fd, events)` until one is ready or `timeout_ns` passes (None: no limit).

    Returns each entry's revents (0 for all of them when the time ran out). The wait is sliced so that
    a stop request (SIGINT, SIGTERM) ends it with EINTR within WAIT_SLICE_S: the call's row then says
    EINTR and the run ends at the next checkpoint. Each slice also lets the recorder flush what it holds,
    as a long sleep does. Only ever called inside a host call (live, record).
    """
    merged: dict[int, int] = {}
    for fd, events in wanted:
        merged[fd] = merged.get(fd, 0) | events
    poller = select.poll()
    for fd, events in merged.items():
        poller.register(fd, events)
    deadline = None if timeout_ns is None else time.monotonic_ns() + timeout_ns
    port = k.machine.port
    while True:
        stopping = port.stop_requested  # already asked to stop: look once, do not wait a slice
        left = WAIT_SLICE_S if deadline is None else min(WAIT_SLICE_S, (deadline - time.monotonic_ns()) / 1e9)
        got = dict(poller.poll(0 if stopping else max(0, int(left * 1000))))
        if got:
            return [got.get(fd, 0) & (events | POLLERR | POLLHUP | POLLNVAL) for fd, events in wanted]
        if deadline is not None and time.monotonic_ns() >= deadline:
            return [0] * len(wanted)
        if stopping:
            raise OSError(errno.EINTR, "interrupted by a stop request")
        port.idle_tick()  # a long wait must not hold back the recording's crash-safe flush


def _sock(file: OpenFile) -> socket.socket:
    sock = file.extra.get("sock")
    assert isinstance(sock, socket.socket), "host sockets exist only in a live run"
    return sock


def _nonblocking(file: OpenFile, flags: int = 0) -> bool:
    return bool(file.flags & O_NONBLOCK or flags & MSG_DONTWAIT)


def _blocking(k: Kernel, file: OpenFile, events: int, op: Callable[[], _T], nonblock: bool,
                 timeout_ns: int | None = None) -> _T:  # fmt: skip
    """Run a non-blocking host `op`; for a blocking guest socket, wait for `events` and retry while it would block."""
    sock = _sock(file)
    deadline = None if timeout_ns is None else time.monotonic_ns() + timeout_ns
    while True:
        try:
            return op()
        except BlockingIOError:
            if nonblock:
                raise
        left = None if deadline is None else deadline - time.monotonic_ns()
        if left is not None and left <= 0:
            raise OSError(errno.EAGAIN, "timed out (SO_RCVTIMEO / SO_SNDTIMEO)")
        host_wait(k, [(sock.fileno(), events)], left)


# -- addresses ------------------------------------------------------------------------
def _parse_addr(k: Kernel, addr: int, length: int) -> tuple[int, tuple[str, int] | tuple[str, int, int, int]]:
    """A guest sockaddr as (family, Python address); EINVAL for a length no family has."""
    if length < 2 or length > 128:
        raise Errno(errno.EINVAL)
    raw = k.read(addr, length)
    (family,) = struct.unpack_from("<H", raw)
    if family == AF_INET:
        if length < 16:
            raise Errno(errno.EINVAL)
        port = struct.unpack_from(">H", raw, 2)[0]
        return family, (socket.inet_ntop(socket.AF_INET, raw[4:8]), port)
    if family == AF_INET6:
        if length < 24:
            raise Errno(errno.EINVAL)
        port, flow = struct.unpack_from(">HI", raw, 2)
        scope = struct.unpack_from("<I", raw, 24)[0] if length >= 28 else 0
        return family, (socket.inet_ntop(socket.AF_INET6, raw[8:24]), port, flow, scope)
    if family == AF_UNSPEC:
        return family, ("", 0)
    raise Errno(errno.EAFNOSUPPORT)


def _loopback(host: str, *, wildcard: bool) -> bool:
    ip = ipaddress.ip_address(host)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback or (wildcard and ip.is_unspecified)


def _check_peer(file: OpenFile, family: int, where: tuple[str, int] | tuple[str, int, int, int]) -> None:
    """ENETUNREACH for a destination that is not loopback: the sandbox's network is this host's loopback."""
    if family == AF_UNSPEC:
        return
    if family != file.extra["family"]:
        raise Errno(errno.EAFNOSUPPORT)
    if not _loopback(where[0], wildcard=False):
        raise Errno(errno.ENETUNREACH)


def pack_addr(family: int, where: object) -> bytes:
    """A host address (as Python gives it) as the guest's sockaddr; b"" when there is none (a TCP recvfrom)."""
    if not isinstance(where, tuple):
        return b""
    if family == AF_INET:
        head = struct.pack("<H", AF_INET) + struct.pack(">H", where[1])
        return head + socket.inet_pton(socket.AF_INET, where[0]) + bytes(8)
    host, port, flow, scope = where
    return (
        struct.pack("<H", AF_INET6)
        + struct.pack(">HI", port, flow)
        + socket.inet_pton(socket.AF_INET6, host.split("%")[0])
        + struct.pack("<I", scope)
    )


def _addr_ok(family: int, raw: bytes) -> bool:
    """Could the host have given this sockaddr for a socket of `family`? (A trace's address is checked.)"""
    if not raw:
        return True
    return len(raw) == (16 if family == AF_INET else 28) and struct.unpack_from("<H", raw)[0] == family


def _out_addr(k: Kernel, addr: int, len_ptr: int, raw: bytes) -> None:
    """Write a sockaddr back as the kernel does: truncated to the caller's buffer, the full length in *len_ptr."""
    if not addr:
        return
    raw = raw[:SOCKADDR_MAX]
    (room,) = struct.unpack("<I", k.read(len_ptr, 4))
    k.write(addr, raw[: min(room, len(raw))])
    k.write(len_ptr, struct.pack("<I", len(raw)))


def _check_out_addr(k: Kernel, addr: int, len_ptr: int) -> None:
    """EFAULT and EINVAL before the host call, so a bad buffer never loses a connection or a datagram."""
    if not addr:
        return
    (room,) = struct.unpack("<I", k.read(len_ptr, 4))
    if room >= 1 << 31:
        raise Errno(errno.EINVAL)
    k.check(addr, min(room, SOCKADDR_MAX))


def _socket_file(k: Kernel, call: Call) -> OpenFile:
    fd = fd_arg(call.a[0])
    call.ev.fd = fd
    file = k.fds.file(fd)
    if file.kind != "socket":
        raise Errno(errno.ENOTSOCK)
    return file


# -- creating and connecting ----------------------------------------------------------------
def _new_socket(family: int, kind: int, proto: int, flags: int) -> OpenFile:
    name = {AF_INET: "inet", AF_INET6: "inet6"}[family]
    file = OpenFile("socket", f"socket:[{name}/{'stream' if kind == SOCK_STREAM else 'dgram'}]",
                    O_RDWR | (flags & O_NONBLOCK))  # fmt: skip
    file.extra.update(family=family, type=kind, proto=proto)
    return file


def _attach_host(file: OpenFile, sock: socket.socket) -> None:
    sock.setblocking(False)
    file.extra["sock"] = sock
    file.extra["close"] = sock.close


@syscall("socket")
def sys_socket(k: Kernel, call: Call) -> int:
    family, kind, proto = call.a[0] & 0xFFFFFFFF, call.a[1] & 0xFFFFFFFF, call.a[2] & 0xFFFFFFFF
    flags, base = kind & (SOCK_NONBLOCK | SOCK_CLOEXEC), kind & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)
    if family not in (AF_INET, AF_INET6):
        return -errno.EAFNOSUPPORT  # AF_UNIX among them: no peer inside the machine yet
    if base not in (SOCK_STREAM, SOCK_DGRAM):
        return -errno.EINVAL if base > 10 else -errno.ESOCKTNOSUPPORT
    newfd = k.fds.lowest_free()
    call.ev.fd = newfd
    made: list[socket.socket] = []

    def perform() -> tuple[int, None]:
        made.append(socket.socket(family, base | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC, proto))
        return newfd, None

    ret, _ = k.host(call, perform, max_ret=newfd)
    if ret < 0:
        return ret
    if ret != newfd:
        raise EventRejected(call.ev, f"a socket that returned descriptor {ret}, not the lowest free one ({newfd})")
    file = _new_socket(family, base, proto, flags)
    if made:
        _attach_host(file, made[0])
    k.fds.install(newfd, file, cloexec=bool(flags & SOCK_CLOEXEC))
    return newfd


@syscall("bind")
def sys_bind(k: Kernel, call: Call) -> int:
    file = _socket_file(k, call)
    family, where = _parse_addr(k, call.a[1], call.a[2])
    if family != file.extra["family"]:
        return -errno.EAFNOSUPPORT
    if not _loopback(where[0], wildcard=True):
        return -errno.EADDRNOTAVAIL
    call.ev.path = f"{where[0]}:{where[1]}"

    host_where = where
    if ipaddress.ip_address(where[0].split("%")[0]).is_unspecified:
        # The wildcard listens on loopback only on the host: nothing outside this machine can reach a guest.
        host_where = ("::1" if family == socket.AF_INET6 else "127.0.0.1", *where[1:])

    def perform() -> tuple[int, None]:
        _sock(file).bind(host_where)
        return 0, None

    return k.host(call, perform, max_ret=0)[0]


@syscall("listen")
def sys_listen(k: Kernel, call: Call) -> int:
    file = _socket_file(k, call)
    backlog = call.a[1] & 0xFFFFFFFF

    def perform() -> tuple[int, None]:
        _sock(file).listen(min(backlog, 4096))
        return 0, None

    return k.host(call, perform, max_ret=0)[0]


@syscall("accept", "accept4")
def sys_accept(k: Kernel, call: Call) -> int:
    """A new connection is a host result: its descriptor is chosen here, its peer's sockaddr is the data."""
    file = _socket_file(k, call)
    addr, len_ptr = call.a[1], call.a[2]
    flags = call.a[3] & 0xFFFFFFFF if call.ev.syscall == "accept4" else 0
    if flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC):
        return -errno.EINVAL
    if file.extra["type"] != SOCK_STREAM:
        return -errno.EOPNOTSUPP
    _check_out_addr(k, addr, len_ptr)
    newfd = k.fds.lowest_free()
    accepted: list[socket.socket] = []

    def perform() -> tuple[int, bytes]:
        conn, peer = _blocking(k, file, POLLIN, _sock(file).accept, _nonblocking(file))
        accepted.append(conn)
        return newfd, pack_addr(file.extra["family"], peer)

    ret, data = k.host(call, perform, max_data=SOCKADDR_MAX, max_ret=newfd)
    if ret < 0:
        return ret
    if ret != newfd or data is None or not data or not _addr_ok(file.extra["family"], data):
        raise EventRejected(call.ev, "an accepted connection with another descriptor or no peer address")
    conn_file = _new_socket(file.extra["family"], SOCK_STREAM, file.extra["proto"], flags)
    if accepted:
        _attach_host(conn_file, accepted[0])
    k.fds.install(newfd, conn_file, cloexec=bool(flags & SOCK_CLOEXEC))
    _out_addr(k, addr, len_ptr, data)
    return newfd


@syscall("connect")
def sys_connect(k: Kernel, call: Call) -> int:
    """A blocking connect waits for the host's answer; a non-blocking one returns EINPROGRESS as Linux does."""
    file = _socket_file(k, call)
    family, where = _parse_addr(k, call.a[1], call.a[2])
    _check_peer(file, family, where)
    call.ev.path = f"{where[0]}:{where[1]}"
    nonblock = _nonblocking(file)

    def perform() -> tuple[int, None]:
        sock = _sock(file)
        if family == AF_UNSPEC:  # a datagram socket forgets its peer
            raise OSError(errno.EAFNOSUPPORT, "AF_UNSPEC connect is not supported")
        code = sock.connect_ex(where)
        if code == errno.EINPROGRESS and not nonblock:
            host_wait(k, [(sock.fileno(), POLLOUT)], None)
            code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        return -code, None

    return k.host(call, perform, max_ret=0)[0]


@syscall("shutdown")
def sys_shutdown(k: Kernel, call: Call) -> int:
    file = _socket_file(k, call)
    how = call.a[1] & 0xFFFFFFFF
    if how > 2:
        return -errno.EINVAL

    def perform() -> tuple[int, None]:
        _sock(file).shutdown(how)
        return 0, None

    return k.host(call, perform, max_ret=0)[0]


def _name(k: Kernel, call: Call, peer: bool) -> int:
    file = _socket_file(k, call)
    addr, len_ptr = call.a[1], call.a[2]
    _check_out_addr(k, addr, len_ptr)
    if not addr:
        return -errno.EFAULT

    def perform() -> tuple[int, bytes]:
        sock = _sock(file)
        return 0, pack_addr(file.extra["family"], sock.getpeername() if peer else sock.getsockname())

    ret, data = k.host(call, perform, max_data=SOCKADDR_MAX, max_ret=0)
    if ret < 0:
        return ret
    if not data or not _addr_ok(file.extra["family"], data):
        raise EventRejected(call.ev, "a socket address of another family, or none")
    _out_addr(k, addr, len_ptr, data)
    return 0


@syscall("getsockname")
def sys_getsockname(k: Kernel, call: Call) -> int:
    return _name(k, call, peer=False)


@syscall("getpeername")
def sys_getpeername(k: Kernel, call: Call) -> int:
    return _name(k, call, peer=True)


@syscall("setsockopt")
def sys_setsockopt(k: Kernel, call: Call) -> int:
    """Passed to the host; the value is the program's output. SO_RCVTIMEO/SO_SNDTIMEO also bound rrtool's waits."""
    file = _socket_file(k, call)
    level, name, ptr, length = call.a[1] & 0xFFFFFFFF, call.a[2] & 0xFFFFFFFF, call.a[3], call.a[4] & 0xFFFFFFFF
    if length > 256:
        return -errno.EINVAL
    value = k.read(ptr, length)
    k.out_data(call, value)

    def perform() -> tuple[int, None]:
        _sock(file).setsockopt(level, name, value)
        return 0, None

    ret, _ = k.host(call, perform, max_ret=0)
    if ret == 0 and level == SOL_SOCKET and name in (SO_RCVTIMEO, SO_SNDTIMEO) and length >= 16:
        sec, usec = struct.unpack_from("<qq", value)
        ns = sec * _NS + usec * 1000
        file.extra["rcvtimeo" if name == SO_RCVTIMEO else "sndtimeo"] = ns if ns > 0 else None
    return ret


@syscall("getsockopt")
def sys_getsockopt(k: Kernel, call: Call) -> int:
    file = _socket_file(k, call)
    level, name, ptr, len_ptr = call.a[1] & 0xFFFFFFFF, call.a[2] & 0xFFFFFFFF, call.a[3], call.a[4]
    (room,) = struct.unpack("<I", k.read(len_ptr, 4))
    if room >= 1 << 31:
        return -errno.EINVAL
    room = min(room, 256)
    k.check(ptr, room)

    def perform() -> tuple[int, bytes]:
        return 0, _sock(file).getsockopt(level, name, max(room, 1))[:room]

    ret, data = k.host(call, perform, max_data=room, max_ret=0)
    if ret < 0:
        return ret
    data = data or b""
    k.write(ptr, data)
    k.write(len_ptr, struct.pack("<I", len(data)))
    return 0


# -- moving bytes ---------------------------------------------------------------------------
def _recv(k: Kernel, call: Call, file: OpenFile, count: int, flags: int, want_addr: bool) -> tuple[bytes, bytes] | int:
    """Bytes received and the sender's sockaddr (b"" if not asked for or none), or -errno.

    The row's data is the bytes, as for a read of a file; when the call asked for the sender's address
    it is preceded by one byte of address length and the address. The result is the count of bytes.
    """
    count = min(count, MAX_NET_IO)
    family = file.extra["family"]
    nonblock = _nonblocking(file, flags)
    host_flags = flags & _HOST_MSG_FLAGS

    def perform() -> tuple[int, bytes]:
        sock = _sock(file)
        got, peer = _blocking(k, file, POLLIN, lambda: sock.recvfrom(count, host_flags), nonblock,
                              file.extra.get("rcvtimeo"))  # fmt: skip
        while flags & MSG_WAITALL and got and len(got) < count and file.extra["type"] == SOCK_STREAM:
            want = count - len(got)
            try:
                more = _blocking(k, file, POLLIN, functools.partial(sock.recv, want), nonblock,
                                 file.extra.get("rcvtimeo"))  # fmt: skip
            except OSError:
                break  # what was received so far is the result, as Linux returns it
            if not more:
                break
            got += more
        if not want_addr:
            return len(got), got
        raw = pack_addr(family, peer)
        return len(got), bytes([len(raw)]) + raw + got

    ret, data = k.host(call, perform, max_data=count + 1 + SOCKADDR_MAX, max_ret=count)
    timeout = file.extra.get("rcvtimeo")
    if ret == -errno.EAGAIN and not nonblock and timeout:
        k.waited(timeout)  # SO_RCVTIMEO ran out on the host: that much virtual time passes, as with poll
    if ret < 0:
        return ret
    data = data or b""
    if not want_addr:
        if len(data) != ret:
            raise EventRejected(call.ev, "a receive whose result is not the number of bytes it returned")
        return data, b""
    if not data or len(data) != 1 + data[0] + ret or not _addr_ok(family, data[1 : 1 + data[0]]):
        raise EventRejected(call.ev, "a receive whose bytes, address and result do not agree")
    return data[1 + data[0] :], data[1 : 1 + data[0]]


def _send(k: Kernel, call: Call, file: OpenFile, data: bytes, flags: int,
          dest: tuple[str, int] | tuple[str, int, int, int] | None) -> int:  # fmt: skip
    """Send all of `data` (a blocking stream socket waits for room, as Linux does); the bytes are output."""
    k.out_data(call, data)
    nonblock = _nonblocking(file, flags)
    host_flags = flags & _HOST_MSG_FLAGS
    timeout = file.extra.get("sndtimeo")

    def perform() -> tuple[int, None]:
        sock = _sock(file)
        if dest is not None:
            return _blocking(k, file, POLLOUT, lambda: sock.sendto(data, host_flags, dest), nonblock, timeout), None
        sent = 0
        while True:
            try:
                rest = functools.partial(sock.send, data[sent:], host_flags)
                sent += _blocking(k, file, POLLOUT, rest, nonblock, timeout)
            except OSError:
                if sent:
                    return sent, None  # a partial send is the result; the error shows on the next call
                raise
            if sent >= len(data) or nonblock or file.extra["type"] != SOCK_STREAM:
                return sent, None

    ret = k.host(call, perform, max_ret=len(data))[0]
    if ret == -errno.EPIPE and not flags & MSG_NOSIGNAL:
        k.proc.pending |= 1 << (SIGPIPE - 1)  # as Linux does: delivered as this call returns
    return ret


def socket_read(k: Kernel, call: Call, file: OpenFile, count: int) -> bytes | int:
    """read/readv on a socket: a recv without flags (files.py's `_read_into` calls this)."""
    got = _recv(k, call, file, count, 0, want_addr=False)
    return got if isinstance(got, int) else got[0]


def socket_write(k: Kernel, call: Call, file: OpenFile, data: bytes) -> int:
    """write/writev on a socket: a send without flags (files.py's `_write` calls this)."""
    return _send(k, call, file, data[:MAX_NET_IO], 0, None)


def _dest(k: Kernel, file: OpenFile, addr: int, length: int) -> tuple[str, int] | tuple[str, int, int, int] | None:
    if not addr:
        return None
    family, where = _parse_addr(k, addr, length)
    if family == AF_UNSPEC:
        raise Errno(errno.EAFNOSUPPORT)
    _check_peer(file, family, where)
    return where


@syscall("sendto")
def sys_sendto(k: Kernel, call: Call) -> int:
    file = _socket_file(k, call)
    buf, length, flags = call.a[1], min(call.a[2], MAX_NET_IO), call.a[3] & 0xFFFFFFFF
    data = k.read(buf, length)
    dest = _dest(k, file, call.a[4], call.a[5] & 0xFFFFFFFF)
    if dest is not None:
        call.ev.path = f"{dest[0]}:{dest[1]}"
    return _send(k, call, file, data, flags, dest)


@syscall("recvfrom")
def sys_recvfrom(k: Kernel, call: Call) -> int:
    file = _socket_file(k, call)
    buf, length, flags = call.a[1], min(call.a[2], MAX_NET_IO), call.a[3] & 0xFFFFFFFF
    addr, len_ptr = call.a[4], call.a[5]
    k.check(buf, length)
    _check_out_addr(k, addr, len_ptr)
    got = _recv(k, call, file, length, flags, want_addr=bool(addr))
    if isinstance(got, int):
        return got
    payload, raw = got
    k.write(buf, payload)
    if addr:
        if raw:
            _out_addr(k, addr, len_ptr, raw)
        else:
            k.write(len_ptr, struct.pack("<I", 0))
    return len(payload)


_MSGHDR = struct.Struct("<QI4xQQQQi4x")


def _iovecs(k: Kernel, addr: int, count: int) -> list[tuple[int, int]]:
    if count > 1024:
        raise Errno(errno.EMSGSIZE)
    raw = k.read(addr, 16 * count)
    return [struct.unpack_from("<QQ", raw, 16 * i) for i in range(count)]


@syscall("sendmsg")
def sys_sendmsg(k: Kernel, call: Call) -> int:
    """Ancillary data (control messages) is not passed on: over IP sockets nothing the program sends needs it."""
    file = _socket_file(k, call)
    name, namelen, iov, iovlen, _control, _controllen, _ = _MSGHDR.unpack(k.read(call.a[1], _MSGHDR.size))
    data = b"".join(k.read(base, min(n, MAX_NET_IO)) for base, n in _iovecs(k, iov, iovlen))[:MAX_NET_IO]
    dest = _dest(k, file, name, namelen)
    if dest is not None:
        call.ev.path = f"{dest[0]}:{dest[1]}"
    return _send(k, call, file, data, call.a[2] & 0xFFFFFFFF, dest)


@syscall("recvmsg")
def sys_recvmsg(k: Kernel, call: Call) -> int:
    file = _socket_file(k, call)
    hdr = call.a[1]
    name, namelen, iov, iovlen, _control, _controllen, _ = _MSGHDR.unpack(k.read(hdr, _MSGHDR.size))
    vecs = _iovecs(k, iov, iovlen)
    for base, n in vecs:
        k.check(base, min(n, MAX_NET_IO))
    if name:
        k.check(name, min(namelen, SOCKADDR_MAX))
    got = _recv(k, call, file, sum(n for _, n in vecs), call.a[2] & 0xFFFFFFFF, want_addr=bool(name))
    if isinstance(got, int):
        return got
    payload, raw = got
    at = 0
    for base, n in vecs:
        piece = payload[at : at + n]
        k.write(base, piece)
        at += len(piece)
        if at >= len(payload):
            break
    raw = raw[:SOCKADDR_MAX]
    if name:
        k.write(name, raw[: min(namelen, len(raw))])
    # msg_namelen, msg_controllen (no control messages) and msg_flags, as the kernel leaves them
    k.write(hdr + 8, struct.pack("<I", len(raw) if name else 0))
    k.write(hdr + 40, struct.pack("<Q", 0))
    k.write(hdr + 48, struct.pack("<i", 0))
    return len(payload)
