"""The main job on built-in defaults: a kvstore guest, a scripted UDP client, record, replay, verify.

It is what `rrtool demo` (the README's first command) runs: everything a user
would do by hand with `rrtool record kvstore --disk ... --net user,hostfwd=...`,
a UDP client, and `rrtool replay`.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rrtool.board.disk import DiskSpec
from rrtool.board.host import HostSetup
from rrtool.board.net.spec import HostFwd, NetSpec
from rrtool.guest.build import ensure_example
from rrtool.player.session import ReplayResult, replay
from rrtool.recorder.session import RecordResult, record

#: The client's script: each request and the reply prefix it waits for.
SCRIPT: tuple[tuple[bytes, bytes], ...] = (
    (b"PUT greeting hello from the guest", b"OK"),
    (b"PUT answer 42", b"OK"),
    (b"GET greeting", b"VALUE"),
    (b"DEL greeting", b"OK"),
    (b"GET greeting", b"NOTFOUND"),
    (b"RESTART", b"RESTARTING"),
    (b"GET answer", b"VALUE"),
    (b"STATS", b"STATS"),
    (b"QUIT", b"BYE"),
)


@dataclass
class DemoResult:
    trace: Path
    disk: Path
    recording: RecordResult
    replay: ReplayResult
    transcript: list[tuple[str, str]] = field(default_factory=list)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_client(port: int, transcript: list[tuple[str, str]], tries: int = 40) -> None:
    """Send each request until its reply comes (the first ones may arrive while the guest boots)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.25)
        for request, expect in SCRIPT:
            reply = b"(no reply)"
            for _ in range(tries):
                sock.sendto(request, ("127.0.0.1", port))
                try:
                    data, _ = sock.recvfrom(2048)
                except TimeoutError:
                    continue
                if data.startswith(expect):
                    reply = data
                    break
            transcript.append((request.decode(), reply.decode(errors="replace")))


def run_demo(workdir: Path, console_sink: Callable[[bytes], None] | None = None,
             say: Callable[[str], None] = print) -> DemoResult:  # fmt: skip
    """Record a scripted kvstore session through user networking, then replay it with no disk and no network."""
    workdir.mkdir(parents=True, exist_ok=True)
    image = ensure_example("kvstore")
    disk = workdir / "kvstore.img"
    disk.write_bytes(bytes(1 << 20))
    trace = workdir / "kvstore.arrow"
    port = free_udp_port()
    host = HostSetup(
        disk=DiskSpec(disk),
        nets=(NetSpec.parse(f"user,hostfwd=udp:127.0.0.1:{port}-:5555", 0),),
    )
    assert host.nets[0].hostfwd == (HostFwd("127.0.0.1", port, 5555),)
    transcript: list[tuple[str, str]] = []
    client = threading.Thread(target=run_client, args=(port, transcript), daemon=True)
    say(f"1. record: kvstore guest, disk {disk} (copy-on-write), UDP 127.0.0.1:{port} -> guest port 5555")
    client.start()
    rec = record(image, trace, host=host, console_sink=console_sink)
    client.join(timeout=10)
    say(f"2. replay: {trace} (no disk, no sockets, no waiting)")
    rep = replay(trace)
    return DemoResult(trace=trace, disk=disk, recording=rec, replay=rep, transcript=transcript)
