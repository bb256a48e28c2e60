"""Snapshots of a whole machine between two stops: CPU, RAM, units, the run loop and the port's cursor.

Time travel (`rrtool.player.timeline`) restores one and runs forward to reach any
instruction. What a snapshot holds:

- the CPU context (`Uc.context_save`: every register, FPU/SSE state and MSR,
  about 7 us);
- RAM as a list of page keys into a `PageStore`: each 4 KiB page is stored
  once by content (xxh3-128), so a page no snapshot changed costs one key per
  snapshot and the zero pages of a large RAM cost one page in all. Hashing 16 MiB
  of pages takes about 0.7 ms, far less than copying them, and only pages never
  seen before are copied. A Linux process's snapshot covers only its mappings
  (the platform's `memory_ranges`), everything else being zero by contract;
- every unit's saved state (`Units.save`), the page kinds of the TLB policy (a
  Linux mapping's protection lives there), the run loop's fields
  (`Machine.save_core`) and the port's position in the trace (`ReplayPort.save`).

Restoring writes RAM behind Unicorn's back, so it drops every translation and the
TLB afterwards (`Machine.forget_translations`). A page key is a 128-bit hash: two
different pages sharing one is about as likely as a random 128-bit collision, and
would show as a divergence on the next checkpoint, never as a silent verification.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Any

import unicorn as uc
import xxhash

from rrtool.machine.machine import Machine
from rrtool.machine.pages import PAGE_SIZE

KEY_SIZE = 16


class PageStore:
    """Pages by content, shared by every snapshot that holds them; counted so a dropped snapshot frees its own."""

    def __init__(self) -> None:
        self._pages: dict[bytes, bytes] = {}
        self._refs: dict[bytes, int] = {}

    @property
    def bytes_used(self) -> int:
        return len(self._pages) * (PAGE_SIZE + 2 * KEY_SIZE + 64)  # the page, its key twice, dict overhead

    def put(self, view: memoryview, start: int, end: int) -> bytes:
        """Keys of the pages of view[start:end], storing the new ones; each key is referenced once more."""
        keys = bytearray()
        pages, refs = self._pages, self._refs
        for off in range(start, end, PAGE_SIZE):
            page = view[off : off + PAGE_SIZE]
            key = xxhash.xxh3_128_digest(page)
            if key in refs:
                refs[key] += 1
            else:
                pages[key] = bytes(page)
                refs[key] = 1
            keys += key
        return bytes(keys)

    def get(self, keys: bytes) -> bytes:
        pages = self._pages
        return b"".join(pages[keys[i : i + KEY_SIZE]] for i in range(0, len(keys), KEY_SIZE))

    def release(self, keys: bytes) -> None:
        refs = self._refs
        for i in range(0, len(keys), KEY_SIZE):
            key = keys[i : i + KEY_SIZE]
            refs[key] -= 1
            if not refs[key]:
                del refs[key], self._pages[key]


@dataclass
class Snapshot:
    """The machine between two stops at `icount`, after everything at that icount happened."""

    icount: int
    checkpoint: int
    cpu: uc.UcContext
    #: ([start, end) guest ranges, the page keys of each range, concatenated in order).
    ranges: list[tuple[int, int]]
    keys: bytes
    kinds: bytes
    units: dict[str, Any]
    core: dict[str, object]
    port: object

    @property
    def bytes_used(self) -> int:
        """What this snapshot costs beyond the pages it shares: its keys and kinds, a rough figure for the rest."""
        return len(self.keys) + len(self.kinds) + 4096


def capture(machine: Machine, store: PageStore) -> Snapshot:
    """Snapshot `machine`, which must be stopped between two stops (after `Machine.advance` returned)."""
    ram = machine.ram
    ranges = machine.platform.memory_ranges()
    if ranges is None:
        ranges = [(ram.base, ram.base + ram.size)]
    view = ram.view()
    keys = b"".join(store.put(view, start - ram.base, end - ram.base) for start, end in ranges)
    return Snapshot(
        icount=machine.icount,
        checkpoint=machine.checkpoint_id,
        cpu=machine.emu.context_save(),
        ranges=list(ranges),
        keys=keys,
        kinds=machine.pages.save_kinds(),
        units=machine.units.save(),
        core=machine.save_core(),
        port=machine.port.save(),
    )


def restore(machine: Machine, snap: Snapshot, store: PageStore) -> None:
    """Put `machine` back exactly as `snap` found it; it can then `advance` as if it had never moved on."""
    ram = machine.ram
    now = machine.platform.memory_ranges()
    if now is not None:
        for start, end in now:  # what is mapped now and was not then must read as zero again
            ram.discard(start, end)
    at = 0
    for start, end in snap.ranges:
        count = (end - start) // PAGE_SIZE * KEY_SIZE
        data = store.get(snap.keys[at : at + count])
        ctypes.memmove(ram.address + start - ram.base, data, len(data))
        at += count
    machine.emu.context_restore(snap.cpu)
    machine.pages.load_kinds(snap.kinds)
    machine.units.load(snap.units)
    machine.load_core(snap.core)
    machine.port.load(snap.port)
    machine.forget_translations()
