"""Who may execute and who may write each page of guest RAM: the TLB fill policy.

Why this exists: with Unicorn 2.1.4's default (CPU) TLB every entry is readable, writable and
executable whatever `mem_map` said, and every store to a page whose entry is executable takes the
softmmu slow path, forever. On a memory-heavy guest that costs about 6x (unicorn-notes.md, "Stores").
The machine therefore runs Unicorn's virtual TLB: a native fill callback (`rr_tlb_fill` in
`_icount.c`) maps each page identity, either R|X or R|W and never both, so data pages keep their
stores on the fast path. The policy, page by page:

- the image's non-executable segments (rodata, data, bss; ELF ``p_flags`` without PF_X) are data:
  readable and writable, never executable. A jump into one is a fault, as with NX on real hardware:
  "jump to non-executable data at ADDR", with the exact pc and icount of the usual fault line;
- the image's executable segments and all RAM outside the image (stack, free memory the guest uses
  as it likes, the host's page of GDT) are W^X: a page is writable or executable at a time and
  switches on the access that misses. A store makes it R|W (Unicorn drops the page's translations on
  the first store, its own self-modifying-code path); a fetch makes it R|X again and the counter
  forgets its cached block sizes, since the code there may have changed. So a guest that writes code
  (to the stack, free RAM or its own text) and then runs it works, at the price of one switch per
  change of mind: a page that mixes hot code and hot stores switches often, each switch costing a
  TLB fill and a retranslation, not a wrong result;
- memory outside RAM (page 0, the guard page and above): a store there is refused by the fill, so
  the fault is raised at the access itself ("invalid memory write at ADDR", the address decoded by
  `access_target`, since the fill sees only the page). Past the fill, Unicorn only flags such a store
  for the exit check it emits after each access, which the machine turns off
  (rrtool.machine.exit_checks). Loads and jumps there are left to Unicorn's region permissions and
  the invalid-memory hooks, which stop at the access either way. Those hooks cover only addresses
  outside RAM (a hook over RAM would put every store back on the slow path).

One known gap: when the translator decodes a block that starts on an executable page and runs on
past its end, the fetch of the next page is granted even if that page is data (refusing it would
fault correct code that never runs those bytes). Until that TLB entry is replaced, a jump into that
data page is not refused. Whether it is still cached depends on translation and TLB history, which a
replay need not share with its recording, so a guest that jumps into data right after such a
read-ahead may fault in one and not the other: a false divergence (never a false verification).

Apart from that gap, the W/X state of a page is only a cache of the last access kind: it changes no
guest-visible result, so it is neither digested nor saved in snapshots. After RAM is replaced behind Unicorn's back (a
restore, a reset) the machine flushes the TLB with the translations (`Machine.forget_translations`).
"""

from __future__ import annotations

import ctypes

import unicorn as uc
from unicorn import x86_const as x86

from rrtool.machine.icount import Counter, add_native_hook, native_library
from rrtool.machine.image import GuestImage

PAGE_SIZE = 0x1000
PF_X = 1  # ELF p_flags bit: executable

#: Page kinds, as `_icount.c` numbers them (enum page_kind).
PAGE_DATA = 0
PAGE_WRITE = 1
PAGE_EXEC = 2
PAGE_DATA_DECODED = 3  # data the translator decoded into past a block's page; still never executable
PAGE_NONE = 4  # unmapped (the Linux platform): every access faults

#: What `take_refused` reports (enum refusal in `_icount.c`).
REFUSED_FETCH = 1
REFUSED_READ = 2
REFUSED_WRITE = 3


#: Guest-physical addresses from here on hold the RAM of the other address spaces (Linux processes), each at
#: its own offset; the TLB policy refuses any virtual address that would reach them (the C side's SPACES_START).
SPACES_START = 1 << 48


class _Pages(ctypes.Structure):
    """Mirror of the head of `struct rr_pages` (the pointers after it stay opaque)."""

    _fields_ = [
        ("base", ctypes.c_uint64),
        ("limit", ctypes.c_uint64),
        ("refused_addr", ctypes.c_uint64),
        ("fills", ctypes.c_uint64),
        ("to_exec", ctypes.c_uint64),
        ("to_write", ctypes.c_uint64),
        ("refused", ctypes.c_uint32),
        ("rip_reg", ctypes.c_uint32),
        ("offset", ctypes.c_uint64),
    ]


