"""Tasks: fork, vfork, clone, exit, exit_group, wait4, waitid, futex, the ids; and the scheduler's step.

Everything here is decided from guest state, so replay recomputes it and
checks each result against the trace; the only choice from outside is the
scheduler's (which ready task runs next, for how long), made by
`Scheduler` when recording and read from the `sched` rows in replay
(`EventPort.schedule`). A switch happens only between slices, at a stop
(`Kernel.at_stop`): when the running task blocks, sleeps or exits, when its
slice ends, or right after a call readied another task while it was the only
one that could run.

Process ids start at 1000 for the first process and count up for every task
(threads and processes share the numbering, as on Linux). The run ends when
the first process ends, whatever its children are doing; its exit status is
the run's.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import struct

from unicorn import x86_const as x86

from rrtool.linux.fds import Errno, FdTable
from rrtool.linux.kernel import Blocked, Call, Kernel, syscall
from rrtool.linux.tasks import BLOCKED, DEAD, FIRST_PID, HELD, INIT_PID, MAX_SLICE, RUNNABLE, Process, Space, Thread
from rrtool.machine.units import EventRejected
from rrtool.schemas import names as ev
from rrtool.schemas.event import Event

ETIMEDOUT = errno.ETIMEDOUT
SIGCHLD, SIGKILL = 17, 9
CLONE_VM, CLONE_FS, CLONE_FILES, CLONE_SIGHAND = 0x100, 0x200, 0x400, 0x800
CLONE_PIDFD, CLONE_PTRACE, CLONE_VFORK, CLONE_PARENT, CLONE_THREAD = 0x1000, 0x2000, 0x4000, 0x8000, 0x10000
CLONE_NEWNS, CLONE_SYSVSEM, CLONE_SETTLS, CLONE_PARENT_SETTID = 0x20000, 0x40000, 0x80000, 0x100000
CLONE_CHILD_CLEARTID, CLONE_DETACHED, CLONE_UNTRACED, CLONE_CHILD_SETTID = 0x200000, 0x400000, 0x800000, 0x1000000
CLONE_IO = 0x80000000
#: Flags rrtool carries out; any other (namespaces, ptrace, pidfds, CLONE_PARENT) is EINVAL, logged as such.
_SUPPORTED = (CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_VFORK | CLONE_THREAD | CLONE_SYSVSEM
              | CLONE_SETTLS | CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID | CLONE_DETACHED | CLONE_CHILD_SETTID
              | CLONE_UNTRACED | CLONE_IO | 0xFF)  # fmt: skip
WNOHANG, WUNTRACED, WEXITED, WCONTINUED, WNOWAIT = 1, 2, 4, 8, 0x01000000
__WALL, __WCLONE, __WNOTHREAD = 0x40000000, 0x80000000, 0x20000000
P_ALL, P_PID, P_PGID = 0, 1, 2
CLD_EXITED, CLD_KILLED = 1, 2
FUTEX_WAIT, FUTEX_WAKE, FUTEX_REQUEUE, FUTEX_CMP_REQUEUE, FUTEX_WAIT_BITSET, FUTEX_WAKE_BITSET = 0, 1, 3, 4, 9, 10
FUTEX_PRIVATE_FLAG, FUTEX_CLOCK_REALTIME = 128, 256
#: The page rrtool's CPU set-up keeps its GDT in: a forked address space needs it too.
_GDT_PAGE = (0x1000, 0x2000)


# -- the scheduler's step -------------------------------------------------------------------------
def schedule(k: Kernel) -> None:
    """At a stop: switch tasks if the running one cannot go on, its slice ended, or a decision is due."""
    m = k.machine
    t = k.task
    now = m.icount
    if t.state == DEAD:
        reason = "exited"
    elif t.state != RUNNABLE and not t.ready():
        reason = f"blocked: {t.why}" if t.state in (BLOCKED, HELD) else t.why or t.state
    elif k.decide is not None:
        reason = k.decide
    elif k.slice_end is not None and now >= k.slice_end:
        reason = "slice ended"
    else:
        return
    ready = sorted(tid for tid, th in k.threads.items() if th.ready() and th.state != DEAD)
    if not ready and not any(th.wake_ns is not None for th in k.threads.values()):
        # Nothing changes before the end checkpoint: a replay reaches this end from the log, not from here.
        tasks = sorted(k.threads.values(), key=lambda th: th.tid)
        waits = ", ".join(f"{th.tid} ({th.why or th.state})" for th in tasks)
        m.end_hang(f"every task is blocked and none can wake another: {waits or 'no task left'}")
        return
    k.decide = None
    if not ready:
        k.slice_end = None
        return  # the machine idles until a sleep or a timeout ends (wants_idle), then decides again
    if ready == [t.tid]:
        k.slice_end = None  # alone: no slices until another task can run
        return
    row = Event(ev.KIND_SCHED, "linux", now, m.vclock_at(now), task=t.tid, text=reason)
    m.port.schedule(row, lambda: k.sched.choose(t.tid, ready))
    nxt, length = row.value, row.length
    if nxt not in ready or type(length) is not int or not 1 <= length <= MAX_SLICE:
        raise EventRejected(row, f"the trace schedules task {nxt} for {length} instructions, which cannot run now")
    assert nxt is not None
    k.slice_end = now + length
    if nxt != t.tid:
        switch_to(k, k.threads[nxt])


def switch_to(k: Kernel, new: Thread) -> None:
    """Put `new` on the CPU: save the running thread's registers, change address space if it is another."""
    m = k.machine
    emu = m.emu
    old = k.task
    old_space = k.proc.space
    if old.state != DEAD:
        old.reg_digest = m.register_digest()
        old.context = emu.context_save()
    else:
        k.threads.pop(old.tid, None)
    proc = k.procs[new.pid]
    if proc.space is not old_space:
        old_space.kinds = m.pages.save_kinds()
        assert proc.space.kinds is not None
        m.switch_ram(proc.space.ram, proc.space.kinds)
        proc.space.kinds = None
        if old_space.users == 0:
            k.release_ram(old_space.ram)
    emu.context_restore(new.context)
    new.context = None
    k.task, k.proc = new, proc
    if new.state == HELD:
        new.resume()  # the vfork child is done with the memory: the parent goes on after its call
    elif new.state == BLOCKED:
        if new.wake_ret is None:
            new.resume()  # what it waited for changed: its call runs again
        return  # a signal waits until the call has returned, as on Linux
    from rrtool.linux.calls.signals import deliver_pending

    deliver_pending(k)


