"""The SQL views of a trace in DuckDB: `events` with derived columns and one view per kind.

Every trace gets a DuckDB schema of its own (`a.events`, `b.packets`, ...)
over its Arrow data, registered without copying: a whole complete trace as a
`pyarrow.dataset` that DuckDB scans lazily, a checkpoint or icount window as
the in-memory table of just the batches that overlap it. The unqualified
views (`events`, `packets`, ...) put all traces together with a `trace`
column naming each row's trace. `rrtool.analysis.frames` defines the same
per-kind frames in Polars; a test checks that both agree.
"""

from __future__ import annotations

import contextlib
from typing import Any

import duckdb

from rrtool.analysis.frames import HEX_PREVIEW_BYTES

#: The views every trace gets, in the order `.tables` lists them.
VIEW_NAMES = ("events", "packets", "block_ops", "clock", "checkpoints", "interrupts", "console")

_T = "seq, checkpoint, icount, vclock_ns, vclock_s"


def _mac(col: str, first: int) -> str:
    return rf"rtrim(regexp_replace(lower(hex({col}[{first}:{first + 5}])), '(..)', '\1:', 'g'), ':')"


def _view_sql(s: str, raw: str) -> dict[str, str]:
    """The SELECT of each view of schema `s` whose raw Arrow data is registered as `raw`."""
    ev = f"{s}.events"
    cps = f"(SELECT checkpoint, host_ns FROM {ev} WHERE kind = 'checkpoint')"
    return {
        "events": f"""
            SELECT *, vclock_ns / 1e9 AS vclock_s, octet_length(data) AS data_len,
                   lower(hex(data[1:{HEX_PREVIEW_BYTES}])) AS data_hex
            FROM {raw}""",
        "packets": f"""
            SELECT {_T}, kind, device, card,
                   CASE kind WHEN 'net_rx' THEN 'rx' WHEN 'net_tx' THEN 'tx' ELSE 'drop' END AS direction,
                   length, flags, status, {_mac("data", 1)} AS eth_dst, {_mac("data", 7)} AS eth_src,
                   CASE WHEN octet_length(data) >= 14 THEN ('0x' || hex(data[13:14]))::INTEGER END AS ethertype,
                   data_len, data_hex, data
            FROM {ev} WHERE kind IN ('net_rx', 'net_tx', 'net_drop') ORDER BY seq""",
        "block_ops": f"""
            WITH sub AS (
                SELECT device, req_id, op, sector, sectors, length, data_digest,
                       seq AS submit_seq, checkpoint AS submit_checkpoint, icount AS submit_icount,
                       vclock_ns AS submit_vclock_ns,
                       lead(seq) OVER (PARTITION BY device, req_id ORDER BY seq) AS next_submit
                FROM {ev} WHERE kind = 'blk_submit'),
            com AS (
                SELECT device AS c_device, req_id AS c_req_id, seq AS complete_seq,
                       checkpoint AS complete_checkpoint, icount AS complete_icount,
                       vclock_ns AS complete_vclock_ns, status, "order", flags AS generation, data_len
                FROM {ev} WHERE kind = 'blk_complete'),
            j AS (
                SELECT *, complete_seq IS NOT NULL AND (next_submit IS NULL OR complete_seq < next_submit) AS ok
                FROM sub ASOF LEFT JOIN com
                  ON sub.device = com.c_device AND sub.req_id = com.c_req_id AND com.complete_seq >= sub.submit_seq)
            SELECT device, req_id, op, sector, sectors, length, data_digest,
                   submit_seq, submit_checkpoint, submit_icount, submit_vclock_ns,
                   CASE WHEN ok THEN complete_seq END AS complete_seq,
                   CASE WHEN ok THEN complete_checkpoint END AS complete_checkpoint,
                   CASE WHEN ok THEN complete_icount END AS complete_icount,
                   CASE WHEN ok THEN complete_vclock_ns END AS complete_vclock_ns,
                   CASE WHEN ok THEN complete_vclock_ns - submit_vclock_ns END AS latency_ns,
                   CASE WHEN ok THEN complete_icount - submit_icount END AS latency_insns,
                   CASE WHEN ok THEN status END AS status,
                   CASE WHEN ok THEN "order" END AS "order",
                   CASE WHEN ok THEN generation END AS generation,
                   CASE WHEN ok THEN data_len END AS data_len,
                   ok AS completed
            FROM j ORDER BY submit_seq""",
        "clock": f"""
            SELECT w.seq, w.checkpoint, w.icount, w.vclock_ns, w.vclock_s, w.warp_ns,
                   w.vclock_ns + w.warp_ns AS end_vclock_ns, e.host_ns - st.host_ns AS host_wait_ns
            FROM {ev} w
            LEFT JOIN {cps} st ON st.checkpoint = w.checkpoint
            LEFT JOIN {cps} e ON e.checkpoint = w.checkpoint + 1
            WHERE w.kind = 'clock_warp' ORDER BY w.seq""",
        "checkpoints": f"""
            SELECT c.seq, c.checkpoint, c.icount, c.vclock_ns, c.vclock_s, c.cp_kind, c.pc,
                   c.reg_digest, c.dev_digest, c.mem_digest, c.host_ns, c.value AS exit_code, c.text,
                   c.icount - lag(c.icount) OVER (ORDER BY c.seq) AS insns, n.events
            FROM {ev} c
            LEFT JOIN (SELECT checkpoint, count(*) AS events FROM {ev} GROUP BY checkpoint) n
              ON n.checkpoint = c.checkpoint
            WHERE c.kind = 'checkpoint' ORDER BY c.seq""",
        "interrupts": f"""
            SELECT {_T}, device, pc, value AS mask FROM {ev} WHERE kind = 'irq' ORDER BY seq""",
        "console": f"""
            SELECT {_T}, CASE kind WHEN 'console_in' THEN 'in' ELSE 'out' END AS direction, data_len,
                   rr_utf8(data) AS text, data
            FROM {ev} WHERE kind IN ('console_in', 'console_out') ORDER BY seq""",
    }


def _utf8(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8", "replace")


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def install_functions(con: duckdb.DuckDBPyConnection) -> None:
    """What the views need of a connection: the `rr_utf8(blob)` function (UTF-8, bad bytes as U+FFFD), a setting."""
    # DuckDB (1.3 and later) runs an ASOF join whose left side it estimates at under 64 rows as a nested loop
    # join plus an aggregate. An Arrow scan has no statistics, so block_ops' submissions are estimated at one
    # row and the join becomes quadratic in the requests per tag: 31 s instead of 0.7 s for 100k requests.
    with contextlib.suppress(duckdb.CatalogException):  # older DuckDB: no such setting, and no such rewrite
        con.execute("SET asof_loop_join_threshold = 0")
    # Strings rather than duckdb's enums: they work across duckdb versions (the 2.x stubs only list the enums).
    con.create_function(  # type: ignore[call-overload]
        "rr_utf8", _utf8, ["BLOB"], "VARCHAR", null_handling="special", side_effects=False
    )


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
