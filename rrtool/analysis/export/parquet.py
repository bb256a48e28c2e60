"""`rrtool export parquet`: traces as one hive-partitioned Parquet dataset, for engines beyond one machine.

The layout, for Spark, Trino, DuckDB and Polars alike::

    DIR/traces.parquet                                   one row per trace (the corpus's `traces` table)
    DIR/events/trace=NAME/checkpoint_start=K/part-0.parquet
    DIR/events/trace=NAME/_trace.json                    that trace's row of traces.parquet

A trace's events are split by checkpoint range (K = 0, N, 2N, ...), so a
query on one trace or a checkpoint range prunes whole directories by the
partition columns, and row-group statistics (a row group per trace batch)
prune further inside a file. Columns and types are the trace's.

A dataset grows: exporting more traces into it adds their partitions and
rewrites only `traces.parquet`. Each trace is written under a temporary
directory in `events/` whose name starts with `_` (which Spark, pyarrow and
the `trace=*` globs leave alone) and then swapped onto `trace=NAME` in one
rename (`replace_directory`), so a reader, or a kill mid-export, never sees
half a partition. Exporting a trace again replaces its partition; a trace
of the same name from another file is refused. The `_trace.json` inside
each partition is swapped with it, so `traces.parquet` can always be
rebuilt to match the partitions (`rrtool.analysis.corpus` does, after a kill
between the two). A new dataset is built beside DIR and renamed when complete.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rrtool._paths import PathError, atomic_directory, atomic_output, refuse_clobber, replace_directory
from rrtool.analysis.corpus import (
    PARTITION_COLUMN,
    PARTITIONS_META,
    SIDECAR,
    TRACE,
    TRACES_SCHEMA,
    TraceSummary,
    read_traces_and_identities,
    sidecar_bytes,
    summarize,
    traces_table,
    unique_names,
)
from rrtool.analysis.errors import AnalysisError
from rrtool.analysis.progress import Progress
from rrtool.analysis.sources import EVENTS_DIR, TRACES_FILE, Sources, expand, is_dataset
from rrtool.schemas.tracefile import TraceError, TraceFile, open_tracefile

DEFAULT_CHECKPOINTS_PER_PARTITION = 10_000
_TMP_PREFIX = "_tmp-"
#: Seconds between two progress reports from the caller's thread.
REPORT_S = 0.1


@dataclass
class ParquetStats:
    traces: int = 0
    replaced: int = 0
    files: int = 0
    rows: int = 0


def default_jobs() -> int:
    """Traces exported at once: one per CPU this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def export_parquet(
    sources: str | Path | Sequence[str | Path] | Sources,
    output: str | Path,
    *,
    checkpoints_per_partition: int = DEFAULT_CHECKPOINTS_PER_PARTITION,
    jobs: int | None = None,
    progress: Progress | None = None,
) -> ParquetStats:
    """Export trace files, globs and directories into dataset `output` (created, or added to). `progress`: batches.

    `output` must be missing, an empty directory or a dataset this function
    wrote; its parent directory must exist (rrtool creates no directories on the way).
    `jobs` traces are exported at once (default: one per CPU); each is its own
    partition, so the dataset is the same whatever the number.
    """
    if checkpoints_per_partition < 1:
        raise AnalysisError("--checkpoints-per-partition must be at least 1")
    if jobs is not None and jobs < 1:
        raise AnalysisError("--jobs must be at least 1")
    if not isinstance(sources, Sources):
        sources = expand([sources] if isinstance(sources, str | Path) else list(sources))
    if sources.dataset is not None:
        raise AnalysisError(f"{sources.dataset}: already an exported dataset; export trace files into it")
    out = Path(output)
    paths = list(sources.traces)
    names = unique_names(paths)
    for path in paths:
        refuse_clobber(out, [(path, "trace file")])
    job = _Job(checkpoints_per_partition, jobs or default_jobs(), progress)
    if is_dataset(out):
        for part in (out / EVENTS_DIR, out / TRACES_FILE):
            if part.is_symlink():  # writes and clean-ups would land wherever it points
                raise AnalysisError(f"{part}: a symbolic link; export into a dataset whose files are its own")
        existing, identities = read_traces_and_identities(out)
        _check_clashes(out, existing, paths, names)
        try:
            job.run(out, paths, names)
        finally:  # the traces added before a failure stay added, and listed
            _write_traces(out, existing, identities, job)
        return job.stats
    with atomic_directory(out) as tmp:
        (tmp / EVENTS_DIR).mkdir()
        job.run(tmp, paths, names)
        _write_traces(tmp, TRACES_SCHEMA.empty_table(), {}, job)
    return job.stats


