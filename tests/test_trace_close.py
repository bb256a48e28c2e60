"""Closing traces: TraceFile and Trace let go of their memory map and file descriptor, by close() or `with`."""

from __future__ import annotations

import gc
import os
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.ipc as ipc
import pytest

from rrtool.analysis import open_trace
from rrtool.analysis.export.pcap import export_pcap
from rrtool.analysis.export.perfetto import export_perfetto
from rrtool.analysis.info import trace_info
from rrtool.schemas.tracefile import TraceError, open_tracefile
from tests.test_analysis_support import scenario, truncate, write_trace


def held(path: Path) -> tuple[int, int]:
    """(memory mappings of `path`, open file descriptors on it) in this process."""
    real = os.path.realpath(path)
    with open("/proc/self/maps") as f:
        maps = sum(1 for line in f if line.rstrip().endswith(real))
    fds = sum(os.path.realpath(f"/proc/self/fd/{fd}") == real for fd in os.listdir("/proc/self/fd"))
    return maps, fds


@pytest.fixture(scope="module")
def scen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_trace(tmp_path_factory.mktemp("close") / "scen.arrow", scenario(), rows=10)


def test_tracefile_close_unmaps_the_file(scen: Path) -> None:
    tf = open_tracefile(scen)
    assert held(scen) == (1, 1) and not tf.closed
    assert len(tf.batch_index()) > 1
    kept, _ = tf.batch(1)
    tf.close()
    tf.close()  # idempotent
    assert tf.closed
    assert held(scen)[1] == 0  # the descriptor goes at once
    assert kept.num_rows > 0 and kept.column("seq")[0].as_py() >= 0  # a batch read before stays valid
    del kept
    gc.collect()
    assert held(scen) == (0, 0)  # the mapping goes with the last buffer pointing into it
    assert tf.metadata and tf.schema.names  # what was read at open is plain Python data
    with pytest.raises(ValueError, match="closed"):
        tf.batch(0)
    with pytest.raises(ValueError, match="closed"):
        tf.batch_info(0)


def test_tracefile_as_a_context_manager(scen: Path) -> None:
    with open_tracefile(scen) as tf:
        assert tf.find_batch(3) is not None
    assert tf.closed and held(scen) == (0, 0)


def test_truncated_tracefile_drops_its_batches(scen: Path, tmp_path: Path) -> None:
    cut = truncate(scen, tmp_path / "cut.arrow", 0.6)
    with open_tracefile(cut) as tf:
        assert not tf.complete_file and tf.num_batches > 1
    gc.collect()
    assert tf.closed and held(cut) == (0, 0)


def test_a_file_that_is_no_trace_is_not_left_mapped(tmp_path: Path) -> None:
    plain = tmp_path / "plain.arrow"
    with pa.OSFile(str(plain), "wb") as sink, ipc.new_file(sink, pa.schema([("x", pa.int64())])) as w:
        w.write_batch(pa.record_batch([pa.array([1, 2])], names=["x"]))
    assert held(plain) == (0, 0)
    with pytest.raises(TraceError, match="not an rrtool trace"):
        open_tracefile(plain)
    gc.collect()
    assert held(plain) == (0, 0)


def test_with_open_trace_closes_file_and_duckdb(scen: Path) -> None:
    with open_trace(scen) as t:
        n = t.sql("select count(*) from events").fetchall()[0][0]
        packets = t.packets.collect()
        con = t.duckdb()
        assert n == len(scenario()) and packets.height > 0
    gc.collect()
    assert t.closed and held(scen) == (0, 0)
    with pytest.raises(Exception, match="closed"):
        con.execute("select 1")
    with pytest.raises(ValueError, match="closed"):
        t.sql("select 1")
    with pytest.raises(ValueError, match="closed"):
        _ = t.events
    assert packets.height > 0  # collected frames outlive the trace


def test_a_closed_window_lets_go_of_its_rows(scen: Path) -> None:
    t = open_trace(scen, checkpoints="3:5")
    assert set(t.events.select("checkpoint").collect()["checkpoint"].to_list()) == {3, 4, 5}
    with open_trace(scen) as whole:
        want = whole.sql("select count(*) from console where checkpoint between 3 and 5").fetchall()
    assert t.sql("select count(*) from console").fetchall() == want
    t.close()
    gc.collect()
    assert held(scen) == (0, 0)
    assert "_window_table" not in t.__dict__ and "events" not in t.__dict__


def test_info_and_exports_close_the_trace(scen: Path, tmp_path: Path) -> None:
    assert trace_info(scen)["events"] == len(scenario())
    export_pcap(scen, tmp_path / "t.pcapng")
    export_perfetto(scen, tmp_path / "t.json")
    gc.collect()
    assert held(scen) == (0, 0)
    assert pl.read_json(tmp_path / "t.json").height >= 0
