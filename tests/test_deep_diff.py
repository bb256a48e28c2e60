"""`rrtool diff --deep` against a single-stepped reference, on real guests and real recordings.

The reference is the slow, obvious way: two timelines stepped one instruction at a time from a point
where their states are equal, comparing registers, the memory digest and the device digest after
every step, until they first differ. The bisection must land on exactly that instruction.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import dpkt
import pytest

from rrtool.analysis.diff import diff_traces
from rrtool.board import disk as disk_module
from rrtool.board.block import Request
from rrtool.player.deepdiff import deep_diff, memory_differences
from rrtool.player.timeline import Timeline
from rrtool.schemas.tracefile import TraceFile, open_tracefile
from tests.conftest import BuildC, invoke
from tests.guests import RNG_BRANCH, RNG_TRANSIENT
from tests.test_linux import build
from tests.test_net import udp_frame
from tests.tracetools import read_rows, write_rows

#: Small RAM keeps every step's memory digest cheap for the reference (kvstore's table is 128 KiB).
RAM = "4M"


def record(*args: str | Path) -> None:
    proc = invoke("record", *args, "--ram", RAM, "--no-stdin", "-q", timeout=60)
    assert proc.returncode == 0, proc.stderr


def stepped_reference(a: Path, b: Path, start: int, limit: int) -> tuple[int, int]:
    """(icount, pc) of the first instruction after which the two replays differ, found by stepping from `start`.

    The pc is the one before the step (the instruction that ran); the icount is the one after it.
    """
    with Timeline(a) as ta, Timeline(b) as tb:
        ta.seek(start)
        tb.seek(start)
        assert same(ta, tb), f"the states already differ at icount {start}"
        while ta.icount < limit:
            pc = ta.pc
            ta.step()
            tb.step()
            assert ta.icount == tb.icount
            if not same(ta, tb):
                return ta.icount, pc
    raise AssertionError(f"no difference by icount {limit}")


def same(ta: Timeline, tb: Timeline) -> bool:
    return (ta.registers(), ta.memory_digest(), ta.device_digest()) == (
        tb.registers(),
        tb.memory_digest(),
        tb.device_digest(),
    )


# ---------------------------------------------------------------- RNG guest
@pytest.fixture(scope="module")
def rng_pair(build_c: BuildC, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two recordings of one guest that reads the RNG once: they differ from that read on."""
    elf = build_c("rng_branch", RNG_BRANCH)
    tmp = tmp_path_factory.mktemp("deep-rng")
    traces = (tmp / "a.arrow", tmp / "b.arrow")
    for trace in traces:
        record(elf, "-o", trace)
    values = [next(r["value"] for r in read_rows(t) if r["kind"] == "rng_read") for t in traces]
    assert values[0] != values[1]  # 2^-32 of a chance that the host's RNG repeats itself
    return traces


def test_rng_read_is_the_first_difference_and_matches_single_stepping(rng_pair: tuple[Path, Path]) -> None:
    a, b = rng_pair
    reads = [next(r for r in read_rows(t) if r["kind"] == "rng_read") for t in (a, b)]
    result = deep_diff(a, b)
    assert result.found and result.cause_kind == "read"
    # The read's row is logged at the icount that includes the `in`: the state after it is the first to differ.
    assert result.icount == reads[0]["icount"] == reads[1]["icount"]
    assert result.instruction is not None and "in eax, dx" in result.instruction
    assert result.pc is not None and result.instruction.startswith(f"{result.pc:#x}:")
    assert [(r.name, r.a, r.b) for r in result.registers] == [("rax", reads[0]["value"], reads[1]["value"])]
    assert result.memory == []  # `stored` is written by the next instruction
    assert f"{reads[0]['value']:#x} in a" in (result.cause or "")
    assert result.before is not None and result.before.a == 0  # the init checkpoint; the next is the end
    assert result.after is not None and result.after.icount_a is not None
    assert result.icount is not None and result.pc is not None and result.after.icount_a > result.icount
    # The read comes a few thousand instructions in: the reference steps all the way from the init checkpoint.
    assert (result.icount, result.pc) == stepped_reference(a, b, 0, result.icount + 10)


def test_the_next_instruction_stores_it(rng_pair: tuple[Path, Path]) -> None:
    """One instruction later the value is in memory too: bytes of `stored`'s word, nothing else."""
    a, b = rng_pair
    result = deep_diff(a, b)
    assert result.icount is not None
    values = [next(r["value"] for r in read_rows(t) if r["kind"] == "rng_read") for t in (a, b)]
    with Timeline(a) as ta, Timeline(b) as tb:
        ta.seek(result.icount + 1)
        tb.seek(result.icount + 1)
        ranges, pages, more = memory_differences(ta, tb)
        assert ranges and pages == 1 and not more
        word = ranges[0].address & ~3
        assert all(word <= m.address and m.address + m.length <= word + 4 for m in ranges)
        assert [int.from_bytes(t.read_memory(word, 4), "little") for t in (ta, tb)] == values


