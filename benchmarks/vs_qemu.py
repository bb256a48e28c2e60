"""How fast do rrtool's run, record and replay go next to QEMU's TCG, record and replay of the same loop?

QEMU is the tool people would otherwise use to record and replay an emulated
x86-64 machine (``-icount shift=0,rr=record|replay``), so it is the bar rrtool
is held to. This script builds the same two C loops (``qemu/loops.c``, linked
unchanged into both builds, so both run the same machine code) twice:

  - as an rrtool SDK guest (``qemu/rrtool_main.c`` + the SDK, `build_guest`);
  - as a multiboot kernel for ``qemu-system-x86_64 -kernel`` (``qemu/boot.S``
    enters long mode with an identity map, ``qemu/qemu_main.c`` prints on the
    serial port and ends QEMU through ``isa-debug-exit``),

and times, interleaved in one process, for each loop (memory-heavy: the loop
of the `compute` example; register-only: the same mixing arithmetic with no
loads or stores):

  - QEMU: plain TCG (``-accel tcg``), ``-icount shift=0,rr=record`` and
    ``rr=replay`` of that recording;
  - rrtool through its CLI as a user runs it (``python -m rrtool.cli run``,
    ``record``, ``replay``, each a subprocess like QEMU), and in-process
    (the library calls `benchmarks/record_replay.py` times), since that is
    how the other benchmarks measure rrtool.

Every run prints the same checksum, which is compared. Both sides count the
loop's instructions themselves: rrtool with its ICOUNT register, QEMU with
rdtsc under ``-icount shift=0`` (1 ns of virtual time per instruction); the
script checks that they agree. Each row is also run on an empty loop, and
that start-up cost (interpreter and imports for the CLI, process and machine
set-up for QEMU) is subtracted for the "net" figures. The targets compare the
in-process rows (whose start-up is a few ms and steady; the CLI's is 0.4-1.5 s
and noisier than a short run) with QEMU, both net: rrtool record <= 1.0x QEMU
rr=record on both loops, rrtool replay <= 1.0x QEMU rr=replay on the
memory-heavy one. With ``--no-in-process`` they use the CLI's net figures.

Skipped (exit 0, with the reason) when ``qemu-system-x86_64`` or ``objcopy``
is not installed. Run: ``python benchmarks/vs_qemu.py [--scale X] [--quick]
[--repeats N] [--no-in-process] [--markdown] [--check]``.
"""

from __future__ import annotations

import argparse
import gc
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from _common import (
    QEMU_DIR,
    environment_line,
    load_average,
    loop_guest,
    make_console,
    median,
    repeat,
    show,
    table_box,
    verdict,
)
from rich.table import Table

from rrtool._host import find_c_compiler
from rrtool.board import Board, BoardConfig
from rrtool.guest.build import GUEST_CFLAGS
from rrtool.machine.config import MachineConfig
from rrtool.machine.image import load_image
from rrtool.machine.machine import Machine
from rrtool.machine.port import EventPort
from rrtool.player.session import replay
from rrtool.recorder.session import record

#: Sizes at --scale 1: each QEMU run takes about 0.7-1 s on a 2-core host, and rrtool 1-3 s once its
#: store slow path is fixed (see /work/shared/unicorn-notes.md; today the memory-heavy loop takes ~7 s).
MEM_ROUNDS = 250  # ~5.8M instructions per round: ~1.45G
REG_ITERS = 120_000_000  # 21 instructions per iteration: ~2.5G
QUICK_SCALE = 0.25

#: QEMU's exit status when the guest writes 0 to isa-debug-exit: (value << 1) | 1.
QEMU_OK = 1
QEMU_COMMON = [
    "-nodefaults", "-display", "none", "-monitor", "none", "-serial", "stdio", "-m", "64M", "-no-reboot",
    "-accel", "tcg", "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
]  # fmt: skip
#: The two sides read their counters differently (rdtsc vs two 32-bit port reads around the loop), which
#: adds a handful of instructions to one side's figure; a larger gap means different code ran.
COUNT_TOLERANCE = 16
#: Generous per-run timeout: a wedged QEMU or guest must not hang the benchmark forever.
RUN_TIMEOUT_S = 900

#: Targets from the issue (rrtool / QEMU, net of start-up).
TARGET_RATIO = 1.0

