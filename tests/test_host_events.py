"""A host event reaches a busy guest without waiting for the checkpoint cadence (the port's waker).

The guest spins with no timer and no sleep, so the only checkpoints a recording with a huge
`--checkpoint-every` takes are the ones the waker asks for. Without it, the input (or Ctrl-C)
would reach the machine only after the guest's several seconds of spinning had ended.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from rrtool.schemas import events as ev
from tests import guests
from tests.conftest import BuildC, rrtool
from tests.tracetools import read_rows

#: Far beyond the guest's whole run (~8G instructions): no cadence checkpoint at all.
NO_CADENCE = "100000000000"
#: How long after the recording started the test acts, so that the guest is busy spinning by then.
DELAY_S = 0.3


def record_busy(guest: Path, out: Path) -> subprocess.Popen[str]:
    """`rrtool record` of the spinning guest, returned once its trace is being written (`<out>.part`)."""
    cmd = [sys.executable, "-m", "rrtool.cli", "record", str(guest), "-o", str(out), "--checkpoint-every", NO_CADENCE]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    part = out.with_name(out.name + ".part")
    deadline = time.monotonic() + 60
    while not part.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(DELAY_S)
    return proc


def test_console_input_reaches_a_busy_guest(build_c: BuildC, tmp_path: Path) -> None:
    guest = build_c("busy_poll", guests.BUSY_POLL)
    out = tmp_path / "busy.arrow"
    proc = record_busy(guest, out)
    stdout, stderr = proc.communicate("x", timeout=120)
    assert proc.returncode == 0, stderr
    assert "got x in round" in stdout, stdout
    rows = read_rows(out)
    (inp,) = [r for r in rows if r["kind"] == ev.KIND_CONSOLE_IN]
    (cp,) = [r for r in rows if r["kind"] == ev.KIND_CHECKPOINT and r["checkpoint"] == inp["checkpoint"]]
    # Taken at a checkpoint of its own in the middle of the spin, not at the end of the run.
    assert cp["cp_kind"] == ev.CP_PERIODIC and cp["icount"] == inp["icount"]
    assert rows[-1]["cp_kind"] == ev.CP_END and cp["icount"] < rows[-1]["icount"]
    replayed = rrtool("replay", out)
    assert replayed.returncode == 0, replayed.stderr
    assert replayed.stdout == stdout


def test_ctrl_c_stops_a_busy_recording(build_c: BuildC, tmp_path: Path) -> None:
    guest = build_c("busy_poll", guests.BUSY_POLL)
    out = tmp_path / "busy.arrow"
    proc = record_busy(guest, out)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "no input" not in stdout  # the guest did not spin to its end first
    end = read_rows(out)[-1]
    assert end["cp_kind"] == ev.CP_END and end["text"].startswith("interrupted"), end
    replayed = rrtool("replay", out)
    assert replayed.returncode == 0, replayed.stderr
