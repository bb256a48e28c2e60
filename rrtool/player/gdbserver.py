"""The gdb server's socket side: where it may listen, one connection, and Ctrl-C while the replay runs.

Loopback only: a replay server answers anyone who connects, and a trace holds
everything the guest saw, so it is never offered beyond this host.

The socket is read by a thread of its own for the whole session, while the
timeline runs on the caller's thread (Unicorn is not to be touched from two).
The reader acknowledges packets (until no-ack mode), turns the bytes into
events in arrival order and queues them; a Ctrl-C (0x03) also sets the
`interrupt` Event at once, which a running `cont`/`reverse_cont` looks at
between chunks. The main thread clears that Event only when it takes the
Ctrl-C off the queue while nothing runs, so a Ctrl-C that arrives just after a
continue packet still stops that continue, and one that arrives after a stop
was sent is dropped instead of stopping the next continue.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import queue
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from rrtool.player import rsp
from rrtool.player.gdbsession import PACKET_SIZE, GdbSession
from rrtool.player.timeline import Timeline

#: How long a reply may wait for gdb to read before the connection counts as gone.
SEND_TIMEOUT_S = 30
#: Events held for the main thread; past this the reader stops reading for a while (TCP pushes back on the peer).
QUEUE_LIMIT = 4096
DISCONNECTED = "disconnected"


class GdbError(Exception):
    """The server cannot listen where it was asked (not loopback, a bad port, the port in use); one line."""


def parse_address(text: str) -> tuple[str, int]:
    """`HOST:PORT`, `[::1]:PORT` or `PORT` (meaning 127.0.0.1:PORT), the host a loopback address."""
    value = text.strip()
    if value.isascii() and value.isdigit():
        host, port_text = "127.0.0.1", value
    elif value.startswith("["):
        host, _, rest = value[1:].partition("]")
        if not rest.startswith(":"):
            raise GdbError(f"--gdb {text!r}: give [ADDRESS]:PORT")
        port_text = rest[1:]
    else:
        host, sep, port_text = value.rpartition(":")
        if not sep:
            raise GdbError(f"--gdb {text!r}: give 127.0.0.1:PORT or PORT")
    if host == "localhost":
        host = "127.0.0.1"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise GdbError(f"--gdb {text!r}: {host!r} is not an IP address (give 127.0.0.1:PORT or PORT)") from None
    if not ip.is_loopback:
        raise GdbError(f"--gdb {text!r}: {host} is not a loopback address; the gdb server listens on loopback only")
    if not (port_text.isascii() and port_text.isdigit()) or int(port_text) > 65535:
        raise GdbError(f"--gdb {text!r}: the port must be a number from 0 to 65535 (0 picks a free one)")
    return str(ip), int(port_text)


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on a loopback address (`parse_address`'s result); port 0 picks a free one."""
    if not ipaddress.ip_address(host).is_loopback:
        raise GdbError(f"{host} is not a loopback address")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=1)
    except OSError as exc:  # create_server's message names the address again: the errno's words are enough
        raise GdbError(f"cannot listen on {host}:{port}: {os.strerror(exc.errno) if exc.errno else exc}") from None


@dataclass(frozen=True)
class Closed:
    """The peer closed the connection (or it broke)."""


class Connection:
    """One gdb's socket: a reader thread, an event queue, acks, and the Ctrl-C Event (module docstring)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.interrupt = threading.Event()
        self._queue: queue.Queue[rsp.Event | Closed] = queue.Queue()
        self._closing = False
        self._send_lock = threading.Lock()
        self._decoder = rsp.Decoder(PACKET_SIZE)
        self._ack = True
        self._last = b""
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # one small packet per round trip
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", SEND_TIMEOUT_S, 0))
        self._reader = threading.Thread(target=self._read, name="gdb-reader", daemon=True)
        self._reader.start()

    def next(self) -> rsp.Event | Closed:
        return self._queue.get()

    def stop_acks(self) -> None:
        """No-ack mode: from the next packet on, neither side acknowledges."""
        self._ack = False

    def send(self, payload: bytes) -> None:
        """Send one packet (raises OSError when the peer is gone)."""
        self._last = rsp.frame(payload)
        self._raw(self._last)

    def resend(self) -> None:
        if self._last:
            self._raw(self._last)

    def close(self) -> None:
        self._closing = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._reader.join(timeout=5)

    def _raw(self, data: bytes) -> None:
        with self._send_lock:
            self.sock.sendall(data)

    def _read(self) -> None:
        try:
            while data := self.sock.recv(65536):
                while self._queue.qsize() > QUEUE_LIMIT and not self._closing:
                    time.sleep(0.01)  # a peer that sends faster than we answer waits (TCP pushes back)
                for event in self._decoder.feed(data):
                    if isinstance(event, rsp.Packet) and self._ack:
                        self._raw(b"+")
                    elif isinstance(event, rsp.BadPacket) and self._ack:
                        self._raw(b"-")  # gdb sends it again
                        continue
                    elif isinstance(event, rsp.Ack):
                        continue
                    elif isinstance(event, rsp.Interrupt):
                        self.interrupt.set()
                    self._queue.put(event)
        except OSError:
            pass
        finally:
            self.interrupt.set()  # a continue in progress stops: nobody is waiting for it
            self._queue.put(Closed())


def serve(timeline: Timeline, listener: socket.socket, on_message: Callable[[str], None] | None = None) -> str:
    """Wait for one gdb on `listener`, serve it until it detaches, kills or goes; return which (for the caller).

    `on_message` gets what the user at the server should see (a divergence report, an internal error).
    """
    with listener:  # one gdb per replay: the listener closes once it has come, or on any error
        sock, _peer = listener.accept()
    try:
        conn = Connection(sock)
    except BaseException:
        sock.close()
        raise
    session = GdbSession(timeline, on_message)
    try:
        while True:
            event = conn.next()
            if isinstance(event, Closed):
                return DISCONNECTED
            if isinstance(event, rsp.Nak):
                conn.resend()
            elif isinstance(event, rsp.Interrupt):
                conn.interrupt.clear()  # nothing runs: a late Ctrl-C must not stop the next continue
            elif isinstance(event, rsp.BadPacket):
                conn.send(b"E01")  # no-ack mode: nothing will resend it, so say it failed
            elif isinstance(event, rsp.Packet):
                replies = _handle(session, event.payload, conn.interrupt, on_message)
                if session.no_ack:
                    conn.stop_acks()  # before the OK goes out: gdb's next packet comes unacknowledged
                for reply in replies:
                    conn.send(reply)
                if session.ended is not None:
                    return session.ended
    except OSError:
        return DISCONNECTED
    finally:
        conn.close()


def _handle(
    session: GdbSession, payload: bytes, interrupt: threading.Event, on_message: Callable[[str], None] | None
) -> list[bytes]:
    """The session's replies; a bug in answering one packet is reported and answered E01, not the end of gdb."""
    try:
        return session.handle(payload, interrupt)
    except Exception as exc:
        if on_message is not None:
            on_message(f"rrtool: internal error answering gdb's {payload[:40]!r}: {type(exc).__name__}: {exc}")
        return [b"E01"]


__all__ = ["DISCONNECTED", "Connection", "GdbError", "listen", "parse_address", "serve"]