CHECKSUM_RE = re.compile(r"^vs_qemu: \w+ \d+ checksum [0-9a-f]{16}$", re.MULTILINE)
INSNS_RE = re.compile(r"^vs_qemu: loop instructions (\d+)$", re.MULTILINE)


@dataclass(frozen=True)
class Loop:
    """One C loop at one size: the macro that selects it in ``loops.h`` and both builds of it."""

    key: str
    label: str
    macro: str
    size: int
    guest: Path
    kernel: Path


@dataclass(frozen=True)
class Sample:
    """One timed command: whole wall time, the guest's checksum line and loop count, the log size."""

    wall_s: float
    checksum: str
    loop_insns: int
    log_bytes: int | None = None


@dataclass(frozen=True)
class Variant:
    """One configuration (a row): who runs, in which mode, and how to run it on a loop."""

    name: str
    side: str  # "qemu", "cli" or "lib"
    mode: str  # "run", "record" or "replay"
    fn: Callable[[Loop, Path], Sample]  # (loop, log file of this loop and side) -> sample
    counts: bool = True  # the loop count it prints is an instruction count (not host ticks)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """`_common.parse_args`'s options plus the sizes and the in-process switch this script needs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the loop sizes (1.0: ~1-3 s per run)")
    parser.add_argument("--quick", action="store_true", help=f"--scale x{QUICK_SCALE:g}, for a fast check")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per figure; the median is shown")
    parser.add_argument("--no-in-process", action="store_true", help="skip the in-process rrtool rows")
    parser.add_argument("--markdown", action="store_true", help="draw the tables as Markdown")
    parser.add_argument("--check", action="store_true", help="exit with status 1 when a target is missed")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.scale <= 0:
        parser.error("--scale must be positive")
    if args.quick:
        args.scale *= QUICK_SCALE
    return args


def missing_tools() -> str | None:
    """Why the comparison cannot run here, or None: QEMU and binutils are not rrtool dependencies."""
    if shutil.which("qemu-system-x86_64") is None:
        return "qemu-system-x86_64 not found (apt-get install qemu-system-x86)"
    if shutil.which("objcopy") is None:
        return "objcopy not found (apt-get install binutils)"
    return None


def build_kernel(define: str, out: Path) -> Path:
    """Link the multiboot kernel as ELF64 with rrtool's guest flags, then convert it to ELF32 for QEMU.

    The same GUEST_CFLAGS as the rrtool guest, so ``loops.c`` compiles to the
    same code in both. ``objcopy -O elf32-i386`` rewrites only the ELF
    container (QEMU's multiboot loader rejects ELF64 with "Cannot load x86-64
    image, give a 32bit one"); the 64-bit code bytes are loaded as they are.
    """
    elf64 = out.with_suffix(".elf64")
    cmd = [
        find_c_compiler("the QEMU kernel"), *GUEST_CFLAGS, f"-I{QEMU_DIR}", f"-D{define}",
        "-T", str(QEMU_DIR / "kernel.ld"), "-Wl,--build-id=none",
        str(QEMU_DIR / "boot.S"), str(QEMU_DIR / "qemu_main.c"), str(QEMU_DIR / "loops.c"), "-o", str(elf64),
    ]  # fmt: skip
    subprocess.run(cmd, check=True)
    subprocess.run(["objcopy", "-O", "elf32-i386", str(elf64), str(out)], check=True)
    return out


def build_loop(key: str, label: str, macro: str, size: int, workdir: Path) -> Loop:
    guest = loop_guest(macro, size, workdir / f"{key}-{size}.elf")
    kernel = build_kernel(f"{macro}={size}", workdir / f"{key}-{size}.kernel")
    return Loop(key, label, macro, size, guest, kernel)


def parse_output(text: str, who: str) -> tuple[str, int]:
    """The checksum line and the loop's instruction count, as both builds print them."""
    checksum = CHECKSUM_RE.search(text)
    insns = INSNS_RE.search(text)
    if checksum is None or insns is None:
        raise SystemExit(f"{who}: unexpected guest output: {text!r}")
    return checksum.group(0), int(insns.group(1))


