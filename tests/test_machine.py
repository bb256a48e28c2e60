"""The deterministic machine: exact icount, timers, idle warps, faults, bad images."""

from __future__ import annotations

import random
import re
import struct
from pathlib import Path
from typing import Any

import pytest
import unicorn as uc
from unicorn import x86_const as x86

from rrtool.board import Board, BoardConfig
from rrtool.machine.config import MachineConfig
from rrtool.machine.digest import DIGEST_REGS, RegisterDigester
from rrtool.machine.icount import NO_DEADLINE, STOP_NONE
from rrtool.machine.image import ImageError, load_image
from rrtool.machine.machine import Machine
from rrtool.machine.port import EventPort
from tests import guests
from tests.conftest import BuildC, invoke, rrtool

BUSY = r"""
#include "rrtool.h"
static uint64_t buf[4096];
int main(void) {
    uint64_t x = 1;
    for (int r = 0; r < 200; r++)
        for (int i = 0; i < 4096; i++) { x = x * 6364136223846793005ull + 1442695040888963407ull; buf[i] ^= x >> 7; }
    rr_printf("%lx\n", buf[17]);
    return 0;
}
"""


def machine_for(path: Path, **config: Any) -> Machine:
    cfg = MachineConfig(**config)
    return Machine(load_image(path, cfg.ram_size), cfg, EventPort(), Board(BoardConfig()))


def run_to(m: Machine, target: int, stops: list[int] | None = None, soft_every: int | None = None) -> None:
    """Drive the counter directly to `target` through a given pattern of extra stops."""
    points = sorted(set((stops or []) + [target]))
    for point in points:
        while m.counter.icount < point:
            soft = NO_DEADLINE if soft_every is None else m.counter.icount + soft_every
            info = m.counter.run(m.pc, soft, point)
            assert info.reason != STOP_NONE, "guest halted before the target"


def state(m: Machine) -> tuple[int, int, int]:
    return m.counter.icount, RegisterDigester(m.emu).digest(), m.memory_digest()


def test_icount_is_independent_of_slicing(build_c: BuildC) -> None:
    path = build_c("busy", BUSY)
    target = 4_000_003
    rng = random.Random(7)
    one_go = machine_for(path)
    run_to(one_go, target)
    reference = state(one_go)
    assert reference[0] == target

    patterns = {
        "2000 random stops": {"stops": rng.sample(range(1, target), 2000)},
        "soft stops every 7919": {"soft_every": 7919},
        "bursts of single steps": {"stops": [p + k for p in (1000, 777_777, 3_999_990) for k in range(12)]},
    }
    for name, kwargs in patterns.items():
        m = machine_for(path)
        run_to(m, target, **kwargs)  # type: ignore[arg-type]
        assert state(m) == reference, name


def check_clock_reads(path: Path, forget_blocks: bool) -> None:
    """Every clock read the guest prints equals a per-instruction reference count at that `in`. With
    `forget_blocks`, the counter's cached block sizes are dropped just before each read."""
    m = machine_for(path)
    count = 0
    seen: list[int] = []

    def every_insn(emu: uc.Uc, address: int, size: int, _user: object) -> None:
        nonlocal count
        count += 1
        if emu.mem_read(address, 1) == b"\xed" and emu.reg_read(x86.UC_X86_REG_RDX) & 0xFFFF == 0x1F4:
            seen.append(count)  # `in eax, dx` from ICOUNT_LO, this instruction included
            if forget_blocks:
                m.counter.forget_blocks()

    m.emu.hook_add(uc.UC_HOOK_CODE, every_insn)
    m.counter.flush()
    result = m.run()
    assert result.ok
    printed = [int(x) for x in re.findall(rb"icount (\d+)", result.output)]
    assert len(printed) == 5
    assert printed == seen
    assert result.icount == count


def test_icount_at_device_access_matches_per_instruction_count(build_c: BuildC) -> None:
    check_clock_reads(build_c("icount_probe", guests.ICOUNT_PROBE), forget_blocks=False)


def test_icount_at_stays_exact_when_block_sizes_are_forgotten_mid_block(build_c: BuildC) -> None:
    """The Linux platform forgets the cached block sizes from inside a system call (a switch of address
    space), and a store to decoded bytes forgets them in the middle of a block. The block that is running
    must still be counted right."""
    check_clock_reads(build_c("icount_probe", guests.ICOUNT_PROBE), forget_blocks=True)


def test_timer_interrupt_arrives_at_programmed_icount(build_c: BuildC, tmp_path: Path) -> None:
    from rrtool.analysis.info import trace_info
    from rrtool.recorder.session import record
    from rrtool.schemas.tracefile import open_tracefile

    path = build_c("timer_at", guests.TIMER_AT)
    trace = tmp_path / "t.arrow"
    result = record(path, trace)
    assert result.run.ok, result.run
    rows = open_tracefile(trace).read_all().to_pylist()
    irqs = [r for r in rows if r["kind"] == "irq"]
    timer_cps = [r for r in rows if r["kind"] == "checkpoint" and r["cp_kind"] == "timer"]
    assert irqs[0]["icount"] == 3_000_000
    assert irqs[0]["value"] == 1
    assert timer_cps[0]["icount"] == 3_000_000
    handler_icount = int(re.search(rb"handler icount (\d+)", result.run.output).group(1))  # type: ignore[union-attr]
    assert 3_000_000 < handler_icount < 3_000_200  # entry stub + dispatcher, nothing more
    assert trace_info(trace)["complete"]


