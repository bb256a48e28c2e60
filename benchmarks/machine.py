"""How fast does rrtool execute guest code, next to what Unicorn can do without it?

rrtool must count every instruction exactly (the virtual clock, timers and
replay stop points all hang on it). Unicorn offers exact counting out of the
box with ``emu_start(count=N)``, but that installs a per-instruction hook; rrtool
instead counts whole translation blocks in a native hook. This script measures
the `compute` guest, a CPU-bound loop, in six configurations in one process:

  a. bare Unicorn, no counting at all, default TLB: what a plain Unicorn user gets;
  a2. bare Unicorn with the virtual TLB mapping code R|X and data R|W, as rrtool
      does (rrtool.machine.pages): the real ceiling on a memory-heavy loop, since
      with the default TLB every store takes Unicorn 2.1.4's slow path;
  a3. a2. with Unicorn's exit check after every load and store turned off, as rrtool
      does (rrtool.machine.exit_checks): everything rrtool does to Unicorn but count, so
      c / a3 is what exact counting (and the machine around it) costs;
  b. Unicorn's own ``count=`` mode: the obvious exact counter;
  c. rrtool's `Machine.run()`, as `rrtool run` does it, with every device;
  c2. the same with Unicorn's exit check after every load and store put back
      (rrtool.machine.exit_checks turns it off): what that change is worth.

and checks the targets: (c) at least 4x faster than (b), within 3x of (a), and
within 3x of (a2). `compute` is the memory-heavy loop: a / a2 is what the store
slow path costs there.
Then it times (a) and (c) on the register-only loop of vs_qemu.py (``qemu/loops.c``), where
no store path is in play and all rrtool adds is the counter and the checkpoints' machinery:
target (c) within 1.5x of (a).
Bare Unicorn cannot report how many instructions it ran, so (a) and (b) are
converted to MIPS with the exact count measured by (c): the guest is
deterministic, so every configuration runs the same instructions.

Run: ``python benchmarks/machine.py [--quick] [--repeats N] [--markdown] [--check]``.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import unicorn as uc
from _common import (
    QUICK_ROUNDS,
    compute_guest,
    environment_line,
    load_average,
    loop_guest,
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
from unicorn import x86_const as x86

from rrtool.board import Board, BoardConfig, regs
from rrtool.machine.config import MachineConfig
from rrtool.machine.cpu import RAM_BASE
from rrtool.machine.exit_checks import set_access_checks
from rrtool.machine.image import GuestImage, load_image
from rrtool.machine.machine import Machine
from rrtool.machine.pages import PF_X
from rrtool.machine.port import EventPort

#: ``count=`` larger than any run, so it never stops the guest; it only makes Unicorn count.
UNBOUNDED_COUNT = 10**12

#: Targets from the performance issue.
TARGET_SPEEDUP_VS_COUNT = 4.0
TARGET_SLOWDOWN_VS_BARE = 3.0
#: On a loop without loads or stores, only the instruction counter separates rrtool run from bare Unicorn.
TARGET_REG_SLOWDOWN_VS_BARE = 1.5
#: Iterations of the register-only loop (21 instructions each): ~1.05G instructions, ~0.2 s bare.
REG_ITERS = 50_000_000
QUICK_REG_ITERS = 10_000_000


@dataclass(frozen=True)
class Sample:
    """One timed run: the wall time of the emulation alone, what the guest printed, its exit code."""

    wall_s: float
    output: bytes
    exit_code: int | None
    icount: int | None = None


def bare_unicorn(
    image: GuestImage, ram_size: int, count: int, virtual_tlb: bool = False, exit_checks: bool = True
) -> Sample:
    """Run the guest on a fresh Unicorn instance set up like rrtool's machine, minus rrtool.

    Memory and registers match `Machine.__init__` (RAM from RAM_BASE to
    ram_size, segments written, RSP at the top of RAM, RIP at the entry). The
    flat GDT is skipped: `compute` takes no interrupts, so it never runs iretq.
    The guest talks to the host only through ``in``/``out`` (a few hundred
    times in ~400M instructions), so two Python instruction hooks for them cost
    nothing measurable and let the guest print its checksum and exit: after the
    EXIT write it runs ``cli; hlt``, and hlt makes ``emu_start`` return.
    ``count=0`` is plain Unicorn; any other value installs its counting hook.
    With ``virtual_tlb`` a Python TLB fill callback maps every page identity, R|X in the image's
    executable segments and R|W elsewhere (a few hundred fills in a run: Python costs nothing here).
    ``exit_checks=False`` translates without Unicorn's exit check after each load and store, as the machine does.
    """
    emu = uc.Uc(uc.UC_ARCH_X86, uc.UC_MODE_64)
    emu.mem_map(RAM_BASE, ram_size - RAM_BASE)
    for seg in image.segments:
        emu.mem_write(seg.vaddr, seg.data)
    if virtual_tlb:
        code = [(seg.vaddr, seg.vaddr + seg.memsz) for seg in image.segments if seg.flags & PF_X]

        def fill(_emu: uc.Uc, vaddr: int, _access: int, entry: Any, _user: object) -> bool:
            entry.paddr = vaddr
            executable = any(start <= vaddr < end for start, end in code)
            entry.perms = uc.UC_PROT_READ | (uc.UC_PROT_EXEC if executable else uc.UC_PROT_WRITE)
            return True

        emu.ctl_set_tlb_mode(uc.UC_TLB_VIRTUAL)
        emu.hook_add(uc.UC_HOOK_TLB_FILL, fill)
    if not exit_checks and not set_access_checks(emu, on=False):
        raise SystemExit("this Unicorn build cannot turn its exit checks off (rrtool.machine.exit_checks)")
    emu.reg_write(x86.UC_X86_REG_RSP, ram_size)
    emu.reg_write(x86.UC_X86_REG_RIP, image.entry)
    output = bytearray()
    exit_codes: list[int] = []
    staged = [0]  # CON_BUF_ADDR: the SDK prints whole strings (address, then length)

    def on_in(_emu: uc.Uc, port: int, size: int, _user: object) -> int:
        return 0  # the ICOUNT registers read as 0: there is no count to give

    def on_out(_emu: uc.Uc, port: int, size: int, value: int, _user: object) -> None:
        if port == regs.CON_DATA:
            output.append(value & 0xFF)
        elif port == regs.CON_BUF_ADDR:
            staged[0] = value & 0xFFFFFFFF
        elif port == regs.CON_BUF_LEN:
            output.extend(_emu.mem_read(staged[0], value & 0xFFFFFFFF))
        elif port == regs.SYS_EXIT:
            exit_codes.append(value & 0xFFFFFFFF)

    emu.hook_add(uc.UC_HOOK_INSN, on_in, None, 1, 0, x86.UC_X86_INS_IN)
    emu.hook_add(uc.UC_HOOK_INSN, on_out, None, 1, 0, x86.UC_X86_INS_OUT)
    start = time.perf_counter()
    emu.emu_start(image.entry, 0, count=count)
    wall = time.perf_counter() - start
    return Sample(wall, bytes(output), exit_codes[0] if exit_codes else None)


def rrtool_run(image: GuestImage, config: MachineConfig, exit_checks_on: bool = False) -> Sample:
    """`rrtool run` minus the CLI: a live machine with the plain event port; only run() is timed.

    ``exit_checks_on`` puts back Unicorn's exit check after every load and store, which the machine turns
    off (rrtool.machine.exit_checks): the row that shows what that is worth.
    """
    machine = Machine(image, config, EventPort(), Board(BoardConfig()), console_sink=None)
    if exit_checks_on:
        set_access_checks(machine.emu, on=True)
        machine.counter.flush()
    start = time.perf_counter()
    result = machine.run()
    wall = time.perf_counter() - start
    if result.reason != "exit":
        raise SystemExit(f"rrtool run did not finish normally: {result.reason}: {result.message}")
    return Sample(wall, result.output, result.exit_code, result.icount)


def fresh(fn: Callable[[], Sample]) -> Callable[[], Sample]:
    """Collect the previous instance's 32 MiB of guest RAM before timing the next one."""

    def wrapped() -> Sample:
        gc.collect()
        return fn()

    return wrapped


