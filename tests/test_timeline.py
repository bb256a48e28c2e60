"""Timeline behaviour the gdb server relies on, checked against an oracle (the hits of one forward pass).

Some were found by the gdb server: a breakpoint one instruction back, a cut-short trace, the x87 stack.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from rrtool.machine.snapshot import capture
from rrtool.player import timeline
from rrtool.player.timeline import Timeline
from rrtool.recorder.session import record
from tests.conftest import BuildC
from tests.guests import STEP_LOOP
from tests.tracetools import read_rows, write_rows


def symbol(elf: Path, name: str) -> int:
    with elf.open("rb") as f:
        table = ELFFile(f).get_section_by_name(".symtab")
        assert isinstance(table, SymbolTableSection)
        found = table.get_symbol_by_name(name)
        assert found, name
        return int(found[0]["st_value"])


@pytest.fixture(scope="module")
def loop(build_c: BuildC, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The STEP_LOOP guest (with symbols) and its trace."""
    elf = build_c("step_loop", STEP_LOOP, cflags=("-g",))
    trace = tmp_path_factory.mktemp("timeline") / "loop.arrow"
    record(elf, trace)
    return elf, trace


@pytest.fixture
def deadline() -> Iterator[None]:
    """A move that never ends fails the test after 5 s instead of stalling the suite."""

    def expire(_sig: int, _frame: FrameType | None) -> None:
        raise TimeoutError("the timeline did not come back within 5 s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, 5)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("every", [None, 7])
def test_forward_continue_stops_at_each_call(loop: tuple[Path, Path], every: int | None) -> None:
    elf, trace = loop
    with Timeline(trace, every=every) as tl:
        tl.add_breakpoint(symbol(elf, "step_fn"))
        args = []
        while (stop := tl.cont()).reason == "breakpoint":
            assert stop.pc == symbol(elf, "step_fn")
            args.append(tl.registers()["rdi"])
        assert stop.reason == "end"
        assert args == list(range(10))


@pytest.mark.parametrize("every", [None, 7])
def test_reverse_continue_finds_a_hit_one_instruction_back(loop: tuple[Path, Path], every: int | None) -> None:
    elf, trace = loop
    with Timeline(trace, every=every) as tl:
        tl.add_breakpoint(symbol(elf, "step_fn"))
        hits = []
        while (stop := tl.cont()).reason == "breakpoint":
            hits.append(stop.icount)
        wrong = []
        for present in sorted({0, 1, *(h + d for h in hits[:4] for d in (0, 1, 2))}):
            tl.seek(present)
            stop = tl.reverse_cont()
            want = max((h for h in hits if h < present), default=0)
            if stop.icount != want:
                wrong.append((present, stop.icount, want))
        assert not wrong, f"(from, stopped at, last hit before): {wrong[:5]}"


def test_reverse_continue_from_a_write_stops_before_it(loop: tuple[Path, Path]) -> None:
    elf, trace = loop
    with Timeline(trace) as tl:
        tl.add_watchpoint("write", symbol(elf, "counter"), 8)
        tl.cont()
        after = tl.cont()  # just after the second write (step_fn(1)), which the hook saw
        assert after.reason == "watch"
        back = tl.reverse_cont()
        assert (back.reason, back.icount) == ("watch", after.icount - 1)


def test_continue_on_a_cut_short_trace_comes_back(
    tmp_path: Path, deadline: None, example: Callable[[str], Path]
) -> None:
    timers = tmp_path / "timers.arrow"
    record(example("timers"), timers)
    rows = read_rows(timers)
    cut = tmp_path / "cut.arrow"
    write_rows(timers, cut, rows[: len(rows) // 2])
    with Timeline(cut) as tl:
        assert not tl.complete
        stop = tl.cont()
        assert stop.reason == "end"
        assert tl.at_end


X87 = r"""
#include "rrtool.h"
int main(void) {
    __asm__ volatile("fninit; fld1; fld1; fld1; faddp");   /* st0 = 2.0, st1 = 1.0 */
    return 0;
}
"""


def test_x87_registers_are_80_bits(build_c: BuildC, tmp_path: Path) -> None:
    elf = build_c("x87_stack", X87)
    trace = tmp_path / "x87.arrow"
    record(elf, trace)
    with Timeline(trace) as tl:
        tl.run_to_end()
        regs = tl.registers()
    assert (regs["st0"], regs["st1"]) == (0x4000_8000000000000000, 0x3FFF_8000000000000000)  # 2.0 and 1.0


def test_one_slow_capture_does_not_hold_off_snapshots(loop: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """The adaptive cadence waits OVERHEAD_FACTOR times the estimated capture cost between snapshots; one capture
    slowed by a pause (a gen-2 collection took 30 ms in one) must not become that estimate."""
    _elf, trace = loop
    with Timeline(trace) as tl:
        tl.step()
        tl.keep_snapshot()
        tl.step()
        tl.keep_snapshot()  # a usual capture: the estimate is now what one costs
        usual = tl._capture_s

        def stalled(*args: Any, **kwargs: Any) -> Any:
            time.sleep(0.05)
            return capture(*args, **kwargs)

        monkeypatch.setattr(timeline, "capture", stalled)
        tl.step()
        tl.keep_snapshot()
        assert tl._capture_s <= 2 * usual < 0.05
