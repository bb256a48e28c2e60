"""An exported corpus read by Apache Spark: the same answers as DuckDB over the export and over the .arrow files.

The corpus is real recordings (three blkstress runs on a disk with chaos
completion order, so block tags are reused and completions come out of
order, and one timers run without block requests), exported with a small
`checkpoints_per_partition` so each blkstress trace spans several `checkpoint_start`
directories. Spark reads `events/` with its own hive partition discovery
(the `_trace.json` sidecars start with `_`, which it skips) and
`traces.parquet` as a plain file. One local Spark session serves the module,
bound to the loopback interface.

The block latency query is one SQL text for both engines (only the
percentile aggregate is spelled differently); a few hand-made rows check
the case the recordings lack, a lost request whose tag is reused.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest

pytest.importorskip("pyspark", reason="the Spark acceptance test needs pyspark (pip install -e '.[spark]')")
if shutil.which("java") is None:
    pytest.skip("the Spark acceptance test needs a JVM: java is not on PATH (openjdk-17-jre-headless)",
                allow_module_level=True)  # fmt: skip

from pyspark import SparkContext
from pyspark.sql import SparkSession

from rrtool.analysis.corpus import open_corpus
from rrtool.analysis.export.parquet import export_parquet
from rrtool.board.disk import DiskSpec
from rrtool.board.host import HostSetup
from rrtool.guest.build import ensure_example
from rrtool.recorder.session import record

#: Few enough checkpoints per file that every blkstress trace is split over several partitions.
CHECKPOINTS_PER_PARTITION = 100
CHAOS_SEEDS = (1, 2, 3)
QUANTILES = (0.5, 0.9, 0.99)

EVENTS_PER_KIND = "SELECT trace, CAST(kind AS STRING) AS kind, count(*) AS n FROM events GROUP BY trace, kind"

#: Block latency per trace from the raw events, in SQL both engines speak; `{quantiles}` is each one's aggregate.
#: A tag (`req_id`) is reused once its request completes, so a submission's completion is the first
#: blk_complete of its tag after it and before the tag's next submission (`lead` over the submissions).
BLOCK_LATENCY = """
WITH submits AS (
    SELECT trace, device, req_id, seq, vclock_ns,
           lead(seq) OVER (PARTITION BY trace, device, req_id ORDER BY seq) AS next_submit
    FROM events WHERE kind = 'blk_submit'
), completions AS (
    SELECT trace, device, req_id, seq, vclock_ns FROM events WHERE kind = 'blk_complete'
), matched AS (
    SELECT s.trace, c.vclock_ns - s.vclock_ns AS latency,
           row_number() OVER (PARTITION BY s.trace, s.device, s.req_id, s.seq ORDER BY c.seq) AS nth
    FROM submits AS s JOIN completions AS c
      ON c.trace = s.trace AND c.device = s.device AND c.req_id = s.req_id
     AND c.seq > s.seq AND (s.next_submit IS NULL OR c.seq < s.next_submit)
)
SELECT trace, {quantiles} AS q, count(*) AS n FROM matched WHERE nth = 1 GROUP BY trace
"""
_LIST = ", ".join(map(str, QUANTILES))
SPARK_QUANTILES = f"percentile(latency, array({_LIST}))"  # exact, linear interpolation
DUCKDB_QUANTILES = f"quantile_cont(latency, [{_LIST}])"  # the same definition

TRACES_COLUMNS = ("trace", "path", "platform", "complete", "end", "batches", "events", "checkpoints", "instructions",
                  "bytes", "format_version")  # fmt: skip


@dataclass(frozen=True)
class Corpus:
    arrow: list[Path]
    dataset: Path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    tmp = tmp_path_factory.mktemp("spark")
    disk = tmp / "disk.img"
    disk.write_bytes(os.urandom(1 << 16) * 32)
    paths = []
    for seed in CHAOS_SEEDS:
        out = tmp / f"blk{seed}.arrow"
        rec = record(ensure_example("blkstress"), out, host=HostSetup(disk=DiskSpec(disk), chaos=seed))
        assert rec.run.ok, rec.run.message
        paths.append(out)
    out = tmp / "timers.arrow"
    rec = record(ensure_example("timers"), out)
    assert rec.run.ok, rec.run.message
    paths.append(out)
    dataset = tmp / "corpus"
    export_parquet(paths, dataset, checkpoints_per_partition=CHECKPOINTS_PER_PARTITION)
    return Corpus(paths, dataset)


@pytest.fixture(scope="module")
def spark() -> Iterator[SparkSession]:
    """One local Spark (one core, no UI, two shuffle partitions), reachable on 127.0.0.1 only; its JVM ends after."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SPARK_LOCAL_IP", "127.0.0.1")  # else Spark picks the host's outward address
        session = (
            SparkSession.builder.master("local[1]")
            .appName("rrtool-test-spark")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.sql.shuffle.partitions", "2")
            .config("spark.driver.bindAddress", "127.0.0.1")
            .config("spark.driver.host", "127.0.0.1")
            .config("spark.sql.session.timeZone", "UTC")
            .getOrCreate()
        )
    session.sparkContext.setLogLevel("ERROR")
    try:
        yield session
    finally:
        gateway = SparkContext._gateway
        session.stop()
        if gateway is not None:  # the JVM exits when its stdin closes; the next session would start a new one
            proc: subprocess.Popen[bytes] = gateway.proc
            gateway.shutdown()
            SparkContext._gateway = None
            SparkContext._jvm = None
            if proc.stdin is not None:
                proc.stdin.close()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


