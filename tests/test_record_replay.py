"""Record -> replay -> compare, tampering, crashes, signals, and the trace's error paths."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from rrtool.analysis.info import trace_info
from rrtool.player.session import ReplayError, replay
from rrtool.recorder.session import record
from tests import guests
from tests.conftest import BuildC, invoke
from tests.tracetools import read_rows, write_rows


def _jitter(stop: threading.Event, seed: int) -> None:
    """Random host noise: short sleeps and bursts of CPU work on another thread."""
    rng = random.Random(seed)
    while not stop.is_set():
        if rng.random() < 0.5:
            time.sleep(rng.random() * 0.003)
        else:
            end = time.perf_counter() + rng.random() * 0.003
            while time.perf_counter() < end:
                sum(range(200))


def test_timers_replays_bit_for_bit_under_host_jitter(example: object, tmp_path: Path) -> None:
    image = example("timers")  # type: ignore[operator]
    outputs = set()
    for i in range(20):
        stop = threading.Event()
        noise = threading.Thread(target=_jitter, args=(stop, i), daemon=True)
        noise.start()
        try:
            rec = record(image, tmp_path / f"t{i}.arrow")
        finally:
            stop.set()
            noise.join()
        assert rec.run.ok
        rep = replay(tmp_path / f"t{i}.arrow")
        assert rep.verified, rep.divergence and rep.divergence.report()
        assert rep.complete
        assert rep.checkpoints == rec.run.checkpoints
        assert rep.run is not None and rep.run.output == rec.run.output  # byte for byte
        outputs.add(rec.run.output)
    assert len(outputs) > 1  # the RNG and RTC really differ between recordings


@pytest.fixture(scope="module")
def timers_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from rrtool.guest.build import ensure_example

    path = tmp_path_factory.mktemp("trace") / "timers.arrow"
    assert record(ensure_example("timers"), path).run.ok
    return path


def _tampered(src: Path, dst: Path, change: object) -> tuple[Path, dict[str, object]]:
    rows = read_rows(src)
    target = change(rows)  # type: ignore[operator]
    write_rows(src, dst, rows)
    return dst, target


def test_changed_rng_value_diverges(timers_trace: Path, tmp_path: Path) -> None:
    def change(rows: list[dict[str, object]]) -> dict[str, object]:
        row = [r for r in rows if r["kind"] == "rng_read"][3]
        row["value"] = int(row["value"]) ^ 0x5A5A  # type: ignore[call-overload]
        return row

    path, row = _tampered(timers_trace, tmp_path / "rng.arrow", change)
    rep = replay(path)
    div = rep.divergence
    assert div is not None
    # The guest prints what it read, so the difference shows in the same checkpoint's console output.
    assert div.checkpoint == row["checkpoint"]
    assert "console_out data differs" in div.what
    assert div.pc is not None and div.disassembly
    proc = invoke("replay", path, "-q")
    assert proc.returncode == 1
    assert f"DIVERGENCE at checkpoint {row['checkpoint']}" in proc.stderr


def test_dropped_event_diverges(timers_trace: Path, tmp_path: Path) -> None:
    def change(rows: list[dict[str, object]]) -> dict[str, object]:
        idx = [i for i, r in enumerate(rows) if r["kind"] == "rtc_read"][1]
        return rows.pop(idx)

    path, row = _tampered(timers_trace, tmp_path / "drop.arrow", change)
    div = replay(path).divergence
    assert div is not None
    assert div.checkpoint == row["checkpoint"]
    assert div.icount == row["icount"]  # the machine reads the RTC exactly where the log lost it
    assert "the machine produced a rtc_read event" in div.what


def test_shifted_icount_diverges(timers_trace: Path, tmp_path: Path) -> None:
    def change(rows: list[dict[str, object]]) -> dict[str, object]:
        row = [r for r in rows if r["kind"] == "rng_read"][5]
        row["icount"] = int(row["icount"]) + 1  # type: ignore[call-overload]
        return row

    path, row = _tampered(timers_trace, tmp_path / "shift.arrow", change)
    div = replay(path).divergence
    assert div is not None
    assert div.checkpoint == row["checkpoint"]
    assert div.what == "rng_read icount differs"
    assert div.icount == int(row["icount"]) - 1  # type: ignore[call-overload]


def test_flipped_memory_digest_diverges(timers_trace: Path, tmp_path: Path) -> None:
    def change(rows: list[dict[str, object]]) -> dict[str, object]:
        row = [r for r in rows if r["mem_digest"] is not None][-1]
        row["mem_digest"] = int(row["mem_digest"]) ^ (0xFF << 8)  # type: ignore[call-overload]
        return row

    path, row = _tampered(timers_trace, tmp_path / "mem.arrow", change)
    div = replay(path).divergence
    assert div is not None
    assert div.checkpoint == row["checkpoint"]
    assert div.what == "checkpoint mem_digest differs"


def test_idle_recording_replays_faster_than_virtual_time(build_c: BuildC, tmp_path: Path) -> None:
    path = build_c("sleep_2s", guests.SLEEPER, ("-DTICKS=20", "-DSLEEP_NS=100000000ull"))
    rec = record(path, tmp_path / "idle.arrow")
    assert rec.run.ok
    assert rec.run.vclock_ns >= 2_000_000_000
    rep = replay(tmp_path / "idle.arrow")
    assert rep.verified
    assert rep.wall_s < rec.run.vclock_ns / 1e9
    assert rep.wall_s < rec.wall_s / 4  # recording waited in real time; replay does not wait at all


def _record_cmd(image: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "rrtool.cli", "record", str(image), "-o", str(out), "--no-stdin", "-q"]


def test_sigkill_leaves_a_trace_readable_to_its_last_batch(build_c: BuildC, tmp_path: Path) -> None:
    path = build_c("sleep_long", guests.SLEEPER, ("-DTICKS=100", "-DSLEEP_NS=1000000000ull"))
    rng = random.Random(1234)
    kills = 0
    for i in range(10):
        target = tmp_path / f"killed{i}.arrow"
        # A recording is written to <output>.part and renamed when it ends: a SIGKILL leaves the .part.
        out = tmp_path / f"killed{i}.arrow.part"
        proc = subprocess.Popen(_record_cmd(path, target), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # The random moment is counted from the trace's creation, not from the process start, which a
        # loaded machine can stretch past the shortest delay (the kill would then test no trace at all).
        deadline = time.monotonic() + 30
        while not out.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.1, 3.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        assert not target.exists()
        info = trace_info(out)
        assert info["complete"] is False
        cli = invoke("info", out, "--json")
        assert cli.returncode == 0 and '"complete": false' in cli.stdout
        if info["checkpoints"] == 0:  # killed before its first batch: nothing to verify is not "verified"
            with pytest.raises(ReplayError, match="no complete checkpoint"):
                replay(out)
            continue
        rep = replay(out)
        assert rep.verified, rep.divergence and rep.divergence.report()
        assert not rep.complete
        assert rep.checkpoints == info["checkpoints"]
    assert kills == 10


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_sigint_and_sigterm_finish_the_trace(build_c: BuildC, tmp_path: Path, sig: signal.Signals) -> None:
    path = build_c("sleep_long", guests.SLEEPER, ("-DTICKS=100", "-DSLEEP_NS=1000000000ull"))
    out = tmp_path / "stopped.arrow"
    proc = subprocess.Popen(_record_cmd(path, out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    # Signal once the recording is under way (its .part file exists), not after a fixed delay that a
    # loaded machine can stretch past the start-up (the signal would then kill Python before rrtool runs).
    deadline = time.monotonic() + 30
    while not out.with_name(out.name + ".part").exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    time.sleep(0.5)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    info = trace_info(out)
    assert info["complete"] is True
    assert info["end"].startswith("interrupted")
    rep = replay(out)
    assert rep.verified and rep.complete, rep.divergence and rep.divergence.report()


def test_replay_refuses_a_different_image(timers_trace: Path, example: object, tmp_path: Path) -> None:
    other = example("hello")  # type: ignore[operator]
    with pytest.raises(ReplayError, match="--force"):
        replay(timers_trace, image=other)
    proc = invoke("replay", timers_trace, "--image", other)
    assert proc.returncode == 2 and "--force" in proc.stderr
    forced = replay(timers_trace, image=other, force=True)
    assert forced.divergence is not None  # a different program cannot match the trace


def test_replay_finds_image_by_recorded_path(timers_trace: Path) -> None:
    proc = invoke("replay", timers_trace, "--json")
    assert proc.returncode == 0, proc.stderr
    assert '"verified": true' in proc.stdout


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: None, "no such trace file"),
        (lambda p: p.write_text("hello"), "not an Arrow IPC file"),
        (lambda p: p.write_bytes(b"ARROW1\x00\x00\xff\xff"), "truncated before the end of its Arrow header"),
    ],
)
def test_bad_traces_give_one_line_and_exit_2(tmp_path: Path, make: object, message: str) -> None:
    path = tmp_path / "bad.arrow"
    make(path)  # type: ignore[operator]
    for cmd in ("replay", "info"):
        proc = invoke(cmd, path)
        assert proc.returncode == 2
        assert message in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1


def test_unknown_format_version_is_refused(timers_trace: Path, tmp_path: Path) -> None:
    import pyarrow.ipc as ipc

    table = ipc.open_file(timers_trace).read_all()
    meta = dict(table.schema.metadata)
    meta[b"rrtool.format_version"] = b"99"
    bad = tmp_path / "v99.arrow"
    with ipc.new_file(str(bad), table.schema.with_metadata(meta)) as w:
        w.write_table(table.replace_schema_metadata(meta))
    proc = invoke("replay", bad)
    assert proc.returncode == 2
    assert "format version 99 is not supported" in proc.stderr


def test_info_reports_counts_and_completion(timers_trace: Path) -> None:
    info = trace_info(timers_trace)
    assert info["complete"] is True
    assert info["counts"]["checkpoint"] == info["checkpoints"] > 10
    assert info["counts"]["rng_read"] > 0 and info["counts"]["clock_warp"] > 0
    assert info["end"] == "exit: guest exited with code 0"
    assert info["machine"]["ns_per_insn"] == 1
    assert len(info["image_sha256"]) == 64
    assert os.path.getsize(timers_trace) == info["size_bytes"]


def test_trace_batches_hold_whole_checkpoints_and_seek(tmp_path: Path, example: object) -> None:
    from rrtool.machine.config import MachineConfig
    from rrtool.schemas.tracefile import open_tracefile

    out = tmp_path / "compute.arrow"
    rec = record(example("compute"), out, config=MachineConfig(checkpoint_every=20_000))  # type: ignore[operator]
    assert rec.run.ok
    tf = open_tracefile(out)
    assert tf.num_batches > 1
    prev_last = -1
    assert tf.batch_info(0).rows == 0  # the header batch written at open, so a crash leaves a readable file
    for i in range(1, tf.num_batches):
        info = tf.batch_info(i)
        assert info.first_checkpoint == prev_last + 1  # no checkpoint straddles two batches
        prev_last = info.last_checkpoint
    middle = rec.run.checkpoints // 2
    idx = tf.find_batch(middle)
    assert idx is not None
    info = tf.batch_info(idx)
    assert info.first_checkpoint <= middle <= info.last_checkpoint