def note(k: Kernel, what: str, task: int, value: int) -> None:
    """A task started (`value`: the task that created it) or ended (`value`: its wait status): a `sched` row
    with no slice, so the trace alone tells every task's life (the `tasks` view)."""
    m = k.machine
    now = m.now()
    m.port.emit(Event(ev.KIND_SCHED, "linux", now, m.vclock_at(now), task=task, value=value, length=0, text=what))


# -- ids --------------------------------------------------------------------------------------------
@syscall("getpid")
def sys_getpid(k: Kernel, call: Call) -> int:
    return k.proc.pid


@syscall("gettid")
def sys_gettid(k: Kernel, call: Call) -> int:
    return k.task.tid


@syscall("getppid")
def sys_getppid(k: Kernel, call: Call) -> int:
    return k.proc.ppid


@syscall("set_tid_address")
def sys_set_tid_address(k: Kernel, call: Call) -> int:
    k.task.clear_tid = call.a[0]
    return k.task.tid


# -- creating tasks ----------------------------------------------------------------------------------
def _new_tid(k: Kernel) -> int:
    if len(k.threads) + len(k.procs) >= 4096:
        raise Errno(errno.EAGAIN)  # RLIMIT_NPROC, as the guest sees it
    tid = k.next_tid
    k.next_tid += 1
    return tid


