"""What gdb is told the machine is: the x86-64 target description and the register encoding (pure).

gdb numbers registers in the order the target description lists them, and the
`g` packet is every register in that order, each little-endian at its own
width, as hex. So one table (`REGISTERS`) is the source of both: the XML is
generated from it and so is every `g`/`p` reply, and the two cannot disagree.

The features are the ones gdb's own amd64 descriptions use, by name, so gdb's
amd64 support recognises them (`i386_validate_tdesc_p`): `org.gnu.gdb.i386.core`
(general registers, rip, eflags, segment selectors, the x87 stack and its
control words), `org.gnu.gdb.i386.sse` (xmm0-15, mxcsr) and
`org.gnu.gdb.i386.segments` (fs_base, gs_base; where gdb has looked for them
since 8.0, rather than in `org.gnu.gdb.i386.linux`, which holds only
`orig_rax` and would make gdb expect a Linux process). No osabi is named: gdb
takes it from the ELF (none for an SDK guest, GNU/Linux for a Linux program).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from xml.sax.saxutils import quoteattr

CORE = "org.gnu.gdb.i386.core"
SSE = "org.gnu.gdb.i386.sse"
SEGMENTS = "org.gnu.gdb.i386.segments"


@dataclass(frozen=True)
class Register:
    name: str
    bits: int
    type: str
    feature: str
    group: str | None = None


_GPR_TYPES = {"rbp": "data_ptr", "rsp": "data_ptr"}
_GPRS = ["rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", *(f"r{i}" for i in range(8, 16))]

#: Every register gdb is told about, in gdb's register-number order.
REGISTERS: tuple[Register, ...] = (
    *(Register(n, 64, _GPR_TYPES.get(n, "int64"), CORE) for n in _GPRS),
    Register("rip", 64, "code_ptr", CORE),
    Register("eflags", 32, "i386_eflags", CORE),
    *(Register(n, 32, "int32", CORE) for n in ("cs", "ss", "ds", "es", "fs", "gs")),
    *(Register(f"st{i}", 80, "i387_ext", CORE) for i in range(8)),
    *(Register(n, 32, "int", CORE, "float") for n in ("fctrl", "fstat", "ftag", "fiseg", "fioff", "foseg", "fooff")),
    Register("fop", 32, "int", CORE, "float"),
    *(Register(f"xmm{i}", 128, "vec128", SSE) for i in range(16)),
    Register("mxcsr", 32, "i386_mxcsr", SSE, "vector"),
    Register("fs_base", 64, "int", SEGMENTS),
    Register("gs_base", 64, "int", SEGMENTS),
)

#: Register number by name.
NUMBERS: dict[str, int] = {reg.name: i for i, reg in enumerate(REGISTERS)}

_EFLAGS = [(0, "CF"), (1, ""), (2, "PF"), (4, "AF"), (6, "ZF"), (7, "SF"), (8, "TF"), (9, "IF"), (10, "DF"),
           (11, "OF"), (14, "NT"), (16, "RF"), (17, "VM"), (18, "AC"), (19, "VIF"), (20, "VIP"),
           (21, "ID")]  # fmt: skip
_MXCSR = [(0, "IE"), (1, "DE"), (2, "ZE"), (3, "OE"), (4, "UE"), (5, "PE"), (6, "DAZ"), (7, "IM"), (8, "DM"),
          (9, "ZM"), (10, "OM"), (11, "UM"), (12, "PM"), (15, "FZ")]  # fmt: skip
#: The views gdb offers of an xmm register (`p $xmm0.v4_float`): (field, element type, count).
_VEC128 = [("v8_bfloat16", "bfloat16", 8), ("v8_half", "ieee_half", 8), ("v4_float", "ieee_single", 4),
           ("v2_double", "ieee_double", 2), ("v16_int8", "int8", 16), ("v8_int16", "int16", 8),
           ("v4_int32", "int32", 4), ("v2_int64", "int64", 2)]  # fmt: skip


def _flags(ident: str, bits: list[tuple[int, str]]) -> list[str]:
    lines = [f'    <flags id="{ident}" size="4">']
    lines += [f'      <field name="{name}" start="{bit}" end="{bit}"/>' for bit, name in bits]
    return [*lines, "    </flags>"]


def _types(feature: str) -> list[str]:
    if feature == CORE:
        return _flags("i386_eflags", _EFLAGS)
    if feature == SSE:
        lines = [f'    <vector id="{field}_t" type="{elem}" count="{count}"/>' for field, elem, count in _VEC128]
        lines.append('    <union id="vec128">')
        lines += [f'      <field name="{field}" type="{field}_t"/>' for field, _, _ in _VEC128]
        lines += ['      <field name="uint128" type="uint128"/>', "    </union>"]
        return lines + _flags("i386_mxcsr", _MXCSR)
    return []


def target_xml() -> str:
    """The whole description as one document (no `xi:include`, so one `qXfer` annex serves it)."""
    lines = ['<?xml version="1.0"?>', '<!DOCTYPE target SYSTEM "gdb-target.dtd">', '<target version="1.0">',
             "  <architecture>i386:x86-64</architecture>"]  # fmt: skip
    for feature in (CORE, SSE, SEGMENTS):
        lines.append(f"  <feature name={quoteattr(feature)}>")
        lines += _types(feature)
        for number, reg in enumerate(REGISTERS):
            if reg.feature != feature:
                continue
            group = "" if reg.group is None else f' group="{reg.group}"'
            attrs = f'name="{reg.name}" bitsize="{reg.bits}" type="{reg.type}" regnum="{number}"{group}'
            lines.append(f"    <reg {attrs}/>")
        lines.append("  </feature>")
    lines.append("</target>")
    return "\n".join(lines) + "\n"


def encode_register(values: Mapping[str, int], number: int) -> str:
    """Register `number` as gdb's `p` reply wants it: little-endian bytes in hex.

    Every name must be in `values` (`Timeline.registers`): a missing one is a KeyError, not a silent 0.
    """
    reg = REGISTERS[number]
    width = reg.bits // 8
    value = values[reg.name] & ((1 << reg.bits) - 1)
    return value.to_bytes(width, "little").hex()


def encode_registers(values: Mapping[str, int]) -> str:
    """Every register, in order: the `g` reply."""
    return "".join(encode_register(values, n) for n in range(len(REGISTERS)))


__all__ = ["NUMBERS", "REGISTERS", "Register", "encode_register", "encode_registers", "target_xml"]
