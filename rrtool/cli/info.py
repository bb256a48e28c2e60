"""`rrtool info`: a trace's metadata, counts per kind, checkpoints and completeness, as a table or JSON.

For a Linux trace also the program's command line and its busiest system calls: what ran, and what it asked of
the host, before anyone writes a query.
"""

from __future__ import annotations

import json
import shlex
from typing import Annotated

import typer

from rrtool.cli.console import out, user_errors
from rrtool.cli.options import TraceArg

#: The rows of the table, in order (then the machine config and the counts per kind).
FIELDS = (
    "platform",
    "complete",
    "end",
    "size_bytes",
    "batches",
    "events",
    "checkpoints",
    "icount_range",
    "vclock_end_ns",
    "image",
    "image_sha256",
    "start_time",
    "host",
    "tool_version",
    "format_version",
)


def info(
    trace: TraceArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Show a trace's metadata, event counts per kind, checkpoints and whether it is complete.

    Example: rrtool info timers.arrow --json
    """
    from rrtool._paths import check_input_file
    from rrtool.analysis.info import trace_info

    with user_errors():
        check_input_file(trace, "trace file")
        data = trace_info(trace)
    if as_json:
        out.print_json(json.dumps(data))
        return
    from rich.table import Table  # here, not at the top: `rrtool run` imports every command module

    table = Table(title=str(trace), show_header=False)
    for key in FIELDS:
        table.add_row(key, str(data[key]))
    table.add_row("machine", json.dumps(data["machine"]))
    for kind, n in data["counts"].items():
        table.add_row(f"events: {kind}", f"{n:,}")
    linux = data.get("linux")
    if linux is not None:
        argv = linux["argv"]
        table.add_row("argv", shlex.join(str(a) for a in argv) if isinstance(argv, list) else str(argv))
        table.add_row("exe", str(linux["exe"]))
        table.add_row(
            "syscalls",
            f"{linux['syscalls']:,} ({linux['syscalls_failed']:,} failed, {linux['distinct_syscalls']:,} distinct)",
        )
        for call in linux["top_syscalls"]:
            failed = f" ({call['failed']:,} failed)" if call["failed"] else ""
            table.add_row(f"syscall: {call['name']}", f"{call['calls']:,}{failed}")
    out.print(table)
