"""Linux programs side by side: native, qemu-x86_64, rrtool run, record and replay, in one run.

Two workloads nobody here wrote: Debian's static busybox computing `sha256sum` of a 64 MiB file (a
loop of read calls over a register-heavy hash), and a C program linked statically against Debian's
libsqlite3.a that inserts 10,000 rows in transactions and queries them through an index (memory-heavy,
with pwrite/fdatasync/fcntl calls). Every variant runs the same binary on the same files, interleaved
(a b c d e, a b c d e, ...), and the table shows medians, the ratios the Linux-platform issue sets
targets for, and system calls per second.

Targets: record within 1.3x of run; run within 2x of qemu-x86_64 on the SQLite workload.
qemu-x86_64 is Debian's qemu-user; without it that column is skipped with the reason.

    python benchmarks/linux.py [--quick] [--repeats N] [--markdown] [--check]
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from _common import environment_line, make_console, median, parse_args, repeat, show, table_box, verdict
from rich.table import Table

from rrtool.linux.host import LinuxSetup
from rrtool.machine.config import DEFAULT_LINUX_RAM, MachineConfig
from rrtool.machine.port import EventPort
from rrtool.player.session import replay
from rrtool.recorder.live import start
from rrtool.recorder.session import record

BUSYBOX = Path("/bin/busybox")
SQLITE_SOURCE = Path(__file__).resolve().parent.parent / "tests" / "linux_programs" / "sqlite_rows.c"
RECORD_OVER_RUN = 1.3
RUN_OVER_QEMU = 2.0


@dataclass(frozen=True)
class Workload:
    name: str
    program: Path
    args: tuple[str, ...]
    root: Path


@dataclass
class Sample:
    wall_s: float
    calls: int = 0


def _subprocess(argv: list[str], cwd: Path) -> Callable[[], Sample]:
    def go() -> Sample:
        start_s = time.perf_counter()
        subprocess.run(argv, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
        return Sample(time.perf_counter() - start_s)

    return go


def _run(w: Workload) -> Callable[[], Sample]:
    def go() -> Sample:
        port = EventPort()
        setup = LinuxSetup(args=w.args, root=w.root, stdin=False)
        t0 = time.perf_counter()
        started = start(w.program, MachineConfig(ram_size=DEFAULT_LINUX_RAM), port, linux=setup)
        result = started.live.machine.run()
        started.close()
        wall = time.perf_counter() - t0
        assert result.ok, result.message
        return Sample(wall, started.live.kernel.calls)  # type: ignore[attr-defined]

    return go


def _record(w: Workload, trace: Path) -> Callable[[], Sample]:
    def go() -> Sample:
        t0 = time.perf_counter()
        result = record(w.program, trace, config=MachineConfig(ram_size=DEFAULT_LINUX_RAM),
                        linux=LinuxSetup(args=w.args, root=w.root, stdin=False))  # fmt: skip
        wall = time.perf_counter() - t0
        assert result.run.ok, result.run.message
        return Sample(wall, result.counts.get("syscall", 0))

    return go


def _replay(trace: Path) -> Callable[[], Sample]:
    def go() -> Sample:
        t0 = time.perf_counter()
        result = replay(trace)
        wall = time.perf_counter() - t0
        assert result.verified, result.divergence
        return Sample(wall)

    return go


def workloads(tmp: Path, quick: bool) -> list[Workload]:
    root = tmp / "root"
    root.mkdir()
    size = (8 if quick else 64) << 20
    block = os.urandom(1 << 20)
    with (root / "big.bin").open("wb") as f:
        for _ in range(size >> 20):
            f.write(block)
    sqlite = tmp / "sqlite_rows"
    subprocess.run(["gcc", "-static", "-O2", "-o", str(sqlite), str(SQLITE_SOURCE), "-lsqlite3", "-lm", "-lpthread"],
                   check=True, capture_output=True)  # fmt: skip
    rows = "2000" if quick else "10000"
    return [
        Workload(f"busybox sha256sum, {size >> 20} MiB", BUSYBOX, ("sha256sum", "big.bin"), root),
        Workload(f"SQLite, {rows} rows", sqlite, ("bench.db", rows), root),
    ]


def main() -> int:
    args = parse_args(__doc__ or "")
    console = make_console(args.markdown)
    console.print(environment_line())
    if not BUSYBOX.is_file():
        console.print("linux: skipped: Debian's busybox-static is not installed (apt-get install busybox-static)")
        return 0
    qemu = shutil.which("qemu-x86_64")
    if qemu is None:
        console.print("linux: qemu-x86_64 column skipped: Debian's qemu-user is not installed")
    table = Table(title="Linux programs: wall seconds (median) and ratios", box=table_box(args.markdown))
    for col in ("workload", "native", "qemu-x86_64", "run", "record", "replay", "record/run", "run/qemu",
                "replay/record", "calls/s (record)"):  # fmt: skip
        table.add_column(col, justify="left" if col == "workload" else "right")
    ok = True
    with tempfile.TemporaryDirectory(prefix="rrtool-linux-bench-") as tmp_name:
        tmp = Path(tmp_name)
        for w in workloads(tmp, args.quick):
            trace = tmp / "trace.arrow"
            _record(w, trace)()  # a trace for the first replay, and a warm page cache
            native = [str(w.program), *w.args]
            fns = [_subprocess(native, w.root), _run(w), _record(w, trace), _replay(trace)]
            if qemu is not None:
                fns.append(_subprocess([qemu, *native], w.root))
            samples = repeat(args.repeats, fns)
            nat, run, rec, rep = (median([s.wall_s for s in col]) for col in samples[:4])
            qem = median([s.wall_s for s in samples[4]]) if qemu is not None else None
            calls = samples[2][0].calls
            rec_run = rec / run
            run_qemu = run / qem if qem else None
            if rec_run > RECORD_OVER_RUN:
                ok = False
            if "SQLite" in w.name and run_qemu is not None and run_qemu > RUN_OVER_QEMU:
                ok = False
            table.add_row(
                w.name, f"{nat:.3f}", f"{qem:.3f}" if qem else "-", f"{run:.3f}", f"{rec:.3f}", f"{rep:.3f}",
                f"{rec_run:.2f}x {verdict(rec_run <= RECORD_OVER_RUN)}",
                "-" if run_qemu is None else f"{run_qemu:.2f}x" + (f" {verdict(run_qemu <= RUN_OVER_QEMU)}"
                                                                     if "SQLite" in w.name else ""),
                f"{rep / rec:.2f}x", f"{calls / rec:,.0f}",
            )  # fmt: skip
    show(console, table, args.markdown)
    console.print(f"targets: record/run <= {RECORD_OVER_RUN}x; run/qemu-x86_64 <= {RUN_OVER_QEMU}x on SQLite")
    return 1 if args.check and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
