"""Restricting a trace to a checkpoint or icount range, reading only the batches that overlap it.

A range query must not read the whole file: batches hold whole checkpoints
and carry their checkpoint and icount ranges in their metadata
(`rrtool.schemas.batchindex`), so the overlapping batches are found from the
batch index (each batch's metadata and one small column) and only those are
read and decompressed. Rows of those batches outside the range are then
filtered out, so the result is exact.
"""

from __future__ import annotations

import functools
import io
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.ipc as ipc

from rrtool.analysis.errors import AnalysisError
from rrtool.schemas.batchindex import BatchInfo, index_reader, read_info
from rrtool.schemas.tracefile import TraceFile

#: The largest range end accepted: instruction counts up to 2^62 (as the CLI's counts), inside int64.
MAX_END = 1 << 62


@dataclass(frozen=True)
class Span:
    """An inclusive range of integers; None leaves that end open."""

    lo: int | None = None
    hi: int | None = None

    @classmethod
    def parse(cls, text: str, what: str = "range") -> Span:
        """`A:B`, `A:`, `:B` or `A` (just A), both ends inclusive, like SQL's BETWEEN.

        The ends are non-negative decimal integers (ASCII digits only: `str.isdigit` alone takes
        '²', which `int` refuses) no larger than `MAX_END`, since checkpoints and icounts are
        never negative and live in int64 columns. The CLI checks its options with this too.
        """
        bad = f"bad {what} {text!r}: use A:B, A:, :B or A (non-negative integers, inclusive)"
        lo_text, sep, hi_text = text.strip().replace("_", "").partition(":")
        if not sep:
            hi_text = lo_text
        if not lo_text and not hi_text:
            raise AnalysisError(bad)
        ends: list[int | None] = []
        for end in (lo_text, hi_text):
            if end and not (end.isascii() and end.isdigit()):
                raise AnalysisError(bad)
            if end and int(end) > MAX_END:
                raise AnalysisError(f"bad {what} {text!r}: {end} is beyond any trace (at most {MAX_END})")
            ends.append(int(end) if end else None)
        lo, hi = ends
        if lo is not None and hi is not None and lo > hi:
            raise AnalysisError(f"bad {what} {text!r}: start is after end")
        return cls(lo, hi)

    def overlaps(self, first: int, last: int) -> bool:
        return (self.lo is None or last >= self.lo) and (self.hi is None or first <= self.hi)

    def polars(self, column: str) -> pl.Expr:
        expr = pl.lit(True)
        if self.lo is not None:
            expr = expr & (pl.col(column) >= self.lo)
        if self.hi is not None:
            expr = expr & (pl.col(column) <= self.hi)
        return expr

    def __str__(self) -> str:
        return f"{'' if self.lo is None else self.lo}:{'' if self.hi is None else self.hi}"


@dataclass(frozen=True)
class Window:
    """Which part of a trace to look at: checkpoints and/or icounts (both given: both must hold)."""

    checkpoints: Span | None = None
    icounts: Span | None = None

    @property
    def whole(self) -> bool:
        return self.checkpoints is None and self.icounts is None

    def overlapping(self, count: int, info: Callable[[int], BatchInfo]) -> list[int]:
        """Indexes of the batches that may hold rows inside the window, of `count` batches described by `info`.

        Checkpoint ids and icounts only grow along a trace (a guest reset
        keeps counting both) and batches are written in order, so the
        batches overlapping a range are consecutive and a binary search
        finds them: a few times log2(count) calls of `info`, each reading
        one batch's index entry, rather than all of them.
        """
        first, end = 0, count
        for span, kind in ((self.checkpoints, "checkpoint"), (self.icounts, "icount")):
            if span is not None:
                start, stop = _batches_of(span, kind, count, info)
                first, end = max(first, start), min(end, stop)
        return [i for i in range(first, end) if info(i).rows]

    def polars(self) -> pl.Expr:
        expr = pl.lit(True)
        if self.checkpoints is not None:
            expr = expr & self.checkpoints.polars("checkpoint")
        if self.icounts is not None:
            expr = expr & self.icounts.polars("icount")
        return expr

    def filter_table(self, table: pa.Table) -> pa.Table:
        if self.whole:
            return table
        frame = pl.from_arrow(table.select(["checkpoint", "icount"]))
        assert isinstance(frame, pl.DataFrame)
        mask = frame.select(self.polars()).to_series()
        return table.filter(mask.to_arrow())

    def describe(self) -> str:
        parts = []
        if self.checkpoints is not None:
            parts.append(f"checkpoints {self.checkpoints}")
        if self.icounts is not None:
            parts.append(f"icounts {self.icounts}")
        return ", ".join(parts) or "whole trace"


def _batches_of(span: Span, kind: str, count: int, info: Callable[[int], BatchInfo]) -> tuple[int, int]:
    """[start, stop): the batches whose `kind` (checkpoint or icount) range overlaps `span`."""
    first_of, last_of = operator.attrgetter(f"first_{kind}"), operator.attrgetter(f"last_{kind}")
    start, stop = 0, count
    if (lo := span.lo) is not None:
        start = _partition(count, lambda i: bool(last_of(info(i)) < lo))
    if (hi := span.hi) is not None:
        stop = _partition(count, lambda i: bool(first_of(info(i)) <= hi))
    return start, stop


def _partition(count: int, before: Callable[[int], bool]) -> int:
    """The first index in [0, count) for which `before` is false (`before` is true, then false, along it)."""
    lo, hi = 0, count
    while lo < hi:
        mid = (lo + hi) // 2
        if before(mid):
            lo = mid + 1
        else:
            hi = mid
    return lo


class _CountingFile(io.RawIOBase):
    """A read-only file that counts the bytes read through it (to show how little a range query reads)."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self._f = open(path, "rb")  # noqa: SIM115 - closed by close()
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()

    def readinto(self, buffer: Any) -> int:
        n = self._f.readinto(buffer)
        self.bytes_read += n
        return n

    def read(self, size: int = -1) -> bytes:
        data = self._f.read(size)
        self.bytes_read += len(data)
        return data

    def close(self) -> None:
        self._f.close()
        super().close()


def read_window(trace: TraceFile, window: Window) -> tuple[pa.Table, int]:
    """The batches overlapping `window` as one table, and how many bytes of the file were read to get them.

    A complete file is read through a counting file object, so what is
    counted is all a range query reads: the footer, the dictionaries, the
    index entries the binary search looks at (a batch's message header and
    one small column each) and the chosen batches. A crash-truncated file was read whole when it was opened
    (it has no footer to seek by), so the whole size is reported.
    """
    if not trace.complete_file:
        batches = [trace.batch(i)[0] for i in window.overlapping(trace.num_batches, trace.batch_info)]
        return pa.Table.from_batches(batches, schema=trace.schema), trace.path.stat().st_size
    counting = _CountingFile(str(trace.path))
    try:
        source = pa.PythonFile(counting, mode="r")
        index = index_reader(source)
        chosen = window.overlapping(index.num_record_batches, functools.cache(lambda i: read_info(index, i)))
        reader = ipc.open_file(source)
        table = pa.Table.from_batches([reader.get_batch(i) for i in chosen], schema=reader.schema)
    finally:
        counting.close()
    return table, counting.bytes_read