def timed(cmd: list[str], expect_rc: int, who: str) -> tuple[float, str]:
    """Run a command as a user would (stdin closed), return its wall time and stdout; fail loudly."""
    gc.collect()
    start = time.perf_counter()
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    wall = time.perf_counter() - start
    if proc.returncode != expect_rc:
        raise SystemExit(f"{who}: exit status {proc.returncode} (expected {expect_rc}): {proc.stderr.strip()!r}")
    return wall, proc.stdout


def qemu(extra: Sequence[str], logged: bool, counts: bool) -> Callable[[Loop, Path], Sample]:
    """A QEMU configuration: ``extra`` options, with ``{rrfile}`` replaced by the loop's log path."""

    def fn(loop: Loop, log: Path) -> Sample:
        args = [a.replace("{rrfile}", str(log)) for a in extra]
        binary = shutil.which("qemu-system-x86_64") or "qemu-system-x86_64"
        wall, out = timed([binary, *QEMU_COMMON, *args, "-kernel", str(loop.kernel)], QEMU_OK, f"QEMU {args}")
        checksum, insns = parse_output(out, "QEMU")
        return Sample(wall, checksum, insns if counts else -1, log.stat().st_size if logged else None)

    return fn


def cli(mode: str) -> Callable[[Loop, Path], Sample]:
    """rrtool's CLI in a fresh interpreter, exactly as a user types it (guest output on stdout)."""

    def fn(loop: Loop, trace: Path) -> Sample:
        base = [sys.executable, "-m", "rrtool.cli"]
        if mode == "run":
            cmd = [*base, "run", str(loop.guest)]
        elif mode == "record":
            cmd = [*base, "record", str(loop.guest), "-o", str(trace)]
        else:
            cmd = [*base, "replay", str(trace)]
        wall, out = timed(cmd, 0, f"rrtool {mode}")
        checksum, insns = parse_output(out, f"rrtool {mode}")
        return Sample(wall, checksum, insns, trace.stat().st_size if mode != "run" else None)

    return fn


def lib(mode: str) -> Callable[[Loop, Path], Sample]:
    """rrtool in this process: the library calls behind the CLI, timed from the image or trace path."""

    def fn(loop: Loop, trace: Path) -> Sample:
        gc.collect()
        config = MachineConfig()
        start = time.perf_counter()
        if mode == "run":
            image = load_image(loop.guest, config.ram_size)
            result = Machine(image, config, EventPort(), Board(BoardConfig()), console_sink=None).run()
            output, ok = result.output, result.ok
        elif mode == "record":
            rec = record(loop.guest, trace, config=config)
            output, ok = rec.run.output, rec.run.ok
        else:
            chunks: list[bytes] = []
            rep = replay(trace, console_sink=chunks.append)
            output, ok = b"".join(chunks), rep.verified and rep.complete
        wall = time.perf_counter() - start
        if not ok:
            raise SystemExit(f"rrtool {mode} (in-process) did not finish cleanly or verify")
        checksum, insns = parse_output(output.decode(errors="replace"), f"rrtool {mode} (in-process)")
        return Sample(wall, checksum, insns, trace.stat().st_size if mode != "run" else None)

    return fn


def variants(in_process: bool) -> list[Variant]:
    """The rows, in the order they run within a repeat (a record always before its replay)."""
    rows = [
        Variant("QEMU TCG (-accel tcg)", "qemu", "run", qemu([], logged=False, counts=False), counts=False),
        Variant("QEMU -icount rr=record", "qemu", "record", qemu(["-icount", "shift=0,rr=record,rrfile={rrfile}"],
                logged=True, counts=True)),
        Variant("QEMU -icount rr=replay", "qemu", "replay", qemu(["-icount", "shift=0,rr=replay,rrfile={rrfile}"],
                logged=True, counts=True)),
        Variant("rrtool run (CLI)", "cli", "run", cli("run")),
        Variant("rrtool record (CLI)", "cli", "record", cli("record")),
        Variant("rrtool replay (CLI)", "cli", "replay", cli("replay")),
    ]  # fmt: skip
    if in_process:
        rows += [
            Variant("rrtool run (in-process)", "lib", "run", lib("run")),
            Variant("rrtool record (in-process)", "lib", "record", lib("record")),
            Variant("rrtool replay (in-process)", "lib", "replay", lib("replay")),
        ]
    return rows


def log_path(workdir: Path, loop: Loop, v: Variant) -> Path:
    """One log per loop and side, shared by that side's record and replay rows."""
    return workdir / f"{loop.key}-{loop.size}-{v.side}.{'rr' if v.side == 'qemu' else 'arrow'}"


