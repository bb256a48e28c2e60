"""Fuzzing every command that reads a trace with damaged copies of real traces.

Why a driver and a worker: a damaged trace may kill the process that reads
it (an abort or a segfault inside a C++ reader) or hang it, and starting one
process per command per mutant would cost a second each. So one worker
process runs the commands in-process (through typer's CliRunner) on mutant
after mutant, writing what it starts and what came of it to a log; the
driver watches that log, and when the worker dies by a signal or stops
making progress, records the signal or the hang against the run it was in
and starts a new worker after it.

A run fails when it ends by a signal, hangs, shows a traceback, prints more
than one line of error, or when `replay` exits 0 although the mutant holds
different checked values than its source (every column but `host_ns`, and
the metadata that replay checks); a mutant that only lost whole batches at
its end (a truncation) may verify, as a crash-truncated recording does.

Run as a test (`tests/test_fuzz.py`, a fixed seed and a bounded count) or as
a campaign: ``python -m tests.fuzz_traces --count 5000 --seed 7``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc

#: The metadata replay checks; a change anywhere else (start time, host, tool version, image path, and
#: `rrtool.disk` and `rrtool.net`, which describe the host side for people and tools), or a key it does not
#: know, may still verify: the machine record holds what replay builds from.
CHECKED_META = ("rrtool.format_version", "rrtool.machine", "rrtool.image_sha256")
#: Seconds one command may take on one mutant before it counts as a hang.
RUN_TIMEOUT = 30.0

CORPUS_QUERY = "select trace, count(*), max(latency_ns) from block_ops group by 1"

COMMANDS: dict[str, Callable[[Path, Path, Path], list[str]]] = {
    "replay": lambda m, src, out: ["replay", str(m), "-q"],
    "info": lambda m, src, out: ["info", str(m)],
    "info-json": lambda m, src, out: ["info", str(m), "--json"],
    "sql": lambda m, src, out: ["sql", str(m), "select kind, count(*), max(icount) from events group by kind", "--csv"],
    "diff": lambda m, src, out: ["diff", str(m), str(src)],
    # A mutant among good traces: the corpus commands must name it or read around it, never crash.
    "sql-corpus": lambda m, src, out: [
        "sql",
        str(src),
        str(m),
        "select trace, count(*) from block_ops group by 1",
        "--csv",
    ],
    "diff-baseline": lambda m, src, out: ["diff", "--baseline", str(src), str(m), str(src)],
    "export-perfetto": lambda m, src, out: ["export", "perfetto", str(m), "-o", str(out / "p.json"), "-q"],
    "export-parquet": lambda m, src, out: ["export", "parquet", str(m), "-o", str(out / "pq"), "-q"],
    "export-pcap": lambda m, src, out: ["export", "pcap", str(m), "-o", str(out / "p.pcapng"), "-q"],
}


# -- mutants -----------------------------------------------------------------
@dataclass(frozen=True)
class Mutant:
    name: str
    source: Path
    how: str


def _read(path: Path) -> tuple[pa.Schema, list[tuple[pa.RecordBatch, Any]]]:
    with pa.memory_map(str(path)) as source:
        reader = ipc.open_file(source)
        batches = [reader.get_batch_with_custom_metadata(i) for i in range(reader.num_record_batches)]
        return reader.schema, batches


def _write(path: Path, schema: pa.Schema, batches: list[tuple[pa.RecordBatch, Any]]) -> None:
    with (
        pa.OSFile(str(path), "wb") as sink,
        ipc.new_file(sink, schema, options=ipc.IpcWriteOptions(compression="zstd")) as writer,
    ):
        for batch, meta in batches:
            writer.write_batch(batch, custom_metadata=meta)


def _edit_column(
    batch: pa.RecordBatch, name: str, edit: Callable[[list[Any]], list[Any]], schema: pa.Schema
) -> pa.RecordBatch:
    """`batch` with one column's values edited; a dictionary column keeps its dictionary (one per IPC file)."""
    column = batch.column(name)
    values = edit(column.to_pylist())
    if isinstance(column, pa.DictionaryArray):
        words = column.dictionary.to_pylist()
        indices = pa.array([None if v is None else words.index(v) for v in values], pa.int8())
        array: pa.Array = pa.DictionaryArray.from_arrays(indices, column.dictionary)
    else:
        array = pa.array(values, column.type)
    arrays = [array if n == name else batch.column(n) for n in batch.schema.names]
    return pa.RecordBatch.from_arrays(arrays, schema=schema.remove_metadata())


