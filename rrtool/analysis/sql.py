"""`rrtool sql`: DuckDB over one or more traces, through Arrow, with the views of `views.py`.

Results stream out of DuckDB in Arrow batches, so `--csv`, `--json` and
`--parquet` handle results larger than memory; the rich table shows the
first rows only. SQL errors become one line (`AnalysisError`), which the
CLI turns into exit code 2.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import duckdb
import pyarrow as pa
from rich.console import Console
from rich.table import Table

from rrtool.analysis.errors import AnalysisError
from rrtool.analysis.trace import Trace, default_name, open_trace
from rrtool.analysis.views import VIEW_NAMES, add_trace, add_union_views, install_functions
from rrtool.analysis.window import Span

#: Bytes of a binary value shown in the rich table.
TABLE_HEX_BYTES = 16
_BATCH_ROWS = 65536


def open_traces(
    paths: Sequence[Path],
    names: Sequence[str] = (),
    checkpoints: str | None = None,
    icounts: str | None = None,
) -> list[Trace]:
    """Open several traces with distinct schema names (`--name` in order, else the file stem, made unique)."""
    if len(names) > len(paths):
        raise AnalysisError(f"{len(names)} --name options for {len(paths)} traces")
    cp = Span.parse(checkpoints, "checkpoint range") if checkpoints is not None else None
    ic = Span.parse(icounts, "icount range") if icounts is not None else None
    traces: list[Trace] = []
    used: set[str] = set()
    for i, path in enumerate(paths):
        given = names[i] if i < len(names) else None
        trace = open_trace(path, name=given, checkpoints=cp, icounts=ic)
        if trace.name in used:
            if given is not None:
                raise AnalysisError(f"two traces named {given!r}")
            base, n = default_name(Path(path)), 2
            while f"{base}_{n}" in used:
                n += 1
            trace.name = f"{base}_{n}"
        used.add(trace.name)
        traces.append(trace)
    return traces


def connect(traces: Sequence[Trace]) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with a schema of views per trace and the unqualified union views."""
    con = duckdb.connect()
    install_functions(con)
    for trace in traces:
        add_trace(con, trace.name, trace.arrow())
    add_union_views(con, [t.name for t in traces])
    return con


def error_line(exc: duckdb.Error) -> str:
    """DuckDB's message in one line: the first line, plus its 'Did you mean' hint if any."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    first = lines[0] if lines else type(exc).__name__
    hint = next((line for line in lines[1:] if line.startswith("Did you mean")), None)
    return f"{first} {hint}" if hint else first


def run(con: duckdb.DuckDBPyConnection, query: str) -> duckdb.DuckDBPyRelation | None:
    """Run a query; None for a statement without a result. SQL errors raise `AnalysisError`."""
    try:
        return con.sql(query)
    except duckdb.Error as exc:
        raise AnalysisError(f"SQL: {error_line(exc)}") from None


def _reader(rel: duckdb.DuckDBPyRelation) -> pa.RecordBatchReader:
    try:
        make = getattr(rel, "to_arrow_reader", None) or rel.fetch_record_batch
        reader: pa.RecordBatchReader = make(_BATCH_ROWS)
    except duckdb.Error as exc:
        raise AnalysisError(f"SQL: {error_line(exc)}") from None
    return reader


def _row_batches(rel: duckdb.DuckDBPyRelation) -> Iterator[list[tuple[Any, ...]]]:
    """The result in chunks of rows. Plain tuples, not frames: a query may repeat a column name."""
    reader = _reader(rel)
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            return
        except (duckdb.Error, pa.ArrowException) as exc:
            message = error_line(exc) if isinstance(exc, duckdb.Error) else str(exc).splitlines()[0]
            raise AnalysisError(f"SQL: {message}") from None
        yield list(zip(*(col.to_pylist() for col in batch.columns), strict=True))


def _json_default(value: object) -> object:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dt.date | dt.datetime | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return str(value)


def write_csv(rel: duckdb.DuckDBPyRelation, out: IO[str]) -> int:
    """CSV with a header; binary values as hex (CSV has no bytes type), nulls as empty fields."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(rel.columns)
    rows = 0
    for chunk in _row_batches(rel):
        writer.writerows(tuple(v.hex() if isinstance(v, bytes) else v for v in row) for row in chunk)
        rows += len(chunk)
    return rows


def write_json(rel: duckdb.DuckDBPyRelation, out: IO[str]) -> int:
    """A JSON array of objects, written row by row (a repeated column name keeps its last value)."""
    rows = 0
    names = rel.columns
    out.write("[")
    for chunk in _row_batches(rel):
        for row in chunk:
            text = json.dumps(dict(zip(names, row, strict=True)), default=_json_default)
            out.write(("\n  " if rows == 0 else ",\n  ") + text)
            rows += 1
    out.write("\n]\n" if rows else "]\n")
    return rows


def write_parquet(rel: duckdb.DuckDBPyRelation, path: Path) -> None:
    try:
        rel.write_parquet(str(path))
    except duckdb.Error as exc:
        raise AnalysisError(f"SQL: {error_line(exc)}") from None


def _cell(value: object) -> str:
    if value is None:
        return "[dim]null[/]"
    if isinstance(value, bytes):
        more = "…" if len(value) > TABLE_HEX_BYTES else ""
        return value[:TABLE_HEX_BYTES].hex() + more
    if isinstance(value, float):
        return f"{value:.9g}"
    return str(value).replace("[", r"\[")


