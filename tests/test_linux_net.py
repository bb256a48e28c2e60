"""Sockets, pipes and waits of real static Linux programs: recorded against live loopback peers, replayed without them.

Every program here is C built with the host's gcc (`-static`) from the source
in the test, so what runs is what libc really does. A peer (a Python server or
client on 127.0.0.1, in a thread) exists only while recording; replay runs
after it is gone and must produce the same output from the trace alone. No
test talks to anything but loopback: the one that names 10.1.2.3 checks that
the sandbox refuses it.
"""

from __future__ import annotations

import contextlib
import http.server
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import xxhash

from rrtool.linux.host import LinuxSetup
from rrtool.machine.config import RunResult
from rrtool.player import session as player
from rrtool.recorder import session
from rrtool.schemas.event import Event
from rrtool.schemas.tracefile import open_tracefile

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs the host gcc to build static programs")

HEADERS = r"""
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
/* The result of a call and its errno, read after the call (printf's arguments have no order). */
static void show(const char *what, long ret) { printf("%s: %ld %s\n", what, ret, ret < 0 ? strerror(errno) : "ok"); }
"""


@dataclass
class Recorded:
    result: RunResult
    output: bytes
    trace: Path
    program: Path


def build(tmp_path: Path, name: str, source: str) -> Path:
    """A static x86-64 Linux executable from C source (the headers above are included)."""
    src = tmp_path / f"{name}.c"
    src.write_text(HEADERS + source)
    exe = tmp_path / name
    done = subprocess.run(["gcc", "-static", "-O1", "-o", str(exe), str(src)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return exe


def record(program: Path, args: tuple[str, ...], root: Path, *,
           on_output: Callable[[bytes], None] | None = None) -> Recorded:  # fmt: skip
    """Record a live run of `program` (no stdin) through the record session, into a trace beside it."""
    out = bytearray()

    def sink(data: bytes) -> None:
        out.extend(data)
        if on_output is not None:
            on_output(bytes(out))

    trace = root / f"{program.name}.arrow"
    done = session.record(program, trace, linux=LinuxSetup(args=args, root=root, stdin=False), console_sink=sink)
    return Recorded(done.run, bytes(out), trace, program)


def replay(rec: Recorded) -> tuple[RunResult, bytes]:
    """Replay a recording through the replay session (no host behind the process); it must verify."""
    out = bytearray()
    done = player.replay(rec.trace, image=rec.program, console_sink=out.extend)
    assert done.verified, done.divergence
    assert done.run is not None
    return done.run, bytes(out)


def rows(rec: Recorded, name: str) -> list[Event]:
    with open_tracefile(rec.trace) as trace:
        return [e for batch in trace.batches() for e in (Event(**r) for r in batch.to_pylist()) if e.syscall == name]


def round_trip(rec: Recorded) -> bytes:
    """Replay `rec` and check it ends as the recording did, with the same output; returns that output."""
    assert rec.result.reason == "exit", rec.result.message
    result, out = replay(rec)
    assert (result.reason, result.exit_code, result.icount) == (rec.result.reason, rec.result.exit_code,
                                                                 rec.result.icount)  # fmt: skip
    assert out == rec.output
    return out


@contextlib.contextmanager
def serve_once(*, hold_open: bool = False) -> Iterator[tuple[int, list[bytes]]]:
    """A one-connection TCP server on 127.0.0.1: reads once, answers in two pieces, then closes (or, with
    `hold_open`, waits for the client to close first, so the client sees no end of file)."""
    listener = socket.create_server(("127.0.0.1", 0))
    got: list[bytes] = []

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(5)
            got.append(conn.recv(100))
            conn.sendall(b"first piece, ")
            time.sleep(0.02)
            conn.sendall(b"second piece\n")
            while hold_open and conn.recv(100):
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], got
    finally:
        thread.join(5)
        listener.close()


@pytest.fixture
def tcp_server() -> Iterator[tuple[int, list[bytes]]]:
    with serve_once() as server:
        yield server


TCP_CLIENT = r"""
int main(int argc, char **argv) {
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(s, (struct sockaddr *)&a, sizeof a) != 0) { perror("connect"); return 1; }
    struct sockaddr_in peer; socklen_t len = sizeof peer;
    getpeername(s, (struct sockaddr *)&peer, &len);
    printf("peer port ok: %d\n", ntohs(peer.sin_port) == atoi(argv[1]));
    const char *msg = "hello from the guest\n";
    if (write(s, msg, strlen(msg)) != (ssize_t)strlen(msg)) { perror("write"); return 1; }
    char buf[256]; size_t total = 0; ssize_t n;
    while ((n = read(s, buf + total, sizeof buf - 1 - total)) > 0) total += n;
    buf[total] = 0;
    printf("received %zu bytes: %s", total, buf);
    close(s);
    return 0;
}
"""


def test_tcp_client_replays_without_the_server(tmp_path: Path, tcp_server: tuple[int, list[bytes]]) -> None:
    port, got = tcp_server
    prog = build(tmp_path, "tcp_client", TCP_CLIENT)
    rec = record(prog, (str(port),), tmp_path)
    assert rec.output == b"peer port ok: 1\nreceived 26 bytes: first piece, second piece\n", rec.result
    assert got == [b"hello from the guest\n"]
    reads = [e for e in rows(rec, "read") if e.fd == 3]
    assert b"".join(e.data or b"" for e in reads) == b"first piece, second piece\n"
    writes = [e for e in rows(rec, "write") if e.fd == 3]
    assert writes and writes[0].length == len(b"hello from the guest\n")
    assert round_trip(rec) == rec.output  # the server is gone: replay is the trace alone


TCP_SERVER = r"""
int main(void) {
    int l = socket(AF_INET6, SOCK_STREAM, 0);
    int on = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    if (bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 4)) { perror("bind/listen"); return 1; }
    socklen_t len = sizeof a;
    getsockname(l, (struct sockaddr *)&a, &len);
    printf("port %d\n", ntohs(a.sin6_port)); fflush(stdout);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 77};
    epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev);
    struct epoll_event out[4];
    int n = epoll_wait(ep, out, 4, 5000);
    printf("epoll %d data %llu\n", n, (unsigned long long)out[0].data.u64);
    struct sockaddr_in6 peer; socklen_t plen = sizeof peer;
    int c = accept4(l, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK);
    char text[64];
    inet_ntop(AF_INET6, &peer.sin6_addr, text, sizeof text);
    printf("accepted from %s (len %u)\n", text, plen);
    char buf[64];
    ssize_t got = recv(c, buf, sizeof buf, 0);
    while (got < 0 && errno == EAGAIN) {
        struct pollfd p = {.fd = c, .events = POLLIN};
        poll(&p, 1, 5000);
        got = recv(c, buf, sizeof buf, 0);
    }
    printf("got %zd: %.*s\n", got, (int)got, buf);
    send(c, "pong", 4, MSG_NOSIGNAL);
    shutdown(c, SHUT_WR);
    close(c); close(l); close(ep);
    return 0;
}
"""


def test_tcp_server_accepts_a_python_client(tmp_path: Path) -> None:
    prog = build(tmp_path, "tcp_server", TCP_SERVER)
    answers: list[bytes] = []
    started = threading.Event()

    def client(port: int) -> None:
        with socket.create_connection(("::1", port), timeout=5) as c:
            c.sendall(b"ping")
            answers.append(c.recv(10))

    def watch(out: bytes) -> None:
        if not started.is_set() and out.startswith(b"port ") and b"\n" in out:
            started.set()
            threading.Thread(target=client, args=(int(out.split()[1]),), daemon=True).start()

    rec = record(prog, (), tmp_path, on_output=watch)
    lines = rec.output.decode().splitlines()
    assert lines[1:] == ["epoll 1 data 77", "accepted from ::1 (len 28)", "got 4: ping"], rec.result
    accepted = rows(rec, "accept4")
    assert len(accepted) == 1 and accepted[0].ret == 5 and accepted[0].data and len(accepted[0].data) == 28
    assert round_trip(rec) == rec.output


UDP_SERVER = r"""
#include <ctype.h>
int main(void) {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    bind(s, (struct sockaddr *)&a, sizeof a);
    socklen_t len = sizeof a;
    getsockname(s, (struct sockaddr *)&a, &len);
    printf("port %d\n", ntohs(a.sin_port)); fflush(stdout);
    for (int i = 0; i < 3; i++) {
        char buf[64]; struct sockaddr_in from; socklen_t flen = sizeof from;
        ssize_t n = recvfrom(s, buf, sizeof buf, 0, (struct sockaddr *)&from, &flen);
        for (ssize_t j = 0; j < n; j++) buf[j] = toupper(buf[j]);
        sendto(s, buf, n, 0, (struct sockaddr *)&from, flen);
        printf("datagram %d: %.*s\n", i, (int)n, buf);
    }
    struct msghdr m = {0}; char buf[16]; struct iovec v = {buf, sizeof buf};
    struct sockaddr_in from; m.msg_name = &from; m.msg_namelen = sizeof from; m.msg_iov = &v; m.msg_iovlen = 1;
    ssize_t n = recvmsg(s, &m, 0);
    printf("recvmsg %zd: %.*s namelen %u\n", n, (int)n, buf, m.msg_namelen);
    v.iov_len = n;
    printf("sendmsg %zd\n", sendmsg(s, &m, 0));
    return 0;
}
"""


def test_udp_server_answers_a_python_client(tmp_path: Path) -> None:
    prog = build(tmp_path, "udp_server", UDP_SERVER)
    replies: list[bytes] = []
    started = threading.Event()

    def client(port: int) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
            c.settimeout(5)
            for word in (b"alpha", b"beta", b"gamma", b"delta"):
                c.sendto(word, ("127.0.0.1", port))
                replies.append(c.recv(64))

    def watch(out: bytes) -> None:
        if not started.is_set() and out.startswith(b"port ") and b"\n" in out:
            started.set()
            threading.Thread(target=client, args=(int(out.split()[1]),), daemon=True).start()

    rec = record(prog, (), tmp_path, on_output=watch)
    assert rec.output.decode().splitlines()[1:] == [
        "datagram 0: ALPHA", "datagram 1: BETA", "datagram 2: GAMMA", "recvmsg 5: delta namelen 16", "sendmsg 5",
    ], rec.result  # fmt: skip
    assert replies == [b"ALPHA", b"BETA", b"GAMMA", b"delta"]
    assert round_trip(rec) == rec.output


PIPES = r"""
static long now_ms(void) {
    struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000 + t.tv_nsec / 1000000;
}
int main(void) {
    int p[2];
    if (pipe2(p, O_NONBLOCK)) { perror("pipe2"); return 1; }
    char buf[32];
    show("empty read", read(p[0], buf, sizeof buf));
    struct pollfd f[2] = {{.fd = p[0], .events = POLLIN}, {.fd = p[1], .events = POLLOUT}};
    int r = poll(f, 2, 0);
    printf("poll: %d in=%d out=%d\n", r, f[0].revents, f[1].revents);
    long t0 = now_ms();
    printf("timeout: %d\n", poll(f, 1, 50));
    printf("waited at least 50 ms: %d\n", now_ms() - t0 >= 50);
    write(p[1], "through the pipe", 16);
    r = poll(f, 1, -1);
    printf("poll: %d in=%d\n", r, f[0].revents);
    fd_set rs; FD_ZERO(&rs); FD_SET(p[0], &rs);
    struct timeval tv = {1, 0};
    r = select(p[0] + 1, &rs, NULL, NULL, &tv);
    printf("select: %d set=%d\n", r, FD_ISSET(p[0], &rs));
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = p[0]};
    epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev);
    struct epoll_event out;
    r = epoll_wait(ep, &out, 1, -1);
    printf("epoll: %d fd=%d\n", r, out.data.fd == p[0]);
    int regular = open("/data.txt", O_RDONLY);
    show("epoll on a file", epoll_ctl(ep, EPOLL_CTL_ADD, regular, &ev));
    struct pollfd rf = {.fd = regular, .events = POLLIN};
    printf("file ready: %d\n", poll(&rf, 1, -1));
    ssize_t n = read(p[0], buf, 7);
    printf("read %zd: %.*s\n", n, (int)n, buf);
    close(p[1]);
    r = poll(f, 1, -1);
    printf("poll after close: %d hup=%d\n", r, (f[0].revents & POLLHUP) != 0);
    n = read(p[0], buf, sizeof buf);
    printf("rest %zd: %.*s\n", n, (int)n, buf);
    printf("eof: %zd\n", read(p[0], buf, sizeof buf));
    struct pollfd in = {.fd = 0, .events = POLLIN};
    r = poll(&in, 1, -1);
    printf("stdin: %d %d\n", r, in.revents);
    return 0;
}
"""


def test_pipe_and_poll_are_the_kernels_own(tmp_path: Path) -> None:
    (tmp_path / "data.txt").write_text("some data\n")
    prog = build(tmp_path, "pipes", PIPES)
    rec = record(prog, (), tmp_path)
    assert rec.output.decode().splitlines() == [
        "empty read: -1 Resource temporarily unavailable",
        "poll: 1 in=0 out=4",
        "timeout: 0",
        "waited at least 50 ms: 1",
        "poll: 1 in=1",
        "select: 1 set=1",
        "epoll: 1 fd=1",
        "epoll on a file: -1 Operation not permitted",
        "file ready: 1",
        "read 7: through",
        "poll after close: 1 hup=1",
        "rest 9:  the pipe",
        "eof: 0",
        "stdin: 1 1",
    ], rec.result
    assert all(e.data is None for e in rows(rec, "read") if e.fd == 3)  # a pipe's bytes are never event data
    polls = rows(rec, "poll")
    assert [e.data for e in polls][-1] == b"\x01\x00"  # stdin is a host object: its revents are the row's data
    assert all(e.data is None for e in polls[:-1])  # pipes and files are computed, in replay too
    assert round_trip(rec) == rec.output


def test_blocking_read_of_an_empty_pipe_with_no_other_task_is_a_clear_hang(tmp_path: Path) -> None:
    prog = build(tmp_path, "stuck", "int main(void) { int p[2]; char c; pipe(p); return read(p[0], &c, 1); }")
    rec = record(prog, (), tmp_path)
    assert rec.result.reason == "hang", rec.result
    assert "every task is blocked" in rec.result.message and "1000 (read pipe:[" in rec.result.message
    result, _ = replay(rec)
    assert (result.reason, result.icount) == ("hang", rec.result.icount)


UNREACHABLE = r"""
int main(void) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(80)};
    inet_pton(AF_INET, "10.1.2.3", &a.sin_addr);
    show("connect", connect(s, (struct sockaddr *)&a, sizeof a));
    show("bind", bind(s, (struct sockaddr *)&a, sizeof a));
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    inet_pton(AF_INET, "8.8.8.8", &a.sin_addr);
    show("sendto", sendto(u, "x", 1, 0, (struct sockaddr *)&a, sizeof a));
    show("unix", socket(AF_UNIX, SOCK_STREAM, 0));
    show("not a socket", listen(1, 1));
    return 0;
}
"""


def test_non_loopback_addresses_are_refused_deterministically(tmp_path: Path) -> None:
    prog = build(tmp_path, "unreach", UNREACHABLE)
    rec = record(prog, (), tmp_path)
    assert rec.output.decode().splitlines() == [
        "connect: -1 Network is unreachable",
        "bind: -1 Cannot assign requested address",
        "sendto: -1 Network is unreachable",
        "unix: -1 Address family not supported by protocol",
        "not a socket: -1 Socket operation on non-socket",
    ], rec.result
    (connect,) = rows(rec, "connect")
    assert connect.data is None and connect.ret == -101  # decided from the arguments: no host call
    assert round_trip(rec) == rec.output


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.mark.skipif(not Path("/bin/busybox").exists(), reason="needs Debian's busybox-static")
def test_busybox_wget_fetches_from_a_local_http_server(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "x").write_text("served over loopback\n" * 50)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: _Quiet(*a, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        busybox = tmp_path / "busybox"
        shutil.copy("/bin/busybox", busybox)
        url = f"http://127.0.0.1:{server.server_address[1]}/x"
        rec = record(busybox, ("wget", "-q", "-O", "-", url), tmp_path)
    finally:
        server.shutdown()
        server.server_close()
    assert rec.output == b"served over loopback\n" * 50, rec.result
    assert round_trip(rec) == rec.output


TCP_NONBLOCKING = r"""
int main(int argc, char **argv) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    int r = socket(AF_INET, SOCK_STREAM, 0);
    show("refused", connect(r, (struct sockaddr *)&a, sizeof a));
    a.sin_port = htons(atoi(argv[1]));
    int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    show("connect", connect(s, (struct sockaddr *)&a, sizeof a));
    struct pollfd p = {.fd = s, .events = POLLOUT};
    int n = poll(&p, 1, 5000);
    printf("writable: %d %d\n", n, p.revents);
    int err = -1; socklen_t len = sizeof err;
    getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len);
    printf("SO_ERROR %d len %u\n", err, len);
    fcntl(s, F_SETFL, fcntl(s, F_GETFL) & ~O_NONBLOCK);
    struct timeval tv = {0, 200000};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct iovec v[2] = {{"hello ", 6}, {"there\n", 6}};
    show("writev", writev(s, v, 2));
    char buf[64];
    show("waitall", recv(s, buf, 26, MSG_WAITALL));
    printf("%.26s", buf);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    show("timed out", recv(s, buf, sizeof buf, 0));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("after 200 ms: %d\n", (t1.tv_sec - t0.tv_sec) * 1000000000L + t1.tv_nsec - t0.tv_nsec >= 200000000L);
    show("peek", recv(s, buf, 1, MSG_PEEK | MSG_DONTWAIT));
    return 0;
}
"""


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_nonblocking_connect_poll_and_receive_timeouts(tmp_path: Path) -> None:
    """EINPROGRESS then POLLOUT, a refused port, MSG_WAITALL across two sends, SO_RCVTIMEO running out."""
    prog = build(tmp_path, "tcp_nonblocking", TCP_NONBLOCKING)
    with serve_once(hold_open=True) as (port, got):
        rec = record(prog, (str(port), str(_closed_port())), tmp_path)
    assert rec.output.decode().splitlines() == [
        "refused: -1 Connection refused",
        "connect: -1 Operation now in progress",
        "writable: 1 4",
        "SO_ERROR 0 len 4",
        "writev: 12 ok",
        "waitall: 26 ok",
        "first piece, second piece",
        "timed out: -1 Resource temporarily unavailable",
        "after 200 ms: 1",
        "peek: -1 Resource temporarily unavailable",
    ], rec.result
    assert got == [b"hello there\n"]
    assert round_trip(rec) == rec.output


def test_a_tampered_receive_is_rejected(tmp_path: Path, tcp_server: tuple[int, list[bytes]]) -> None:
    """A trace whose received bytes disagree with the call's result cannot be replayed into guest memory."""
    from tests.tracetools import read_rows, write_rows

    port, _ = tcp_server
    prog = build(tmp_path, "tcp_client", TCP_CLIENT)
    rec = record(prog, (str(port),), tmp_path)
    table = read_rows(rec.trace)
    row = next(r for r in table if r["syscall"] == "read" and r["fd"] == 3 and r["data"])
    row["data"] = row["data"] + b"extra"
    row["value"] = xxhash.xxh3_64_intdigest(row["data"])  # a self-consistent lie: only the result disagrees
    bad = tmp_path / "bad.arrow"
    write_rows(rec.trace, bad, table)
    done = player.replay(bad, image=prog)
    assert done.divergence is not None and "not the number of bytes" in done.divergence.what


def test_a_stop_request_ends_a_blocked_accept(tmp_path: Path) -> None:
    """Ctrl-C during an accept nobody answers: the host wait sees the stop within a slice, the row says EINTR."""
    prog = build(
        tmp_path,
        "waits_forever",
        r"""
int main(void) {
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(l, (struct sockaddr *)&a, sizeof a);
    listen(l, 1);
    show("accept", accept(l, NULL, NULL));
    return 0;
}
""",
    )
    ports: list[object] = []

    def on_checkpoint(_cp: Event, port: object) -> None:
        if not ports:
            ports.append(port)
            threading.Timer(0.3, port.request_stop).start()  # type: ignore[attr-defined]

    started = time.monotonic()
    out = bytearray()
    done = session.record(prog, tmp_path / "stopped.arrow", linux=LinuxSetup(root=tmp_path, stdin=False),
                          on_checkpoint=on_checkpoint, console_sink=out.extend)  # fmt: skip
    assert time.monotonic() - started < 5
    assert out == b"accept: -1 Interrupted system call\n"
    assert done.run.reason == "exit", done.run  # the program gave up on EINTR before the next checkpoint
    (accept,) = rows(Recorded(done.run, b"", done.trace, prog), "accept")
    assert accept.ret == -4  # EINTR, logged like any result
    replayed = player.replay(done.trace, image=prog)
    assert replayed.verified, replayed.divergence
