"""Block device: a descriptor ring in guest RAM, several requests in flight, completions as events.

Submissions are deterministic (the guest writes BLK_SUBMIT at an exact
icount), so they are checked and logged on the spot; completions come from a
host thread pool in whatever order the disk finishes them, so they reach the
device only as `blk_complete` events applied at checkpoints (QEMU's
blkreplay). In replay the read data and statuses come from the trace and no
backend exists at all.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Protocol

import xxhash

from rrtool.board import regs
from rrtool.board.bus import Bus
from rrtool.machine.units import EventRejected, UnitBase
from rrtool.schemas.event import Event
from rrtool.schemas.names import KIND_BLK_COMPLETE, KIND_BLK_SUBMIT

SECTOR = 512
MAX_SECTORS = 256
MAX_RING = 256
DESC = struct.Struct("<BBHIQQQ")  # op, status, flags, sectors, sector, addr, tag
DONE = 1

OP_READ, OP_WRITE, OP_FLUSH = 0, 1, 2
OP_NAMES = {OP_READ: "read", OP_WRITE: "write", OP_FLUSH: "flush"}

ST_OK, ST_IOERR, ST_RANGE, ST_BADADDR, ST_BADLEN, ST_BADOP, ST_BUSY, ST_BADINDEX = range(8)

#: Largest values of a rejected request the trace still records (the `sector` column is int64, `sectors`
#: int32 and `length`, sectors * 512, int32); anything larger is logged as null, with its error status.
_MAX_LOGGED_SECTOR = (1 << 63) - 1
_MAX_LOGGED_SECTORS = ((1 << 31) - 1) // SECTOR


@dataclass(frozen=True)
class Request:
    """A validated request as handed to the backend."""

    index: int
    op: int
    sector: int
    sectors: int
    addr: int
    tag: int
    generation: int  # guest resets so far: a completion from an older generation is ignored
    data: bytes | None = None  # write payload, taken from guest RAM at submit time


class BlockBackend(Protocol):
    """Where requests go in live and record mode (absent in replay)."""

    def submit(self, req: Request) -> None: ...


class BlockDevice(UnitBase):
    name = "block"
    kinds = (KIND_BLK_SUBMIT, KIND_BLK_COMPLETE)
    applies = (KIND_BLK_COMPLETE,)
    SAVED = ("ring", "_ring_lo", "ring_size", "in_flight", "completed", "errors", "last_error", "generation")
    ports = range(regs.BLK_BASE, regs.BLK_BASE + regs.BLK_WINDOW)

    def __init__(self, bus: Bus, capacity_sectors: int) -> None:
        self._bus = bus
        self.capacity = capacity_sectors
        self.backend: BlockBackend | None = None
        self.generation = -1
        self.reset()

    def reset(self) -> None:
        """Forget the ring; completions of requests still in flight will be ignored."""
        self.ring = 0
        self._ring_lo = 0
        self.ring_size = 0
        self.in_flight: dict[int, Request] = {}
        self.completed = 0
        self.errors = 0
        self.last_error = 0
        self.generation += 1

    # -- registers -------------------------------------------------------
    def read(self, port: int, size: int) -> int:
        return {
            regs.BLK_CAPACITY_LO: self.capacity & 0xFFFFFFFF,
            regs.BLK_CAPACITY_HI: self.capacity >> 32,
            regs.BLK_RING_SIZE: self.ring_size,
            regs.BLK_COMPLETED: self.completed & 0xFFFFFFFF,
            regs.BLK_MAX_SECTORS: MAX_SECTORS,
            regs.BLK_ERRORS: self.errors,
            regs.BLK_LAST_ERROR: self.last_error,
        }.get(port, 0)

    def write(self, port: int, size: int, value: int) -> None:
        value &= 0xFFFFFFFF
        if port == regs.BLK_RING_LO:
            self._ring_lo = value
        elif port == regs.BLK_RING_HI:
            self.ring = (value << 32) | self._ring_lo
        elif port == regs.BLK_RING_SIZE:
            self.ring_size = value
        elif port == regs.BLK_SUBMIT:
            self._submit(value)

    # -- requests --------------------------------------------------------
    def _submit(self, index: int) -> None:
        now = self._bus.now()
        ev = Event(KIND_BLK_SUBMIT, self.name, now, self._bus.vclock_at(now), req_id=index)
        ring_ok = 0 < self.ring_size <= MAX_RING and self._bus.ram_ok(self.ring, self.ring_size * DESC.size)
        if not ring_ok or index >= self.ring_size:
            self.errors += 1
            self.last_error = ST_BADINDEX
            ev.op, ev.status = "invalid", ST_BADINDEX
            self._bus.port.emit(ev)
            return
        desc_addr = self.ring + index * DESC.size
        op, _status, _flags, sectors, sector, addr, tag = DESC.unpack(self._bus.mem_read(desc_addr, DESC.size))
        status = self._check(index, op, sector, sectors, addr)
        if op == OP_FLUSH:
            sector = sectors = 0  # a flush moves no data: whatever the guest left in the fields means nothing
        ev.op = OP_NAMES.get(op, "invalid")
        # The descriptor is guest memory: a sector of 2**64-1 or a count of 2**32-1 fits neither the trace's
        # columns nor a host pread. Only values the checks accepted (or at least bounded) are logged.
        if sector <= _MAX_LOGGED_SECTOR:
            ev.sector = sector
        if sectors <= _MAX_LOGGED_SECTORS:
            ev.sectors, ev.length = sectors, sectors * SECTOR
        if status != ST_OK:
            ev.status = status
            self.errors += 1
            self.last_error = status
            self._bus.port.emit(ev)
            if status != ST_BUSY:  # a busy slot still holds the live request: leave its descriptor alone
                self._finish(index, status)
            return
        data = None
        if op == OP_WRITE:
            data = self._bus.mem_read(addr, sectors * SECTOR)
            ev.data_digest = xxhash.xxh3_64_intdigest(data)
        req = Request(index, op, sector, sectors, addr, tag, self.generation, data)
        self.in_flight[index] = req
        self._bus.port.emit(ev)
        if self.backend is not None:
            self.backend.submit(req)

    def _check(self, index: int, op: int, sector: int, sectors: int, addr: int) -> int:
        """The first problem found, in this documented order: busy, op, length, range, address."""
        if index in self.in_flight:
            return ST_BUSY
        if op not in OP_NAMES:
            return ST_BADOP
        if op == OP_FLUSH:
            return ST_OK
        if sectors == 0 or sectors > MAX_SECTORS:
            return ST_BADLEN
        if sector + sectors > self.capacity:
            return ST_RANGE
        if not self._bus.ram_ok(addr, sectors * SECTOR):
            return ST_BADADDR
        return ST_OK

    def _finish(self, index: int, status: int) -> None:
        desc_addr = self.ring + index * DESC.size
        self._bus.mem_write(desc_addr + 1, bytes([status & 0xFF]) + struct.pack("<H", DONE))
        self.completed += 1
        self._bus.raise_irq(regs.IRQ_BLOCK)

    def apply(self, event: Event) -> None:
        """Apply a blk_complete event (at a checkpoint): DMA the read data, post the status."""
        assert event.req_id is not None
        if event.flags is not None and event.flags < self.generation:
            return  # a request from before a guest reset: its ring is gone
        req = self.in_flight.get(event.req_id)
        if req is None or event.flags != self.generation:
            raise EventRejected(event, f"a completion of block request {event.req_id}, which is not in flight")
        if (event.op, event.sector, event.sectors) != (OP_NAMES.get(req.op), req.sector, req.sectors):
            raise EventRejected(event, f"a completion of block request {event.req_id} for another transfer")
        if req.op == OP_READ and (event.status or 0) == ST_OK and event.data is None:
            raise EventRejected(event, f"a successful read of block request {event.req_id} without its data")
        if event.data is not None and len(event.data) != req.sectors * SECTOR:
            raise EventRejected(event, f"a completion of block request {event.req_id} with the wrong length")
        del self.in_flight[event.req_id]
        status = event.status or 0
        if req.op == OP_READ and status == ST_OK and event.data is not None:
            self._bus.mem_write(req.addr, event.data)
        self._finish(req.index, status)

    def state(self) -> bytes:
        head = struct.pack(
            "<QQIIIIQ",
            self.capacity,
            self.ring,
            self.ring_size,
            self.errors,
            self.last_error,
            len(self.in_flight),
            self.completed,
        )
        return head + b"".join(
            struct.pack("<IBQI", r.index, r.op, r.sector, r.sectors)
            for r in sorted(self.in_flight.values(), key=lambda r: r.index)
        )