def test_sleeping_guest_warps_exactly_to_its_deadline(build_c: BuildC) -> None:
    path = build_c("sleep3", guests.SLEEPER, ("-DTICKS=3", "-DSLEEP_NS=20000000ull"))
    m = machine_for(path)
    result = m.run()
    assert result.ok
    slept = [int(x) for x in re.findall(rb"slept (\d+)", result.output)]
    assert len(slept) == 3
    for s in slept:
        assert 20_000_000 <= s < 20_000_000 + 5_000  # the warp lands on the deadline; the rest is guest code
    assert m.clock.warp_ns > 3 * 19_000_000


@pytest.mark.parametrize("name", sorted(guests.FAULTS))
def test_guest_fault_gives_one_line(build_c: BuildC, name: str) -> None:
    body, expected = guests.FAULTS[name]
    path = build_c(f"fault_{name}", guests.fault_source(body))
    proc = invoke("run", path, "--no-stdin")
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert expected in lines[0]
    assert re.search(r"pc=0x[0-9a-f]+, icount=\d+", lines[0])


def test_fault_icount_and_pc_are_exact(build_c: BuildC) -> None:
    path = build_c("fault_bad_opcode", guests.fault_source(guests.FAULTS["bad_opcode"][0]))
    m = machine_for(path)
    result = m.run()
    assert result.reason == "fault"
    pc = int(re.search(r"pc=(0x[0-9a-f]+)", result.message).group(1), 16)  # type: ignore[union-attr]
    assert m.emu.mem_read(pc, 2) == b"\x0f\x0b"  # ud2 is where the fault is reported


def _arm_elf() -> bytes:
    ident = b"\x7fELF" + bytes([1, 1, 1]) + bytes(9)
    return ident + struct.pack("<HHIIIIIHHHHHH", 2, 40, 1, 0x8000, 0, 0, 0, 52, 32, 0, 40, 0, 0)


@pytest.mark.parametrize(
    ("name", "content", "message", "cli_message"),
    [
        ("empty.elf", b"", "empty file", "empty file"),
        ("notes.elf", b"just some text\n", "not an ELF file", "not an ELF executable"),
        ("arm.elf", _arm_elf(), "x86-64 guests only", "an ARM executable; rrtool runs x86-64"),
        ("missing.elf", None, "no such guest image", "no such guest image"),
    ],
)
def test_bad_images_give_clear_errors(
    tmp_path: Path, name: str, content: bytes | None, message: str, cli_message: str
) -> None:
    """The board loader's own messages, and the command line's: a file without the SDK's marker is taken
    for a Linux program, so the Linux loader names what is wrong with it."""
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ImageError, match=message):
        load_image(path, 32 << 20)
    proc = invoke("run", path, "--no-stdin")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert cli_message in proc.stderr


def test_sleep_with_nothing_to_wake_ends_with_message(build_c: BuildC) -> None:
    proc = invoke("run", build_c("halt_no_irq", guests.HALT_NO_IRQ), "--no-stdin", timeout=30)
    assert proc.returncode == 3
    assert "no timer armed" in proc.stderr
    proc = invoke("run", build_c("cli_hlt", guests.CLI_HLT), "--no-stdin", timeout=30)
    assert proc.returncode == 3
    assert "interrupts disabled" in proc.stderr


def test_max_insns_and_timeout_bound_a_run(build_c: BuildC, example: object) -> None:
    proc = invoke("run", "compute", "--max-insns", "2000000", "--no-stdin", "-q")
    assert proc.returncode == 4
    assert "instruction limit of 2000000" in proc.stderr
    long_sleep = build_c("sleep_long", guests.SLEEPER, ("-DTICKS=100", "-DSLEEP_NS=1000000000ull"))
    proc = invoke("run", long_sleep, "--timeout", "0.5", "--no-stdin", "-q", timeout=30)
    assert proc.returncode == 4
    assert "timeout" in proc.stderr


def test_run_hello_via_cli(example: object) -> None:
    """`rrtool run` of the hello example: the smallest end-to-end path, via the CLI."""
    proc = rrtool("run", "hello", "--no-stdin")
    assert proc.returncode == 0, proc.stderr
    assert "Hello from the rrtool guest!" in proc.stdout


def test_rdtsc_returns_virtual_time(build_c: BuildC) -> None:
    m = machine_for(build_c("rdtsc", guests.RDTSC))
    result = m.run()
    a, clock, b = (int(x) for x in re.findall(rb"\d+", result.output))
    assert 0 < a < clock < b < 1000  # virtual ns at 1 ns per instruction, not the host's TSC


def test_register_digest_covers_every_digest_register(build_c: BuildC) -> None:
    import struct

    import xxhash

    m = machine_for(build_c("busy", BUSY))
    run_to(m, 10_000)
    digester = RegisterDigester(m.emu)
    values = m.emu.reg_read_batch(DIGEST_REGS)
    assert digester.digest() == xxhash.xxh3_64_intdigest(struct.pack(f"<{len(values)}Q", *values))
    m.emu.reg_write(x86.UC_X86_REG_R15, values[15] ^ 1)
    assert digester.digest() != xxhash.xxh3_64_intdigest(struct.pack(f"<{len(values)}Q", *values))


def test_pending_interrupt_is_taken_right_after_sti(build_c: BuildC, tmp_path: Path) -> None:
    from rrtool.player.session import replay
    from rrtool.recorder.session import record

    path = build_c("sti_latency", guests.STI_LATENCY)
    rec = record(path, tmp_path / "sti.arrow")
    assert rec.run.ok, rec.run.message
    before, handled = (int(x) for x in re.findall(rb"\d+", rec.run.output))
    assert 0 < handled - before < 200  # sti, its shadow, the entry stub, the dispatcher: not a checkpoint later
    assert replay(tmp_path / "sti.arrow").verified