class _Stopped(Exception):
    """Raised in a worker when the export was stopped by another trace's failure or by the caller."""


class _Job:
    """One export run: `jobs` threads take the traces in turn, each writing whole partitions.

    pyarrow decompresses, encodes and compresses without the GIL, so the
    threads share the CPUs. Only the caller's thread reports progress (see
    `rrtool.cli.progress`); the workers count batches under a lock.
    """

    def __init__(self, checkpoints_per_partition: int, jobs: int, progress: Progress | None) -> None:
        self.per = checkpoints_per_partition
        self.jobs = jobs
        self.progress = progress
        self.stats = ParquetStats()
        #: Each trace exported, by name: its row of `traces.parquet`.
        self.summaries: dict[str, TraceSummary] = {}
        #: And the identity of the partition it went into (its directory's inode, which a rename keeps).
        self.identities: dict[str, int] = {}
        self.total = 0
        self.done = 0
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self._first_failure = sys.maxsize  # index of the earliest trace that failed
        self._mode = 0o777 & ~_umask()  # once: os.umask is process-wide, so never from the threads

    def count(self, paths: Sequence[Path]) -> None:
        """Count the batches to write, for the progress bar; a footer read per file, so a file that is
        not a trace, or of another format version, is refused before anything is written."""
        for path in paths:
            try:
                with open_tracefile(path, threads=False) as trace:
                    self.total += trace.num_batches
            except TraceError as exc:
                raise AnalysisError(str(exc)) from None

    def run(self, dataset: Path, paths: Sequence[Path], names: Sequence[str]) -> None:
        """Export every trace into `dataset`. A failure stops the traces after it in the given order, and
        lets those before it finish, so the failure raised is the first in that order whatever `jobs` is."""
        self.count(paths)
        events = dataset / EVENTS_DIR
        _clean_stale(events)
        work = iter(list(enumerate(zip(paths, names, strict=True))))
        failures: dict[int, BaseException] = {}

        def worker() -> None:
            while True:
                with self._lock:
                    item = None if failures or self._cancel.is_set() else next(work, None)
                if item is None:
                    return
                i, (path, name) = item
                try:
                    self.add(events, path, name, i)
                except _Stopped:
                    return
                except BaseException as exc:
                    with self._lock:
                        failures[i] = exc
                        self._first_failure = min(self._first_failure, i)
                    return

        workers = max(1, min(self.jobs, len(paths)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="export") as pool:
            pending = {pool.submit(worker) for _ in range(workers)}
            try:
                while pending:
                    _, pending = wait(pending, timeout=REPORT_S)
                    self._report()
            except BaseException:  # Ctrl-C in the caller: the workers stop at their next batch
                self._cancel.set()
                raise
        if failures:
            raise failures[min(failures)]

    def _stopped(self, index: int) -> bool:
        """Trace `index` is to stop: the caller gave up, or a trace before it in the order failed."""
        return self._cancel.is_set() or self._first_failure < index

    def _report(self) -> None:
        if self.progress is not None:
            self.progress(self.done, self.total)

    def add(self, events: Path, path: Path, name: str, index: int) -> None:
        """Write one trace under a temporary name in `events/`, then swap it onto `trace=NAME`."""
        try:
            tmp = Path(tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}{os.getpid()}-", dir=events))
        except OSError as exc:
            raise PathError(f"{events}: cannot create a directory: {exc.strerror or exc}") from None
        try:
            # One thread per file: pyarrow's pool would only add hand-offs to the threads of this job.
            with open_tracefile(path, threads=False) as trace:
                files, rows = self._write(trace, tmp, index)
                summary = replace(summarize(trace), path=os.path.abspath(path))  # the last batch is decoded still
            (tmp / SIDECAR).write_bytes(sidecar_bytes(name, summary))
            os.chmod(tmp, self._mode)
            identity = os.lstat(tmp).st_ino
            old = replace_directory(tmp, events / f"{TRACE}={name}")
        except TraceError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise AnalysisError(str(exc)) from None
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        with self._lock:
            self.stats.traces += 1
            self.stats.replaced += old is not None
            self.stats.files += files
            self.stats.rows += rows
            self.summaries[name] = summary
            self.identities[name] = identity

    def _write(self, trace: TraceFile, out: Path, index: int) -> tuple[int, int]:
        """The trace's batches, checked as they are read, into `checkpoint_start=K` files under `out`.

        Returns (files, rows) written. Dictionary pages only for the columns
        whose values repeat (the trace's dictionary columns and its strings):
        on seq, icount and the digests a dictionary is abandoned after it has
        been built, which made the export 1.5x slower and the files 1.8x larger.
        """
        writer: pq.ParquetWriter | None = None
        current: int | None = None
        per = self.per
        files = rows = 0
        dictionary = [f.name for f in trace.schema if pa.types.is_dictionary(f.type) or pa.types.is_string(f.type)]
        try:
            for batch in trace.batches():
                if self._stopped(index):
                    raise _Stopped
                for key, part in _pieces(batch, per):
                    if key != current:
                        if writer is not None:
                            writer.close()
                        writer = pq.ParquetWriter(_new_file(out / f"{PARTITION_COLUMN}={key}"), trace.schema,
                                                  compression="zstd", use_dictionary=dictionary)  # fmt: skip
                        current = key
                        files += 1
                    assert writer is not None
                    writer.write_batch(part)
                    rows += part.num_rows
                with self._lock:
                    self.done += 1
        finally:
            if writer is not None:
                writer.close()
        return files, rows


def _pieces(batch: pa.RecordBatch, per: int) -> list[tuple[int, pa.RecordBatch]]:
    """A batch's rows by partition key (its first checkpoint's multiple of `per`), in order of first
    appearance (checkpoints only grow, the row checks see to it); none for an empty batch."""
    if batch.num_rows == 0:
        return []
    keys = pc.multiply(pc.divide(batch.column("checkpoint"), per), per)
    first, last = keys[0].as_py(), keys[batch.num_rows - 1].as_py()
    if first == last:
        return [(first, batch)]
    return [(key, batch.filter(pc.equal(keys, key))) for key in pc.unique(keys).to_pylist()]


def _new_file(directory: Path) -> Path:
    """`part-N.parquet` in `directory` for the first N not taken (one per writer; a second only if a key came back)."""
    directory.mkdir(exist_ok=True)
    n = 0
    while (directory / f"part-{n}.parquet").exists():
        n += 1
    return directory / f"part-{n}.parquet"


def _clean_stale(events: Path) -> None:
    """Remove temporary partitions left by exports that were killed (their process is gone)."""
    for entry in events.iterdir():
        if not entry.name.startswith(_TMP_PREFIX) or entry.is_symlink():
            continue
        pid_text = entry.name[len(_TMP_PREFIX) :].split("-", 1)[0]
        if pid_text.isdigit() and int(pid_text) != os.getpid() and not _alive(int(pid_text)):
            shutil.rmtree(entry, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _write_traces(dataset: Path, existing: pa.Table, identities: dict[str, int | None], job: _Job) -> None:
    """Rewrite `traces.parquet`: the rows it had, but those exported again, and the new ones, in name order.

    Atomically: readers see the old file or the new one. Built from what is
    in memory, not from the partitions' own rows, which would be a file read
    per trace. Each row is recorded with the identity of the partition it was
    taken from, so a partition another export swapped in meanwhile is seen
    to differ (`read_traces_and_identities`).
    """
    added = job.summaries
    kept = existing.filter(pc.invert(pc.is_in(existing.column(TRACE), pa.array(list(added), pa.string()))))
    table = pa.concat_tables([kept, traces_table(list(added), list(added.values()))]).sort_by(TRACE)
    recorded = {**identities, **job.identities}
    names = table.column(TRACE).to_pylist()
    table = table.replace_schema_metadata({PARTITIONS_META: json.dumps({n: recorded.get(n) for n in names}).encode()})
    with atomic_output(dataset / TRACES_FILE) as tmp:
        pq.write_table(table, tmp)


def _check_clashes(dataset: Path, existing: pa.Table, paths: Sequence[Path], names: Sequence[str]) -> None:
    """Refuse, before writing anything, a trace whose name is taken in the dataset by another file's."""
    have = dict(zip(existing.column(TRACE).to_pylist(), existing.column("path").to_pylist(), strict=True))
    for path, name in zip(paths, names, strict=True):
        there = have.get(name)
        if there is not None and there != os.path.abspath(path):
            raise AnalysisError(
                f"{path}: {dataset} already holds a trace named {name!r} from {there}; rename one of the files"
            )
