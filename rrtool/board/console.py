"""Serial console: output is deterministic (logged, compared in replay); input is an async event.

The unit and its host backend (stdin read on a thread, `ConsoleInput`) sit side by side.
"""

from __future__ import annotations

import os
import struct
import threading
from collections import deque
from collections.abc import Callable

from rrtool.board import regs
from rrtool.board.bus import Bus
from rrtool.machine.units import UnitBase
from rrtool.schemas.event import Event
from rrtool.schemas.names import KIND_CONSOLE_IN, KIND_CONSOLE_OUT

#: Output is logged per line (or per checkpoint for a partial line), not per byte:
#: a row per byte would make the trace mostly console rows.
_MAX_CHUNK = 4096


class Console(UnitBase):
    name = "console"
    kinds = (KIND_CONSOLE_OUT, KIND_CONSOLE_IN)
    applies = (KIND_CONSOLE_IN,)
    SAVED = ("_out", "_out_icount", "_in", "_buf_addr")
    ports = range(regs.CON_BUF_ADDR, regs.CON_STATUS + 4)

    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self._out = bytearray()
        self._out_icount = 0
        self._in: deque[int] = deque()
        self._buf_addr = 0

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
        self._bus.guest_output(data)
        self._bus.port.emit(Event(KIND_CONSOLE_OUT, self.name, at, self._bus.vclock_at(at), data=data))

    def apply(self, event: Event) -> None:
        """Console input arrived (at a checkpoint): queue it and interrupt the guest."""
        if event.data:
            self._in.extend(event.data)
            self._bus.raise_irq(regs.IRQ_CONSOLE)

    def state(self) -> bytes:
        return struct.pack("<QQ", len(self._in), len(self._out)) + bytes(self._in) + bytes(self._out)


class ConsoleInput:
    """Console input from a file descriptor (stdin by default), read on its own thread."""

    def __init__(self, fd: int = 0) -> None:
        self._fd = fd
        self._eof = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, post: Callable[[Event], None]) -> None:
        def pump() -> None:
            try:
                while True:
                    data = os.read(self._fd, 4096)
                    if not data:
                        break
                    post(Event(KIND_CONSOLE_IN, "console", 0, 0, data=data))
            except OSError:
                pass
            finally:
                self._eof.set()

        self._thread = threading.Thread(target=pump, name="console-input", daemon=True)
        self._thread.start()

    def alive(self) -> bool:
        return not self._eof.is_set()

    def close(self) -> None:
        return None  # a daemon thread blocked in read(); it ends with the process
