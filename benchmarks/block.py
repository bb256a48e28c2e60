"""What does recording cost a disk-heavy guest, next to a plain run of it?

The `blkstress` guest keeps 8 requests of 8 KiB in flight: it writes a 4 MiB
region of the disk, flushes, reads it all back and verifies every byte, then
submits one malformed request of each kind. Every completion comes from a
host thread pool and is an event; a recording writes it to the trace (the
data of every read included), a replay feeds it back without opening the
disk. This script measures, in one process and interleaved:

  - run: a plain live run (`live_machine` + `Machine.run()`, as `rrtool run`);
  - record: `rrtool.recorder.session.record`, as `rrtool record`;
  - replay: `rrtool.player.session.replay` of that recording;
  - the same three with ``--chaos`` (random completion delays on the host
    threads), to show what chaos mode costs.

It reports completions per second and MiB/s moved (reads plus writes), the
record / run ratio, and trace bytes per KiB moved. A plain run writes no
trace, so its completions and bytes are those of the recordings (the guest
makes the same requests every time; the script checks that every run,
recording and replay printed the same checksum).

Target: recording within 1.5x of a plain run in completions per second.

The disk is a 64 MiB image of zeros, never modified (writes go to the
copy-on-write overlay). ``--quick`` uses a 1 MiB disk instead: the guest tests
min(disk, 4 MiB), so it moves a quarter as much.

Each run takes about a tenth of a second, so host jitter is large next to it:
the default is 5 repeats (median shown) rather than 3, plus one untimed round.

Run: ``python benchmarks/block.py [--quick] [--repeats N] [--markdown] [--check]``.
"""

from __future__ import annotations

import gc
import re
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow.compute as pc
from _common import (
    environment_line,
    load_average,
    make_console,
    median,
    parse_args,
    repeat,
    show,
    spread,
    table_box,
    verdict,
)
from record_replay import status
from rich.table import Table

from rrtool.board.disk import DiskSpec
from rrtool.board.host import HostSetup, live_machine
from rrtool.guest.build import build_guest, ensure_example, example_source
from rrtool.machine.config import Limits, MachineConfig, RunResult
from rrtool.machine.port import EventPort
from rrtool.player.session import replay
from rrtool.recorder.session import record
from rrtool.schemas import events as ev
from rrtool.schemas.tracefile import open_tracefile

#: Target from the performance issue: record within this factor of run, in completions per second.
TARGET_RECORD_VS_RUN = 1.5

DISK_BYTES = 64 << 20
QUICK_DISK_BYTES = 1 << 20
#: 32 MiB written and read back (8,192 requests): long enough that per-run set-up (trace open and close,
#: the final memory digest, hashing the disk for the metadata; about 30 ms) does not dominate a ratio of
#: per-completion throughput. --quick keeps the stock 4 MiB guest on a 1 MiB disk.
REGION_SECTORS = 65536
CHAOS_SEED = 7
DEFAULT_REPEATS = 5

#: A wall-clock bound on every run, so a wedged guest fails the benchmark instead of hanging it.
TIMEOUT_S = 60.0

_CHECKSUM = re.compile(rb"blkstress: checksum ([0-9a-f]+)")
_SUMMARY = re.compile(rb"blkstress: (\d+) requests, (\d+) completed, (\d+) out of order")


@dataclass(frozen=True)
class Sample:
    """One timed library call and what came out of it."""

    wall_s: float
    checksum: str
    out_of_order: int
    icount: int
    # from the trace (record and replay only)
    completions: int = 0
    moved: int = 0  # bytes read + written by successful completions
    events: int = 0
    batches: int = 0
    trace_bytes: int = 0
    verified: bool = True


def guest_summary(label: str, run: RunResult | None) -> tuple[str, int]:
    """The checksum and out-of-order count the guest printed; any failure ends the benchmark."""
    if run is None or run.reason != "exit" or run.exit_code != 0:
        what = "no result" if run is None else f"{run.reason} (exit code {run.exit_code}): {run.message}"
        raise SystemExit(f"{label}: blkstress did not finish cleanly: {what}")
    checksum = _CHECKSUM.search(run.output)
    summary = _SUMMARY.search(run.output)
    if checksum is None or summary is None:
        raise SystemExit(f"{label}: blkstress printed no checksum or summary:\n{run.output.decode(errors='replace')}")
    return checksum.group(1).decode(), int(summary.group(3))


def trace_stats(trace: Path) -> tuple[int, int, int, int]:
    """Completions, bytes moved by successful reads and writes, events and batches of a trace."""
    tf = open_tracefile(trace)
    table = tf.read_all()
    done = table.filter(pc.equal(table["kind"], ev.KIND_BLK_COMPLETE))
    ok = done.filter(pc.equal(done["status"], 0))
    moved = pc.sum(ok["length"]).as_py() or 0
    return done.num_rows, int(moved), table.num_rows, int(tf.num_batches)


def host(disk: Path, chaos: int | None) -> HostSetup:
    return HostSetup(disk=DiskSpec(disk), chaos=chaos)