def mutate(data: bytes, source: Path, rng: random.Random, out: Path) -> str:
    """Write one mutant of `data` (the bytes of `source`) to `out`; returns how it was made."""
    how = rng.choice(["flip-body", "flip-body", "flip-footer", "flip-schema", "truncate", "bytes", "structure",
                      "structure", "column", "column", "metadata"])  # fmt: skip
    raw = bytearray(data)
    footer_len = int.from_bytes(data[-10:-6], "little") + 10 if data.endswith(b"ARROW1") else 0
    schema_end = min(len(data) - footer_len, 8 + int.from_bytes(data[12:16], "little") + 8)
    if how in ("flip-body", "flip-footer", "flip-schema", "bytes"):
        lo, hi = {"flip-body": (schema_end, len(data) - footer_len), "flip-footer": (len(data) - footer_len, len(data)),
                  "flip-schema": (0, schema_end), "bytes": (0, len(data))}[how]  # fmt: skip
        if hi <= lo:
            lo, hi = 0, len(data)
        for _ in range(rng.randint(1, 6)):
            at = rng.randrange(lo, hi)
            if how == "bytes":
                raw[at] = rng.choice([0x00, 0xFF, 0x7F, 0x80, 0x01])
            else:
                raw[at] ^= 1 << rng.randrange(8)
        out.write_bytes(bytes(raw))
        return how
    if how == "truncate":
        out.write_bytes(bytes(raw[: rng.randrange(len(raw))]))
        return how
    schema, batches = _read(source)
    if how == "structure":
        op = rng.choice(["swap", "duplicate", "drop", "reverse-rows", "duplicate-rows"])
        full = [i for i, (b, _) in enumerate(batches) if b.num_rows]
        i = rng.choice(full)
        if op == "swap" and len(batches) > 1:
            j = rng.choice([k for k in range(len(batches)) if k != i])
            batches[i], batches[j] = batches[j], batches[i]
        elif op == "duplicate":
            batches.insert(i, batches[i])
        elif op == "drop":
            del batches[i]
        elif op == "reverse-rows":
            b, m = batches[i]
            batches[i] = (b.take(pa.array(range(b.num_rows - 1, -1, -1))), m)
        else:
            b, m = batches[i]
            k = rng.randrange(b.num_rows)
            rows = list(range(b.num_rows))
            batches[i] = (b.take(pa.array([*rows[: k + 1], k, *rows[k + 1 :]])), m)
        _write(out, schema, batches)
        return f"{how}:{op}"
    if how == "column":
        op = rng.choice(["value", "negative-icount", "null", "device", "kind", "add", "drop", "rename"])
        full = [i for i, (b, _) in enumerate(batches) if b.num_rows]
        i = rng.choice(full)
        b, m = batches[i]
        k = rng.randrange(b.num_rows)
        if op in ("add", "drop", "rename"):
            names = list(schema.names)
            if op == "add":
                new = schema.append(pa.field("extra", pa.int64()))
                batches = [
                    (pa.RecordBatch.from_arrays([*bb.columns, pa.array([7] * bb.num_rows, pa.int64())],
                                                schema=new.remove_metadata()), mm)
                    for bb, mm in batches
                ]  # fmt: skip
            else:
                victim = rng.randrange(len(names))
                if op == "drop":
                    new = schema.remove(victim)
                    batches = [(bb.drop_columns([names[victim]]), mm) for bb, mm in batches]
                else:
                    new = schema.set(victim, schema.field(victim).with_name(names[victim][::-1] + "x"))
                    batches = [(pa.RecordBatch.from_arrays(bb.columns, schema=new.remove_metadata()), mm)
                               for bb, mm in batches]  # fmt: skip
            _write(out, new, batches)
            return f"{how}:{op}"
        choices: dict[str, tuple[list[str], Callable[[Any], Any]]] = {
            "value": (["icount", "value", "data", "pc", "reg_digest", "warp_ns", "checkpoint", "seq"], _bump),
            "negative-icount": (["icount"], lambda _: -5),
            "null": (["kind", "value", "data", "warp_ns", "cp_kind", "pc"], lambda _: None),
            "device": (["device"], lambda _: rng.choice(["net3", "rtc", "block", "machine"])),
            "kind": (["kind"], lambda _: rng.choice(["blk_complete", "console_in", "net_rx", "rtc_read"])),
        }
        names, new_value = choices[op]
        name = rng.choice(names)

        def edit(values: list[Any]) -> list[Any]:
            return [*values[:k], new_value(values[k]), *values[k + 1 :]]

        try:
            batches[i] = (_edit_column(b, name, edit, schema), m)
        except (pa.ArrowException, ValueError, TypeError):
            out.write_bytes(data)
            return f"{how}:{op}:{name}:unchanged"
        _write(out, schema, batches)
        return f"{how}:{op}:{name}"
    meta = dict(schema.metadata or {})
    op = rng.choice(["drop-key", "bad-json", "bad-utf8", "version", "machine-values", "host-json"])
    keys = sorted(meta)
    if op == "drop-key":
        meta.pop(rng.choice(keys))
    elif op == "bad-json":
        meta[b"rrtool.machine"] = meta[b"rrtool.machine"][: rng.randrange(1, len(meta[b"rrtool.machine"]))]
    elif op == "bad-utf8":
        key = rng.choice(keys)
        meta[key] = meta[key] + b"\xff\xfe"
    elif op == "host-json":
        key = rng.choice([b"rrtool.net", b"rrtool.disk"])
        meta[key] = rng.choice([b'[{"index": "x"}]', b'[{"index": 99}]', b"[1, null]", b'{"a": [', b'"x"', b"[]"])
    elif op == "version":
        meta[b"rrtool.format_version"] = rng.choice([b"3", b"x", b"", b"99999999999999999999"])
    else:
        machine = json.loads(meta[b"rrtool.machine"])
        key = rng.choice(sorted(machine))
        machine[key] = rng.choice([-1, 0, 2**64, "x", None, [1], 1.5, True])
        meta[b"rrtool.machine"] = json.dumps(machine).encode()
    _write(out, schema.with_metadata(meta), batches)
    return f"{how}:{op}"


