"""The Linux platform: a process on the machine core, its system calls as events.

The `syscall` instruction is hooked; its exact icount is known there (the
instruction ends its translation block, and the hook sees RIP at it). Each
call is one `syscall` row in the trace, written through the port:

- a call whose result the kernel decides from guest-visible state (memory,
  signals, identity, descriptors, virtual time) is computed in every mode and
  replay checks the result against the trace;
- a call whose result comes from the host (a file, the wall clock, random
  bytes, the terminal, a socket) runs on the host only when live or
  recording; replay takes the result and the bytes the host returned from the
  trace and compares what the program passed in (arguments, path, a digest of
  the data it wrote). Replay therefore opens no host file and no socket.

System calls are grouped by family in `rrtool.linux.calls`; each module
registers its handlers with `syscall(...)`, so adding a family is a new module
and one import. The kernel itself keeps the state every family shares (the
address space, descriptors, working directory, signal actions) and is the
platform the machine core talks to.
"""

from __future__ import annotations

import copy
import errno
import json
import struct
from collections import Counter as Tally
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import unicorn as uc
import xxhash
from unicorn import x86_const as x86

from rrtool.linux.config import LinuxConfig
from rrtool.linux.fds import Errno, FdTable, OpenFile
from rrtool.linux.loader import Program
from rrtool.linux.memory import PAGE, PROT_EXEC, PROT_READ, PROT_WRITE, AddressSpace, kind_of
from rrtool.linux.sandbox import Root
from rrtool.linux.sysnames import NUMBERS, syscall_name
from rrtool.linux.tasks import (
    BLOCKED,
    FIRST_PID,
    INIT_PID,
    RUNNABLE,
    SLEEPING,
    Process,
    Scheduler,
    Space,
    Thread,
)  # fmt: skip
from rrtool.machine.config import Fault
from rrtool.machine.cpu import RAM_BASE, cpuid
from rrtool.machine.digest import GuestRam, RegisterBatch
from rrtool.machine.pages import PAGE_NONE, SPACES_START
from rrtool.machine.port import PortError
from rrtool.machine.units import EventRejected
from rrtool.schemas import names as ev
from rrtool.schemas.event import Event

if TYPE_CHECKING:
    from rrtool.machine.machine import Machine

MASK64 = (1 << 64) - 1
#: The first process's identity (fixed, so it is the same in every run) and its parent's.
PID = FIRST_PID
PPID = INIT_PID
#: Results from -4095 to -1 are -errno.
MAX_ERRNO = 4095
_ARG_REGS = (x86.UC_X86_REG_RDI, x86.UC_X86_REG_RSI, x86.UC_X86_REG_RDX,
             x86.UC_X86_REG_R10, x86.UC_X86_REG_R8, x86.UC_X86_REG_R9)  # fmt: skip
#: Auxiliary vector keys (linux/auxvec.h).
AT_NULL, AT_PHDR, AT_PHENT, AT_PHNUM, AT_PAGESZ, AT_BASE, AT_FLAGS, AT_ENTRY = 0, 3, 4, 5, 6, 7, 8, 9
AT_UID, AT_EUID, AT_GID, AT_EGID, AT_PLATFORM, AT_HWCAP, AT_CLKTCK = 11, 12, 13, 14, 15, 16, 17
AT_SECURE, AT_RANDOM, AT_HWCAP2, AT_EXECFN = 23, 25, 26, 31


@dataclass
class Call:
    """One system call as its handler sees it: the row being built and the six argument registers."""

    ev: Event
    a: list[int]
    #: Set once the row went through the port (a host call logs it there).
    logged: bool = False
    #: The handler set every register itself (rt_sigreturn): leave RCX and R11 alone.
    keep_regs: bool = False
    #: With --log-write-data: the bytes the program passed out, stored in the row.
    out: bytes | None = None


Handler = Callable[["Kernel", Call], int]
#: Every system call rrtool implements, by number (filled in by the modules of `rrtool.linux.calls`).
TABLE: dict[int, Handler] = {}


