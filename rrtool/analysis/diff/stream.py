"""Reading two traces side by side in windows of icount, one record batch at a time.

Memory stays bounded by a few batches per side however long the traces are:
icount never decreases along a trace, so once both sides have been read up
to icount H, every event with icount < H is known on both sides and that
window can be compared and dropped. The side that is behind is read next.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import polars as pl
import pyarrow as pa

from rrtool.analysis.progress import Tally
from rrtool.schemas import events as ev
from rrtool.schemas.tracefile import TraceFile

#: Columns every window carries besides the compared ones.
BASE_COLUMNS = ("seq", "checkpoint", "icount", "kind", "device")


def frame_columns(columns: list[str]) -> list[str]:
    """The base columns then the compared ones, each once (icount is both)."""
    return list(dict.fromkeys([*BASE_COLUMNS, *columns]))


def _codes(column: pa.ChunkedArray | pa.Array, name: str) -> pa.Array:
    """A dictionary column as the index of its value in the schema's fixed dictionary (int8)."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    expected = ev.DICTIONARIES[name]
    if isinstance(arr, pa.DictionaryArray) and tuple(arr.dictionary.to_pylist()) == expected:
        return arr.indices.cast(pa.int8())
    values = arr.cast(pa.string()) if isinstance(arr, pa.DictionaryArray) else arr
    mapping = {v: i for i, v in enumerate(expected)}
    return pa.array([None if v is None else mapping.get(v, -1) for v in values.to_pylist()], type=pa.int8())


def prepare(batch: pa.RecordBatch, columns: list[str], ignore_kind_codes: list[int]) -> pl.DataFrame:
    """One batch as a Polars frame: the needed columns, dictionary columns as codes, ignored kinds dropped."""
    arrays: dict[str, pa.Array] = {}
    for name in dict.fromkeys([*BASE_COLUMNS, *columns, "data"]):
        col = batch.column(name)
        arrays[name] = _codes(col, name) if name in ev.DICTIONARIES else col
    frame = pl.from_arrow(pa.RecordBatch.from_pydict(arrays))
    assert isinstance(frame, pl.DataFrame)
    frame = frame.with_columns(pl.col("data").bin.size().cast(pl.Int64).fill_null(0).alias("_bytes"))
    if "data" not in columns:
        frame = frame.drop("data")
    if ignore_kind_codes:
        frame = frame.filter(~pl.col("kind").is_in(ignore_kind_codes))
    return frame


class Side:
    """One trace being read batch by batch, with the rows read but not yet compared."""

    def __init__(
        self, trace: TraceFile, columns: list[str], ignore_kind_codes: list[int], tally: Tally | None = None
    ) -> None:
        self._batches = trace.batches() if tally is None else tally.each(trace.batches())
        self._columns = columns
        self._ignore = ignore_kind_codes
        self._buffer: list[pl.DataFrame] = []
        self.done = False
        self.end = -math.inf  # largest icount read so far

    def pull(self) -> None:
        try:
            batch = next(self._batches)
        except StopIteration:
            self.done = True
            return
        if batch.num_rows:
            self.end = max(self.end, batch.column("icount")[-1].as_py())
        frame = prepare(batch, self._columns, self._ignore)
        if frame.height:
            self._buffer.append(frame)

    @property
    def horizon(self) -> float:
        """Every event below this icount has been read (infinite once the trace is exhausted)."""
        return math.inf if self.done else self.end

    def take_below(self, horizon: float) -> pl.DataFrame | None:
        if not self._buffer:
            return None
        frame = pl.concat(self._buffer) if len(self._buffer) > 1 else self._buffer[0]
        if horizon == math.inf:
            self._buffer = []
            return frame
        cut = frame.filter(pl.col("icount") < horizon)
        rest = frame.filter(pl.col("icount") >= horizon)
        self._buffer = [rest] if rest.height else []
        return cut if cut.height else None


def windows(a: Side, b: Side) -> Iterator[tuple[pl.DataFrame | None, pl.DataFrame | None]]:
    """Pairs of frames holding the same icount range of both traces, in order."""
    a.pull()
    b.pull()
    while True:
        horizon = min(a.horizon, b.horizon)
        yield a.take_below(horizon), b.take_below(horizon)
        if a.done and b.done:
            return
        if a.horizon == horizon:
            a.pull()
        if b.horizon == horizon:
            b.pull()