def _bump(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value + 1 if value < 2**62 else value - 1
    if isinstance(value, bytes):
        return value[:-1] + bytes([(value[-1] + 1) % 256]) if value else b"x"
    return value


# -- the oracle ----------------------------------------------------------------
def _rows_and_meta(path: Path) -> tuple[list[dict[str, Any]], dict[str, str], bool] | None:
    """What rrtool's reader makes of `path`: rows (without host_ns), checked metadata, complete; None if refused."""
    from rrtool.schemas.tracefile import TraceError, open_tracefile

    try:
        with open_tracefile(path) as trace:
            rows = trace.read_all().drop_columns(["host_ns"]).to_pylist()
            meta = {k: v for k, v in trace.metadata.items() if k in CHECKED_META}
            return rows, meta, trace.complete
    except TraceError:
        return None


def _source_rows_and_meta(path: Path) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """An undamaged source trace read with plain pyarrow, so the oracle does not judge rrtool's reader by itself."""
    with pa.memory_map(str(path)) as source:
        reader = ipc.open_file(source)
        table = reader.read_all()
        raw = reader.schema.metadata or {}
    meta = {k.decode(): v.decode() for k, v in raw.items()}
    rows = table.drop_columns(["host_ns"]).to_pylist()
    return rows, {k: v for k, v in meta.items() if k in CHECKED_META}


def may_verify(mutant: Path, source: Path) -> bool:
    """True when replay may rightly verify `mutant`: the same checked values as `source`, or a prefix of them."""
    got = _rows_and_meta(mutant)
    want = _source_rows_and_meta(source)
    if got is None:
        return False
    rows, meta, complete = got
    if meta != want[1]:
        return False
    if complete:
        return rows == want[0]
    return rows == want[0][: len(rows)]


def same_recording(mutant: Path, source: Path) -> bool:
    """True when `diff` may rightly call `mutant` equal to `source`: complete, with the same rows."""
    got = _rows_and_meta(mutant)
    want = _source_rows_and_meta(source)
    return got is not None and got[2] and got[0] == want[0]


# -- the worker ----------------------------------------------------------------
class _Hang(Exception):
    pass


def _alarm(signum: int, frame: object) -> None:
    raise _Hang()


def work(jobs: Path, log: Path, scratch: Path, start: int) -> None:
    """Run every job from `start` in this process, logging `start` before and the outcome after each."""
    from typer.testing import CliRunner

    from rrtool.cli import app

    signal.signal(signal.SIGALRM, _alarm)
    runner = CliRunner()
    todo = json.loads(jobs.read_text())
    with log.open("a") as out:
        for index in range(start, len(todo)):
            job = todo[index]
            out.write(json.dumps({"start": index}) + "\n")
            out.flush()
            mutant, source = Path(job["mutant"]), Path(job["source"])
            workdir = scratch / f"run{index}"
            workdir.mkdir(parents=True, exist_ok=True)
            args = COMMANDS[job["command"]](mutant, source, workdir)
            before = mutant.read_bytes()
            signal.setitimer(signal.ITIMER_REAL, RUN_TIMEOUT)
            try:
                result = runner.invoke(app, args, prog_name="rrtool")
                code, stderr = result.exit_code, result.stderr
                trace = None
                if result.exception is not None and not isinstance(result.exception, SystemExit):
                    import traceback

                    trace = "".join(traceback.format_exception(result.exception))[-2000:]
                    if isinstance(result.exception, _Hang):
                        trace = "HANG"
            except _Hang:
                code, stderr, trace = -1, "", "HANG"
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            verdict = None
            if job["command"] == "replay" and code == 0:
                verdict = may_verify(mutant, source)
            elif job["command"] in ("diff", "diff-baseline") and code == 0:
                verdict = same_recording(mutant, source)
            changed = mutant.read_bytes() != before
            out.write(json.dumps({"done": index, "code": code, "stderr": stderr[-2000:], "traceback": trace,
                                  "may_verify": verdict, "input_changed": changed}) + "\n")  # fmt: skip
            out.flush()


# -- the driver ----------------------------------------------------------------
@dataclass
class Outcome:
    job: dict[str, str]
    problem: str | None
    code: int | None


def problem_of(job: dict[str, str], done: dict[str, Any]) -> str | None:
    """What is wrong with one finished run, or None."""
    if done.get("traceback") == "HANG":
        return "hang"
    if done.get("traceback"):
        return "traceback: " + str(done["traceback"]).strip().splitlines()[-1][:200]
    if done.get("input_changed"):
        return "the mutant was changed"
    code = done["code"]
    if job["command"] == "replay" and code == 0 and not done.get("may_verify"):
        return "replay verified a trace whose checked values changed"
    if job["command"] in ("diff", "diff-baseline") and code == 0 and not done.get("may_verify"):
        return "diff called a trace equal to its source although it is incomplete or its rows changed"
    stderr = done.get("stderr", "")
    if code not in (0, 1):
        lines = [line for line in stderr.splitlines() if line.strip()]
        if len(lines) != 1:
            return f"exit {code} with {len(lines)} lines of error: {stderr[:300]!r}"
    if code not in (0, 1, 2):
        return f"exit {code}"
    return None


def drive(jobs: list[dict[str, str]], workdir: Path, idle_timeout: float = RUN_TIMEOUT + 30) -> list[Outcome]:
    """Run `jobs` in worker processes, restarting after a crash or hang; one outcome per job."""
    jobs_file = workdir / "jobs.json"
    jobs_file.write_text(json.dumps(jobs))
    log = workdir / "log.jsonl"
    log.write_text("")
    outcomes: dict[int, Outcome] = {}
    start = 0
    env = {**os.environ, "PYTHONFAULTHANDLER": "0", "COLUMNS": "100"}
    root = Path(__file__).resolve().parent.parent
    while start < len(jobs):
        scratch = workdir / "scratch"
        cmd = [sys.executable, "-m", "tests.fuzz_traces", "--work", str(jobs_file), str(log), str(scratch), str(start)]
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        last_size, last_change = -1, time.monotonic()
        while proc.poll() is None:
            time.sleep(0.05)
            size = log.stat().st_size
            if size != last_size:
                last_size, last_change = size, time.monotonic()
            elif time.monotonic() - last_change > idle_timeout:
                proc.kill()
                proc.wait()
                break
        current = None
        for line in log.read_text().splitlines():
            entry = json.loads(line)
            if "start" in entry:
                current = entry["start"]
            else:
                index = entry["done"]
                outcomes[index] = Outcome(jobs[index], problem_of(jobs[index], entry), entry["code"])
                current = None
        if proc.returncode == 0 and current is None:
            break
        if current is None:
            stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"fuzz worker failed outside a run (exit {proc.returncode}): {stderr[-2000:]}")
        rc = proc.returncode
        what = "hang" if rc in (-signal.SIGKILL, None) else f"killed by signal {-rc}" if rc < 0 else f"worker exit {rc}"
        outcomes[current] = Outcome(jobs[current], what, None)
        start = current + 1
        if proc.stderr:
            proc.stderr.close()
    return [outcomes[i] for i in sorted(outcomes)]


