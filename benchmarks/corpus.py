"""How does rrtool handle many traces as one dataset: opening, a corpus-wide group-by, Parquet export, pruning?

Builds a corpus of 1,000 synthetic traces of 10,000 events each (`trace-0000.arrow` ...; the corpus
names them `trace_0000` ...) with the real `TraceWriter`, in a temporary directory with a fresh
cache (`RRTOOL_CACHE`), so no figure depends on an earlier run. Each trace has the event mix of
`analysis.py` (10 events per checkpoint: a checkpoint, irq, rng, rtc, console, a received and a sent
frame, a block request and its completion, a clock warp); the traces differ in their rng values,
one received frame and their start times. Measures:

  1. opening the corpus (`open_corpus(glob)`) the first time, when every file is checked
     whole and summarised, and the second time, when the summaries are remembered by file identity;
  2. `select trace, kind, count(*) from events group by all`, fetched fully, over the .arrow files:
     in-process (`Corpus.sql`, the open excluded) and as a whole `rrtool sql 'DIR/*.arrow' ... --csv`
     process (its stdout to /dev/null), median of the repeats;
  3. `export_parquet` of all traces into a new dataset: events per second;
  4. the same group-by over the Parquet dataset (`open_corpus(DIR)`), in-process and as a whole process;
  5. a single-trace query (`select count(*), max(icount) from events where trace = 'trace_0500'`) on
     both: the bytes the process read during the query (the delta of `rchar` in `/proc/self/io`, the
     corpus already open and another trace queried once before, so no import or first-use read is
     counted) as a fraction of the corpus's bytes; the same with `and checkpoint between 100 and 200`;
     and, with `strace` on `PATH`, the trace files a whole `rrtool sql` process opens for each query
     (`openat` calls that succeed on a `.arrow` or `.parquet` path of the corpus: opening included).

Targets: export at least 1M events/s; the Parquet group-by under 2 s (in-process and as a process);
the single-trace query reads under 1% of the corpus's bytes, on both.

Building the traces: as in `analysis.py` (whose `build_batch` predates the Linux columns of the
events schema; here the columns a kind does not use are filled with nulls from the schema itself),
the columns are built once with Polars; each trace is that batch with its own rng values and frame,
written through the writer's own Arrow IPC writer (`TraceWriter._writer`) with the per-batch metadata
`TraceWriter._flush_rows` writes; the file header, schema, compression and footer are the real writer's.

Run: ``python benchmarks/corpus.py [--traces N] [--events N] [--repeats N] [--markdown] [--check]``.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from _common import environment_line, load_average, make_console, median, show, table_box, verdict
from analysis import DEVICE_OF, EVENTS_PER_CHECKPOINT, PATTERN, ROWS_PER_BATCH, _codes, _pick
from rich.table import Table

from rrtool.analysis.corpus import Corpus, open_corpus
from rrtool.analysis.export.parquet import export_parquet
from rrtool.schemas import events as ev
from rrtool.schemas.writer import TraceWriter

TARGET_EXPORT_EPS = 1_000_000
TARGET_PARQUET_GROUP_BY_S = 2.0
TARGET_SINGLE_FRACTION = 0.01
GROUP_BY = "select trace, kind, count(*) from events group by all"
RANGE = (100, 200)
#: Where trace `seed`'s one changed received frame is (the NET_RX row of checkpoint `seed % checkpoints`).
RX = PATTERN.index(ev.KIND_NET_RX)
RNG = PATTERN.index(ev.KIND_RNG_READ)


def base_columns(events: int) -> pa.Table:
    """The synthetic events of `analysis.py` (rows [0, events)) as a table of the events schema."""
    df = pl.DataFrame(pl.int_range(0, events, dtype=pl.Int64, eager=True).alias("seq"))
    # The last row is the end checkpoint (of a checkpoint of its own), as a recording that ended has.
    last = pl.col("seq") == events - 1
    df = df.with_columns(
        (pl.col("seq") // EVENTS_PER_CHECKPOINT + last.cast(pl.Int64)).alias("checkpoint"),
        pl.when(last).then(0).otherwise(pl.col("seq") % EVENTS_PER_CHECKPOINT).alias("j"),
    )
    cp = pl.col("checkpoint")
    frame_bytes = pl.concat_str(
        pl.lit("RT\x00\x124V\x02\x00\x00\x00\xaa\x01\x08\x00"), pl.col("seq").cast(pl.String).str.zfill(12),
        pl.lit("payload-payload-payload-payload-payload-x"),
    ).cast(pl.Binary)  # fmt: skip
    icount = cp * 1000 + pl.col("j") * 50
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
        .when(last)
        .then(pl.lit(ev.CHECKPOINT_KINDS.index(ev.CP_END), dtype=i8))
        .otherwise(_codes("cp_kind", [ev.CP_PERIODIC] + [""] * 9))
        .alias("cp_kind"),
        _pick({ev.KIND_CHECKPOINT: (cp * 48271 % 2_147_483_647).cast(u64) * 0x9E3779B1,
               ev.KIND_IRQ: pl.lit(0x100400, dtype=u64)}).alias("pc"),
        _pick({ev.KIND_CHECKPOINT: (cp * 69621 % 2_147_483_647).cast(u64)}).alias("reg_digest"),
        _pick({ev.KIND_CHECKPOINT: (cp * 16807 % 2_147_483_647).cast(u64)}).alias("dev_digest"),
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
        _pick({**dict.fromkeys(net, pl.lit(68, dtype=i32)), **dict.fromkeys(blk, pl.lit(4096, dtype=i32))})
        .alias("length"),
        _pick({ev.KIND_NET_RX: pl.lit(0, dtype=i16), ev.KIND_NET_TX: pl.lit(1, dtype=i16)}).alias("card"),
        _pick(dict.fromkeys((*net, ev.KIND_BLK_COMPLETE), pl.lit(0, dtype=i32))).alias("flags"),
        _pick({ev.KIND_CHECKPOINT: cp * 3_000}).alias("host_ns"),
        pl.when(last).then(pl.lit("exit")).otherwise(None).alias("text"),
    )  # fmt: skip
    table = df.drop("j").to_arrow()
    arrays = []
    for column in ev.COLUMNS:
        if column.name not in table.column_names:  # one these kinds leave null (mem_digest, the syscall columns)
            arrays.append(pa.nulls(events, column.type))
            continue
        arr = table.column(column.name).combine_chunks()
        if column.name in ev.DICTIONARIES:
            dictionary = pa.array(ev.DICTIONARIES[column.name], type=pa.string())
            arr = pa.DictionaryArray.from_arrays(arr.cast(pa.int8()), dictionary)
        else:
            arr = arr.cast(column.type)
        arrays.append(arr)
    return pa.Table.from_arrays(arrays, schema=ev.EVENTS_SCHEMA)


def variant(base: pa.Table, seed: int) -> pa.Table:
    """Trace `seed`: the base events with its own rng values and one received frame of its own."""
    j = pc.subtract(base.column("seq"), pc.multiply(base.column("checkpoint"), EVENTS_PER_CHECKPOINT))
    rng = pc.equal(j, RNG)
    mixed = pc.bit_wise_and(pc.add(base.column("value"), pa.scalar(seed * 0x9E3779B9 + 1, pa.uint64())),
                            pa.scalar(0xFFFFFFFF, pa.uint64()))  # fmt: skip
    value = pc.if_else(rng, mixed, base.column("value"))
    checkpoints = base.num_rows // EVENTS_PER_CHECKPOINT
    changed = (seed % max(checkpoints, 1)) * EVENTS_PER_CHECKPOINT + RX
    data = base.column("data")
    if changed < base.num_rows:
        frame = data[changed].as_py()
        assert isinstance(frame, bytes)
        edited = pa.scalar(frame[:60] + seed.to_bytes(4, "little"), pa.large_binary())
        data = pc.if_else(pc.equal(base.column("seq"), changed), edited, data)
    names = base.column_names
    base = base.set_column(names.index("value"), "value", value)
    return base.set_column(names.index("data"), "data", data)


def write_trace(path: Path, events: pa.Table, seed: int) -> None:
    """`events` through TraceWriter's Arrow writer, in batches of whole checkpoints, as `analysis.py` does."""
    start = f"2026-01-01T{seed // 3600 % 24:02d}:{seed // 60 % 60:02d}:{seed % 60:02d}+00:00"
    meta = {
        ev.META_TOOL_VERSION: "benchmark", ev.META_MACHINE: json.dumps({"ns_per_insn": 1}),
        ev.META_IMAGE_PATH: "synthetic", ev.META_IMAGE_SHA256: "0" * 64,
        ev.META_START_TIME: start, ev.META_HOST: "benchmark",
    }  # fmt: skip
    writer = TraceWriter(path, meta)
    for batch in events.to_batches(max_chunksize=ROWS_PER_BATCH):
        icounts, checkpoints = batch.column("icount"), batch.column("checkpoint")
        custom = {
            ev.BATCH_FIRST_CHECKPOINT: str(checkpoints[0].as_py()),
            ev.BATCH_LAST_CHECKPOINT: str(checkpoints[-1].as_py()),
            ev.BATCH_FIRST_ICOUNT: str(icounts[0].as_py()),
            ev.BATCH_LAST_ICOUNT: str(icounts[-1].as_py()),
        }
        writer._writer.write_batch(batch.replace_schema_metadata(writer._schema.metadata), custom_metadata=custom)
        writer.batches += 1
    writer.close()


