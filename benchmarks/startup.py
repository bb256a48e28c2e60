"""How long does a short rrtool command take, and how much memory, as a whole process?

For a guest that runs a few microseconds, start-up is the whole cost: the
interpreter, the imports (typer, rich, Unicorn, capstone, pyarrow), the
machine's set-up and the trace's opening and closing. Issue 11 sets targets
for three commands, each measured here as a child process, `python -m rrtool
...`, the way a user runs it (wall time from spawn to exit, peak RSS from
`wait4`):

  a. `rrtool run hello -q`: under 0.35 s;
  b. `rrtool record hello -o FILE -q`: peak RSS under 100 MiB;
  c. `rrtool replay TRACE -q` of a recording of `timers`: faster than the
     virtual time the trace covers (~0.48 s).

Each command runs once unmeasured first, so the bundled guests are built and
the bytecode caches are written (the children run without
PYTHONDONTWRITEBYTECODE, as an installed rrtool would); then the three are
measured interleaved and the medians compared with the targets. The figures
are whole-process, so they move with the host more than the other benchmarks':
a load average near 1 or above on a 2-core host means they are noisy.

Run: ``python benchmarks/startup.py [--repeats N] [--markdown] [--check]`` (``--quick`` is accepted and
changes nothing: the workloads are already small).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from _common import environment_line, load_average, make_console, median, parse_args, repeat, show, table_box, verdict
from rich.table import Table

#: Issue 11 part 3: `rrtool run hello` as a whole process, in seconds.
TARGET_RUN_S = 0.35
#: Peak RSS of `rrtool record hello`, in MiB.
TARGET_RECORD_MIB = 100.0


@dataclass(frozen=True)
class Sample:
    wall_s: float
    #: user + system CPU time: steadier than wall time when another process shares the host.
    cpu_s: float
    max_rss_mib: float


def child_env() -> dict[str, str]:
    """The benchmark's environment, with this checkout importable and bytecode caching on (as installed)."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


def measure(args: Sequence[str], cwd: Path) -> Sample:
    """One `python -m rrtool ARGS` as a child: wall time from spawn to reaped, and its peak RSS (wait4)."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "rrtool", *args],
        cwd=cwd,
        env=child_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, so Popen must not wait again
    proc.stderr.close()
    if proc.returncode != 0:
        raise SystemExit(f"rrtool {' '.join(args)} exited {proc.returncode}: {err.decode(errors='replace')}")
    return Sample(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)  # ru_maxrss: KiB on Linux


def vclock_end_s(trace: Path, cwd: Path) -> float:
    """The virtual time a trace covers, from `rrtool info --json`."""
    out = subprocess.run([sys.executable, "-m", "rrtool", "info", str(trace), "--json"], cwd=cwd, env=child_env(),
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    return float(json.loads(out)["vclock_end_ns"]) / 1e9


def main() -> int:
    args = parse_args(__doc__.splitlines()[0] if __doc__ else "")
    console = make_console(args.markdown)
    console.print(environment_line())
    console.print(f"{args.repeats} run(s) per command, median shown; each a whole `python -m rrtool` process")
    with tempfile.TemporaryDirectory(prefix="rrtool-bench-") as tmp:
        work = Path(tmp)
        commands: list[tuple[str, list[str]]] = [
            ("a. rrtool run hello -q", ["run", "hello", "-q"]),
            ("b. rrtool record hello -o hello.arrow -q", ["record", "hello", "-o", "hello.arrow", "-q"]),
            ("c. rrtool replay timers.arrow -q", ["replay", "timers.arrow", "-q"]),
        ]
        measure(["record", "timers", "-o", "timers.arrow", "-q"], work)  # builds timers; the trace c. replays
        virtual_s = vclock_end_s(work / "timers.arrow", work)
        for _, argv in commands:  # warm-up: guests built, bytecode cached, page cache hot
            measure(argv, work)
        fns: list[Callable[[], Sample]] = [partial(measure, argv, work) for _, argv in commands]
        runs = repeat(args.repeats, fns)

    table = Table(title="whole-process start-up (python -m rrtool)", box=table_box(args.markdown))
    table.add_column("command")
    table.add_column("wall s (median)", justify="right")
    table.add_column("min-max s", justify="right")
    table.add_column("CPU s (median)", justify="right")
    table.add_column("peak RSS MiB (median)", justify="right")
    walls = [median([s.wall_s for s in samples]) for samples in runs]
    rss = [median([s.max_rss_mib for s in samples]) for samples in runs]
    for (name, _), samples, wall, mib in zip(commands, runs, walls, rss, strict=True):
        ws = [s.wall_s for s in samples]
        cpu = median([s.cpu_s for s in samples])
        table.add_row(name, f"{wall:.3f}", f"{min(ws):.3f}-{max(ws):.3f}", f"{cpu:.3f}", f"{mib:.1f}")
    show(console, table, args.markdown)

    targets = Table(title="targets (issue 11)", box=table_box(args.markdown))
    targets.add_column("figure")
    targets.add_column("measured", justify="right")
    targets.add_column("target", justify="right")
    targets.add_column("status")
    ok_run = walls[0] < TARGET_RUN_S
    ok_rss = rss[1] < TARGET_RECORD_MIB
    ok_replay = walls[2] < virtual_s
    targets.add_row("a. run hello, wall", f"{walls[0]:.3f} s", f"< {TARGET_RUN_S:g} s", verdict(ok_run))
    targets.add_row("b. record hello, peak RSS", f"{rss[1]:.1f} MiB", f"< {TARGET_RECORD_MIB:g} MiB", verdict(ok_rss))
    targets.add_row(
        "c. replay timers, wall vs the virtual time it covers",
        f"{walls[2]:.3f} s",
        f"< {virtual_s:.3f} s",
        verdict(ok_replay),
    )
    show(console, targets, args.markdown)
    console.print(f"load average {load_average():.2f} at end")
    return 1 if args.check and not (ok_run and ok_rss and ok_replay) else 0


if __name__ == "__main__":
    sys.exit(main())
