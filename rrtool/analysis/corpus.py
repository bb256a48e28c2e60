"""A corpus: many traces as one dataset, every row with its `trace`, for DuckDB and Polars.

A corpus is the trace files a user names (files, globs, directories; see
`rrtool.analysis.sources`) or one dataset `rrtool export parquet` wrote.
Its `traces` table has a row per trace (name, path, platform, image,
start time, complete or cut short, checkpoints, instructions, bytes), and
`events` and every per-kind view span all traces, keyed by `trace`.

The Arrow files are scanned lazily as one `pyarrow.dataset` whose fragments
each carry `trace == name` as their partition expression: a query on one
trace (`where trace = 'x'`, in DuckDB or Polars) opens that trace's file
only, because both push the predicate down to pyarrow, which drops the
fragments it rules out without opening them. An exported Parquet dataset is
read by DuckDB's and Polars' own readers with hive partitioning on `trace`,
and row-group statistics prune checkpoint ranges inside a file too.

Opening a corpus must not read every file either: the `traces` row of a
file is kept in the cache under the file's identity (as the whole-file
check is, `rrtool.schemas.verified`), so an unchanged file is only
`stat`-ed. A file rrtool has not seen is read whole once: checked (the
scanners trust its bytes), summarised, remembered.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import stat
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from duckdb import DuckDBPyConnection, DuckDBPyRelation

from rrtool._host import cache_dir
from rrtool.analysis import frames, viewspec
from rrtool.analysis.errors import AnalysisError
from rrtool.analysis.sources import EVENTS_DIR, TRACES_FILE, Sources, expand
from rrtool.analysis.trace import check_name, default_name, is_plain_name
from rrtool.analysis.window import Span, Window, read_window
from rrtool.schemas import events as ev
from rrtool.schemas.tracefile import TraceError, TraceFile, open_tracefile
from rrtool.schemas.validate import first_line
from rrtool.schemas.verified import file_identity, was_verified

#: The column naming each row's trace, in every table of a corpus.
TRACE = "trace"
KEYS = (TRACE,)
#: A corpus of at most this many traces also gets a DuckDB schema per trace (`a.events`); creating eight
#: views per trace costs about 2 ms, so a corpus of thousands is queried with `where trace = ...` instead.
PER_TRACE_SCHEMAS = 32
#: An exported dataset's second partition column (`rrtool.analysis.export.parquet`): a file's first checkpoint.
PARTITION_COLUMN = "checkpoint_start"
#: Each partition's own row of `traces.parquet` (its summary as JSON), swapped in with its events.
SIDECAR = "_trace.json"
#: `traces.parquet` metadata: each row's partition identity (`partition_identity`) when it was written.
PARTITIONS_META = b"rrtool.partitions"
#: Bump when `TraceSummary` changes, so that cached summaries of the old shape are not used.
SUMMARY_VERSION = 1

#: The events of a corpus: the trace columns and `trace` (the fragments' partition value).
EVENTS_SCHEMA = ev.EVENTS_SCHEMA.append(pa.field(TRACE, pa.string(), nullable=False))

TRACES_SCHEMA = pa.schema([
    pa.field(TRACE, pa.string(), nullable=False),
    pa.field("path", pa.string()),
    pa.field("platform", pa.string()),
    pa.field("image", pa.string()),
    pa.field("image_sha256", pa.string()),
    pa.field("start_time", pa.timestamp("us", tz="UTC")),
    pa.field("host", pa.string()),
    pa.field("tool_version", pa.string()),
    pa.field("format_version", pa.int32()),
    pa.field("complete", pa.bool_()),
    pa.field("end", pa.string()),
    pa.field("batches", pa.int64()),
    pa.field("events", pa.int64()),
    pa.field("checkpoints", pa.int64()),
    pa.field("instructions", pa.int64()),
    pa.field("bytes", pa.int64()),
])  # fmt: skip


@dataclass(frozen=True)
class TraceSummary:
    """A `traces` row: what a trace is, read from its metadata and batch index (see `summarize`)."""

    path: str
    platform: str
    image: str | None
    image_sha256: str | None
    start_time: str | None
    host: str | None
    tool_version: str | None
    format_version: int
    complete: bool
    #: The file has its footer (a recording that ended, cleanly or not); False: cut short by a crash.
    footer: bool
    end: str | None
    batches: int
    events: int
    checkpoints: int
    instructions: int
    bytes: int


def summarize(trace: TraceFile) -> TraceSummary:
    """The summary of an open trace; reads the batch index and the last batch, not the events."""
    index = trace.batch_index()
    checkpoints, instructions = trace.totals()
    last = trace.last_checkpoint()
    complete = trace.complete_file and last is not None and last[1] == ev.CP_END
    end = None
    if complete:
        tail = trace.batch(max(i.index for i in index if i.rows))[0]
        end = tail.column("text")[tail.num_rows - 1].as_py()
    meta = trace.metadata
    return TraceSummary(
        path=str(trace.path),
        platform=str(trace.machine.get("platform", "board")),
        image=meta.get(ev.META_IMAGE_PATH),
        image_sha256=meta.get(ev.META_IMAGE_SHA256),
        start_time=meta.get(ev.META_START_TIME),
        host=meta.get(ev.META_HOST),
        tool_version=meta.get(ev.META_TOOL_VERSION),
        format_version=int(meta[ev.META_FORMAT_VERSION]),
        complete=complete,
        footer=trace.complete_file,
        end=end,
        batches=trace.num_batches,
        events=sum(i.rows for i in index),
        checkpoints=checkpoints,
        instructions=instructions,
        bytes=trace.path.stat().st_size,
    )


def _cache_file(identity: str) -> Path:
    return cache_dir() / "summaries" / (hashlib.sha256(identity.encode()).hexdigest() + ".json")


def _recall(identity: str | None) -> TraceSummary | None:
    """The remembered summary of a file with exactly this identity that passed the whole-file check."""
    if identity is None or not was_verified(identity):
        return None
    try:
        data = json.loads(_cache_file(identity).read_text())
        if data.pop("version", None) != SUMMARY_VERSION:
            return None
        summary = TraceSummary(**data)
    except (OSError, ValueError, TypeError):
        return None
    # A file of another format version, summarised by another rrtool sharing the cache, is opened again (and refused).
    return summary if summary.format_version == ev.FORMAT_VERSION else None


def _remember(identity: str | None, summary: TraceSummary) -> None:
    if identity is None:
        return
    target = _cache_file(identity)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"version": SUMMARY_VERSION, **asdict(summary)}))
        os.replace(tmp, target)
    except OSError:
        pass


def _start_time(text: str | None) -> dt.datetime | None:
    """The recording's start time; metadata that is not an ISO time (a hostile trace) is null, not an error."""
    if text is None:
        return None
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)