def print_table(rel: duckdb.DuckDBPyRelation, console: Console, max_rows: int) -> None:
    """The first `max_rows` rows as a rich table, with a note when there are more."""
    table = Table(show_header=True, header_style="bold", show_lines=False)
    for name, typ in zip(rel.columns, rel.types, strict=True):
        numeric = any(t in str(typ) for t in ("INT", "DOUBLE", "FLOAT", "DECIMAL", "HUGEINT"))
        table.add_column(name, justify="right" if numeric else "left", overflow="fold")
    shown = 0
    more = False
    for chunk in _row_batches(rel):
        for row in chunk:
            if shown == max_rows:
                more = True
                break
            table.add_row(*(_cell(v) for v in row))
            shown += 1
        if more:
            break
    console.print(table)
    note = f"first {shown} rows shown; use --max-rows, --csv, --json or --parquet for all" if more else None
    console.print(f"[dim]{note or f'{shown} row' + ('' if shown == 1 else 's')}[/]")


def describe_tables(con: duckdb.DuckDBPyConnection, traces: Sequence[Trace]) -> str:
    """What `.tables` prints: the views, and each trace's schema."""
    lines = ["views (all traces, with a `trace` column): " + ", ".join(VIEW_NAMES)]
    for t in traces:
        lines.append(f"  {t.name}.*  {t.path}  ({t.window.describe()})")
    return "\n".join(lines)


def _history_file() -> Path:
    from rrtool._host import cache_dir

    base = cache_dir()
    return base / "sql_history"


def interactive(con: duckdb.DuckDBPyConnection, traces: Sequence[Trace], console: Console, max_rows: int) -> None:
    """A prompt with history: a statement runs at `;` or at an empty line; `.tables`, `.quit`."""
    try:
        import readline
    except ImportError:  # pragma: no cover - not on Linux
        readline = None  # type: ignore[assignment]
    history = _history_file()
    if readline is not None:
        with contextlib.suppress(OSError):
            history.parent.mkdir(parents=True, exist_ok=True)
            if history.exists():
                readline.read_history_file(history)
    console.print(f"[dim]{describe_tables(con, traces)}\nend a statement with ; or an empty line; .quit to leave[/]")
    buffer: list[str] = []
    try:
        while True:
            try:
                line = input("rrtool> " if not buffer else "   ...> ")
            except EOFError:
                console.print()
                break
            except KeyboardInterrupt:
                console.print()
                buffer.clear()
                continue
            stripped = line.strip()
            if not buffer and stripped.startswith("."):
                if stripped in (".quit", ".exit", ".q"):
                    break
                if stripped == ".tables":
                    console.print(describe_tables(con, traces), markup=False)
                else:
                    console.print("commands: .tables, .quit; anything else is SQL", markup=False)
                continue
            if stripped:
                buffer.append(line)
            if not buffer or (stripped and not stripped.endswith(";")):
                continue
            query = "\n".join(buffer)
            buffer.clear()
            try:
                rel = run(con, query)
                if rel is not None:
                    print_table(rel, console, max_rows)
            except AnalysisError as exc:
                console.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False, soft_wrap=True)
    finally:
        if readline is not None:
            with contextlib.suppress(OSError):
                readline.write_history_file(history)


def split_args(args: Sequence[str]) -> tuple[list[Path], str | None]:
    """`TRACE... [QUERY]`: the last argument is the query unless it names a file or ends in `.arrow`."""
    if not args:
        raise AnalysisError("give at least one trace file")
    last = args[-1]
    if len(args) > 1 and not Path(last).is_file() and not last.endswith(".arrow"):
        return [Path(a) for a in args[:-1]], last
    if len(args) == 1 and not Path(last).exists() and not last.endswith(".arrow") and " " in last:
        raise AnalysisError("give at least one trace file before the query")
    return [Path(a) for a in args], None


def output_result(
    rel: duckdb.DuckDBPyRelation | None,
    *,
    console: Console,
    out: IO[str],
    csv: bool = False,
    as_json: bool = False,
    parquet: Path | None = None,
    max_rows: int = 100,
) -> None:
    """Print or write a query's result in the chosen format."""
    if rel is None:
        return
    if parquet is not None:
        write_parquet(rel, parquet)
    elif csv:
        write_csv(rel, out)
    elif as_json:
        write_json(rel, out)
    else:
        print_table(rel, console, max_rows)


def sql_main(
    args: Sequence[str],
    *,
    names: Sequence[str] = (),
    checkpoints: str | None = None,
    icounts: str | None = None,
    query: str | None = None,
    stdin: IO[str] | None = None,
    console: Console,
    out: IO[str],
    csv: bool = False,
    as_json: bool = False,
    parquet: Path | None = None,
    max_rows: int = 100,
) -> None:
    """Everything `rrtool sql` does; raises `AnalysisError`/`TraceError` for bad input."""
    if sum((csv, as_json, parquet is not None)) > 1:
        raise AnalysisError("choose one of --csv, --json and --parquet")
    paths, positional = split_args(args)
    query = query if query is not None else positional
    traces = open_traces(paths, names, checkpoints, icounts)
    con = connect(traces)
    if query is None and stdin is not None and not stdin.isatty():
        query = stdin.read()
    if query is None:
        interactive(con, traces, console, max_rows)
        return
    if not query.strip():
        raise AnalysisError("empty query")
    output_result(
        run(con, query), console=console, out=out, csv=csv, as_json=as_json, parquet=parquet, max_rows=max_rows
    )