def drive_parallel(jobs: list[dict[str, str]], workdir: Path, workers: int = 2) -> list[Outcome]:
    """`drive` on `workers` interleaved shares of the jobs at once (one worker process each)."""
    import concurrent.futures

    shares = [jobs[i::workers] for i in range(workers)]
    dirs = [workdir / f"worker{i}" for i in range(workers)]
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(drive, shares, dirs))
    return [o for share in results for o in share]


def summarize(outcomes: list[Outcome]) -> dict[str, int]:
    """Runs per command and exit code (or PROBLEM), for the report."""
    summary: dict[str, int] = {}
    for o in outcomes:
        key = f"{o.job['command']}: {'exit ' + str(o.code) if o.problem is None else 'PROBLEM'}"
        summary[key] = summary.get(key, 0) + 1
    return dict(sorted(summary.items()))


def make_jobs(sources: list[Path], count: int, seed: int, workdir: Path, commands: list[str]) -> list[dict[str, str]]:
    """`count` mutants from a fixed seed, each paired with every command."""
    rng = random.Random(seed)
    jobs = []
    cache = {s: s.read_bytes() for s in sources}
    for n in range(count):
        source = rng.choice(sources)
        mutant = workdir / f"m{n:05d}.arrow"
        how = mutate(cache[source], source, rng, mutant)
        for command in commands:
            jobs.append({"mutant": str(mutant), "source": str(source), "command": command, "how": how})
    return jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", nargs=4, metavar=("JOBS", "LOG", "SCRATCH", "START"), help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dir", type=Path, default=Path("fuzz-out"))
    parser.add_argument("--workers", type=int, default=2, help="worker processes at once")
    parser.add_argument("traces", nargs="*", type=Path, help="source traces (default: record timers and blkstress)")
    args = parser.parse_args()
    if args.work:
        jobs, log, scratch, start = args.work
        work(Path(jobs), Path(log), Path(scratch), int(start))
        return
    args.dir.mkdir(parents=True, exist_ok=True)
    sources = args.traces or record_sources(args.dir)
    jobs = make_jobs(sources, args.count, args.seed, args.dir, list(COMMANDS))
    outcomes = drive_parallel(jobs, args.dir, args.workers)
    bad = [o for o in outcomes if o.problem]
    for key, n in summarize(outcomes).items():
        print(f"{n:6d}  {key}")
    for o in bad:
        print(f"{o.job['mutant']} [{o.job['how']}] {o.job['command']}: {o.problem}")
    print(f"{len(outcomes)} runs on {args.count} mutants, {len(bad)} problems")
    sys.exit(1 if bad else 0)