def syscall(*names: str) -> Callable[[Handler], Handler]:
    """Register a handler for the named calls (x86-64 names, as in `sysnames`)."""

    def register(fn: Handler) -> Handler:
        for name in names:
            TABLE[NUMBERS[name]] = fn
        return fn

    return register


class Blocked(Exception):
    """The call cannot complete yet (an empty pipe, no child exited, a futex wait): the task blocks and its
    `syscall` instruction runs again when it is next scheduled. The thread's state says what it waits for."""


class Kernel:
    """The platform of Linux tasks (processes and threads); also its unit (`linux`) in the digest."""

    name = "linux"
    kinds = (ev.KIND_SYSCALL, ev.KIND_CONSOLE_OUT, ev.KIND_SCHED)
    applies: tuple[str, ...] = ()
    timers = 1  # timer 0: the earliest end of a sleep or a futex timeout, of any task

    def __init__(
        self,
        program: Program,
        config: LinuxConfig,
        root: Root | None,
        *,
        stdin_fd: int | None = None,
        stderr_sink: Callable[[bytes], None] | None = None,
    ) -> None:
        self.program = program
        self.config = config
        #: The host root; None in replay, where no host file is ever touched.
        self.root = root
        self.stdin_fd = stdin_fd
        self.stderr_sink = stderr_sink
        self.unknown: Tally[str] = Tally()
        self.calls = 0
        self._machine: Machine | None = None
        self._first_fds = FdTable()
        # The whole Linux record in the digest (as ShapeUnit does for the machine's): an edited flag that this
        # run never acted on (--strict-syscalls, the scheduler's seed) still diverges at the first checkpoint.
        # AT_RANDOM is left out: it is on the stack (the memory digest has it), and every recording has its own,
        # so two recordings of one program would otherwise differ from their first checkpoint on.
        shown = {k: v for k, v in config.to_dict().items() if k != "at_random"}
        self._config_state = json.dumps(shown, sort_keys=True).encode("utf-8", "surrogateescape") + b"|"
        for fd, kind in ((0, "stdin"), (1, "stdout"), (2, "stderr")):
            self._first_fds.install(fd, OpenFile(kind, f"/dev/{kind}", 0 if fd == 0 else 1, host=None))
        #: Every process that has not been reaped, and every thread that has not exited, by id.
        self.procs: dict[int, Process] = {}
        self.threads: dict[int, Thread] = {}
        self.next_tid = FIRST_PID
        self.proc: Process
        self.task: Thread
        self.sched = Scheduler(config.slice_insns, config.chaos)
        #: Where the running task's slice ends (None while it is the only task that can run).
        self.slice_end: int | None = None
        #: Why the scheduler must decide at the next stop although the running task can go on.
        self.decide: str | None = None
        #: Order of futex waits, so a wake takes the earliest waiter first (as Linux's FIFO does).
        self.futex_seq = 0
        #: Every address space's RAM ever mapped, by slot (guest-physical offset / stride), and the free slots.
        #: Not guest state: which slot a process gets is invisible to it.
        self._rams: list[GuestRam] = []
        self._free_slots: set[int] = set()
        #: The other address spaces' pages as the last snapshot saved them (shared with the next one).
        self._saved_pages: dict[int, dict[int, bytes]] = {}

    @property
    def units(self) -> list[Any]:
        return [self]

    @property
    def machine(self) -> Machine:
        assert self._machine is not None, "attached at machine construction"
        return self._machine

    @property
    def mem(self) -> AddressSpace:
        """The running process's address space."""
        return self.proc.space.mem

    @property
    def fds(self) -> FdTable:
        """The running process's descriptors."""
        return self.proc.fds

    @property
    def sleeping(self) -> bool:
        return self.task.state == SLEEPING

    # -- Platform --------------------------------------------------------------
    def attach(self, machine: Machine) -> None:
        self._machine = machine
        emu = machine.emu
        size = machine.config.ram_size
        space = Space(AddressSpace(RAM_BASE, size, self.program.end), machine.ram, sid=FIRST_PID)
        self._rams = [machine.ram]
        name = self.config.argv[0].rsplit("/", 1)[-1].encode("utf-8", "surrogateescape")[:15]
        self.proc = Process(FIRST_PID, INIT_PID, space, self._first_fds, self.config.exe, name=name,
                            threads=[FIRST_PID], program=self.program)  # fmt: skip
        self.task = Thread(FIRST_PID, FIRST_PID)
        self.procs[FIRST_PID] = self.proc
        self.threads[FIRST_PID] = self.task
        self.next_tid = FIRST_PID + 1
        self.map_image(self.program)  # the machine already wrote the segments' bytes
        cfg = self.config
        sp = self.build_stack(self.program, cfg.argv, cfg.env, cfg.exe, cfg.at_random)
        for reg in (x86.UC_X86_REG_RAX, x86.UC_X86_REG_RBX, x86.UC_X86_REG_RCX, x86.UC_X86_REG_RDX,
                    x86.UC_X86_REG_RSI, x86.UC_X86_REG_RDI, x86.UC_X86_REG_RBP):  # fmt: skip
            emu.reg_write(reg, 0)
        emu.reg_write(x86.UC_X86_REG_RSP, sp)
        emu.reg_write(x86.UC_X86_REG_RIP, self.program.image.entry)
        emu.reg_write(x86.UC_X86_REG_RFLAGS, 0x202)  # IF set: a sleeping call idles as hlt would
        self._regs = RegisterBatch(emu, (x86.UC_X86_REG_RAX, *_ARG_REGS))
        self._hook = emu.hook_add(uc.UC_HOOK_INSN, self._on_syscall, None, 1, 0, x86.UC_X86_INS_SYSCALL)

    def timers_fired(self, mask: int) -> None:
        if not mask & 1:
            return
        from rrtool.linux.calls.tasks import ETIMEDOUT

        now = self.machine.vclock_at(self.machine.icount)
        woke = False
        for t in self.threads.values():
            if t.wake_ns is None or t.wake_ns > now:
                continue
            if t.state == BLOCKED:  # a futex wait that timed out
                t.wake_ret = -ETIMEDOUT
                t.futex = None
                t.wake_ns = None
            else:
                t.resume()
            woke = woke or t is not self.task
        self.arm_wakeup()
        if woke and self.decide is None:
            self.decide = "a sleeping task woke"

    def arm_wakeup(self) -> None:
        """Timer 0 at the earliest end of a sleep or a futex timeout, of any task."""
        due = [t.wake_ns for t in self.threads.values() if t.wake_ns is not None]
        clock = self.machine.clock
        if not due:
            clock.disarm(0)
            return
        if not clock.arm(0, min(due), 0):
            raise Errno(errno.EINVAL)
        self.machine.timers_changed()

    def new_ram(self) -> GuestRam:
        """RAM for another address space (a fork): a free slot's, else a new one mapped at its own offset."""
        m = self.machine
        if self._free_slots:
            slot = min(self._free_slots)
            self._free_slots.remove(slot)
            m.counter.flush()  # Unicorn still holds translations of the code that was at these physical pages
            return self._rams[slot]
        stride = 1 << (m.config.ram_size + (1 << 20)).bit_length()
        offset = SPACES_START + (len(self._rams) - 1) * stride
        if offset + stride > 1 << 52:  # x86-64's guest-physical limit in Unicorn
            raise Errno(errno.EAGAIN)
        ram = GuestRam(None, m.ram.base, m.ram.size, offset=offset)
        m.add_ram(ram)
        self._rams.append(ram)
        return ram

    def release_ram(self, ram: GuestRam) -> None:
        """An address space ended (and is not under the CPU): its pages go back to the host, its slot is free."""
        ram.clear()
        self._free_slots.add(self._rams.index(ram))

    def pending_interrupt(self) -> tuple[int, int] | None:
        return None

    def before_checkpoint(self, icount: int) -> None:
        return None

    def reset(self) -> None:
        return None  # a Linux process never asks the machine for a reset

    def wants_idle(self) -> bool:
        """No task can run, and one sleeps or waits with a timeout: the machine idles to the next wake-up."""
        if any(t.ready() for t in self.threads.values()):
            return False
        return any(t.wake_ns is not None for t in self.threads.values())

    def current_task(self) -> int | None:
        return self.task.tid

    def deadline(self) -> int | None:
        return self.slice_end

    def at_stop(self) -> None:
        from rrtool.linux.calls.exec import finish_exec
        from rrtool.linux.calls.tasks import schedule

        if self.proc.pending_exec is not None:
            finish_exec(self)
        schedule(self)

    def memory_digest(self) -> int | None:
        """Several address spaces: every one's mapped memory, by process id; one is the machine's usual digest."""
        spaces: dict[int, Space] = {}
        for proc in self.procs.values():
            if proc.alive:
                spaces.setdefault(proc.space.sid, proc.space)
        if len(spaces) <= 1:
            return None
        digests = [f"{sid}:{space.ram.digest_ranges(space.mem.ranges()):x}" for sid, space in sorted(spaces.items())]
        return int(xxhash.xxh3_64_intdigest(";".join(digests).encode()))

    def memory_ranges(self) -> list[tuple[int, int]] | None:
        """The mapped ranges, merged: everything else is unmapped, zero, and faults on access."""
        return self.mem.ranges()

    def on_fault(self, fault: Fault) -> bool:
        from rrtool.linux.calls.signals import deliver_fault

        return deliver_fault(self, fault)

    # -- the unit --------------------------------------------------------------
    def state(self) -> bytes:
        head = f"run={self.task.tid}|slice={self.slice_end}|decide={self.decide}|next={self.next_tid}|"
        parts = [self._config_state, head.encode()]
        for pid, p in sorted(self.procs.items()):
            actions = ";".join(
                f"{n}:{a.handler:x}:{a.flags:x}:{a.restorer:x}:{a.mask:x}" for n, a in sorted(p.actions.items())
            )
            head = f"pid={pid}:{p.ppid}:{p.space.sid}|{p.cwd}|{p.umask:o}|{p.pending:x}|{actions}|{p.status}|"
            head += f"{p.exe}|{p.children}|{p.child_events.version}|"
            parts.append(head.encode("utf-8", "surrogateescape"))
            if p.alive:
                parts += [p.mem.state(), b"|", p.fds.state(), b"|"]
        for t in sorted(self.threads.values(), key=lambda t: t.tid):
            parts.append(t.state_text().encode() + b"|")
        return b"".join(parts)

    def save(self) -> object:
        """The tasks for a snapshot: one deep copy of everything, so pipe ends and epoll sets that share an
        object still share its copy. Only in replay, where no open file holds a host resource.

        The running process's memory is the machine's RAM, which the snapshot holds itself; every other
        live address space's mapped pages are copied here (zero pages are left out).
        """
        if self.root is not None:
            raise NotImplementedError("only a replayed Linux process can be snapshotted (a live one holds host files)")
        spaces = {p.space.sid: p.space for p in self.procs.values() if p.alive or p is self.proc}
        current = self.proc.space.sid
        others = {sid: _pages(space, self._saved_pages.get(sid, {})) for sid, space in spaces.items() if sid != current}
        self._saved_pages = others
        rams = {p.pid: p.space.ram for p in self.procs.values()}
        for p in self.procs.values():
            p.space.ram = None  # type: ignore[assignment]  # host buffers: the pages above stand for them
        try:
            state = copy.deepcopy((self.procs, self.threads, self.task.tid, self.proc.pid, self.next_tid,
                                   self.slice_end, self.decide, self.futex_seq, self.calls, self.unknown))
            return SavedTasks(state, others)
        finally:
            for p in self.procs.values():
                p.space.ram = rams[p.pid]

    def load(self, saved: object) -> None:
        assert isinstance(saved, SavedTasks)
        state, others = saved.state, saved.pages
        procs: dict[int, Process]
        threads: dict[int, Thread]
        tid: int
        pid: int
        procs, threads, tid, pid, self.next_tid, self.slice_end, self.decide, self.futex_seq, self.calls, \
            self.unknown = copy.deepcopy(state)  # fmt: skip
        machine = self.machine
        current = procs[pid].space.sid
        # The machine's RAM now holds the snapshot's running space (the snapshot restored it); every other
        # slot starts over, and the snapshot's other spaces get one each. Slots are not guest state.
        rams: dict[int, GuestRam] = {current: machine.ram}
        self._free_slots = set()
        for ram in self._rams:
            if ram is not machine.ram:
                self.release_ram(ram)
        for sid, pages in sorted(others.items()):
            ram = self.new_ram()
            for addr, page in pages.items():
                ram.write(addr, page)
            rams[sid] = ram
        for p in procs.values():
            # A space that ended before the snapshot gets the machine's RAM as a stand-in: nothing reads it.
            p.space.ram = rams.get(p.space.sid, machine.ram)
        self.procs, self.threads = procs, threads
        self.task, self.proc = threads[tid], procs[pid]

    def close(self) -> None:
        """The run is over: close every live process's descriptors (host files, sockets)."""
        for proc in self.procs.values():
            proc.fds.close_all()

    # -- process start -----------------------------------------------------------
    def build_stack(self, program: Program, argv: tuple[str, ...], env: tuple[str, ...], exe: str,
                    at_random: bytes) -> int:  # fmt: skip
        """argv, envp and auxv as the kernel lays them out at the top of the stack (of the running process's
        address space, at start or after an exec); returns RSP."""
        cfg = self.config
        top = self.mem.stack_top - 16
        blob = bytearray()

        def put(data: bytes) -> int:
            blob[:0] = data  # strings grow down from the top
            return top - len(blob)

        offsets: dict[str, list[int]] = {"argv": [], "env": []}
        # Arguments and environment may hold any bytes but NUL (they arrive as surrogate-escaped text).
        execfn = put(exe.encode("utf-8", "surrogateescape") + b"\0")
        platform = put(b"x86_64\0")
        for key, values in (("env", env), ("argv", argv)):
            for text in reversed(values):
                offsets[key].insert(0, put(text.encode("utf-8", "surrogateescape") + b"\0"))
        random = put(at_random)
        base = top - len(blob)  # the blob ends at `top`, so each address `put` returned stays right

        auxv = [
            (AT_PHDR, program.phdr), (AT_PHENT, program.phent), (AT_PHNUM, program.phnum),
            (AT_PAGESZ, PAGE), (AT_BASE, 0), (AT_FLAGS, 0), (AT_ENTRY, program.image.entry),
            (AT_UID, cfg.uid), (AT_EUID, cfg.uid), (AT_GID, cfg.gid), (AT_EGID, cfg.gid),
            (AT_PLATFORM, platform), (AT_HWCAP, cpuid(1, 0)[3]), (AT_CLKTCK, 100), (AT_SECURE, 0),
            (AT_RANDOM, random), (AT_HWCAP2, 0), (AT_EXECFN, execfn), (AT_NULL, 0),
        ]  # fmt: skip
        words: list[int] = [len(argv), *offsets["argv"], 0, *offsets["env"], 0]
        for tag, value in auxv:
            words += [tag, value]
        vector = struct.pack(f"<{len(words)}Q", *words)
        sp = (base - len(vector)) & ~0xF
        self.machine.mem_write(base, bytes(blob))
        self.machine.mem_write(sp, vector)
        return sp

    def map_image(self, program: Program) -> None:
        """The running process's layout for `program`, in an empty address space: its segments' pages with
        their protection, and the stack. The caller writes the segments' bytes (or the machine did)."""
        pages = self.machine.pages
        pages.set_kinds(RAM_BASE, self.machine.config.ram_size, PAGE_NONE)
        prot_of: dict[int, int] = {}
        for seg in program.image.segments:
            prot = (PROT_READ if seg.flags & 4 else 0) | (PROT_WRITE if seg.flags & 2 else 0)
            prot |= PROT_EXEC if seg.flags & 1 else 0
            start, end = seg.vaddr & ~(PAGE - 1), -(-(seg.vaddr + seg.memsz) // PAGE) * PAGE
            for page in range(start, end, PAGE):
                prot_of[page] = prot_of.get(page, 0) | prot
        for page, prot in sorted(prot_of.items()):
            self.mem.add(page, page + PAGE, prot, "[program]")
            pages.set_kinds(page, page + PAGE, kind_of(prot | PROT_READ))
        self.map(self.mem.stack_bottom, self.mem.stack_top, PROT_READ | PROT_WRITE, "[stack]")

    # -- memory services for the calls -----------------------------------------
    def map(self, start: int, end: int, prot: int, name: str) -> None:
        self.mem.add(start, end, prot, name)
        self.machine.pages.set_kinds(start, end, kind_of(prot))
        if prot & PROT_EXEC:
            self.machine.counter.flush()

    def unmap(self, start: int, end: int) -> None:
        """Unmap and zero [start, end): a later mapping there starts as zeros, as fresh pages do."""
        for piece in self.mem.remove(start, end):
            self.machine.discard_ram(piece.start, piece.end)
            if piece.prot & PROT_EXEC:
                self.machine.counter.flush()
        self.machine.pages.set_kinds(start, end, PAGE_NONE)

    def check(self, addr: int, length: int) -> None:
        """EFAULT unless [addr, addr+length) is mapped guest memory."""
        if length == 0:
            return
        if addr < RAM_BASE or addr + length > self.machine.config.ram_size or length < 0:
            raise Errno(errno.EFAULT)
        if not self.mem.mapped(addr & ~(PAGE - 1), addr + length):
            raise Errno(errno.EFAULT)

    def read(self, addr: int, length: int) -> bytes:
        self.check(addr, length)
        return self.machine.mem_read(addr, length) if length else b""

    def write(self, addr: int, data: bytes) -> None:
        self.check(addr, len(data))
        if data:
            self.machine.mem_write(addr, data)
            if any(m.prot & PROT_EXEC for m in self.mem.overlaps(addr, addr + len(data))):
                # A read into code the program has already run: its translations and cached block sizes go.
                self.machine.forget_translations()

    def u64(self, addr: int) -> int:
        return int(struct.unpack("<Q", self.read(addr, 8))[0])

    def cstr(self, addr: int, limit: int = 4096) -> bytes:
        """A NUL-terminated string, read page by page (one that runs into an unmapped page is EFAULT)."""
        out = bytearray()
        while len(out) < limit:
            chunk = min(PAGE - (addr % PAGE), limit - len(out))
            data = self.read(addr, chunk)
            nul = data.find(b"\0")
            if nul >= 0:
                return bytes(out + data[:nul])
            out += data
            addr += chunk
        raise Errno(errno.ENAMETOOLONG)

    def path_arg(self, call: Call, addr: int) -> str:
        """A path argument, recorded in the row (the first one a call passes)."""
        raw = self.cstr(addr)
        path = raw.decode("utf-8", "surrogateescape")
        if call.ev.path is None:
            call.ev.path = raw.decode("utf-8", "replace")
        return path

    # -- the port ----------------------------------------------------------------
    def host(self, call: Call, perform: Callable[[], tuple[int, bytes | None]], *, max_data: int = 0,
             max_ret: int = MASK64 >> 1) -> tuple[int, bytes | None]:  # fmt: skip
        """Run `perform` on the host (live, record) or take its result from the trace (replay).

        An OSError from `perform` is the call's -errno. In replay the logged result is checked against what
        the call could have returned (a result or data the program could not have got is `EventRejected`),
        since it is written into guest memory.
        """

        def run() -> tuple[int, bytes | None]:
            try:
                ret, data = perform()
            except OSError as exc:
                ret, data = -(exc.errno or errno.EIO), None
            except (OverflowError, ValueError):
                ret, data = -errno.EINVAL, None  # an argument the host's call cannot take (a huge offset)
            if data is None and call.out is not None:
                data = call.out  # --log-write-data: the bytes written, in the row's data
            elif data is not None:
                call.ev.value = xxhash.xxh3_64_intdigest(data)  # so an edited result shows at this very call
            return ret, data

        call.logged = True
        self.machine.port.syscall(call.ev, run)
        ret, data = call.ev.ret, call.ev.data
        if type(ret) is not int or not -MAX_ERRNO <= ret <= max_ret:
            raise EventRejected(call.ev, f"{call.ev.syscall} cannot return {ret!r} here")
        if data is not None and call.out is not None and max_data == 0:
            # A call that returns no bytes, logged with --log-write-data: the data is what was written.
            if xxhash.xxh3_64_intdigest(data) != call.ev.data_digest:
                raise EventRejected(call.ev, f"{call.ev.syscall}'s logged data is not what the program wrote")
            return ret, None
        if data is not None and (len(data) > max_data or ret < 0):
            raise EventRejected(call.ev, f"{call.ev.syscall} cannot return {len(data)} bytes here")
        if data is not None and call.ev.value != xxhash.xxh3_64_intdigest(data):
            raise EventRejected(call.ev, f"the bytes {call.ev.syscall} returned do not match their digest in the row")
        return ret, data

    def host_bytes(self, call: Call, perform: Callable[[], tuple[int, bytes | None]], limit: int) -> bytes | int:
        """A host call that returns up to `limit` bytes and their count (read, getrandom, getdents, readlink):
        the bytes, or -errno. A logged count that is not the number of bytes logged is `EventRejected`."""
        ret, data = self.host(call, perform, max_data=limit, max_ret=limit)
        if ret < 0:
            return ret
        if len(data or b"") != ret:
            raise EventRejected(call.ev, f"{call.ev.syscall} returned a count that is not its number of bytes")
        return data or b""

    def out_data(self, call: Call, data: bytes) -> None:
        """What the program passed out: its length and digest are compared in replay (bytes too, if asked)."""
        call.ev.length = len(data)
        call.ev.data_digest = xxhash.xxh3_64_intdigest(data)
        if self.config.log_write_data and not call.logged:
            call.ev.data = data
            call.out = data

    def console(self, fd_kind: str, data: bytes) -> None:
        """Bytes to stdout or stderr: a console_out row on that device, and to the user's terminal."""
        m = self.machine
        now = m.now()
        m.port.emit(Event(ev.KIND_CONSOLE_OUT, fd_kind, now, m.vclock_at(now), data=data, task=self.task.tid))
        if fd_kind == "stdout":
            m.guest_output(data)
        elif self.stderr_sink is not None:
            self.stderr_sink(data)

    def sleep(self, ns: int) -> None:
        """Block the running task for `ns` of virtual time: the CPU stops after the call, and another task runs
        meanwhile, or the machine idles to the wake-up (a warp)."""
        m = self.machine
        now = m.clock.vclock_at(m.now())
        if ns <= 0:
            return
        t = self.task
        t.state, t.why, t.wake_ns = SLEEPING, "sleep", now + ns
        self.arm_wakeup()
        m.request_stop()
        m.stop_here()

    def waited(self, ns: int) -> None:
        """A host call already waited `ns` (a poll that timed out): virtual time moves on by as much, at once."""
        self.machine.advance_clock(min(ns, 1 << 62))

    # -- the hook ------------------------------------------------------------------
    def _on_syscall(self, emu: uc.Uc, _user: object) -> None:
        m = self.machine
        if m.bus_inert:
            return  # the run ended in this block (exit, fault); the CPU is only finishing it
        nr, *args = self._regs.read()
        now = m.now()
        name = syscall_name(nr)
        t = self.task
        row = Event(ev.KIND_SYSCALL, "linux", now, m.vclock_at(now), sysno=nr & 0x7FFFFFFF, syscall=name, args=args,
                    task=t.tid)  # fmt: skip
        call = Call(row, args)
        self.calls += 1
        try:
            interrupted = False
            if t.state == BLOCKED and t.wake_ret is None:
                t.resume()  # running again after it blocked: the call is tried afresh
            if t.wake_ret == -errno.EINTR and not (t.pending | self.proc.pending) & ~t.sigmask:
                t.wake_ret = None  # the signal that interrupted it is gone (ignored since): it runs again
            if t.wake_ret is not None:
                # The call blocked and was decided while it waited (a futex woken or timed out, a signal).
                ret, t.wake_ret = t.wake_ret, None
                interrupted = ret == -errno.EINTR
                t.resume()
            else:
                handler = TABLE.get(nr)
                if handler is None:
                    ret = self._unknown(call)
                else:
                    try:
                        ret = handler(self, call)
                    except Errno as exc:
                        ret = -exc.errno
                    except Blocked:
                        # No row yet: the same instruction runs again when this task is next scheduled
                        # (the hook's caller adds the length of `syscall` to RIP).
                        emu.reg_write(x86.UC_X86_REG_RIP, emu.reg_read(x86.UC_X86_REG_RIP) - 2)
                        m.stop_here()
                        return
            if not call.logged:
                row.ret = ret
                m.port.syscall(row, None)
            elif ret != row.ret:
                raise AssertionError(f"{name} returned {ret}, but its row says {row.ret}")
            emu.reg_write(x86.UC_X86_REG_RAX, ret & MASK64)
            if not call.keep_regs:  # what the syscall instruction itself does to RCX and R11
                emu.reg_write(x86.UC_X86_REG_RCX, emu.reg_read(x86.UC_X86_REG_RIP) + 2)
                emu.reg_write(x86.UC_X86_REG_R11, emu.reg_read(x86.UC_X86_REG_RFLAGS))
            if (self.task.pending | self.proc.pending) and not m.bus_inert and self.task.state == RUNNABLE:
                from rrtool.linux.calls.signals import after_syscall

                after_syscall(self, nr if interrupted else None)
            # The running task was the only one that could run: if this call readied another (a fork, a
            # write to a pipe, a wake), the scheduler decides right after it.
            if self.slice_end is None and len(self.threads) > 1 and self.decide is None and any(
                o.ready() for o in self.threads.values() if o is not self.task
            ):
                self.decide = "a task became ready"
                m.stop_here()
        except (PortError, EventRejected) as exc:  # a replay divergence, a rejected event: after emu_start
            m.hook_failed(exc)
        except Exception as exc:
            # A failure of rrtool's own handling of this call (a value the host refused to take, a bug): the
            # program must not crash the recorder, so the run ends here with one line that names the call.
            m.guest_fault(f"rrtool could not carry out {name}: {type(exc).__name__}: {exc}")

    def _unknown(self, call: Call) -> int:
        self.unknown[call.ev.syscall or "?"] += 1
        if self.config.strict_syscalls:
            self.machine.guest_fault(
                f"unsupported system call {call.ev.syscall} ({call.ev.sysno}) with --strict-syscalls"
            )
        return -errno.ENOSYS

    def summary(self) -> str | None:
        """One line naming the calls that got ENOSYS, for the end of a run."""
        if not self.unknown:
            return None
        parts = ", ".join(f"{name} x{n}" for name, n in self.unknown.most_common())
        return f"unsupported system calls answered ENOSYS: {parts}"


@dataclass
class SavedTasks:
    """The kernel's part of a snapshot: its state, and the pages of every address space not under the CPU
    (by space id, then address), which the timeline counts in its memory budget (`pages_by_space`)."""

    state: tuple[Any, ...]
    pages: dict[int, dict[int, bytes]]

    @property
    def pages_by_space(self) -> dict[int, dict[int, bytes]]:
        return self.pages


def _pages(space: Space, previous: dict[int, bytes]) -> dict[int, bytes]:
    """The non-zero pages of an address space's mappings (a snapshot of a process not under the CPU); a page
    equal to the previous snapshot's is that very object, so unchanged pages cost a pointer."""
    zero = bytes(PAGE)
    pages: dict[int, bytes] = {}
    for start, end in [(0x1000, 0x2000), *space.mem.ranges()]:  # the GDT page too (rrtool's CPU set-up)
        for addr in range(start, end, PAGE):
            page = space.ram.page(addr)
            if page != zero:
                old = previous.get(addr)
                pages[addr] = old if old is not None and old == page else page
    return pages


def _register_families() -> None:
    """Import every family so its handlers are in TABLE (done once, when the platform is first used)."""
    from rrtool.linux.calls import exec, files, memory, net, pipes, poll, process, random, signals, tasks, time  # noqa: F401


_register_families()
