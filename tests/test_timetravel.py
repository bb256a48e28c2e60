"""Time travel: snapshots, exact seeks, stepping and continuing both ways, on real guests and real traces."""

from __future__ import annotations

import itertools
import json
import random
import subprocess
from pathlib import Path

import pytest

from rrtool.board.disk import DiskSpec
from rrtool.board.host import HostSetup
from rrtool.linux.host import LinuxSetup
from rrtool.machine.config import MachineConfig
from rrtool.machine.snapshot import capture, restore
from rrtool.player.session import replay
from rrtool.player.timeline import BEGIN, BREAKPOINT, DIVERGED, END, STEP, WATCH, Timeline, TimelineError
from rrtool.recorder.session import record
from tests.conftest import BuildC, invoke
from tests.test_linux import BUSYBOX, build
from tests.tracetools import read_rows, write_rows

#: Timer interrupts, idle warps, RNG reads and a function that writes a global: everything a seek must restore.
TT_GUEST = r"""
#include "rrtool.h"
volatile uint64_t counter;
static uint32_t buf[256];
static volatile int ticks;
static void on_timer(int line) { (void)line; ticks++; }
__attribute__((noinline)) void step_fn(uint32_t i) {
    for (uint32_t j = 0; j < 256; j++) buf[j] = buf[j] * 31 + i + j;
    counter = counter * 7 + buf[i % 256];
}
int main(void) {
    rr_irq_init();
    rr_irq_handler(0, on_timer);
    rr_sti();
    rr_timer_periodic(0, 15000, 15000);
    for (uint32_t i = 0; i < 24; i++) {
        step_fn(i + rr_random() % 3);
        if (i % 8 == 7) rr_sleep_ns(20000);
    }
    rr_printf("counter %lx ticks %d\n", counter, ticks);
    return 0;
}
"""


def _symbol(image: Path, name: str) -> int:
    out = subprocess.run(["nm", str(image)], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] == name:
            return int(parts[0], 16)
    raise AssertionError(f"{name} not in {image}")