def traces_table(names: Sequence[str], summaries: Sequence[TraceSummary]) -> pa.Table:
    """The `traces` table of a corpus."""
    rows = [
        {
            TRACE: name, **{f: getattr(s, f) for f in TRACES_SCHEMA.names if f not in (TRACE, "start_time")},
            "start_time": _start_time(s.start_time),
        }
        for name, s in zip(names, summaries, strict=True)
    ]  # fmt: skip
    return pa.Table.from_pylist(rows, schema=TRACES_SCHEMA)


def with_trace(table: pa.Table, name: str) -> pa.Table:
    """A trace's rows with its `trace` column, in the corpus schema."""
    column = pa.array([name] * table.num_rows, pa.string())
    return pa.Table.from_arrays([*table.columns, column], schema=EVENTS_SCHEMA)


def files_dataset(paths: Sequence[Path], names: Sequence[str]) -> ds.FileSystemDataset:
    """Complete trace files as one dataset; each fragment's partition expression names its trace."""
    return ds.FileSystemDataset.from_paths(
        [os.path.abspath(p) for p in paths],
        schema=EVENTS_SCHEMA,
        format=ds.IpcFileFormat(),
        filesystem=pa.fs.LocalFileSystem(),
        partitions=[ds.field(TRACE) == name for name in names],
    )


def unique_names(paths: Sequence[Path], given: Sequence[str] = ()) -> list[str]:
    """Distinct names: `given` in order (`--name`), then file stems made unique with `_2`, `_3`..."""
    if len(given) > len(paths):
        raise AnalysisError(f"{len(given)} --name options for {len(paths)} traces")
    used: set[str] = set()
    names: list[str] = []
    for i, path in enumerate(paths):
        if i < len(given):
            name = check_name(given[i])
            if name in used:
                raise AnalysisError(f"two traces named {given[i]!r}")
        else:
            base = name = default_name(path)
            n = 2
            while name in used:
                name, n = f"{base}_{n}", n + 1
        used.add(name)
        names.append(name)
    return names


