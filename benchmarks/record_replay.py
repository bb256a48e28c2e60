"""What do recording and replaying cost, next to a plain run of the same guest?

Recording adds, per checkpoint, a register and device digest, an Arrow row and
periodic zstd-compressed batch writes, plus a 32 MiB memory digest at its
cadence; replay adds reading those rows back and checking every checkpoint.
If either were much slower than a plain run, users would record less often.
This script measures, in one process and interleaved, a plain run, a
recording and a replay of:

  - `compute` (CPU-bound, ~419M instructions) at the default cadences;
  - `compute` again with a memory digest every 10M instructions instead of
    200M, to show what a denser memory digest costs;
  - `timers` (mostly idle: it sleeps ~0.48 s of virtual time).

Each replay is also repeated with the CLI's progress bar following it, drawn
into memory as on a terminal: the bar must cost nothing beyond the noise.

Targets: recording `compute` takes at most 1.5x a plain run, and a replay is
no slower than its recording. It also reports trace sizes per checkpoint and
per event, which is what decides how long a recording can be kept.

Run: ``python benchmarks/record_replay.py [--quick] [--repeats N] [--markdown] [--check]``.
"""

from __future__ import annotations

import gc
import io
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from _common import (
    QUICK_ROUNDS,
    compute_guest,
    environment_line,
    load_average,
    make_console,
    median,
    mips,
    parse_args,
    repeat,
    show,
    table_box,
    verdict,
)
from rich.console import Console
from rich.table import Table

from rrtool.board import Board, BoardConfig
from rrtool.cli.progress import Bar
from rrtool.cli.replay import follow
from rrtool.guest.build import ensure_example
from rrtool.machine.config import DEFAULT_CHECKPOINT_EVERY, DEFAULT_MEM_DIGEST_EVERY, MachineConfig
from rrtool.machine.image import load_image
from rrtool.machine.machine import Machine
from rrtool.machine.port import EventPort
from rrtool.player.session import replay
from rrtool.recorder.session import record
from rrtool.schemas.tracefile import open_tracefile

#: The denser memory-digest cadence of the extra `compute` row.
DENSE_MEM_DIGEST_EVERY = 10_000_000

#: Targets from the performance issue.
TARGET_RECORD_VS_RUN = 1.5
TARGET_REPLAY_VS_RECORD = 1.0


@dataclass(frozen=True)
class Case:
    """One row: a guest image under one machine configuration."""

    label: str
    slug: str  # trace file name
    image: Path
    config: MachineConfig
    idle: bool  # the guest mostly sleeps: wall time is waiting, not execution


@dataclass(frozen=True)
class Timed:
    """One measured call: wall seconds and the instruction count of the run."""

    wall_s: float
    icount: int
    checkpoints: int = 0
    events: int = 0
    bytes: int = 0
    mem_digests: int = 0
    batches: int = 0
    verified: bool = True
    warp_ns: int = 0  # virtual time spent idle (clock warps): vclock minus executed instructions


def time_run(case: Case) -> Timed:
    """A plain live run, as `rrtool run` does it (no console sink)."""
    gc.collect()
    start = time.perf_counter()
    image = load_image(case.image, case.config.ram_size)
    result = Machine(image, case.config, EventPort(), Board(BoardConfig()), console_sink=None).run()
    wall = time.perf_counter() - start
    if result.reason != "exit" or result.exit_code != 0:
        raise SystemExit(f"{case.label}: run ended with {result.reason}: {result.message}")
    warp = result.vclock_ns - result.icount * case.config.ns_per_insn
    return Timed(wall, result.icount, result.checkpoints, warp_ns=warp)


def trace_stats(trace: Path) -> tuple[int, int]:
    """Memory digests (each hashes all of guest RAM) and record batches in a trace.

    Batches matter for size: the writer flushes at least once a second of
    recording and every batch carries a few KB of its own, so a short
    trace's size depends on how long the recording took, not only on what
    it holds.
    """
    tf = open_tracefile(trace)
    column = tf.read_all().column("mem_digest")
    return int(len(column) - column.null_count), int(tf.num_batches)


def time_record(case: Case, trace: Path) -> Timed:
    """`rrtool record` minus the CLI; the trace is replaced by each repeat."""
    gc.collect()
    start = time.perf_counter()
    result = record(case.image, trace, config=case.config)
    wall = time.perf_counter() - start
    if result.run.reason != "exit" or result.run.exit_code != 0:
        raise SystemExit(f"{case.label}: recording ended with {result.run.reason}: {result.run.message}")
    mem_digests, batches = trace_stats(trace)
    return Timed(
        wall,
        result.run.icount,
        result.run.checkpoints,
        result.events,
        result.bytes,
        mem_digests,
        batches=batches,
    )


