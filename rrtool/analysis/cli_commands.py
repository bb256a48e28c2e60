"""The analysis commands of the CLI: `sql`, `diff` and `export {pcap,parquet,perfetto}`.

Defined here so the analysis package owns them; `rrtool/cli.py` registers
them (`app.command("sql")(sql_command)`, `app.command("diff")(diff_command)`,
`app.add_typer(export_app, name="export")`). Like every command they print
one line and exit 2 on bad input, never a traceback. Heavy imports happen
inside the commands so `rrtool --help` stays fast.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

err = Console(stderr=True, highlight=False)
out = Console(highlight=False)


def _fail(message: str, code: int = 2) -> NoReturn:
    err.print(f"[bold red]rrtool: error:[/] {message}", markup=True, soft_wrap=True, highlight=False)
    raise typer.Exit(code)


@contextmanager
def _user_errors() -> Iterator[None]:
    """Bad traces, ranges, names, SQL and unreadable files: one line, exit code 2."""
    import pyarrow as pa

    from rrtool.analysis.errors import AnalysisError
    from rrtool.schemas.tracefile import TraceError

    try:
        yield
    except (AnalysisError, TraceError) as exc:
        _fail(str(exc).replace("[", r"\["))
    except pa.ArrowException as exc:
        _fail(f"cannot read the trace: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
    except OSError as exc:
        _fail(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "))


Checkpoints = Annotated[
    str | None,
    typer.Option(
        "--checkpoints",
        help="Only checkpoints A:B (inclusive; A: and :B leave an end open). Reads only the batches that hold them.",
    ),
]
Icounts = Annotated[str | None, typer.Option("--icounts", help="Only events with icount in A:B (inclusive).")]


def sql_command(
    args: Annotated[list[str], typer.Argument(metavar="TRACE... [QUERY]", help="Trace files, then the SQL query.")],
    name: Annotated[
        list[str] | None, typer.Option("--name", help="Schema name of each trace, in order (default: file stem).")
    ] = None,
    checkpoints: Checkpoints = None,
    icounts: Icounts = None,
    csv: Annotated[bool, typer.Option("--csv", help="Write CSV to stdout (binary as hex).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Write a JSON array of rows to stdout.")] = False,
    parquet: Annotated[Path | None, typer.Option("--parquet", help="Write the result to this Parquet file.")] = None,
    max_rows: Annotated[int, typer.Option("--max-rows", min=1, help="Rows shown in the table.")] = 100,
) -> None:
    """Query traces with SQL (DuckDB): views events, packets, block_ops, clock, checkpoints, interrupts, console.

    Each trace also has its own schema (`a.events`); the unqualified views hold all traces with a `trace`
    column. Without a query: an interactive prompt (or the query is read from a pipe).
    Example: rrtool sql t.arrow "select kind, count(*) from events group by kind"
    """
    from rrtool.analysis.sql import sql_main

    with _user_errors():
        sql_main(
            args, names=name or [], checkpoints=checkpoints, icounts=icounts, stdin=sys.stdin, console=out,
            out=sys.stdout, csv=csv, as_json=as_json, parquet=parquet, max_rows=max_rows,
        )  # fmt: skip


def diff_command(
    a: Annotated[Path, typer.Argument(help="First trace.")],
    b: Annotated[Path, typer.Argument(help="Second trace.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    ignore_kind: Annotated[
        list[str] | None, typer.Option("--ignore-kind", help="Leave out events of this kind (repeatable).")
    ] = None,
    ignore_column: Annotated[
        list[str] | None, typer.Option("--ignore-column", help="Do not compare this column (repeatable).")
    ] = None,
    ignore_meta: Annotated[
        list[str] | None,
        typer.Option("--ignore-meta", help="Do not compare this metadata key (repeatable; start_time, host always)."),
    ] = None,
    host_time: Annotated[bool, typer.Option("--host-time", help="Also compare host_ns (ignored by default).")] = False,
    resync_window: Annotated[
        int, typer.Option("--resync-window", min=0, help="Pair moved events at most this many checkpoints apart.")
    ] = 2,
    show: Annotated[int, typer.Option("--show", min=1, help="Differences listed (all are counted).")] = 10,
) -> None:
    """Compare two traces: the first divergence and a per-kind summary (exit 0 same, 1 different, 2 error).

    A trace cut short by a crash is compared up to its last complete batch; what the other trace has beyond
    counts as "only in" the other, so the exit code is 1.
    Example: rrtool diff a.arrow b.arrow --ignore-kind rng_read
    """
    from rrtool.analysis.diff import DiffOptions, diff_traces
    from rrtool.analysis.diff.model import DEFAULT_IGNORED_META
    from rrtool.analysis.diff.report import print_report

    with _user_errors():
        options = DiffOptions(
            ignore_kinds=frozenset(ignore_kind or ()),
            ignore_columns=frozenset(ignore_column or ()),
            ignore_meta=frozenset([*DEFAULT_IGNORED_META, *(ignore_meta or ())]),
            compare_host_time=host_time,
            resync_checkpoints=resync_window,
            max_differences=max(show, 20),
        )
        result = diff_traces(a, b, options)
    if as_json:
        out.print_json(json.dumps(result.to_dict()))
    else:
        print_report(result, out, show=show)
    raise typer.Exit(0 if result.equivalent else 1)


export_app = typer.Typer(no_args_is_help=True, help="Export a trace as pcapng, Parquet or Perfetto JSON.")

Output = Annotated[Path, typer.Option("--output", "-o", help="File to write.")]


@export_app.command("pcap")
def export_pcap_command(
    trace: Annotated[Path, typer.Argument(help="Trace file.")],
    output: Output,
    time_base: Annotated[
        str, typer.Option("--time-base", help="start: recording start + virtual time; zero: virtual time from 0.")
    ] = "start",
) -> None:
    """Frames received (net_rx) and sent (net_tx) as pcapng, one interface per card, virtual-time timestamps.

    Example: rrtool export pcap t.arrow -o t.pcapng && tshark -r t.pcapng
    """
    from rrtool.analysis.export.pcap import export_pcap

    with _user_errors():
        stats = export_pcap(trace, output, time_base=time_base)
    err.print(
        f"wrote {stats.packets:,} frames ({stats.rx:,} received, {stats.tx:,} sent) on "
        f"{len(stats.interfaces)} interface(s) to {output}",
        markup=False,
    )


@export_app.command("parquet")
def export_parquet_command(
    trace: Annotated[Path, typer.Argument(help="Trace file.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Directory to create.")],
    checkpoints_per_partition: Annotated[
        int, typer.Option("--checkpoints-per-partition", min=1, help="Checkpoints per partition directory.")
    ] = 10_000,
) -> None:
    """The events table as a hive-partitioned Parquet dataset (checkpoint_start=K/part-0.parquet).

    Example: rrtool export parquet t.arrow -o t.parquet/
    """
    from rrtool.analysis.export.parquet import export_parquet

    with _user_errors():
        stats = export_parquet(trace, output, checkpoints_per_partition=checkpoints_per_partition)
    err.print(f"wrote {stats.rows:,} events in {stats.files:,} file(s) under {output}", markup=False)


@export_app.command("perfetto")
def export_perfetto_command(
    trace: Annotated[Path, typer.Argument(help="Trace file.")],
    output: Output,
) -> None:
    """A timeline as Chrome trace-event JSON (open in ui.perfetto.dev): a track per device, warps and I/O as slices.

    Example: rrtool export perfetto t.arrow -o t.json
    """
    from rrtool.analysis.export.perfetto import export_perfetto

    with _user_errors():
        stats = export_perfetto(trace, output)
    err.print(f"wrote {stats.events:,} trace events on {stats.tracks} tracks to {output}", markup=False)