def build_corpus(directory: Path, traces: int, events: int) -> list[Path]:
    base = base_columns(events)
    # Batches of whole checkpoints, at most ROWS_PER_BATCH rows (a multiple of EVENTS_PER_CHECKPOINT).
    assert ROWS_PER_BATCH % EVENTS_PER_CHECKPOINT == 0
    paths = []
    for seed in range(traces):
        path = directory / f"trace-{seed:04d}.arrow"
        write_trace(path, variant(base, seed), seed)
        paths.append(path)
    return paths


def rchar() -> int:
    """Bytes this process has read with read(2) and its kin so far (page cache hits included)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise RuntimeError("no rchar in /proc/self/io")


def timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def rrtool_sql(source: str, query: str) -> list[str]:
    return [sys.executable, "-m", "rrtool", "sql", source, query, "--csv"]


def process_wall(command: Sequence[str]) -> float:
    """Wall time of a whole process, spawn to exit, its stdout to /dev/null."""
    t = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t


_OPENAT = re.compile(r'open(?:at)?\((?:[^,"]*, )?"([^"]*)"')


def files_opened(command: Sequence[str], under: Path, pattern: str, log: Path) -> tuple[int, int] | None:
    """(distinct files, opens) of the files below `under` matching `pattern` that the process opened (strace).

    Every `open`/`openat` that did not fail, on any thread (`strace -f`; a call another thread interrupted
    is logged `<unfinished ...>` and counted too). None when `strace` is not on PATH.
    """
    strace = shutil.which("strace")
    if strace is None:
        return None
    subprocess.run([strace, "-f", "-qq", "-e", "trace=open,openat", "-o", str(log), *command],
                   stdout=subprocess.DEVNULL, check=True)  # fmt: skip
    roots = {str(under) + os.sep, str(under.resolve()) + os.sep}
    opened: list[str] = []
    for line in log.read_text(errors="replace").splitlines():
        m = _OPENAT.search(line)
        if m is None or "= -1 " in line:
            continue
        path = os.path.abspath(m.group(1))
        if any(path.startswith(root) for root in roots) and fnmatch.fnmatch(os.path.basename(path), pattern):
            opened.append(path)
    log.unlink()
    return len(set(opened)), len(opened)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=1000, help="traces in the corpus (default 1000)")
    parser.add_argument("--events", type=int, default=10_000, help="events per trace (default 10,000)")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per figure; the median is shown")
    parser.add_argument("--markdown", action="store_true", help="draw the tables as Markdown")
    parser.add_argument("--check", action="store_true", help="exit with status 1 when a target is missed")
    parser.add_argument("--workdir", type=Path, default=None, help="where to write the corpus (default: a temp dir)")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.traces < 1 or args.events < EVENTS_PER_CHECKPOINT:
        parser.error(f"--repeats and --traces must be at least 1, --events at least {EVENTS_PER_CHECKPOINT}")
    console = make_console(args.markdown)
    console.print(environment_line())

    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        root = Path(tmp)
        os.environ["RRTOOL_CACHE"] = str(root / "cache")  # a cache of our own: nothing checked or summarised yet
        os.environ.pop("RRTOOL_VERIFY_CACHE", None)
        arrows, dataset = root / "traces", root / "dataset"
        arrows.mkdir()
        n = args.events - args.events % EVENTS_PER_CHECKPOINT
        t0 = time.perf_counter()
        paths = build_corpus(arrows, args.traces, n)
        build_s = time.perf_counter() - t0
        arrow_bytes = sum(p.stat().st_size for p in paths)
        total_events = n * args.traces
        console.print(f"built {args.traces:,} traces of {n:,} events ({arrow_bytes / 2**20:,.1f} MiB in all) "
                      f"in {build_s:.1f} s")  # fmt: skip
        glob = str(arrows / "*.arrow")
        pick = args.traces // 2
        name, other = f"trace_{pick:04d}", f"trace_{(pick + 1) % args.traces:04d}"
        single = f"select count(*), max(icount) from events where trace = '{name}'"
        ranged = single + f" and checkpoint between {RANGE[0]} and {RANGE[1]}"
        warm = f"select count(*), max(icount) from events where trace = '{other}'"

        # 1. open: first (every file checked and summarised), then again (summaries remembered)
        t = time.perf_counter()
        first = open_corpus(glob)
        open_first_s = time.perf_counter() - t
        assert len(first) == args.traces and name in first.names, first.names[:3]
        first.close()
        opens = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            corpus = open_corpus(glob)
            opens.append(time.perf_counter() - t)
            corpus.close()
        open_again_s = median(opens)

        def probe(corpus: Corpus, total: int) -> dict[str, Any]:
            """Group-by repeats, and the bytes the single-trace queries read, on an open corpus."""
            corpus.duckdb()  # connect and create the views: not part of a query
            rows: list[tuple[Any, ...]] = []

            def group_by() -> None:
                nonlocal rows
                rows = corpus.sql(GROUP_BY).fetchall()

            walls = [timed(group_by) for _ in range(args.repeats)]
            corpus.sql(warm).fetchall()  # first use of a single-trace plan: not counted
            found: dict[str, Any] = {"group_by_s": median(walls), "rows": sorted(map(tuple, rows))}
            for key, query in (("single", single), ("ranged", ranged)):
                before = rchar()
                found[key + "_result"] = corpus.sql(query).fetchall()
                found[key + "_bytes"] = rchar() - before
                found[key + "_fraction"] = found[key + "_bytes"] / total
            return found

        # 2. group-by over the .arrow corpus, 5. single-trace bytes
        with open_corpus(glob) as corpus:
            on_arrow = probe(corpus, arrow_bytes)
        arrow_cli_s = median([process_wall(rrtool_sql(glob, GROUP_BY)) for _ in range(args.repeats)])

        # 3. export
        t = time.perf_counter()
        stats = export_parquet(glob, dataset)
        export_s = time.perf_counter() - t
        export_eps = stats.rows / export_s
        dataset_bytes = tree_bytes(dataset)

        # 4. group-by over the dataset, 5. single-trace bytes
        with open_corpus(dataset) as corpus:
            on_parquet = probe(corpus, dataset_bytes)
        parquet_cli_s = median([process_wall(rrtool_sql(str(dataset), GROUP_BY)) for _ in range(args.repeats)])

        opened: dict[tuple[str, str], tuple[int, int] | None] = {}
        log = root / "strace.log"
        sides = (("arrow", glob, arrows, "*.arrow"), ("parquet", str(dataset), dataset / "events", "part-*.parquet"))
        for kind, source, under, pattern in sides:
            for key, query in (("group_by", GROUP_BY), ("single", single), ("ranged", ranged)):
                opened[kind, key] = files_opened(rrtool_sql(source, query), under, pattern, log)
        n_parquet_files = sum(1 for _ in (dataset / "events").rglob("part-*.parquet"))

    same = on_arrow["rows"] == on_parquet["rows"] and len(on_arrow["rows"]) == args.traces * len(PATTERN)
    same_single = (on_arrow["single_result"] == on_parquet["single_result"]
                   and on_arrow["ranged_result"] == on_parquet["ranged_result"])  # fmt: skip
    ok_export = export_eps >= TARGET_EXPORT_EPS
    ok_pq = on_parquet["group_by_s"] < TARGET_PARQUET_GROUP_BY_S
    ok_pq_cli = parquet_cli_s < TARGET_PARQUET_GROUP_BY_S
    ok_single_arrow = on_arrow["single_fraction"] < TARGET_SINGLE_FRACTION
    ok_single_pq = on_parquet["single_fraction"] < TARGET_SINGLE_FRACTION

    def files(kind: str, key: str) -> str:
        found = opened[kind, key]
        if found is None:
            return "n/a (no strace)"
        total = args.traces if kind == "arrow" else n_parquet_files
        distinct, opens = found
        return f"{distinct:,} of {total:,}" + (f" ({opens:,} opens)" if opens != distinct else "")

    def read(found: dict[str, Any], key: str) -> str:
        return f"{found[key + '_bytes'] / 1024:,.0f} KiB ({found[key + '_fraction']:.3%})"

    title = f"a corpus of {args.traces:,} traces x {n:,} events ({total_events:,} events)"
    table = Table(title=title, box=table_box(args.markdown))
    for col in ("measure", "value", "target", ""):
        table.add_column(col, justify="left" if col in ("measure", "") else "right")
    pct = f"< {TARGET_SINGLE_FRACTION:.0%}"
    under2 = f"< {TARGET_PARQUET_GROUP_BY_S:.0f} s"
    table.add_row("1. open, first time (each file checked and summarised)",
                  f"{open_first_s:.2f} s ({args.traces / open_first_s:,.0f} files/s)", "", "")
    table.add_row("   open again (summaries remembered)", f"{open_again_s:.2f} s "
                  f"({open_first_s / open_again_s:.0f}x faster)", "", "")
    table.add_row("2. group-by trace, kind over the .arrow files (in-process)",
                  f"{on_arrow['group_by_s']:.2f} s ({total_events / on_arrow['group_by_s'] / 1e6:.1f}M rows/s)", "", "")
    table.add_row("   the same, whole `rrtool sql 'DIR/*.arrow' ... --csv`", f"{arrow_cli_s:.2f} s", "", "")
    table.add_row("3. export parquet of every trace", f"{export_s:.2f} s ({export_eps / 1e6:.2f}M events/s)",
                  f">= {TARGET_EXPORT_EPS / 1e6:.0f}M events/s", verdict(ok_export))
    table.add_row("   dataset written", f"{n_parquet_files:,} part files, {dataset_bytes / 2**20:,.1f} MiB "
                  f"({arrow_bytes / 2**20:,.1f} MiB as .arrow)", "", "")
    table.add_row("4. group-by trace, kind over the Parquet dataset (in-process)",
                  f"{on_parquet['group_by_s']:.2f} s", under2, verdict(ok_pq))
    table.add_row("   the same, whole `rrtool sql DIR ... --csv`", f"{parquet_cli_s:.2f} s", under2, verdict(ok_pq_cli))
    table.add_row("   same rows on both", str(same), "True", verdict(same))
    table.add_row(f"5. trace = '{name}': bytes read, .arrow corpus", read(on_arrow, "single"), pct,
                  verdict(ok_single_arrow))
    table.add_row("   the same, Parquet dataset", read(on_parquet, "single"), pct, verdict(ok_single_pq))
    table.add_row(f"   and checkpoint {RANGE[0]}..{RANGE[1]}: .arrow / Parquet",
                  f"{read(on_arrow, 'ranged')} / {read(on_parquet, 'ranged')}", "", "")
    table.add_row("   same results on both", str(same_single), "True", verdict(same_single))
    table.add_row("   files a whole process opens: group-by, .arrow / Parquet",
                  f"{files('arrow', 'group_by')} / {files('parquet', 'group_by')}", "", "")
    one = f"{files('arrow', 'single')} / {files('parquet', 'single')}"
    table.add_row("   one trace, .arrow / Parquet", one, "", "")
    table.add_row(f"   one trace, checkpoints {RANGE[0]}..{RANGE[1]}, .arrow / Parquet",
                  f"{files('arrow', 'ranged')} / {files('parquet', 'ranged')}", "", "")  # fmt: skip
    show(console, table, args.markdown)
    console.print(f"load average {load_average():.2f} at the end")
    met = ok_export and ok_pq and ok_pq_cli and ok_single_arrow and ok_single_pq and same and same_single
    return 1 if args.check and not met else 0


if __name__ == "__main__":
    os.environ.setdefault("POLARS_MAX_THREADS", str(os.cpu_count() or 2))
    sys.exit(main())
