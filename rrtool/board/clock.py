"""The board's clock and timer registers: a port-I/O face on the core's virtual clock and timers.

Timer values are staged register by register (a 64-bit deadline takes two
32-bit writes) and take effect only when the guest writes TIMER_CTRL, so a
half-written deadline never arms anything.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from rrtool.board import regs
from rrtool.board.bus import Bus
from rrtool.machine.units import UnitBase


@dataclass
class Staged:
    deadline: int = 0
    period: int = 0


class ClockDevice(UnitBase):
    name = "timers"
    ports = range(regs.CLOCK_LO, regs.TIMER_BASE + regs.NUM_TIMERS * regs.TIMER_STRIDE)
    SAVED = ("_latched", "_staged")

    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self._latched = 0
        self._staged = [Staged() for _ in range(regs.NUM_TIMERS)]

    def reset(self) -> None:
        self._staged = [Staged() for _ in range(regs.NUM_TIMERS)]

    def read(self, port: int, size: int) -> int:
        if port == regs.CLOCK_LO:
            self._latched = self._bus.vclock_at(self._bus.now())
            return self._latched & 0xFFFFFFFF
        if port == regs.CLOCK_HI:
            return self._latched >> 32
        idx, reg = divmod(port - regs.TIMER_BASE, regs.TIMER_STRIDE)
        if port >= regs.TIMER_BASE and 0 <= idx < regs.NUM_TIMERS and reg == regs.TIMER_CTRL:
            return int(self._bus.clock.timers[idx].armed)
        return 0

    def write(self, port: int, size: int, value: int) -> None:
        idx, reg = divmod(port - regs.TIMER_BASE, regs.TIMER_STRIDE)
        if not (port >= regs.TIMER_BASE and 0 <= idx < regs.NUM_TIMERS):
            return
        staged = self._staged[idx]
        value &= 0xFFFFFFFF
        if reg == regs.TIMER_DEADLINE_LO:
            staged.deadline = (staged.deadline & ~0xFFFFFFFF) | value
        elif reg == regs.TIMER_DEADLINE_HI:
            staged.deadline = (staged.deadline & 0xFFFFFFFF) | (value << 32)
        elif reg == regs.TIMER_PERIOD:
            staged.period = value
        elif reg == regs.TIMER_CTRL:
            if value & 1:
                # A deadline past MAX_DEADLINE_NS is refused: the timer stays disarmed and CTRL reads 0.
                self._bus.clock.arm(idx, staged.deadline, staged.period)
            else:
                self._bus.clock.disarm(idx)
            self._bus.timers_changed()

    def state(self) -> bytes:
        out = struct.pack("<Q", self._latched)
        for s in self._staged:
            out += struct.pack("<QQ", s.deadline, s.period)
        return out
