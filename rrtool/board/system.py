"""System controller: guest exit and an exact instruction counter readable by the guest."""

from __future__ import annotations

import struct

from rrtool.board import regs
from rrtool.board.bus import Bus
from rrtool.machine.units import UnitBase


class System(UnitBase):
    name = "system"
    SAVED = ("_latched", "exit_code")
    ports = range(regs.SYS_EXIT, regs.SYS_RESET + 4)

    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self._latched = 0
        self.exit_code: int | None = None

    def reset(self) -> None:
        self._latched = 0
        self.exit_code = None

    def read(self, port: int, size: int) -> int:
        if port == regs.SYS_ICOUNT_LO:
            self._latched = self._bus.now()
            return self._latched & 0xFFFFFFFF
        if port == regs.SYS_ICOUNT_HI:
            return self._latched >> 32
        return 0

    def write(self, port: int, size: int, value: int) -> None:
        if port == regs.SYS_RESET:
            self._bus.guest_reset()
        elif port == regs.SYS_EXIT and self.exit_code is None:
            code = value & 0xFFFFFFFF
            self.exit_code = code - (1 << 32) if code & 0x80000000 else code
            self._bus.guest_exit(self.exit_code)

    def state(self) -> bytes:
        return struct.pack("<Qq", self._latched, -1 if self.exit_code is None else self.exit_code)