def first_line(output: bytes) -> bytes:
    """The checksum line: identical in every configuration (the second line prints rr_icount, 0 when bare)."""
    return output.split(b"\n", 1)[0]


def main() -> int:
    args = parse_args(__doc__.splitlines()[0] if __doc__ else "")
    console = make_console(args.markdown)
    config = MachineConfig()
    with tempfile.TemporaryDirectory(prefix="rrtool-bench-") as tmp:
        path = compute_guest(args.quick, Path(tmp))
        image = load_image(path, config.ram_size)
        console.print(environment_line())
        variant = f"ROUNDS={QUICK_ROUNDS} variant (--quick)" if args.quick else "bundled example"
        console.print(f"guest: compute, {variant}; {args.repeats} run(s) per configuration, median shown")

        names = [
            "a. bare Unicorn, no hooks",
            "a2. bare Unicorn, virtual TLB",
            "a3. a2., exit checks off",
            "b. Unicorn emu_start(count=N)",
            "c. rrtool run (Machine.run)",
            "c2. rrtool run, exit checks on",
        ]
        how = [
            "none",
            "none (TLB: code r-x, data rw-)",
            "none (a2. minus the check per load/store)",
            "per-instruction hook (Unicorn's)",
            "native block hook + devices",
            "c. + Unicorn's check per load/store",
        ]
        runs = repeat(
            args.repeats,
            [
                fresh(lambda: bare_unicorn(image, config.ram_size, 0)),
                fresh(lambda: bare_unicorn(image, config.ram_size, 0, virtual_tlb=True)),
                fresh(lambda: bare_unicorn(image, config.ram_size, 0, virtual_tlb=True, exit_checks=False)),
                fresh(lambda: bare_unicorn(image, config.ram_size, UNBOUNDED_COUNT)),
                fresh(lambda: rrtool_run(image, config)),
                fresh(lambda: rrtool_run(image, config, exit_checks_on=True)),
            ],
        )

    # Same program, same result: otherwise the comparison is meaningless.
    reference = runs[4][0]
    icount = reference.icount
    assert icount is not None
    for name, samples in zip(names, runs, strict=True):
        for s in samples:
            if s.exit_code != 0 or first_line(s.output) != first_line(reference.output):
                raise SystemExit(f"{name}: guest output differs or it did not exit 0: {s.output!r} ({s.exit_code})")
    if any(s.icount != icount for s in runs[4]):
        raise SystemExit("rrtool run counted a different number of instructions on a repeat")

    walls = [median([s.wall_s for s in samples]) for samples in runs]
    bare, bare_fast, bare_unchecked, counted, rr, rr_checked = walls

    table = Table(
        title=f"compute guest, {icount:,} instructions (exact count from c.)",
        box=table_box(args.markdown),
    )
    table.add_column("configuration")
    table.add_column("instruction counting")
    table.add_column("wall s (median)", justify="right")
    table.add_column("min-max s", justify="right")
    table.add_column("MIPS", justify="right")
    table.add_column("speed vs bare", justify="right")
    for name, kind, samples, wall in zip(names, how, runs, walls, strict=True):
        ws = [s.wall_s for s in samples]
        table.add_row(
            name,
            kind,
            f"{wall:.3f}",
            f"{min(ws):.3f}-{max(ws):.3f}",
            f"{mips(icount, wall):.0f}",
            f"{bare / wall:.2f}x",
        )
    show(console, table, args.markdown)

    speedup = counted / rr
    slowdown = rr / bare
    targets = Table(title="targets", box=table_box(args.markdown))
    targets.add_column("ratio")
    targets.add_column("measured", justify="right")
    targets.add_column("target", justify="right")
    targets.add_column("status")
    slowdown_fast = rr / bare_fast
    ok_speed = speedup >= TARGET_SPEEDUP_VS_COUNT
    ok_slow = slowdown <= TARGET_SLOWDOWN_VS_BARE
    ok_fast = slowdown_fast <= TARGET_SLOWDOWN_VS_BARE
    targets.add_row(
        "rrtool run speed-up over count= (b / c wall)",
        f"{speedup:.2f}x",
        f">= {TARGET_SPEEDUP_VS_COUNT:g}x",
        verdict(ok_speed),
    )
    targets.add_row(
        "rrtool run slow-down vs bare (c / a wall)",
        f"{slowdown:.2f}x",
        f"<= {TARGET_SLOWDOWN_VS_BARE:g}x",
        verdict(ok_slow),
    )
    targets.add_row(
        "rrtool run slow-down vs bare with fast stores (c / a2 wall)",
        f"{slowdown_fast:.2f}x",
        f"<= {TARGET_SLOWDOWN_VS_BARE:g}x",
        verdict(ok_fast),
    )
    show(console, targets, args.markdown)
    console.print(
        f"store slow path on this memory-heavy loop (a / a2 wall): {bare / bare_fast:.2f}x; "
        "rrtool keeps stores on the fast path (rrtool.machine.pages), so c. is measured against a2."
    )
    console.print(
        f"Unicorn's exit check after each load and store, turned off by rrtool (c2. / c.): {rr_checked / rr:.2f}x"
    )
    console.print(
        f"exact counting, devices and checkpoints on Unicorn set up as rrtool sets it up (c. / a3.): "
        f"{rr / bare_unchecked:.2f}x; most of it is the counter's block hook, which Unicorn calls from every block"
    )
    console.print(
        "MIPS of a., a2., a3. and b. use c.'s exact instruction count; wall time covers emu_start / Machine.run() only "
        "(no set-up), each on a fresh Unicorn instance, so translation is included."
    )
    ok_reg = register_only(args, console, config)
    console.print(f"load average {load_average():.2f} at end")
    return 1 if args.check and not (ok_speed and ok_slow and ok_fast and ok_reg) else 0


