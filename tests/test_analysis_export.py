"""Exports read back by independent readers: tshark and dpkt (pcapng), pyarrow (Parquet), json (Perfetto)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from rrtool.analysis.export.parquet import export_parquet
from rrtool.analysis.export.pcap import export_pcap
from rrtool.analysis.export.perfetto import export_perfetto
from rrtool.schemas import events as ev
from tests.conftest import invoke
from tests.test_analysis_support import scenario, write_trace

START_NS = 1_767_323_045 * 1_000_000_000  # META start time, 2026-01-02T03:04:05Z


@pytest.fixture(scope="module")
def scen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_trace(tmp_path_factory.mktemp("export") / "scen.arrow", scenario(), rows=10)


def net_events() -> list[tuple[str, int, int, bytes]]:
    return [(e.kind, e.card or 0, e.vclock_ns, e.data or b"") for e in scenario() if e.kind in ("net_rx", "net_tx")]


def test_pcapng_read_back_with_dpkt(scen: Path, tmp_path: Path) -> None:
    import dpkt

    out = tmp_path / "t.pcapng"
    stats = export_pcap(scen, out)
    expected = net_events()
    assert (stats.packets, stats.rx, stats.tx) == (len(expected), 4, 4)
    with open(out, "rb") as f:
        reader = dpkt.pcapng.Reader(f)
        got = [(ts, bytes(buf)) for ts, buf in reader]
    assert [buf for _, buf in got] == [data for *_, data in expected]
    # dpkt returns float seconds: compare to the microsecond.
    assert [round(ts * 1e6) for ts, _ in got] == [round((START_NS + v) / 1e3) for _, _, v, _ in expected]


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed (apt-get install tshark)")
def test_pcapng_read_back_with_tshark(scen: Path, tmp_path: Path) -> None:
    out = tmp_path / "t.pcapng"
    proc = invoke("export", "pcap", scen, "-o", out)
    assert proc.returncode == 0, proc.stderr
    fields = ["frame.interface_name", "frame.time_epoch", "frame.p2p_dir", "eth.type", "frame.len"]
    tshark = subprocess.run(
        ["tshark", "-r", str(out), "-T", "fields", *(x for f in fields for x in ("-e", f))],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    lines = [line.split("\t") for line in tshark.stdout.splitlines()]
    expected = net_events()
    assert len(lines) == len(expected)
    for (name, epoch, direction, ethertype, length), (kind, card, vclock, data) in zip(lines, expected, strict=True):
        assert name == f"net{card}"
        assert epoch == f"{(START_NS + vclock) // 10**9}.{(START_NS + vclock) % 10**9:09d}"
        assert direction == ("1" if kind == "net_rx" else "0")  # 1 = received
        assert int(ethertype, 16) == int.from_bytes(data[12:14], "big") and int(length) == len(data)


def test_parquet_is_hive_partitioned_by_checkpoint(scen: Path, tmp_path: Path) -> None:
    out = tmp_path / "pq"
    stats = export_parquet(scen, out, checkpoints_per_partition=10)
    events = out / "events"
    assert sorted(p.name for p in events.iterdir()) == ["trace=scen"]
    parts = sorted(p.name for p in (events / "trace=scen").iterdir() if p.is_dir())
    assert parts == ["checkpoint_start=0", "checkpoint_start=10", "checkpoint_start=20"]
    dataset = ds.dataset(events, format="parquet", partitioning="hive")
    table = dataset.to_table()
    assert table.num_rows == stats.rows == len(scenario())
    assert set(table.column("trace").to_pylist()) == {"scen"}
    part = dataset.to_table(filter=ds.field("checkpoint_start") == 10)
    assert set(part.column("checkpoint").to_pylist()) == set(range(10, 20))
    assert part.schema.field("icount").type == ev.EVENTS_SCHEMA.field("icount").type
    again = invoke("export", "parquet", scen, "-o", out)  # the same trace again: its partition is replaced
    assert again.returncode == 0 and "1 replaced" in again.stderr
    assert ds.dataset(events, format="parquet", partitioning="hive").count_rows() == len(scenario())


def test_perfetto_json_tracks_slices_counters(scen: Path, tmp_path: Path) -> None:
    out = tmp_path / "t.json"
    export_perfetto(scen, out)
    trace = json.loads(out.read_text())
    events = trace["traceEvents"]
    names = {e["args"]["name"] for e in events if e.get("name") == "thread_name"}
    assert {"machine", "clock", "net0", "net1", "block", "console", "intc", "rng"} <= names
    warps = [e for e in events if e["ph"] == "X"]
    assert [(w["ts"], w["dur"]) for w in warps] == [
        (e.vclock_ns / 1000, e.warp_ns / 1000) for e in scenario() if e.kind == ev.KIND_CLOCK_WARP and e.warp_ns
    ]
    begins = [e for e in events if e["ph"] == "b"]
    ends = [e for e in events if e["ph"] == "e"]
    assert len(begins) == 4 and len(ends) == 4
    first_end = next(e for e in ends if e["id"] == begins[0]["id"])
    assert first_end["name"] == begins[0]["name"] == "read 8+8" and first_end["ts"] > begins[0]["ts"]
    depths = [e["args"]["depth"] for e in events if e["ph"] == "C"]
    assert max(depths) >= 1 and min(depths) >= 0
    instants = [e for e in events if e["ph"] == "i"]
    assert len(instants) == len(scenario()) - len(warps) - len(begins) - len(ends)
    assert all(isinstance(e["ts"], int | float) for e in events if "ts" in e)


def test_export_errors_are_one_line(scen: Path, tmp_path: Path) -> None:
    for args in (
        ("export", "pcap", tmp_path / "none.arrow", "-o", tmp_path / "x.pcapng"),
        ("export", "perfetto", scen, "-o", tmp_path / "missing-dir" / "x.json"),
        ("export", "pcap", scen, "-o", tmp_path / "x.pcapng", "--time-base", "later"),
    ):
        proc = invoke(*args)
        assert proc.returncode == 2, args
        assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
