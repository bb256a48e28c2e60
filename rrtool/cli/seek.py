"""`rrtool seek`: replay a trace to an exact icount or checkpoint and show the machine there."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from rrtool.cli.console import out, user_errors
from rrtool.cli.options import Json, TraceArg

if TYPE_CHECKING:
    from rrtool.player.seek import Position

#: Registers shown by default, four to a line (`--json` has every one gdb knows).
SHOWN = ["rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11", "r12", "r13", "r14",
         "r15", "rip", "eflags", "fs_base", "gs_base"]  # fmt: skip


def seek(
    trace: TraceArg,
    icount: Annotated[
        int | None, typer.Option("--icount", min=0, metavar="N", help="Go to just after N instructions.")
    ] = None,
    checkpoint: Annotated[
        int | None, typer.Option("--checkpoint", min=0, metavar="K", help="Go to checkpoint K's icount.")
    ] = None,
    mem: Annotated[
        list[str] | None,
        typer.Option("--mem", metavar="ADDR:LEN", help="Also dump guest memory (repeatable), e.g. 0x100000:64."),
    ] = None,
    image: Annotated[
        Path | None, typer.Option("--image", metavar="ELF", help="Guest ELF (default: the recorded path).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replay even if the image hash differs.")] = False,
    as_json: Json = False,
) -> None:
    """Replay TRACE to an exact point and print registers, the code around pc and memory.

    Every checkpoint on the way is verified. Past the end of the recording is an error (exit 2).
    Example: rrtool seek timers.arrow --icount 20000 --mem 0x101000:32
    """
    from rrtool._paths import check_input_file
    from rrtool.player.seek import parse_range
    from rrtool.player.seek import seek as do_seek

    with user_errors():
        check_input_file(trace, "trace file")
        ranges = [parse_range(m) for m in mem or []]
        position = do_seek(trace, icount=icount, checkpoint=checkpoint, mem=ranges, image=image, force=force)
        if position.divergence is not None:
            raise_divergence(position)
    if as_json:
        out.print_json(json.dumps(position.to_dict()))
        return
    out.print(render(position), markup=False, highlight=False)


def raise_divergence(position: Position) -> None:
    from rrtool.cli.console import err

    assert position.divergence is not None
    err.print(position.divergence.report(), markup=False)
    raise typer.Exit(1)


def render(p: Position) -> str:
    lines = [f"icount {p.icount:,}  checkpoint {p.checkpoint:,}  pc {p.pc:#x}", ""]
    for ins in p.code:
        mark = "=>" if ins.address == p.pc and ins.icount is None else "  "
        ran = f"[{ins.icount:,}]" if ins.icount is not None else ""
        lines.append(f"{mark} {ran:>16} {ins.address:#010x}  {ins.text}")
    lines.append("")
    regs = [f"{name:<7} {p.registers[name]:#018x}" for name in SHOWN]
    lines += ["   ".join(regs[i : i + 4]) for i in range(0, len(regs), 4)]
    for dump in p.memory:
        lines.append("")
        lines += hexdump(dump.address, dump.data)
    return "\n".join(lines)


def hexdump(address: int, data: bytes) -> list[str]:
    rows = []
    for off in range(0, len(data), 16):
        chunk = data[off : off + 16]
        text = "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in chunk)
        rows.append(f"{address + off:#014x}  {chunk.hex(' '):<47}  |{text}|")
    return rows
