"""Shared helpers for the benchmark scripts in this directory.

The scripts are run as ``python benchmarks/NAME.py``, so this directory is on
``sys.path`` and they import this module as ``_common``. It holds what both
need to make their numbers comparable and reproducible: the same guest
builds, the same repeat-and-median rule, and a header naming the machine and
versions the figures came from.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import unicorn
from rich import box
from rich.console import Console
from rich.table import Table

import rrtool
from rrtool.guest.build import build_guest, ensure_example, example_source

T = TypeVar("T")

#: Rounds of the short `compute` variant used by ``--quick`` (the bundled example has 72: ~419M instructions).
QUICK_ROUNDS = 20
#: The C loops vs_qemu.py builds for both rrtool and QEMU (``loops.c``), and rrtool's side of them.
QEMU_DIR = Path(__file__).resolve().parent / "qemu"


def parse_args(description: str, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The options every benchmark takes, so they are driven the same way."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--quick", action="store_true", help=f"a shorter compute guest (ROUNDS={QUICK_ROUNDS}) for a fast check"
    )
    parser.add_argument("--repeats", type=int, default=3, help="measurements per figure; the median is shown")
    parser.add_argument(
        "--markdown", action="store_true", help="draw the tables as Markdown (for pasting into a README)"
    )
    parser.add_argument("--check", action="store_true", help="exit with status 1 when a target is missed")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return args


def make_console(markdown: bool) -> Console:
    """A console wide enough that the tables never wrap, also when stdout is a pipe or a file.

    Rich falls back to 80 columns when it cannot see a terminal, which squashes
    the wider tables; the output is meant to be pasted, so fix a width instead.
    Markdown output gets no styling at all, so no escape codes end up in a README.
    """
    return Console(width=160, highlight=False, color_system=None if markdown else "auto")


def table_box(markdown: bool) -> box.Box:
    return box.MARKDOWN if markdown else box.SIMPLE_HEAD


def show(console: Console, table: Table, markdown: bool) -> None:
    """Print a table; in Markdown its title becomes a bold line of its own, so the table pastes cleanly."""
    if markdown and table.title:
        console.print()
        console.print(f"**{table.title}**")
        table.title = None
    console.print(table)


def compute_guest(quick: bool, workdir: Path) -> Path:
    """The `compute` guest: the bundled build, or with ``quick`` a shorter variant built into ``workdir``."""
    if not quick:
        return ensure_example("compute")
    out = workdir / f"compute-rounds{QUICK_ROUNDS}.elf"
    return build_guest([example_source("compute")], out, extra_cflags=[f"-DROUNDS={QUICK_ROUNDS}"])


def loop_guest(macro: str, size: int, out: Path) -> Path:
    """One of ``qemu/loops.c``'s loops as an rrtool SDK guest: ``macro`` (BENCH_REG_ITERS or BENCH_MEM_ROUNDS)
    selects the loop and ``size`` its length. It prints a checksum line, then its own instruction count."""
    return build_guest(
        [QEMU_DIR / "rrtool_main.c", QEMU_DIR / "loops.c"], out, extra_cflags=[f"-I{QEMU_DIR}", f"-D{macro}={size}"]
    )


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def repeat(repeats: int, fns: Sequence[Callable[[], T]]) -> list[list[T]]:
    """Run every function ``repeats`` times, interleaved (a b c a b c ...), and return their results.

    Interleaving spreads slow drifts of the host (another process starting,
    the CPU clocking down) over all configurations instead of charging them
    to whichever happened to run last.
    """
    results: list[list[T]] = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            results[i].append(fn())
    return results


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def load_average() -> float:
    """1-minute load average: on a 2-core host, anything near 1 means another process shared the CPU."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def environment_line() -> str:
    """Where the numbers came from: they only compare within one such line."""
    return (
        f"rrtool {rrtool.__version__}, unicorn {unicorn.__version__}, Python {platform.python_version()}, "
        f"{cpu_model()} x{os.cpu_count()}, load average {load_average():.2f} at start"
    )


def verdict(ok: bool) -> str:
    return "[green]met[/]" if ok else "[bold red]NOT met[/]"


def mips(icount: int, wall_s: float) -> float:
    return icount / wall_s / 1e6 if wall_s > 0 else float("nan")


def spread(values: Sequence[float]) -> float:
    """Run-to-run noise for the target check: interquartile range / median of the repeats.

    With 5 repeats a single slow outlier would make the full range (max - min)
    excuse almost any miss; the quartiles ignore it. Fewer than 4 repeats have
    no meaningful quartiles, so the full range is used.
    """
    if len(values) < 4:
        return (max(values) - min(values)) / statistics.median(values)
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return (q3 - q1) / statistics.median(values)
