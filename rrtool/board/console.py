"""Serial console: output is deterministic (logged, compared in replay); input is an async event."""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Callable

from rrtool.board import regs
from rrtool.board.base import Bus
from rrtool.schemas.event import Event
from rrtool.schemas.events import KIND_CONSOLE_OUT

#: Output is logged per line (or per checkpoint for a partial line), not per byte:
#: a row per byte would make the trace mostly console rows.
_MAX_CHUNK = 4096


class Console:
    name = "console"
    ports = range(regs.CON_BUF_ADDR, regs.CON_STATUS + 4)

    def __init__(self, bus: Bus, sink: Callable[[bytes], None] | None) -> None:
        self._bus = bus
        self._sink = sink
        self._out = bytearray()
        self._out_icount = 0
        self._in: deque[int] = deque()
        self._buf_addr = 0
        self.output = bytearray()  # everything the guest printed, for callers and tests

    def read(self, port: int, size: int) -> int:
        if port == regs.CON_DATA:
            return self._in.popleft() if self._in else regs.NONE_WAITING
        if port == regs.CON_STATUS:
            return 1 if self._in else 0
        return regs.NONE_WAITING

    def write(self, port: int, size: int, value: int) -> None:
        if port == regs.CON_DATA:
            self._put(bytes([value & 0xFF]), value & 0xFF == 0x0A)
        elif port == regs.CON_BUF_ADDR:
            self._buf_addr = value & 0xFFFFFFFF
        elif port == regs.CON_BUF_LEN:
            # A whole string in one port write: one exit to the host instead of one per byte.
            length = value & 0xFFFFFFFF
            if 0 < length <= regs.CON_BUF_MAX and self._bus.ram_ok(self._buf_addr, length):
                data = self._bus.mem_read(self._buf_addr, length)
                self._put(data, b"\n" in data)

    def _put(self, data: bytes, newline: bool) -> None:
        self._out += data
        if newline or len(self._out) >= _MAX_CHUNK:
            self._out_icount = self._bus.now()
            cut = self._out.rfind(b"\n") + 1 or len(self._out)
            rest = bytes(self._out[cut:])
            del self._out[cut:]
            self.flush()
            self._out += rest

    def flush(self, icount: int | None = None) -> None:
        """Emit buffered output as one console_out event (at a newline or a checkpoint)."""
        if not self._out:
            return
        data = bytes(self._out)
        self._out.clear()
        at = self._out_icount if icount is None else icount
        self.output += data
        if self._sink is not None:
            self._sink(data)
        self._bus.port.emit(Event(KIND_CONSOLE_OUT, self.name, at, self._bus.vclock_at(at), data=data))

    def feed(self, data: bytes) -> None:
        """Console input arrived (at a checkpoint): queue it and interrupt the guest."""
        self._in.extend(data)
        self._bus.raise_irq(regs.IRQ_CONSOLE)

    def state(self) -> bytes:
        return struct.pack("<QQ", len(self._in), len(self._out)) + bytes(self._in) + bytes(self._out)
