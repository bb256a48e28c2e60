"""The Python API and the SQL views: small traces built with the real TraceWriter, a query, the expected table."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import polars as pl
import pytest

import rrtool
from rrtool.analysis import AnalysisError, open_trace
from rrtool.analysis.views import VIEW_NAMES
from rrtool.schemas import events as ev
from rrtool.schemas.event import Event
from rrtool.schemas.tracefile import open_tracefile
from tests.test_analysis_support import MAC_GUEST, MAC_PEER, cp, frame, scenario, truncate, write_trace


@pytest.fixture(scope="module")
def scen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_trace(tmp_path_factory.mktemp("views") / "scen.arrow", scenario(), rows=10)


def rows(rel: object) -> list[tuple[object, ...]]:
    return [tuple(r) for r in rel.fetchall()]  # type: ignore[attr-defined]


def test_open_trace_is_exported_lazily_and_has_metadata(scen: Path) -> None:
    trace = rrtool.open_trace(scen)
    assert trace.name == "scen"
    assert trace.metadata[ev.META_HOST] == "testhost"
    assert trace.ns_per_insn == 1 and trace.complete
    assert isinstance(trace.events, pl.LazyFrame)
    assert trace.events.select(pl.len()).collect().item() == len(scenario())


def test_events_has_derived_columns_in_both_apis(tmp_path: Path) -> None:
    path = write_trace(tmp_path / "d.arrow", [
        cp(0, 0, 0, ev.CP_INIT),
        Event(ev.KIND_CONSOLE_OUT, "console", 10, 1_500_000_010, checkpoint=0, data=bytes(range(40))),
    ])  # fmt: skip
    trace = open_trace(path)
    got = trace.events.filter(pl.col("kind") == "console_out").select("vclock_s", "data_len", "data_hex").collect()
    assert got.rows() == [(1_500_000_010 * 1e-9, 40, bytes(range(32)).hex())]  # the same double in both engines
    assert rows(trace.sql("select vclock_s, data_len, data_hex from events where kind = 'console_out'")) == got.rows()


def test_block_ops_join_submission_to_completion(tmp_path: Path) -> None:
    """Tag 1 is reused after completing; tag 2's request is lost to a reset (its tag reused before completion)."""

    def blk(kind: str, icount: int, checkpoint: int, req: int, sector: int, **kw: object) -> Event:
        return Event(kind, "block", icount, icount * 2, checkpoint=checkpoint, req_id=req, op="read", sector=sector,
                     sectors=8, length=4096, **kw)  # type: ignore[arg-type]  # fmt: skip

    events = [
        cp(0, 0, 0, ev.CP_INIT),
        blk(ev.KIND_BLK_SUBMIT, 100, 0, 1, 0),
        blk(ev.KIND_BLK_SUBMIT, 150, 0, 2, 64),
        cp(1, 1000, 2000),
        blk(ev.KIND_BLK_COMPLETE, 1000, 1, 1, 0, status=0, order=0, flags=0, data=bytes(4096)),
        blk(ev.KIND_BLK_SUBMIT, 1200, 1, 1, 8),
        blk(ev.KIND_BLK_SUBMIT, 1300, 1, 2, 72),
        cp(2, 2000, 4000),
        blk(ev.KIND_BLK_COMPLETE, 2000, 2, 2, 72, status=5, order=1, flags=1),
        blk(ev.KIND_BLK_COMPLETE, 2000, 2, 1, 8, status=0, order=2, flags=1, data=bytes(4096)),
    ]
    trace = open_trace(write_trace(tmp_path / "b.arrow", events))
    cols = "req_id, sector, submit_checkpoint, complete_checkpoint, latency_ns, latency_insns, status, completed"
    expected = [
        (1, 0, 0, 1, 1800, 900, 0, True),
        (2, 64, 0, None, None, None, None, False),
        (1, 8, 1, 2, 1600, 800, 0, True),
        (2, 72, 1, 2, 1400, 700, 5, True),
    ]
    assert rows(trace.sql(f"select {cols} from block_ops")) == expected
    assert trace.block_ops.select(cols.split(", ")).collect().rows() == expected


def test_packets_decode_ethernet_header(tmp_path: Path) -> None:
    tx = MAC_PEER + MAC_GUEST + b"\x86\xdd" + bytes(40)
    events = [
        cp(0, 0, 0, ev.CP_INIT),
        Event(ev.KIND_NET_RX, "net0", 5, 5, checkpoint=0, data=frame(1), length=60, card=0, flags=0),
        Event(ev.KIND_NET_TX, "net1", 9, 9, checkpoint=0, data=tx, length=len(tx), card=1, flags=0),
        Event(ev.KIND_NET_DROP, "net0", 9, 9, checkpoint=0, data=b"\x01\x02", length=2, card=0, status=3),
    ]
    trace = open_trace(write_trace(tmp_path / "p.arrow", events))
    cols = "direction, card, eth_dst, eth_src, ethertype, length, status"
    expected = [
        ("rx", 0, "52:54:00:12:34:56", "02:00:00:00:aa:01", 0x0800, 60, None),
        ("tx", 1, "02:00:00:00:aa:01", "52:54:00:12:34:56", 0x86DD, 54, None),
        ("drop", 0, "01:02", "", None, 2, 3),
    ]
    assert rows(trace.sql(f"select {cols} from packets")) == expected
    assert trace.packets.select(cols.split(", ")).collect().rows() == expected


