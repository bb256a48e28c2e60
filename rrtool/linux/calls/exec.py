"""execve and execveat of static executables inside the root.

The call itself only decides: it reads the path, argv and envp, gets the
executable's bytes and parses them. The bytes are the one thing from the
host, so they are the call's data in the trace, unless they are a program
this run already holds (the first program, or one exec'd before: busybox's
shell runs applets by exec'ing /proc/self/exe), which the row names by its
digest alone. Replay therefore execs without a root. A program that cannot
run (a script, a dynamic executable) fails the call with ENOEXEC, as the
shell expects, not the run.

The new image is put in place at the stop right after the call
(`finish_exec`), between slices: a vfork child that shared its parent's
memory gets an address space of its own there, and the CPU starts at the new
entry point with the registers a fresh process has.
"""

from __future__ import annotations

import errno
import struct
from dataclasses import dataclass
from pathlib import Path

import xxhash
from unicorn import x86_const as x86

from rrtool.linux.calls.signals import SIG_IGN
from rrtool.linux.fds import Errno
from rrtool.linux.kernel import Call, Kernel, syscall
from rrtool.linux.loader import Program, parse_program
from rrtool.linux.memory import PAGE, AddressSpace
from rrtool.linux.tasks import SigAction, Space
from rrtool.machine.cpu import RAM_BASE
from rrtool.machine.digest import DIGEST_REGS
from rrtool.machine.image import ImageError
from rrtool.machine.units import EventRejected

#: The most bytes an exec may bring into the trace, and the limits on its argument vectors (Linux's ARG_MAX).
MAX_EXE = 256 << 20
MAX_ARGS = 4096
MAX_ARG_BYTES = 1 << 20
AT_EMPTY_PATH, AT_FDCWD = 0x1000, -100


@dataclass
class Exec:
    """What a successful execve leaves for the stop after it."""

    program: Program
    argv: tuple[str, ...]
    env: tuple[str, ...]
    exe: str


def _vector(k: Kernel, addr: int) -> tuple[str, ...]:
    """A NULL-terminated array of string pointers (argv, envp), bounded as Linux bounds it (E2BIG)."""
    out: list[str] = []
    total = 0
    while addr:
        (ptr,) = struct.unpack("<Q", k.read(addr, 8))
        if ptr == 0:
            break
        text = k.cstr(ptr, 128 * 1024)
        total += len(text) + 1
        if len(out) >= MAX_ARGS or total > MAX_ARG_BYTES:
            raise Errno(errno.E2BIG)
        out.append(text.decode("utf-8", "surrogateescape"))
        addr += 8
    return tuple(out)


def _known(k: Kernel) -> dict[int, Program]:
    """Programs this run already holds, by the xxh3-64 of their bytes."""
    known: dict[int, Program] = {}
    for program in [k.program, *(p.program for p in k.procs.values())]:
        if program is not None and program.raw:
            known.setdefault(xxhash.xxh3_64_intdigest(program.raw), program)
    return known


def _load(k: Kernel, call: Call, guest: str) -> Program:
    """The executable at `guest`: from the host when live, from the trace in replay. A file that is not a
    program rrtool can run is ENOEXEC, decided when recording (replay holds only programs that parsed)."""
    known = _known(k)
    current = k.proc.program or k.program
    ram_size = k.machine.config.ram_size
    parsed: list[Program] = []

    def perform() -> tuple[int, bytes | None]:
        if guest == "/proc/self/exe":
            raw = current.raw
        else:
            assert k.root is not None
            host = k.root.locate(k.root.resolve(guest, k.proc.cwd))
            if host is None:
                raise OSError(errno.ENOENT, "no such file")
            if not host.is_file():
                raise OSError(errno.EACCES, "not a regular file")
            if host.stat().st_size > MAX_EXE:
                raise OSError(errno.E2BIG, "too large")
            raw = host.read_bytes()
        digest = xxhash.xxh3_64_intdigest(raw)
        if digest in known:
            call.ev.value = digest  # the row names a program the run already has
            return 0, None
        try:
            parsed.append(parse_program(raw, Path(guest), ram_size))
        except ImageError:
            return -errno.ENOEXEC, None
        return 0, raw

    ret, data = k.host(call, perform, max_data=MAX_EXE, max_ret=0)
    if ret < 0:
        raise Errno(-ret)
    if data is None:
        program = known.get(call.ev.value or 0)
        if program is None:
            raise EventRejected(call.ev, "execve names a program the run does not have")
        return program
    if parsed:
        return parsed[0]
    try:
        return parse_program(data, Path(guest), ram_size)
    except ImageError:
        raise EventRejected(call.ev, "the program execve logged is not one that runs") from None