#: A result row; both engines' rows hold plain Python values (str, int, float, Decimal, list).
Row = tuple[Any, ...]


def _duckdb(source: Path | Sequence[Path], query: str) -> list[Row]:
    """The rows of `query` in DuckDB over a corpus (an exported dataset or .arrow files), sorted."""
    with open_corpus(source if isinstance(source, Path) else list(source)) as c:
        return sorted(c.sql(query).fetchall(), key=repr)


def _spark(spark: SparkSession, query: str) -> list[Row]:
    """The rows of `query` in Spark SQL, sorted."""
    return sorted((tuple(row) for row in spark.sql(query).collect()), key=repr)


def _events_view(spark: SparkSession, corpus: Corpus) -> None:
    spark.read.parquet(str(corpus.dataset / "events")).createOrReplaceTempView("events")


def test_spark_discovers_the_partitions(spark: SparkSession, corpus: Corpus) -> None:
    events = spark.read.parquet(str(corpus.dataset / "events"))
    assert events.columns[-2:] == ["trace", "checkpoint_start"]
    parts = {(r.trace, r.checkpoint_start) for r in events.select("trace", "checkpoint_start").distinct().collect()}
    first = f"checkpoint - checkpoint % {CHECKPOINTS_PER_PARTITION}"
    assert parts == set(_duckdb(corpus.dataset, f"select trace, {first} from events group by all"))
    assert len(parts) > len(corpus.arrow)  # a trace over several checkpoint_start directories
    # uint64 columns are Parquet UINT_64, which Spark reads as decimal(20,0) (the list `args` too), exactly.
    types = dict(events.dtypes)
    assert types["pc"] == "decimal(20,0)" and types["args"] == "array<decimal(20,0)>"
    assert types["kind"] == "string"  # Arrow dictionary columns are plain strings to Spark
    [(want,)] = _duckdb(corpus.dataset, "select sum(reg_digest::hugeint)::varchar from events")
    [(got,)] = _spark(spark, f"select cast(sum(reg_digest) as string) from parquet.`{corpus.dataset / 'events'}`")
    assert got == want and int(want) >= 1 << 64  # the digests' full 64 bits, summed past 2**64


def test_events_per_kind_per_trace(spark: SparkSession, corpus: Corpus) -> None:
    _events_view(spark, corpus)
    got = _spark(spark, EVENTS_PER_KIND)
    assert got == _duckdb(corpus.dataset, EVENTS_PER_KIND)
    assert got == _duckdb(corpus.arrow, EVENTS_PER_KIND)
    assert {t for t, _, _ in got} == {p.stem for p in corpus.arrow}
    kinds = {k for _, k, _ in got}
    assert {"blk_submit", "blk_complete", "checkpoint", "irq", "rng_read"} <= kinds


def _close(a: Sequence[Row], b: Sequence[Row]) -> bool:
    """Rows (trace, [quantiles], count) equal, the quantiles within 1e-9 relative."""
    if [(r[0], r[2]) for r in a] != [(r[0], r[2]) for r in b]:
        return False
    return all(
        len(qa) == len(qb) and all(math.isclose(x, y, rel_tol=1e-9) for x, y in zip(qa, qb, strict=True))
        for qa, qb in ((list(ra[1]), list(rb[1])) for ra, rb in zip(a, b, strict=True))
    )


