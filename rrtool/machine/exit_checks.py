"""Unicorn's exit check after every guest load and store, which the machine turns off.

Why: Unicorn 2.1.4 follows every guest load and store in translated code with a call to
`helper_check_exit_request` (`check_exit_request` in its tcg-op.c). The check exists so that a
memory hook that asked to stop, or a store to unmapped memory, ends the block right after that
access. Each check is a full TCG helper call: the translated code spills the guest registers it
holds in host registers before the call and reloads them after. `benchmarks/machine.py` (row c2.)
shows what that costs `rrtool run` of the memory-heavy `compute` guest: 1.3x-1.8x.

rrtool does not need those checks:

- every stop the machine asks for is owned by the counter and taken at a block boundary. Unicorn
  emits the check at every block start unconditionally, and that one stays;
- every fault is precise without them. A load of unmapped or unreadable memory already stops at
  the access (Unicorn leaves the block from inside its load helper). A store outside RAM used to
  only set a flag that the per-access check read; the page policy now refuses it in the TLB fill
  (`rr_tlb_fill`), and Unicorn raises that refusal at the access itself;
- breakpoints and watchpoints (`rrtool.player.timeline`) note their hit and pause at the next
  block boundary; they never stop inside a block;
- the one stop that must land before a given instruction is the counter's single-stepped tail:
  its per-instruction hook stops the CPU before the instruction at the deadline. The tail's block
  is translated with the checks back on (`Counter._run_tail`).

Unicorn has no public switch for this. Its translator skips the check while the private flag
`uc->no_exit_request` is set (the flag exists for ARM's IT blocks). The flag's offset is read off
the installed library's own `check_exit_request_x86_64`, whose first two instructions load
`tcg_ctx->uc` and compare that byte with 0. When those bytes are not the expected ones (another
build or version), nothing is written and the checks stay on: slower, and just as exact.

The flag is read only while a block is translated, so a change applies to blocks translated after
it. Blocks already in the cache keep whatever they were translated with.
"""

from __future__ import annotations

import ctypes
import functools
import re

import unicorn as uc
from unicorn.unicorn_py3.unicorn import uclib

#: `mov disp32(%rdi),%rsi` (tcg_ctx->uc), then `cmpb $0,disp32(%rsi)` (uc->no_exit_request), then `je`.
_PROLOGUE = re.compile(rb"\x48\x8b\xb7(.{4})\x80\xbe(.{4})\x00\x74", re.DOTALL)
#: The Unicorn releases whose check_exit_request has that shape (major, minor).
_KNOWN = (2, 1)


@functools.cache
def flag_offset() -> int | None:
    """Where `no_exit_request` sits in Unicorn's `struct uc_struct`, or None when it cannot be told."""
    major, minor, _combined = uc.uc_version()
    if (major, minor) != _KNOWN:
        return None
    try:
        fn = uclib.check_exit_request_x86_64
    except AttributeError:
        return None
    address = ctypes.cast(fn, ctypes.c_void_p).value
    if address is None:
        return None
    match = _PROLOGUE.match(ctypes.string_at(address, 16))
    if match is None:
        return None
    offset = int.from_bytes(match.group(2), "little", signed=True)
    return offset if 0 < offset < 1 << 16 else None


def available() -> bool:
    """True when the checks can be turned off on this Unicorn (benchmarks and tests report it)."""
    return flag_offset() is not None


def set_access_checks(emu: uc.Uc, on: bool) -> bool:
    """Emit (True) or skip (False) the per-access check in blocks translated from now on.

    Returns whether the setting took effect. When it could not (`available` is False), the checks are on.
    """
    offset = flag_offset()
    if offset is None:
        return False
    handle = emu._uch.value
    if handle is None:
        return False
    ctypes.c_bool.from_address(handle + offset).value = not on
    return True
