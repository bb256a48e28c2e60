"""The SQL views of a corpus in DuckDB: `events` with derived columns and one view per kind.

The rows of every trace are one relation with a `trace` column (a
`pyarrow.dataset` over the files, scanned lazily, or an exported Parquet
dataset; see `rrtool.analysis.corpus`), and the unqualified views
(`events`, `packets`, ...) hold them all, keyed by `trace`. A corpus of a few
traces also gets a DuckDB schema per trace (`a.events`, `b.packets`, ...).
The views' SQL is rendered from the definitions in
`rrtool.analysis.viewspec`, which `rrtool.analysis.frames` renders as
Polars frames too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import duckdb

from rrtool.analysis.viewspec import VIEWS, events_sql, quote, sql_literal, view_sql

#: The views every trace gets, in the order `.tables` lists them.
VIEW_NAMES = ("events", *VIEWS)


def install_functions(con: duckdb.DuckDBPyConnection) -> None:
    """What the views need of a connection. No Python function: those would make DuckDB import numpy."""
    # DuckDB (1.3 and later) runs an ASOF join whose left side it estimates at under 64 rows as a nested loop
    # join plus an aggregate. An Arrow scan has no statistics, so block_ops' submissions are estimated at one
    # row and the join becomes quadratic in the requests per tag: 31 s instead of 0.7 s for 100k requests.
    with contextlib.suppress(duckdb.CatalogException):  # older DuckDB: no such setting, and no such rewrite
        con.execute("SET asof_loop_join_threshold = 0")


def add_corpus_views(con: duckdb.DuckDBPyConnection, raw: str, per_trace: Sequence[str], key: str = "trace") -> None:
    """The views over the rows registered as `raw` (every trace's, with a `key` column naming each row's trace).

    `events` and every per-kind view hold all traces, `key` first; joins and
    look-backs stay within a trace. Each name in `per_trace` also gets a
    schema of the same views restricted to that trace, without the key
    (`a.events`), which DuckDB answers by pushing `key = 'a'` down to the scan.
    """
    keys = (key,)
    con.execute(f"CREATE VIEW main.events AS {events_sql(quote(raw), keys)}")
    for name, view in VIEWS.items():
        con.execute(f"CREATE VIEW main.{name} AS {view_sql(view, 'main.events', keys)}")
    for schema in per_trace:
        con.execute(f"CREATE SCHEMA {quote(schema)}")
        for name in VIEW_NAMES:
            select = f"SELECT * EXCLUDE ({quote(key)}) FROM main.{name} WHERE {quote(key)} = {sql_literal(schema)}"
            con.execute(f"CREATE VIEW {quote(schema)}.{name} AS {select}")
