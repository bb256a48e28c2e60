"""SQL over traces: DuckDB over one or more traces, through Arrow, with the views of `views.py`.

`open_session` opens the traces as a corpus (`rrtool.analysis.corpus`) and
connects DuckDB to it; `SqlSession.run` runs a query and returns a DuckDB relation. Results stream out of DuckDB in
Arrow batches (`reader`, `row_chunks`), so the CSV and JSON text
(`csv_chunks`, `json_chunks`) and `write_parquet` handle results larger than
memory. Nothing here prints or reads stdin: `rrtool sql` (`rrtool/cli/sql.py`)
renders and prompts. SQL errors become one line (`AnalysisError`).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from rrtool._paths import atomic_output
from rrtool.analysis.corpus import Corpus
from rrtool.analysis.errors import AnalysisError
from rrtool.analysis.progress import Progress
from rrtool.analysis.sources import Sources
from rrtool.analysis.window import Span, Window

_BATCH_ROWS = 65536


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


@dataclass
class SqlSession:
    """A corpus (one trace or many) and its DuckDB connection."""

    corpus: Corpus

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        return self.corpus.duckdb()

    def run(self, query: str) -> duckdb.DuckDBPyRelation | None:
        """Run a query; None for a statement without a result. SQL errors raise `AnalysisError`."""
        return run(self.con, query)

    def describe(self) -> str:
        return self.corpus.describe()


def open_session(
    sources: Sequence[str | Path] | Sources,
    names: Sequence[str] = (),
    checkpoints: str | None = None,
    icounts: str | None = None,
) -> SqlSession:
    """Open trace files, globs and directories (or an exported dataset) as a corpus, and connect DuckDB to it."""
    cp = Span.parse(checkpoints, "checkpoint range") if checkpoints is not None else None
    ic = Span.parse(icounts, "icount range") if icounts is not None else None
    corpus = Corpus(sources, names=names, window=Window(cp, ic))
    session = SqlSession(corpus)
    session.con  # noqa: B018 - connect now, so that a bad corpus fails before any prompt
    return session


def reader(rel: duckdb.DuckDBPyRelation) -> pa.RecordBatchReader:
    """The result as a stream of Arrow record batches."""
    try:
        make = getattr(rel, "to_arrow_reader", None) or rel.fetch_record_batch
        batches: pa.RecordBatchReader = make(_BATCH_ROWS)
    except duckdb.Error as exc:
        raise AnalysisError(f"SQL: {error_line(exc)}") from None
    return batches


def row_chunks(rel: duckdb.DuckDBPyRelation) -> Iterator[list[tuple[Any, ...]]]:
    """The result in chunks of rows. Plain tuples, not frames: a query may repeat a column name."""
    batches = reader(rel)
    while True:
        try:
            batch = batches.read_next_batch()
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


def csv_chunks(rel: duckdb.DuckDBPyRelation) -> Iterator[str]:
    """The result as CSV text, header first, a piece per chunk of rows; binary as hex, nulls as empty fields."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(rel.columns)
    yield flush()
    for chunk in row_chunks(rel):
        writer.writerows(tuple(v.hex() if isinstance(v, bytes) else v for v in row) for row in chunk)
        yield flush()


def json_chunks(rel: duckdb.DuckDBPyRelation) -> Iterator[str]:
    """The result as the text of a JSON array of objects, a piece per chunk (a repeated name keeps its last value)."""
    rows = 0
    names = rel.columns
    yield "["
    for chunk in row_chunks(rel):
        parts = []
        for row in chunk:
            text = json.dumps(dict(zip(names, row, strict=True)), default=_json_default)
            parts.append(("\n  " if rows == 0 else ",\n  ") + text)
            rows += 1
        yield "".join(parts)
    yield "\n]\n" if rows else "]\n"


def write_parquet(
    rel: duckdb.DuckDBPyRelation,
    path: Path,
    *,
    con: duckdb.DuckDBPyConnection | None = None,
    progress: Progress | None = None,
) -> None:
    """Write the result to a Parquet file (DuckDB's writer, streaming).

    With `con` (the relation's connection) and `progress`, DuckDB's own estimate of how far the query is
    goes to `progress` in per mille, polled from a second thread while this one waits in DuckDB (which
    releases the GIL).
    """
    stop = threading.Event()
    poller = None
    if con is not None and progress is not None:
        con.execute("SET enable_progress_bar = true; SET enable_progress_bar_print = false")

        def poll() -> None:
            while not stop.wait(0.1):
                done = con.query_progress()
                if done >= 0:
                    progress(min(1000, int(done * 10)), 1000)

        poller = threading.Thread(target=poll, name="sql-progress", daemon=True)
        poller.start()
    try:
        # DuckDB writes the file in place as the query runs: a temporary name renamed at the end means a
        # killed or failed query leaves no Parquet file that looks complete (nor a clobbered old one).
        with atomic_output(Path(path)) as tmp:
            rel.write_parquet(str(tmp))
    except duckdb.Error as exc:
        raise AnalysisError(f"SQL: {error_line(exc)}") from None
    finally:
        stop.set()
        if poller is not None:
            poller.join()
    if progress is not None:
        progress(1000, 1000)