def _child_context(k: Kernel, stack: int, tls: int | None) -> object:
    """The running thread's registers as the child starts with them: after `syscall`, RAX 0."""
    emu = k.machine.emu
    ctx = emu.context_save()
    after = emu.reg_read(x86.UC_X86_REG_RIP) + 2
    ctx.reg_write(x86.UC_X86_REG_RAX, 0)
    ctx.reg_write(x86.UC_X86_REG_RIP, after)
    ctx.reg_write(x86.UC_X86_REG_RCX, after)
    ctx.reg_write(x86.UC_X86_REG_R11, emu.reg_read(x86.UC_X86_REG_RFLAGS))
    if stack:
        ctx.reg_write(x86.UC_X86_REG_RSP, stack)
    if tls is not None:
        ctx.reg_write(x86.UC_X86_REG_FS_BASE, tls)
    return ctx


def _clone(k: Kernel, call: Call, flags: int, stack: int, ptid: int, ctid: int, tls: int) -> int:
    if flags & ~_SUPPORTED or flags & CLONE_PIDFD:
        bad = flags & ~_SUPPORTED
        k.unknown[f"clone with unsupported flags {bad:#x}"] += 1
        return -errno.EINVAL
    thread = bool(flags & CLONE_THREAD)
    if (thread and not flags & CLONE_SIGHAND) or (flags & CLONE_SIGHAND and not flags & CLONE_VM):
        return -errno.EINVAL  # as Linux requires: threads share handlers, shared handlers share memory
    if (flags & (CLONE_VM | CLONE_VFORK)) == CLONE_VM and not thread:
        k.unknown["clone of a process sharing memory without CLONE_VFORK"] += 1
        return -errno.EINVAL
    parent_thread, parent = k.task, k.proc
    if flags & CLONE_PARENT_SETTID:
        k.check(ptid, 4)  # EFAULT before any child exists, not after
    if flags & CLONE_CHILD_SETTID:
        k.check(ctid, 4)
    tid = _new_tid(k)
    ctx = _child_context(k, stack, tls if flags & CLONE_SETTLS else None)
    child = Thread(tid, parent.pid if thread else tid, sigmask=parent_thread.sigmask, altstack=parent_thread.altstack,
                   clear_tid=ctid if flags & CLONE_CHILD_CLEARTID else 0, context=ctx)  # fmt: skip
    if flags & CLONE_VM and not flags & CLONE_VFORK:
        child.altstack = (0, 2, 0)  # a thread starts without the alternate stack (a fork or vfork keeps it)
    note(k, "start", tid, parent_thread.tid)
    if thread:
        parent.threads.append(tid)
        k.threads[tid] = child
        if flags & CLONE_PARENT_SETTID:
            k.write(ptid, struct.pack("<i", tid))
        if flags & CLONE_CHILD_SETTID:
            k.write(ctid, struct.pack("<i", tid))
        return tid
    if flags & CLONE_VM:
        space = parent.space
        space.users += 1
    else:
        m = k.machine
        mem = copy.deepcopy(parent.mem)
        ram = k.new_ram()
        m.ram.copy_into(ram, [_GDT_PAGE, *mem.ranges()])
        space = Space(mem, ram, sid=tid, kinds=m.pages.save_kinds())
    fds = parent.fds if flags & CLONE_FILES else _copy_fds(parent.fds)
    actions = parent.actions if flags & CLONE_SIGHAND else copy.deepcopy(parent.actions)
    proc = Process(tid, parent.pid, space, fds, parent.exe, parent.cwd, parent.umask, actions, parent.name,
                   threads=[tid], program=parent.program)  # fmt: skip
    k.procs[tid] = proc
    k.threads[tid] = child
    parent.children.append(tid)
    if flags & CLONE_PARENT_SETTID:
        k.write(ptid, struct.pack("<i", tid))
    if flags & CLONE_CHILD_SETTID:
        if space is parent.space:
            k.write(ctid, struct.pack("<i", tid))
        else:
            k.check(ctid, 4)
            space.ram.write(ctid, struct.pack("<i", tid))
    if flags & CLONE_VFORK:
        # The parent waits until the child execs or exits (its memory may be the child's meanwhile).
        parent_thread.hold(f"vfork {tid}", proc.vfork_done)
    return tid