def initial_kinds(image: GuestImage, base: int, limit: int) -> bytearray:
    """One kind per page of [base, limit): data for non-executable segments, executable for code, else W.

    A page shared by an executable and a non-executable segment is executable (W^X): the SDK's linker
    script page-aligns its segments, so this only matters for images built otherwise.
    """
    kinds = bytearray([PAGE_WRITE]) * ((limit - base) // PAGE_SIZE)
    for executable in (False, True):  # code last: it wins a shared page
        for seg in image.segments:
            if bool(seg.flags & PF_X) != executable:
                continue
            first = (seg.vaddr - base) // PAGE_SIZE
            last = (seg.vaddr + seg.memsz - 1 - base) // PAGE_SIZE
            kinds[first : last + 1] = bytes([PAGE_EXEC if executable else PAGE_DATA]) * (last - first + 1)
    return kinds


class Pages:
    """The virtual TLB and its native fill policy for one Unicorn instance.

    Every ctypes object the native hook points at is kept on `self`, for the life of the instance.
    """

    def __init__(self, emu: uc.Uc, image: GuestImage, base: int, limit: int, counter: Counter) -> None:
        lib = native_library()
        self._emu = emu
        self._kinds = (ctypes.c_uint8 * ((limit - base) // PAGE_SIZE)).from_buffer_copy(
            initial_kinds(image, base, limit)
        )
        self._buf = ctypes.create_string_buffer(lib.rr_pages_size())
        self._ptr = ctypes.cast(self._buf, ctypes.c_void_p)
        self._counter = counter  # the native hook clears its table: keep it alive as long as this
        self._lib = lib
        self._dirty: ctypes.Array[ctypes.c_uint8] | None = None
        lib.rr_pages_init(self._ptr, counter.native, ctypes.cast(self._kinds, ctypes.c_void_p), base, limit,
                          x86.UC_X86_REG_RIP)  # fmt: skip
        self.state = _Pages.from_buffer(self._buf)
        emu.ctl_set_tlb_mode(uc.UC_TLB_VIRTUAL)
        self._hook = add_native_hook(emu, uc.UC_HOOK_TLB_FILL, lib.rr_tlb_fill, self._ptr)
        self.flush()

    def kind(self, addr: int) -> int:
        """The page kind of a RAM address (PAGE_DATA, PAGE_WRITE, PAGE_EXEC, PAGE_DATA_DECODED or PAGE_NONE)."""
        return int(self._kinds[(addr - int(self.state.base)) // PAGE_SIZE])

    def take_refused(self) -> tuple[int, int] | None:
        """(REFUSED_FETCH/READ/WRITE, address) of an access the policy refused since the last call, or None.

        For a fetch the address is the page; the run stopped there.
        """
        if not self.state.refused:
            return None
        what = int(self.state.refused)
        self.state.refused = 0
        return what, int(self.state.refused_addr)

    def set_kinds(self, start: int, end: int, kind: int) -> None:
        """Give every page of [start, end) (page-aligned, inside RAM) `kind`, and drop the TLB.

        The Linux platform calls this for mmap, munmap, mprotect and brk. A page that becomes executable
        must also lose the counter's cached block sizes, which the next fetch's switch to PAGE_EXEC does
        for W pages; for pages set to PAGE_EXEC directly the caller flushes the counter too.
        """
        base = int(self.state.base)
        first, last = (start - base) // PAGE_SIZE, (end - base) // PAGE_SIZE
        ctypes.memset(ctypes.addressof(self._kinds) + first, kind, last - first)
        self.flush()

    # -- dirty pages, for snapshots ----------------------------------------------------------
    def track_dirty(self) -> None:
        """From now on remember which pages change (guest stores through the TLB, host writes by `mark_dirty`).

        Costs one extra TLB fill per page that is read before it is written after each `take_dirty`.
        """
        if self._dirty is None:
            self._dirty = (ctypes.c_uint8 * len(self._kinds))()
            self._lib.rr_pages_track(self._ptr, ctypes.cast(self._dirty, ctypes.c_void_p))
        self.flush()

    @property
    def tracking(self) -> bool:
        return self._dirty is not None

    def mark_dirty(self, start: int, end: int) -> None:
        """The host wrote [start, end) of RAM behind the TLB's back (a device, a system call result)."""
        if self._dirty is None or end <= start:
            return
        base, limit = int(self.state.base), int(self.state.limit)
        first, last = (max(start, base) - base) // PAGE_SIZE, (min(end, limit) - 1 - base) // PAGE_SIZE
        if first <= last:
            ctypes.memset(ctypes.addressof(self._dirty) + first, 1, last - first + 1)

    def take_dirty(self) -> list[int]:
        """Guest addresses of the pages changed since the last call, and start over (drops the TLB)."""
        assert self._dirty is not None, "track_dirty first"
        raw = bytes(self._dirty)
        base = int(self.state.base)
        pages = []
        at = raw.find(1)
        while at >= 0:
            pages.append(base + at * PAGE_SIZE)
            at = raw.find(1, at + 1)
        ctypes.memset(ctypes.addressof(self._dirty), 0, len(raw))
        self.flush()
        return pages

    def set_offset(self, offset: int) -> None:
        """RAM page `addr` is guest-physical `addr + offset` from now on (another Linux address space); the
        caller flushes the TLB."""
        self.state.offset = offset

    def save_kinds(self) -> bytes:
        """Every page's kind, for a snapshot (a Linux mapping's protection is held here)."""
        return bytes(self._kinds)

    def load_kinds(self, kinds: bytes) -> None:
        ctypes.memmove(ctypes.addressof(self._kinds), kinds, len(self._kinds))
        self.flush()

    def flush(self) -> None:
        """Drop every TLB entry: the next access to each page asks the policy again.

        The Python wrapper has no method for UC_CTL_TLB_FLUSH (a write with no arguments), so it goes
        through the generic `ctl`.
        """
        self._emu.ctl(uc.UC_CTL_TLB_FLUSH, uc.UC_CTL_IO_WRITE)


#: Stack slots no memory operand names, relative to RSP: push and call write below it, pop and ret read at it.
_STACK_SLOTS = (-8, -4, -2, 0)


def access_target(emu: uc.Uc, pc: int, page: int, code_offset: int = 0) -> int:
    """The exact address of an access the fill refused: Unicorn hands the fill only the page.

    Decodes the instruction at `pc` (read at `pc + code_offset`, see Counter.phys_offset) and takes the
    first memory operand whose effective address lies in `page`, then the stack slot a push, call, pop
    or ret touches. Naming the byte is only for the fault line and SIGSEGV's si_addr: the stop is
    already exact. Falls back to the page when nothing decodes into it.
    """
    import capstone
    from capstone import x86_const as cx

    md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    md.detail = True
    try:
        insn = next(md.disasm(bytes(emu.mem_read(pc + code_offset, 16)), pc, 1), None)
    except uc.UcError:
        return page
    if insn is None:
        return page

    def reg(reg_id: int) -> int:
        name = insn.reg_name(reg_id) or ""
        return int(emu.reg_read(getattr(x86, f"UC_X86_REG_{name.upper()}")))

    segment_base = {cx.X86_REG_FS: x86.UC_X86_REG_FS_BASE, cx.X86_REG_GS: x86.UC_X86_REG_GS_BASE}
    candidates: list[int] = []
    for op in insn.operands:
        if op.type != cx.X86_OP_MEM:
            continue
        mem = op.mem
        address = mem.disp
        if mem.base == cx.X86_REG_RIP:
            address += pc + insn.size
        elif mem.base:
            address += reg(mem.base)
        if mem.index:
            address += reg(mem.index) * mem.scale
        if mem.segment in segment_base:
            address += int(emu.reg_read(segment_base[mem.segment]))
        candidates.append(address)
    rsp = int(emu.reg_read(x86.UC_X86_REG_RSP))
    candidates += [rsp + slot for slot in _STACK_SLOTS]
    for address in candidates:
        address &= (1 << 64) - 1
        if address & ~(PAGE_SIZE - 1) == page:
            return address
    return page
