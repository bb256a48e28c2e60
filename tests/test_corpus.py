"""Many traces as one dataset: `rrtool sql` over globs and directories, the Parquet export, `diff --baseline`.

The corpora are built here with the real writer: synthetic traces whose
answers are known per trace (each is the scenario cut to a different
length), so every count and every view row can be checked against the same
trace opened alone.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rrtool.analysis.corpus import PER_TRACE_SCHEMAS, SIDECAR, open_corpus
from rrtool.analysis.errors import AnalysisError
from rrtool.analysis.export.parquet import export_parquet
from rrtool.analysis.sources import expand
from rrtool.analysis.trace import open_trace
from rrtool.analysis.viewspec import VIEWS
from rrtool.schemas import events as ev
from tests.conftest import invoke
from tests.test_analysis_support import META, scenario, truncate, write_trace
from tests.test_reliability_cli import corrupt_trace

TRACES = 6
#: Events left out of trace i: each trace has a different count of every kind.
CUT = (0, 3, 7, 12, 20, 31)


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cache of its own per test: what a corpus remembers of its files starts empty."""
    monkeypatch.setenv("RRTOOL_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """runs/run-0.arrow ... run-5.arrow: the scenario of 60 checkpoints, each cut short by CUT[i] events."""
    d = tmp_path_factory.mktemp("corpus") / "runs"
    d.mkdir()
    events = scenario(60)
    for i in range(TRACES):
        kept = events[: len(events) - CUT[i]] if CUT[i] else events
        write_trace(d / f"run-{i}.arrow", kept, rows=40)
    return d


def expected_counts(i: int) -> dict[str, int]:
    """Events per kind in trace i, straight from the scenario."""
    events = scenario(60)
    kept = events[: len(events) - CUT[i]] if CUT[i] else events
    counts: dict[str, int] = {}
    for e in kept:
        counts[e.kind] = counts.get(e.kind, 0) + 1
    return counts


def rchar() -> int:
    """Bytes this process has read through read(2) and friends so far (all threads)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


def test_a_query_over_a_glob_has_known_answers_per_trace(runs: Path) -> None:
    proc = invoke("sql", str(runs / "*.arrow"), "--json", "select trace, kind, count(*) n from events group by all")
    assert proc.returncode == 0, proc.stderr
    got = {(r["trace"], r["kind"]): r["n"] for r in json.loads(proc.stdout)}
    want = {(f"run_{i}", k): n for i in range(TRACES) for k, n in expected_counts(i).items()}
    assert got == want


def test_the_traces_table(runs: Path) -> None:
    with open_corpus(runs) as corpus:
        traces = corpus.traces
        assert traces["trace"].to_list() == [f"run_{i}" for i in range(TRACES)]
        assert traces["complete"].to_list() == [True] + [False] * (TRACES - 1)  # the cut ones lost their end
        assert traces["events"].to_list() == [sum(expected_counts(i).values()) for i in range(TRACES)]
        assert traces["bytes"].to_list() == [(runs / f"run-{i}.arrow").stat().st_size for i in range(TRACES)]
        assert traces["path"].to_list() == [str((runs / f"run-{i}.arrow").resolve()) for i in range(TRACES)]
        assert set(traces["image_sha256"].to_list()) == {META[ev.META_IMAGE_SHA256]}
        assert traces["start_time"].dt.year().to_list() == [2026] * TRACES
        assert traces["platform"].to_list() == ["board"] * TRACES
        last = traces.row(0, named=True)
        assert last["end"] == "exit" and last["checkpoints"] == 60 and last["instructions"] == 59_000


def test_every_view_of_the_corpus_is_each_traces_own_view(runs: Path) -> None:
    """Joins and look-backs stay within a trace: the corpus's rows of trace i are trace i's view, in both engines."""
    with open_corpus(runs) as corpus:
        for name in ("events", *VIEWS):
            duck = corpus.sql(f"select * from {name}").pl()
            frame = (corpus.events if name == "events" else corpus.view(name)).collect()
            for i in range(TRACES):
                with open_trace(runs / f"run-{i}.arrow") as alone:
                    own = (alone.events if name == "events" else getattr(alone, name)).collect()
                for rows in (duck, frame):
                    mine = rows.filter(pl.col("trace") == f"run_{i}").drop("trace")
                    assert mine.height == own.height, (name, i)
                    left = mine.sort(mine.columns[:3]).with_columns(pl.col(pl.Enum).cast(pl.String))
                    right = own.sort(own.columns[:3]).with_columns(pl.col(pl.Enum).cast(pl.String))
                    assert left.rows() == right.select(left.columns).rows(), (name, i)


def test_per_trace_schemas_for_a_small_corpus(runs: Path) -> None:
    with open_corpus(runs) as corpus:
        assert len(corpus) <= PER_TRACE_SCHEMAS
        got = corpus.sql("select count(*) from run_3.block_ops").fetchall()
        want = corpus.sql("select count(*) from block_ops where trace = 'run_3'").fetchall()
        assert got == want and got[0][0] > 0


def test_a_single_trace_query_reads_only_that_file(runs: Path) -> None:
    with open_corpus(runs):
        pass  # the first open checks and summarises every file, once
    sizes = [(runs / f"run-{i}.arrow").stat().st_size for i in range(TRACES)]
    before = rchar()
    corpus = open_corpus(runs)  # summaries remembered: the files are only stat-ed
    opened = rchar() - before
    assert opened < min(sizes) // 4, opened
    before = rchar()
    n = corpus.sql("select count(*) from events where trace = 'run_4'").fetchall()[0][0]
    read = rchar() - before
    assert n == sum(expected_counts(4).values())
    assert read < sizes[4] * 1.5 and read < sum(sizes) / 3, (read, sizes)
    before = rchar()
    assert corpus.sql("select count(*) from events").fetchall()[0][0] == sum(
        sum(expected_counts(i).values()) for i in range(TRACES)
    )
    assert rchar() - before > sum(sizes) * 0.5  # the measure can tell a whole scan from one file
    corpus.close()


def test_a_checkpoint_window_across_traces(runs: Path) -> None:
    proc = invoke(
        "sql", runs, "--checkpoints", "10:19", "--json", "select trace, min(checkpoint) lo, max(checkpoint) hi, "
        "count(*) n from events group by trace order by trace",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert [(r["lo"], r["hi"]) for r in rows] == [(10, 19)] * TRACES
    want = sum(1 for e in scenario(60) if 10 <= e.checkpoint <= 19)
    assert {r["n"] for r in rows} == {want}


def test_a_trace_cut_short_by_a_crash_joins_the_corpus(runs: Path, tmp_path: Path) -> None:
    d = tmp_path / "mixed"
    d.mkdir()
    (d / "whole.arrow").write_bytes((runs / "run-0.arrow").read_bytes())
    truncate(runs / "run-0.arrow", d / "killed.arrow", 0.6)
    with open_corpus(d) as corpus:
        t = corpus.traces.select("trace", "complete", "events").rows()
        assert t[0][0] == "killed" and t[0][1] is False and 0 < t[0][2] < t[1][2]
        counts = dict(corpus.sql("select trace, count(*) from events group by trace").fetchall())
        assert counts == {"killed": t[0][2], "whole": t[1][2]}


def test_bad_corpora_are_one_line_errors(runs: Path, tmp_path: Path) -> None:
    (tmp_path / "notes.arrow").write_text("not a trace")
    old = write_trace(tmp_path / "old.arrow", scenario(4), meta={**META, ev.META_FORMAT_VERSION: "5"})
    cases = [
        ([str(tmp_path / "nothing-*.arrow")], "no file matches this pattern"),
        ([str(runs / "run-1.arrow"), str(tmp_path / "notes.arrow")], "notes.arrow: not an Arrow IPC file"),
        ([str(runs / "run-1.arrow"), str(old)], "old.arrow: trace format version 5 is not supported"),
        ([str(tmp_path / "empty")], "no such trace file"),
    ]
    (tmp_path / "emptydir").mkdir()
    cases.append(([str(tmp_path / "emptydir")], "a directory with no .arrow trace in it"))
    for sources, message in cases:
        proc = invoke("sql", *sources, "select count(*) from events")
        assert proc.returncode == 2, (sources, proc.stdout, proc.stderr)
        assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_globs_and_directories_expand_once_each(runs: Path) -> None:
    got = expand([str(runs / "run-1.arrow"), str(runs), str(runs / "*.arrow")]).traces
    assert [p.name for p in got] == ["run-1.arrow", *(f"run-{i}.arrow" for i in range(TRACES) if i != 1)]
    with pytest.raises(AnalysisError, match="no file matches"):
        expand([str(runs / "*.nope")])


# -- the Parquet export ----------------------------------------------------------------------------------------


def test_export_gives_the_same_answers_as_the_arrow_files(runs: Path, tmp_path: Path) -> None:
    out = tmp_path / "corpus"
    stats = export_parquet([runs], out, checkpoints_per_partition=25)
    assert stats.traces == TRACES and stats.rows == sum(sum(expected_counts(i).values()) for i in range(TRACES))
    assert sorted(p.name for p in out.iterdir()) == ["events", "traces.parquet"]
    assert sorted(p.name for p in (out / "events" / "trace=run_0").iterdir()) == [
        SIDECAR, "checkpoint_start=0", "checkpoint_start=25", "checkpoint_start=50"
    ]  # fmt: skip
    with open_corpus(runs) as files, open_corpus(out) as dataset:
        assert dataset.traces.drop("path").equals(files.traces.drop("path"))
        for name in ("events", *VIEWS):
            q = f"select * from {name} order by trace, 2, 3"
            a, b = files.sql(q).pl(), dataset.sql(q).pl()
            assert a.shape == b.shape, name
            assert a.with_columns(pl.col(pl.Enum).cast(pl.String)).rows() == b.rows(), name
        polars_rows = dataset.view("block_ops").group_by("trace").agg(pl.len()).sort("trace").collect().rows()
        assert polars_rows == files.sql("select trace, count(*) from block_ops group by 1 order by 1").fetchall()


def test_a_single_trace_query_on_the_dataset_reads_its_partition(runs: Path, tmp_path: Path) -> None:
    """Each part file is known by its trace and its checkpoint range: a query on one trace, or on a
    checkpoint range, reads only those files (against a scan of every file's icount)."""
    out = tmp_path / "corpus"
    export_parquet([runs], out, checkpoints_per_partition=10)
    total = sum(p.stat().st_size for p in (out / "events").rglob("*.parquet"))

    def reads(query: str) -> tuple[list[Any], int]:
        before = rchar()
        rows = corpus.sql(query).fetchall()
        return rows, rchar() - before

    with open_corpus(out) as corpus:
        corpus.duckdb()
        n, one = reads("select count(*) from events where trace = 'run_2' and checkpoint between 30 and 39")
        _, window = reads("select count(*) from events where checkpoint between 30 and 39")
        _, everything = reads("select sum(icount) from events")
    assert n[0][0] == sum(1 for e in scenario(60) if 30 <= e.checkpoint <= 39)
    assert one < window / 3 and window < everything / 3 and everything > total / 2, (one, window, everything, total)


def test_adding_and_replacing_traces(runs: Path, tmp_path: Path) -> None:
    out = tmp_path / "corpus"
    export_parquet([runs / "run-0.arrow", runs / "run-1.arrow"], out)
    first = (out / "events" / "trace=run_0" / "checkpoint_start=0" / "part-0.parquet").stat()
    stats = export_parquet([runs / "run-2.arrow"], out)
    assert stats.traces == 1 and stats.replaced == 0
    kept = (out / "events" / "trace=run_0" / "checkpoint_start=0" / "part-0.parquet").stat()
    assert (kept.st_ino, kept.st_mtime_ns) == (first.st_ino, first.st_mtime_ns)  # not rewritten
    assert pq.read_table(out / "traces.parquet").column("trace").to_pylist() == ["run_0", "run_1", "run_2"]
    stats = export_parquet([runs / "run-1.arrow"], out)
    assert stats.replaced == 1
    with open_corpus(out) as corpus:
        counts = dict(corpus.sql("select trace, count(*) from events group by 1").fetchall())
    assert counts == {f"run_{i}": sum(expected_counts(i).values()) for i in range(3)}
    assert not [p for p in (out / "events").iterdir() if not p.name.startswith("trace=")]
    # Another file of the same name is refused, and nothing changes.
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "run-1.arrow").write_bytes((runs / "run-3.arrow").read_bytes())
    proc = invoke("export", "parquet", other / "run-1.arrow", "-o", out, "-q")
    assert proc.returncode == 2 and "already holds a trace named 'run_1'" in proc.stderr


def test_a_dataset_is_not_made_from_a_non_dataset_directory(runs: Path, tmp_path: Path) -> None:
    out = tmp_path / "busy"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    proc = invoke("export", "parquet", runs, "-o", out, "-q")
    assert proc.returncode == 2 and "not an empty directory" in proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["mine.txt"]


def test_a_killed_export_leaves_the_dataset_readable_and_correct(runs: Path, tmp_path: Path) -> None:
    """SIGKILL while traces are being added: readers see whole partitions only, and the next export finishes."""
    out = tmp_path / "corpus"
    export_parquet([runs / "run-0.arrow"], out)
    many = tmp_path / "many"
    many.mkdir()
    events = scenario(3000)
    write_trace(many / "big-0.arrow", events, rows=200)
    for i in range(1, 8):
        (many / f"big-{i}.arrow").write_bytes((many / "big-0.arrow").read_bytes())
    env = {**os.environ, "RRTOOL_CACHE": str(tmp_path / "cache2")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rrtool.cli", "export", "parquet", str(many), "-o", str(out), "-q"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list((out / "events").glob("trace=big_*"))) < 2:
        time.sleep(0.005)  # two traces are in (the threads finish them in any order): kill
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with open_corpus(out) as corpus:
        names = corpus.traces["trace"].to_list()
        bigs = [n for n in names if n.startswith("big_")]
        assert "run_0" in names and 2 <= len(bigs) < 8, names  # killed before the end
        counts = dict(corpus.sql("select trace, count(*) from events group by 1").fetchall())
        assert set(counts) == set(names)
        assert all(counts[n] == len(events) for n in names if n.startswith("big_")), counts
    finished = invoke("export", "parquet", many, "-o", out, "-q")
    assert finished.returncode == 0, finished.stderr
    assert not [p for p in (out / "events").iterdir() if not p.name.startswith("trace=")]
    with open_corpus(out) as corpus:
        assert len(corpus) == 9


def test_ctrl_c_mid_export_stops_the_threads_and_lists_what_was_added(runs: Path, tmp_path: Path) -> None:
    """SIGINT while two threads export: exit 130, no temporary left, traces.parquet written for what is in."""
    out = tmp_path / "corpus"
    export_parquet([runs / "run-0.arrow"], out)
    many = tmp_path / "many"
    many.mkdir()
    write_trace(many / "big-0.arrow", scenario(3000), rows=200)
    for i in range(1, 8):
        (many / f"big-{i}.arrow").write_bytes((many / "big-0.arrow").read_bytes())
    env = {**os.environ, "RRTOOL_CACHE": str(tmp_path / "cache2")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rrtool.cli", "export", "parquet", str(many), "-o", str(out), "-q", "--jobs", "2"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not list((out / "events").glob("trace=big_*")):
        time.sleep(0.005)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in stderr, stderr
    assert all(p.name.startswith("trace=") for p in (out / "events").iterdir())
    listed = pq.read_table(out / "traces.parquet").column("trace").to_pylist()
    assert listed == sorted(p.name.split("=", 1)[1] for p in (out / "events").iterdir()) and len(listed) < 9


def behind_its_partitions(runs: Path, tmp_path: Path) -> Path:
    """A dataset of run_0 and run_1 whose traces.parquet lists run_0 only: an export killed between
    swapping run_1's partition in and rewriting traces.parquet."""
    out = tmp_path / "corpus"
    export_parquet([runs / "run-0.arrow"], out)
    stale = (out / "traces.parquet").read_bytes()
    export_parquet([runs / "run-1.arrow"], out)
    (out / "traces.parquet").write_bytes(stale)
    return out


def test_traces_parquet_behind_its_partitions_is_rebuilt_on_reading(runs: Path, tmp_path: Path) -> None:
    """An export killed between the swap and rewriting traces.parquet: the partitions' own rows win."""
    out = behind_its_partitions(runs, tmp_path)
    with open_corpus(out) as corpus:
        assert corpus.traces["trace"].to_list() == ["run_0", "run_1"]


def test_the_dataset_is_the_same_whatever_the_number_of_jobs(runs: Path, tmp_path: Path) -> None:
    """Each trace is its own partition, written by one thread: the files do not depend on the threads."""

    def files(root: Path) -> dict[Path, bytes]:
        return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    export_parquet([runs], tmp_path / "one", checkpoints_per_partition=25, jobs=1)
    stats = export_parquet([runs], tmp_path / "four", checkpoints_per_partition=25, jobs=4)
    assert stats.traces == TRACES
    one, four = files(tmp_path / "one"), files(tmp_path / "four")
    assert len(one) == 1 + TRACES * 4 and one.keys() == four.keys()
    traces = Path("traces.parquet")  # its metadata names the partitions' directories, which differ
    assert {k: v for k, v in one.items() if k != traces} == {k: v for k, v in four.items() if k != traces}
    assert pq.read_table(tmp_path / "one" / traces).equals(pq.read_table(tmp_path / "four" / traces))


def test_a_damaged_trace_stops_the_export_and_the_dataset_stays_whole(runs: Path, tmp_path: Path) -> None:
    """A batch in the middle of one trace is garbage, found half-way by one of the threads."""
    out = tmp_path / "corpus"
    export_parquet([runs / "run-0.arrow"], out)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for i in range(1, 5):
        (mixed / f"run-{i}.arrow").write_bytes((runs / f"run-{i}.arrow").read_bytes())
    corrupt_trace(mixed / "run-9.arrow")
    proc = invoke("export", "parquet", mixed, "-o", out, "-q", "--jobs", "2")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "run-9.arrow" in proc.stderr and "damaged" in proc.stderr
    assert all(p.name.startswith("trace=") for p in (out / "events").iterdir())  # no temporary left
    listed = pq.read_table(out / "traces.parquet").column("trace").to_pylist()
    assert listed == sorted(p.name.split("=", 1)[1] for p in (out / "events").iterdir())
    assert "run_0" in listed and "run_9" not in listed
    with open_corpus(out) as corpus:
        counts = dict(corpus.sql("select trace, count(*) from events group by 1").fetchall())
    assert counts == {n: sum(expected_counts(int(n[4:])).values()) for n in listed}


@pytest.mark.parametrize(
    "damage",
    [
        lambda row: "not json {",
        lambda row: json.dumps({**row, "version": 99}),
        lambda row: json.dumps({k: v for k, v in row.items() if k != "events"}),
        lambda row: json.dumps({**row, "events": "many"}),
        lambda row: json.dumps({**row, "trace": "run_0"}),
        lambda row: json.dumps([row]),
        lambda row: "[" * 200_000,
        lambda row: json.dumps({**row, "events": 2**80}),
    ],
    ids=["not-json", "version", "missing-field", "wrong-type", "another-trace", "not-an-object", "deep", "huge"],
)
def test_a_damaged_partition_row_is_a_one_line_error(
    runs: Path, tmp_path: Path, damage: Callable[[dict[str, Any]], str]
) -> None:
    """traces.parquet behind the partitions sends the reader to their own rows: a damaged one is refused."""
    out = behind_its_partitions(runs, tmp_path)
    sidecar = out / "events" / "trace=run_1" / SIDECAR
    sidecar.write_text(damage(json.loads(sidecar.read_text())))
    proc = invoke("sql", out, "select count(*) from traces")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "trace=run_1" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("name", ["main", 'x"y', "", "temp", "A", "a b", "caf\u00e9"])
def test_a_dataset_whose_trace_names_were_edited_is_refused(runs: Path, tmp_path: Path, name: str) -> None:
    """A name becomes a DuckDB schema and a directory: one rrtool would not give is a line, not a traceback."""
    out = tmp_path / "corpus"
    export_parquet([runs / "run-0.arrow"], out)
    table = pq.read_table(out / "traces.parquet")
    pq.write_table(table.set_column(0, table.schema.field(0), pa.array([name], pa.string())), out / "traces.parquet")
    (out / "events" / "trace=run_0").rename(out / "events" / f"trace={name}")
    sidecar = out / "events" / f"trace={name}" / SIDECAR  # read instead: the partition's directory moved
    sidecar.write_text(json.dumps({**json.loads(sidecar.read_text()), "trace": name}))
    proc = invoke("sql", out, "select trace, count(*) from events group by 1")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "not a name rrtool gives a trace" in proc.stderr


def test_damaged_files_in_a_dataset_are_one_line_errors(runs: Path, tmp_path: Path) -> None:
    """Bits flipped, bytes zeroed or a file cut short anywhere in a dataset (a part file, a sidecar,
    traces.parquet): every query answers or fails with one line, never a traceback."""
    good = tmp_path / "good"
    export_parquet([runs / "run-0.arrow", runs / "run-1.arrow"], good, checkpoints_per_partition=20)
    files = sorted(p.relative_to(good) for p in good.rglob("*") if p.is_file())
    rng = random.Random(15)
    failed = 0
    for n in range(30):
        mutant = tmp_path / f"m{n}"
        shutil.copytree(good, mutant)
        target = mutant / files[n % len(files)]  # every file, then again
        data = bytearray(target.read_bytes())
        how = rng.choice(["flip", "cut", "zero"])
        if how == "flip":
            for _ in range(rng.randint(1, 8)):
                i = rng.randrange(len(data))
                data[i] ^= 1 << rng.randrange(8)
        elif how == "cut":
            data = data[: rng.randrange(len(data))]
        else:
            i = rng.randrange(len(data))
            data[i : i + 16] = bytes(16)
        target.write_bytes(bytes(data))
        for query in ("select trace, count(*), max(icount) from events group by 1", "select * from block_ops"):
            proc = invoke("sql", mutant, query, "--csv")
            lines = proc.stderr.strip().splitlines()
            assert proc.returncode in (0, 2) and len(lines) <= 1, (target, how, proc.stderr[-2000:])
            failed += proc.returncode == 2
        shutil.rmtree(mutant)
    assert failed, "no mutant was refused: the damage did not reach what the queries read"


def test_a_partition_replaced_by_a_killed_export_is_described_by_its_own_row(runs: Path, tmp_path: Path) -> None:
    """Killed after a re-export swapped a partition in: the names still match, the rows would not."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "run-1.arrow").write_bytes((runs / "run-1.arrow").read_bytes())
    out = tmp_path / "corpus"
    export_parquet([runs / "run-0.arrow", mine / "run-1.arrow"], out)
    stale = (out / "traces.parquet").read_bytes()
    (mine / "run-1.arrow").write_bytes((runs / "run-4.arrow").read_bytes())  # recorded again, shorter
    export_parquet([mine / "run-1.arrow"], out)
    (out / "traces.parquet").write_bytes(stale)  # as if killed before rewriting it
    with open_corpus(out) as corpus:
        rows = dict(corpus.sql("select trace, events from traces").fetchall())
        counts = dict(corpus.sql("select trace, count(*) from events group by 1").fetchall())
    assert rows == counts == {"run_0": sum(expected_counts(0).values()), "run_1": sum(expected_counts(4).values())}


def test_a_partition_without_its_own_row_is_named(runs: Path, tmp_path: Path) -> None:
    out = behind_its_partitions(runs, tmp_path)
    (out / "events" / "trace=run_1" / SIDECAR).unlink()
    proc = invoke("sql", out, "select count(*) from traces")
    assert proc.returncode == 2 and f"trace=run_1: a partition without its {SIDECAR}" in proc.stderr


@pytest.mark.parametrize("parent", ["trace=zzz", "date=2024", "brk[1]"])
def test_a_dataset_reads_the_same_wherever_it_is(runs: Path, tmp_path: Path, parent: str) -> None:
    """Only the dataset's own directories are partitions: not a `key=value` or a glob character above it."""
    out = tmp_path / parent / "corpus"
    out.parent.mkdir()
    export_parquet([runs / "run-0.arrow", runs / "run-1.arrow"], out)
    expected = {f"run_{i}": sum(expected_counts(i).values()) for i in range(2)}
    with open_corpus(out) as corpus:
        assert dict(corpus.sql("select trace, count(*) from events group by 1").fetchall()) == expected
        assert corpus.sql("select count(*) from events where trace = 'run_1'").fetchall() == [(expected["run_1"],)]
        assert "date" not in corpus.sql("select * from events limit 0").columns
        assert dict(corpus.events.group_by("trace").len().collect().rows()) == expected


def test_a_dataset_of_traces_without_events(tmp_path: Path) -> None:
    write_trace(tmp_path / "empty.arrow", [], rows=10)
    export_parquet([tmp_path / "empty.arrow"], tmp_path / "corpus")
    proc = invoke("sql", tmp_path / "corpus", "select count(*) n from events", "--csv")
    assert proc.returncode == 0 and proc.stdout.split() == ["n", "0"], proc.stderr


def test_sql_parquet_never_writes_into_the_dataset_it_reads(runs: Path, tmp_path: Path) -> None:
    out = tmp_path / "corpus"
    export_parquet([runs / "run-0.arrow"], out)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    for target in (out / "traces.parquet", out / "events" / "trace=run_0" / "checkpoint_start=0" / "part-0.parquet"):
        proc = invoke("sql", out, "select 1 x", "--parquet", target, "-q")
        assert proc.returncode == 2 and "inside the dataset" in proc.stderr, proc.stderr
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_a_glob_through_a_symlink_loop_is_one_line(runs: Path, tmp_path: Path) -> None:
    (tmp_path / "lp" / "a").mkdir(parents=True)
    (tmp_path / "lp" / "a" / "up").symlink_to("..")
    proc = invoke("sql", str(tmp_path / "lp" / "**" / "*.arrow"), "select 1")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_an_export_into_a_dataset_with_a_linked_events_directory_is_refused(runs: Path, tmp_path: Path) -> None:
    out = tmp_path / "corpus"
    export_parquet([runs / "run-0.arrow"], out)
    victim = tmp_path / "victim"
    (out / "events").rename(victim)
    (out / "events").symlink_to(victim)
    (victim / "_tmp-999999-keep").mkdir()
    proc = invoke("export", "parquet", runs / "run-1.arrow", "-o", out, "-q")
    assert proc.returncode == 2 and "symbolic link" in proc.stderr
    assert sorted(p.name for p in victim.iterdir()) == ["_tmp-999999-keep", "trace=run_0"]


def test_the_failure_named_is_the_same_for_any_number_of_jobs(tmp_path: Path) -> None:
    """A long trace damaged late and a short one damaged early: the first in name order is named."""
    bad = tmp_path / "bad"
    bad.mkdir()
    write_trace(bad / "a-long.arrow", scenario(2000), rows=50)
    data = bytearray((bad / "a-long.arrow").read_bytes())
    at = len(data) * 9 // 10
    data[at : at + 64] = bytes(b ^ 0xFF for b in data[at : at + 64])
    (bad / "a-long.arrow").write_bytes(bytes(data))
    corrupt_trace(bad / "b-short.arrow")
    for jobs in ("1", "2"):
        proc = invoke("export", "parquet", bad, "-o", tmp_path / f"out{jobs}", "-q", "--jobs", jobs)
        assert proc.returncode == 2 and "a-long.arrow" in proc.stderr, (jobs, proc.stderr)
        assert not (tmp_path / f"out{jobs}").exists()


def test_a_row_written_while_another_export_replaced_its_partition_is_not_trusted(runs: Path, tmp_path: Path) -> None:
    """Two exports into one dataset at once: the one that ends last writes the row it read at its start
    for a trace the other replaced meanwhile; the row carries the old partition's identity, so it is not used."""
    from rrtool.analysis.corpus import read_traces_and_identities
    from rrtool.analysis.export.parquet import _Job, _write_traces

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "run-1.arrow").write_bytes((runs / "run-1.arrow").read_bytes())
    out = tmp_path / "corpus"
    export_parquet([runs / "run-0.arrow", mine / "run-1.arrow"], out)
    existing, identities = read_traces_and_identities(out)  # the slow export starts
    (mine / "run-1.arrow").write_bytes((runs / "run-4.arrow").read_bytes())
    export_parquet([mine / "run-1.arrow"], out)  # the quick one replaces run_1
    _write_traces(out, existing, identities, _Job(10, 1, None))  # the slow one ends, having added nothing
    with open_corpus(out) as corpus:
        rows = dict(corpus.sql("select trace, events from traces").fetchall())
    assert rows == {"run_0": sum(expected_counts(0).values()), "run_1": sum(expected_counts(4).values())}


def test_hostile_partition_metadata_and_files(runs: Path, tmp_path: Path) -> None:
    out = tmp_path / "corpus"
    export_parquet([runs / "run-0.arrow"], out)
    table = pq.read_table(out / "traces.parquet")
    pq.write_table(table.replace_schema_metadata({"rrtool.partitions": "[" * 200_000}), out / "traces.parquet")
    proc = invoke("sql", out, "select trace, events from traces", "--csv")  # not recorded: the sidecars are read
    assert proc.returncode == 0 and proc.stdout.split()[1] == f"run_0,{sum(expected_counts(0).values())}", proc
    os.mkfifo(out / "events" / "trace=run_0" / "checkpoint_start=0" / "part-9.parquet")
    proc = invoke("sql", out, "select count(*) from events", timeout=30)
    assert proc.returncode == 2 and "not a regular file" in proc.stderr, proc.stderr


def test_a_dataset_of_an_earlier_rrtool_says_so(runs: Path, tmp_path: Path) -> None:
    out = behind_its_partitions(runs, tmp_path)
    (out / "events" / "trace=run_1" / SIDECAR).rename(out / "events" / "trace=run_1" / "_trace.parquet")
    proc = invoke("sql", out, "select count(*) from traces")
    assert proc.returncode == 2 and "written by an earlier rrtool" in proc.stderr, proc.stderr


# -- diff --baseline ------------------------------------------------------------------------------------------


def test_diff_baseline_names_each_first_divergence(runs: Path, tmp_path: Path) -> None:
    same = tmp_path / "same.arrow"
    same.write_bytes((runs / "run-0.arrow").read_bytes())
    changed = scenario(60)
    changed[150].value = 12345 if changed[150].kind == ev.KIND_RNG_READ else changed[150].value
    assert changed[150].kind == ev.KIND_RNG_READ
    write_trace(tmp_path / "changed.arrow", changed)
    base = runs / "run-0.arrow"
    proc = invoke("diff", "--baseline", base, same, tmp_path / "changed.arrow", runs / "run-2.arrow")
    assert proc.returncode == 1, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].endswith("same.arrow: equivalent")
    cp = changed[150].checkpoint
    assert f"changed.arrow: DIFFERENT at checkpoint {cp} " in lines[1] and "rng_read on rng changed [value]" in lines[1]
    assert "run-2.arrow: DIFFERENT" in lines[2]
    assert lines[3] == f"2 of 3 differ from {base}"
    js = invoke("diff", "--baseline", base, same, tmp_path / "changed.arrow", "--json")
    verdicts = json.loads(js.stdout)["traces"]
    assert [v["equivalent"] for v in verdicts] == [True, False]
    assert verdicts[1]["first"]["checkpoint"] == cp and verdicts[1]["first"]["fields"] == ["value"]
    ok = invoke("diff", "--baseline", base, same)
    assert ok.returncode == 0 and "0 of 1 differ" in ok.stdout


def test_diff_baseline_bad_input(runs: Path, tmp_path: Path) -> None:
    (tmp_path / "junk.arrow").write_bytes(b"ARROW1\0\0garbage")
    cases: list[tuple[list[str | Path], str]] = [
        (["--baseline", runs / "run-0.arrow", tmp_path / "x*.arrow"], "no file matches"),
        (["--baseline", runs / "run-0.arrow", runs / "run-1.arrow", tmp_path / "junk.arrow"], "junk.arrow"),
        (["--baseline", runs / "run-0.arrow", runs / "run-0.arrow"], "only the baseline itself"),
        (["--baseline", runs / "run-0.arrow", "--deep", runs / "run-1.arrow"], "does not take --baseline"),
        ([runs / "run-0.arrow"], "give two traces"),
    ]
    for args, message in cases:
        proc = invoke("diff", *args)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