def test_clock_checkpoints_console_interrupts(tmp_path: Path) -> None:
    events = [
        cp(0, 0, 0, ev.CP_INIT, host_ns=0),
        Event(ev.KIND_CONSOLE_OUT, "console", 10, 10, checkpoint=0, data=b"ok \xff\n"),
        cp(1, 50, 50, ev.CP_WARP_START, host_ns=1_000),
        Event(ev.KIND_CLOCK_WARP, "clock", 50, 50, checkpoint=1, warp_ns=2_000_000),
        cp(2, 50, 2_000_050, ev.CP_WARP_ACCOUNT, host_ns=1_801_000),
        Event(ev.KIND_IRQ, "intc", 50, 2_000_050, checkpoint=2, pc=0x1234, value=0b101),
        cp(3, 90, 2_000_090, ev.CP_END, host_ns=1_900_000),
    ]
    trace = open_trace(write_trace(tmp_path / "c.arrow", events))
    clock = [(1, 50, 2_000_000, 2_000_050, 1_800_000)]
    assert rows(trace.sql("select checkpoint, vclock_ns, warp_ns, end_vclock_ns, host_wait_ns from clock")) == clock
    assert (
        trace.clock.select("checkpoint", "vclock_ns", "warp_ns", "end_vclock_ns", "host_wait_ns").collect().rows()
        == clock
    )
    cps = [(0, "init", None, 2), (1, "warp_start", 50, 2), (2, "warp_account", 0, 2), (3, "end", 40, 1)]
    assert rows(trace.sql("select checkpoint, cp_kind, insns, events from checkpoints")) == cps
    assert (
        trace.checkpoints.select("checkpoint", pl.col("cp_kind").cast(pl.String), "insns", "events").collect().rows()
        == cps
    )
    assert rows(trace.sql("select direction, text, data_len from console")) == [("out", "ok \ufffd\n", 5)]
    assert trace.console.select("direction", "text", "data_len").collect().rows() == [("out", "ok \ufffd\n", 5)]
    assert rows(trace.sql("select icount, pc, mask from interrupts")) == [(50, 0x1234, 5)]


def test_polars_frames_and_sql_views_agree(scen: Path) -> None:
    """Both renderings of every view give the same rows, exactly (enums compared as strings); see test_view_engines."""
    trace = open_trace(scen)
    for view in VIEW_NAMES:
        frame = getattr(trace, view).collect().with_columns(pl.col(pl.Enum).cast(pl.String))
        sql = trace.sql(f"select * exclude (trace) from {view}").pl().with_columns(pl.col(pl.Enum).cast(pl.String))
        assert frame.columns == sql.columns, view
        order = "submit_seq" if view == "block_ops" else "seq"
        assert frame.sort(order).rows() == sql.sort(order).rows(), view


def test_checkpoint_window_reads_only_overlapping_batches(scen: Path) -> None:
    whole = open_trace(scen)
    tf = open_tracefile(scen)
    spans = tf.batch_index()
    assert len(spans) >= 6
    whole_batches = [tf.batch(k) for k in range(len(spans))]  # decompressed in full, with their metadata
    assert [(s.first_checkpoint, s.last_checkpoint, s.first_icount, s.last_icount, s.rows) for s in spans] == [
        (int(m[ev.BATCH_FIRST_CHECKPOINT]), int(m[ev.BATCH_LAST_CHECKPOINT]), int(m[ev.BATCH_FIRST_ICOUNT]),
         int(m[ev.BATCH_LAST_ICOUNT]), b.num_rows)
        for b, m in whole_batches
    ]  # fmt: skip
    window = open_trace(scen, checkpoints="10:12")
    got = rows(window.sql("select seq, checkpoint, kind from events order by seq"))
    want = rows(whole.sql("select seq, checkpoint, kind from events where checkpoint between 10 and 12 order by seq"))
    assert got == want and got
    assert window.events.select(pl.len()).collect().item() == len(want)
    assert window.bytes_read is not None and 0 < window.bytes_read < scen.stat().st_size  # see test_batchindex
    by_icount = open_trace(scen, icounts=(10_000, 10_999))
    assert {r[0] for r in rows(by_icount.sql("select distinct checkpoint from events"))} == {10}


def test_bad_range_is_a_user_error(scen: Path) -> None:
    with pytest.raises(AnalysisError, match="bad checkpoint range"):
        open_trace(scen, checkpoints="x:y")
    with pytest.raises(AnalysisError, match="start is after end"):
        open_trace(scen, checkpoints="9:3")


def test_truncated_trace_falls_back_to_good_batches(scen: Path, tmp_path: Path) -> None:
    cut = truncate(scen, tmp_path / "cut.arrow", 0.6)
    trace = open_trace(cut)
    assert not trace.complete
    n = trace.events.select(pl.len()).collect().item()
    assert 0 < n < len(scenario())
    assert rows(trace.sql("select count(*) from events")) == [(n,)]
    assert open_trace(cut, checkpoints="0:2").events.select(pl.len()).collect().item() > 0


def test_real_recording(tmp_path: Path) -> None:
    from rrtool.guest.build import ensure_example
    from rrtool.recorder.session import record

    path = tmp_path / "timers.arrow"
    record(ensure_example("timers"), path)
    trace = open_trace(path)
    counts = dict(cast("list[tuple[str, int]]", rows(trace.sql("select kind, count(*) from events group by kind"))))
    assert counts["checkpoint"] > 10 and counts["rng_read"] > 0
    assert trace.clock.collect().height == counts["clock_warp"]
    assert trace.packets.collect().height == 0 and trace.block_ops.collect().height == 0
    assert "timers" in b"".join(trace.console.collect()["data"].to_list()).decode()


def test_block_ops_is_planned_as_an_asof_join(scen: Path) -> None:
    """Not DuckDB's nested-loop rewrite, which it picks for an Arrow scan (no statistics) and is quadratic."""
    plan = open_trace(scen).sql("explain select * from block_ops").fetchall()[0][1]
    assert "asof join" in plan.lower() and "arg_min" not in plan.lower()
