"""Time travel over a replay: go to any instruction, step either way, continue either way to a breakpoint.

A `Timeline` is one replay that can move. Every position is an exact icount
N: the machine after N instructions and after everything the machine does at
N (checkpoints, their inputs, an interrupt delivered), so the next
instruction to run is the (N+1)-th. Moving is always forward: to go back, the
timeline restores the nearest snapshot at or before the target and replays
forward from it (QEMU's and rr's way), so every instruction it shows was
replayed and every checkpoint on the way was verified against the log.

Snapshots (`rrtool.machine.snapshot`) are taken at multiples of `every`
instructions as the replay passes them, and thinned when they outgrow the
memory budget: the one whose removal leaves the smallest gap for its distance
from the present goes first, so they stay dense near where the user is and
thin out exponentially into the past, as rr's are. The snapshot at icount 0 is
never dropped.

Breakpoints and watchpoints are Unicorn hooks that only *collect* hits: a hit
is an exact icount, and the timeline then seeks to it. Reverse-continue runs
forward from the snapshot before the present to the present, collecting,
stops at the last hit, and steps back a snapshot at a time while there is
none. Nothing here writes guest state: a replay cannot change the past.
"""

from __future__ import annotations

import bisect
import functools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import unicorn as uc
from unicorn import x86_const as x86

from rrtool.machine.pages import PAGE_SIZE
from rrtool.machine.snapshot import Snapshot, capture, restore, unshared_pages
from rrtool.machine.units import EventRejected
from rrtool.player.divergence import Divergence, TraceEnd
from rrtool.player.session import as_divergence, build_replay, trailing_rows
from rrtool.schemas.tracefile import TraceFile, open_tracefile

#: Default memory budget for snapshots (`--snapshot-memory`).
DEFAULT_SNAPSHOT_MEMORY = 256 << 20
#: With the default cadence, a snapshot waits until the replay ran this many times what the last one cost.
OVERHEAD_FACTOR = 25
#: A step back from further than this past the nearest snapshot first leaves a snapshot near the target.
NEAR = 200_000
#: How far a continue runs before it looks at Ctrl-C again (a few milliseconds of guest time).
CHUNK = 2_000_000

# Why a timeline stopped.
STEP = "step"  # reached the requested icount
BREAKPOINT = "breakpoint"
WATCH = "watch"  # a write to a watched range
RWATCH = "rwatch"  # a read
AWATCH = "awatch"  # either
INTERRUPTED = "interrupted"  # Ctrl-C
BEGIN = "begin"  # the start of the recording, going backward
END = "end"  # the end of the recording, going forward
DIVERGED = "diverged"  # the replay stopped matching its log

WATCH_KINDS = {"write": WATCH, "read": RWATCH, "access": AWATCH}


class TimelineError(Exception):
    """A request no replay can meet (an icount past the end, memory outside the guest); one line for the user."""


@dataclass(frozen=True)
class Stop:
    """Where a move ended and why; `address` is the watched address for a watchpoint stop."""

    reason: str
    icount: int
    pc: int
    address: int | None = None
    divergence: Divergence | None = None


@dataclass(frozen=True)
class Watchpoint:
    kind: str  # write, read or access
    addr: int
    length: int


@dataclass
class _Hit:
    icount: int
    reason: str
    address: int | None = None


@dataclass
class _Collect:
    """The window of a run that collects hits: (after, before] in icounts; forward runs stop at the first."""

    after: int
    before: int
    first_only: bool
    hits: list[_Hit] = field(default_factory=list)


