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
MSR_TSC_AUX = 0xC0000103
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

#: The CPU model Unicorn emulates. Unicorn 2.1.4's default (Haswell) executes rdrand and rdseed with host
#: entropy, and no hook can reach them (only in/out, syscall, sysenter, cpuid, rdtsc and rdtscp are
#: hookable). Sandy Bridge is the newest model without RDRAND: its translator turns both instructions into
#: #UD, the guest gets the usual "invalid opcode" fault, and it still has rdtscp (hooked, virtual time),
#: SSE4.2, POPCNT and AES. Guests lose BMI1/2, FSGSBASE, MOVBE and ERMS, which SDK guests never use.
CPU_MODEL = x86.UC_CPU_X86_SANDYBRIDGE

_BRAND = b"rrtool virtual x86-64 CPU".ljust(48, b"\0")
_BRAND_WORDS = struct.unpack("<12I", _BRAND)
_VENDOR = struct.unpack("<3I", b"GenuineIntel")  # in EBX, EDX, ECX order below

#: Every CPUID answer the guest can get, keyed by (leaf, subleaf); subleaf is None for leaves that ignore ECX.
#: Fixed here, rather than whatever Unicorn's model computes, so the answer does not change with the Unicorn
#: build and says only what the machine really does. Based on Unicorn's Sandy Bridge, with these changes:
#: no hypervisor bit and no 0x4000_0000 leaves; no XSAVE/OSXSAVE and no leaf 0xD (the guest's xsave area
#: would depend on AVX state Unicorn's TCG lacks); RDRAND (leaf 1 ECX bit 30) and RDSEED (leaf 7 EBX bit 18)
#: absent, as the instructions fault; one CPU, APIC id 0; leaf 0x8000_0007 says the TSC is invariant (it is
#: virtual ns); the brand string names rrtool. Leaves not listed, and leaves above the maximum, read as 0.
CPUID_TABLE: dict[tuple[int, int | None], tuple[int, int, int, int]] = {
    (0x0, None): (0x7, _VENDOR[0], _VENDOR[2], _VENDOR[1]),
    # family 6 model 42 stepping 1; CLFLUSH line 64 B, 1 logical CPU, APIC id 0;
    # ECX: SSE3 PCLMULQDQ SSSE3 CX16 SSE4.1 SSE4.2 POPCNT AES; EDX: Unicorn's Sandy Bridge (TSC, MSR, FXSR, SSE2...).
    (0x1, None): (0x000206A1, 0x00000800, 0x02982203, 0x078BFBFD),
    (0x2, None): (0x00000001, 0x00000000, 0x00000000, 0x002C307D),
    (0x4, 0): (0x00000121, 0x01C0003F, 0x0000003F, 0x00000001),
    (0x4, 1): (0x00000122, 0x01C0003F, 0x0000003F, 0x00000001),
    (0x4, 2): (0x00000143, 0x03C0003F, 0x00000FFF, 0x00000001),
    (0x7, 0): (0x0, 0x0, 0x0, 0x0),
    (0x80000000, None): (0x80000008, 0x0, 0x0, 0x0),
    (0x80000001, None): (0x0, 0x0, 0x00000001, 0x28100800),  # LAHF; SYSCALL NX RDTSCP LM
    (0x80000002, None): _BRAND_WORDS[0:4],
    (0x80000003, None): _BRAND_WORDS[4:8],
    (0x80000004, None): _BRAND_WORDS[8:12],
    (0x80000006, None): (0x0, 0x0, 0x02008140, 0x0),
    (0x80000007, None): (0x0, 0x0, 0x0, 0x00000100),  # invariant TSC
    (0x80000008, None): (0x00003028, 0x0, 0x0, 0x0),  # 40-bit physical, 48-bit virtual addresses
}
#: Leaves whose answer depends on the subleaf in ECX.
_SUBLEAF_LEAVES = frozenset(leaf for leaf, sub in CPUID_TABLE if sub is not None)