def _execve(k: Kernel, call: Call, path_addr: int, argv_addr: int, env_addr: int, empty_fd: int | None) -> int:
    if empty_fd is not None:
        file = k.fds.file(empty_fd)
        guest = file.path
        call.ev.path = guest
    else:
        path = k.path_arg(call, path_addr)
        if not path:
            return -errno.ENOENT
        guest = path
    argv = _vector(k, argv_addr)
    env = _vector(k, env_addr)
    program = _load(k, call, guest)
    # The new process sees the path as it was passed (AT_EXECFN), made absolute: the same in replay, which
    # has no root to resolve symlinks in; an exec of /proc/self/exe keeps the program's own name.
    exe = guest if guest.startswith("/") else k.proc.cwd.rstrip("/") + "/" + guest
    k.proc.pending_exec = Exec(program, argv, env, k.proc.exe if guest == "/proc/self/exe" else exe)
    k.machine.stop_here()
    return 0


@syscall("execve")
def sys_execve(k: Kernel, call: Call) -> int:
    return _execve(k, call, call.a[0], call.a[1], call.a[2], None)


@syscall("execveat")
def sys_execveat(k: Kernel, call: Call) -> int:
    dirfd, path, argv, env, flags = call.a[:5]
    if flags & AT_EMPTY_PATH and k.cstr(path) == b"":
        return _execve(k, call, 0, argv, env, dirfd & 0xFFFFFFFF)
    if dirfd & 0xFFFFFFFF != AT_FDCWD & 0xFFFFFFFF and not k.cstr(path).startswith(b"/"):
        return -errno.ENOSYS  # relative to a directory descriptor: not yet
    return _execve(k, call, path, argv, env, None)


def finish_exec(k: Kernel) -> None:
    """Put the exec'd image in place (between slices): a fresh address space, stack, registers, signals."""
    proc, m = k.proc, k.machine
    done: Exec = proc.pending_exec
    proc.pending_exec = None
    program = done.program
    from rrtool.linux.calls.tasks import note

    for tid in list(proc.threads):  # the other threads end (Linux's de-thread)
        if tid != k.task.tid:
            k.threads.pop(tid, None)
            note(k, "exit", tid, 9)  # as if killed: SIGKILL
    if k.task.tid != proc.pid:  # a thread exec'd: it goes on with the leader's id, as on Linux
        k.threads.pop(k.task.tid, None)
        k.task.tid = proc.pid
        k.threads[proc.pid] = k.task
    proc.threads = [k.task.tid]
    size = m.config.ram_size
    mem = AddressSpace(RAM_BASE, size, program.end)
    if proc.space.users > 1:  # a vfork child: the parent keeps the memory they shared
        proc.space.users -= 1
        proc.space.kinds = m.pages.save_kinds()
        gdt = m.ram.read(0x1000, PAGE)
        ram = k.new_ram()
        ram.write(0x1000, gdt)
        proc.space = Space(mem, ram, sid=proc.pid, kinds=m.pages.save_kinds())
        m.switch_ram(ram, m.pages.save_kinds())
    else:
        for piece in proc.space.mem.mappings:
            m.discard_ram(piece.start, piece.end)
        proc.space.mem = mem
    k.map_image(program)
    for seg in program.image.segments:
        m.mem_write(seg.vaddr, seg.data)
    # Fresh AT_RANDOM bytes, derived (not host randomness): the same in replay.
    seed = k.config.at_random + struct.pack("<qq", proc.pid, k.calls)
    at_random = xxhash.xxh3_128_digest(seed)
    sp = k.build_stack(program, done.argv, done.env, done.exe, at_random)
    emu = m.emu
    for reg in DIGEST_REGS:
        emu.reg_write(reg, 0)
    emu.reg_write(x86.UC_X86_REG_RSP, sp)
    emu.reg_write(x86.UC_X86_REG_RIP, program.image.entry)
    emu.reg_write(x86.UC_X86_REG_RFLAGS, 0x202)
    m.forget_translations()
    proc.program, proc.exe = program, done.exe
    proc.name = done.exe.rsplit("/", 1)[-1].encode("utf-8", "surrogateescape")[:15]
    proc.actions = {sig: SigAction(SIG_IGN) for sig, a in proc.actions.items() if a.handler == SIG_IGN}
    k.task.altstack = (0, 2, 0)
    k.task.clear_tid = 0
    for fd, entry in proc.fds.items():
        if entry.cloexec:
            proc.fds.close(fd)
    proc.vfork_done.bump()


__all__ = ["finish_exec"]