def test_block_latency_percentiles_per_trace(spark: SparkSession, corpus: Corpus) -> None:
    _events_view(spark, corpus)
    got = _spark(spark, BLOCK_LATENCY.format(quantiles=SPARK_QUANTILES))
    duck = _duckdb(corpus.dataset, BLOCK_LATENCY.format(quantiles=DUCKDB_QUANTILES))
    assert _close(got, duck), (got, duck)
    assert _close(duck, _duckdb(corpus.arrow, BLOCK_LATENCY.format(quantiles=DUCKDB_QUANTILES)))
    view = _duckdb(corpus.dataset, f"select trace, quantile_cont(latency_ns, [{_LIST}]), count(*) from block_ops "
                                   "where completed group by trace")  # fmt: skip
    assert _close(duck, view), (duck, view)
    assert [r[0] for r in got] == [f"blk{s}" for s in CHAOS_SEEDS]  # timers submits no block request
    # What the window functions are for: every tag is reused, and some submissions never complete (the
    # malformed requests the device rejects at submission), so the next completion of a tag may be another's.
    submits = "select trace, count(*), count(distinct req_id) from events where kind = 'blk_submit' group by trace"
    submitted = {t: (n, tags) for t, n, tags in _spark(spark, submits)}
    assert all(0 < n < submitted[t][0] and submitted[t][1] < n for t, _, n in got)


def _quantile(values: Sequence[int], q: float) -> float:
    """The q-quantile by linear interpolation between the closest ranks (`percentile`, `quantile_cont`)."""
    xs = sorted(values)
    pos = q * (len(xs) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def test_block_latency_query_pairs_a_reused_tag_with_its_own_submission(spark: SparkSession) -> None:
    """What the recordings do not show: a request that never completes and whose tag is reused (a guest reset).

    Its tag's next completion belongs to the later submission; without the
    `next_submit` bound the lost request would take it, with a longer latency.
    """
    rows = [  # trace, device, req_id, seq, vclock_ns, kind
        ("t", "block", 1, 0, 0, "blk_submit"),  # lost
        ("t", "block", 2, 1, 10, "blk_submit"),
        ("t", "block", 1, 2, 20, "blk_submit"),  # the tag reused
        ("t", "block", 2, 3, 40, "blk_complete"),  # 30
        ("t", "block", 1, 4, 50, "blk_complete"),  # 30, seq 2's
        ("t", "block", 2, 5, 60, "blk_submit"),
        ("t", "block", 2, 6, 65, "blk_complete"),  # 5
        ("t", "block", 2, 7, 70, "blk_submit"),  # in flight at the end
        ("t", "disk2", 1, 8, 80, "blk_submit"),  # the same tag on another device
        ("t", "disk2", 1, 9, 81, "blk_complete"),  # 1
        ("u", "block", 1, 0, 0, "blk_submit"),  # another trace, the same tag and seq
        ("u", "block", 1, 1, 7, "blk_complete"),  # 7
    ]
    schema = "trace string, device string, req_id long, seq long, vclock_ns long, kind string"
    spark.createDataFrame(rows, schema).createOrReplaceTempView("events")
    got = _spark(spark, BLOCK_LATENCY.format(quantiles=SPARK_QUANTILES))
    con = duckdb.connect()
    con.execute(f"create table events ({schema.replace('string', 'varchar').replace('long', 'bigint')})")
    con.executemany("insert into events values (?, ?, ?, ?, ?, ?)", rows)
    duck = sorted(con.sql(BLOCK_LATENCY.format(quantiles=DUCKDB_QUANTILES)).fetchall())
    want = [(t, [_quantile(lat, q) for q in QUANTILES], len(lat)) for t, lat in (("t", [30, 30, 5, 1]), ("u", [7]))]
    assert _close(got, want), got
    assert _close(duck, want), duck


def test_traces_table(spark: SparkSession, corpus: Corpus) -> None:
    spark.read.parquet(str(corpus.dataset / "traces.parquet")).createOrReplaceTempView("traces_pq")
    columns = ", ".join(f"`{c}`" for c in TRACES_COLUMNS)  # `end` is a keyword in both dialects
    got = _spark(spark, f"select {columns}, unix_micros(start_time) from traces_pq")
    columns = ", ".join(f'"{c}"' for c in TRACES_COLUMNS)
    want = _duckdb(corpus.dataset, f"select {columns}, epoch_us(start_time) from traces")
    assert got == want
    assert [r[0] for r in got] == sorted(p.stem for p in corpus.arrow)
    counted = spark.read.parquet(str(corpus.dataset / "events")).groupBy("trace").count().collect()
    events = TRACES_COLUMNS.index("events")
    assert {r["trace"]: r["count"] for r in counted} == {r[0]: r[events] for r in got}
