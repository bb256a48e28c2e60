"""Virtual clock and timers: time is icount * ns_per_insn plus the warps taken while idle."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from rrtool.board import regs
from rrtool.board.base import Bus


@dataclass
class Timer:
    deadline_ns: int = 0
    period_ns: int = 0
    armed: bool = False
    staged_deadline: int = 0
    staged_period: int = 0


class Clock:
    name = "clock"
    ports = range(regs.CLOCK_LO, regs.TIMER_BASE + regs.NUM_TIMERS * regs.TIMER_STRIDE)

    def __init__(self, bus: Bus, ns_per_insn: int) -> None:
        self._bus = bus
        self.ns_per_insn = ns_per_insn
        self.warp_ns = 0  # sum of all warps
        self._latched = 0
        self.timers = [Timer() for _ in range(regs.NUM_TIMERS)]

    def reset(self) -> None:
        """Disarm every timer; virtual time itself never goes back."""
        self.timers = [Timer() for _ in range(regs.NUM_TIMERS)]

    def vclock_at(self, icount: int) -> int:
        return icount * self.ns_per_insn + self.warp_ns

    def icount_for(self, deadline_ns: int) -> int:
        """First icount at which the virtual clock reaches `deadline_ns`."""
        return max(0, -(-(deadline_ns - self.warp_ns) // self.ns_per_insn))

    def read(self, port: int, size: int) -> int:
        if port == regs.CLOCK_LO:
            self._latched = self.vclock_at(self._bus.now())
            return self._latched & 0xFFFFFFFF
        if port == regs.CLOCK_HI:
            return self._latched >> 32
        idx, reg = divmod(port - regs.TIMER_BASE, regs.TIMER_STRIDE)
        if 0 <= idx < regs.NUM_TIMERS and reg == regs.TIMER_CTRL:
            return int(self.timers[idx].armed)
        return 0

    def write(self, port: int, size: int, value: int) -> None:
        idx, reg = divmod(port - regs.TIMER_BASE, regs.TIMER_STRIDE)
        if not (port >= regs.TIMER_BASE and 0 <= idx < regs.NUM_TIMERS):
            return
        t = self.timers[idx]
        value &= 0xFFFFFFFF
        if reg == regs.TIMER_DEADLINE_LO:
            t.staged_deadline = (t.staged_deadline & ~0xFFFFFFFF) | value
        elif reg == regs.TIMER_DEADLINE_HI:
            t.staged_deadline = (t.staged_deadline & 0xFFFFFFFF) | (value << 32)
        elif reg == regs.TIMER_PERIOD:
            t.staged_period = value
        elif reg == regs.TIMER_CTRL:
            t.armed = bool(value & 1)
            if t.armed:
                t.deadline_ns = t.staged_deadline
                t.period_ns = t.staged_period
            self._bus.timers_changed()

    def next_deadline_ns(self) -> int | None:
        armed = [t.deadline_ns for t in self.timers if t.armed]
        return min(armed) if armed else None

    def next_deadline_icount(self) -> int | None:
        ns = self.next_deadline_ns()
        return None if ns is None else self.icount_for(ns)

    def expire(self, icount: int) -> int:
        """Fire every timer due at `icount`; returns the mask of IRQ lines raised."""
        now = self.vclock_at(icount)
        fired = 0
        for i, t in enumerate(self.timers):
            if t.armed and t.deadline_ns <= now:
                fired |= 1 << i
                if t.period_ns:
                    missed = (now - t.deadline_ns) // t.period_ns + 1
                    t.deadline_ns += missed * t.period_ns
                else:
                    t.armed = False
                self._bus.raise_irq(regs.IRQ_TIMER0 + i)
        return fired

    def any_due(self, icount: int) -> bool:
        now = self.vclock_at(icount)
        return any(t.armed and t.deadline_ns <= now for t in self.timers)

    def state(self) -> bytes:
        out = struct.pack("<QQ", self.warp_ns, self._latched)
        for t in self.timers:
            out += struct.pack("<QQ?QQ", t.deadline_ns, t.period_ns, t.armed, t.staged_deadline, t.staged_period)
        return out