class Corpus:
    """Traces as one dataset: `traces`, `events` (Polars, lazily), the per-kind views, and DuckDB SQL.

    Open with `rrtool.open_corpus(sources)`. `checkpoints=`/`icounts=`
    restrict every trace to a range (only the batches that overlap it are
    read). `close()` or a `with` block drops the DuckDB connection.
    """

    def __init__(
        self,
        sources: Sequence[str | Path] | Sources,
        *,
        names: Sequence[str] = (),
        window: Window | None = None,
    ) -> None:
        self.sources = sources if isinstance(sources, Sources) else expand(sources)
        self.window = window or Window()
        self._con: DuckDBPyConnection | None = None
        self._parquet: ds.FileSystemDataset | None = None
        #: Bytes of the trace files read to load a window (None when the files are scanned lazily).
        self.bytes_read: int | None = None
        self._memory: list[pa.Table] = []  # rows held in memory: windows, and traces cut short (no footer)
        if self.sources.dataset is not None:
            if names:
                raise AnalysisError("--name does not apply to an exported dataset (its traces are named)")
            self._traces = read_traces(self.sources.dataset)
            self.names: list[str] = self._traces.column(TRACE).to_pylist()
            self._files: list[tuple[Path, str]] = []
            return
        paths = list(self.sources.traces)
        self.names = unique_names(paths, names)
        summaries = []
        self._files = []
        for path, name in zip(paths, self.names, strict=True):
            summary = self._open_one(path, name)
            summaries.append(summary)
        self._traces = traces_table(self.names, summaries)

    def _open_one(self, path: Path, name: str) -> TraceSummary:
        """Summarise one file (from the cache when unchanged); keep the rows that must be held in memory."""
        identity = file_identity(path)
        summary = _recall(identity) if self.window.whole else None
        if summary is not None:
            self._files.append((path, name))
            return replace(summary, path=os.path.abspath(path))
        try:
            with open_tracefile(path) as trace:
                if self.window.whole:
                    trace.verify()  # pyarrow's scanner trusts the bytes: check them once, remembered
                summary = summarize(trace)
                if not self.window.whole:
                    table, read = read_window(trace, self.window)
                    self.bytes_read = (self.bytes_read or 0) + read
                    self._memory.append(with_trace(self.window.filter_table(table), name))
                elif trace.complete_file:
                    self._files.append((path, name))
                    if trace.verified and file_identity(path) == identity:
                        _remember(identity, summary)
                else:
                    self._memory.append(with_trace(trace.read_all(), name))
        except TraceError as exc:
            raise AnalysisError(str(exc)) from None
        return replace(summary, path=os.path.abspath(path))

    def __repr__(self) -> str:
        return f"<Corpus of {len(self.names)} traces, {self.window.describe()}>"

    def __len__(self) -> int:
        return len(self.names)

    # -- lifetime ------------------------------------------------------------
    def close(self) -> None:
        """Drop the DuckDB connection and the rows held in memory. Idempotent."""
        if self._con is not None:
            self._con.close()
            self._con = None
        self._memory = []
        self.__dict__.pop("_events_cache", None)

    def __enter__(self) -> Corpus:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- data ----------------------------------------------------------------
    @property
    def traces(self) -> pl.DataFrame:
        """One row per trace (see `TRACES_SCHEMA`)."""
        frame = pl.from_arrow(self._traces)
        assert isinstance(frame, pl.DataFrame)
        return frame

    def traces_arrow(self) -> pa.Table:
        return self._traces

    def arrow(self) -> ds.Dataset | pa.Table:
        """The events of every trace with its `trace` column: scanned lazily where a file has its footer."""
        if self.sources.dataset is not None:
            raise AnalysisError("an exported dataset is read by DuckDB and Polars directly, not as Arrow files")
        parts: list[ds.Dataset] = []
        if self._files:
            parts.append(files_dataset([p for p, _ in self._files], [n for _, n in self._files]))
        if self._memory or not parts:
            table = pa.concat_tables(self._memory) if self._memory else EVENTS_SCHEMA.empty_table()
            if not parts:
                return table
            parts.append(ds.InMemoryDataset(table))
        return parts[0] if len(parts) == 1 else ds.dataset(parts)

    def _raw_polars(self) -> pl.LazyFrame:
        if self.sources.dataset is not None:
            raw = pl.scan_pyarrow_dataset(self._parquet_files())
            return raw.filter(self.window.polars()) if not self.window.whole else raw
        source = self.arrow()
        if isinstance(source, pa.Table):
            frame = pl.from_arrow(source)
            assert isinstance(frame, pl.DataFrame)
            return frame.lazy()
        return pl.scan_pyarrow_dataset(source)

    @property
    def events(self) -> pl.LazyFrame:
        """Every trace's events (the `events` view's columns, `trace` first), lazily."""
        cached = self.__dict__.get("_events_cache")
        if cached is None:
            raw = self._raw_polars()
            cached = frames.normalize(raw.select(TRACE, pl.exclude(TRACE)))
            self.__dict__["_events_cache"] = cached
        assert isinstance(cached, pl.LazyFrame)
        return cached

    def view(self, name: str) -> pl.LazyFrame:
        """The per-kind view `name` (`packets`, `block_ops`, ...) of every trace, keyed by `trace`."""
        if name not in viewspec.VIEWS:
            raise AnalysisError(f"no view {name!r}: the views are {', '.join(viewspec.VIEWS)}")
        return viewspec.view_polars(viewspec.VIEWS[name], self.events, KEYS)

    # -- SQL -----------------------------------------------------------------
    def duckdb(self) -> DuckDBPyConnection:
        """A DuckDB connection with `traces`, `events` and the views over all traces (and per trace, for few)."""
        if self._con is None:
            from rrtool.analysis.views import add_corpus_views, install_functions

            con = duckdb.connect()
            install_functions(con)
            con.register("_rrtool_traces", self._traces)
            con.execute("CREATE VIEW main.traces AS SELECT * FROM _rrtool_traces")
            if self.sources.dataset is not None:
                con.register("_rrtool_files", self._parquet_files())
                con.execute(f"CREATE VIEW _rrtool_raw AS {self._parquet_sql('_rrtool_files')}")
            else:
                con.register("_rrtool_raw", self.arrow())
            add_corpus_views(con, "_rrtool_raw", self.names if len(self.names) <= PER_TRACE_SCHEMAS else [])
            self._con = con
        return self._con

    def _parquet_files(self) -> ds.FileSystemDataset:
        """The dataset's part files, each fragment's `trace` given by its partition (not parsed from
        its path, whose parents may hold `key=value` names of their own)."""
        if self._parquet is None:
            assert self.sources.dataset is not None
            self._parquet = parquet_dataset(self.sources.dataset, self.names)
        return self._parquet

    def _parquet_sql(self, raw: str) -> str:
        where = []
        for span, column in ((self.window.checkpoints, "checkpoint"), (self.window.icounts, "icount")):
            if span is not None and span.lo is not None:
                where.append(f"{column} >= {span.lo}")
            if span is not None and span.hi is not None:
                where.append(f"{column} <= {span.hi}")
        return f"SELECT * FROM {raw}" + (" WHERE " + " AND ".join(where) if where else "")

    def sql(self, query: str) -> DuckDBPyRelation:
        """Run SQL over the views; `.pl()` of the result is a Polars DataFrame."""
        from rrtool.analysis.sql import run

        rel = run(self.duckdb(), query)
        if rel is None:
            raise AnalysisError("the statement has no result")
        return rel

    def describe(self) -> str:
        """The tables, for the prompt's `.tables`."""
        from rrtool.analysis.views import VIEW_NAMES

        lines = [f"traces: one row per trace ({len(self.names)})",
                 "views (all traces, with a `trace` column): " + ", ".join(VIEW_NAMES)]  # fmt: skip
        if len(self.names) <= PER_TRACE_SCHEMAS:
            paths = self._traces.column("path").to_pylist()
            lines += [f"  {n}.*  {p}  ({self.window.describe()})" for n, p in zip(self.names, paths, strict=True)]
        else:
            lines.append(f"  (more than {PER_TRACE_SCHEMAS} traces: no schema per trace; filter on `trace`)")
        return "\n".join(lines)


