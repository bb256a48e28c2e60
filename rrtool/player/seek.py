"""`rrtool seek`: one position of a recording, as data (registers, the code around pc, memory).

The instructions shown *before* pc are the ones that really ran there, found by
stepping the timeline back (x86 cannot be decoded backwards reliably, and a
jump may have arrived from anywhere); those after pc are decoded from memory,
as any debugger shows them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rrtool.player.divergence import Divergence
from rrtool.player.timeline import Timeline, TimelineError

#: Instructions shown before pc.
HISTORY = 3
#: How much `--mem` may dump at once: a terminal's worth, not a RAM image (`rrtool export` is for that).
MAX_DUMP = 1 << 20


@dataclass(frozen=True)
class Instruction:
    address: int
    text: str
    #: The position this instruction ran from (it was the icount+1-th); None for the ones not yet run.
    icount: int | None


@dataclass(frozen=True)
class MemoryDump:
    address: int
    data: bytes


@dataclass
class Position:
    icount: int
    checkpoint: int
    pc: int
    registers: dict[str, int]
    code: list[Instruction]
    memory: list[MemoryDump] = field(default_factory=list)
    #: The replay stopped matching its log on the way (it then shows where it stopped).
    divergence: Divergence | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "icount": self.icount,
            "checkpoint": self.checkpoint,
            "pc": self.pc,
            "registers": self.registers,
            "code": [{"address": i.address, "text": i.text, "icount": i.icount} for i in self.code],
            "memory": [{"address": m.address, "hex": m.data.hex()} for m in self.memory],
        }


def parse_range(text: str) -> tuple[int, int]:
    """ADDR:LEN with ADDR and LEN decimal or 0x-hex; a `TimelineError` line otherwise."""
    addr, sep, length = text.partition(":")
    try:
        a, n = int(addr, 0), int(length, 0)
    except ValueError:
        raise TimelineError(f"--mem {text!r}: expected ADDR:LEN, e.g. 0x100000:64") from None
    if not sep or a < 0 or not 0 < n <= MAX_DUMP:
        raise TimelineError(f"--mem {text!r}: expected ADDR:LEN with 0 < LEN <= {MAX_DUMP}")
    return a, n


def describe(
    timeline: Timeline, *, history: int = HISTORY, ahead: int = 5, mem: Sequence[tuple[int, int]] = ()
) -> Position:
    """The timeline's position: `history` instructions that ran before it, pc and `ahead` after, `mem` dumped."""
    here = timeline.icount
    dumps = [MemoryDump(a, timeline.read_memory(a, n)) for a, n in mem]
    regs = timeline.registers()
    checkpoint = timeline.checkpoint
    ran: list[Instruction] = []
    for back in range(1, min(history, here) + 1):
        timeline.seek(here - back)
        pc = timeline.pc
        ran.insert(0, Instruction(pc, _text(timeline, pc), here - back))
    if ran:
        timeline.seek(here)
    upcoming = [_split(line) for line in timeline.disassemble(regs["rip"], ahead)]
    code = ran + [Instruction(a, t, None) for a, t in upcoming]
    return Position(here, checkpoint, regs["rip"], regs, code, dumps)


def _text(timeline: Timeline, pc: int) -> str:
    lines = timeline.disassemble(pc, 1)
    return _split(lines[0])[1] if lines else "<undecodable>"


def _split(line: str) -> tuple[int, str]:
    addr, _, text = line.partition(": ")
    try:
        return int(addr, 16), text
    except ValueError:
        return 0, line


def seek(
    trace: Path,
    *,
    icount: int | None = None,
    checkpoint: int | None = None,
    mem: Sequence[tuple[int, int]] = (),
    image: Path | None = None,
    force: bool = False,
) -> Position:
    """Replay `trace` to an icount or a checkpoint and describe the machine there."""
    if (icount is None) == (checkpoint is None):
        raise TimelineError("give exactly one of --icount and --checkpoint")
    # One seek goes straight there, with no snapshot on the way but one just before the target, from
    # which the instructions that ran before it are found.
    with Timeline(trace, image=image, force=force, every=1 << 62) as timeline:
        target = icount if icount is not None else timeline.checkpoint_icount(checkpoint or 0)
        timeline.check_icount(target)
        stop = timeline.seek(max(0, target - HISTORY))
        if stop.divergence is None:
            timeline.keep_snapshot()
            stop = timeline.seek(target)
        if stop.divergence is not None:
            return Position(timeline.icount, timeline.checkpoint, timeline.pc, timeline.registers(), [],
                            divergence=stop.divergence)  # fmt: skip
        if stop.icount != target:
            raise TimelineError(f"the replay ended at icount {stop.icount:,}, before {target:,}")
        return describe(timeline, mem=mem)


__all__ = ["Instruction", "MemoryDump", "Position", "describe", "parse_range", "seek"]