def _copy_fds(fds: FdTable) -> FdTable:
    """A fork's descriptor table: the same open file descriptions, one more reference each."""
    table = FdTable()
    for fd, entry in fds.items():
        table.install(fd, entry.file, entry.cloexec)
    return table


@syscall("clone")
def sys_clone(k: Kernel, call: Call) -> int:
    flags, stack, ptid, ctid, tls = call.a[:5]
    if flags & 0xFF not in (0, SIGCHLD) and not flags & CLONE_THREAD:
        k.unknown[f"clone with exit signal {flags & 0xFF}"] += 1
        return -errno.EINVAL  # only SIGCHLD (or none) tells a parent of its child's end
    return _clone_then_vfork(k, call, flags & 0xFFFFFFFF, stack, ptid, ctid, tls)


def _clone_then_vfork(k: Kernel, call: Call, flags: int, stack: int, ptid: int, ctid: int, tls: int) -> int:
    tid = _clone(k, call, flags, stack, ptid, ctid, tls)
    if tid > 0 and flags & CLONE_VFORK:
        # The parent's call returns the child's id once the child is done with the shared memory: it is
        # logged now and the parent resumes after its syscall instruction with it (no retry).
        k.machine.emu.reg_write(x86.UC_X86_REG_RAX, tid)
        k.machine.stop_here()
    return tid


@syscall("fork")
def sys_fork(k: Kernel, call: Call) -> int:
    return _clone(k, call, SIGCHLD, 0, 0, 0, 0)


@syscall("vfork")
def sys_vfork(k: Kernel, call: Call) -> int:
    return _clone_then_vfork(k, call, CLONE_VM | CLONE_VFORK | SIGCHLD, 0, 0, 0, 0)


@syscall("clone3")
def sys_clone3(k: Kernel, call: Call) -> int:
    return -errno.ENOSYS  # glibc falls back to clone, which carries the same flags


# -- ending tasks ------------------------------------------------------------------------------------
def _clear_child_tid(k: Kernel, t: Thread) -> None:
    """CLONE_CHILD_CLEARTID / set_tid_address: write 0 there and wake one futex waiter (a pthread_join)."""
    if not t.clear_tid:
        return
    with contextlib.suppress(Errno):  # a bad address is the program's problem, not the exit's
        k.write(t.clear_tid, bytes(4))
        futex_wake(k, k.proc.space.sid, t.clear_tid, 1, -1)
    t.clear_tid = 0


def end_process(k: Kernel, proc: Process, status: int, *, by: str = "") -> None:
    """The process is over (exit_group, its last thread's exit, a signal): a zombie until reaped.

    `status` is the wait status (code << 8, or the signal's number). The first process ending ends the run.
    """
    if not proc.alive:
        return
    m = k.machine
    proc.status = status
    for tid in proc.threads:
        th = k.threads.get(tid)
        if th is not None:
            note(k, "exit", tid, status)
            th.state, th.why = DEAD, "exited"
            th.wake_ns = None
            if th is not k.task:
                k.threads.pop(tid, None)
    proc.threads = []
    proc.fds.close_all()
    proc.space.users -= 1
    if proc.space.users == 0 and proc.space is not k.proc.space:
        k.release_ram(proc.space.ram)  # ended off the CPU (killed by another task): its pages go now
    if proc.pid == FIRST_PID:
        if status & 0x7F:
            from rrtool.linux.calls.signals import signal_name

            m.guest_fault(f"killed by {signal_name(status & 0x7F)}{by}", signal=status & 0x7F)
        else:
            m.guest_exit(status >> 8)
        return
    for pid in proc.children:  # orphans: their parent is now init, which reaps them
        child = k.procs.get(pid)
        if child is not None:
            child.ppid = INIT_PID
            if not child.alive:
                k.procs.pop(pid, None)
    proc.children = []
    proc.vfork_done.bump()
    parent = k.procs.get(proc.ppid)
    if parent is None or not parent.alive:
        k.procs.pop(proc.pid, None)
        return
    parent.child_events.bump()
    from rrtool.linux.calls.signals import SIG_IGN, send_signal

    if parent.actions.get(SIGCHLD) is not None and parent.actions[SIGCHLD].handler == SIG_IGN:
        # A parent ignoring SIGCHLD never sees zombies (Linux reaps them at once).
        parent.children.remove(proc.pid)
        k.procs.pop(proc.pid, None)
        return
    send_signal(k, parent, SIGCHLD)
    k.arm_wakeup()


