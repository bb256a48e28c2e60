"""The block device's host backend: a raw disk image served by a thread pool.

Real pread/pwrite on worker threads (they release the GIL), so completions
come back in a genuinely nondeterministic order; each one only becomes an
event on the port's queue. By default the image is never written: writes go
to an in-memory copy-on-write overlay (QEMU's -snapshot idea); `writeback`
opts in to changing the file.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import xxhash

from rrtool._paths import PathError, check_input_file
from rrtool.board.block import OP_FLUSH, OP_NAMES, OP_READ, OP_WRITE, SECTOR, ST_IOERR, ST_OK, Request
from rrtool.schemas.event import Event
from rrtool.schemas.names import KIND_BLK_COMPLETE


class DiskError(Exception):
    """The disk image cannot be used; one line for the user."""


@dataclass(frozen=True)
class DiskSpec:
    """`--disk PATH[,writeback]` parsed."""

    path: Path
    writeback: bool = False

    @classmethod
    def parse(cls, text: str) -> DiskSpec:
        path, _, opts = text.partition(",")
        flags = {o.strip() for o in opts.split(",") if o.strip()}
        unknown = flags - {"writeback"}
        if unknown:
            raise DiskError(f"unknown --disk option {sorted(unknown)[0]!r} (known: writeback)")
        return cls(Path(path), "writeback" in flags)

    def check(self) -> int:
        """Validate the image and return its size in whole sectors."""
        if not self.path.exists():
            raise DiskError(f"disk image {self.path}: no such file")
        # Regular files only: a fifo would block in open(), a device (/dev/zero) never end its digest.
        try:
            check_input_file(self.path, "disk image")
        except PathError as exc:
            raise DiskError(str(exc)) from None
        if self.writeback and not os.access(self.path, os.W_OK):
            raise DiskError(f"disk image {self.path} is read-only: cannot use writeback")
        if not os.access(self.path, os.R_OK):
            raise DiskError(f"disk image {self.path}: permission denied")
        return self.path.stat().st_size // SECTOR


def disk_digest(path: Path) -> str:
    """xxh3-128 of the image: it identifies the disk a trace started from, at ~10x sha256's speed
    (a disk can be gigabytes; this is not a security check)."""
    h = xxhash.xxh3_128()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


class DiskBackend:
    """Serves block requests from a host thread pool; `chaos` adds random completion delays."""

    def __init__(
        self, spec: DiskSpec, *, chaos: int | None = None, workers: int = 4, log_write_data: bool = False
    ) -> None:
        self.spec = spec
        self.sectors = spec.check()
        self._fd = os.open(spec.path, os.O_RDWR if spec.writeback else os.O_RDONLY)
        self._overlay: dict[int, bytes] = {}
        self._lock = threading.Lock()
        self._order = 0
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="disk")
        self._chaos = None if chaos is None else random.Random(chaos)
        self._log_write_data = log_write_data
        self._post: Callable[[Event], None] | None = None
        self._in_flight = 0

    # -- Backend protocol (the port starts it) ------------------------------
    def start(self, post: Callable[[Event], None]) -> None:
        self._post = post

    def alive(self) -> bool:
        """A request in flight will complete and can wake a sleeping guest."""
        return self._in_flight > 0

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        os.close(self._fd)

    # -- requests -------------------------------------------------------------
    def submit(self, req: Request) -> None:
        delay = 0.0
        if self._chaos is not None:
            delay = self._chaos.random() * 0.004 if self._chaos.random() < 0.5 else 0.0
        with self._lock:
            self._in_flight += 1
        self._pool.submit(self._serve, req, delay)

    def _serve(self, req: Request, delay: float) -> None:
        if delay:
            time.sleep(delay)
        data: bytes | None = None
        try:
            if req.op == OP_READ:
                data = self._read(req.sector, req.sectors)
            elif req.op == OP_WRITE:
                assert req.data is not None
                self._write(req.sector, req.data)
            elif req.op == OP_FLUSH and self.spec.writeback:
                os.fsync(self._fd)
            status = ST_OK
        except OSError:
            status, data = ST_IOERR, None
        if req.op == OP_WRITE and self._log_write_data:
            data = req.data
        assert self._post is not None
        event = Event(KIND_BLK_COMPLETE, "block", 0, 0, req_id=req.index, op=OP_NAMES[req.op], sector=req.sector,
                      sectors=req.sectors, status=status, data=data, length=req.sectors * SECTOR,
                      flags=req.generation)  # fmt: skip
        with self._lock:
            event.order = self._order
            self._order += 1
            # Post before leaving the in-flight count, so a sleeping guest is never judged unwakeable
            # while its completion is on the way.
            self._post(event)
            self._in_flight -= 1

    def _read(self, sector: int, count: int) -> bytes:
        data = bytearray(os.pread(self._fd, count * SECTOR, sector * SECTOR))
        data.extend(bytes(count * SECTOR - len(data)))
        if self._overlay:
            with self._lock:
                for i in range(count):
                    block = self._overlay.get(sector + i)
                    if block is not None:
                        data[i * SECTOR : (i + 1) * SECTOR] = block
        return bytes(data)

    def _write(self, sector: int, data: bytes) -> None:
        if self.spec.writeback:
            os.pwrite(self._fd, data, sector * SECTOR)
            return
        with self._lock:
            for i in range(len(data) // SECTOR):
                self._overlay[sector + i] = data[i * SECTOR : (i + 1) * SECTOR]
