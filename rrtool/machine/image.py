"""Loading a guest ELF: static, x86-64, non-overlapping segments that fit in guest RAM."""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from rrtool._paths import PathError, check_input_file

#: The host keeps 0x1000-0xFFFFF for its own structures (GDT); page 0 stays unmapped so NULL faults.
IMAGE_BASE = 0x100000


class ImageError(Exception):
    """The guest image cannot be loaded; the message is one line for the user."""


@dataclass(frozen=True)
class Segment:
    vaddr: int
    data: bytes
    memsz: int
    #: ELF p_flags (PF_X=1, PF_W=2, PF_R=4): which pages may run code (rrtool.machine.pages).
    flags: int


@dataclass(frozen=True)
class GuestImage:
    path: Path
    entry: int
    segments: tuple[Segment, ...]
    sha256: str

    @property
    def end(self) -> int:
        return max(s.vaddr + s.memsz for s in self.segments)


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


#: The platforms a trace or an image can name.
PLATFORM_BOARD = "board"
PLATFORM_LINUX = "linux"
#: The SDK's marker note (rrtool/guest/sdk/crt0.S): its name and type.
SDK_NOTE_NAME = "rrtool"
SDK_NOTE_TYPE = 1


def platform_of(path: Path) -> str:
    """`board` for a guest built with the SDK (it carries the SDK's note), else `linux`.

    Only the marker is looked at: whether a Linux executable can run (static, x86-64) is the Linux
    loader's to say, with its own messages. A file that is not a readable ELF is left to the loaders too.
    """
    try:
        with path.open("rb") as f:
            if f.read(4) != b"\x7fELF":
                return PLATFORM_LINUX
            f.seek(0)
            elf = ELFFile(f)
            for seg in elf.iter_segments():
                if seg["p_type"] != "PT_NOTE":
                    continue
                for note in seg.iter_notes():  # type: ignore[attr-defined]  # NoteSegment, untyped
                    # pyelftools names type 1 after GNU's note of that number whatever the owner: compare the
                    # owner and the raw type word.
                    if note["n_name"] == SDK_NOTE_NAME and note["n_type"] in (SDK_NOTE_TYPE, "NT_GNU_ABI_TAG"):
                        return PLATFORM_BOARD
    except (OSError, ELFError, ValueError, KeyError, UnicodeDecodeError):
        pass
    return PLATFORM_LINUX


def load_image(path: Path, ram_size: int) -> GuestImage:
    """Parse and check an image; nothing is mapped yet (the machine does that)."""
    # Regular files only: read_bytes() on a fifo blocks, on a device it never ends.
    try:
        check_input_file(path, "guest image")
    except PathError as exc:
        raise ImageError(str(exc)) from None
    raw = path.read_bytes()
    if not raw:
        raise ImageError(f"{path}: empty file, not an ELF guest image")
    if raw[:4] != b"\x7fELF":
        raise ImageError(f"{path}: not an ELF file (build guests with `rrtool guest build`)")
    try:
        with path.open("rb") as f:
            elf = ELFFile(f)
            if elf.elfclass != 64 or elf["e_machine"] != "EM_X86_64":
                raise ImageError(f"{path}: {elf['e_machine']} {elf.elfclass}-bit ELF; rrtool runs x86-64 guests only")
            if elf["e_type"] != "ET_EXEC":
                raise ImageError(f"{path}: {elf['e_type']} ELF; guests must be static, non-PIE executables")
            segments: list[Segment] = []
            for seg in elf.iter_segments():
                if seg["p_type"] in ("PT_INTERP", "PT_DYNAMIC"):
                    raise ImageError(f"{path}: dynamically linked; guests must be static executables")
                if seg["p_type"] == "PT_LOAD" and seg["p_memsz"] > 0:
                    segments.append(Segment(seg["p_vaddr"], seg.data(), seg["p_memsz"], seg["p_flags"]))
            entry = elf["e_entry"]
    except ELFError as exc:
        raise ImageError(f"{path}: malformed ELF ({exc})") from None
    if not segments:
        raise ImageError(f"{path}: no loadable segments")
    segments.sort(key=lambda s: s.vaddr)
    for a, b in itertools.pairwise(segments):
        if a.vaddr + a.memsz > b.vaddr:
            raise ImageError(f"{path}: segments at {a.vaddr:#x} and {b.vaddr:#x} overlap")
    for s in segments:
        if s.vaddr < IMAGE_BASE or s.vaddr + s.memsz > ram_size:
            raise ImageError(
                f"{path}: segment {s.vaddr:#x}-{s.vaddr + s.memsz:#x} is outside guest RAM "
                f"({IMAGE_BASE:#x}-{ram_size:#x})"
            )
    if not any(s.vaddr <= entry < s.vaddr + s.memsz for s in segments):
        raise ImageError(f"{path}: entry point {entry:#x} is not inside a loadable segment")
    return GuestImage(path=path, entry=entry, segments=tuple(segments), sha256=hashlib.sha256(raw).hexdigest())
