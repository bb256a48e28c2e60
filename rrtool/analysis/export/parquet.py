"""`rrtool export parquet`: the events table as a hive-partitioned Parquet dataset, by checkpoint range.

For engines that outgrow one machine (Spark, Trino, DuckDB, Polars): the
directory holds `checkpoint_start=K/part-0.parquet` for K = 0, N, 2N, ...,
each with the events of checkpoints K to K+N-1, so a query on a checkpoint
range prunes whole files by the partition column (`checkpoint_start`),
and row-group statistics prune further inside a file. Columns, types and
the trace's file metadata are those of the Arrow trace (zstd-compressed).
Batches are written as they are read: memory does not grow with the trace.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rrtool._paths import atomic_directory, refuse_clobber
from rrtool.analysis.errors import AnalysisError
from rrtool.analysis.progress import Progress, Tally
from rrtool.schemas.tracefile import TraceFile, open_tracefile

PARTITION_COLUMN = "checkpoint_start"
DEFAULT_CHECKPOINTS_PER_PARTITION = 10_000


@dataclass
class ParquetStats:
    files: int = 0
    rows: int = 0


def export_parquet(
    trace_path: str | Path,
    output: str | Path,
    *,
    checkpoints_per_partition: int = DEFAULT_CHECKPOINTS_PER_PARTITION,
    progress: Progress | None = None,
) -> ParquetStats:
    """Write the trace under directory `output` (which must not exist or be empty). `progress`: batches read.

    Its parent directory must exist (as for every output, rrtool creates no directories on the way).
    """
    if checkpoints_per_partition < 1:
        raise AnalysisError("--checkpoints-per-partition must be at least 1")
    refuse_clobber(Path(output), [(Path(trace_path), "trace file")])
    # The dataset is built under a temporary name beside `output` and renamed when every part is closed,
    # so an interrupted export never leaves a directory that looks like a complete dataset.
    with open_tracefile(trace_path) as trace, atomic_directory(Path(output)) as tmp:
        return _export(trace, tmp, checkpoints_per_partition, progress)


def _export(trace: TraceFile, out: Path, checkpoints_per_partition: int, progress: Progress | None) -> ParquetStats:
    stats = ParquetStats()
    writer: pq.ParquetWriter | None = None
    current: int | None = None
    try:
        for batch in Tally(trace.num_batches, progress).each(trace.batches()):
            if batch.num_rows == 0:
                continue
            keys = pc.multiply(pc.divide(batch.column("checkpoint"), checkpoints_per_partition),
                               checkpoints_per_partition)  # fmt: skip
            for key in pc.unique(keys).to_pylist():
                part = batch.filter(pc.equal(keys, key))
                if key != current:
                    if writer is not None:
                        writer.close()
                    directory = out / f"{PARTITION_COLUMN}={key}"
                    directory.mkdir(exist_ok=True)
                    name = "part-0.parquet"
                    n = 0
                    while (directory / name).exists():  # checkpoints went back (a reset): add a file
                        n += 1
                        name = f"part-{n}.parquet"
                    writer = pq.ParquetWriter(directory / name, trace.schema, compression="zstd")
                    current = key
                    stats.files += 1
                assert writer is not None
                writer.write_table(pa.Table.from_batches([part], schema=trace.schema))
                stats.rows += part.num_rows
    finally:
        if writer is not None:
            writer.close()
    return stats
