"""The SQL views of a trace in DuckDB: `events` with derived columns and one view per kind.

Every trace gets a DuckDB schema of its own (`a.events`, `b.packets`, ...)
over its Arrow data, registered without copying: a whole complete trace as a
`pyarrow.dataset` that DuckDB scans lazily, a checkpoint or icount window as
the in-memory table of just the batches that overlap it. The unqualified
views (`events`, `packets`, ...) put all traces together with a `trace`
column naming each row's trace. The views' SQL is rendered from the
definitions in `rrtool.analysis.viewspec`, which `rrtool.analysis.frames`
renders as Polars frames too.
"""

from __future__ import annotations

import contextlib
from typing import Any

import duckdb

from rrtool.analysis.viewspec import VIEWS, events_sql, quote, view_sql

#: The views every trace gets, in the order `.tables` lists them.
VIEW_NAMES = ("events", *VIEWS)


def _view_sql(s: str, raw: str) -> dict[str, str]:
    """The SELECT of each view of schema `s` whose raw Arrow data is registered as `raw`."""
    return {"events": events_sql(raw), **{name: view_sql(v, f"{s}.events") for name, v in VIEWS.items()}}


def install_functions(con: duckdb.DuckDBPyConnection) -> None:
    """What the views need of a connection. No Python function: those would make DuckDB import numpy."""
    # DuckDB (1.3 and later) runs an ASOF join whose left side it estimates at under 64 rows as a nested loop
    # join plus an aggregate. An Arrow scan has no statistics, so block_ops' submissions are estimated at one
    # row and the join becomes quadratic in the requests per tag: 31 s instead of 0.7 s for 100k requests.
    with contextlib.suppress(duckdb.CatalogException):  # older DuckDB: no such setting, and no such rewrite
        con.execute("SET asof_loop_join_threshold = 0")


def add_trace(con: duckdb.DuckDBPyConnection, schema: str, source: Any) -> None:
    """Register one trace's Arrow data and create its schema of views."""
    raw = f"_rrtool_raw_{schema}"
    con.register(raw, source)
    con.execute(f"CREATE SCHEMA {quote(schema)}")
    for name, select in _view_sql(quote(schema), quote(raw)).items():
        con.execute(f"CREATE VIEW {quote(schema)}.{name} AS {select}")


def add_union_views(con: duckdb.DuckDBPyConnection, schemas: list[str]) -> None:
    """The unqualified views: every trace's rows together, with a `trace` column first."""
    for name in VIEW_NAMES:
        parts = [f"SELECT '{s}' AS trace, * FROM {quote(s)}.{name}" for s in schemas]
        con.execute(f"CREATE VIEW main.{name} AS " + " UNION ALL BY NAME ".join(parts))
