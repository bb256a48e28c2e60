"""Tasks on the Linux platform: context switches per second, a pipeline's record/run ratio, chaos against a race.

Three tables, each measured side by side in one run:

1. Context switches per second while recording two ping-pong programs: two processes passing a byte
   through two pipes (each switch changes address space: the RAM buffer is remapped under the CPU and
   the translation cache starts over), and two threads of one process doing the same through futexes
   (a switch is a saved and restored CPU context). Switches are the trace's scheduling decisions.
2. busybox `sh -c 'seq 1 20000 | sort -rn | head -3'`: native, run, record and replay (interleaved,
   medians) and the record/run ratio.
3. The data-race program of the tests (`tests/linux_programs/race.c`, two threads incrementing a shared
   counter without a lock): how many seeds until a lost update shows, with `--chaos` and without.

    python benchmarks/tasks.py [--quick] [--repeats N] [--markdown]
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from _common import environment_line, make_console, median, parse_args, repeat, show, table_box
from rich.table import Table

from rrtool.linux.host import LinuxSetup
from rrtool.machine.config import DEFAULT_LINUX_RAM, MachineConfig
from rrtool.machine.port import EventPort
from rrtool.player.session import replay
from rrtool.recorder.live import start
from rrtool.recorder.session import record
from rrtool.schemas.tracefile import open_tracefile

BUSYBOX = Path("/bin/busybox")
RACE_SOURCE = Path(__file__).resolve().parent.parent / "tests" / "linux_programs" / "race.c"
PIPELINE = "seq 1 20000 | sort -rn | head -3"

PROCESS_PINGPONG = r"""
#include <stdlib.h>
#include <unistd.h>
#include <sys/wait.h>
int main(int argc, char **argv) {
    int n = atoi(argv[1]), a[2], b[2];
    char c = 'x';
    pipe(a); pipe(b);
    if (fork() == 0) {
        for (int i = 0; i < n; i++) { read(a[0], &c, 1); write(b[1], &c, 1); }
        return 0;
    }
    for (int i = 0; i < n; i++) { write(a[1], &c, 1); read(b[0], &c, 1); }
    wait(0);
    return 0;
}
"""

THREAD_PINGPONG = r"""
#include <linux/futex.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>
static volatile int turn;
static int n;
static void wait_for(int want) {
    while (turn != want) syscall(SYS_futex, &turn, FUTEX_WAIT_PRIVATE, !want, 0, 0, 0);
}
static void give(int to) { turn = to; syscall(SYS_futex, &turn, FUTEX_WAKE_PRIVATE, 1, 0, 0, 0); }
static void *other(void *arg) {
    (void)arg;
    for (int i = 0; i < n; i++) { wait_for(1); give(0); }
    return 0;
}
int main(int argc, char **argv) {
    pthread_t t;
    n = atoi(argv[1]);
    pthread_create(&t, 0, other, 0);
    for (int i = 0; i < n; i++) { give(1); wait_for(0); }
    pthread_join(t, 0);
    return 0;
}
"""


def _build(tmp: Path, name: str, source: str | Path) -> Path:
    src = source if isinstance(source, Path) else tmp / f"{name}.c"
    if not isinstance(source, Path):
        src.write_text(source)
    out = tmp / name
    subprocess.run(["gcc", "-static", "-O1", "-pthread", "-o", str(out), str(src)], check=True, capture_output=True)
    return out


def _setup(args: tuple[str, ...], root: Path, chaos: int | None = None) -> LinuxSetup:
    return LinuxSetup(args=args, root=root, stdin=False, chaos=chaos, stderr_sink=lambda _b: None)


def _record(program: Path, args: tuple[str, ...], root: Path, trace: Path, chaos: int | None = None) -> float:
    t0 = time.perf_counter()
    result = record(program, trace, config=MachineConfig(ram_size=DEFAULT_LINUX_RAM),
                    linux=_setup(args, root, chaos), console_sink=lambda _b: None)  # fmt: skip
    wall = time.perf_counter() - t0
    assert result.run.ok, result.run.message
    return wall


def _decisions(trace: Path) -> int:
    table = open_tracefile(trace).read_all()
    kinds = table.column("kind").cast(pa.string())
    texts = table.column("text")
    is_decision = pc.and_(pc.equal(kinds, "sched"), pc.invert(pc.is_in(texts, pa.array(["start", "exit"]))))
    return int(pc.sum(pc.cast(pc.fill_null(is_decision, False), pa.int64())).as_py() or 0)


def switches(tmp: Path, quick: bool, repeats: int) -> Table:
    n = 2_000 if quick else 20_000
    table = Table(title=f"Context switches while recording ({n:,} round trips)", box=table_box(False))
    for col in ("program", "switches", "record s (median)", "switches/s", "us per switch"):
        table.add_column(col, justify="left" if col == "program" else "right")
    for name, source in (("two processes, pipes", PROCESS_PINGPONG), ("two threads, futexes", THREAD_PINGPONG)):
        program = _build(tmp, name.split(",")[0].replace(" ", "_"), source)
        trace = tmp / "switch.arrow"
        walls = [_record(program, (str(n),), tmp, trace) for _ in range(repeats)]
        count = _decisions(trace)
        wall = median(walls)
        table.add_row(name, f"{count:,}", f"{wall:.3f}", f"{count / wall:,.0f}", f"{wall / count * 1e6:,.0f}")
    return table


def _run(program: Path, args: tuple[str, ...], root: Path) -> Callable[[], float]:
    def go() -> float:
        t0 = time.perf_counter()
        started = start(program, MachineConfig(ram_size=DEFAULT_LINUX_RAM), EventPort(), linux=_setup(args, root),
                        console_sink=lambda _b: None)  # fmt: skip
        result = started.live.machine.run()
        started.close()
        assert result.ok, result.message
        return time.perf_counter() - t0

    return go


def pipeline(tmp: Path, repeats: int) -> Table:
    args = ("sh", "-c", PIPELINE)
    trace = tmp / "pipeline.arrow"

    def native() -> float:
        t0 = time.perf_counter()
        subprocess.run([str(BUSYBOX), *args], check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - t0

    def replayed() -> float:
        t0 = time.perf_counter()
        assert replay(trace, console_sink=lambda _b: None).verified
        return time.perf_counter() - t0

    _record(BUSYBOX, args, tmp, trace)
    samples = repeat(repeats, [native, _run(BUSYBOX, args, tmp), lambda: _record(BUSYBOX, args, tmp, trace), replayed])
    nat, run, rec, rep = (median(s) for s in samples)
    table = Table(title=f"busybox sh -c '{PIPELINE}': wall seconds (median)", box=table_box(False))
    for col in ("native", "run", "record", "replay", "record/run", "replay/record", "switches"):
        table.add_column(col, justify="right")
    table.add_row(f"{nat:.3f}", f"{run:.3f}", f"{rec:.3f}", f"{rep:.3f}", f"{rec / run:.2f}x", f"{rep / rec:.2f}x",
                  f"{_decisions(trace):,}")  # fmt: skip
    return table


def race(tmp: Path, quick: bool) -> Table:
    program = _build(tmp, "race", RACE_SOURCE)
    iterations = 50_000 if quick else 200_000
    args = (str(iterations),)
    limit = 20
    table = Table(title=f"race.c ({iterations:,} increments per thread): seeds until a lost update shows",
                  box=table_box(False))  # fmt: skip
    for col in ("scheduler", "seeds tried", "first seed with a race", "distinct totals", "record s per seed"):
        table.add_column(col, justify="left" if col == "scheduler" else "right")
    for label, chaos in (("--chaos SEED", True), ("round robin (no chaos)", False)):
        totals: list[int] = []
        first = None
        t0 = time.perf_counter()
        for seed in range(limit):
            out = bytearray()
            result = record(program, tmp / "race.arrow", config=MachineConfig(ram_size=DEFAULT_LINUX_RAM),
                            linux=_setup(args, tmp, seed if chaos else None), console_sink=out.extend)  # fmt: skip
            assert result.run.ok
            total = int(out.split()[-1])
            totals.append(total)
            if total != 2 * iterations and first is None:
                first = seed
        per = (time.perf_counter() - t0) / limit
        table.add_row(label, str(limit), "never" if first is None else str(first), str(len(set(totals))), f"{per:.2f}")
    return table


def main() -> int:
    args = parse_args(__doc__ or "")
    console = make_console(args.markdown)
    console.print(environment_line())
    if not BUSYBOX.is_file():
        console.print("tasks: skipped: Debian's busybox-static is not installed (apt-get install busybox-static)")
        return 0
    with tempfile.TemporaryDirectory(prefix="rrtool-tasks-bench-") as name:
        tmp = Path(name)
        for table in (switches(tmp, args.quick, args.repeats), pipeline(tmp, args.repeats), race(tmp, args.quick)):
            if args.markdown:
                table.box = table_box(True)
            show(console, table, args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
