"""The virtual TLB and its page policy (rrtool.machine.pages): data is never executable, code may be written
and run again, the count stays exact through every switch, and restores are exact."""

from __future__ import annotations

import ctypes
import re
from pathlib import Path
from typing import Any

import pytest
import unicorn as uc

from rrtool.board import Board, BoardConfig
from rrtool.machine.config import MachineConfig
from rrtool.machine.digest import RegisterDigester
from rrtool.machine.icount import NO_DEADLINE, STOP_NONE
from rrtool.machine.image import load_image
from rrtool.machine.machine import Machine
from rrtool.machine.pages import PAGE_DATA, PAGE_EXEC, PAGE_WRITE
from rrtool.machine.port import EventPort
from rrtool.player.session import replay
from rrtool.recorder.session import record
from tests.conftest import BuildC, invoke

FAULT_AT = re.compile(r"pc=(0x[0-9a-f]+), icount=(\d+)")

#: Jumps into each kind of data the image declares non-executable; the guest prints the target first.
JUMP_INTO_DATA = {
    "bss": "static uint8_t code[16]; code[0] = 0xc3;",
    "data": "static uint8_t code[16] = {0xc3};",
    "rodata": "static const uint8_t code[16] = {0xc3};",
}


def jump_source(decl: str) -> str:
    return (
        '#include "rrtool.h"\nint main(void) {\n    ' + decl + "\n"
        '    rr_printf("target %lx\\n", (uint64_t)code);\n'
        "    ((void (*)(void))code)();\n"
        '    rr_puts("returned\\n");\n    return 0;\n}\n'
    )


#: Writes a 7-byte function, runs it, rewrites it with a different instruction count, runs it again, ten
#: times over, at WHERE: free RAM above the image, or its own text (the page main runs from). The two
#: versions have the same address and size, so a cached block size of the old bytes would miscount.
WRITE_THEN_RUN = r"""
#include "rrtool.h"
__attribute__((noipa, aligned(64))) int patched(void) { return 0; }
static const uint8_t v1[7] = {0xb8, 1, 0, 0, 0, 0x90, 0xc3}; /* mov eax,1; nop; ret */
static const uint8_t v2[7] = {0x31, 0xc0, 0xff, 0xc0, 0xff, 0xc0, 0xc3}; /* xor eax,eax; inc eax x2; ret: 2 */
int main(void) {
    volatile uint8_t *dst = WHERE;
    uint32_t sum = 0;
    for (int round = 0; round < 10; round++) {
        const uint8_t *src = (round & 1) ? v2 : v1;
        for (int i = 0; i < 7; i++) dst[i] = src[i];
        int got = ((int (*)(void))dst)();
        sum = sum * 10 + (uint32_t)got;
        rr_printf("round %d got %d icount %lu\n", round, got, rr_icount());
    }
    rr_printf("sum %u\n", sum);
    return 0;
}
"""
WHERE = {"free_ram": "(volatile uint8_t *)0x1000000ul", "own_text": "(volatile uint8_t *)(uintptr_t)patched"}
EXPECTED_SUM = 1212121212


def machine_for(path: Path, **config: Any) -> Machine:
    cfg = MachineConfig(**config)
    return Machine(load_image(path, cfg.ram_size), cfg, EventPort(), Board(BoardConfig()))


def assert_fault_replays(path: Path, trace: Path, message: str) -> None:
    """A recording of the guest ends with the same fault line, and its replay verifies and ends the same way."""
    rec = record(path, trace)
    assert rec.run.message == message
    rep = replay(trace)
    assert rep.verified, rep.divergence and rep.divergence.report()
    assert rep.run is not None and rep.run.message == message


def count_every_instruction(m: Machine) -> list[int]:
    """A Python per-instruction hook beside the native counter: the reference count (a code hook, unlike a
    memory hook, leaves the store path alone)."""
    count = [0]

    def every_insn(_emu: uc.Uc, _address: int, _size: int, _user: object) -> None:
        count[0] += 1

    m.emu.hook_add(uc.UC_HOOK_CODE, every_insn)
    m.counter.flush()
    return count


def test_the_image_decides_which_pages_run_code(example: Any) -> None:
    m = machine_for(example("compute"))
    for seg in m.image.segments:
        expected = PAGE_EXEC if seg.flags & 1 else PAGE_DATA
        assert {m.pages.kind(a) for a in range(seg.vaddr, seg.vaddr + seg.memsz, 0x1000)} == {expected}
    assert m.pages.kind(0x1000000) == PAGE_WRITE  # free RAM above the image: W until it runs code
    assert m.pages.kind(m.config.ram_size - 8) == PAGE_WRITE  # the stack
    result = m.run()
    assert result.ok, result.message
    # A memory-heavy guest that never writes code never switches a page, and the TLB is filled a few
    # hundred times in the whole run (each fill is a miss; stores then stay on the fast path).
    assert m.pages.state.to_exec == 0 and m.pages.state.to_write == 0
    assert 0 < m.pages.state.fills < 5000