def record_sources(directory: Path) -> list[Path]:
    """Small real traces to mutate: timers (clock, RNG, RTC, console), blkstress on a disk (block I/O), and
    Debian's busybox shell running `cat | wc` (system calls, and tasks: fork, a pipe between two processes,
    an exec of /proc/self/exe, wait4 and the scheduler's rows)."""
    from rrtool.board.disk import DiskSpec
    from rrtool.board.host import HostSetup
    from rrtool.recorder.session import record

    timers = directory / "src-timers.arrow"
    blk = directory / "src-blk.arrow"
    from rrtool.guest.build import ensure_example

    record(ensure_example("timers"), timers, console_sink=lambda b: None)
    disk = directory / "disk.img"
    disk.write_bytes(bytes(1 << 20))
    record(ensure_example("blkstress"), blk, host=HostSetup(disk=DiskSpec(disk)), console_sink=lambda b: None)
    sources = [timers, blk]
    busybox = Path("/bin/busybox")
    if busybox.is_file():  # a Linux program's system calls (CI installs busybox-static)
        from rrtool.linux.host import LinuxSetup

        root = directory / "root"
        root.mkdir()
        (root / "f.txt").write_text("hello\nworld\n")
        linux = directory / "src-linux.arrow"
        setup = LinuxSetup(args=("sh", "-c", "cat f.txt | wc"), root=root, stdin=False)
        record(busybox, linux, linux=setup, console_sink=lambda b: None)
        sources.append(linux)
    return sources


if __name__ == "__main__":
    main()
