"""`open_trace`: a trace as a dataset, for Polars and DuckDB, without running the emulator.

The events are never loaded whole unless a query asks for them: a complete
trace is scanned lazily straight from its Arrow file (`polars.scan_ipc`, a
`pyarrow.dataset` for DuckDB). Two cases hold rows in memory instead:
a crash-truncated trace, which has no footer to scan by, so its good batches
(already read by `open_tracefile`) are used; and a window (a checkpoint or
icount range), for which only the batches overlapping it are read.
"""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
from duckdb import DuckDBPyConnection, DuckDBPyRelation

from rrtool.analysis import frames
from rrtool.analysis.window import Span, Window, read_window
from rrtool.schemas import events as ev
from rrtool.schemas.batchindex import BatchInfo
from rrtool.schemas.tracefile import TraceError, TraceFile, open_tracefile

#: Names DuckDB gives its own schemas: a trace named like this gets a suffix instead.
_RESERVED = {"main", "temp", "system", "information_schema", "pg_catalog", "memory"}


def default_name(path: Path) -> str:
    """A DuckDB-friendly schema name from a file name: `runs/timers-1.arrow` -> `timers_1`."""
    name = re.sub(r"[^a-z0-9_]", "_", path.stem.lower()) or "trace"
    if name[0].isdigit():
        name = "t_" + name
    return name + "_trace" if name in _RESERVED else name


def is_plain_name(name: str) -> bool:
    """What every trace name rrtool gives or accepts looks like: a lower-case identifier, no schema of DuckDB's.

    A name read back from an exported dataset is checked against it too: it
    becomes a DuckDB schema and a partition directory, and the dataset may have been edited by anyone.
    """
    return re.fullmatch(r"[a-z_][a-z0-9_]*", name) is not None and name not in _RESERVED


def check_name(name: str) -> str:
    """A name given with --name must already be a plain identifier (it is used unquoted in SQL)."""
    from rrtool.analysis.errors import AnalysisError

    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) or name.lower() in _RESERVED:
        raise AnalysisError(f"bad trace name {name!r}: use letters, digits and _ (not {', '.join(sorted(_RESERVED))})")
    return name.lower()