def time_replay(case: Case, trace: Path, bar: bool = False) -> Timed:
    """`rrtool replay` minus the CLI, of the trace the record step just wrote.

    With `bar`, the CLI's progress bar follows it as on a terminal (drawn into memory), so the two
    replays side by side say what the bar costs.
    """
    gc.collect()
    start = time.perf_counter()
    if bar:
        terminal = Console(file=io.StringIO(), force_terminal=True, width=120)
        with Bar("replay", 0, enabled=True, delay=0.0, console=terminal) as shown:
            result = replay(trace, on_progress=follow(shown))
    else:
        result = replay(trace)
    wall = time.perf_counter() - start
    return Timed(wall, result.icount, result.checkpoints, result.events, verified=result.verified)


@dataclass(frozen=True)
class Row:
    case: Case
    run: list[Timed]
    rec: list[Timed]
    rep: list[Timed]
    bar: list[Timed]  # replays with the progress bar drawn

    def wall(self, which: list[Timed]) -> float:
        return median([t.wall_s for t in which])

    @property
    def run_s(self) -> float:
        return self.wall(self.run)

    @property
    def record_s(self) -> float:
        return self.wall(self.rec)

    @property
    def replay_s(self) -> float:
        return self.wall(self.rep)

    @property
    def icount(self) -> float:
        """Median instructions of the recordings (the same in every run of a deterministic guest)."""
        return self.med(lambda t: t.icount)

    def med(self, field: Callable[[Timed], int], which: list[Timed] | None = None) -> float:
        return median([float(field(t)) for t in (self.rec if which is None else which)])

    def mips(self, which: list[Timed]) -> float:
        return median([mips(t.icount, t.wall_s) for t in which])


def fmt_mips(value: float) -> str:
    """Whole MIPS for busy guests; an idle guest's tiny figure would otherwise print as 0."""
    return f"{value:.0f}" if value >= 10 else f"{value:.3f}"


def spread(samples: list[Timed]) -> float:
    """Run-to-run spread of the wall times, (max - min) / median: how far apart repeats landed."""
    walls = [t.wall_s for t in samples]
    return (max(walls) - min(walls)) / median(walls)


def status(ratio: float, limit: float, noise: float) -> tuple[str, bool]:
    """Verdict for 'ratio <= limit': a miss smaller than the repeats' own spread is only called noise.

    Replay and record of a busy guest cost nearly the same, so their ratio sits
    at 1.0 and a strict comparison would flip between runs; the spread says
    how much of a miss the measurement itself can explain.
    """
    if ratio <= limit:
        return verdict(True), True
    if ratio - limit <= noise:
        return f"[yellow]missed by {ratio / limit - 1:.1%}, within noise ({noise:.1%})[/]", True
    return verdict(False), False


def measure(case: Case, repeats: int, workdir: Path) -> Row:
    trace = workdir / f"{case.slug}.arrow"
    run, rec, rep, bar = repeat(
        repeats,
        [lambda: time_run(case), lambda: time_record(case, trace), lambda: time_replay(case, trace),
         lambda: time_replay(case, trace, bar=True)],
    )  # fmt: skip
    # A replay must retire exactly what its recording did. Across independent live runs only a
    # guest that reads no host values is fixed (timers prints RTC and RNG values, so its count varies).
    for recorded, replayed in zip(rec, rep, strict=True):
        if recorded.icount != replayed.icount:
            raise SystemExit(f"{case.label}: replay ran {replayed.icount} instructions, recording {recorded.icount}")
    counts = {t.icount for t in run + rec}
    if not case.idle and len(counts) != 1:
        raise SystemExit(f"{case.label}: run and record disagree on the instruction count: {sorted(counts)}")
    return Row(case, run, rec, rep, bar)


