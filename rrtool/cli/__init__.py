"""The `rrtool` command line: thin wrappers, one library call per command, one module per command.

Exit codes follow `diff`/`cmp` where they fit: replay 0 verified, 1 diverged,
2 error. `run` and `record` exit with the guest's own code, 3 on a guest
fault or hang, 4 on --max-insns or --timeout.

The command modules import only typer, rich and each other at import time;
each command imports the library it calls when it runs, so `rrtool --help`,
`run`, `record` and `replay` never load Polars, DuckDB or `rrtool.analysis`.
Output and errors go through `console` (one pair of consoles, one
`user_errors()`), shared options live in `options`.
"""

from __future__ import annotations

from typing import Annotated

import typer

import rrtool
from rrtool.cli import demo, diff, export, guest, info, record, replay, run, seek, sql
from rrtool.cli.console import out
from rrtool.cli.core import Command, Group, ProgramCommand

# `cls=Group`/`Command` (rrtool/cli/core.py): help that never cuts a word, usage errors as one line.
app = typer.Typer(
    cls=Group,
    rich_markup_mode=None,
    add_completion=False,
    no_args_is_help=True,
    help="Deterministic record/replay for an emulated x86-64 machine; the trace is an Arrow dataset.",
)


def version_callback(value: bool) -> None:
    if value:
        # Read here, not imported at the top: finding the version loads importlib.metadata (~15 ms of start-up).
        out.print(f"rrtool {rrtool.__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool, typer.Option("--version", callback=version_callback, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """rrtool: record a guest run, replay it bit for bit, and query the trace."""


# The order here is the order of `rrtool --help`: the machine commands, then the analysis ones.
app.command("run", cls=ProgramCommand)(run.run)
app.command("record", cls=ProgramCommand)(record.record)
app.command("replay", cls=Command)(replay.replay)
app.command("seek", cls=Command)(seek.seek)
app.command("info", cls=Command)(info.info)
app.command("demo", cls=Command)(demo.demo)
app.command("sql", cls=Command)(sql.sql)
app.command("diff", cls=Command)(diff.diff)
app.add_typer(export.export_app, name="export")
app.add_typer(guest.guest_app, name="guest")


def main() -> None:
    app(prog_name="rrtool")