class Trace:
    """A recorded trace: metadata, `.events` as a Polars LazyFrame, per-kind frames, and SQL.

    Open with `rrtool.open_trace(path)`; pass `checkpoints=` or `icounts=` (an
    inclusive `(lo, hi)` pair or a `"lo:hi"` string) to look at a window
    only, which reads just the batches that overlap it. `close()`, or a
    `with` block, lets go of the file and of the DuckDB connection; frames
    already collected stay valid.
    """

    def __init__(self, path: str | Path, *, name: str | None = None, window: Window | None = None) -> None:
        self.path = Path(path)
        self.file: TraceFile = open_tracefile(self.path)
        self.name = check_name(name) if name is not None else default_name(self.path)
        self.window = window or Window()
        #: Bytes of the file read to load the window (None until a windowed trace is loaded).
        self.bytes_read: int | None = None
        self._con: DuckDBPyConnection | None = None

    def __repr__(self) -> str:
        return f"<Trace {self.name} {str(self.path)!r} {self.window.describe()}>"

    # -- lifetime ------------------------------------------------------------
    def close(self) -> None:
        """Close the DuckDB connection and the trace file, and drop the in-memory window. Idempotent."""
        if self._con is not None:
            self._corpus.close()
            self._con = None
        for cached in ("_window_table", "events", "batches"):
            self.__dict__.pop(cached, None)
        self.file.close()

    @property
    def closed(self) -> bool:
        return self.file.closed

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError(f"{self.path}: trace is closed")

    def __enter__(self) -> Trace:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- facts ---------------------------------------------------------------
    @property
    def metadata(self) -> dict[str, str]:
        """The file metadata (`rrtool.*` keys, see `rrtool.schemas.events`)."""
        return self.file.metadata

    @property
    def machine(self) -> dict[str, Any]:
        return self.file.machine

    @property
    def ns_per_insn(self) -> int:
        value = self.machine.get("ns_per_insn", 1)
        if type(value) is not int or value < 1:
            raise TraceError(f"{self.path}: metadata {ev.META_MACHINE!r} has a bad ns_per_insn {value!r}")
        return value

    @property
    def complete(self) -> bool:
        """The recording finished cleanly (False for a trace cut short by a crash)."""
        return self.file.complete

    @cached_property
    def batches(self) -> list[BatchInfo]:
        """Each batch's checkpoint and icount range, from the batches' metadata (no batch is decompressed)."""
        return self.file.batch_index()

    # -- data ----------------------------------------------------------------
    @cached_property
    def _window_table(self) -> pa.Table | None:
        """The rows of the window, or of a truncated trace, in memory; None when the file is scanned."""
        self._check_open()
        if self.window.whole:
            if self.file.complete_file:
                # Polars and DuckDB scan the file with readers of their own, which trust its bytes:
                # every batch and the order of the rows is checked with pyarrow first.
                self.file.verify()
                return None
            self.bytes_read = self.path.stat().st_size
            return self.file.read_all()
        table, self.bytes_read = read_window(self.file, self.window)
        return self.window.filter_table(table)

    def arrow(self) -> pa.Table | ds.Dataset:
        """The raw events as Arrow: a lazily scanned dataset, or the in-memory window."""
        table = self._window_table
        if table is not None:
            return table
        return ds.dataset(str(self.path), format="ipc")

    @cached_property
    def events(self) -> pl.LazyFrame:
        """All columns of the events table plus `vclock_s`, `data_len` and `data_hex`, lazily."""
        table = self._window_table
        if table is None:
            return frames.normalize(pl.scan_ipc(self.path))
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        return frames.normalize(frame.lazy())

    @property
    def packets(self) -> pl.LazyFrame:
        return frames.view("packets", self.events)

    @property
    def block_ops(self) -> pl.LazyFrame:
        return frames.view("block_ops", self.events)

    @property
    def clock(self) -> pl.LazyFrame:
        return frames.view("clock", self.events)

    @property
    def checkpoints(self) -> pl.LazyFrame:
        return frames.view("checkpoints", self.events)

    @property
    def console(self) -> pl.LazyFrame:
        return frames.view("console", self.events)

    @property
    def interrupts(self) -> pl.LazyFrame:
        return frames.view("interrupts", self.events)

    @property
    def syscalls(self) -> pl.LazyFrame:
        """A Linux program's system calls (the `syscalls` view): a recording read as strace output."""
        return frames.view("syscalls", self.events)

    @property
    def sched(self) -> pl.LazyFrame:
        """The Linux scheduler's decisions (the `sched` view): who ran, who runs next, for how long, why."""
        return frames.view("sched", self.events)

    @property
    def tasks(self) -> pl.LazyFrame:
        """A Linux trace's processes and threads, one row each (the `tasks` view)."""
        return frames.view("tasks", self.events)

    # -- SQL -----------------------------------------------------------------
    def duckdb(self) -> DuckDBPyConnection:
        """A DuckDB connection with this trace's views (`events`, `packets`, ... and `<name>.events`).

        It is the connection of a corpus of this one trace (`rrtool.analysis.corpus`), so its tables are
        those of `rrtool sql` on this file: `traces`, and views with a `trace` column.
        """
        self._check_open()
        if self._con is None:
            from rrtool.analysis.corpus import Corpus
            from rrtool.analysis.sources import Sources

            self._corpus = Corpus(Sources(traces=(self.path,)), names=[self.name], window=self.window)
            self._con = self._corpus.duckdb()
        return self._con

    def sql(self, query: str) -> DuckDBPyRelation:
        """Run SQL over the views; `.pl()` of the result is a Polars DataFrame."""
        return self.duckdb().sql(query)


def _span(value: Span | str | tuple[int | None, int | None] | None, what: str) -> Span | None:
    if value is None or isinstance(value, Span):
        return value
    if isinstance(value, str):
        return Span.parse(value, what)
    return Span(*value)


def open_trace(
    path: str | Path,
    *,
    name: str | None = None,
    checkpoints: Span | str | tuple[int | None, int | None] | None = None,
    icounts: Span | str | tuple[int | None, int | None] | None = None,
) -> Trace:
    """Open a trace for analysis; `checkpoints`/`icounts` restrict it to an inclusive range."""
    window = Window(_span(checkpoints, "checkpoint range"), _span(icounts, "icount range"))
    return Trace(path, name=name, window=window)
