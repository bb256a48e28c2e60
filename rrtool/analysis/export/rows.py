"""Reading the rows of some kinds from a trace, batch by batch, as Python dicts (for the exports)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from rrtool.analysis.progress import Progress, Tally
from rrtool.schemas import events as ev
from rrtool.schemas.tracefile import TraceFile


def rows(
    trace: TraceFile, kinds: Iterable[str] | None, columns: list[str], progress: Progress | None = None
) -> Iterator[dict[str, Any]]:
    """Rows of the given kinds (all when None) in trace order, with only `columns`, strings for dictionaries.

    `progress` hears of every batch read, of the trace's number of batches.
    """
    value_set = None if kinds is None else pa.array(sorted(kinds), type=pa.string())
    for batch in Tally(trace.num_batches, progress).each(trace.batches()):
        if value_set is not None:
            batch = batch.filter(pc.is_in(batch.column("kind"), value_set=value_set))
        if batch.num_rows:
            yield from batch.select(columns).to_pylist()


def start_epoch_ns(trace: TraceFile) -> int:
    """The recording's start time (file metadata) in ns since the epoch; 0 when it is missing or unreadable."""
    text = trace.metadata.get(ev.META_START_TIME)
    if not text:
        return 0
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        return 0
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp()) * 1_000_000_000
