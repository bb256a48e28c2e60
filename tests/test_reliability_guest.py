"""Hostile and unusual guests: whatever a guest does ends in its own exit or a one-line fault, never a host
traceback, and every such run replays verified (same pc, same icount, same end)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.compute as pc
import pytest

from rrtool.board.disk import DiskSpec
from rrtool.board.host import HostSetup
from rrtool.machine.cpu import CPUID_TABLE
from rrtool.player.session import replay
from rrtool.recorder.session import record
from rrtool.schemas.tracefile import open_tracefile
from tests import guests
from tests.conftest import BuildC, invoke
from tests.tracetools import read_rows

FAULT_AT = re.compile(r"pc=(0x[0-9a-f]+), icount=(\d+)")


def _record_and_replay(path: Path, trace: Path, *args: str | Path) -> tuple[str, str]:
    """Record through the CLI and replay the trace; return the record's one stderr line and the replay's message."""
    proc = invoke("record", path, "-o", trace, "--no-stdin", "-q", *args)
    if proc.returncode != 0:  # (CliRunner shows typer's Exit(0) as a traceback; a guest's end is never 0 here)
        assert "Traceback" not in proc.stderr, proc.stderr
    first = proc.stderr.strip().splitlines()[0]
    rep = replay(trace)
    assert rep.verified, rep.divergence and rep.divergence.report()
    assert rep.complete and rep.run is not None
    return first, rep.run.message


# -- 1. guest values that reach the trace or a host call are checked at the device ---------------------------
def test_hostile_register_values_get_error_statuses_and_replay(build_c: BuildC, tmp_path: Path) -> None:
    path = build_c("hostile_registers", guests.HOSTILE_REGISTERS)
    disk = tmp_path / "disk.img"
    disk.write_bytes(bytes(64 * 512))
    trace = tmp_path / "hostile.arrow"
    rec = record(path, trace, host=HostSetup(disk=DiskSpec(disk)))
    assert rec.run.ok, rec.run.message  # the guest's own exit, not an OverflowError or ArrowInvalid
    out = rec.run.output.decode()
    statuses = [int(s) for s in re.findall(r"blk \d+ status (\d+) flags 1\n", out)]
    # range, range, length, length, address x3, flush ok, bad op: each request completed (DONE) with its error
    assert statuses == [2, 2, 4, 4, 3, 3, 3, 0, 5]
    assert "blk errors 11 last 7" in out  # 8 rejected descriptors + 3 rejected submits (index, ring, size)
    assert re.findall(r"timer \d armed (\d)", out) == ["0", "0", "0"]
    assert "timer 1 near the limit armed 1" in out
    assert "irq pending 0 enable 3ff" not in out and "hostile done" in out
    submits = [r for r in read_rows(trace) if r["kind"] == "blk_submit"]
    assert submits[0]["sector"] is None and submits[0]["status"] == 2  # 2^64-1: not in an int64 column
    assert submits[1]["sector"] == 0xFFFFFFFF  # fits int64: logged as the guest wrote it
    assert submits[2]["sectors"] is None and submits[2]["length"] is None  # 2^32-1 sectors: not in int32
    assert submits[7]["op"] == "flush" and submits[7]["sector"] == 0 and submits[7]["sectors"] == 0
    rep = replay(trace)
    assert rep.verified, rep.divergence and rep.divergence.report()
    assert rep.run is not None and rep.run.output == rec.run.output


def test_interrupt_with_a_wild_stack_pointer_is_a_fault_line(build_c: BuildC, tmp_path: Path) -> None:
    path = build_c("wild_rsp_irq", guests.WILD_RSP_IRQ)
    line, replayed = _record_and_replay(path, tmp_path / "rsp.arrow")
    assert line.startswith("rrtool: fault: interrupt frame outside RAM (rsp=0x10)"), line
    assert FAULT_AT.search(line)
    assert replayed in line


# -- 2. no instruction hands the guest a host value ---------------------------------------------------------
def test_cpuid_rdtscp_and_tsc_msr_agree_across_live_runs_and_replay(build_c: BuildC, tmp_path: Path) -> None:
    path = build_c("host_insns", guests.HOST_INSNS)
    runs = [invoke("run", path, "--no-stdin") for _ in range(2)]
    assert [r.returncode for r in runs] == [0, 0], runs[0].stderr
    assert runs[0].stdout == runs[1].stdout  # nothing from the host: two live runs agree exactly
    out = runs[0].stdout
    leaf = {int(k, 16): tuple(int(v, 16) for v in vals.split()) for k, vals in re.findall(r"cpuid (\w+): (.*)", out)}
    assert leaf[1] == CPUID_TABLE[(1, None)]
    assert not leaf[1][2] >> 30 & 1 and not leaf[1][2] >> 31 & 1  # no RDRAND, no hypervisor bit
    assert not leaf[7][1] >> 18 & 1  # no RDSEED
    assert leaf[0xD] == leaf[0xB] == leaf[0x40000000] == (0, 0, 0, 0)  # unlisted and above-maximum leaves
    assert leaf[0x80000001][3] >> 27 & 1  # rdtscp is offered, and virtual:
    tsc, aux, clock = (int(x) for x in re.search(r"rdtscp (\d+) aux (\d+) clock (\d+)", out).groups())  # type: ignore[union-attr]
    assert aux == 0 and 0 < tsc < clock < tsc + 100  # ns_per_insn=1: a few instructions apart
    assert "tsc msr 0\n" in out  # Unicorn 2.1.4 does not implement IA32_TSC: a constant, not host time
    first, replayed = _record_and_replay(path, tmp_path / "insns.arrow")
    assert first.startswith("recorded"), first
    assert replayed == "guest exited with code 0"


@pytest.mark.parametrize("insn", ["RDRAND", "RDSEED"])
def test_rdrand_and_rdseed_are_invalid_opcodes(build_c: BuildC, tmp_path: Path, insn: str) -> None:
    path = build_c(f"host_insns_{insn}", guests.HOST_INSNS, (f"-D{insn}",))
    line, replayed = _record_and_replay(path, tmp_path / f"{insn}.arrow")
    assert line.startswith("rrtool: fault: invalid opcode (pc="), line
    pc_ = int(FAULT_AT.search(line).group(1), 16)  # type: ignore[union-attr]
    assert replayed in line
    proc = invoke("run", path, "--no-stdin")
    assert proc.returncode == 3 and f"pc={pc_:#x}" in proc.stderr


# -- 3. a fault raised from a hook is at the same pc and icount in record and replay -------------------------
@pytest.mark.parametrize("name", sorted(guests.UNASSIGNED_PORTS))
def test_unassigned_port_faults_replay_at_the_same_pc_and_icount(build_c: BuildC, tmp_path: Path, name: str) -> None:
    asm, port = guests.UNASSIGNED_PORTS[name]
    path = build_c(f"port_{name}", guests.unassigned_port_source(asm))
    trace = tmp_path / f"{name}.arrow"
    proc = invoke("record", path, "-o", trace, "--no-stdin")
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr
    line = proc.stderr.strip().splitlines()[0]
    assert line.startswith(f"rrtool: fault: access to unassigned I/O port {port:#x} (pc="), line
    assert "after the fault" not in proc.stdout  # the rest of the block ran, but no device saw it
    rep = replay(trace)
    assert rep.verified, rep.divergence and rep.divergence.report()
    assert rep.run is not None and rep.run.reason == "fault"
    assert FAULT_AT.search(rep.run.message).groups() == FAULT_AT.search(line).groups()  # type: ignore[union-attr]
    assert invoke("replay", trace, "-q").returncode == 0


# -- 4. code in the last bytes of RAM runs ------------------------------------------------------------------
@pytest.mark.parametrize("extra", [0, 4096])
def test_code_at_the_top_of_ram_runs_like_code_a_page_lower(build_c: BuildC, tmp_path: Path, extra: int) -> None:
    path = build_c(f"top_of_ram_{extra}", guests.TOP_OF_RAM, (f"-DEXTRA={extra}",))
    proc = invoke("run", path, "--no-stdin")
    assert proc.returncode == 7, proc.stderr  # the out to SYS_EXIT in the last bytes of RAM ran
    line, replayed = _record_and_replay(path, tmp_path / "top.arrow")
    assert line.startswith("rrtool: guest exited with code 7") or line.startswith("recorded"), line
    assert replayed == "guest exited with code 7"


def test_running_off_the_end_of_ram_is_still_a_jump_outside_ram(build_c: BuildC, tmp_path: Path) -> None:
    path = build_c("top_of_ram_falls_off", guests.TOP_OF_RAM, ("-DCODE=0x90,0x90,0x90,0x90",))
    line, replayed = _record_and_replay(path, tmp_path / "off.arrow")
    assert line.startswith("rrtool: fault: jump outside RAM to 0x2000000 (pc=0x2000000,"), line
    assert replayed in line


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("volatile int *p = (int *)0x2000010ul; return *p;", "invalid memory read at 0x2000010"),
        ("volatile int *p = (int *)0x2000ff0ul; *p = 1; return 0;", "invalid memory write at 0x2000ff0"),
    ],
)
def test_the_guard_page_above_ram_is_not_memory(build_c: BuildC, tmp_path: Path, body: str, expected: str) -> None:
    path = build_c(f"guard_{expected.split()[2]}", guests.fault_source(body))
    line, replayed = _record_and_replay(path, tmp_path / "guard.arrow")
    assert expected in line and replayed in line


# -- 5. a recording killed in its first second keeps what it reached ----------------------------------------
def test_sigkill_early_in_a_recording_keeps_its_first_checkpoints(build_c: BuildC, tmp_path: Path) -> None:
    # A guest that sleeps 100 s of virtual time, a second per tick, waited in real time while recording: it
    # is still running when killed however fast the machine is.
    image = build_c("sleep_long", guests.SLEEPER, ("-DTICKS=100", "-DSLEEP_NS=1000000000ull"))
    output = tmp_path / "killed.arrow"
    trace = tmp_path / "killed.arrow.part"  # a recording is written under this name until it ends
    proc = subprocess.Popen(
        [sys.executable, "-m", "rrtool.cli", "record", image, "-o", output, "--no-stdin", "-q"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not (trace.exists() and trace.stat().st_size > 0) and time.monotonic() < deadline:
            time.sleep(0.01)  # the header is on disk as soon as the recording starts
        time.sleep(0.3)  # well inside the writer's one-second rule
        assert proc.poll() is None, "the guest finished before it could be killed"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with open_tracefile(trace) as tf:
        assert not tf.complete
        table = tf.read_all()
    checkpoints = table.filter(pc.equal(table["kind"].cast("string"), "checkpoint"))
    assert checkpoints.num_rows >= 1
    assert checkpoints["checkpoint"][0].as_py() == 0