def cpuid(leaf: int, subleaf: int) -> tuple[int, int, int, int]:
    """The fixed answer (EAX, EBX, ECX, EDX) to CPUID with EAX=`leaf`, ECX=`subleaf`."""
    key = (leaf, subleaf if leaf in _SUBLEAF_LEAVES else None)
    return CPUID_TABLE.get(key, (0, 0, 0, 0))


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


GUARD_SIZE = 0x1000
#: ud2: what the guard page above RAM holds, so running into it is an invalid opcode there.
_UD2 = b"\x0f\x0b"


def map_guard_page(emu: uc.Uc, ram_size: int) -> None:
    """Map one execute-only page of ud2 right above RAM.

    Unicorn 2.1.4 (QEMU 5's x86 translator without icount) does not end a translation block at a page
    boundary: after an instruction that does not end a block (an `out`, a `mov`) it goes on decoding the
    next bytes. For code in the last bytes of RAM those bytes are past the end, and the fetch of an
    unmapped page then fails *while translating*, before the guest's own instructions run, reported at
    the block's start: correct code that would exit (or jump away) before the end of RAM faulted, while
    the same bytes one page lower ran. With this page mapped the translator reads ud2 and ends the block
    there. Executing it is still a fault, reported as a jump outside RAM at the guard address
    (`is_guard`); data reads and writes fault too (the page is not readable or writable).
    """
    emu.mem_map(ram_size, GUARD_SIZE, uc.UC_PROT_EXEC)
    emu.mem_write(ram_size, _UD2 * (GUARD_SIZE // len(_UD2)))


def setup_cpu(emu: uc.Uc, entry: int, ram_size: int) -> None:
    """Flat segments from our GDT, the stack at the top of RAM, RIP at the entry point."""
    emu.mem_write(GDT_ADDR, _GDT)
    emu.reg_write(x86.UC_X86_REG_GDTR, (0, GDT_ADDR, len(_GDT) - 1, 0))
    emu.reg_write(x86.UC_X86_REG_CS, CS_SELECTOR)
    for seg in (x86.UC_X86_REG_SS, x86.UC_X86_REG_DS, x86.UC_X86_REG_ES):
        emu.reg_write(seg, SS_SELECTOR)
    emu.reg_write(x86.UC_X86_REG_RSP, ram_size)
    emu.reg_write(x86.UC_X86_REG_RIP, entry)


INTERRUPT_FRAME_SIZE = 40


def interrupt_frame_address(rsp: int) -> int:
    """Where the 40-byte interrupt frame goes for this RSP (negative when RSP is below 40: no frame fits)."""
    return (rsp & ~0xF) - INTERRUPT_FRAME_SIZE


def push_interrupt_frame(emu: uc.Uc, vector: int) -> int:
    """Enter `vector` as the CPU would: align RSP to 16, push SS, RSP, RFLAGS, CS, RIP, clear IF.

    Returns the interrupted RIP. The caller has checked that the frame lies in RAM.
    """
    rip = int(emu.reg_read(x86.UC_X86_REG_RIP))
    rsp = emu.reg_read(x86.UC_X86_REG_RSP)
    rflags = emu.reg_read(x86.UC_X86_REG_RFLAGS)
    frame = interrupt_frame_address(rsp)
    emu.mem_write(frame, struct.pack("<5Q", rip, CS_SELECTOR, rflags, rsp, SS_SELECTOR))
    emu.reg_write(x86.UC_X86_REG_RSP, frame)
    emu.reg_write(x86.UC_X86_REG_RFLAGS, rflags & ~IF_FLAG)
    emu.reg_write(x86.UC_X86_REG_RIP, vector)
    return rip


def disassemble(emu: uc.Uc, pc: int, count: int = 1, offset: int = 0) -> list[str]:
    """`count` instructions at `pc`, for divergence and fault reports (RAM read at physical `pc + offset`)."""
    import capstone

    try:
        code = bytes(emu.mem_read(pc + offset, 16 * count))
    except uc.UcError:
        return [f"{pc:#x}: <not in RAM>"]
    md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    return [f"{i.address:#x}: {i.mnemonic} {i.op_str}".rstrip() for i in md.disasm(code, pc, count)]