def time_run(label: str, image: Path, disk: Path, chaos: int | None) -> Sample:
    """A plain live run, as `rrtool run --disk` does it: set-up, run, closing the backends."""
    gc.collect()
    start = time.perf_counter()
    port = EventPort()
    try:
        live = live_machine(
            image, MachineConfig(), port, host(disk, chaos), limits=Limits(timeout_s=TIMEOUT_S)
        )
        result = live.machine.run()
    finally:
        port.close()
    wall = time.perf_counter() - start
    checksum, out_of_order = guest_summary(label, result)
    return Sample(wall, checksum, out_of_order, result.icount)


def time_record(label: str, image: Path, disk: Path, chaos: int | None, trace: Path) -> Sample:
    """`rrtool record --disk` minus the CLI; the trace is replaced by each repeat."""
    gc.collect()
    start = time.perf_counter()
    result = record(image, trace, host=host(disk, chaos), limits=Limits(timeout_s=TIMEOUT_S))
    wall = time.perf_counter() - start
    checksum, out_of_order = guest_summary(label, result.run)
    completions, moved, events, batches = trace_stats(trace)
    return Sample(wall, checksum, out_of_order, result.run.icount, completions, moved, events, batches, result.bytes)


def time_replay(label: str, trace: Path) -> Sample:
    """`rrtool replay` minus the CLI, of the trace the record step just wrote (no disk opened)."""
    gc.collect()
    start = time.perf_counter()
    result = replay(trace)
    wall = time.perf_counter() - start
    if not result.verified:
        raise SystemExit(f"{label}: replay diverged: {result.divergence}")
    checksum, out_of_order = guest_summary(label, result.run)
    completions, moved, events, batches = trace_stats(trace)
    nbytes = trace.stat().st_size
    return Sample(wall, checksum, out_of_order, result.icount, completions, moved, events, batches, nbytes, True)


@dataclass(frozen=True)
class Config:
    label: str
    kind: str  # run, record, replay
    chaos: int | None
    samples: list[Sample]

    @property
    def wall_s(self) -> float:
        return median([s.wall_s for s in self.samples])

    def med(self, field: Callable[[Sample], float]) -> float:
        return median([float(field(s)) for s in self.samples])


