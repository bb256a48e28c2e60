"""`rrtool replay`: a trace replayed with every backend off, verified at every checkpoint (exit 0, 1 or 2)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from rrtool.cli.console import console_writer, err, out, stderr_writer, user_errors
from rrtool.cli.options import Json, Quiet
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
) -> None:
    """Replay a trace with every backend off, verifying every checkpoint.

    Exit 0 when verified, 1 on divergence (with a report), 2 on error.
    Example: rrtool replay timers.arrow
    """
    from rrtool._paths import check_input_file
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
