"""`rrtool guest build` and `rrtool guest list`: the guest SDK."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rrtool.cli.console import err, out, user_errors
from rrtool.cli.core import Command, Group

guest_app = typer.Typer(
    cls=Group, rich_markup_mode=None, no_args_is_help=True, help="Build and list guest programs (the guest SDK)."
)


@guest_app.command("build", cls=Command)
def guest_build(
    sources: Annotated[
        list[str],
        typer.Argument(metavar="SOURCE...", help="C or assembly sources, or bundled example names (`guest list`)."),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", metavar="FILE", help="ELF file to write.")],
    debug: Annotated[
        bool, typer.Option("--debug", "-g", help="Keep debug information (source lines for gdb; same code).")
    ] = False,
) -> None:
    """Compile a guest program against the SDK with the host's gcc.

    A bundled example is named as `rrtool guest list` shows it (a file of that name in the current
    directory wins). The ELF is written under a temporary name and renamed when gcc succeeds.
    Example: rrtool guest build hello.c -o hello.elf
    """
    from rrtool.guest.build import build_guest, resolve_source

    with user_errors():
        path = build_guest([resolve_source(text) for text in sources], output, extra_cflags=["-g"] if debug else [])
    err.print(f"built {path}", markup=False)


@guest_app.command("list", cls=Command)
def guest_list() -> None:
    """List the bundled example guests (usable by name wherever an IMAGE is expected).

    Example: rrtool guest list
    """
    from rrtool.guest.build import example_source, list_examples

    for name in list_examples():
        first = example_source(name).read_text().splitlines()[0].strip("/* ").rstrip("*/ ")
        out.print(f"{name:10} {first}", markup=False)
