"""The x86-64 CPU as rrtool sets it up: flat long mode, a GDT so iretq works, interrupt frames, faults.

Unicorn has no external-interrupt API for x86, so the host delivers an
interrupt itself at a stop, by pushing the frame the CPU would push.
"""

from __future__ import annotations

import ctypes
import struct

import unicorn as uc
from unicorn import x86_const as x86
from unicorn.unicorn_py3.unicorn import uclib

RAM_BASE = 0x1000  # page 0 stays unmapped so NULL dereferences fault
GDT_ADDR = 0x1000
CS_SELECTOR = 0x08
SS_SELECTOR = 0x10
IF_FLAG = 1 << 9
STI_OPCODE = 0xFB
#: null, 64-bit code, data: with CS=8 and SS=0x10 loaded, iretq stays in long mode (see unicorn-notes.md).
_GDT = struct.pack("<3Q", 0, 0x00AF9A000000FFFF, 0x00CF92000000FFFF)

#: rdtsc hooks return 1 to skip the real instruction.
RDTSC_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)

FAULT_NAMES = {
    uc.UC_ERR_READ_UNMAPPED: "invalid memory read",
    uc.UC_ERR_WRITE_UNMAPPED: "invalid memory write",
    uc.UC_ERR_FETCH_UNMAPPED: "jump outside RAM",
    uc.UC_ERR_READ_PROT: "invalid memory read",
    uc.UC_ERR_WRITE_PROT: "invalid memory write",
    uc.UC_ERR_FETCH_PROT: "jump outside RAM",
    uc.UC_ERR_INSN_INVALID: "invalid opcode",
}
EXCEPTION_NAMES = {0: "division by zero", 6: "invalid opcode", 13: "general protection fault", 14: "page fault"}


class PcReader:
    """RIP through one raw `uc_reg_read` into a fixed cell: devices ask for it on every port access,
    and the wrapper's reg_read costs several times more."""

    def __init__(self, emu: uc.Uc) -> None:
        self._emu = emu
        self._cell = ctypes.c_uint64()
        self._ref = ctypes.byref(self._cell)

    def __call__(self) -> int:
        err = uclib.uc_reg_read(self._emu._uch, x86.UC_X86_REG_RIP, self._ref)
        if err != uc.UC_ERR_OK:
            raise uc.UcError(err)
        return int(self._cell.value)


def setup_cpu(emu: uc.Uc, entry: int, ram_size: int) -> None:
    """Flat segments from our GDT, the stack at the top of RAM, RIP at the entry point."""
    emu.mem_write(GDT_ADDR, _GDT)
    emu.reg_write(x86.UC_X86_REG_GDTR, (0, GDT_ADDR, len(_GDT) - 1, 0))
    emu.reg_write(x86.UC_X86_REG_CS, CS_SELECTOR)
    for seg in (x86.UC_X86_REG_SS, x86.UC_X86_REG_DS, x86.UC_X86_REG_ES):
        emu.reg_write(seg, SS_SELECTOR)
    emu.reg_write(x86.UC_X86_REG_RSP, ram_size)
    emu.reg_write(x86.UC_X86_REG_RIP, entry)


def push_interrupt_frame(emu: uc.Uc, vector: int) -> int:
    """Enter `vector` as the CPU would: align RSP to 16, push SS, RSP, RFLAGS, CS, RIP, clear IF.

    Returns the interrupted RIP.
    """
    rip = int(emu.reg_read(x86.UC_X86_REG_RIP))
    rsp = emu.reg_read(x86.UC_X86_REG_RSP)
    rflags = emu.reg_read(x86.UC_X86_REG_RFLAGS)
    frame = (rsp & ~0xF) - 40
    emu.mem_write(frame, struct.pack("<5Q", rip, CS_SELECTOR, rflags, rsp, SS_SELECTOR))
    emu.reg_write(x86.UC_X86_REG_RSP, frame)
    emu.reg_write(x86.UC_X86_REG_RFLAGS, rflags & ~IF_FLAG)
    emu.reg_write(x86.UC_X86_REG_RIP, vector)
    return rip


def disassemble(emu: uc.Uc, pc: int, count: int = 1) -> list[str]:
    """`count` instructions at `pc`, for divergence and fault reports."""
    import capstone

    try:
        code = bytes(emu.mem_read(pc, 16 * count))
    except uc.UcError:
        return [f"{pc:#x}: <not in RAM>"]
    md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    return [f"{i.address:#x}: {i.mnemonic} {i.op_str}".rstrip() for i in md.disasm(code, pc, count)]
