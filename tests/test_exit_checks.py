"""Unicorn's exit check after every load and store is off (rrtool.machine.exit_checks), and nothing that
needed it drifts: a bad store mid-block still stops exactly at itself, and the counter's single-stepped
tail still stops exactly at its deadline."""

from __future__ import annotations

import ctypes
import re
from pathlib import Path

import pytest
import unicorn as uc
from unicorn import x86_const as x86

from rrtool.machine import exit_checks
from tests.conftest import BuildC
from tests.test_tlb import FAULT_AT, assert_fault_replays, count_every_instruction, machine_for

#: One basic block: set RBX, store to TARGET, then set RBX again and store a marker to RAM. With the
#: fault exact, the store faults, and neither the second RBX nor the marker is ever written.
BAD_STORE_MID_BLOCK = r"""
#include "rrtool.h"
volatile uint64_t marker;
int main(void) {
    rr_printf("marker %lx\n", (uint64_t)&marker);
    __asm__ volatile(
        "movq $1, %%rbx\n\t"
        "movl $7, (%0)\n\t"
        "movq $2, %%rbx\n\t"
        "movq $0x55, (%1)\n\t"
        :
        : "r"(TARGET), "r"(&marker)
        : "rbx", "memory");
    rr_puts("survived\n");
    return 0;
}
"""
#: Below RAM, the guard page just above it, far above it.
TARGETS = {"below_ram": 0x123, "guard_page": 0x2000FF0, "far_above": 0x7FFFF000123}

#: A push with RSP outside RAM: the store no memory operand names.
PUSH_OUTSIDE_RAM = r"""
#include "rrtool.h"
int main(void) {
    __asm__ volatile("movq $0x7ffff000100, %%rsp\n\tpushq $1\n\t" ::: "memory");
    return 0;
}
"""


def test_the_installed_unicorn_lets_the_machine_turn_the_checks_off(example: object) -> None:
    assert exit_checks.available(), "Unicorn's check_exit_request no longer has the shape exit_checks reads"
    m = machine_for(example("compute"))  # type: ignore[operator]
    offset = exit_checks.flag_offset()
    assert offset is not None and m.counter.access_checks_off
    flag = ctypes.c_bool.from_address(m.emu._uch.value + offset)
    assert flag.value  # no_exit_request set: blocks translated from now on skip the per-access check
    assert exit_checks.set_access_checks(m.emu, on=True) and not flag.value
    assert exit_checks.set_access_checks(m.emu, on=False) and flag.value


@pytest.mark.parametrize("checks", ["off", "on"])
@pytest.mark.parametrize("where", sorted(TARGETS))
def test_a_store_outside_ram_mid_block_stops_exactly_at_itself(
    build_c: BuildC, tmp_path: Path, where: str, checks: str
) -> None:
    target = TARGETS[where]
    path = build_c(f"bad_store_{where}", BAD_STORE_MID_BLOCK, (f"-DTARGET={target:#x}ul",))
    m = machine_for(path)
    if checks == "on":  # the reference: Unicorn's own per-access check, as before the machine turned it off
        exit_checks.set_access_checks(m.emu, on=True)
        m.counter.flush()
    reference = count_every_instruction(m)
    result = m.run()
    assert result.reason == "fault" and b"survived" not in result.output
    assert result.message.startswith(f"invalid memory write at {target:#x} (pc="), result.message
    marker = int(re.search(rb"marker ([0-9a-f]+)", result.output).group(1), 16)  # type: ignore[union-attr]
    assert m.emu.reg_read(x86.UC_X86_REG_RBX) == 1  # the instruction after the store never ran
    assert m.mem_read(marker, 8) == bytes(8)  # nor the store after it
    pc, icount = FAULT_AT.search(result.message).groups()  # type: ignore[union-attr]
    assert m.emu.reg_read(x86.UC_X86_REG_RIP) == int(pc, 16)  # stopped before the faulting store
    assert int(icount) == result.icount == reference[0] - 1  # the Python hook also saw the store start

    assert_fault_replays(path, tmp_path / "bad_store.arrow", result.message)


def test_a_push_outside_ram_names_the_stack_slot(build_c: BuildC) -> None:
    result = machine_for(build_c("push_outside_ram", PUSH_OUTSIDE_RAM)).run()
    assert result.reason == "fault"
    assert result.message.startswith("invalid memory write at 0x7ffff0000f8 (pc="), result.message


def test_the_single_stepped_tail_leaves_the_checks_off_behind_it(example: object) -> None:
    """A deadline inside a block makes the counter refuse the block and step its tail, whose stop needs
    the exit check after its code hook: the counter turns the checks on for the tail and off after it.
    (That the tail's stop is exact is test_machine's test_icount_is_independent_of_slicing, which fails
    when the tail runs without the checks, as do the replays above.)"""
    m = machine_for(example("compute"))  # type: ignore[operator]
    flag = ctypes.c_bool.from_address(m.emu._uch.value + (exit_checks.flag_offset() or 0))
    deadline = 1_000_003
    while m.counter.icount < deadline:
        m.counter.run(m.emu.reg_read(x86.UC_X86_REG_RIP), deadline, deadline)
        assert flag.value
    assert m.counter.icount == deadline


def test_unicorn_stops_after_a_store_only_through_the_check() -> None:
    """Why the fill must refuse stores outside RAM: on bare Unicorn with the checks off, a store to
    unmapped memory does not stop the block, and the next instruction runs (with them on, it does not)."""
    # mov rbx, 1; mov dword [0x100000], 7; mov rbx, 2; hlt
    code = bytes.fromhex("48c7c301000000c70425000010000700000048c7c302000000f4")
    results = {}
    for on in (True, False):
        emu = uc.Uc(uc.UC_ARCH_X86, uc.UC_MODE_64)
        emu.mem_map(0x1000, 0x1000)
        emu.mem_write(0x1000, code)
        assert exit_checks.set_access_checks(emu, on=on)
        with pytest.raises(uc.UcError):
            emu.emu_start(0x1000, 0x1000 + len(code))
        results[on] = emu.reg_read(x86.UC_X86_REG_RBX)
    assert results == {True: 1, False: 2}
