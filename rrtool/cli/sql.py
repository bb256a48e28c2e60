"""`rrtool sql`: a query over traces as a table, CSV, JSON or Parquet; without a query, a prompt.

The library (`rrtool.analysis.sql`) opens the traces, runs the query and
streams the result; this module chooses the output, draws the table, reads a
query from a pipe and runs the interactive prompt (history, `.tables`, `.quit`).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from rrtool.cli.console import out, user_errors
from rrtool.cli.options import MAX_SHOWN, Checkpoints, Icounts, NoProgress
from rrtool.cli.progress import Bar

if TYPE_CHECKING:
    from duckdb import DuckDBPyRelation

    from rrtool.analysis.sql import SqlSession

#: Bytes of a binary value shown in the table.
TABLE_HEX_BYTES = 16


def sql(
    args: Annotated[
        list[str],
        typer.Argument(
            metavar="TRACE... [QUERY]",
            help="Trace files, globs ('runs/*.arrow') and directories, or an exported dataset; then the SQL query.",
        ),
    ],
    name: Annotated[
        list[str] | None,
        typer.Option("--name", metavar="NAME", help="Schema name of each trace, in order (default: file stem)."),
    ] = None,
    checkpoints: Checkpoints = None,
    icounts: Icounts = None,
    csv: Annotated[
        bool,
        typer.Option("--csv", help="Write CSV to stdout (binary as hex); the default when stdout is not a terminal."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Write a JSON array of rows to stdout.")] = False,
    table: Annotated[
        bool, typer.Option("--table", help="Draw the table even when stdout is not a terminal (at most --max-rows).")
    ] = False,
    parquet: Annotated[
        Path | None, typer.Option("--parquet", metavar="FILE", help="Write the result to this Parquet file.")
    ] = None,
    max_rows: Annotated[
        int, typer.Option("--max-rows", metavar="N", min=1, max=MAX_SHOWN, help="Rows shown in the table.")
    ] = 100,
    quiet: NoProgress = False,
) -> None:
    """Query traces with SQL (DuckDB): views events, packets, block_ops, clock, checkpoints, interrupts, console,
    syscalls, sched, tasks.

    The traces are one corpus: `traces` has a row per trace, and the views hold every trace's rows with a
    `trace` column (a query on one trace reads only its file). A corpus of at most 32 traces also has a
    schema per trace (`a.events`). A directory means every .arrow file under it; a directory written by
    `rrtool export parquet` is queried as that dataset. Without a query: an interactive prompt (or the
    query is read from a pipe). The result is a table on a terminal; when stdout is not one (a pipe, a
    file) it is CSV with a header (Python's csv module, binary as hex, nulls as empty fields), every row,
    as with --csv.
    Example: rrtool sql t.arrow "select kind, count(*) from events group by kind"
    Example: rrtool sql 'runs/*.arrow' "select trace, count(*) from block_ops group by trace"
    """
    from rrtool._paths import check_output_path, refuse_clobber
    from rrtool.analysis.errors import AnalysisError
    from rrtool.analysis.sources import expand
    from rrtool.analysis.sql import csv_chunks, json_chunks, open_session, write_parquet

    with user_errors():
        if sum((csv, as_json, table, parquet is not None)) > 1:
            raise AnalysisError("choose one of --csv, --json, --table and --parquet")
        given, query = split_args(args)
        sources = expand(given)
        if parquet is not None:
            refuse_clobber(parquet, [(path, "trace file") for path in sources.traces])
            if sources.dataset is not None and Path(os.path.realpath(parquet)).is_relative_to(
                os.path.realpath(sources.dataset)
            ):
                raise AnalysisError(f"{parquet}: inside the dataset {sources.dataset} being read; write it elsewhere")
            check_output_path(parquet, "Parquet file")
        session = open_session(sources, name or [], checkpoints, icounts)
        if query is None and not sys.stdin.isatty():
            query = sys.stdin.read()
        if query is None:
            interactive(session, out, max_rows)
            return
        if not query.strip():
            raise AnalysisError("empty query")
        rel = session.run(query)
        if rel is None:
            return
        if parquet is not None:
            with Bar("sql --parquet", enabled=not quiet) as bar:
                write_parquet(rel, parquet, con=session.con, progress=bar.progress)
        elif csv or as_json or not (table or sys.stdout.isatty()):
            # A table drawn for a pipe is cut to 80 columns; a program reading the pipe wants CSV. The real
            # stdout is asked, not rich (FORCE_COLOR makes rich call a pipe a terminal).
            for text in json_chunks(rel) if as_json else csv_chunks(rel):
                sys.stdout.write(text)
        else:
            print_table(rel, out, max_rows)


def split_args(args: Sequence[str]) -> tuple[list[str], str | None]:
    """`TRACE... [QUERY]`: the last argument is the query unless it names a file or directory or ends in `.arrow`."""
    from rrtool.analysis.errors import AnalysisError

    if not args:
        raise AnalysisError("give at least one trace file")
    last = args[-1]
    if len(args) > 1 and not Path(last).exists() and not last.endswith(".arrow"):
        return list(args[:-1]), last
    if len(args) == 1 and not Path(last).exists() and not last.endswith(".arrow") and " " in last:
        raise AnalysisError("give at least one trace file before the query")
    return list(args), None


def _cell(value: object) -> str:
    if value is None:
        return "[dim]null[/]"
    if isinstance(value, bytes):
        more = "…" if len(value) > TABLE_HEX_BYTES else ""
        return value[:TABLE_HEX_BYTES].hex() + more
    if isinstance(value, float):
        return f"{value:.9g}"
    return str(value).replace("[", r"\[")


def print_table(rel: DuckDBPyRelation, console: Console, max_rows: int) -> None:
    """The first `max_rows` rows as a rich table, with a note when there are more."""
    from rich.measure import Measurement  # here, not at the top: `rrtool run` imports every command module
    from rich.table import Table

    from rrtool.analysis.sql import row_chunks

    table = Table(show_header=True, header_style="bold", show_lines=False)
    for name, typ in zip(rel.columns, rel.types, strict=True):
        numeric = any(t in str(typ) for t in ("INT", "DOUBLE", "FLOAT", "DECIMAL", "HUGEINT"))
        table.add_column(name, justify="right" if numeric else "left", overflow="fold")
    shown = 0
    more = False
    for chunk in row_chunks(rel):
        for row in chunk:
            if shown == max_rows:
                more = True
                break
            table.add_row(*(_cell(v) for v in row))
            shown += 1
        if more:
            break
    if not console.is_terminal:
        # Not a terminal (`--table` into a pipe): the table's own width, not a guessed 80 columns that squash it.
        width = Measurement.get(console, console.options.update_width(100_000), table).maximum
        console = Console(file=console.file, width=max(width, console.width), highlight=False)
    console.print(table, soft_wrap=False)
    note = f"first {shown} rows shown; use --max-rows, --csv, --json or --parquet for all" if more else None
    console.print(f"[dim]{note or f'{shown} row' + ('' if shown == 1 else 's')}[/]", soft_wrap=False)


def history_file() -> Path:
    from rrtool._host import cache_dir

    return cache_dir() / "sql_history"


def interactive(session: SqlSession, console: Console, max_rows: int) -> None:
    """A prompt with history: a statement runs at `;` or at an empty line; `.tables`, `.quit`."""
    from rrtool.analysis.errors import AnalysisError

    try:
        import readline
    except ImportError:  # pragma: no cover - not on Linux
        readline = None  # type: ignore[assignment]
    history = history_file()
    if readline is not None:
        with contextlib.suppress(OSError):
            history.parent.mkdir(parents=True, exist_ok=True)
            if history.exists():
                readline.read_history_file(history)
    console.print(
        f"[dim]{session.describe()}\nend a statement with ; or an empty line; .quit to leave[/]", soft_wrap=False
    )
    buffer: list[str] = []
    try:
        while True:
            try:
                line = input("rrtool> " if not buffer else "   ...> ")
            except EOFError:
                console.print(soft_wrap=False)
                break
            except KeyboardInterrupt:
                console.print(soft_wrap=False)
                buffer.clear()
                continue
            stripped = line.strip()
            if not buffer and stripped.startswith("."):
                if stripped in (".quit", ".exit", ".q"):
                    break
                if stripped == ".tables":
                    console.print(session.describe(), markup=False, soft_wrap=False)
                else:
                    console.print("commands: .tables, .quit; anything else is SQL", markup=False, soft_wrap=False)
                continue
            if stripped:
                buffer.append(line)
            if not buffer or (stripped and not stripped.endswith(";")):
                continue
            query = "\n".join(buffer)
            buffer.clear()
            try:
                rel = session.run(query)
                if rel is not None:
                    print_table(rel, console, max_rows)
            except AnalysisError as exc:
                console.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False, soft_wrap=True)
    finally:
        if readline is not None:
            with contextlib.suppress(OSError):
                readline.write_history_file(history)