class Timeline:
    """One replay of `trace_path` that can be moved to any icount; see the module docstring."""

    def __init__(
        self,
        trace_path: Path,
        *,
        image: Path | None = None,
        force: bool = False,
        snapshot_memory: int = DEFAULT_SNAPSHOT_MEMORY,
        every: int | None = None,
    ) -> None:
        self.path = trace_path
        self._trace: TraceFile = open_tracefile(trace_path)
        try:
            self._open(image, force, snapshot_memory, every)
        except BaseException:
            self._trace.close()  # nothing keeps the file mapped after a failed start
            raise

    def _open(self, image: Path | None, force: bool, snapshot_memory: int, every: int | None) -> None:
        # Replay re-reads batches from the middle after a restore; the order of every row is
        # checked once, up front, rather than only on the first pass.
        self._trace.verify()
        self.machine, self.port = build_replay(self._trace, self.path, image, force)
        self.machine.time_travel = True
        self.complete = self._trace.complete
        self.checkpoints, self.last_icount = self._trace.totals()
        self.every = every if every is not None else max(100_000, self.last_icount // 256)
        self.snapshot_memory = snapshot_memory
        self._snapshots: list[Snapshot] = []
        self._costs: dict[int, int] = {}  # id(snapshot) -> pages it holds that its predecessor does not
        self._baseline: Snapshot | None = None  # what the dirty marks are relative to
        self._previous: Snapshot | None = None  # the baseline of the newest capture
        self._captures = 0
        #: Pages a checked capture found changed without a dirty mark: 0 unless a host write is unmarked.
        self.missed_pages = 0
        self.check_every = 32
        self._adaptive = every is None
        self._ran_s = 0.0  # replay time since the last snapshot
        self._rate = 0.0  # instructions per second of the last stretch of replay
        self._capture_s = 0.0005  # what the last (unchecked) snapshot cost; a first guess until one is taken
        self._breakpoints: dict[int, Any] = {}
        self._watchpoints: dict[Watchpoint, Any] = {}
        self._collect: _Collect | None = None
        self.divergence: Divergence | None = None
        self._ran_out = False
        self._guard(self.machine.start)
        self._snapshot()

    # -- lifecycle -------------------------------------------------------------
    def close(self) -> None:
        self._trace.close()

    def __enter__(self) -> Timeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- where we are ------------------------------------------------------------
    @property
    def icount(self) -> int:
        return self.machine.icount

    @property
    def pc(self) -> int:
        return self.machine.pc

    @property
    def checkpoint(self) -> int:
        """The last checkpoint the replay went through."""
        return self.machine.checkpoint_id

    @property
    def at_end(self) -> bool:
        """The machine ended (as the recording did), diverged, or the trace (cut short) has no more to replay."""
        return self.machine.result is not None or self.divergence is not None or self._ran_out

    @property
    def snapshot_count(self) -> int:
        return len(self._snapshots)

    @property
    def snapshot_bytes(self) -> int:
        """Pages held (a page shared by neighbours counted once) plus each snapshot's page table."""
        pages = sum(self._costs.values())
        return pages * (PAGE_SIZE + 64) + sum(len(s.pages) * 48 + len(s.kinds) + 4096 for s in self._snapshots)

    # -- moving -----------------------------------------------------------------
    def seek(self, icount: int) -> Stop:
        """Go to exactly `icount`; past the end of the recording is a `TimelineError`."""
        self.check_icount(icount)
        self._go(icount)
        return self._stop(STEP if self.icount == icount else END)

    def check_icount(self, icount: int) -> None:
        """A `TimelineError` unless the recording has a position `icount`."""
        if icount < 0:
            raise TimelineError(f"icount {icount} is before the start of the recording")
        if icount > self.last_icount:
            raise TimelineError(
                f"icount {icount:,} is past the end of the recording (its last is {self.last_icount:,})"
            )

    def seek_checkpoint(self, checkpoint: int) -> Stop:
        """Go to the icount of checkpoint `checkpoint` (after everything at that icount)."""
        return self.seek(self.checkpoint_icount(checkpoint))

    def checkpoint_icount(self, checkpoint: int) -> int:
        """The icount of checkpoint `checkpoint`, from the one batch of the trace that holds it."""
        if not 0 <= checkpoint < self.checkpoints:
            raise TimelineError(f"checkpoint {checkpoint} is not in the recording (it has 0 to {self.checkpoints - 1})")
        index = self._trace.find_batch(checkpoint)
        assert index is not None
        batch = self._trace.batch(index)[0].to_pylist()
        return int(next(r["icount"] for r in batch if r["kind"] == "checkpoint" and r["checkpoint"] == checkpoint))

    def step(self) -> Stop:
        """One instruction forward (stepi)."""
        if self.at_end:
            return self._stop(END)
        target = self.icount + 1
        self._forward(target)
        return self._stop(STEP if self.icount == target else END)

    def reverse_step(self) -> Stop:
        """One instruction back (reverse-stepi); at icount 0 it stays and says so."""
        if self.icount == 0:
            return self._stop(BEGIN)
        target = self.icount - 1
        snap = self._before(target)
        if target - snap.icount > NEAR:
            # Stepping back tends to go on (reverse-next is stepi after stepi): a snapshot a little before
            # the target makes each following step back replay at most NEAR instructions, not a whole gap.
            self._go(target - NEAR // 2)
            self.keep_snapshot()
        self._go(target)
        return self._stop(STEP if self.icount == target else END)  # a divergence on the way says so

    def cont(self, interrupt: threading.Event | None = None) -> Stop:
        """Forward to the first breakpoint or watchpoint hit, the end, or Ctrl-C (`interrupt`)."""
        start = self.icount
        if self.at_end:
            return self._stop(END)
        self._collect = _Collect(after=start, before=1 << 64, first_only=True)
        try:
            while not self.at_end:
                if interrupt is not None and interrupt.is_set():
                    return self._stop(INTERRUPTED)
                self._forward(self.icount + CHUNK)
                if self._collect.hits:
                    break
            hits = self._collect.hits
        finally:
            self._collect = None
        if not hits:
            return self._stop(END)
        hit = min(hits, key=lambda h: h.icount)
        self._go(hit.icount)
        return self._stop(hit.reason, hit.address)

    def reverse_cont(self, interrupt: threading.Event | None = None) -> Stop:
        """Backward to the last breakpoint or watchpoint hit before here, the start, or Ctrl-C.

        A watchpoint going backward stops before the instruction that made the access, so that
        instruction is the next one forward: the value there is the one before the write.
        """
        present = self.icount
        while present > 0:
            if interrupt is not None and interrupt.is_set():
                self._go(present)  # as far back as the search got
                return self._stop(INTERRUPTED)
            snap = self._before(present - 1)
            self._restore(snap)
            self._collect = _Collect(after=snap.icount - 1, before=present, first_only=False)
            try:
                # To `present`, not present-1: a breakpoint at position present-1 is seen when the
                # instruction there runs, which is the step from present-1 to present.
                while not self.at_end and self.icount < present:
                    if interrupt is not None and interrupt.is_set():
                        break
                    self._forward(min(present, self.icount + CHUNK))
                hits = [h for h in self._collect.hits if h.icount < present]
            finally:
                self._collect = None
            if interrupt is not None and interrupt.is_set():
                continue  # the window was not searched to its end: its hits so far may not be the last
            if hits:
                hit = max(hits, key=lambda h: h.icount)
                self._go(hit.icount)
                return self._stop(hit.reason, hit.address)
            present = snap.icount
        self._go(0)
        return self._stop(BEGIN)

    def run_to_end(self) -> Stop:
        """Forward to the end, verifying every checkpoint on the way (breakpoints ignored)."""
        while not self.at_end:
            self._forward(self.icount + CHUNK * 16)
        return self._stop(END)

    # -- breakpoints and watchpoints -------------------------------------------
    def add_breakpoint(self, addr: int) -> None:
        if addr in self._breakpoints:
            return
        self._breakpoints[addr] = self.machine.emu.hook_add(uc.UC_HOOK_CODE, self._on_code, None, addr, addr)
        self.machine.counter.flush()  # blocks translated without the hook would never call it

    def remove_breakpoint(self, addr: int) -> None:
        hook = self._breakpoints.pop(addr, None)
        if hook is not None:
            self.machine.emu.hook_del(hook)
            self.machine.counter.flush()

    def add_watchpoint(self, kind: str, addr: int, length: int) -> None:
        if kind not in WATCH_KINDS:
            raise TimelineError(f"unknown watchpoint kind {kind!r} (write, read or access)")
        if length < 1:
            raise TimelineError("a watchpoint covers at least one byte")
        wp = Watchpoint(kind, addr, length)
        if wp in self._watchpoints:
            return
        types = {"write": uc.UC_HOOK_MEM_WRITE, "read": uc.UC_HOOK_MEM_READ}.get(
            kind, uc.UC_HOOK_MEM_READ | uc.UC_HOOK_MEM_WRITE
        )

        def on_access(_emu: uc.Uc, access: int, address: int, size: int, _value: int, _user: object) -> None:
            self._on_access(wp, address, size)

        self._watchpoints[wp] = self.machine.emu.hook_add(types, on_access, None, addr, addr + length - 1)
        self.machine.counter.flush()
        self.machine.host_write_observer = self._on_host_write

    def remove_watchpoint(self, kind: str, addr: int, length: int) -> None:
        hook = self._watchpoints.pop(Watchpoint(kind, addr, length), None)
        if hook is not None:
            self.machine.emu.hook_del(hook)
            self.machine.counter.flush()
        if not self._watchpoints:
            self.machine.host_write_observer = None

    def _on_code(self, _emu: uc.Uc, address: int, _size: int, _user: object) -> None:
        """The instruction at a breakpoint is about to run: the position is the count before it."""
        col = self._collect
        if col is None:
            return
        counter = self.machine.counter
        # Under the counter's single-step tail this hook runs before the counter's own (it was added
        # first), so the count does not include this instruction yet; in block mode icount_at does.
        before = counter.icount if counter.stepping else counter.icount_at(address) - 1
        self._hit(col, _Hit(before, BREAKPOINT))

    def _on_access(self, wp: Watchpoint, address: int, size: int) -> None:
        col = self._collect
        if col is None:
            return
        if address + size <= wp.addr or address >= wp.addr + wp.length:
            return
        after = self.machine.now()  # includes the accessing instruction
        forward = col.first_only
        self._hit(col, _Hit(after if forward else after - 1, WATCH_KINDS[wp.kind], max(address, wp.addr)))

    def _on_host_write(self, address: int, size: int) -> None:
        """The host wrote guest memory: a system call's result (from its hook, at the `syscall` instruction)
        or a device's DMA (at a checkpoint, between instructions), seen by write and access watchpoints."""
        col = self._collect
        if col is None:
            return
        running = self.machine.running
        after = self.machine.now()  # in a hook: including the instruction; at a checkpoint: that position
        for wp in self._watchpoints:
            if wp.kind != "read" and address < wp.addr + wp.length and wp.addr < address + size:
                # Going back, stop before the system call; a checkpoint's write has no position before it.
                at = after if col.first_only or not running else after - 1
                self._hit(col, _Hit(at, WATCH_KINDS[wp.kind], max(address, wp.addr)))

    def _hit(self, col: _Collect, hit: _Hit) -> None:
        if not col.after < hit.icount < col.before:
            return
        col.hits.append(hit)
        if col.first_only:
            self.machine.pause_soon()

    # -- state -------------------------------------------------------------------
    def registers(self) -> dict[str, int]:
        """The registers gdb's x86-64 description names, by those names."""
        return read_registers(self.machine.emu)

    def read_memory(self, addr: int, length: int) -> bytes:
        """Guest memory; outside RAM (or unmapped for a Linux process) is a `TimelineError`."""
        if length < 0 or not self.machine.ram_ok(addr, length):
            raise TimelineError(f"cannot read {length} bytes at {addr:#x}: not guest memory")
        if length and not any(s <= addr and addr + length <= e for s, e in self.guest_ranges()):
            raise TimelineError(f"cannot read {length} bytes at {addr:#x}: not mapped")
        return self.machine.mem_read(addr, length)

    def guest_ranges(self) -> list[tuple[int, int]]:
        """The memory `read_memory` reads: a board guest's RAM, a Linux process's mappings."""
        return self.machine.guest_ranges()

    def memory_digest(self) -> int:
        return self.machine.memory_digest()

    def register_digest(self) -> int:
        return self.machine.register_digest()

    def device_digest(self) -> int:
        return self.machine.device_digest()

    def disassemble(self, pc: int | None = None, count: int = 1) -> list[str]:
        return self.machine.disassemble(self.pc if pc is None else pc, count)

    # -- inside ------------------------------------------------------------------
    def _stop(self, reason: str, address: int | None = None) -> Stop:
        if self.divergence is not None:
            reason = DIVERGED
        return Stop(reason, self.icount, self.pc, address, self.divergence)

    def _go(self, target: int) -> None:
        """Be at `target`: forward from here when that is closest, else from the snapshot before it."""
        here = self.icount
        snap = self._before(target)
        if not (here <= target and not self.at_end and here >= snap.icount):
            self._restore(snap)
        self._forward(target)

    def _before(self, icount: int) -> Snapshot:
        best = self._snapshots[0]
        for snap in self._snapshots:
            if snap.icount <= icount:
                best = snap
            else:
                break
        return best

    def _restore(self, snap: Snapshot) -> None:
        restore(self.machine, snap, self._baseline)
        self._baseline = snap
        self.divergence = None
        self._ran_out = False

    def _forward(self, target: int, *, snapshots: bool = True) -> None:
        """Run forward to `target` (or the end, or a first hit), snapshotting at multiples of `every`."""
        m = self.machine
        while not self.at_end and m.icount < target:
            nxt = self._next_snapshot_at()
            pause = min(target, nxt) if snapshots else target
            started, before = time.perf_counter(), m.icount
            result = self._guard(functools.partial(m.advance, pause))
            took = time.perf_counter() - started
            self._ran_s += took
            if took > 0.001 and m.icount > before:
                self._rate = (m.icount - before) / took
            if result is not None or self.divergence is not None:
                return
            if snapshots and m.icount == nxt and m.icount % self.every == 0 and self._worth_a_snapshot():
                self._snapshot()
            if self._collect is not None and self._collect.first_only and self._collect.hits:
                return

    def _guard(self, fn: Callable[[], Any]) -> Any:
        """Run `fn` on the machine; a divergence or the end of the log becomes the timeline's state."""
        try:
            result = fn()
        except (Divergence, EventRejected, TraceEnd) as exc:
            self.divergence = as_divergence(exc, self.machine, self.port, self.complete)
            self._ran_out = isinstance(exc, TraceEnd)  # a recording cut short: its end is here
            return None
        if result is not None:
            self.divergence = trailing_rows(self.machine, self.port, result)
        return result

    def _next_snapshot_at(self) -> int:
        """The next multiple of `every` where a snapshot may be taken.

        With the default cadence, the multiples before the replay will have run long enough (at its
        last measured speed) are skipped: each pause splits a block, which costs a little.
        """
        icount = self.machine.icount
        if self._adaptive and self._rate:
            owed = OVERHEAD_FACTOR * self._capture_s - self._ran_s
            if owed > 0:
                icount += int(owed * self._rate)
        return (icount // self.every + 1) * self.every

    def _worth_a_snapshot(self) -> bool:
        """With the default cadence, a snapshot only once the replay ran OVERHEAD_FACTOR times what one costs.

        So snapshots cost a replay at most about 1/OVERHEAD_FACTOR of its time on any guest, however
        many pages it dirties; where they fall depends on the host's speed, which changes no result,
        only how far a seek runs. An explicit `every` snapshots at each multiple (tests, benchmarks).
        """
        return not self._adaptive or self._ran_s >= OVERHEAD_FACTOR * self._capture_s

    def keep_snapshot(self) -> None:
        """Snapshot the present now, whatever the cadence (a seek that will look just behind it)."""
        self._snapshot()

    def _snapshot(self) -> None:
        icount = self.icount
        if self.at_end and self.machine.result is None:
            return  # diverged or ran out: not a state a replay reaches, so never one to come back to
        if any(s.icount == icount for s in self._snapshots):
            return
        self._captures += 1
        started = time.perf_counter()
        # Every check_every-th capture reads all of RAM too and compares: a host write that forgot its
        # dirty mark would show here (and be corrected) rather than in a restore.
        n = self._captures
        check = n % self.check_every == 0
        snap = capture(self.machine, self._baseline, check=check)
        self.missed_pages += snap.missed
        self._previous, self._baseline = self._baseline, snap
        if not check and self._previous is not None:  # a first or checked capture reads all of RAM: not the usual
            # At most twice the last estimate: one capture that a gen-2 garbage collection or a host stall
            # made 50x slower (30 ms, measured) would otherwise hold off snapshots for 25x that (0.75 s of
            # replay, 500M instructions of a busy guest), and a Ctrl-C in a reverse search over that gap
            # finds nothing searched. A guest that really dirties more pages gets there in a few captures.
            self._capture_s = min(time.perf_counter() - started, 2 * self._capture_s)
        self._ran_s = 0.0
        snaps = self._snapshots
        i = bisect.bisect_left([s.icount for s in snaps], icount)
        snaps.insert(i, snap)
        if i and snaps[i - 1] is self._previous and snap.changed is not None:
            self._costs[id(snap)] = snap.changed  # the capture counted them: no walk over every page
        else:
            self._cost(i)
        self._cost(i + 1)
        self._thin()

    def _cost(self, i: int) -> None:
        snaps = self._snapshots
        if i < len(snaps):
            self._costs[id(snaps[i])] = unshared_pages(snaps[i], snaps[i - 1] if i else None)

    def _thin(self) -> None:
        """Drop snapshots while over budget, keeping them dense near the present (module docstring)."""
        present = self.icount
        while self.snapshot_bytes > self.snapshot_memory and len(self._snapshots) > 2:
            snaps = self._snapshots
            best, score = None, 0.0
            for i in range(1, len(snaps)):
                after = snaps[i + 1].icount if i + 1 < len(snaps) else max(present, snaps[i].icount + 1)
                gap = after - snaps[i - 1].icount
                value = gap / (abs(present - snaps[i].icount) + self.every)
                if best is None or value < score:
                    best, score = i, value
            assert best is not None
            dropped = snaps.pop(best)
            del self._costs[id(dropped)]
            self._cost(best)


#: gdb's amd64 register names and Unicorn's ids; `rrtool.player.gdbtarget.REGISTERS` describes the same set
#: to gdb (a test checks the two agree).
GPRS = ["rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"]
_IDS: dict[str, int] = {name: getattr(x86, f"UC_X86_REG_{name.upper()}") for name in GPRS}
_IDS.update(rip=x86.UC_X86_REG_RIP, eflags=x86.UC_X86_REG_EFLAGS, cs=x86.UC_X86_REG_CS, ss=x86.UC_X86_REG_SS,
            ds=x86.UC_X86_REG_DS, es=x86.UC_X86_REG_ES, fs=x86.UC_X86_REG_FS, gs=x86.UC_X86_REG_GS,
            fs_base=x86.UC_X86_REG_FS_BASE, gs_base=x86.UC_X86_REG_GS_BASE, fctrl=x86.UC_X86_REG_FPCW,
            fstat=x86.UC_X86_REG_FPSW, ftag=x86.UC_X86_REG_FPTAG, mxcsr=x86.UC_X86_REG_MXCSR)  # fmt: skip
_FP = [getattr(x86, f"UC_X86_REG_FP{i}") for i in range(8)]  # physical x87 registers: (mantissa, exponent)
_IDS.update({f"xmm{i}": getattr(x86, f"UC_X86_REG_XMM{i}") for i in range(16)})


def read_registers(emu: uc.Uc) -> dict[str, int]:
    """Every register gdb's amd64 description has, as unsigned ints (st0-7 80-bit, xmm 128-bit).

    fiseg, fioff, foseg, fooff and fop (the x87 last-instruction pointers) read 0: Unicorn does not keep them.
    """
    regs = {}
    for name, rid in _IDS.items():
        value = emu.reg_read(rid)
        regs[name] = int(value)
    # st(i) is physical register (TOP + i) mod 8, TOP being bits 11-13 of the status word. The binding's
    # UC_X86_REG_ST0-7 give only the 64-bit mantissa; FP0-7 give (mantissa, exponent with sign).
    top = (regs["fstat"] >> 11) & 7
    for i in range(8):
        mantissa, exponent = emu.reg_read(_FP[(top + i) % 8])
        regs[f"st{i}"] = (exponent << 64) | mantissa
    regs.update(fiseg=0, fioff=0, foseg=0, fooff=0, fop=0)
    return regs


__all__ = ["Stop", "Timeline", "TimelineError", "Watchpoint", "read_registers"]