def test_cli_report_and_exit_code(rng_pair: tuple[Path, Path]) -> None:
    a, b = rng_pair
    proc = invoke("diff", "--deep", a, b)
    assert proc.returncode == 1, proc.stderr
    assert "first differing state at icount" in proc.stdout
    assert "in eax, dx" in proc.stdout and "RNG value" in proc.stdout
    assert "rax" in proc.stdout


def test_json(rng_pair: tuple[Path, Path]) -> None:
    a, b = rng_pair
    proc = invoke("diff", "--deep", "--json", a, b)
    assert proc.returncode == 1, proc.stderr
    data = json.loads(proc.stdout)
    result = deep_diff(a, b)
    assert data["different"] is True
    assert (data["icount"], data["pc"]) == (result.icount, result.pc)
    assert data["registers"] == [{"name": "rax", "a": result.registers[0].a, "b": result.registers[0].b}]
    assert data["memory"] == []
    assert data["cause_kind"] == "read" and data["checkpoint_before"]["a"] == 0


def test_identical_traces_have_no_difference(rng_pair: tuple[Path, Path]) -> None:
    a = rng_pair[0]
    assert not deep_diff(a, a).found
    proc = invoke("diff", "--deep", a, a)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("no difference")
    assert json.loads(invoke("diff", "--deep", "--json", a, a).stdout)["different"] is False


def test_a_difference_that_leaves_no_trace_is_no_difference(build_c: BuildC, tmp_path: Path) -> None:
    """The documented limit: a value read, stored and overwritten before any checkpoint, in registers that
    are reused, leaves no logged state different. The events differ (`diff`), the states do not (`--deep`)."""
    elf = build_c("rng_transient", RNG_TRANSIENT)
    a, b = tmp_path / "a.arrow", tmp_path / "b.arrow"
    record(elf, "-o", a)
    record(elf, "-o", b)
    assert not diff_traces(a, b).equivalent
    result = deep_diff(a, b)
    assert not result.found and result.logged is not None and "agree" in result.logged
    assert invoke("diff", "--deep", a, b).returncode == 0


# ---------------------------------------------------------------- errors
def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rrtool: error:"), proc.stderr
    return lines[0]


def test_other_images_are_refused(rng_pair: tuple[Path, Path], kv_pair: tuple[Path, Path]) -> None:
    line = one_line_error(invoke("diff", "--deep", rng_pair[0], kv_pair[0]))
    assert "different guest images" in line


def test_a_damaged_trace_is_one_line(rng_pair: tuple[Path, Path], tmp_path: Path) -> None:
    good = rng_pair[0]
    data = bytearray(good.read_bytes())
    third = len(data) // 3
    data[third : third + 64] = bytes(b ^ 0xFF for b in data[third : third + 64])
    bad = tmp_path / "bad.arrow"
    bad.write_bytes(bytes(data))
    assert "damaged" in one_line_error(invoke("diff", "--deep", good, bad))
    text = tmp_path / "text.arrow"
    text.write_text("not a trace\n")
    assert "not an Arrow IPC file" in one_line_error(invoke("diff", "--deep", text, good))
    assert "no such" in one_line_error(invoke("diff", "--deep", good, tmp_path / "missing.arrow")).lower()


def test_a_trace_that_does_not_replay_is_one_line(rng_pair: tuple[Path, Path], tmp_path: Path) -> None:
    """A forged end digest: the logs differ there, and the replay of the forgery diverges when it gets there."""
    good = rng_pair[0]
    rows = read_rows(good)
    end = next(r for r in rows if r["kind"] == "checkpoint" and r["cp_kind"] == "end")
    end["reg_digest"] ^= 1
    forged = tmp_path / "forged.arrow"
    write_rows(good, forged, rows)
    line = one_line_error(invoke("diff", "--deep", good, forged))
    assert "does not replay" in line and "forged.arrow" in line


