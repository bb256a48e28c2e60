"""Loading an unmodified static Linux x86-64 executable (static or static-pie) into guest RAM.

The machine core maps one flat RAM and writes an image's segments into it, so
the loader's job is to say where each segment goes (a static-pie executable is
placed at `PIE_BASE`) and what the process start needs from the ELF header
(program headers for AT_PHDR, the entry point). What cannot run here is refused
with one line that says what to do instead: a dynamically linked program, a
32-bit or non-x86 one, a script.
"""

from __future__ import annotations

import hashlib
import io
import itertools
from dataclasses import dataclass, field
from pathlib import Path

from elftools.elf.elffile import ELFFile

from rrtool._paths import PathError, check_input_file
from rrtool.machine.image import GuestImage, ImageError, Segment

#: Where a static-pie executable is loaded (the lowest address a non-PIE x86-64 executable uses).
PIE_BASE = 0x400000
#: Nothing is placed below this: page 0 and the host's page stay unmapped.
LOW_LIMIT = 0x10000
PAGE = 0x1000


@dataclass(frozen=True)
class Program:
    """A loaded executable: the image the machine maps, and what the process start puts in auxv."""

    image: GuestImage
    #: Address of the program headers in guest memory (AT_PHDR), their size and number.
    phdr: int
    phent: int
    phnum: int
    #: Added to every address in the file (0 for a non-PIE executable).
    bias: int
    pie: bool
    #: The file's bytes (an exec of /proc/self/exe, or of the same file again, needs nothing from the host).
    raw: bytes = field(default=b"", repr=False, compare=False)

    @property
    def end(self) -> int:
        """First page after the highest segment: where the heap (brk) starts."""
        return -(-self.image.end // PAGE) * PAGE


def _refuse_non_elf(path: Path, raw: bytes) -> None:
    if not raw:
        raise ImageError(f"{path}: empty file, not a program")
    if raw[:2] == b"#!":
        line = raw.split(b"\n", 1)[0][2:].strip().decode(errors="replace")
        raise ImageError(
            f"{path}: a script for {line or 'an interpreter'}; run the interpreter itself, e.g. "
            f"`rrtool run {line.split()[0] if line else '/bin/sh'} {path}`, with a static build of it"
        )
    if raw[:4] != b"\x7fELF":
        raise ImageError(f"{path}: not an ELF executable")


def load_program(path: Path, ram_size: int) -> Program:
    """Parse and place a static x86-64 Linux executable; nothing is mapped yet (the machine does that)."""
    try:
        check_input_file(path, "program")
    except PathError as exc:
        raise ImageError(str(exc)) from None
    return parse_program(path.read_bytes(), path, ram_size)


def parse_program(raw: bytes, path: Path, ram_size: int) -> Program:
    """Place the static executable whose bytes are `raw` (`path` names it in messages): a program started or
    exec'd. Raises ImageError with one line for anything that cannot run."""
    _refuse_non_elf(path, raw)
    try:
        with io.BytesIO(raw) as f:
            elf = ELFFile(f)
            machine, bits = elf["e_machine"], elf.elfclass
            if bits != 64 or machine != "EM_X86_64":
                arch = {"EM_386": "a 32-bit x86", "EM_AARCH64": "an ARM64", "EM_ARM": "an ARM", "EM_RISCV": "a RISC-V"}
                name = arch.get(machine, f"a {machine} {bits}-bit")
                if machine == "EM_X86_64":
                    name = "a 32-bit x86-64 (x32)"
                raise ImageError(f"{path}: {name} executable; rrtool runs x86-64 (64-bit) programs only")
            etype = elf["e_type"]
            if etype not in ("ET_EXEC", "ET_DYN"):
                raise ImageError(f"{path}: an ELF {etype} file, not an executable")
            loads = []
            phdr_vaddr = None
            dynamic = False
            for seg in elf.iter_segments():
                kind = seg["p_type"]
                if kind == "PT_INTERP":
                    raise ImageError(
                        f"{path}: dynamically linked; rrtool runs static executables: rebuild it with `-static` "
                        "(or `-static-pie`)"
                    )
                if kind == "PT_DYNAMIC":
                    dynamic = True
                if kind == "PT_PHDR":
                    phdr_vaddr = seg["p_vaddr"]
                if kind == "PT_LOAD" and seg["p_memsz"] > 0:
                    loads.append((seg["p_vaddr"], seg.data(), seg["p_memsz"], seg["p_flags"], seg["p_offset"]))
            if etype == "ET_DYN" and not dynamic:
                raise ImageError(f"{path}: a shared object without a dynamic section, not a static-pie executable")
            entry, phoff = elf["e_entry"], elf["e_phoff"]
            phent, phnum = elf["e_phentsize"], elf["e_phnum"]
    except ImageError:
        raise
    except Exception as exc:  # pyelftools raises more than ELFError on hostile bytes (struct, value, index errors)
        raise ImageError(f"{path}: malformed ELF ({type(exc).__name__}: {exc})") from None
    if not loads:
        raise ImageError(f"{path}: no loadable segments")
    pie = etype == "ET_DYN"
    bias = PIE_BASE - (min(v for v, *_ in loads) & ~(PAGE - 1)) if pie else 0
    segments = sorted(
        (Segment(vaddr + bias, data, memsz, flags) for vaddr, data, memsz, flags, _ in loads), key=lambda s: s.vaddr
    )
    for a, b in itertools.pairwise(segments):
        if a.vaddr + a.memsz > b.vaddr:
            raise ImageError(f"{path}: segments at {a.vaddr:#x} and {b.vaddr:#x} overlap")
    for s in segments:
        if s.vaddr < LOW_LIMIT or s.vaddr + s.memsz > ram_size // 2:
            raise ImageError(
                f"{path}: segment {s.vaddr:#x}-{s.vaddr + s.memsz:#x} does not fit the guest's address space "
                f"({LOW_LIMIT:#x}-{ram_size // 2:#x}); try a larger --ram"
            )
    entry += bias
    if not any(s.vaddr <= entry < s.vaddr + s.memsz for s in segments):
        raise ImageError(f"{path}: entry point {entry:#x} is not inside a loadable segment")
    if phdr_vaddr is None:
        # No PT_PHDR: the headers are wherever the segment that maps file offset e_phoff put them.
        for vaddr, data, _memsz, _flags, offset in loads:
            if offset <= phoff < offset + len(data):
                phdr_vaddr = vaddr + phoff - offset
                break
    if phdr_vaddr is None:
        raise ImageError(f"{path}: the program headers are not in a loadable segment (no AT_PHDR for glibc)")
    image = GuestImage(path=path, entry=entry, segments=tuple(segments), sha256=hashlib.sha256(raw).hexdigest())
    return Program(image=image, phdr=phdr_vaddr + bias, phent=phent, phnum=phnum, bias=bias, pie=pie, raw=raw)
