"""`rrtool diff` against known truth: traces built to differ in exactly one way, and real recordings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rrtool.analysis.diff import DiffOptions, diff_traces
from rrtool.analysis.errors import AnalysisError
from rrtool.schemas import events as ev
from rrtool.schemas.event import Event
from tests.conftest import invoke
from tests.test_analysis_support import META, cp, frame, scenario, truncate, write_trace


def base() -> list[Event]:
    return scenario(60)


@pytest.fixture(scope="module")
def a(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_trace(tmp_path_factory.mktemp("diff") / "a.arrow", base(), rows=25)


def variant(tmp_path: Path, events: list[Event], name: str = "b.arrow") -> Path:
    return write_trace(tmp_path / name, events, rows=25)


def test_identical_traces_exit_0(a: Path, tmp_path: Path) -> None:
    b = variant(tmp_path, base())
    result = diff_traces(a, b)
    assert result.equivalent and result.first is None
    assert result.totals().matched == len(base())
    proc = invoke("diff", a, b)
    assert proc.returncode == 0, proc.stderr
    assert "equivalent" in proc.stdout


def test_one_inbound_packet_differs(a: Path, tmp_path: Path) -> None:
    events = base()
    target = [e for e in events if e.kind == ev.KIND_NET_RX][7]
    assert target.data is not None
    changed = bytearray(target.data)
    changed[20] ^= 0xFF
    target.data = bytes(changed)
    b = variant(tmp_path, events)
    result = diff_traces(a, b)
    first = result.first
    assert first is not None and not result.equivalent
    assert (first.status, first.kind, first.device, first.fields) == ("changed", "net_rx", "net0", ["data"])
    assert (first.checkpoint, first.icount) == (target.checkpoint, target.icount)
    net = result.kinds["net_rx"]
    assert (net.changed, net.matched, net.only_a, net.only_b) == (1, net.events_a - 1, 0, 0)
    assert all(not k.differs for name, k in result.kinds.items() if name != "net_rx")
    proc = invoke("diff", a, b)
    assert proc.returncode == 1
    assert f"first divergence at checkpoint {target.checkpoint}, icount {target.icount}: net_rx on net0" in proc.stdout
    assert "first difference at byte 20" in proc.stdout and "^^" in proc.stdout
    data = json.loads(invoke("diff", a, b, "--json").stdout)
    assert data["first"]["checkpoint"] == target.checkpoint and data["first"]["fields"] == ["data"]
    assert data["kinds"]["net_rx"]["changed"] == 1 and data["totals"]["changed"] == 1


def test_extra_event_resynchronises(a: Path, tmp_path: Path) -> None:
    events = base()
    at = next(i for i, e in enumerate(events) if e.checkpoint == 30 and e.kind == ev.KIND_CONSOLE_OUT)
    extra = Event(ev.KIND_NET_RX, "net0", events[at].icount + 1, events[at].vclock_ns + 1, checkpoint=30,
                  data=frame(99), length=60, card=0, flags=0)  # fmt: skip
    events.insert(at + 1, extra)
    result = diff_traces(a, variant(tmp_path, events))
    totals = result.totals()
    assert (totals.only_b, totals.only_a, totals.changed) == (1, 0, 0)
    assert result.kinds["net_rx"].only_b == 1
    assert totals.matched == len(base())
    assert result.first is not None and result.first.status == "only_b" and result.first.icount == extra.icount


def test_missing_event_and_extra_checkpoint(a: Path, tmp_path: Path) -> None:
    events = base()
    gone = next(e for e in events if e.kind == ev.KIND_IRQ and e.checkpoint == 20)
    events.remove(gone)
    # An extra checkpoint in b: every later checkpoint id shifts by one, which must not count as a change.
    at = next(i for i, e in enumerate(events) if e.kind == ev.KIND_CHECKPOINT and e.checkpoint == 40)
    for e in events[at:]:
        e.checkpoint += 1
    events.insert(at, cp(40, events[at].icount - 1, events[at].vclock_ns - 1, ev.CP_TIMER))
    result = diff_traces(a, variant(tmp_path, events))
    totals = result.totals()
    assert (totals.only_a, totals.only_b, totals.changed) == (1, 1, 0), result.to_dict()["kinds"]
    assert result.kinds["irq"].only_a == 1 and result.kinds["checkpoint"].only_b == 1


def test_icount_drift_pairs_moved_events(a: Path, tmp_path: Path) -> None:
    """After a change the guest runs a few instructions longer: events move but are still paired."""
    events = base()
    for e in events:
        if e.checkpoint == 33 and e.kind == ev.KIND_CONSOLE_OUT:
            e.data = b"line 33 (longer)\n"
        if e.checkpoint == 33 and e.kind != ev.KIND_CHECKPOINT and e.icount >= 33_200:
            e.icount += 7
            e.vclock_ns += 7
    result = diff_traces(a, variant(tmp_path, events))
    totals = result.totals()
    assert (totals.only_a, totals.only_b, totals.changed) == (0, 0, 2)
    assert result.kinds["rng_read"].changed_columns == {"icount": 1, "vclock_ns": 1}
    assert result.kinds["console_out"].changed_columns == {"icount": 1, "vclock_ns": 1, "data": 1}
    assert result.first is not None and result.first.kind == "rng_read"
    options = DiffOptions(ignore_kinds=frozenset({"console_out"}))
    ignoring = diff_traces(a, variant(tmp_path, events, "b2.arrow"), options)
    assert ignoring.totals().changed == sum(k.changed for n, k in result.kinds.items() if n != "console_out")


def test_truncated_second_trace_is_reported_exit_1(a: Path, tmp_path: Path) -> None:
    cut = truncate(a, tmp_path / "cut.arrow", 0.5)
    result = diff_traces(a, cut)
    totals = result.totals()
    assert not result.complete_b and totals.only_a > 0 and totals.only_b == 0 and totals.changed == 0
    assert any("cut short" in n for n in result.notes)
    proc = invoke("diff", a, cut)
    assert proc.returncode == 1
    assert "cut short" in proc.stdout


def test_ignore_options(a: Path, tmp_path: Path) -> None:
    events = base()
    for e in events:
        if e.kind == ev.KIND_RNG_READ:
            e.value = (e.value or 0) + 1
        if e.kind == ev.KIND_CHECKPOINT:
            e.host_ns = (e.host_ns or 0) + 12345
    meta_b = {**META, ev.META_START_TIME: "2030-01-01T00:00:00+00:00", ev.META_HOST: "other"}
    b = write_trace(tmp_path / "b.arrow", events, meta=meta_b, rows=25)
    rng_reads = sum(e.kind == ev.KIND_RNG_READ for e in events)
    assert diff_traces(a, b).totals().changed == rng_reads  # host_ns, start time and host are ignored
    assert diff_traces(a, b, DiffOptions(ignore_columns=frozenset({"value"}))).equivalent
    assert diff_traces(a, b, DiffOptions(ignore_kinds=frozenset({"rng_read"}))).equivalent
    assert not diff_traces(a, b, DiffOptions(ignore_kinds=frozenset({"rng_read"}), compare_host_time=True)).equivalent
    assert invoke("diff", a, b, "--ignore-kind", "rng_read").returncode == 0
    bad = invoke("diff", a, b, "--ignore-column", "nope")
    assert bad.returncode == 2 and "no such column" in bad.stderr and "Traceback" not in bad.stderr
    with pytest.raises(AnalysisError):
        diff_traces(a, b, DiffOptions(ignore_columns=frozenset({"kind"})))


def test_metadata_difference_counts(a: Path, tmp_path: Path) -> None:
    b = write_trace(tmp_path / "b.arrow", base(), meta={**META, ev.META_IMAGE_SHA256: "ff" * 32}, rows=25)
    result = diff_traces(a, b)
    assert not result.equivalent and [k for k, _, _ in result.metadata] == [ev.META_IMAGE_SHA256]
    assert diff_traces(a, b, DiffOptions(ignore_meta=frozenset({"image_sha256"}))).equivalent


def test_bad_input_exit_2(a: Path, tmp_path: Path) -> None:
    missing = invoke("diff", a, tmp_path / "missing.arrow")
    assert missing.returncode == 2 and "no such trace file" in missing.stderr
    junk = tmp_path / "junk.arrow"
    junk.write_bytes(b"not arrow at all")
    proc = invoke("diff", junk, a)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_two_timers_recordings_differ_in_rng_and_rtc(tmp_path: Path) -> None:
    from rrtool.guest.build import ensure_example
    from rrtool.recorder.session import record

    x, y = tmp_path / "x.arrow", tmp_path / "y.arrow"
    record(ensure_example("timers"), x)
    record(ensure_example("timers"), y)
    result = diff_traces(x, y)
    assert not result.equivalent
    assert result.first is not None and result.first.kind == "rtc_read" and result.first.fields == ["value"]
    assert result.kinds["rng_read"].changed == result.kinds["rng_read"].events_a
    # Printed numbers may differ in length, so icounts can drift: events are still paired, not "only".
    totals = result.totals()
    # warp_ns counts as drift (a warp to a deadline absorbs the icount drift before it), so warps pair too.
    assert totals.only_a + totals.only_b <= 2 and totals.matched + totals.changed >= totals.events_a - 1
    assert diff_traces(x, x).equivalent
