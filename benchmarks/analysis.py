"""How fast is analysis on a large trace, and does a range query really read only its part of the file?

Builds a synthetic trace of 10 million events (1 million checkpoints of 10
events each: irq, rng, rtc, console, clock warp, a received and a sent
frame, a block request and its completion) with the real `TraceWriter`, and
a second one identical but for one received frame near the end. Measures:

  - an SQL group-by over all events (DuckDB over the Arrow file): time, rows/s,
    and the same as the first query of a trace, which pays for checking every
    batch before DuckDB scans the file (`rrtool.schemas.validate`);
  - a query restricted to 100 checkpoints (`open_trace(..., checkpoints=...)`,
    i.e. `rrtool sql --checkpoints`) against the same query as a filter over a
    full scan, and the fraction of the file's bytes the restricted one read;
  - `diff` of the two traces in a subprocess: time and peak RSS;
  - every view (one definition in `rrtool.analysis.viewspec`, rendered for
    both engines) computed in full: DuckDB into a temporary table, Polars
    with `.collect()`, one run each.

Targets: the range query reads under 5% of the file; the diff takes under
10 s and under 2 GiB peak RSS (on the 2-core machine the project targets).

Building the traces: appending 10M `Event` objects through `TraceWriter.append`
takes minutes in Python, so the columns are built with Polars and each batch
goes through the writer's own Arrow IPC writer (`TraceWriter._writer`) with
the same per-batch metadata `TraceWriter._flush_rows` writes; the file header,
schema, compression and footer are the real writer's.

Run: ``python benchmarks/analysis.py [--events N] [--repeats N] [--markdown] [--check] [--no-views]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl
import pyarrow as pa
from _common import environment_line, make_console, median, table_box, verdict
from polars.expr.whenthen import ChainedThen, Then
from rich.table import Table

from rrtool.schemas import events as ev
from rrtool.schemas.writer import TraceWriter

EVENTS_PER_CHECKPOINT = 10
ROWS_PER_BATCH = 65_530  # whole checkpoints, close to the writer's MAX_BUFFERED_ROWS
RANGE_CHECKPOINTS = 100
TARGET_RANGE_FRACTION = 0.05
TARGET_DIFF_S = 10.0
TARGET_DIFF_RSS = 2 << 30

#: Kind of the j-th event of every checkpoint.
PATTERN = (
    ev.KIND_CHECKPOINT, ev.KIND_IRQ, ev.KIND_RNG_READ, ev.KIND_RTC_READ, ev.KIND_CONSOLE_OUT, ev.KIND_NET_RX,
    ev.KIND_NET_TX, ev.KIND_BLK_SUBMIT, ev.KIND_BLK_COMPLETE, ev.KIND_CLOCK_WARP,
)  # fmt: skip
DEVICE_OF = {
    ev.KIND_CHECKPOINT: "machine", ev.KIND_IRQ: "intc", ev.KIND_RNG_READ: "rng", ev.KIND_RTC_READ: "rtc",
    ev.KIND_CONSOLE_OUT: "console", ev.KIND_NET_RX: "net0", ev.KIND_NET_TX: "net1", ev.KIND_BLK_SUBMIT: "block",
    ev.KIND_BLK_COMPLETE: "block", ev.KIND_CLOCK_WARP: "clock",
}  # fmt: skip


def _codes(column: str, values: list[str]) -> pl.Expr:
    """The dictionary index of each pattern position's value (null where the kind has none)."""
    names = ev.DICTIONARIES[column]
    j = pl.col("j")
    expr: pl.Expr = pl.lit(None, dtype=pl.Int8)
    for pos, value in enumerate(values):
        if value:
            expr = pl.when(j == pos).then(pl.lit(names.index(value), dtype=pl.Int8)).otherwise(expr)
    return expr


def _pick(values: dict[str, pl.Expr]) -> pl.Expr:
    """Per pattern position: the value for that kind, null for the others."""
    items = list(values.items())
    kind, value = items[0]
    chain: Then | ChainedThen = pl.when(pl.col("j") == PATTERN.index(kind)).then(value)
    for kind, value in items[1:]:
        chain = chain.when(pl.col("j") == PATTERN.index(kind)).then(value)
    return chain.otherwise(None)


