"""Shared helpers for the analysis tests: small synthetic traces written with the real TraceWriter.

Not a test module of its own (it has no tests); the analysis test modules
import from it. Traces hold every kind, block and network ones included,
so the views over them can be checked before those devices exist.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import rrtool.schemas.writer as writer_module
from rrtool.schemas import events as ev
from rrtool.schemas.event import Event
from rrtool.schemas.writer import TraceWriter

META = {
    ev.META_TOOL_VERSION: "test",
    ev.META_MACHINE: '{"ns_per_insn": 1}',
    ev.META_IMAGE_PATH: "/guests/synthetic.elf",
    ev.META_IMAGE_SHA256: "00" * 32,
    ev.META_START_TIME: "2026-01-02T03:04:05+00:00",
    ev.META_HOST: "testhost",
    ev.META_NET: '[{"backend": "pcap", "mac": "52:54:00:12:34:56"}, {"backend": "user", "mac": "52:54:00:12:34:57"}]',
}

MAC_GUEST = bytes.fromhex("525400123456")
MAC_PEER = bytes.fromhex("02000000aa01")


def frame(n: int, size: int = 60, ethertype: int = 0x0800) -> bytes:
    """An Ethernet frame to the guest, numbered `n` in its payload."""
    payload = bytes((n + i) & 0xFF for i in range(size - 14))
    return MAC_GUEST + MAC_PEER + ethertype.to_bytes(2, "big") + payload


def cp(checkpoint: int, icount: int, vclock: int, kind: str = ev.CP_PERIODIC, host_ns: int | None = None) -> Event:
    return Event(
        ev.KIND_CHECKPOINT, "machine", icount, vclock, checkpoint=checkpoint, cp_kind=kind, pc=0x100000 + icount,
        reg_digest=checkpoint * 7 + 1, dev_digest=checkpoint * 11 + 2, host_ns=host_ns if host_ns is not None
        else checkpoint * 1000,
    )  # fmt: skip


def scenario(checkpoints: int = 24) -> list[Event]:
    """A run with every kind: checkpoints every 1000 insns, packets, block requests, irqs, console, warps."""
    events: list[Event] = []
    vclock_extra = 0
    for c in range(checkpoints):
        icount = c * 1000
        kind = ev.CP_PERIODIC
        if c % 6 == 4:
            kind = ev.CP_WARP_START
        if c % 6 == 5:
            kind = ev.CP_WARP_ACCOUNT
            vclock_extra += 500_000
        kind = ev.CP_INIT if c == 0 else (ev.CP_END if c == checkpoints - 1 else kind)
        events.append(cp(c, icount, icount + vclock_extra, kind, host_ns=c * 1000 + (400_000 if c % 6 == 5 else 0)))

        def at(off: int) -> tuple[int, int]:
            return icount + off, icount + off + vclock_extra  # noqa: B023 - used right away

        if kind == ev.CP_WARP_START:
            events.append(Event(ev.KIND_CLOCK_WARP, "clock", icount, icount + vclock_extra, checkpoint=c,
                                warp_ns=500_000))  # fmt: skip
            continue
        if kind == ev.CP_END:
            events[-1].value = 0
            events[-1].text = "exit"
            continue
        if c % 3 == 1:
            i, v = at(0)
            data = frame(c)
            events.append(Event(ev.KIND_NET_RX, "net0", i, v, checkpoint=c, data=data, length=len(data), card=0,
                                flags=0))  # fmt: skip
        if c % 2 == 0:
            i, v = at(100)
            events.append(Event(ev.KIND_IRQ, "intc", i, v, checkpoint=c, pc=0x100400, value=1 << (c % 4)))
        i, v = at(200)
        events.append(Event(ev.KIND_RNG_READ, "rng", i, v, checkpoint=c, value=(c * 2654435761) & 0xFFFFFFFF))
        i, v = at(300)
        events.append(Event(ev.KIND_CONSOLE_OUT, "console", i, v, checkpoint=c, data=f"line {c}\n".encode()))
        if c % 4 == 2:
            i, v = at(400)
            data = MAC_PEER + MAC_GUEST + (0x0806).to_bytes(2, "big") + bytes(28)
            events.append(Event(ev.KIND_NET_TX, "net1", i, v, checkpoint=c, data=data, length=len(data), card=1,
                                flags=0))  # fmt: skip
        if c % 5 == 1:
            i, v = at(500)
            events.append(Event(ev.KIND_BLK_SUBMIT, "block", i, v, checkpoint=c, req_id=c % 2, op="read",
                                sector=c * 8, sectors=8, length=4096))  # fmt: skip
        if c % 5 == 2:  # completes the request submitted at the previous checkpoint
            i, v = at(0)
            events.append(Event(ev.KIND_BLK_COMPLETE, "block", i, v, checkpoint=c, req_id=(c - 1) % 2, op="read",
                                sector=(c - 1) * 8, sectors=8, length=4096, status=0, order=c // 5, flags=0,
                                data=bytes(16)))  # fmt: skip
            events.sort(key=lambda e: (e.checkpoint, e.kind != ev.KIND_CHECKPOINT, e.icount))
    return events


@contextlib.contextmanager
def batch_rows(n: int | None) -> Iterator[None]:
    """Make TraceWriter cut batches after about `n` rows (many batches from a small trace)."""
    old = writer_module.MAX_BUFFERED_ROWS
    if n is not None:
        writer_module.MAX_BUFFERED_ROWS = n
    try:
        yield
    finally:
        writer_module.MAX_BUFFERED_ROWS = old


def write_trace(path: Path, events: list[Event], meta: dict[str, str] | None = None, rows: int | None = None) -> Path:
    """Write `events` (copies; seq is assigned by the writer) to `path` with the real TraceWriter."""
    with batch_rows(rows):
        writer = TraceWriter(path, dict(META if meta is None else meta))
        for e in events:
            writer.append(Event(**{f: getattr(e, f) for f in e.__slots__}))
        writer.close()
    return path


def truncate(src: Path, dst: Path, fraction: float) -> Path:
    """A copy of `src` cut to `fraction` of its size, as a recording killed with SIGKILL leaves it."""
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst
