"""State digests: cheap enough for every checkpoint (registers, devices), RAM at a cadence."""

from __future__ import annotations

import ctypes
import mmap

import unicorn as uc
import xxhash
from unicorn import x86_const as x86
from unicorn.unicorn_py3.unicorn import uclib

DIGEST_REGS = (
    x86.UC_X86_REG_RAX,
    x86.UC_X86_REG_RBX,
    x86.UC_X86_REG_RCX,
    x86.UC_X86_REG_RDX,
    x86.UC_X86_REG_RSI,
    x86.UC_X86_REG_RDI,
    x86.UC_X86_REG_RBP,
    x86.UC_X86_REG_RSP,
    x86.UC_X86_REG_R8,
    x86.UC_X86_REG_R9,
    x86.UC_X86_REG_R10,
    x86.UC_X86_REG_R11,
    x86.UC_X86_REG_R12,
    x86.UC_X86_REG_R13,
    x86.UC_X86_REG_R14,
    x86.UC_X86_REG_R15,
    x86.UC_X86_REG_RIP,
    x86.UC_X86_REG_RFLAGS,
    x86.UC_X86_REG_FS_BASE,
    x86.UC_X86_REG_GS_BASE,
)


class RegisterDigester:
    """xxh3-64 of the CPU registers, read with one raw `uc_reg_read_batch` into a fixed array.

    The Python wrapper's reg_read_batch dispatches per register (~50 us for 20);
    one C call into preallocated memory costs a few microseconds, and this runs at
    every checkpoint of a recording.
    """

    def __init__(self, emu: uc.Uc) -> None:
        n = len(DIGEST_REGS)
        self._emu = emu
        self._count = n
        self._ids = (ctypes.c_int32 * n)(*DIGEST_REGS)
        self._values = (ctypes.c_uint64 * n)()
        base = ctypes.addressof(self._values)
        self._ptrs = (ctypes.c_void_p * n)(*(base + 8 * i for i in range(n)))

    def digest(self) -> int:
        err = uclib.uc_reg_read_batch(self._emu._uch, self._ids, self._ptrs, self._count)
        if err != uc.UC_ERR_OK:
            raise uc.UcError(err)
        return int(xxhash.xxh3_64_intdigest(memoryview(self._values)))


class RegisterBatch:
    """Several registers in one raw `uc_reg_read_batch` (the Linux platform reads RAX and six arguments
    at every system call; the wrapper's reg_read costs ~7 us each)."""

    def __init__(self, emu: uc.Uc, regs: tuple[int, ...]) -> None:
        n = len(regs)
        self._emu = emu
        self._count = n
        self._ids = (ctypes.c_int32 * n)(*regs)
        self._values = (ctypes.c_uint64 * n)()
        base = ctypes.addressof(self._values)
        self._ptrs = (ctypes.c_void_p * n)(*(base + 8 * i for i in range(n)))

    def read(self) -> list[int]:
        err = uclib.uc_reg_read_batch(self._emu._uch, self._ids, self._ptrs, self._count)
        if err != uc.UC_ERR_OK:
            raise uc.UcError(err)
        return list(self._values)


class GuestRam:
    """Guest RAM in host memory the machine owns, mapped into Unicorn with `mem_map_ptr`.

    Owning the pages lets a memory digest hash them in place (no copy: about 2 ms
    for 32 MiB with xxh3) and lets reset zero them with one memset. An anonymous
    mmap starts as zero pages the kernel supplies lazily, so a big RAM costs
    nothing until the guest touches it. Writes that may hit translated code still
    go through `Uc.mem_write`, which keeps Unicorn's translation cache coherent.

    The mapping is private, not Python's default shared: reading a never-written
    page of a private anonymous mapping maps the kernel's one zero page, which
    counts for nothing in RSS, whereas a shared (shmem) mapping allocates a real
    page on a read. So the memory digest, which reads all of RAM, costs a 32 MiB
    guest that used 1 MiB about 1 MiB of RSS rather than 33 MiB, and the digest
    itself (xxh3 of the bytes) is unchanged. Nothing shares the pages with
    another process.
    """

    def __init__(self, emu: uc.Uc | None, base: int, size: int, *, offset: int = 0) -> None:
        self.base = base
        self.size = size
        #: Where Unicorn holds it: guest-physical `base + offset` (each Linux address space its own offset).
        self.offset = offset
        self._map = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        self._anchor = ctypes.c_char.from_buffer(self._map)  # keeps the address valid for Unicorn's lifetime
        self.address = ctypes.addressof(self._anchor)
        if emu is not None:
            self.map_into(emu)

    def map_into(self, emu: uc.Uc) -> None:
        emu.mem_map_ptr(self.base + self.offset, self.size, uc.UC_PROT_ALL, self.address)

    def copy_into(self, other: GuestRam, ranges: list[tuple[int, int]]) -> None:
        """Write these [start, end) ranges of this RAM into `other`, which must be zero (a fork).

        Chunks that are all zero are skipped: a fresh private page costs nothing until written, so a
        child's untouched stack and heap stay free.
        """
        src, dst = memoryview(self._map), memoryview(other._map)
        step = 1 << 16
        zero = bytes(step)
        for start, end in ranges:
            for lo in range(start - self.base, end - self.base, step):
                hi = min(lo + step, end - self.base)
                chunk = src[lo:hi]
                if chunk != zero[: hi - lo]:
                    dst[lo:hi] = chunk

    def write(self, addr: int, data: bytes) -> None:
        """Into a RAM that is not under the CPU (a forked child's, before it first runs)."""
        off = addr - self.base
        self._map[off : off + len(data)] = data

    def clear(self) -> None:
        """Every page back to zero, as fresh (an address space that ended: its pages go back to the host)."""
        self._map.madvise(mmap.MADV_DONTNEED, 0, self.size)

    def digest(self) -> int:
        return int(xxhash.xxh3_64_intdigest(self._map))

    def digest_ranges(self, ranges: list[tuple[int, int]]) -> int:
        """xxh3-64 of the given [start, end) ranges of guest addresses, in order, with their bounds.

        For a platform that knows which memory is in use (a Linux process's mappings): hashing 512 MiB
        of mostly untouched RAM at every memory digest cost 50-100 ms; the mappings are a few MiB.
        """
        h = xxhash.xxh3_64()
        view = memoryview(self._map)
        for start, end in ranges:
            h.update(start.to_bytes(8, "little") + end.to_bytes(8, "little"))
            h.update(view[start - self.base : end - self.base])
        return int(h.intdigest())

    def page(self, addr: int) -> bytes:
        """A copy of the 4 KiB page at guest address `addr` (snapshots: slicing the mmap is a memcpy)."""
        off = addr - self.base
        return self._map[off : off + 0x1000]

    def read(self, addr: int, length: int) -> bytes:
        off = addr - self.base
        return self._map[off : off + length]

    def zero(self) -> None:
        ctypes.memset(self.address, 0, self.size)

    def discard(self, start: int, end: int) -> None:
        """Give [start, end) (page-aligned guest addresses) back as zero pages: madvise, no copy, no RSS.

        For the Linux platform's munmap and MADV_DONTNEED. The caller drops translations of code there.
        """
        offset = start - self.base
        self._map.madvise(mmap.MADV_DONTNEED, offset, end - start)
