"""The Linux process's address space inside the machine's flat RAM: segments, heap (brk), mmap areas, stack.

Guest RAM is one identity-mapped range, so the address space is bookkeeping:
which pages are mapped, with what protection, and therefore which page kind the
machine's TLB policy gives them (`rrtool.machine.pages`). Unmapped pages are
PAGE_NONE and fault on any access, as on Linux. Layout, low to high: the
program's segments, the heap growing up from the page after them, anonymous
mappings placed top-down below the stack, and the stack at the top of RAM.

Two simplifications, both deterministic: a read-only mapping is writable (the
page policy has no read-only kind), and PROT_EXEC pages are W^X, switching on
the access that misses, like code pages on the board.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from rrtool.machine.pages import PAGE_DATA, PAGE_EXEC, PAGE_NONE, PAGE_WRITE

PAGE = 0x1000
PROT_READ, PROT_WRITE, PROT_EXEC = 1, 2, 4
#: The stack at the top of RAM (RLIMIT_STACK as Linux's default says).
STACK_SIZE = 8 << 20
#: Room the heap keeps free above the program, before the first mapping may be placed there.
HEAP_RESERVE = 64 << 20


def page_up(n: int) -> int:
    return -(-n // PAGE) * PAGE


def kind_of(prot: int) -> int:
    if prot & PROT_EXEC:
        return PAGE_WRITE if prot & PROT_WRITE else PAGE_EXEC
    if prot & (PROT_READ | PROT_WRITE):
        return PAGE_DATA
    return PAGE_NONE


@dataclass
class Mapping:
    start: int
    end: int
    prot: int
    name: str  # "[heap]", "[stack]", "[anon]", a guest path, or the program's segment


class AddressSpace:
    """Mappings by start address; the caller (the kernel) applies the page kinds and zeroes freed memory."""

    def __init__(self, low: int, ram_size: int, heap_start: int) -> None:
        self.low = low
        self.ram_size = ram_size
        self.stack_top = ram_size
        self.stack_bottom = ram_size - STACK_SIZE
        self.brk_start = heap_start
        self.brk = heap_start
        self.mmap_top = self.stack_bottom - PAGE  # one unmapped guard page below the stack
        self._maps: list[Mapping] = []

    # -- queries ---------------------------------------------------------------
    @property
    def mappings(self) -> list[Mapping]:
        return list(self._maps)

    def _starts(self) -> list[int]:
        return [m.start for m in self._maps]

    def ranges(self) -> list[tuple[int, int]]:
        """The mapped ranges, merged (what the memory digest covers and a fork copies)."""
        merged: list[tuple[int, int]] = []
        for m in self._maps:
            if merged and merged[-1][1] == m.start:
                merged[-1] = (merged[-1][0], m.end)
            else:
                merged.append((m.start, m.end))
        return merged

    def overlaps(self, start: int, end: int) -> list[Mapping]:
        return [m for m in self._maps if m.start < end and start < m.end]

    def mapped(self, start: int, end: int) -> bool:
        """Every page of [start, end) is mapped (for EFAULT checks of system call buffers)."""
        at = start
        for m in self._maps:
            if m.end <= at:
                continue
            if m.start > at:
                return False
            at = m.end
            if at >= end:
                return True
        return at >= end

    # -- changes (each returns the ranges whose page kind changed) -------------
    def add(self, start: int, end: int, prot: int, name: str) -> None:
        """Map [start, end), replacing whatever was there (MAP_FIXED semantics).

        A mapping that continues its neighbour with the same protection and name is merged into it
        (the heap grows a page range per brk call): the list stays as short as the layout is.
        """
        self.remove(start, end)
        i = bisect.bisect(self._starts(), start)
        new = Mapping(start, end, prot, name)
        if i > 0 and (left := self._maps[i - 1]).end == start and (left.prot, left.name) == (prot, name):
            left.end = end
            new, i = left, i - 1
        else:
            self._maps.insert(i, new)
        if i + 1 < len(self._maps) and (right := self._maps[i + 1]).start == new.end and (
            right.prot, right.name) == (prot, name):  # fmt: skip
            new.end = right.end
            del self._maps[i + 1]

    def remove(self, start: int, end: int) -> list[Mapping]:
        """Unmap [start, end); returns the pieces that were mapped (to zero and mark unmapped)."""
        removed: list[Mapping] = []
        kept: list[Mapping] = []
        for m in self._maps:
            if m.end <= start or m.start >= end:
                kept.append(m)
                continue
            lo, hi = max(m.start, start), min(m.end, end)
            removed.append(Mapping(lo, hi, m.prot, m.name))
            if m.start < lo:
                kept.append(Mapping(m.start, lo, m.prot, m.name))
            if hi < m.end:
                kept.append(Mapping(hi, m.end, m.prot, m.name))
        if removed:
            kept.sort(key=lambda m: m.start)
            self._maps = kept
        return removed

    def protect(self, start: int, end: int, prot: int) -> bool:
        """mprotect: False (ENOMEM) when part of the range is unmapped."""
        if not self.mapped(start, end):
            return False
        pieces = self.remove(start, end)
        for p in pieces:
            self.add(p.start, p.end, prot, p.name)
        return True

    def find_free(self, length: int) -> int | None:
        """The highest free range of `length` bytes below the stack and above the heap's reserve."""
        floor = max(self.brk, self.brk_start + HEAP_RESERVE)
        top = self.mmap_top
        for m in reversed(self._maps):
            if m.start >= top:
                continue
            if m.end < top and top - length >= max(m.end, floor):
                return top - length
            top = m.start
        return top - length if top - length >= floor else None

    def state(self) -> bytes:
        """Deterministic bytes of the layout, for the device digest."""
        rows = [f"{m.start:x}-{m.end:x}:{m.prot}:{m.name}" for m in self._maps]
        return (f"brk={self.brk:x};" + ";".join(rows)).encode("utf-8", "surrogateescape")