def _part_order(path: Path) -> tuple[int, int, str]:
    """Checkpoint order: `checkpoint_start=K` by K, then `part-N` by N (names that are not numbers last)."""
    k, n = path.parent.name.split("=", 1)[1], path.stem.split("-", 1)[1]
    return (int(k) if k.isdigit() else 1 << 62, int(n) if n.isdigit() else 1 << 62, str(path))


def parquet_dataset(dataset: Path, names: Sequence[str]) -> ds.FileSystemDataset:
    """The part files of traces `names` in an exported dataset, as one pyarrow dataset keyed by trace.

    The files are listed here, partition by partition, rather than
    discovered by an engine's hive reader: DuckDB and Polars take every
    `key=value` directory on the whole path as a partition column (a dataset
    under `runs/trace=old/` would name every row `old`), and a glob breaks on
    a path holding `[`. The schema is the events table's, so no file is read to bind it.
    """
    paths: list[str] = []
    partitions: list[ds.Expression] = []
    for name in names:
        found = sorted((dataset / EVENTS_DIR / f"{TRACE}={name}").glob(f"{PARTITION_COLUMN}=*/part-*.parquet"),
                       key=_part_order)  # fmt: skip
        starts = sorted({_part_order(part)[0] for part in found})
        for part in found:
            try:
                regular = stat.S_ISREG(os.lstat(part).st_mode)
            except OSError:
                regular = False
            if not part.parent.name.split("=", 1)[1].isdigit():
                raise AnalysisError(f"{part.parent}: not a partition rrtool writes (its checkpoint is not a number)")
            if not regular:  # a fifo would block the reader for ever, a link lead it elsewhere
                raise AnalysisError(f"{part}: not a regular file, so not a part of the dataset rrtool writes")
            paths.append(os.path.abspath(part))
            # The checkpoints a part holds, from its directory: a checkpoint range prunes whole parts.
            start = _part_order(part)[0]
            later = [k for k in starts if k > start]
            where = (ds.field(TRACE) == name) & (ds.field("checkpoint") >= start)
            partitions.append(where & (ds.field("checkpoint") < later[0]) if later else where)
    return ds.FileSystemDataset.from_paths(
        paths, schema=EVENTS_SCHEMA, format=ds.ParquetFileFormat(), filesystem=pa.fs.LocalFileSystem(),
        partitions=partitions,
    )  # fmt: skip


