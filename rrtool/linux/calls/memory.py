"""Memory calls: brk, mmap, munmap, mprotect, mremap, madvise.

Anonymous memory is pure bookkeeping (the kernel picks addresses, so they are
the same in every run). A private file mapping reads the file's bytes once, as
a host call whose data is in the trace; MAP_SHARED file mappings are served the
same way (a private copy: writes to them do not reach the file).
"""

from __future__ import annotations

import errno
import os

from rrtool.linux.fds import Errno
from rrtool.linux.kernel import Call, Kernel, syscall
from rrtool.linux.memory import PAGE, PROT_EXEC, PROT_READ, PROT_WRITE, page_up

MAP_SHARED, MAP_PRIVATE, MAP_FIXED, MAP_ANONYMOUS = 0x01, 0x02, 0x10, 0x20
MAP_GROWSDOWN, MAP_FIXED_NOREPLACE = 0x100, 0x100000
MREMAP_MAYMOVE, MREMAP_FIXED = 1, 2
MADV_DONTNEED, MADV_FREE = 4, 8
#: One file mapping may bring at most this much of a file into the trace.
MAX_FILE_MAP = 256 << 20
_PROT_ALL = PROT_READ | PROT_WRITE | PROT_EXEC


@syscall("brk")
def sys_brk(k: Kernel, call: Call) -> int:
    mem = k.mem
    want = call.a[0]
    if want < mem.brk_start:
        return mem.brk
    old_top, new_top = page_up(mem.brk), page_up(want)
    if new_top > old_top:
        if new_top > mem.mmap_top or k.mem.overlaps(old_top, new_top):
            return mem.brk  # no room: the old break, as Linux answers
        k.map(old_top, new_top, PROT_READ | PROT_WRITE, "[heap]")
    elif new_top < old_top:
        k.unmap(new_top, old_top)
    mem.brk = want
    return want


def _length(length: int) -> int:
    if length == 0 or length > (1 << 47):
        raise Errno(errno.EINVAL)
    return page_up(length)


@syscall("mmap")
def sys_mmap(k: Kernel, call: Call) -> int:
    addr, length, prot, flags, fd, offset = call.a
    size = _length(length)
    if prot & ~_PROT_ALL or addr % PAGE or offset % PAGE:
        return -errno.EINVAL
    if flags & (MAP_SHARED | MAP_PRIVATE) == 0:
        return -errno.EINVAL
    fixed = bool(flags & (MAP_FIXED | MAP_FIXED_NOREPLACE))
    if fixed:
        if addr < k.mem.low or addr + size > k.mem.stack_bottom:
            return -errno.ENOMEM
        if flags & MAP_FIXED_NOREPLACE and k.mem.overlaps(addr, addr + size):
            return -errno.EEXIST
        start = addr
    else:
        free = k.mem.find_free(size)
        if free is None:
            return -errno.ENOMEM
        start = free
    data = b""
    name = "[anon]"
    if not flags & MAP_ANONYMOUS:
        file = k.fds.file(fd & 0xFFFFFFFF if fd < (1 << 32) else -1)
        if file.kind not in ("file", "exe"):
            return -errno.ENODEV
        if not file.readable:
            return -errno.EACCES
        want = min(size, MAX_FILE_MAP)
        host = file.host

        def read_file() -> tuple[int, bytes]:
            assert host is not None
            return start, os.pread(host, want, offset)

        ret, got = k.host(call, read_file, max_data=want, max_ret=start)
        if ret < 0:
            return ret
        if ret != start:
            from rrtool.machine.units import EventRejected

            raise EventRejected(call.ev, "a file mapping placed somewhere the kernel would not place it")
        data = got or b""
        name = file.path
    if fixed:
        k.unmap(start, start + size)
    k.map(start, start + size, prot, name)
    if data:
        k.machine.mem_write(start, data)  # mapped above, so the write cannot fault
    return start


@syscall("munmap")
def sys_munmap(k: Kernel, call: Call) -> int:
    addr, length = call.a[0], call.a[1]
    if addr % PAGE:
        return -errno.EINVAL
    size = _length(length)
    if addr < k.mem.low or addr + size > k.mem.ram_size:
        return -errno.EINVAL
    k.unmap(addr, addr + size)
    return 0


@syscall("mprotect")
def sys_mprotect(k: Kernel, call: Call) -> int:
    addr, length, prot = call.a[:3]
    if addr % PAGE or prot & ~(_PROT_ALL | 0x03000000):  # PROT_GROWSDOWN/UP are accepted and ignored
        return -errno.EINVAL
    if length == 0:
        return 0
    size = page_up(length)
    prot &= _PROT_ALL
    if not k.mem.protect(addr, addr + size, prot):
        return -errno.ENOMEM
    from rrtool.linux.memory import kind_of

    k.machine.pages.set_kinds(addr, addr + size, kind_of(prot))
    if prot & PROT_EXEC:
        k.machine.counter.flush()
    return 0


@syscall("mremap")
def sys_mremap(k: Kernel, call: Call) -> int:
    old, old_len, new_len, flags = call.a[:4]
    if old % PAGE or flags & MREMAP_FIXED:
        return -errno.EINVAL
    old_size, new_size = page_up(old_len), _length(new_len)
    pieces = k.mem.overlaps(old, old + old_size)
    if not k.mem.mapped(old, old + old_size) or not pieces:
        return -errno.EFAULT
    prot, name = pieces[0].prot, pieces[0].name
    if new_size <= old_size:
        if new_size < old_size:
            k.unmap(old + new_size, old + old_size)
        return old
    if not k.mem.overlaps(old + old_size, old + new_size) and old + new_size <= k.mem.mmap_top:
        k.map(old + old_size, old + new_size, prot, name)  # grow in place
        return old
    if not flags & MREMAP_MAYMOVE:
        return -errno.ENOMEM
    start = k.mem.find_free(new_size)
    if start is None:
        return -errno.ENOMEM
    data = k.machine.mem_read(old, old_size)
    k.map(start, start + new_size, prot, name)
    k.machine.mem_write(start, data)
    k.unmap(old, old + old_size)
    return start


@syscall("madvise")
def sys_madvise(k: Kernel, call: Call) -> int:
    addr, length, advice = call.a[:3]
    if addr % PAGE:
        return -errno.EINVAL
    if advice in (MADV_DONTNEED, MADV_FREE) and length:
        size = page_up(length)
        if not k.mem.mapped(addr, addr + size):
            return -errno.ENOMEM
        k.machine.discard_ram(addr, addr + size)  # anonymous private memory reads back as zeros
        k.machine.counter.flush()
    return 0