@syscall("exit")
def sys_exit(k: Kernel, call: Call) -> int:
    """One thread ends; the process with it when it was the last."""
    t, proc = k.task, k.proc
    _clear_child_tid(k, t)
    if len(proc.threads) <= 1:
        end_process(k, proc, (call.a[0] & 0xFF) << 8)
    else:
        note(k, "exit", t.tid, (call.a[0] & 0xFF) << 8)
        proc.threads.remove(t.tid)
        t.state, t.why = DEAD, "exited"
    k.machine.stop_here()
    return 0


@syscall("exit_group")
def sys_exit_group(k: Kernel, call: Call) -> int:
    _clear_child_tid(k, k.task)
    end_process(k, k.proc, (call.a[0] & 0xFF) << 8)
    k.machine.stop_here()
    return 0


# -- waiting for children ----------------------------------------------------------------------------
def _waitable(k: Kernel, pid: int) -> tuple[list[Process], Process | None]:
    """The children `pid` selects (-1 or 0 or -pgid: any), and the first of them that has ended."""
    proc = k.proc
    kids = [k.procs[c] for c in proc.children if c in k.procs]
    if pid > 0:
        kids = [c for c in kids if c.pid == pid]
    done = next((c for c in kids if not c.alive), None)
    return kids, done


def _reap(k: Kernel, child: Process) -> None:
    k.proc.children.remove(child.pid)
    k.procs.pop(child.pid, None)


@syscall("wait4")
def sys_wait4(k: Kernel, call: Call) -> int:
    pid, status_addr, options, rusage = call.a[:4]
    pid &= 0xFFFFFFFF
    pid = pid - (1 << 32) if pid >= 1 << 31 else pid
    options &= 0xFFFFFFFF
    if options & ~(WNOHANG | WUNTRACED | WCONTINUED | __WALL | __WCLONE | __WNOTHREAD):
        return -errno.EINVAL
    kids, done = _waitable(k, pid)
    if not kids:
        return -errno.ECHILD
    if done is None:
        if options & WNOHANG:
            return 0
        k.task.block("wait4", k.proc.child_events)
        raise Blocked()
    assert done.status is not None
    if status_addr:
        k.write(status_addr, struct.pack("<i", done.status))
    if rusage:
        k.write(rusage, bytes(144))
    _reap(k, done)
    return done.pid


@syscall("waitid")
def sys_waitid(k: Kernel, call: Call) -> int:
    idtype, ident, infop, options = call.a[:4]
    options &= 0xFFFFFFFF
    if idtype not in (P_ALL, P_PID, P_PGID) or not options & WEXITED:
        return -errno.EINVAL
    kids, done = _waitable(k, ident & 0xFFFFFFFF if idtype == P_PID else -1)
    if not kids:
        return -errno.ECHILD
    if done is None:
        if options & WNOHANG:
            if infop:
                k.write(infop, bytes(128))
            return 0
        k.task.block("waitid", k.proc.child_events)
        raise Blocked()
    assert done.status is not None
    signaled = done.status & 0x7F
    code, value = (CLD_KILLED, signaled) if signaled else (CLD_EXITED, done.status >> 8)
    if infop:
        info = struct.pack("<iii4xiIi", SIGCHLD, 0, code, done.pid, k.config.uid, value)
        k.write(infop, info.ljust(128, b"\0"))
    if not options & WNOWAIT:
        _reap(k, done)
    return 0


# -- futexes -------------------------------------------------------------------------------------------
def _futex_key(k: Kernel, addr: int) -> tuple[int, int]:
    return (k.proc.space.sid, addr)


