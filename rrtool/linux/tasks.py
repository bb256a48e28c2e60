"""Tasks of the Linux platform: threads, the processes they belong to, the address spaces those use.

One task runs at a time, as in rr. A thread (`Thread`) is a CPU context; while
it does not run, its registers are a saved Unicorn context. A process
(`Process`) is what threads share: descriptors, signal actions, the working
directory, and an address space (`Space`): the mappings and a RAM buffer of
its own, put under the CPU when one of its threads runs
(`Machine.switch_ram`). A fork copies the parent's space; threads share it.

A task that cannot go on (a read of an empty pipe, wait4 with no child that
exited yet, a futex wait) is *blocked*: its `syscall` instruction is run again
when it next runs, so a call that blocks costs no log row until it completes.
What it waits for is an object with a `version` (a pipe, a process's child
list) that every change bumps; the thread is ready again once the version it
saw has moved. A futex wake, a timeout or a signal instead hand the retried
call its result (`wake_ret`).

`Scheduler` makes the choices the trace records (`sched` rows): which ready
task runs next and for how many instructions. Round robin with a fixed slice
by default; with a chaos seed, a random ready task and a random slice (rr's
chaos mode), so a race that needs an unlucky preemption shows up under some
seed, in a recording that then replays exactly.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

from rrtool.linux.fds import FdTable
from rrtool.linux.loader import Program
from rrtool.linux.memory import AddressSpace
from rrtool.machine.digest import GuestRam

#: The first process's id (fixed, so it is the same in every run); later tasks count up from it.
FIRST_PID = 1000
#: The parent of the first process, and of every orphan.
INIT_PID = 1
RUNNABLE, BLOCKED, SLEEPING, DEAD = "runnable", "blocked", "sleeping", "dead"
#: A vfork parent: its call has returned (it is not retried), and it waits until the child execs or exits.
#: Nothing but that wakes it: signals stay pending until then, as Linux's vfork wait does.
HELD = "held"
#: The default time slice, in instructions (a few milliseconds of emulation).
DEFAULT_SLICE = 2_000_000
#: The longest slice a trace may give (the `length` column is 32-bit).
MAX_SLICE = 1 << 30


@dataclass
class SigAction:
    handler: int = 0
    flags: int = 0
    restorer: int = 0
    mask: int = 0


@dataclass
class Waitable:
    """Something tasks wait for whose every change bumps `version` (a process's children, a vfork)."""

    version: int = 0

    def bump(self) -> None:
        self.version += 1


@dataclass
class Space:
    """An address space: the mappings, the RAM buffer holding them, and the page kinds while it is not
    under the CPU (while it is, they live in the machine's page table)."""

    mem: AddressSpace
    ram: GuestRam
    #: Its id: the process that created it (futex keys and the memory digest name it).
    sid: int = FIRST_PID
    kinds: bytes | None = None
    #: How many live processes use it (a CLONE_VM child shares its parent's).
    users: int = 1


@dataclass
class Process:
    """What the threads of one process share."""

    pid: int
    ppid: int
    space: Space
    fds: FdTable
    exe: str
    cwd: str = "/"
    umask: int = 0o022
    actions: dict[int, SigAction] = field(default_factory=dict)
    name: bytes = b""
    #: Signals sent to the process and not yet delivered (bit sig-1); a thread-directed one is the thread's.
    pending: int = 0
    threads: list[int] = field(default_factory=list)
    children: list[int] = field(default_factory=list)
    #: Bumped whenever a child exits: a wait4 blocked on it tries again.
    child_events: Waitable = field(default_factory=Waitable)
    #: The wait status once the process ended (a zombie until its parent reaps it).
    status: int | None = None
    #: Bumped when a vfork child of this process execs or exits (the parent waits for it).
    vfork_done: Waitable = field(default_factory=Waitable)
    #: The executable it runs (an exec of /proc/self/exe runs it again).
    program: Program | None = field(default=None, repr=False)
    #: An execve that succeeded, carried out at the stop right after the call (a new image between slices).
    pending_exec: Any = None

    @property
    def mem(self) -> AddressSpace:
        return self.space.mem

    @property
    def alive(self) -> bool:
        return self.status is None


@dataclass
class Thread:
    """One task: a CPU context and the per-thread kernel state."""

    tid: int
    pid: int
    sigmask: int = 0
    #: The mask to restore when a sigsuspend returns (its handler's frame holds it), while one waits.
    saved_mask: int | None = None
    pending: int = 0
    altstack: tuple[int, int, int] = (0, 2, 0)  # ss_sp, ss_flags (SS_DISABLE), ss_size
    #: Where to write 0 and wake a futex at exit (set_tid_address, CLONE_CHILD_CLEARTID).
    clear_tid: int = 0
    state: str = RUNNABLE
    #: What it waits for, in words (messages, the digest, the `sched` row's reason).
    why: str = ""
    #: A blocked thread: the object it waits on and that object's version when it blocked.
    wait_on: Any = None
    wait_version: int = 0
    #: A futex wait: (process id, address, bitset).
    futex: tuple[int, int, int] | None = None
    futex_seq: int = 0
    #: Virtual ns at which a sleep or a futex timeout ends.
    wake_ns: int | None = None
    #: The result the blocked call returns when it runs again (a futex woken or timed out, EINTR).
    wake_ret: int | None = None
    #: The registers while it does not run (a Unicorn context), and their digest then.
    context: Any = None
    reg_digest: int = 0

    def ready(self) -> bool:
        """Whether it can run: runnable, or blocked on something that changed since."""
        if self.state == RUNNABLE:
            return True
        if self.state not in (BLOCKED, HELD):
            return False
        if self.state == BLOCKED and self.wake_ret is not None:
            return True
        return self.wait_on is not None and getattr(self.wait_on, "version", self.wait_version) != self.wait_version

    def hold(self, why: str, on: Waitable) -> None:
        """Wait for `on` with the call already returned (a vfork parent): see HELD."""
        self.block(why, on)
        self.state = HELD

    def block(self, why: str, on: Any = None) -> None:
        self.state = BLOCKED
        self.why = why
        self.wait_on = on
        self.wait_version = getattr(on, "version", 0)

    def resume(self) -> None:
        self.state = RUNNABLE
        self.why = ""
        self.wait_on = None
        self.futex = None
        self.wake_ns = None

    def state_text(self) -> str:
        return (f"{self.tid}:{self.pid}:{self.state}:{self.why}:{self.sigmask:x}:{self.pending:x}:{self.altstack}:"
                f"{self.clear_tid:x}:{self.futex}:{self.wake_ns}:{self.wake_ret}:{self.reg_digest:x}:"
                f"{self.saved_mask}")  # fmt: skip


class Scheduler:
    """The choices a recording makes and a replay reads back (live and record only)."""

    def __init__(self, slice_insns: int = DEFAULT_SLICE, chaos: int | None = None) -> None:
        self.slice_insns = slice_insns
        self.chaos = chaos
        self._rng = random.Random(chaos) if chaos is not None else None

    def choose(self, current: int, ready: list[int]) -> tuple[int, int]:
        """(next task, its slice): round robin from `current`, or chaos's random pick and slice."""
        if self._rng is not None:
            # Slices log-uniform from one instruction to the fixed slice: mostly short, sometimes long, so a
            # preemption can land anywhere, inside a read-modify-write as well.
            exponent = self._rng.uniform(0.0, math.log2(max(2, self.slice_insns)))
            return self._rng.choice(ready), max(1, int(2**exponent))
        later = [tid for tid in ready if tid > current]
        return (later[0] if later else ready[0]), self.slice_insns


__all__ = [
    "BLOCKED",
    "DEAD",
    "DEFAULT_SLICE",
    "FIRST_PID",
    "HELD",
    "INIT_PID",
    "MAX_SLICE",
    "RUNNABLE",
    "SLEEPING",
    "Process",
    "Scheduler",
    "SigAction",
    "Space",
    "Thread",
    "Waitable",
]  # fmt: skip