def build_batch(first_row: int, rows: int, changed_row: int | None) -> pa.RecordBatch:
    """Rows [first_row, first_row + rows) of the synthetic trace as a batch of the events schema."""
    r = pl.int_range(first_row, first_row + rows, dtype=pl.Int64, eager=True).alias("seq")
    df = pl.DataFrame(r).with_columns((pl.col("seq") // EVENTS_PER_CHECKPOINT).alias("checkpoint"),
                                      (pl.col("seq") % EVENTS_PER_CHECKPOINT).alias("j"))  # fmt: skip
    cp, j = pl.col("checkpoint"), pl.col("j")
    frame_bytes = pl.concat_str(
        pl.lit("RT\x00\x124V\x02\x00\x00\x00\xaa\x01\x08\x00"), pl.col("seq").cast(pl.String).str.zfill(12),
        pl.lit("payload-payload-payload-payload-payload-x"),
    ).cast(pl.Binary)  # fmt: skip
    if changed_row is not None:
        frame_bytes = (
            pl.when(pl.col("seq") == changed_row)
            .then(frame_bytes.bin.slice(0, 60) + pl.lit(b"diff"))
            .otherwise(frame_bytes)
        )
    icount = cp * 1000 + j * 50
    i8, i16, i32, u64 = pl.Int8, pl.Int16, pl.Int32, pl.UInt64
    blk = (ev.KIND_BLK_SUBMIT, ev.KIND_BLK_COMPLETE)
    net = (ev.KIND_NET_RX, ev.KIND_NET_TX)
    df = df.with_columns(
        icount.alias("icount"),
        (icount + cp * 20_000).alias("vclock_ns"),
        _codes("kind", list(PATTERN)).alias("kind"),
        _codes("device", [DEVICE_OF[k] for k in PATTERN]).alias("device"),
        pl.when(pl.col("seq") == 0)
        .then(pl.lit(ev.CHECKPOINT_KINDS.index(ev.CP_INIT), dtype=i8))
        .otherwise(_codes("cp_kind", [ev.CP_PERIODIC] + [""] * 9))
        .alias("cp_kind"),
        _pick({ev.KIND_CHECKPOINT: (cp * 48271 % 2_147_483_647).cast(u64) * 0x9E3779B1,
               ev.KIND_IRQ: pl.lit(0x100400, dtype=u64)}).alias("pc"),
        _pick({ev.KIND_CHECKPOINT: (cp * 69621 % 2_147_483_647).cast(u64)}).alias("reg_digest"),
        _pick({ev.KIND_CHECKPOINT: (cp * 16807 % 2_147_483_647).cast(u64)}).alias("dev_digest"),
        pl.lit(None, dtype=u64).alias("mem_digest"),
        _pick({ev.KIND_CLOCK_WARP: pl.lit(20_000, dtype=pl.Int64)}).alias("warp_ns"),
        _pick({ev.KIND_RNG_READ: (cp * 2654435761 % 4294967296).cast(u64),
               ev.KIND_RTC_READ: (cp * 1_000_000 + 1_700_000_000_000_000_000).cast(u64),
               ev.KIND_IRQ: pl.lit(1, dtype=u64)}).alias("value"),
        _pick({ev.KIND_CONSOLE_OUT: pl.format("tick {}\n", cp).cast(pl.Binary), ev.KIND_NET_RX: frame_bytes,
               ev.KIND_NET_TX: frame_bytes, ev.KIND_BLK_COMPLETE: pl.lit(b"\x00" * 64)}).alias("data"),
        _pick(dict.fromkeys(blk, cp % 32)).alias("req_id"),
        _pick(dict.fromkeys(blk, pl.lit(0, dtype=i8))).alias("op"),
        _pick(dict.fromkeys(blk, cp * 8)).alias("sector"),
        _pick(dict.fromkeys(blk, pl.lit(8, dtype=i32))).alias("sectors"),
        _pick({ev.KIND_BLK_COMPLETE: pl.lit(0, dtype=i32)}).alias("status"),
        _pick({ev.KIND_BLK_COMPLETE: cp}).alias("order"),
        pl.lit(None, dtype=u64).alias("data_digest"),
        _pick({**dict.fromkeys(net, pl.lit(68, dtype=i32)), **dict.fromkeys(blk, pl.lit(4096, dtype=i32))})
        .alias("length"),
        _pick({ev.KIND_NET_RX: pl.lit(0, dtype=i16), ev.KIND_NET_TX: pl.lit(1, dtype=i16)}).alias("card"),
        _pick(dict.fromkeys((*net, ev.KIND_BLK_COMPLETE), pl.lit(0, dtype=i32))).alias("flags"),
        pl.lit(None, dtype=pl.String).alias("text"),
        _pick({ev.KIND_CHECKPOINT: cp * 3_000}).alias("host_ns"),
    )  # fmt: skip
    table = df.drop("j").to_arrow()
    arrays = []
    for column in ev.COLUMNS:
        arr = table.column(column.name).combine_chunks()
        if column.name in ev.DICTIONARIES:
            dictionary = pa.array(ev.DICTIONARIES[column.name], type=pa.string())
            arr = pa.DictionaryArray.from_arrays(arr.cast(pa.int8()), dictionary)
        else:
            arr = arr.cast(column.type)
        arrays.append(arr)
    return pa.RecordBatch.from_arrays(arrays, schema=ev.EVENTS_SCHEMA)


def write_synthetic(path: Path, events: int, changed_row: int | None = None) -> None:
    """Write the synthetic trace through TraceWriter's Arrow writer, one batch of whole checkpoints at a time."""
    meta = {
        ev.META_TOOL_VERSION: "benchmark", ev.META_MACHINE: json.dumps({"ns_per_insn": 1}),
        ev.META_IMAGE_PATH: "synthetic", ev.META_IMAGE_SHA256: "0" * 64,
        ev.META_START_TIME: "2026-01-01T00:00:00+00:00", ev.META_HOST: "benchmark",
    }  # fmt: skip
    writer = TraceWriter(path, meta)
    for first in range(0, events, ROWS_PER_BATCH):
        rows = min(ROWS_PER_BATCH, events - first)
        batch = build_batch(first, rows, changed_row)
        icounts = batch.column("icount")
        checkpoints = batch.column("checkpoint")
        custom = {
            ev.BATCH_FIRST_CHECKPOINT: str(checkpoints[0].as_py()),
            ev.BATCH_LAST_CHECKPOINT: str(checkpoints[-1].as_py()),
            ev.BATCH_FIRST_ICOUNT: str(icounts[0].as_py()),
            ev.BATCH_LAST_ICOUNT: str(icounts[-1].as_py()),
        }
        writer._writer.write_batch(batch.replace_schema_metadata(writer._schema.metadata), custom_metadata=custom)
        writer.batches += 1
    writer.close()


_DIFF_CHILD = """
import json, resource, sys, time
from rrtool.analysis.diff import diff_traces
t = time.perf_counter()
result = diff_traces(sys.argv[1], sys.argv[2])
wall = time.perf_counter() - t
first = result.first
print(json.dumps({"wall_s": wall, "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "equivalent": result.equivalent, "totals": result.totals().to_dict(),
                  "first": None if first is None else [first.kind, first.checkpoint, first.icount, first.fields]}))
"""


def run_diff(a: Path, b: Path) -> dict[str, object]:
    proc = subprocess.run([sys.executable, "-c", _DIFF_CHILD, str(a), str(b)], capture_output=True, text=True,
                          check=True)  # fmt: skip
    result: dict[str, object] = json.loads(proc.stdout)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000, help="events per trace (default 10M)")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per figure; the median is shown")
    parser.add_argument("--markdown", action="store_true", help="draw the tables as Markdown")
    parser.add_argument("--check", action="store_true", help="exit with status 1 when a target is missed")
    parser.add_argument("--workdir", type=Path, default=None, help="where to write the traces (default: a temp dir)")
    parser.add_argument("--no-views", action="store_true", help="skip timing every view in both engines")
    args = parser.parse_args(argv)
    console = make_console(args.markdown)
    console.print(environment_line())

    import rrtool

    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        a, b = Path(tmp) / "a.arrow", Path(tmp) / "b.arrow"
        n = args.events - args.events % EVENTS_PER_CHECKPOINT
        changed = (n // EVENTS_PER_CHECKPOINT - 5000) * EVENTS_PER_CHECKPOINT + PATTERN.index(ev.KIND_NET_RX)
        t0 = time.perf_counter()
        write_synthetic(a, n)
        build_s = time.perf_counter() - t0
        write_synthetic(b, n, changed_row=changed)
        size = a.stat().st_size
        console.print(f"built 2 traces of {n:,} events ({size / 2**20:,.1f} MiB each) in {build_s:.1f}s per trace")

        trace = rrtool.open_trace(a)
        group_by = "select kind, count(*) as n, sum(data_len) as bytes from events group by kind"
        lo = n // EVENTS_PER_CHECKPOINT // 2
        hi = lo + RANGE_CHECKPOINTS - 1
        range_q = "select kind, count(*) as n, sum(data_len) as bytes from events group by kind"
        full_q = f"select kind, count(*) as n, sum(data_len) as bytes from events where checkpoint between {lo} and {hi} group by kind"  # noqa: E501

        def sql_full() -> float:
            t = time.perf_counter()
            trace.sql(group_by).fetchall()
            return time.perf_counter() - t

        def sql_filter_scan() -> float:
            t = time.perf_counter()
            trace.sql(full_q).fetchall()
            return time.perf_counter() - t

        fraction = 0.0
        view_rows: dict[str, int] = {}
        ranged_rows: list[tuple[object, ...]] = []

        def sql_range() -> float:
            nonlocal fraction, ranged_rows
            t = time.perf_counter()
            window = rrtool.open_trace(a, checkpoints=(lo, hi))
            ranged_rows = window.sql(range_q).fetchall()
            elapsed = time.perf_counter() - t
            fraction = (window.bytes_read or 0) / size
            return elapsed

        def first_query() -> float:
            """Open and query a trace never checked before: the full check (`TraceFile.verify`) included."""
            os.environ["RRTOOL_VERIFY_CACHE"] = "0"
            try:
                t = time.perf_counter()
                with rrtool.open_trace(a) as fresh:
                    fresh.sql(group_by).fetchall()
                return time.perf_counter() - t
            finally:
                del os.environ["RRTOOL_VERIFY_CACHE"]

        first_s = median([first_query() for _ in range(args.repeats)])
        sql_full()  # the check, once: later queries of the unchanged file skip it
        full_s = median([sql_full() for _ in range(args.repeats)])
        scan_s = median([sql_filter_scan() for _ in range(args.repeats)])
        range_s = median([sql_range() for _ in range(args.repeats)])
        same = sorted(map(tuple, ranged_rows)) == sorted(map(tuple, trace.sql(full_q).fetchall()))

        diffs = [run_diff(a, b) for _ in range(args.repeats)]
        diff_s = median([float(d["wall_s"]) for d in diffs])  # type: ignore[arg-type]
        rss = max(int(d["maxrss"]) for d in diffs)  # type: ignore[call-overload]
        found = diffs[0]["first"]

        # After the diffs: ru_maxrss survives fork and exec, so a parent grown by computing the views would
        # show up as the diff child's peak RSS.
        view_s: dict[str, tuple[float, float]] = {}
        if not args.no_views:
            from rrtool.analysis.views import VIEW_NAMES

            for view in VIEW_NAMES:
                t = time.perf_counter()
                trace.sql(f"create or replace temp table _bench as select * from {view}")
                duck = time.perf_counter() - t
                t = time.perf_counter()
                rows = getattr(trace, view).collect().height
                view_s[view] = (duck, time.perf_counter() - t)
                view_rows[view] = rows
            trace.sql("drop table _bench")
        trace.close()

    table = Table(title=f"analysis of a {n:,}-event trace", box=table_box(args.markdown))
    for col in ("measure", "value", "target", ""):
        table.add_column(col, justify="left" if col in ("measure", "") else "right")
    ok_range = fraction < TARGET_RANGE_FRACTION and same
    ok_diff_t = diff_s < TARGET_DIFF_S
    ok_diff_m = rss < TARGET_DIFF_RSS
    table.add_row("SQL group-by, first query of the trace (full check)", f"{first_s:.2f} s", "", "")
    table.add_row("SQL group-by over all events", f"{full_s:.2f} s ({n / full_s / 1e6:.1f}M rows/s)", "", "")
    table.add_row(f"{RANGE_CHECKPOINTS} checkpoints: filter over a full scan", f"{scan_s:.3f} s", "", "")
    table.add_row(f"{RANGE_CHECKPOINTS} checkpoints: --checkpoints {lo}:{hi}", f"{range_s:.3f} s "
                  f"({scan_s / range_s:.0f}x faster, same rows: {same})", "", "")  # fmt: skip
    table.add_row("  fraction of the file read", f"{fraction:.2%}", f"< {TARGET_RANGE_FRACTION:.0%}", verdict(ok_range))
    table.add_row("diff 10M vs 10M, one frame differs near the end", f"{diff_s:.2f} s", f"< {TARGET_DIFF_S:.0f} s",
                  verdict(ok_diff_t))  # fmt: skip
    table.add_row("  peak RSS of the diff", f"{rss / 2**20:,.0f} MiB", f"< {TARGET_DIFF_RSS / 2**30:.0f} GiB",
                  verdict(ok_diff_m))  # fmt: skip
    table.add_row("  first divergence found", str(found), "net_rx, data", "")
    console.print(table)
    if view_s:
        views = Table(title="every row of each view (one run each)", box=table_box(args.markdown))
        for col in ("view", "rows", "DuckDB", "Polars"):
            views.add_column(col, justify="left" if col == "view" else "right")
        for view, (duck, polars_s) in view_s.items():
            views.add_row(view, f"{view_rows[view]:,}", f"{duck:.2f} s", f"{polars_s:.2f} s")
        console.print(views)
    met = ok_range and ok_diff_t and ok_diff_m
    return 1 if args.check and not met else 0


if __name__ == "__main__":
    os.environ.setdefault("POLARS_MAX_THREADS", str(os.cpu_count() or 2))
    sys.exit(main())