def main() -> int:
    args = parse_args(__doc__.splitlines()[0] if __doc__ else "")
    console = make_console(args.markdown)
    default = MachineConfig()
    dense = MachineConfig(mem_digest_every=DENSE_MEM_DIGEST_EVERY)
    console.print(environment_line())
    console.print(
        f"cadences: checkpoint every {DEFAULT_CHECKPOINT_EVERY:,} instructions (DEFAULT_CHECKPOINT_EVERY), "
        f"memory digest every {DEFAULT_MEM_DIGEST_EVERY:,} (DEFAULT_MEM_DIGEST_EVERY) and at the end; "
        f"guest RAM {default.ram_size >> 20} MiB"
    )
    variant = f"ROUNDS={QUICK_ROUNDS} variant (--quick)" if args.quick else "bundled example"
    console.print(f"compute: {variant}; {args.repeats} run(s) of each, interleaved, median shown")

    with tempfile.TemporaryDirectory(prefix="rrtool-bench-") as tmp:
        workdir = Path(tmp)
        compute = compute_guest(args.quick, workdir)
        dense_label = f"compute, digest/{DENSE_MEM_DIGEST_EVERY // 1_000_000}M"
        cases = [
            Case("compute", "compute", compute, default, idle=False),
            Case(dense_label, "compute-dense", compute, dense, idle=False),
            Case("timers", "timers", ensure_example("timers"), default, idle=True),
        ]
        rows = [measure(case, args.repeats, workdir) for case in cases]

    timing = Table(title="wall time and speed (median)", box=table_box(args.markdown))
    for name in ("guest", "instructions", "run s", "record s", "replay s", "run MIPS", "record MIPS", "replay MIPS"):
        timing.add_column(name, justify="left" if name == "guest" else "right")
    timing.add_column("record / run", justify="right")
    timing.add_column("replay / run", justify="right")
    timing.add_column("replay / record", justify="right")
    for row in rows:
        mark = " *" if row.case.idle else ""
        timing.add_row(
            row.case.label + mark,
            f"{row.icount:,.0f}",
            f"{row.run_s:.3f}",
            f"{row.record_s:.3f}",
            f"{row.replay_s:.3f}",
            fmt_mips(row.mips(row.run)),
            fmt_mips(row.mips(row.rec)),
            fmt_mips(row.mips(row.rep)),
            f"{row.record_s / row.run_s:.2f}x",
            f"{row.replay_s / row.run_s:.2f}x",
            f"{row.replay_s / row.record_s:.2f}x",
        )
    show(console, timing, args.markdown)

    size = Table(title="trace size (median of the recordings)", box=table_box(args.markdown))
    columns = ("guest", "checkpoints", "mem digests", "events", "batches", "trace bytes", "bytes / checkpoint")
    for name in (*columns, "bytes / event"):
        size.add_column(name, justify="left" if name == "guest" else "right")
    size.add_column("replay verified")
    for row in rows:
        checkpoints = row.med(lambda t: t.checkpoints)
        events = row.med(lambda t: t.events)
        nbytes = row.med(lambda t: t.bytes)
        size.add_row(
            row.case.label + (" *" if row.case.idle else ""),
            f"{checkpoints:,.0f}",
            f"{row.med(lambda t: t.mem_digests):,.0f}",
            f"{events:,.0f}",
            f"{row.med(lambda t: t.batches):,.0f}",
            f"{nbytes:,.0f}",
            f"{nbytes / checkpoints:.1f}",
            f"{nbytes / events:.1f}",
            "yes" if all(t.verified for t in row.rep) else "[bold red]NO[/]",
        )
    show(console, size, args.markdown)

    base, dense_row, timers = rows
    slept_s = timers.med(lambda t: t.warp_ns, timers.run) / 1e9
    console.print(
        f"* {timers.case.label} is mostly idle: it sleeps {slept_s:.2f} s of virtual time, "
        "which run and record wait in real time and replay skips, so its MIPS and ratios measure waiting, "
        "not execution; only replay's figure reflects execution speed."
    )
    extra = dense_row.record_s - base.record_s
    console.print(
        f"denser memory digest: recording compute took {dense_row.record_s:.3f} s with a digest every "
        f"{DENSE_MEM_DIGEST_EVERY:,} instructions vs {base.record_s:.3f} s every {DEFAULT_MEM_DIGEST_EVERY:,} "
        f"({extra:+.3f} s, {extra / base.record_s:+.1%}; "
        f"{dense_row.med(lambda t: t.mem_digests):.0f} vs {base.med(lambda t: t.mem_digests):.0f} digests). "
        "A plain run takes no digests at all (only record and replay do)."
    )
    console.print(
        "Trace bytes include a few KB per record batch, and the writer starts a batch at least once a second, "
        "so short traces are dominated by that overhead and grow with the recording's wall time."
    )

    targets = Table(title="targets", box=table_box(args.markdown))
    targets.add_column("target")
    targets.add_column("measured", justify="right")
    targets.add_column("limit", justify="right")
    targets.add_column("status")
    checks: list[bool] = []
    rec_ratio = base.record_s / base.run_s
    text, ok = status(rec_ratio, TARGET_RECORD_VS_RUN, max(spread(base.run), spread(base.rec)))
    checks.append(ok)
    targets.add_row("record / run, compute", f"{rec_ratio:.2f}x", f"<= {TARGET_RECORD_VS_RUN:g}x", text)
    for row in rows:
        ratio = row.replay_s / row.record_s
        text, ok = status(ratio, TARGET_REPLAY_VS_RECORD, max(spread(row.rec), spread(row.rep)))
        checks.append(ok)
        targets.add_row(f"replay / record, {row.case.label}", f"{ratio:.2f}x", f"<= {TARGET_REPLAY_VS_RECORD:g}x", text)
    bar_ratio = base.wall(base.bar) / base.replay_s
    text, ok = status(bar_ratio, 1.0, max(spread(base.rep), spread(base.bar)))
    checks.append(ok)
    targets.add_row("replay with progress bar / without, compute", f"{bar_ratio:.2f}x", "<= 1x", text)
    checks.append(all(t.verified for row in rows for t in row.rep + row.bar))
    targets.add_row("every replay verified", "", "", verdict(checks[-1]))
    show(console, targets, args.markdown)
    console.print(
        "Wall times cover the whole library call from the image path to the result: ELF load, machine set-up, "
        "the run, and for record/replay opening and closing the trace. MIPS = instructions / wall."
    )
    console.print(f"load average {load_average():.2f} at end")
    return 1 if args.check and not all(checks) else 0


if __name__ == "__main__":
    sys.exit(main())