def futex_wake(k: Kernel, sid: int, addr: int, count: int, bitset: int) -> int:
    """Wake up to `count` threads waiting on (space, addr) whose bitset meets `bitset`, earliest first."""
    waiting = sorted(
        (t for t in k.threads.values() if t.futex is not None and t.futex[:2] == (sid, addr) and t.futex[2] & bitset),
        key=lambda t: t.futex_seq,
    )
    woken = 0
    for t in waiting[: max(0, count)]:
        t.futex = None
        t.wake_ns = None
        t.wake_ret = 0
        woken += 1
    if woken:
        k.arm_wakeup()
    return woken


def _timeout_ns(k: Kernel, addr: int, absolute: bool, realtime: bool) -> int | None:
    """A futex timeout as the virtual ns it ends at (absolute monotonic is virtual time itself)."""
    if not addr:
        return None
    sec, nsec = struct.unpack("<qq", k.read(addr, 16))
    if sec < 0 or not 0 <= nsec < 1_000_000_000:
        raise Errno(errno.EINVAL)
    ns = int(sec) * 1_000_000_000 + int(nsec)
    m = k.machine
    now = m.vclock_at(m.now())
    if not absolute:
        return now + ns
    if realtime:
        return None  # a wall-clock deadline would need the host's clock: waits for a wake instead
    return ns


@syscall("futex")
def sys_futex(k: Kernel, call: Call) -> int:
    addr, op, val, timeout, addr2, val3 = call.a
    cmd = op & 0x7F & ~FUTEX_PRIVATE_FLAG
    val &= 0xFFFFFFFF
    sid = k.proc.space.sid
    if cmd in (FUTEX_WAIT, FUTEX_WAIT_BITSET):
        bitset = val3 & 0xFFFFFFFF if cmd == FUTEX_WAIT_BITSET else 0xFFFFFFFF
        if bitset == 0 or addr % 4:
            return -errno.EINVAL
        (current,) = struct.unpack("<I", k.read(addr, 4))
        if current != val:
            return -errno.EAGAIN
        wake = _timeout_ns(k, timeout, cmd == FUTEX_WAIT_BITSET, bool(op & FUTEX_CLOCK_REALTIME))
        t = k.task
        if wake is not None and wake <= k.machine.vclock_at(k.machine.now()):
            return -ETIMEDOUT
        t.block(f"futex {addr:#x}")
        t.futex = (sid, addr, bitset)
        k.futex_seq += 1
        t.futex_seq = k.futex_seq
        t.wake_ns = wake
        if wake is not None:
            k.arm_wakeup()
        raise Blocked()
    if cmd in (FUTEX_WAKE, FUTEX_WAKE_BITSET):
        bitset = val3 & 0xFFFFFFFF if cmd == FUTEX_WAKE_BITSET else 0xFFFFFFFF
        if bitset == 0:
            return -errno.EINVAL
        return futex_wake(k, sid, addr, val, bitset)
    if cmd in (FUTEX_REQUEUE, FUTEX_CMP_REQUEUE):
        if cmd == FUTEX_CMP_REQUEUE:
            (current,) = struct.unpack("<I", k.read(addr, 4))
            if current != val3 & 0xFFFFFFFF:
                return -errno.EAGAIN
        woken = futex_wake(k, sid, addr, val, 0xFFFFFFFF)
        moved = 0
        limit = timeout & 0xFFFFFFFF  # val2 travels in the timeout argument
        for t in sorted(k.threads.values(), key=lambda t: t.futex_seq):
            if moved >= limit:
                break
            if t.futex is not None and t.futex[:2] == (sid, addr):
                t.futex = (sid, addr2, t.futex[2])
                moved += 1
        return woken + (moved if cmd == FUTEX_CMP_REQUEUE else 0)
    k.unknown[f"futex op {cmd}"] += 1
    return -errno.ENOSYS


__all__ = ["ETIMEDOUT", "end_process", "futex_wake", "schedule", "switch_to"]