def _read_table(path: Path) -> pa.Table:
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise AnalysisError(f"{path}: not readable as a traces table ({str(exc).splitlines()[0]})") from None
    if not table.schema.remove_metadata().equals(TRACES_SCHEMA):
        raise AnalysisError(f"{path}: not the traces table this rrtool writes (different columns)")
    return table


def sidecar_bytes(name: str, summary: TraceSummary) -> bytes:
    """A partition's own `traces` row. JSON, not Parquet: written once per trace exported, where a
    one-row Parquet file cost a millisecond, and read back only to rebuild `traces.parquet`."""
    return json.dumps({"version": SUMMARY_VERSION, TRACE: name, **asdict(summary)}).encode()


def _read_sidecar(path: Path) -> pa.Table:
    """One partition's `traces` row; a sidecar is as hostile as any input, so each failure names its file."""
    try:
        data = json.loads(path.read_bytes())
        if not isinstance(data, dict) or data.pop("version", None) != SUMMARY_VERSION:
            raise ValueError("not this rrtool's version of it")
        name = data.pop(TRACE)
        if not isinstance(name, str) or path.parent.name != f"{TRACE}={name}":
            raise ValueError("another trace's")
        return traces_table([name], [TraceSummary(**data)])
    except (OSError, ValueError, TypeError, KeyError, OverflowError, RecursionError, pa.ArrowException) as exc:
        why = first_line(exc) if isinstance(exc, pa.ArrowException | RecursionError) else str(exc)[:200]
        raise AnalysisError(f"{path}: not a partition's traces row this rrtool writes ({why})") from None


def sidecars(dataset: Path) -> pa.Table:
    """Every partition's own `traces` row, in name order: what `traces.parquet` must hold."""
    tables = [_read_sidecar(part) for part in sorted((dataset / EVENTS_DIR).glob(f"{TRACE}=*/{SIDECAR}"))]
    return pa.concat_tables(tables) if tables else TRACES_SCHEMA.empty_table()