@pytest.fixture(scope="module")
def linux_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A recording of a static Linux program that prints one line."""
    tmp = tmp_path_factory.mktemp("deep-linux")
    exe = build(tmp, '#include <stdio.h>\nint main(void) { puts("hi"); return 0; }\n', "hello")
    trace = tmp / "hello.arrow"
    proc = invoke("record", "-o", trace, "-q", "--root", tmp, exe, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return trace


def test_linux_recordings_differ_from_the_start_in_at_random(linux_trace: Path, tmp_path: Path) -> None:
    """Two recordings of one Linux program: the kernel's 16 AT_RANDOM bytes differ, so the states do from icount 0."""
    again = tmp_path / "again.arrow"
    proc = invoke("record", "-o", again, "-q", "--root", linux_trace.parent, linux_trace.parent / "hello", timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = invoke("diff", "--deep", "--json", linux_trace, again)
    assert out.returncode == 1, out.stderr
    data = json.loads(out.stdout)
    assert data["icount"] == 0 and "at_random" in data["cause"]
    # The 16 random bytes (a byte the two draws share by chance splits the range: 1 in 16 recordings).
    ranges = [(m["address"], m["address"] + m["length"]) for m in data["memory"]]
    assert ranges and max(e for _, e in ranges) - min(a for a, _ in ranges) <= 16


def test_event_options_do_not_apply(rng_pair: tuple[Path, Path]) -> None:
    line = one_line_error(invoke("diff", "--deep", "--ignore-kind", "rng_read", *rng_pair))
    assert "--ignore-kind" in line


# ---------------------------------------------------------------- kvstore
def write_pcap(path: Path, requests: list[bytes]) -> None:
    """Client requests to kvstore's port, 2 ms of virtual time apart (the first at 1 ms, during boot)."""
    with path.open("wb") as f:
        writer = dpkt.pcap.Writer(f)
        for i, request in enumerate(requests):
            writer.writepkt(udp_frame(request, sport=4321, dport=5555), ts=0.002 * i)


@pytest.fixture(scope="module")
def kv_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """Two kvstore sessions identical but for one PUT's value ("blue" and "bluf"), the second request.

    Two sessions of a live client over `user` networking (tests/test_net.py's kv_trace) are never
    identical before the request that differs: every host event arrives at a real-time moment (the
    clock warps by real time waited), and so do the disk's completions, from the disk's thread pool,
    racing the guest's next hlt. Here the client is a capture replayed in virtual time (`--net pcap`,
    the same frames as that client's) and the disk completes each request as it is submitted, so the
    two recordings part exactly at the changed request.
    """
    tmp = tmp_path_factory.mktemp("deep-kv")

    def submit_now(self: disk_module.DiskBackend, req: Request) -> None:
        with self._lock:
            self._in_flight += 1
        self._serve(req, 0.0)

    traces = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(disk_module.DiskBackend, "submit", submit_now)
        for name, value in (("a", b"blue"), ("b", b"bluf")):
            cap, disk, trace = tmp / f"{name}.pcap", tmp / f"{name}.img", tmp / f"{name}.arrow"
            write_pcap(cap, [b"PUT answer 42", b"PUT colour " + value, b"GET colour", b"QUIT"])
            disk.write_bytes(bytes(1 << 20))
            record("kvstore", "-o", trace, "--disk", disk, "--net", f"pcap,file={cap}")
            traces.append(trace)
    yield traces[0], traces[1]


def test_kvstore_request_value_is_found_at_its_frame(kv_pair: tuple[Path, Path]) -> None:
    a, b = kv_pair
    events = diff_traces(a, b)
    first = events.first
    assert first is not None and first.kind == "net_rx" and first.fields == ["data"]  # the sessions part only there
    assert first.a is not None and b"bluf" not in first.a["data"]
    t0 = time.monotonic()
    result = deep_diff(a, b)
    elapsed = time.monotonic() - t0
    assert result.found and result.cause_kind == "input"
    assert result.cause is not None and result.cause.startswith("inputs applied at this checkpoint differ (net_rx")
    # The frame lands (by DMA into the RX ring) at the checkpoint that delivered it, while the guest waits in hlt.
    assert result.icount == first.icount
    assert result.instruction is not None and result.instruction.endswith("hlt")
    assert result.after is not None and result.after.icount_a == result.icount
    assert result.registers == []  # the interrupt is delivered, but the same one, at the same place
    assert result.digests.keys() == {"memory"}
    # Only the frame's bytes differ: 'e' -> 'f' in the value, and the UDP checksum.
    assert any(m.a == b"e" and m.b == b"f" for m in result.memory)
    assert len(result.memory) == 2 and not result.memory_more and result.memory_pages == 1
    # The reference: from the last checkpoint before it (the previous request's last disk interrupt).
    assert result.before is not None and result.before.icount_a is not None
    assert result.icount - result.before.icount_a < 20_000
    assert (result.icount, result.pc) == stepped_reference(a, b, result.before.icount_a, result.icount + 10)
    assert elapsed < 10, f"deep diff took {elapsed:.1f} s"


def test_kvstore_cli(kv_pair: tuple[Path, Path]) -> None:
    proc = invoke("diff", "--deep", *kv_pair)
    assert proc.returncode == 1, proc.stderr
    assert "inputs applied at this checkpoint differ" in proc.stdout
    assert "memory that differs: 2 ranges in 1 page" in proc.stdout
    assert "a: 65" in proc.stdout and "b: 66" in proc.stdout


def test_a_timeline_that_cannot_start_lets_go_of_its_trace(linux_trace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever fails once the trace is open (here the first snapshot), the memory-mapped trace is closed."""
    from rrtool.player import timeline as timeline_module

    opened = []

    def spy(path: Path) -> TraceFile:
        opened.append(open_tracefile(path))
        return opened[-1]

    def refuse(*args: object, **kwargs: object) -> None:
        raise RuntimeError("no snapshot")

    monkeypatch.setattr(timeline_module, "open_tracefile", spy)
    monkeypatch.setattr(timeline_module, "capture", refuse)
    with pytest.raises(RuntimeError):
        Timeline(linux_trace)
    assert opened and opened[0].closed