def check_counts(loop: Loop, rows: list[Variant], samples: list[list[Sample]]) -> int:
    """Same checksum everywhere, one rrtool count, one QEMU count, the two within COUNT_TOLERANCE.

    Returns rrtool's count of the loop's instructions, used for every row's
    per-instruction figures (QEMU's count of the same code is the same within
    the tolerance, so the choice moves nothing).
    """
    checksums = {s.checksum for runs in samples for s in runs}
    if len(checksums) != 1:
        raise SystemExit(f"{loop.label}: the runs printed different checksums: {sorted(checksums)}")
    rr = {s.loop_insns for v, runs in zip(rows, samples, strict=True) if v.side != "qemu" for s in runs}
    qe = {s.loop_insns for v, runs in zip(rows, samples, strict=True) if v.counts and v.side == "qemu" for s in runs}
    if len(rr) != 1 or len(qe) != 1:
        raise SystemExit(f"{loop.label}: instruction counts vary between runs: rrtool {sorted(rr)}, QEMU {sorted(qe)}")
    (rr_count,), (qe_count,) = rr, qe
    if abs(rr_count - qe_count) > COUNT_TOLERANCE:
        raise SystemExit(f"{loop.label}: rrtool counted {rr_count:,} loop instructions, QEMU {qe_count:,}")
    return rr_count


def qemu_version() -> str:
    binary = shutil.which("qemu-system-x86_64") or "qemu-system-x86_64"
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False).stdout
    return out.splitlines()[0] if out else "unknown QEMU version"


def bind(v: Variant, loop: Loop, log: Path) -> Callable[[], Sample]:
    """One row on one loop as a no-argument call, for `repeat` to interleave."""
    return lambda: v.fn(loop, log)


@dataclass(frozen=True)
class Figures:
    """A row's medians on one loop: the whole wall and the wall net of the command's own start-up."""

    wall: float
    net: float  # <= 0 when the run is too short to rise above its start-up's noise


def ratio(a: Figures, b: Figures, net: bool) -> float | None:
    """a / b, or None when a net figure is not above zero (the start-up's noise swallowed the run)."""
    x, y = (a.net, b.net) if net else (a.wall, b.wall)
    return x / y if x > 0 and y > 0 else None


def fmt_ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


PAIRS = {"run": "QEMU TCG (-accel tcg)", "record": "QEMU -icount rr=record", "replay": "QEMU -icount rr=replay"}
#: The issue's targets: (loop, mode) where rrtool must be at most TARGET_RATIO x QEMU's matching row.
TARGETS = [("mem", "record"), ("mem", "replay"), ("reg", "record")]


def loop_table(loop: Loop, insns: int, rows: list[Variant], samples: list[list[Sample]], startup: list[float],
               markdown: bool) -> tuple[Table, dict[str, Figures]]:  # fmt: skip
    """The per-row table of one loop, and each row's figures for the ratio tables."""
    table = Table(title=f"{loop.label}: {insns:,} instructions (counted by both)", box=table_box(markdown))
    for col in ["configuration", "wall s", "min-max s", "start-up s", "ns/insn", "net ns/insn", "net MIPS",
                "log bytes", "log B / M insns"]:  # fmt: skip
        table.add_column(col, justify="left" if col == "configuration" else "right")
    figures: dict[str, Figures] = {}
    for v, runs, fixed in zip(rows, samples, startup, strict=True):
        walls = [s.wall_s for s in runs]
        wall = median(walls)
        net = wall - fixed
        figures[v.name] = Figures(wall, net)
        logs = [float(s.log_bytes) for s in runs if s.log_bytes is not None]
        log = median(logs) if logs else None
        table.add_row(
            v.name, f"{wall:.3f}", f"{min(walls):.3f}-{max(walls):.3f}", f"{fixed:.3f}",
            f"{wall / insns * 1e9:.3f}",
            f"{net / insns * 1e9:.3f}" if net > 0 else "n/a",
            f"{insns / net / 1e6:.0f}" if net > 0 else "n/a",
            "" if log is None else f"{log:,.0f}", "" if log is None else f"{log / insns * 1e6:.2f}",
        )  # fmt: skip
    return table, figures