def main() -> int:
    # Each run takes a tenth of a second, where host scheduling jitter is large: 5 repeats unless told otherwise.
    args = parse_args(__doc__.splitlines()[0] if __doc__ else "", ["--repeats", str(DEFAULT_REPEATS), *sys.argv[1:]])
    console = make_console(args.markdown)
    console.print(environment_line())
    disk_bytes = QUICK_DISK_BYTES if args.quick else DISK_BYTES

    with tempfile.TemporaryDirectory(prefix="rrtool-bench-") as tmp:
        workdir = Path(tmp)
        if args.quick:
            image = ensure_example("blkstress")
        else:
            image = build_guest([example_source("blkstress")], workdir / "blkstress-32m.elf",
                                extra_cflags=[f"-DREGION_SECTORS={REGION_SECTORS}"])  # fmt: skip
        disk = workdir / "disk.img"
        with disk.open("wb") as f:
            f.truncate(disk_bytes)  # zeros (sparse); the recordings never write it
        plain, chaotic = workdir / "plain.arrow", workdir / "chaos.arrow"
        chaos_label = f"--chaos {CHAOS_SEED}"
        fns: list[Callable[[], Sample]] = [
            lambda: time_run("run", image, disk, None),
            lambda: time_record("record", image, disk, None, plain),
            lambda: time_replay("replay", plain),
            lambda: time_run(f"run {chaos_label}", image, disk, CHAOS_SEED),
            lambda: time_record(f"record {chaos_label}", image, disk, CHAOS_SEED, chaotic),
            lambda: time_replay(f"replay {chaos_label}", chaotic),
        ]
        # One untimed round first: the first machine of a process pays one-off costs (page cache, allocator).
        for fn in fns:
            fn()
        results = repeat(args.repeats, fns)
        disk_unchanged = disk.read_bytes() == bytes(disk_bytes)

    labels = ("run", "record", "replay")
    configs = [
        Config(f"{kind}{' ' + chaos_label if chaos else ''}", kind, chaos, samples)
        for (chaos, kind), samples in zip([(c, k) for c in (None, CHAOS_SEED) for k in labels], results, strict=True)
    ]
    run, rec, rep, crun, crec, crep = configs
    traced = [c for c in configs if c.kind != "run"]

    # The guest makes the same requests every time: the recordings' counts hold for the plain runs too.
    completions = {s.completions for c in traced for s in c.samples}
    moved = {s.moved for c in traced for s in c.samples}
    if len(completions) != 1 or len(moved) != 1:
        raise SystemExit(f"completions or bytes differ between recordings: {sorted(completions)}, {sorted(moved)}")
    n_done, n_moved = completions.pop(), moved.pop()
    checksums = {s.checksum for c in configs for s in c.samples}
    same_checksum = len(checksums) == 1

    console.print(
        f"guest: blkstress (bundled), disk {disk_bytes >> 20} MiB of zeros{' (--quick)' if args.quick else ''}: "
        f"{n_done:,} completions moving {n_moved / 2**20:.1f} MiB ({n_moved // 2 // 1024:,} KiB written "
        f"and read back, one flush)"
    )
    console.print(
        f"{args.repeats} run(s) of each configuration after one untimed round, interleaved, median shown; "
        f"--chaos {CHAOS_SEED}: half the requests wait up to 4 ms on a host thread"
    )

    timing = Table(title="blkstress: throughput (median)", box=table_box(args.markdown))
    for name in ("configuration", "wall s", "min-max s", "completions/s", "MiB/s", "vs run", "out of order"):
        timing.add_column(name, justify="left" if name == "configuration" else "right")
    for c, base in ((run, run), (rec, run), (rep, run), (crun, crun), (crec, crun), (crep, crun)):
        walls = [s.wall_s for s in c.samples]
        cps = median([n_done / w for w in walls])
        mibs = median([n_moved / 2**20 / w for w in walls])
        timing.add_row(
            c.label,
            f"{c.wall_s:.3f}",
            f"{min(walls):.3f}-{max(walls):.3f}",
            f"{cps:,.0f}",
            f"{mibs:.1f}",
            f"{c.wall_s / base.wall_s:.2f}x",
            f"{c.med(lambda s: s.out_of_order):.0f}",
        )
    show(console, timing, args.markdown)
    console.print(
        "vs run: this row's wall / the plain run's wall of the same chaos setting (= run's completions/s divided "
        "by this row's). out of order: completions the guest saw arrive out of submission order (median)."
    )

    size = Table(title="blkstress: trace size (median of the recordings)", box=table_box(args.markdown))
    for name in ("recording", "events", "completions", "batches", "trace bytes", "bytes / KiB moved"):
        size.add_column(name, justify="left" if name == "recording" else "right")
    size.add_column("replays verified")
    for recording, replayed in ((rec, rep), (crec, crep)):
        nbytes = recording.med(lambda s: s.trace_bytes)
        size.add_row(
            recording.label,
            f"{recording.med(lambda s: s.events):,.0f}",
            f"{n_done:,}",
            f"{recording.med(lambda s: s.batches):,.0f}",
            f"{nbytes:,.0f}",
            f"{nbytes / (n_moved / 1024):.0f}",
            "yes" if all(s.verified for s in replayed.samples) else "[bold red]NO[/]",
        )
    show(console, size, args.markdown)
    console.print(
        "The trace holds the data of every read (incompressible here: a pseudo-random pattern) and only an "
        "xxh3 digest of every write, so about half of the bytes moved end up in it."
    )

    console.print(
        f"chaos cost: recording with --chaos {CHAOS_SEED} took {crec.wall_s / rec.wall_s:.2f}x as long as without, "
        f"a plain run {crun.wall_s / run.wall_s:.2f}x: the delays are host waiting, paid live with or without a "
        f"trace. Its replay took {crep.wall_s / rep.wall_s:.2f}x a plain replay: it does not wait, but the guest "
        f"idled more often; every idle period adds a warp start and a warp account checkpoint "
        f"({crec.med(lambda s: s.batches):.0f} vs {rec.med(lambda s: s.batches):.0f} record batches)."
    )

    targets = Table(title="targets", box=table_box(args.markdown))
    targets.add_column("target")
    targets.add_column("measured", justify="right")
    targets.add_column("limit", justify="right")
    targets.add_column("status")
    checks: list[bool] = []
    run_walls, rec_walls = [s.wall_s for s in run.samples], [s.wall_s for s in rec.samples]
    ratio = rec.wall_s / run.wall_s
    text, ok = status(ratio, TARGET_RECORD_VS_RUN, max(spread(run_walls), spread(rec_walls)))
    checks.append(ok)
    targets.add_row("record / run, completions per second", f"{ratio:.2f}x", f"<= {TARGET_RECORD_VS_RUN:g}x", text)
    cratio = crec.wall_s / crun.wall_s
    targets.add_row(f"(for information) record / run with --chaos {CHAOS_SEED}", f"{cratio:.2f}x", "", "")
    checks.append(all(s.verified for c in traced if c.kind == "replay" for s in c.samples))
    targets.add_row("every replay verified", "", "", verdict(checks[-1]))
    checks.append(same_checksum)
    targets.add_row(
        "same checksum in every run, recording and replay", ", ".join(sorted(checksums)), "", verdict(same_checksum)
    )
    checks.append(disk_unchanged)
    targets.add_row("disk image unchanged", "", "", verdict(disk_unchanged))
    show(console, targets, args.markdown)
    console.print(
        "Wall times cover the whole library call: ELF load, machine and disk set-up, the run, closing the "
        "backends, and for record/replay opening and closing the trace (record also hashes the disk image "
        "for the trace's metadata). completions/s and MiB/s = the recordings' counts / wall."
    )
    console.print(f"load average {load_average():.2f} at end")
    return 1 if args.check and not all(checks) else 0


if __name__ == "__main__":
    sys.exit(main())
