"""`rrtool sql` as a user runs it: several traces, output formats, ranges, errors."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from rrtool.analysis.corpus import unique_names
from rrtool.cli.sql import split_args
from tests.conftest import invoke, rrtool
from tests.test_analysis_support import scenario, write_trace


@pytest.fixture(scope="module")
def traces(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("sql")
    events = scenario()
    a = write_trace(d / "run-1.arrow", events, rows=10)
    b = write_trace(d / "run-2.arrow", events[:-5], rows=10)
    return a, b


def test_group_by_table(traces: tuple[Path, Path]) -> None:
    a, _ = traces
    proc = invoke("sql", a, "--table", "select kind, count(*) as n from events group by kind order by kind")
    assert proc.returncode == 0, proc.stderr
    assert "blk_complete" in proc.stdout and "net_rx" in proc.stdout and "9 rows" in proc.stdout


def test_several_traces_by_name_and_together(traces: tuple[Path, Path]) -> None:
    a, b = traces
    proc = invoke("sql", a, b, "--csv", "select trace, count(*) as n from events group by trace order by trace")
    assert proc.returncode == 0, proc.stderr
    n = len(scenario())
    assert list(csv.reader(io.StringIO(proc.stdout))) == [["trace", "n"], ["run_1", str(n)], ["run_2", str(n - 5)]]
    q = "select count(*) as n from x.events e join y.events f using (seq) where e.kind = f.kind"
    proc = invoke("sql", a, b, "--name", "x", "--name", "y", "--json", q)
    assert json.loads(proc.stdout) == [{"n": n - 5}]


def test_default_names_are_unique(traces: tuple[Path, Path]) -> None:
    a, _ = traces
    assert unique_names([a, a]) == ["run_1", "run_1_2"]


def test_json_csv_parquet_outputs(traces: tuple[Path, Path], tmp_path: Path) -> None:
    a, _ = traces
    q = "select seq, direction, data, data_hex from packets order by seq limit 2"
    rows = json.loads(invoke("sql", a, "--json", q).stdout)
    assert rows[0]["direction"] == "rx" and rows[0]["data"].startswith(rows[0]["data_hex"][:24])
    lines = list(csv.DictReader(io.StringIO(invoke("sql", a, "--csv", q).stdout)))
    assert lines[0]["data"] == rows[0]["data"]
    out = tmp_path / "p.parquet"
    assert invoke("sql", a, "--parquet", out, "select * from block_ops").returncode == 0
    assert pq.read_table(out).num_rows == 4


def test_checkpoint_range_option(traces: tuple[Path, Path]) -> None:
    a, _ = traces
    q = "select min(checkpoint) lo, max(checkpoint) hi from events"
    proc = invoke("sql", a, "--checkpoints", "5:6", "--json", q)
    assert json.loads(proc.stdout) == [{"lo": 5, "hi": 6}]
    bad = invoke("sql", a, "--checkpoints", "6:5", "select 1")
    assert bad.returncode == 2 and "start is after end" in bad.stderr


def test_query_from_a_pipe(traces: tuple[Path, Path]) -> None:
    a, _ = traces
    proc = rrtool("sql", a, "--csv", input="select count(*) as n from interrupts;")
    assert proc.returncode == 0 and proc.stdout.splitlines()[1] == "8"


@pytest.mark.parametrize(
    ("query", "message"),
    [("select * frm events", "Parser Error"), ("select * from nope", "Catalog Error"),
     ("select nope from events", "Binder Error")],
)  # fmt: skip
def test_sql_errors_one_line_exit_2(traces: tuple[Path, Path], query: str, message: str) -> None:
    a, _ = traces
    proc = invoke("sql", a, query)
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_missing_trace_and_argument_split(tmp_path: Path) -> None:
    proc = invoke("sql", tmp_path / "none.arrow", "select 1")
    assert proc.returncode == 2 and "no such trace file" in proc.stderr
    assert split_args(["a.arrow", "b.arrow", "select 1"]) == (["a.arrow", "b.arrow"], "select 1")
    assert split_args(["a.arrow"]) == (["a.arrow"], None)
