"""Random number generator: host entropy, so every read is a logged event."""

from __future__ import annotations

import os

from rrtool.board import regs
from rrtool.board.bus import Bus
from rrtool.machine.units import UnitBase
from rrtool.schemas.event import Event
from rrtool.schemas.names import KIND_RNG_READ


def _host_random() -> int:
    return int.from_bytes(os.urandom(4), "little")


class Rng(UnitBase):
    name = "rng"
    kinds = (KIND_RNG_READ,)
    ports = range(regs.RNG, regs.RNG + 4)

    def __init__(self, bus: Bus) -> None:
        self._bus = bus

    def read(self, port: int, size: int) -> int:
        now = self._bus.now()
        ev = Event(KIND_RNG_READ, self.name, now, self._bus.vclock_at(now))
        return self._bus.port.sync_value(ev, _host_random) & 0xFFFFFFFF

    def write(self, port: int, size: int, value: int) -> None:
        return None

    def state(self) -> bytes:
        return b""
