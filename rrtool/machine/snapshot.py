"""Snapshots of a whole machine between two stops: CPU, RAM, units, the run loop and the port's cursor.

Time travel (`rrtool.player.timeline`) restores one and runs forward to reach any
instruction. What a snapshot holds:

- the CPU context (`Uc.context_save`: every register, FPU/SSE state and MSR, a few us);
- RAM as a dict from page address to the page's bytes. A page no store touched since
  the snapshot before is the *same bytes object* as in that snapshot, so an unchanged
  page costs a pointer, and Python's own reference counting frees a page when the last
  snapshot holding it goes. Which pages changed comes from the TLB policy's dirty
  tracking (`Pages.track_dirty`: the first store to a page after a snapshot is a TLB
  fill, marked in C) plus the host's own writes (`Machine.mem_write`, `discard_ram`,
  interrupt frames); only those pages are copied. A Linux process's snapshot covers
  only its mappings (the platform's `memory_ranges`), everything else being zero by
  contract;
- every unit's saved state (`Units.save`), the page kinds of the TLB policy (a Linux
  mapping's protection lives there), the run loop's fields (`Machine.save_core`) and the
  port's position in the trace (`ReplayPort.save`).

Restoring writes RAM behind Unicorn's back, so it drops every translation and the TLB
afterwards (`Machine.forget_translations`). `capture(check=True)` also reads every page
and compares: the timeline does that now and then, so a host write that forgot to mark
its page would be caught and corrected rather than trusted.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Any

import unicorn as uc

from rrtool.machine.machine import Machine
from rrtool.machine.pages import PAGE_SIZE

ZERO_PAGE = bytes(PAGE_SIZE)
CHUNK = 16 * PAGE_SIZE
ZERO_CHUNK = bytes(CHUNK)


@dataclass
class Snapshot:
    """The machine between two stops at `icount`, after everything at that icount happened."""

    icount: int
    checkpoint: int
    cpu: uc.UcContext
    ranges: list[tuple[int, int]]
    #: Page address -> contents, for every page of `ranges`; unchanged pages share the previous snapshot's object.
    pages: dict[int, bytes]
    kinds: bytes
    units: dict[str, Any]
    core: dict[str, object]
    port: object
    #: Pages whose dirty mark was missing, found by a checked capture (0 unless a host write forgot to mark).
    missed: int = 0
    #: Pages that are not the baseline's own objects (None when there was no baseline or the ranges moved).
    changed: int | None = None


def _read_all(machine: Machine, ranges: list[tuple[int, int]], like: dict[int, bytes]) -> dict[int, bytes]:
    """Every page read afresh; equal pages of `like` (and zero pages) are shared rather than copied.

    RAM is compared 64 KiB at a time first: most of a guest's RAM is zero, or unchanged from `like`,
    and one comparison of a chunk saves sixteen of pages.
    """
    ram = machine.ram
    pages: dict[int, bytes] = {}
    for start, end in ranges:
        for chunk in range(start, end, CHUNK):
            addrs = range(chunk, min(chunk + CHUNK, end), PAGE_SIZE)
            data = ram.read(chunk, len(addrs) * PAGE_SIZE)
            if data == ZERO_CHUNK[: len(data)]:
                pages.update(dict.fromkeys(addrs, ZERO_PAGE))
                continue
            known = [like.get(a) for a in addrs]
            if None not in known and data == b"".join(known):  # type: ignore[arg-type]
                pages.update(zip(addrs, known, strict=True))  # type: ignore[arg-type]
                continue
            for i, addr in enumerate(addrs):
                page = data[i * PAGE_SIZE : (i + 1) * PAGE_SIZE]
                prev = known[i]
                if prev is not None and page == prev:
                    pages[addr] = prev
                elif page == ZERO_PAGE:
                    pages[addr] = ZERO_PAGE
                else:
                    pages[addr] = page
    return pages


def capture(machine: Machine, baseline: Snapshot | None, *, check: bool = False) -> Snapshot:
    """Snapshot `machine`, stopped between two stops (after `Machine.advance` returned).

    `baseline` is the snapshot the machine was last captured as or restored from: the dirty marks are
    relative to it. Without one (or without tracking) every page is read.
    """
    ranges = machine.guest_ranges()
    tracking = machine.pages.tracking
    dirty = machine.pages.take_dirty() if tracking else []
    changed: int | None = None
    if baseline is None or not tracking:
        pages = _read_all(machine, ranges, {})
    else:
        read = machine.ram.page
        if baseline.ranges == ranges:
            pages = dict(baseline.pages)
            changed = 0
        else:  # a Linux mapping came or went: pages of the baseline outside the new ranges go
            old = baseline.pages
            pages = {a: old.get(a, ZERO_PAGE) for s, e in ranges for a in range(s, e, PAGE_SIZE)}
            fresh = [a for s, e in ranges for a in range(s, e, PAGE_SIZE) if a not in old]
            dirty = sorted(set(dirty) | set(fresh))
        for addr in dirty:
            if addr in pages:
                page = read(addr)
                if page != pages[addr]:
                    pages[addr] = ZERO_PAGE if page == ZERO_PAGE else page
                    changed = None if changed is None else changed + 1
    missed = 0
    if check:
        truth = _read_all(machine, ranges, pages)
        missed = sum(1 for a, p in truth.items() if pages.get(a) is not p)
        pages = truth
        if missed:
            changed = None
    snap = Snapshot(
        icount=machine.icount,
        checkpoint=machine.checkpoint_id,
        cpu=machine.emu.context_save(),
        ranges=ranges,
        pages=pages,
        kinds=machine.pages.save_kinds(),
        units=machine.units.save(),
        core=machine.save_core(),
        port=machine.port.save(),
        missed=missed,
        changed=changed,
    )
    if not tracking:
        machine.pages.track_dirty()
    return snap


def unshared_pages(snap: Snapshot, neighbour: Snapshot | None) -> int:
    """Pages of `snap` that are not the very objects `neighbour` holds at the same address: what it costs."""
    if neighbour is None:
        own = len({id(p) for p in snap.pages.values()})
    else:
        other = neighbour.pages
        own = sum(1 for a, p in snap.pages.items() if other.get(a) is not p)
    return own + _unit_pages(snap, neighbour)


def _unit_pages(snap: Snapshot, neighbour: Snapshot | None) -> int:
    """Pages a unit holds itself (a Linux kernel: the address spaces not under the CPU, `pages_by_space`)."""
    count = 0
    for name, saved in snap.units.items():
        spaces = getattr(saved, "pages_by_space", None)
        if not spaces:
            continue
        theirs = getattr(neighbour.units.get(name), "pages_by_space", None) if neighbour is not None else None
        for sid, pages in spaces.items():
            before = (theirs or {}).get(sid, {})
            count += sum(1 for a, p in pages.items() if before.get(a) is not p)
    return count


def restore(machine: Machine, snap: Snapshot, baseline: Snapshot | None = None) -> None:
    """Put `machine` back exactly as `snap` found it; it can then `advance` as if it had never moved on.

    With `baseline` (what the machine was last captured as or restored from) only the pages that
    can differ are written: those dirtied since the baseline and those where the two snapshots
    hold different pages. `snap` becomes the baseline of the next capture: the dirty marks start over.
    """
    ram = machine.ram
    now = machine.platform.memory_ranges()
    dirty = machine.pages.take_dirty() if machine.pages.tracking else None
    current = machine.guest_ranges()
    if baseline is not None and dirty is not None and baseline.ranges == snap.ranges == current:
        old, pages = baseline.pages, snap.pages
        todo = {a for a, p in pages.items() if old.get(a) is not p}
        todo.update(a for a in dirty if a in pages)
        for addr in todo:
            ctypes.memmove(ram.address + addr - ram.base, pages[addr], PAGE_SIZE)
    else:
        if now is not None:
            for start, end in now:  # what is mapped now and was not then must read as zero again
                ram.discard(start, end)
        for start, end in snap.ranges:
            data = b"".join(snap.pages[a] for a in range(start, end, PAGE_SIZE))
            ctypes.memmove(ram.address + start - ram.base, data, len(data))
    machine.emu.context_restore(snap.cpu)
    machine.pages.load_kinds(snap.kinds)
    machine.units.load(snap.units)
    machine.load_core(snap.core)
    machine.port.load(snap.port)
    machine.forget_translations()