def partition_identity(dataset: Path, name: str) -> int | None:
    """What changes whenever trace `name`'s partition is swapped for another: its directory's inode."""
    try:
        return os.lstat(dataset / EVENTS_DIR / f"{TRACE}={name}").st_ino
    except OSError:
        return None


def _recorded(table: pa.Table) -> Any:
    try:
        return json.loads((table.schema.metadata or {}).get(PARTITIONS_META, b"null"))
    except (ValueError, RecursionError):  # hostile metadata: as if none were recorded
        return None


def read_traces(dataset: Path) -> pa.Table:
    """An exported dataset's `traces` table (see `read_traces_and_identities`)."""
    return read_traces_and_identities(dataset)[0]


def read_traces_and_identities(dataset: Path) -> tuple[pa.Table, dict[str, int | None]]:
    """An exported dataset's `traces.parquet`, checked against the schema and the partitions there are.

    An export killed after swapping partitions in and before rewriting
    `traces.parquet` (or two exports adding to one dataset at once) leaves
    the two apart: other names, or a partition replaced since (its
    directory's identity, recorded in the file's metadata, differs). The
    partitions' own rows are then read instead, so `traces` always
    describes exactly the partitions `events` holds. Also returns the
    identity of the partition each row describes, for an export to record.
    """
    path = dataset / TRACES_FILE
    table = _read_table(path)
    there = sorted(p.name.split("=", 1)[1] for p in (dataset / EVENTS_DIR).glob(f"{TRACE}=*") if p.is_dir())
    current = {name: partition_identity(dataset, name) for name in there}
    if sorted(table.column(TRACE).to_pylist()) != there or _recorded(table) != current:
        # (A row and its own partition's identity are read apart here; a swap in between is seen next time.)
        table = sidecars(dataset)
        missing = sorted(set(there) - set(table.column(TRACE).to_pylist()))
        if missing and (dataset / EVENTS_DIR / f"{TRACE}={missing[0]}" / "_trace.parquet").exists():
            raise AnalysisError(f"{dataset}: written by an earlier rrtool (its partitions' rows are Parquet); "
                                "export its traces again")  # fmt: skip
        if missing:
            raise AnalysisError(f"{dataset / EVENTS_DIR / f'{TRACE}={missing[0]}'}: a partition without its {SIDECAR}")
    for name in table.column(TRACE).to_pylist():
        if not isinstance(name, str) or not is_plain_name(name):
            shown = str(name)[:40].encode("unicode_escape").decode()
            raise AnalysisError(f"{path}: holds a trace named {shown!r}, which is not a name rrtool gives a trace")
    versions = set(table.column("format_version").to_pylist())
    if versions - {ev.FORMAT_VERSION}:
        bad = sorted(v for v in versions if v != ev.FORMAT_VERSION)
        raise AnalysisError(
            f"{path}: holds traces of format version {bad[0]}; this rrtool reads version {ev.FORMAT_VERSION}"
        )
    return table.replace_schema_metadata(None), current


def open_corpus(
    sources: str | Path | Sequence[str | Path],
    *,
    names: Sequence[str] = (),
    checkpoints: Span | str | tuple[int | None, int | None] | None = None,
    icounts: Span | str | tuple[int | None, int | None] | None = None,
) -> Corpus:
    """Open trace files, globs and directories (or one exported dataset) as one corpus.

    Example: `open_corpus("runs/*.arrow").view("block_ops").group_by("trace").agg(...)`.
    """
    from rrtool.analysis.trace import _span

    listed = [sources] if isinstance(sources, str | Path) else list(sources)
    window = Window(_span(checkpoints, "checkpoint range"), _span(icounts, "icount range"))
    return Corpus(listed, names=names, window=window)


def summary_dict(corpus: Corpus) -> list[dict[str, Any]]:
    """The `traces` table as plain rows (JSON-friendly)."""
    rows: list[dict[str, Any]] = corpus.traces_arrow().to_pylist()
    for row in rows:
        if isinstance(row.get("start_time"), dt.datetime):
            row["start_time"] = row["start_time"].isoformat()
    return rows