def main() -> int:
    args = parse_args()
    console = make_console(args.markdown)
    console.print(environment_line())
    reason = missing_tools()
    if reason is not None:
        console.print(f"vs_qemu: skipped: {reason}")
        return 0
    in_process = not args.no_in_process
    rows = variants(in_process)
    with tempfile.TemporaryDirectory(prefix="rrtool-vs-qemu-") as tmp:
        workdir = Path(tmp)
        mem_rounds = max(1, round(MEM_ROUNDS * args.scale))
        reg_iters = max(1, round(REG_ITERS * args.scale))
        loops = [
            build_loop("mem", f"memory-heavy loop (compute's, {mem_rounds} rounds over 1 MiB)", "BENCH_MEM_ROUNDS",
                       mem_rounds, workdir),
            build_loop("reg", f"register-only loop ({reg_iters:,} iterations)", "BENCH_REG_ITERS", reg_iters,
                       workdir),
        ]  # fmt: skip
        empty = build_loop("reg", "empty loop (start-up cost)", "BENCH_REG_ITERS", 0, workdir)
        console.print(f"{qemu_version()}; scale {args.scale:g}; {args.repeats} run(s) of each, interleaved, median")
        fns = [bind(v, loop, log_path(workdir, loop, v)) for loop in [*loops, empty] for v in rows]
        flat = repeat(args.repeats, fns)

    n = len(rows)
    per_loop = [flat[i * n : (i + 1) * n] for i in range(len(loops) + 1)]
    startup = [median([s.wall_s for s in runs]) for runs in per_loop[-1]]
    figures: dict[str, dict[str, Figures]] = {}
    for loop, samples in zip(loops, per_loop, strict=False):
        insns = check_counts(loop, rows, samples)
        table, figures[loop.key] = loop_table(loop, insns, rows, samples, startup, args.markdown)
        show(console, table, args.markdown)

    ratios = Table(title="rrtool / QEMU (wall time; below 1 means rrtool is faster)", box=table_box(args.markdown))
    columns = ["loop", "mode", "QEMU row", "CLI whole", "CLI net", *(["in-process net"] if in_process else [])]
    for col in columns:
        ratios.add_column(col, justify="left" if col in ("loop", "mode", "QEMU row") else "right")
    for loop in loops:
        f = figures[loop.key]
        for mode, q in PAIRS.items():
            cli_row = f[f"rrtool {mode} (CLI)"]
            cells = [fmt_ratio(ratio(cli_row, f[q], net=False)), fmt_ratio(ratio(cli_row, f[q], net=True))]
            if in_process:
                cells.append(fmt_ratio(ratio(f[f"rrtool {mode} (in-process)"], f[q], net=True)))
            ratios.add_row(loop.key, mode, q, *cells)
    show(console, ratios, args.markdown)

    # The in-process rows carry almost no start-up of their own, so their net figure is the stable
    # one; the CLI's start-up (an interpreter and its imports, ~0.4-1.5 s) is noisier than a short run.
    basis = "in-process" if in_process else "CLI"
    targets = Table(title=f"targets (rrtool {basis}, both sides net of start-up)", box=table_box(args.markdown))
    for col in ["ratio", "measured", "target", "status"]:
        targets.add_column(col, justify="left" if col in ("ratio", "status") else "right")
    all_ok = True
    for key, mode in TARGETS:
        value = ratio(figures[key][f"rrtool {mode} ({basis})"], figures[key][PAIRS[mode]], net=True)
        ok = value is not None and value <= TARGET_RATIO
        all_ok &= ok
        targets.add_row(f"{key}: rrtool {mode} / {PAIRS[mode]}", fmt_ratio(value), f"<= {TARGET_RATIO:g}x",
                        verdict(ok))  # fmt: skip
    show(console, targets, args.markdown)
    console.print(
        "wall s: the whole command, process start to exit (in-process rows: the library call). start-up s: the "
        "same row on an empty loop; net = wall - start-up. Per-instruction figures use the loop's instruction "
        "count, which rrtool (its ICOUNT register) and QEMU (rdtsc under -icount shift=0) both measure, and which "
        "the script checks agree; plain TCG cannot count. log bytes: QEMU's rrfile, rrtool's trace file."
    )
    console.print(f"load average {load_average():.2f} at end")
    return 1 if args.check and not all_ok else 0


if __name__ == "__main__":
    sys.exit(main())
