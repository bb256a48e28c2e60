"""`rrtool export parquet`: traces as one hive-partitioned Parquet dataset, for engines beyond one machine.

The layout, for Spark, Trino, DuckDB and Polars alike::

    DIR/traces.parquet                                   one row per trace (the corpus's `traces` table)
    DIR/events/trace=NAME/checkpoint_start=K/part-0.parquet
    DIR/events/trace=NAME/_trace.parquet                 that trace's row of traces.parquet

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
of the same name from another file is refused. The `_trace.parquet` inside
each partition is swapped with it, so `traces.parquet` can always be
rebuilt to match the partitions (`rrtool.analysis.corpus` does, after a kill
between the two). A new dataset is built beside DIR and renamed when complete.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rrtool._paths import PathError, atomic_directory, atomic_output, refuse_clobber, replace_directory
from rrtool.analysis.corpus import PARTITION_COLUMN, SIDECAR, TRACE, sidecars, summarize, traces_table, unique_names
from rrtool.analysis.errors import AnalysisError
from rrtool.analysis.progress import Progress, Tally
from rrtool.analysis.sources import EVENTS_DIR, TRACES_FILE, Sources, expand, is_dataset
from rrtool.schemas.tracefile import TraceError, TraceFile, open_tracefile

DEFAULT_CHECKPOINTS_PER_PARTITION = 10_000
_TMP_PREFIX = "_tmp-"


@dataclass
class ParquetStats:
    traces: int = 0
    replaced: int = 0
    files: int = 0
    rows: int = 0


def export_parquet(
    sources: str | Path | Sequence[str | Path] | Sources,
    output: str | Path,
    *,
    checkpoints_per_partition: int = DEFAULT_CHECKPOINTS_PER_PARTITION,
    progress: Progress | None = None,
) -> ParquetStats:
    """Export trace files, globs and directories into dataset `output` (created, or added to). `progress`: batches.

    `output` must be missing, an empty directory or a dataset this function
    wrote; its parent directory must exist (rrtool creates no directories on the way).
    """
    if checkpoints_per_partition < 1:
        raise AnalysisError("--checkpoints-per-partition must be at least 1")
    if not isinstance(sources, Sources):
        sources = expand([sources] if isinstance(sources, str | Path) else list(sources))
    if sources.dataset is not None:
        raise AnalysisError(f"{sources.dataset}: already an exported dataset; export trace files into it")
    out = Path(output)
    paths = list(sources.traces)
    names = unique_names(paths)
    for path in paths:
        refuse_clobber(out, [(path, "trace file")])
    job = _Job(checkpoints_per_partition, progress)
    if is_dataset(out):
        _check_clashes(out, paths, names)
        job.start([*paths])
        for path, name in zip(paths, names, strict=True):
            job.add(out, path, name)
            _write_traces(out)
        return job.stats
    with atomic_directory(out) as tmp:
        (tmp / EVENTS_DIR).mkdir()
        job.start(paths)
        for path, name in zip(paths, names, strict=True):
            job.add(tmp, path, name)
        _write_traces(tmp)
    return job.stats


class _Job:
    """One export run: the partitions it writes and what it counts."""

    def __init__(self, checkpoints_per_partition: int, progress: Progress | None) -> None:
        self.per = checkpoints_per_partition
        self.progress = progress
        self.stats = ParquetStats()
        self.tally = Tally(0, progress)

    def start(self, paths: Sequence[Path]) -> None:
        """Count the batches to write, for the progress bar (a footer read per file)."""
        total = 0
        for path in paths:
            try:
                with open_tracefile(path) as trace:
                    total += trace.num_batches
            except TraceError as exc:
                raise AnalysisError(str(exc)) from None
        self.tally = Tally(total, self.progress)

    def add(self, dataset: Path, path: Path, name: str) -> None:
        """Write one trace under a temporary name in `events/`, then swap it onto `trace=NAME`."""
        events = dataset / EVENTS_DIR
        _clean_stale(events)
        try:
            tmp = Path(tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}{os.getpid()}-", dir=events))
        except OSError as exc:
            raise PathError(f"{dataset}: cannot create a directory in {events}: {exc.strerror or exc}") from None
        try:
            with open_tracefile(path) as trace:
                self._write(trace, tmp)
                summary = replace(summarize(trace), path=os.path.abspath(path))
            pq.write_table(traces_table([name], [summary]), tmp / SIDECAR)
            os.chmod(tmp, 0o777 & ~_umask())
            old = replace_directory(tmp, events / f"{TRACE}={name}")
        except TraceError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise AnalysisError(str(exc)) from None
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
            self.stats.replaced += 1
        self.stats.traces += 1

    def _write(self, trace: TraceFile, out: Path) -> None:
        """The trace's batches, checked as they are read, into `checkpoint_start=K` files under `out`."""
        writer: pq.ParquetWriter | None = None
        current: int | None = None
        per = self.per
        try:
            for batch in self.tally.each(trace.batches()):
                if batch.num_rows == 0:
                    continue
                keys = pc.multiply(pc.divide(batch.column("checkpoint"), per), per)
                first, last = keys[0].as_py(), keys[batch.num_rows - 1].as_py()
                pieces = [(first, batch)] if first == last else _split(batch, keys)
                for key, part in pieces:
                    if key != current:
                        if writer is not None:
                            writer.close()
                        writer = pq.ParquetWriter(_new_file(out / f"{PARTITION_COLUMN}={key}"), trace.schema,
                                                  compression="zstd")  # fmt: skip
                        current = key
                        self.stats.files += 1
                    assert writer is not None
                    writer.write_batch(part)
                    self.stats.rows += part.num_rows
        finally:
            if writer is not None:
                writer.close()


def _split(batch: pa.RecordBatch, keys: pa.Array) -> list[tuple[int, pa.RecordBatch]]:
    """A batch's rows by partition key, in order of first appearance (checkpoints only grow, but a reset)."""
    return [(key, batch.filter(pc.equal(keys, key))) for key in pc.unique(keys).to_pylist()]


def _new_file(directory: Path) -> Path:
    """`part-N.parquet` in `directory` for the first N not taken (checkpoints went back after a reset: add one)."""
    directory.mkdir(exist_ok=True)
    n = 0
    while (directory / f"part-{n}.parquet").exists():
        n += 1
    return directory / f"part-{n}.parquet"


def _clean_stale(events: Path) -> None:
    """Remove temporary partitions left by exports that were killed (their process is gone)."""
    for entry in events.iterdir():
        if not entry.name.startswith(_TMP_PREFIX):
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


def _write_traces(dataset: Path) -> None:
    """Rewrite `traces.parquet` from the partitions' rows (atomically: readers see the old or the new one)."""
    with atomic_output(dataset / TRACES_FILE) as tmp:
        pq.write_table(sidecars(dataset), tmp)


def _check_clashes(dataset: Path, paths: Sequence[Path], names: Sequence[str]) -> None:
    """Refuse, before writing anything, a trace whose name is taken in the dataset by another file's."""
    have = {row[TRACE]: row["path"] for row in sidecars(dataset).select([TRACE, "path"]).to_pylist()}
    for path, name in zip(paths, names, strict=True):
        there = have.get(name)
        if there is not None and there != os.path.abspath(path):
            raise AnalysisError(
                f"{path}: {dataset} already holds a trace named {name!r} from {there}; rename one of the files"
            )