@pytest.fixture(scope="module")
def tt(build_c: BuildC, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    image = build_c("timetravel", TT_GUEST)
    trace = tmp_path_factory.mktemp("tt") / "tt.arrow"
    rec = record(image, trace, config=MachineConfig(ram_size=4 << 20))  # small RAM: each restore copies all of it
    assert rec.run.ok, rec.run.message
    return image, trace


def _state(tl: Timeline) -> tuple[int, int, int, int]:
    return tl.register_digest(), tl.memory_digest(), tl.device_digest(), tl.pc


def test_thousand_random_seeks_match_a_straight_replay(tt: tuple[Path, Path]) -> None:
    _, trace = tt
    rng = random.Random(13)
    with Timeline(trace, every=1 << 62) as straight:
        points = sorted({rng.randrange(0, straight.last_icount + 1) for _ in range(1000)})
        reference = {}
        for p in points:  # increasing: one pass forward, no snapshot but the first
            assert straight.seek(p).reason == STEP
            reference[p] = _state(straight)
        assert straight.snapshot_count == 1
    order = points[:]
    rng.shuffle(order)
    with Timeline(trace, every=5000) as tl:
        for p in order:
            stop = tl.seek(p)
            assert (stop.reason, stop.icount) == (STEP, p)
            assert _state(tl) == reference[p], f"seek to {p}"
        assert tl.snapshot_count > 10  # the seeks really went through restores
        assert tl.run_to_end().reason == END
        assert tl.divergence is None


def test_a_restored_snapshot_digests_as_captured_and_replays_on_verified(tt: tuple[Path, Path]) -> None:
    _, trace = tt
    with Timeline(trace, every=7000) as tl:
        tl.run_to_end()
        snaps = list(tl._snapshots)
        assert len(snaps) > 5
        for snap in snaps[1::2]:
            tl._restore(snap)
            assert tl.icount == snap.icount and tl.checkpoint == snap.checkpoint
            before = _state(tl)
            # Capturing again reads back the same machine: nothing the restore wrote is off by a byte.
            again = capture(tl.machine, snap, check=True)
            assert again.missed == 0
            restore(tl.machine, again)
            assert _state(tl) == before
            # Every checkpoint after it, digests included, matches the log.
            stop = tl.run_to_end()
            assert stop.reason == END and tl.divergence is None, tl.divergence and tl.divergence.report()
            assert tl.machine.result is not None and b"counter" in tl.machine.result.output


def test_the_first_checkpoint_after_a_restore_matches_its_logged_digests(tt: tuple[Path, Path]) -> None:
    """Restore, then stop exactly at the next logged checkpoint: its register and device digests are the log's."""
    _, trace = tt
    with Timeline(trace, every=3000) as tl:
        tl.run_to_end()
        checked = 0
        for snap in tl._snapshots[1:]:
            tl._restore(snap)
            logged = tl.port._upcoming_checkpoint()
            assert logged is not None
            verified = tl.port.checkpoints_verified
            tl.seek(logged.icount)  # the port compares the checkpoint it takes there with this logged row
            assert tl.divergence is None
            assert tl.port.checkpoints_verified > verified
            checked += 1
        assert checked > 5


def test_step_and_reverse_step_are_exact(tt: tuple[Path, Path]) -> None:
    _, trace = tt
    with Timeline(trace, every=4000) as tl:
        tl.seek(12345)
        first = tl.step()
        state1 = (_state(tl), tl.registers())
        tl.step()
        back = tl.reverse_step()
        assert back.icount == first.icount == 12346
        assert (_state(tl), tl.registers()) == state1
        tl.seek(1)
        assert tl.reverse_step().icount == 0
        assert tl.reverse_step().reason == BEGIN


def test_breakpoints_both_ways_match_single_stepping(tt: tuple[Path, Path]) -> None:
    image, trace = tt
    fn = _symbol(image, "step_fn")
    with Timeline(trace, every=1 << 62) as ref:
        hits = []
        while not ref.at_end:  # the reference: every position whose next instruction is step_fn's first
            if ref.pc == fn:
                hits.append(ref.icount)
            ref.step()
    assert len(hits) == 24
    with Timeline(trace, every=20000) as tl:
        tl.add_breakpoint(fn)
        seen = []
        while (stop := tl.cont()).reason == BREAKPOINT:
            assert stop.pc == fn == tl.pc
            seen.append(stop.icount)
        assert stop.reason == END
        assert seen == hits
        back = []
        while (stop := tl.reverse_cont()).reason == BREAKPOINT:
            back.append(stop.icount)
        assert stop.reason == BEGIN and tl.icount == 0
        assert back == hits[::-1]
        for h in hits[:3]:  # a hit one instruction back, and one right at a snapshot's position
            tl.seek(h + 1)
            assert tl.reverse_cont().icount == h
        tl.remove_breakpoint(fn)
        assert tl.cont().reason == END


def test_watchpoint_forward_after_the_write_and_backward_before_it(tt: tuple[Path, Path]) -> None:
    image, trace = tt
    counter = _symbol(image, "counter")
    with Timeline(trace, every=1 << 62) as ref:
        writes = []  # positions right after each instruction that changed `counter`
        value = ref.read_memory(counter, 8)
        while not ref.at_end:
            ref.step()
            now = ref.read_memory(counter, 8)
            if now != value:
                writes.append(ref.icount)
                value = now
    assert len(writes) >= 20
    with Timeline(trace, every=20000) as tl:
        tl.add_watchpoint("write", counter, 8)
        forward = []
        while (stop := tl.cont()).reason == WATCH:
            assert stop.address == counter
            forward.append(stop.icount)
        assert set(writes) <= set(forward)  # every change is a write (a write of the same value is one too)
        tl.seek(tl.last_icount)
        last = tl.read_memory(counter, 8)
        stop = tl.reverse_cont()
        assert stop.reason == WATCH and stop.icount == forward[-1] - 1
        assert tl.read_memory(counter, 8) != last or writes[-1] != forward[-1]
        tl.step()  # the write itself
        assert tl.read_memory(counter, 8) == last


def test_determinism_holds_after_any_moves(tt: tuple[Path, Path]) -> None:
    image, trace = tt
    fn = _symbol(image, "step_fn")
    rng = random.Random(5)
    expected = replay(trace)
    assert expected.verified and expected.run is not None
    with Timeline(trace, every=9000) as tl:
        tl.add_breakpoint(fn)
        for _ in range(40):
            move = rng.choice(["seek", "step", "back", "cont", "rcont"])
            if move == "seek":
                tl.seek(rng.randrange(0, tl.last_icount + 1))
            elif move == "step":
                tl.step()
            elif move == "back":
                tl.reverse_step()
            elif move == "cont":
                tl.cont()
            else:
                tl.reverse_cont()
            assert tl.divergence is None
        tl.remove_breakpoint(fn)
        assert tl.run_to_end().reason == END and tl.divergence is None
        assert tl.machine.result is not None and tl.machine.result.output == expected.run.output


def test_snapshots_stay_within_budget_dense_near_the_present(tt: tuple[Path, Path]) -> None:
    _, trace = tt
    with Timeline(trace, every=1000, snapshot_memory=1 << 20) as tl:
        tl.run_to_end()
        assert tl.snapshot_bytes <= 1 << 20
        icounts = [s.icount for s in tl._snapshots]
        assert icounts[0] == 0
        gaps = [b - a for a, b in itertools.pairwise(icounts)]
        assert len(gaps) >= 3 and gaps[-1] < gaps[0]  # thinned into the past, not near the end
        tl.seek(tl.last_icount // 3)  # still reachable
        assert tl.icount == tl.last_icount // 3


def test_seek_errors(tt: tuple[Path, Path], tmp_path: Path) -> None:
    _, trace = tt
    with Timeline(trace) as tl:
        with pytest.raises(TimelineError, match="past the end"):
            tl.seek(tl.last_icount + 1)
        with pytest.raises(TimelineError, match="not guest memory"):
            tl.read_memory(0, 4)
        with pytest.raises(TimelineError, match="checkpoint"):
            tl.seek_checkpoint(10**9)
    damaged = tmp_path / "damaged.arrow"
    data = bytearray(trace.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = b"\xff" * 64
    damaged.write_bytes(bytes(data))
    r = invoke("seek", damaged, "--icount", "5")
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr


def test_seek_command(tt: tuple[Path, Path]) -> None:
    image, trace = tt
    counter = _symbol(image, "counter")
    r = invoke("seek", trace, "--icount", "40000", "--mem", f"{counter:#x}:8")
    assert r.returncode == 0, r.stderr
    assert "icount 40,000" in r.stdout and "=>" in r.stdout and "rip" in r.stdout
    assert f"{counter:#014x}" in r.stdout
    j = invoke("seek", trace, "--checkpoint", "3", "--json", "--mem", f"{counter}:8")
    assert j.returncode == 0, j.stderr
    data = json.loads(j.stdout)
    with Timeline(trace) as tl:
        tl.seek_checkpoint(3)
        assert data["icount"] == tl.icount and data["registers"]["rip"] == tl.pc
        assert data["memory"][0]["hex"] == tl.read_memory(counter, 8).hex()
    ran = [c for c in data["code"] if c["icount"] is not None]
    assert [c["icount"] for c in ran] == [data["icount"] - 3, data["icount"] - 2, data["icount"] - 1]
    r = invoke("seek", trace, "--icount", str(10**12))
    assert r.returncode == 2 and "past the end" in r.stderr and r.stderr.count("\n") == 1


def _busybox_trace(tmp_path: Path, applet: str, size: int) -> Path:
    """A recording of Debian's busybox running `applet /data` over `size` random bytes."""
    root = tmp_path / "root"
    root.mkdir()
    (root / "data").write_bytes(random.Random(size).randbytes(size))
    trace = tmp_path / "bb.arrow"
    rec = record(BUSYBOX, trace, linux=LinuxSetup(args=(applet, "/data"), root=root, stdin=False))
    assert rec.run.ok, rec.run.message
    return trace


def test_linux_program_seeks(tmp_path: Path) -> None:
    """A Linux process's mappings, descriptors and brk come back with a restore: seeks match a straight pass."""
    trace = _busybox_trace(tmp_path, "sha256sum", 150_000)
    rng = random.Random(8)
    with Timeline(trace, every=1 << 62) as straight:
        points = sorted({rng.randrange(0, straight.last_icount + 1) for _ in range(60)})
        reference = {p: (straight.seek(p), _state(straight))[1] for p in points}
    rng.shuffle(points)
    with Timeline(trace, every=200_000) as tl:
        for p in points:
            tl.seek(p)
            assert _state(tl) == reference[p], p
        assert tl.run_to_end().reason == END and tl.divergence is None


def _no_missed_dirty_pages(trace: Path, every: int) -> None:
    """Snapshot often, each capture also reading all of RAM: not one changed page lacked its dirty mark."""
    with Timeline(trace, every=every) as tl:
        tl.check_every = 1
        assert tl.run_to_end().reason == END and tl.divergence is None
        assert tl.snapshot_count > 5
        assert tl.missed_pages == 0
        tl.seek(tl.last_icount // 2)  # restores reset the marks too
        assert tl.run_to_end().reason == END and tl.missed_pages == 0


def test_dirty_tracking_sees_device_dma(example: object, tmp_path: Path) -> None:
    """The block device writes read data into guest RAM from the host: those pages are marked too."""
    disk = tmp_path / "disk.img"
    disk.write_bytes(random.Random(1).randbytes(1 << 16) * 32)
    trace = tmp_path / "blk.arrow"
    assert record(example("blkstress"), trace, host=HostSetup(disk=DiskSpec(disk))).run.ok  # type: ignore[operator]
    _no_missed_dirty_pages(trace, 20_000)


def test_dirty_tracking_sees_system_call_results(tmp_path: Path) -> None:
    """read() results, mmap/munmap and the stack the kernel builds are host writes to guest RAM."""
    trace = _busybox_trace(tmp_path, "md5sum", 100_000)
    _no_missed_dirty_pages(trace, 100_000)


def test_dirty_tracking_sees_interrupt_frames(tt: tuple[Path, Path]) -> None:
    _no_missed_dirty_pages(tt[1], 2_000)


def test_a_recording_cut_short_ends_where_it_ends(tt: tuple[Path, Path], tmp_path: Path) -> None:
    _, trace = tt
    rows = read_rows(trace)
    cps = [r for r in rows if r["kind"] == "checkpoint"]
    cut = cps[len(cps) // 2]
    short = tmp_path / "short.arrow"
    write_rows(trace, short, [r for r in rows if r["checkpoint"] < cut["checkpoint"] or r is cut])
    with Timeline(short, every=3000) as tl:
        assert not tl.complete
        stop = tl.run_to_end()  # must end, not spin at the last row
        assert stop.reason == END and tl.divergence is None and tl.icount >= cut["icount"]
        assert tl.reverse_step().icount == tl.icount
        assert tl.seek(cut["icount"] // 2).icount == cut["icount"] // 2


def test_a_tampered_input_diverges_at_its_checkpoint_and_earlier_positions_still_work(
    tt: tuple[Path, Path], tmp_path: Path
) -> None:
    _, trace = tt
    rows = read_rows(trace)
    rng = [r for r in rows if r["kind"] == "rng_read"]
    victim = rng[len(rng) // 2]
    victim["value"] = (victim["value"] + 1) & 0xFFFFFFFF  # step_fn gets another argument
    bad = tmp_path / "bad.arrow"
    write_rows(trace, bad, rows)
    with Timeline(bad, every=3000) as tl:
        stop = tl.seek(tl.last_icount)
        assert stop.reason == DIVERGED and stop.divergence is not None
        assert stop.icount <= tl.last_icount
        early = tl.seek(victim["icount"] // 2)  # a restore leaves the divergence behind
        assert early.reason == STEP and tl.divergence is None
    r = invoke("seek", bad, "--icount", str(rng[-1]["icount"]))
    assert r.returncode == 1 and "DIVERGENCE" in r.stderr


X87 = r"""
#include "rrtool.h"
int main(void) {
    __asm__ volatile("fninit; fld1; fld1; fld1; faddp");   /* st0 = 2.0, st1 = 1.0 */
    return 0;
}
"""


def test_x87_registers_are_80_bits_in_stack_order(build_c: BuildC, tmp_path: Path) -> None:
    trace = tmp_path / "x87.arrow"
    assert record(build_c("x87_stack", X87), trace).run.ok
    with Timeline(trace) as tl:
        tl.run_to_end()
        regs = tl.registers()
    assert (regs["st0"], regs["st1"]) == (0x4000_8000000000000000, 0x3FFF_8000000000000000)  # 2.0 and 1.0



# Guests where a pause falls where the run has a stop of its own that the log does not hold (found in review).
#: An interrupt pending and masked, then unmasked and hlt in one block: delivered at the hlt, no checkpoint.
HLT_PENDING = r"""
#include "rrtool.h"
static volatile int ticks;
static void on_timer(int line) { (void)line; ticks++; }
int main(void) {
    rr_irq_handler(0, on_timer);
    rr_irq_disable(0);
    rr_sti();
    for (int i = 0; i < 3; i++) {
        uint64_t d = rr_clock_ns() + 2000;
        rr_timer_oneshot(0, d);
        while (rr_clock_ns() < d + 2000) { }
        __asm__ volatile("outl %0, %1\n\thlt" : : "a"(1u), "Nd"((uint16_t)RR_IRQ_ENABLE) : "memory");
        rr_irq_disable(0);
    }
    rr_printf("ticks %d\n", ticks);
    return 0;
}
"""
#: A timer armed for a time already past: due from the arming instruction to the end of its block.
PAST_TIMER = r"""
#include "rrtool.h"
static volatile int ticks;
volatile uint64_t acc;
static void on_timer(int line) { (void)line; ticks++; }
int main(void) {
    rr_irq_init();
    rr_irq_handler(0, on_timer);
    rr_sti();
    for (int i = 0; i < 5; i++) {
        rr_timer_oneshot(0, rr_clock_ns());
        acc = acc * 3 + i;  acc ^= acc >> 3; acc += 7 * i;
        for (volatile int j = 0; j < 50; j++) acc++;
    }
    rr_printf("ticks %d acc %lx\n", ticks, acc);
    return 0;
}
"""
#: A Linux program whose SIGSEGV handler skips a faulting load in the middle of a block.
SEGV_SKIP = r"""
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <ucontext.h>
static volatile int caught;
static void h(int s, siginfo_t *si, void *p) {
    (void)s; (void)si;
    ((ucontext_t *)p)->uc_mcontext.gregs[REG_RIP] += 7;  /* past the 7-byte movl 0x10, %eax */
    caught++;
}
int main(void) {
    struct sigaction sa; memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = h; sa.sa_flags = SA_SIGINFO; sigaction(SIGSEGV, &sa, 0);
    long acc = 0;
    for (int i = 0; i < 4; i++)
        __asm__ volatile("add $1, %0\n\tadd $2, %0\n\tmovl 0x10, %%eax\n\tadd $3, %0\n\tadd $4, %0\n\tadd $5, %0"
                         : "+r"(acc) : : "rax", "memory");
    printf("caught %d acc %ld\n", caught, acc);
    return 0;
}
"""


def _pause_everywhere(trace: Path, first: int = 0) -> None:
    """Pause at every position from `first` on (stepi all the way): the run must still verify to the end."""
    expected = replay(trace)
    assert expected.verified and expected.run is not None
    with Timeline(trace, every=1 << 62) as tl:
        tl.seek(first)
        while not tl.at_end:
            before = tl.icount
            stop = tl.step()
            assert tl.divergence is None, (before, tl.divergence.report())
            assert stop.reason == END or tl.icount == before + 1
        assert tl.machine.result is not None and tl.machine.result.output == expected.run.output


@pytest.mark.parametrize("source", [HLT_PENDING, PAST_TIMER], ids=["hlt-with-pending-irq", "timer-already-due"])
def test_pauses_at_every_position_change_nothing(build_c: BuildC, tmp_path: Path, source: str) -> None:
    image = build_c(f"pause_{hash(source) & 0xFFFF:x}", source)
    trace = tmp_path / "t.arrow"
    assert record(image, trace, config=MachineConfig(ram_size=4 << 20)).run.ok
    _pause_everywhere(trace)


def test_pauses_around_a_fault_a_signal_handler_skips(tmp_path: Path) -> None:
    """A pause splits the faulting block: the fault is counted the single-step way, exactly as without it."""
    exe = build(tmp_path, SEGV_SKIP, "segv")
    trace = tmp_path / "segv.arrow"
    out = bytearray()
    rec = record(exe, trace, linux=LinuxSetup(root=tmp_path, stdin=False), console_sink=out.extend)
    assert rec.run.ok and b"caught 4" in out, rec.run.message
    signals = [r["icount"] for r in read_rows(trace) if r["kind"] == "syscall" and r["syscall"] == "rt_sigreturn"]
    assert len(signals) == 4
    _pause_everywhere(trace, first=signals[0] - 400)  # through all four faults and their handlers


PRINTS = r"""
#include "rrtool.h"
volatile uint64_t acc;
int main(void) {
    for (int i = 0; i < 6; i++) {
        for (volatile int j = 0; j < 20000; j++) acc += j;
        rr_printf("line %d\n", i);
    }
    return 0;
}
"""


def test_a_restore_to_a_later_snapshot_brings_its_output_back(build_c: BuildC, tmp_path: Path) -> None:
    trace = tmp_path / "prints.arrow"
    assert record(build_c("prints", PRINTS), trace, config=MachineConfig(ram_size=4 << 20)).run.ok
    with Timeline(trace, every=20_000) as tl:
        tl.run_to_end()
        full = bytes(tl.machine.output)
        assert full.count(b"line") == 6
        tl.seek(0)
        assert tl.machine.output == b""
        tl.seek(tl.last_icount)  # restores a snapshot later than here, taken after five lines were printed
        assert tl.machine.output == full


READ_INTO = r"""
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
char buf[64];
int main(void) {
    int fd = open("/data", O_RDONLY);
    long n = read(fd, buf, sizeof buf);
    printf("%ld %c\n", n, buf[0]);
    return 0;
}
"""


def test_watchpoints_see_what_a_system_call_writes(tmp_path: Path) -> None:
    """read() fills a watched buffer from the host: forward stops after the syscall, backward before it."""
    exe = build(tmp_path, READ_INTO, "read")
    (tmp_path / "data").write_bytes(b"Zebra crossing")
    trace = tmp_path / "read.arrow"
    assert record(exe, trace, linux=LinuxSetup(root=tmp_path, stdin=False)).run.ok
    buf = _symbol(exe, "buf")
    reads = [r for r in read_rows(trace) if r["kind"] == "syscall" and r["syscall"] == "read"]
    assert len(reads) == 1
    with Timeline(trace, every=50_000) as tl:
        tl.add_watchpoint("write", buf, 8)
        stop = tl.cont()
        assert (stop.reason, stop.icount, stop.address) == (WATCH, reads[0]["icount"], buf)
        assert tl.read_memory(buf, 5) == b"Zebra"
        assert tl.read_memory(tl.pc - 2, 2) == b"\x0f\x05"  # just after the syscall instruction
        tl.seek(tl.last_icount)
        back = tl.reverse_cont()
        assert (back.reason, back.icount) == (WATCH, reads[0]["icount"] - 1)
        assert tl.read_memory(tl.pc, 2) == b"\x0f\x05" and tl.read_memory(buf, 5) == bytes(5)


def test_seek_past_a_divergence_reports_the_one_replay_reports(tt: tuple[Path, Path], tmp_path: Path) -> None:
    """The diverged machine is never snapshotted, so seeking on cannot resume from it and name another one."""
    _, trace = tt
    rows = read_rows(trace)
    cps = [r for r in rows if r["kind"] == "checkpoint"]
    cps[len(cps) // 3]["reg_digest"] ^= 1
    bad = tmp_path / "forged.arrow"
    write_rows(trace, bad, rows)
    expected = replay(bad).divergence
    assert expected is not None
    from rrtool.player.seek import seek

    position = seek(bad, icount=cps[-1]["icount"])
    assert position.divergence is not None
    assert (position.divergence.icount, position.divergence.what) == (expected.icount, expected.what)


def test_the_timeline_reads_every_register_the_gdb_description_names(tt: tuple[Path, Path]) -> None:
    from rrtool.player.gdbtarget import REGISTERS, encode_registers

    with Timeline(tt[1]) as tl:
        regs = tl.registers()
        assert set(regs) == {r.name for r in REGISTERS}
        assert len(encode_registers(regs)) == sum(r.bits // 4 for r in REGISTERS)
