"""Real-time clock: host wall time, read synchronously, so every read is a logged event."""

from __future__ import annotations

import struct
import time

from rrtool.board import regs
from rrtool.board.bus import Bus
from rrtool.machine.units import UnitBase
from rrtool.schemas.event import Event
from rrtool.schemas.names import KIND_RTC_READ


class Rtc(UnitBase):
    name = "rtc"
    kinds = (KIND_RTC_READ,)
    SAVED = ("_latched",)
    ports = range(regs.RTC_LO, regs.RTC_HI + 4)

    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self._latched = 0

    def read(self, port: int, size: int) -> int:
        if port == regs.RTC_LO:
            now = self._bus.now()
            ev = Event(KIND_RTC_READ, self.name, now, self._bus.vclock_at(now))
            self._latched = self._bus.port.sync_value(ev, time.time_ns)
            return self._latched & 0xFFFFFFFF
        if port == regs.RTC_HI:
            return self._latched >> 32
        return 0

    def write(self, port: int, size: int, value: int) -> None:
        return None

    def state(self) -> bytes:
        return struct.pack("<Q", self._latched)