@pytest.mark.parametrize("where", sorted(JUMP_INTO_DATA))
def test_a_jump_into_data_is_a_fetch_fault_at_the_exact_icount(build_c: BuildC, tmp_path: Path, where: str) -> None:
    path = build_c(f"jump_into_{where}", jump_source(JUMP_INTO_DATA[where]))
    m = machine_for(path)
    reference = count_every_instruction(m)
    result = m.run()
    target = int(re.search(rb"target ([0-9a-f]+)", result.output).group(1), 16)  # type: ignore[union-attr]
    assert result.reason == "fault" and b"returned" not in result.output
    assert result.message.startswith(f"jump to non-executable data at {target:#x} (pc={target:#x}, "), result.message
    _pc, icount = FAULT_AT.search(result.message).groups()  # type: ignore[union-attr]
    assert int(icount) == result.icount == reference[0]  # the call retired; nothing at the target ran

    proc = invoke("run", path, "--no-stdin")
    assert proc.returncode == 3, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines == [f"rrtool: fault: {result.message}"], proc.stderr
    assert_fault_replays(path, tmp_path / "nx.arrow", result.message)


@pytest.mark.parametrize("where", sorted(WHERE))
def test_a_guest_that_writes_code_and_runs_it_counts_exactly(build_c: BuildC, tmp_path: Path, where: str) -> None:
    path = build_c(f"write_then_run_{where}", WRITE_THEN_RUN, (f"-DWHERE={WHERE[where]}",))
    m = machine_for(path)
    reference = count_every_instruction(m)
    result = m.run()
    assert result.ok, result.message
    assert f"sum {EXPECTED_SUM}\n".encode() in result.output
    assert result.icount == reference[0]
    # Each round switched the page to executable, and every round after the first (free RAM starts writable)
    # back to writable; with own_text that page is main's own, so main's code switches it back each time too.
    assert m.pages.state.to_exec >= 10 and m.pages.state.to_write >= 9

    plain = machine_for(path).run()  # without the reference hook: the same count and the same guest view
    assert plain.icount == result.icount and plain.output == result.output
    trace = tmp_path / "smc.arrow"
    rec = record(path, trace)
    assert rec.run.ok and rec.run.icount == result.icount
    rep = replay(trace)
    assert rep.verified, rep.divergence and rep.divergence.report()
    assert rep.run is not None and rep.run.output == result.output


def run_to(m: Machine, target: int) -> None:
    while m.counter.icount < target:
        info = m.counter.run(m.pc, NO_DEADLINE, target)
        assert info.reason != STOP_NONE, "guest halted before the target"


def state(m: Machine) -> tuple[int, int, int]:
    return m.counter.icount, RegisterDigester(m.emu).digest(), m.memory_digest()


class Snapshot:
    """CPU context, all of RAM, the count and every unit's state: what time travel will save."""

    def __init__(self, m: Machine) -> None:
        self.context = m.emu.context_save()
        self.ram = ctypes.string_at(m.ram.address, m.ram.size)
        self.icount = m.counter.icount
        self.units = m.units.save()

    def restore(self, m: Machine) -> None:
        """Put it back the way a snapshot restore does: RAM straight into the host pages, behind Unicorn's back."""
        m.emu.context_restore(self.context)
        ctypes.memmove(m.ram.address, self.ram, m.ram.size)
        m.counter.set_icount(self.icount)
        m.units.load(self.units)
        m.forget_translations()


def entries_of(path: Path, addr: int) -> list[int]:
    """The icount before each execution of the instruction at `addr` (a reference run with a Python hook)."""
    m = machine_for(path)
    count = 0
    entries: list[int] = []

    def every_insn(_emu: uc.Uc, address: int, _size: int, _user: object) -> None:
        nonlocal count
        if address == addr:
            entries.append(count)
        count += 1

    m.emu.hook_add(uc.UC_HOOK_CODE, every_insn)
    m.counter.flush()
    assert m.run().ok
    return entries


def test_a_restore_runs_on_exactly_through_rewritten_code(build_c: BuildC) -> None:
    """The snapshot is taken just before round 4 calls v1; at restore time the machine has translated v2 at
    that address (round 9) and its TLB has the page executable. After the restore, with RAM put back behind
    Unicorn's back, the snapshot's v1 must run, so translations and the TLB must be forgotten."""
    path = build_c("write_then_run_free_ram", WRITE_THEN_RUN, (f"-DWHERE={WHERE['free_ram']}",))
    calls = entries_of(path, 0x1000000)
    assert len(calls) == 10
    end = machine_for(path).run().icount - 50  # a little before the exit, inside main
    one_go = machine_for(path)
    run_to(one_go, calls[4])
    assert one_go.pc == 0x1000000 and one_go.mem_read(0x1000000, 1) == b"\xb8"  # about to run v1
    snap = Snapshot(one_go)
    run_to(one_go, end)
    reference = state(one_go)
    assert reference[0] == end and one_go.mem_read(0x1000000, 1) == b"\x31"  # v2 is what it ran last

    snap.restore(one_go)  # same instance: its translations and TLB know v2
    assert one_go.counter.icount == calls[4] and one_go.pc == 0x1000000
    run_to(one_go, end)
    assert state(one_go) == reference

    fresh = machine_for(path)  # a fresh instance, as a seek from a saved snapshot would be
    snap.restore(fresh)
    run_to(fresh, end)
    assert state(fresh) == reference
