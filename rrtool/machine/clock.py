"""Virtual time and guest timers: time is icount * ns_per_insn plus the warps taken while idle.

Every platform shares this (a board guest arms timers through port registers,
a Linux guest through nanosleep and friends), so it lives in the core. The
clock is also the unit that owns `clock_warp` events: the only way virtual
time moves other than by executing instructions.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from rrtool.machine.units import UnitBase
from rrtool.schemas import names as ev

#: The latest deadline a guest may arm, in virtual ns (2**62 ns: about 146 years). Virtual time is an int64
#: column of the trace (`vclock_ns`, `warp_ns`), and an idle guest warps straight to its next deadline, so a
#: deadline near 2**64 would carry the clock out of range; a timer asked to fire later is refused instead.
MAX_DEADLINE_NS = 1 << 62


@dataclass
class Timer:
    deadline_ns: int = 0
    period_ns: int = 0
    armed: bool = False


class Clock(UnitBase):
    name = "clock"
    kinds = (ev.KIND_CLOCK_WARP,)
    SAVED = ("warp_ns", "timers")

    def __init__(self, ns_per_insn: int, timers: int) -> None:
        self.ns_per_insn = ns_per_insn
        self.warp_ns = 0  # sum of all warps
        self.timers = [Timer() for _ in range(timers)]

    def reset(self) -> None:
        """Disarm every timer; virtual time itself never goes back."""
        self.timers = [Timer() for _ in self.timers]

    def vclock_at(self, icount: int) -> int:
        return icount * self.ns_per_insn + self.warp_ns

    def icount_for(self, deadline_ns: int) -> int:
        """First icount at which the virtual clock reaches `deadline_ns`."""
        return max(0, -(-(deadline_ns - self.warp_ns) // self.ns_per_insn))

    def arm(self, index: int, deadline_ns: int, period_ns: int) -> bool:
        """Arm timer `index`; False (and the timer disarmed) for a deadline beyond MAX_DEADLINE_NS."""
        if not 0 <= deadline_ns <= MAX_DEADLINE_NS or not 0 <= period_ns <= MAX_DEADLINE_NS:
            self.timers[index] = Timer()
            return False
        self.timers[index] = Timer(deadline_ns, period_ns, True)
        return True

    def disarm(self, index: int) -> None:
        self.timers[index].armed = False

    def next_deadline_ns(self) -> int | None:
        armed = [t.deadline_ns for t in self.timers if t.armed]
        return min(armed) if armed else None

    def next_deadline_icount(self) -> int | None:
        ns = self.next_deadline_ns()
        return None if ns is None else self.icount_for(ns)

    def any_due(self, icount: int) -> bool:
        now = self.vclock_at(icount)
        return any(t.armed and t.deadline_ns <= now for t in self.timers)

    def expire(self, icount: int) -> int:
        """Fire every timer due at `icount` (periodic ones re-arm); returns the mask of those that fired."""
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
        return fired

    def state(self) -> bytes:
        out = struct.pack("<Q", self.warp_ns)
        for t in self.timers:
            out += struct.pack("<QQ?", t.deadline_ns, t.period_ns, t.armed)
        return out
