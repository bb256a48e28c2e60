"""`rrtool replay`: a trace replayed with every backend off, verified at every checkpoint (exit 0, 1 or 2).

With `--gdb ADDR` the replay is served to one gdb instead (`rrtool.player.gdbserver`) and the command exits 0
when gdb detaches, kills or disconnects.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from rrtool.cli.console import console_writer, err, fail, out, stderr_writer, user_errors
from rrtool.cli.options import Gdb, Json, Quiet, SnapshotMemory, parse_size
from rrtool.cli.progress import Bar

if TYPE_CHECKING:
    from rrtool.player.session import ReplayProgress


def follow(bar: Bar) -> Callable[[ReplayProgress], None]:
    """Feed a replay's progress to `bar`: instructions done of the recorded total, checkpoints, MIPS."""

    def progress(p: ReplayProgress) -> None:
        bar.total = p.total_icount
        mips = p.icount / p.wall_s / 1e6 if p.wall_s > 0 else 0.0
        bar.update(p.icount, f"checkpoint {p.checkpoints:,}/{p.total_checkpoints:,}  {mips:,.0f} MIPS")

    return progress


def replay(
    trace: Annotated[Path, typer.Argument(metavar="TRACE", help="Trace file written by `rrtool record`.")],
    image: Annotated[
        Path | None, typer.Option("--image", metavar="ELF", help="Guest ELF (default: the recorded path).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replay even if the image hash differs.")] = False,
    quiet: Quiet = False,
    as_json: Json = False,
    gdb: Gdb = None,
    snapshot_memory: SnapshotMemory = "256M",
) -> None:
    """Replay a trace with every backend off, verifying every checkpoint.

    Exit 0 when verified, 1 on divergence (with a report), 2 on error. With --gdb, serve the replay to one
    gdb (`target remote ADDR`), which can then run it backward as well as forward; exit 0 when gdb is done.
    Example: rrtool replay timers.arrow
    Example: rrtool replay timers.arrow --gdb 1234
    """
    from rrtool._paths import check_input_file

    if gdb is not None:
        if as_json:
            fail("--json does not go with --gdb (the gdb server has no result to print)")
        serve_gdb(trace, image, force, gdb, parse_size(snapshot_memory))
    from rrtool.player.session import replay as do_replay

    # Replays are the long command: the bar shows at once, by instructions (the best measure of time left).
    bar = Bar("replay", 0, enabled=not (quiet or as_json), delay=0.0)
    with user_errors(), bar:
        check_input_file(trace, "trace file")
        if image is not None:
            check_input_file(image, "guest image")
        result = do_replay(
            trace,
            image=image,
            force=force,
            console_sink=console_writer(quiet or as_json),
            on_progress=follow(bar),
            stderr_sink=stderr_writer(quiet or as_json),
        )
    div = result.divergence
    if as_json:
        out.print_json(
            json.dumps(
                {
                    "verified": result.verified,
                    "complete": result.complete,
                    "checkpoints": result.checkpoints,
                    "events": result.events,
                    "icount": result.icount,
                    "wall_s": round(result.wall_s, 4),
                    "divergence": None if div is None else div.to_dict(),
                }
            )
        )
    elif div is not None:
        err.print(div.report(), markup=False)
    else:
        note = "" if result.complete else " (the recording was cut short: verified up to its last complete batch)"
        err.print(
            f"replay verified: {result.checkpoints:,} checkpoints, {result.events:,} events, "
            f"icount {result.icount:,} in {result.wall_s:.2f}s{note}",
            markup=False,
        )
    raise typer.Exit(0 if div is None else 1)


def serve_gdb(trace: Path, image: Path | None, force: bool, address: str, snapshot_memory: int) -> None:
    """The replay as a gdb server on `address`: one line saying where, then gdb's session; exit 0 after it."""
    from rrtool._paths import check_input_file
    from rrtool.player.gdbserver import listen, parse_address, serve
    from rrtool.player.timeline import Timeline

    def message(text: str) -> None:
        err.print(text, markup=False)

    with user_errors():
        check_input_file(trace, "trace file")
        if image is not None:
            check_input_file(image, "guest image")
        host, port = parse_address(address)
        with Timeline(trace, image=image, force=force, snapshot_memory=snapshot_memory) as timeline:
            listener = listen(host, port)
            with listener:  # serve closes it when gdb comes; this covers an error before that
                bound_host, bound_port = listener.getsockname()[:2]
                where = f"[{bound_host}]:{bound_port}" if ":" in bound_host else f"{bound_host}:{bound_port}"
                message(f"rrtool: gdb server listening on {where} (in gdb: target remote {where})")
                ended = serve(timeline, listener, on_message=message)
            message(f"rrtool: gdb {ended}")
    raise typer.Exit(0)
