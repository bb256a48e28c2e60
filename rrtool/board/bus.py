"""What a board device sees of the machine (the bus), and what the board sees of a device."""

from __future__ import annotations

from typing import Protocol

from rrtool.machine.clock import Clock
from rrtool.machine.port import EventPort
from rrtool.machine.units import Unit


class Bus(Protocol):
    """The machine services a device may use from inside a port access or at a checkpoint."""

    @property
    def port(self) -> EventPort: ...

    @property
    def clock(self) -> Clock: ...

    def now(self) -> int:
        """Exact icount including the instruction doing the access."""
        ...

    def vclock_at(self, icount: int) -> int: ...

    def raise_irq(self, line: int) -> None: ...

    def request_stop(self) -> None:
        """Stop at the next block boundary (never mid-instruction: see unicorn-notes)."""
        ...

    def timers_changed(self) -> None: ...

    def guest_exit(self, code: int) -> None: ...

    def guest_reset(self) -> None: ...

    def guest_output(self, data: bytes) -> None:
        """Console output the user should see (the machine passes it to its sink)."""
        ...

    def mem_read(self, addr: int, size: int) -> bytes:
        """DMA from guest RAM (the caller has checked the range with `ram_ok`)."""
        ...

    def mem_write(self, addr: int, data: bytes) -> None: ...

    def ram_ok(self, addr: int, length: int) -> bool:
        """Is [addr, addr+length) inside guest RAM (a DMA the device may do)?"""
        ...


class Device(Unit, Protocol):
    """A unit with a register model on I/O ports."""

    @property
    def ports(self) -> range: ...

    def read(self, port: int, size: int) -> int: ...
    def write(self, port: int, size: int, value: int) -> None: ...
