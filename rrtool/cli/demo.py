"""`rrtool demo`: record a scripted kvstore session, replay it, and show the verified summary."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rrtool.cli.console import console_writer, err, fail, out, user_errors
from rrtool.cli.options import Quiet


def demo(
    workdir: Annotated[
        Path, typer.Option("--dir", metavar="DIR", help="Where to write the disk image and the trace.")
    ] = Path("rrtool-demo"),
    quiet: Quiet = False,
) -> None:
    """Record a scripted client session with the kvstore guest, replay it, and show the verified summary.

    The guest keeps its data on the block device and is restarted mid-session; the client talks UDP through
    user networking on 127.0.0.1. Example: rrtool demo
    """
    from rrtool.analysis.info import trace_info
    from rrtool.demo import run_demo

    with user_errors():
        result = run_demo(workdir, console_sink=console_writer(quiet), say=lambda m: err.print(m, markup=False))
        data = trace_info(result.trace)
    rec, rep = result.recording, result.replay
    from rich.table import Table  # here, not at the top: `rrtool run` imports every command module

    talk = Table(title="client session (UDP through user networking)")
    talk.add_column("request")
    talk.add_column("reply")
    for request, reply in result.transcript:
        talk.add_row(request, reply)
    out.print(talk)
    table = Table(title="record vs replay")
    table.add_column("")
    table.add_column("record", justify="right")
    table.add_column("replay", justify="right")
    table.add_row("wall time", f"{rec.wall_s:.3f}s", f"{rep.wall_s:.3f}s")
    table.add_row("virtual time", f"{rec.run.vclock_ns / 1e9:.3f}s", "")
    table.add_row("instructions", f"{rec.run.icount:,}", f"{rep.icount:,}")
    table.add_row("checkpoints", f"{rec.run.checkpoints:,}", f"{rep.checkpoints:,} verified")
    table.add_row("events", f"{rec.events:,}", f"{rep.events:,}")
    table.add_row("trace size", f"{rec.bytes:,} bytes", "")
    for kind, n in data["counts"].items():
        table.add_row(f"  {kind}", f"{n:,}", "")
    out.print(table)
    if rep.divergence is not None:
        err.print(rep.divergence.report(), markup=False)
        raise typer.Exit(1)
    if not rec.run.ok:
        fail(f"the guest ended with {rec.run.reason}: {rec.run.message}", 1)
    out.print(
        f"[bold green]replay verified[/]: {rep.checkpoints} checkpoints match, without the disk or the network. "
        f"Look inside: rrtool info {result.trace}"
    )
