"""Exact instruction counting and exact stops, backed by the native counter.

The C side (`_icount.c`) counts whole translation blocks and refuses a block
that would cross a hard deadline; this module runs the refused block's tail
one instruction at a time and turns "where is the CPU" into an exact icount
for device callbacks that fire in the middle of a block.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.machinery
import os
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import unicorn as uc
from unicorn import x86_const as x86
from unicorn.unicorn_py3.unicorn import uclib

from rrtool._host import CompilerNotFoundError, cache_dir, find_c_compiler
from rrtool.machine import exit_checks

NO_DEADLINE = (1 << 64) - 1

STOP_NONE = 0
STOP_SOFT = 1
STOP_HARD = 2
STOP_HARD_SPLIT = 3
STOP_IRQ = 4

_HOOK_CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint32, ctypes.c_void_p)


class CounterError(Exception):
    """The native counter could not be built or loaded."""


class _Block(ctypes.Structure):
    """Mirror of `struct rr_block`: one translation block the counter has seen."""

    _fields_ = [
        ("addr", ctypes.c_uint64),
        ("size", ctypes.c_uint32),
        ("n", ctypes.c_uint32),
    ]


class _Counter(ctypes.Structure):
    """Mirror of the head of `struct rr_counter` (the tables after it stay opaque).

    Only `Counter` writes it: `gate` must follow `soft_deadline`, `hard_deadline`, `mode` and `irq_waiting`.
    """

    _fields_ = [
        ("icount", ctypes.c_uint64),
        ("gate", ctypes.c_uint64),
        ("soft_deadline", ctypes.c_uint64),
        ("hard_deadline", ctypes.c_uint64),
        ("current", ctypes.POINTER(_Block)),
        ("last_insn", ctypes.c_uint64),
        ("refused_addr", ctypes.c_uint64),
        ("misses", ctypes.c_uint64),
        ("clears", ctypes.c_uint64),
        ("stop_reason", ctypes.c_uint32),
        ("mode", ctypes.c_uint32),
        ("irq_waiting", ctypes.c_uint32),
        ("flags_reg", ctypes.c_uint32),
    ]


def _compile_fallback(source: Path) -> Path:
    """Build the counter into the user cache when the installed copy is missing.

    An installed package has it already (setup.py builds it); this path serves
    a source checkout used without `pip install`.
    """
    try:
        cc = find_c_compiler("rrtool's native instruction counter")
    except CompilerNotFoundError as exc:
        raise CounterError(str(exc)) from exc
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    cache = cache_dir()
    out = cache / f"icount-{digest}.so"
    if not out.exists():
        cache.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(f".{os.getpid()}.tmp")
        proc = subprocess.run(
            [cc, "-O2", "-shared", "-fPIC", "-o", str(tmp), str(source)], capture_output=True, text=True
        )
        if proc.returncode != 0:
            first = (proc.stderr.strip().splitlines() or ["unknown error"])[0]
            raise CounterError(f"building the native instruction counter failed: {first}")
        os.replace(tmp, out)
    return out


def _load_library() -> ctypes.CDLL:
    here = Path(__file__).parent
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = here / f"_icount{suffix}"
        if candidate.exists():
            return ctypes.CDLL(str(candidate))
    return ctypes.CDLL(str(_compile_fallback(here / "_icount.c")))


_LIB: ctypes.CDLL | None = None


def native_library() -> ctypes.CDLL:
    """The loaded counter library (loaded once per process)."""
    global _LIB
    if _LIB is None:
        lib = _load_library()
        lib.rr_counter_size.restype = ctypes.c_uint64
        lib.rr_counter_init.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                                        ctypes.c_uint32]  # fmt: skip
        lib.rr_counter_clear_table.argtypes = [ctypes.c_void_p]
        lib.rr_pages_size.restype = ctypes.c_uint64
        lib.rr_pages_track.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        lib.rr_pages_init.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint64,
                                      ctypes.c_uint64, ctypes.c_uint32]  # fmt: skip
        _LIB = lib
    return _LIB


def _fnptr(fn: Any) -> ctypes.c_void_p:
    return ctypes.cast(fn, ctypes.c_void_p)


def add_native_hook(
    emu: uc.Uc, htype: int, callback: Any, user: ctypes.c_void_p, begin: int = 1, end: int = 0
) -> ctypes.c_size_t:
    """Register a C function as a Unicorn hook (the Python wrapper only takes Python callables)."""
    handle = ctypes.c_size_t()
    err = uclib.uc_hook_add(
        emu._uch,
        ctypes.byref(handle),
        htype,
        _fnptr(callback),
        user,
        ctypes.c_uint64(begin),
        ctypes.c_uint64(end),
    )
    if err != uc.UC_ERR_OK:
        raise CounterError(f"uc_hook_add failed: {uc.UcError(err)}")
    return handle


def add_insn_hook(emu: uc.Uc, callback: Any, insn: int) -> ctypes.c_size_t:
    """An instruction hook for instructions the Python wrapper does not accept (rdtsc)."""
    handle = ctypes.c_size_t()
    err = uclib.uc_hook_add(
        emu._uch,
        ctypes.byref(handle),
        uc.UC_HOOK_INSN,
        _fnptr(callback),
        None,
        ctypes.c_uint64(1),
        ctypes.c_uint64(0),
        ctypes.c_int(insn),
    )
    if err != uc.UC_ERR_OK:
        raise CounterError(f"uc_hook_add(INSN {insn}) failed: {uc.UcError(err)}")
    return handle


@dataclass(frozen=True)
class StopInfo:
    """Why `run` returned: reason is one of the STOP_* values (NONE: hlt or a fault)."""

    reason: int
    icount: int


class Counter:
    """Owns the native counter state for one Unicorn instance.

    Every ctypes object the hooks point at is kept on `self`: freeing one while
    Unicorn holds its address crashes the process.
    """

    def __init__(self, emu: uc.Uc) -> None:
        lib = native_library()
        self._lib = lib
        self._emu = emu
        self._buf = ctypes.create_string_buffer(lib.rr_counter_size())
        self._ptr = ctypes.cast(self._buf, ctypes.c_void_p)
        lib.rr_counter_init(self._ptr, _fnptr(uclib.uc_emu_stop), _fnptr(uclib.uc_ctl), _fnptr(uclib.uc_reg_read),
                            x86.UC_X86_REG_RFLAGS)  # fmt: skip
        self.state = _Counter.from_buffer(self._buf)
        self._block_hook = add_native_hook(emu, uc.UC_HOOK_BLOCK, lib.rr_block_hook, self._ptr)
        #: Whether blocks are translated without Unicorn's exit check after every load and store: the
        #: counter takes every stop at a block boundary, so only its single-stepped tail needs them.
        self.access_checks_off = exit_checks.set_access_checks(emu, on=False)
        self._index_cache: dict[tuple[int, int], int] = {}
        self._clears_seen = 0  # the native table's clear count when _index_cache was last known good
        self._disasm: Any = None
        self._after_tail = False
        self._in_tail = False  # the last run ended in its single-stepped tail
        #: Added to a virtual address to read code through Unicorn's (physical) mem_read: see Machine.switch_ram.
        self.phys_offset = 0
        # `kick` comes from host threads: the deadlines, and `gate` folded from them, change under this lock.
        self._lock = threading.Lock()
        self._kick_at: int | None = None

    @property
    def icount(self) -> int:
        return int(self.state.icount)

    def set_icount(self, icount: int) -> None:
        """Between runs: the count is known exactly another way (before a faulting instruction, a restore)."""
        self.state.icount = icount

    @property
    def stepping(self) -> bool:
        """True while the refused block's tail runs one instruction at a time (the count is per instruction)."""
        return bool(self.state.mode)

    def limit_hard(self, icount: int) -> None:
        """Stop exactly at `icount` at the latest (also from a hook, in the middle of a run)."""
        with self._lock:
            self.state.hard_deadline = min(int(self.state.hard_deadline), icount)
            self._set_locked()

    def kick(self, at: int) -> None:
        """From any thread: stop at the first block boundary at or after icount `at`, in the run under way or
        (if none is) in the next one. It can only bring a stop closer, so a late or stale kick costs one stop."""
        with self._lock:
            self._kick_at = at if self._kick_at is None else min(self._kick_at, at)
            if at < self.state.soft_deadline:
                self._set_locked(soft=at)

    def stop_soon(self) -> None:
        """Stop at the next block boundary (also from a hook, in the middle of a run)."""
        self._set(soft=0)

    def set_irq_waiting(self, waiting: bool) -> None:
        """An interrupt waits for IF: the native hook then checks RFLAGS before every block."""
        self._set(irq_waiting=waiting)

    def _set(self, soft: int | None = None, mode: int | None = None, irq_waiting: bool | None = None) -> None:
        """Write the fields the native fast path folds into `gate`, and `gate` with them."""
        with self._lock:
            self._set_locked(soft, mode, irq_waiting)

    def _set_locked(self, soft: int | None = None, mode: int | None = None, irq_waiting: bool | None = None) -> None:
        st = self.state
        if soft is not None:
            st.soft_deadline = soft
        if mode is not None:
            st.mode = mode
        if irq_waiting is not None:
            st.irq_waiting = int(irq_waiting)
        st.gate = 0 if st.mode or st.irq_waiting else min(st.soft_deadline, st.hard_deadline)

    def _block(self) -> tuple[int, int, int, int]:
        """The current block in block mode: (icount before it, address, size in bytes, instructions)."""
        st = self.state
        block = st.current.contents
        return int(st.icount) - int(block.n), int(block.addr), int(block.size), int(block.n)

    @property
    def native(self) -> ctypes.c_void_p:
        """The native counter's address, for other native hooks that share it (rrtool.machine.pages)."""
        return self._ptr

    def run(self, begin: int, soft: int, hard: int) -> StopInfo:
        """Run from `begin` until a deadline, hlt or a fault (a fault raises UcError).

        `hard` is met exactly: a block that would cross it is refused by the C
        hook and its tail is run here under the per-instruction hook.
        """
        st = self.state
        with self._lock:
            if self._kick_at is not None:
                soft = min(soft, self._kick_at)
                self._kick_at = None
            st.hard_deadline = hard
            self._set_locked(soft=soft)
        st.stop_reason = STOP_NONE
        self._after_tail = False
        self._in_tail = False
        self._emu.emu_start(begin, 0)
        if st.stop_reason == STOP_HARD_SPLIT:
            self._run_tail(int(st.refused_addr))
            self._after_tail = True
        return StopInfo(int(st.stop_reason), int(st.icount))

    def _run_tail(self, addr: int) -> None:
        """Run the refused block one instruction at a time up to the hard deadline.

        Only the refused block is retranslated (with the code hook limited to it),
        so the rest of the translation cache survives.
        """
        st = self.state
        emu = self._emu
        emu.ctl_remove_cache(addr, addr + 1)
        hook = add_native_hook(emu, uc.UC_HOOK_CODE, self._lib.rr_code_hook, self._ptr, addr, addr + 0x10000)
        # The code hook stops the CPU before the instruction at the deadline only through the exit check
        # Unicorn emits after it, which the translator skips while the access checks are off.
        exit_checks.set_access_checks(emu, on=True)
        try:
            self._set(mode=1)
            self._in_tail = True  # a fault raised here is counted the step-mode way (instructions_before)
            st.stop_reason = STOP_NONE
            emu.emu_start(addr, 0)
        finally:
            self._set(mode=0)
            uclib.uc_hook_del(emu._uch, hook)
            emu.ctl_remove_cache(addr, addr + 1)
            exit_checks.set_access_checks(emu, on=not self.access_checks_off)

    def icount_at(self, pc: int) -> int:
        """Exact icount *including* the instruction at `pc`, from inside a hook.

        In block mode the counter already holds the block-end value; the index
        of `pc` in the block is found by decoding the block once (cached).
        """
        st = self.state
        if st.mode == 1:
            return int(st.icount)
        block_start, start, size, _n = self._block()
        key = (start, pc)
        if st.clears != self._clears_seen:  # code may have changed (rrtool.machine.pages switched a page to X)
            self._index_cache.clear()
            self._clears_seen = int(st.clears)
        idx = self._index_cache.get(key)
        if idx is None:
            idx = self._index_in_block(start, pc, size)
            self._index_cache[key] = idx
        return block_start + idx + 1

    def instructions_before(self, pc: int) -> int:
        """Exact icount of instructions retired before the one at `pc` (for faults)."""
        st = self.state
        if st.mode == 1 or self._in_tail:
            # Step mode counts an instruction as it starts, so a faulting one is already counted. The
            # tail has reset the mode by the time the machine asks, hence `_in_tail`.
            return int(st.icount) - 1
        block_start, start, size, _n = self._block()
        if not start <= pc < start + max(size, 1):
            return int(st.icount)
        return block_start + self._index_in_block(start, pc, size)

    def _index_in_block(self, start: int, pc: int, size: int) -> int:
        if self._disasm is None:
            import capstone

            self._disasm = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
        code = bytes(self._emu.mem_read(start + self.phys_offset, max(size, pc - start + 16)))
        for idx, (addr, _sz, _m, _o) in enumerate(self._disasm.disasm_lite(code, start)):
            if addr >= pc:
                return idx
        raise CounterError(f"pc {pc:#x} not found in block at {start:#x}")

    def last_instruction(self) -> int | None:
        """Address of the last retired instruction (for the sti shadow), if known."""
        st = self.state
        if self._after_tail:
            return int(st.last_insn)
        _start, start, size, n = self._block()
        if n == 0:
            return None
        if n == 1:
            return start
        if self._disasm is None:
            self._index_in_block(start, start, 1)
        code = bytes(self._emu.mem_read(start + self.phys_offset, size))
        last = None
        for addr, _sz, _m, _o in self._disasm.disasm_lite(code, start):
            last = addr
        return last

    def flush(self) -> None:
        """Drop translations and cached block sizes (code was rewritten)."""
        self._emu.ctl_flush_tb()
        self.forget_blocks()

    def forget_blocks(self) -> None:
        """Drop the cached block sizes only: the same virtual addresses now hold another address space's code,
        whose translations Unicorn keeps apart by physical address."""
        self._lib.rr_counter_clear_table(self._ptr)
        self._index_cache.clear()
