"""Interrupt controller: per-line pending and enable bits and one guest vector.

Delivery itself is the machine's job (it happens only at stops, so its point
in the instruction stream is deterministic); this device only holds state.
"""

from __future__ import annotations

import struct

from rrtool.board import regs
from rrtool.board.bus import Bus
from rrtool.machine.units import UnitBase


class Intc(UnitBase):
    name = "intc"
    SAVED = ("pending", "enable", "vector", "_vector_lo")
    ports = range(regs.IRQ_PENDING, regs.IRQ_VECTOR_HI + 4)

    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self.reset()

    def reset(self) -> None:
        self.pending = 0
        self.enable = 0
        self.vector = 0
        self._vector_lo = 0

    def deliverable(self) -> int:
        return self.pending & self.enable if self.vector else 0

    def raise_line(self, line: int) -> None:
        self.pending |= 1 << line

    def read(self, port: int, size: int) -> int:
        if port == regs.IRQ_PENDING:
            return self.pending
        if port == regs.IRQ_ENABLE:
            return self.enable
        return 0

    def write(self, port: int, size: int, value: int) -> None:
        value &= 0xFFFFFFFF
        if port == regs.IRQ_PENDING:
            self.pending &= ~value
        elif port == regs.IRQ_ENABLE:
            self.enable = value
            if self.deliverable():
                self._bus.request_stop()
        elif port == regs.IRQ_VECTOR_LO:
            self._vector_lo = value
        elif port == regs.IRQ_VECTOR_HI:
            self.vector = (value << 32) | self._vector_lo

    def state(self) -> bytes:
        return struct.pack("<IIQ", self.pending, self.enable, self.vector)