def register_only(args: argparse.Namespace, console: Console, config: MachineConfig) -> bool:
    """The same two-way comparison on vs_qemu.py's register-only loop, where no store path is in play.

    With no loads or stores, bare Unicorn runs at its fastest and every cost rrtool adds is the
    counter's (its native block hook) and the machine's checkpoints: the strictest test of the count.
    """
    iters = QUICK_REG_ITERS if args.quick else REG_ITERS
    with tempfile.TemporaryDirectory(prefix="rrtool-bench-") as tmp:
        image = load_image(loop_guest("BENCH_REG_ITERS", iters, Path(tmp) / "reg.elf"), config.ram_size)
        runs = repeat(
            args.repeats,
            [fresh(lambda: bare_unicorn(image, config.ram_size, 0)), fresh(lambda: rrtool_run(image, config))],
        )
    reference = runs[1][0]
    icount = reference.icount
    assert icount is not None
    for samples in runs:
        for s in samples:
            if s.exit_code != 0 or first_line(s.output) != first_line(reference.output):
                raise SystemExit(f"register-only loop: output differs or it did not exit 0: {s.output!r}")
    bare, rr = (median([s.wall_s for s in samples]) for samples in runs)
    table = Table(
        title=f"register-only loop (benchmarks/qemu/loops.c, {iters:,} iterations), {icount:,} instructions",
        box=table_box(args.markdown),
    )
    for column in ("configuration", "wall s (median)", "min-max s", "ns/insn", "speed vs bare"):
        table.add_column(column, justify="left" if column == "configuration" else "right")
    for name, samples, wall in zip(("a. bare Unicorn, no hooks", "c. rrtool run (Machine.run)"), runs, (bare, rr),
                                   strict=True):  # fmt: skip
        ws = [s.wall_s for s in samples]
        table.add_row(name, f"{wall:.3f}", f"{min(ws):.3f}-{max(ws):.3f}", f"{wall / icount * 1e9:.3f}",
                      f"{bare / wall:.2f}x")  # fmt: skip
    show(console, table, args.markdown)
    ok = rr / bare <= TARGET_REG_SLOWDOWN_VS_BARE
    targets = Table(title="target (register-only loop)", box=table_box(args.markdown))
    for column in ("ratio", "measured", "target", "status"):
        targets.add_column(column, justify="left" if column in ("ratio", "status") else "right")
    targets.add_row("rrtool run slow-down vs bare (c / a wall)", f"{rr / bare:.2f}x",
                    f"<= {TARGET_REG_SLOWDOWN_VS_BARE:g}x", verdict(ok))  # fmt: skip
    show(console, targets, args.markdown)
    return ok


if __name__ == "__main__":
    sys.exit(main())
