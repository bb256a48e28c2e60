"""Signals of one process: actions, the mask, the alternate stack, and synchronous faults.

A CPU fault (SIGSEGV, SIGBUS, SIGILL, SIGFPE) is precise: the machine hands it
to `deliver_fault` with the faulting instruction not retired. With a handler
installed (and the signal not blocked) the kernel builds the frame Linux
builds (`rt_sigframe`: return address, ucontext with the registers, siginfo)
and the handler runs; `rt_sigreturn` puts the registers back. Without one the
run ends with the signal's name, the pc, icount and fault address, and the
process's status is 128 + the signal, as a shell reports it. A signal the
program sends itself (`kill`, `tgkill`, e.g. from abort()) with no handler
ends the run the same way; with a handler, the handler runs as that call returns (or when the program
unblocks the signal). Floating-point state is not saved in the frame
(fpstate is NULL), which handlers that return normally do not notice.
"""

from __future__ import annotations

import errno
import struct

from unicorn import x86_const as x86

from rrtool.linux.fds import Errno
from rrtool.linux.kernel import Blocked, Call, Kernel, syscall
from rrtool.linux.tasks import BLOCKED, FIRST_PID, SLEEPING, Process, SigAction, Thread
from rrtool.machine.config import Fault

SIGHUP, SIGINT, SIGQUIT, SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE, SIGKILL = 1, 2, 3, 4, 5, 6, 7, 8, 9
SIGUSR1, SIGSEGV, SIGUSR2, SIGPIPE, SIGALRM, SIGTERM, SIGCHLD, SIGSTOP = 10, 11, 12, 13, 14, 15, 17, 19
NAMES = {SIGHUP: "SIGHUP", SIGINT: "SIGINT", SIGQUIT: "SIGQUIT", SIGILL: "SIGILL", SIGTRAP: "SIGTRAP",
         SIGABRT: "SIGABRT", SIGBUS: "SIGBUS", SIGFPE: "SIGFPE", SIGKILL: "SIGKILL", SIGUSR1: "SIGUSR1",
         SIGSEGV: "SIGSEGV", SIGUSR2: "SIGUSR2", SIGPIPE: "SIGPIPE", SIGALRM: "SIGALRM", SIGTERM: "SIGTERM",
         SIGCHLD: "SIGCHLD", SIGSTOP: "SIGSTOP"}  # fmt: skip
SIG_DFL, SIG_IGN = 0, 1
SA_SIGINFO, SA_ONSTACK, SA_RESTORER, SA_NODEFER, SA_RESETHAND = 0x4, 0x08000000, 0x04000000, 0x40000000, 0x80000000
SA_RESTART = 0x10000000
SS_ONSTACK, SS_DISABLE = 1, 2
#: Signals whose default action is to do nothing.
_IGNORED_BY_DEFAULT = frozenset({SIGCHLD, 23, 28})  # SIGCHLD, SIGURG, SIGWINCH
#: CPU exception vector -> (signal, si_code).
_VECTORS = {0: (SIGFPE, 1), 6: (SIGILL, 2), 13: (SIGSEGV, 128), 14: (SIGSEGV, 1)}
#: The registers in a sigcontext, in order (r8..r15, rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp, rip).
_CTX_REGS = (x86.UC_X86_REG_R8, x86.UC_X86_REG_R9, x86.UC_X86_REG_R10, x86.UC_X86_REG_R11, x86.UC_X86_REG_R12,
             x86.UC_X86_REG_R13, x86.UC_X86_REG_R14, x86.UC_X86_REG_R15, x86.UC_X86_REG_RDI, x86.UC_X86_REG_RSI,
             x86.UC_X86_REG_RBP, x86.UC_X86_REG_RBX, x86.UC_X86_REG_RDX, x86.UC_X86_REG_RAX, x86.UC_X86_REG_RCX,
             x86.UC_X86_REG_RSP, x86.UC_X86_REG_RIP)  # fmt: skip
_UCONTEXT = 8 + 8 + 24 + 256 + 8  # uc_flags, uc_link, uc_stack, mcontext (sigcontext 256), uc_sigmask
_SIGINFO = 128
_FRAME = 8 + _UCONTEXT + _SIGINFO


def signal_name(sig: int) -> str:
    return NAMES.get(sig, f"signal {sig}")


def _bit(sig: int) -> int:
    return 1 << (sig - 1)


@syscall("rt_sigaction")
def sys_rt_sigaction(k: Kernel, call: Call) -> int:
    sig, act, oact, size = call.a[:4]
    if not 1 <= sig <= 64 or size != 8 or (sig in (SIGKILL, SIGSTOP) and act):
        return -errno.EINVAL
    old = k.proc.actions.get(sig, SigAction())
    if oact:
        k.write(oact, struct.pack("<QQQQ", old.handler, old.flags, old.restorer, old.mask))
    if act:
        handler, flags, restorer, mask = struct.unpack("<QQQQ", k.read(act, 32))
        k.proc.actions[sig] = SigAction(handler, flags, restorer, mask)
    return 0


@syscall("rt_sigprocmask")
def sys_rt_sigprocmask(k: Kernel, call: Call) -> int:
    how, new, old, size = call.a[:4]
    if size != 8:
        return -errno.EINVAL
    mask = struct.unpack("<Q", k.read(new, 8))[0] if new else 0  # read first: `old` may be the same buffer
    if old:
        k.write(old, struct.pack("<Q", k.task.sigmask))
    if new:
        mask &= ~(_bit(SIGKILL) | _bit(SIGSTOP))
        if how == 0:
            k.task.sigmask |= mask
        elif how == 1:
            k.task.sigmask &= ~mask
        elif how == 2:
            k.task.sigmask = mask
        else:
            return -errno.EINVAL
    return 0


@syscall("sigaltstack")
def sys_sigaltstack(k: Kernel, call: Call) -> int:
    new, old = call.a[0], call.a[1]
    if old:
        sp, flags, size = k.task.altstack
        k.write(old, struct.pack("<QiiQ", sp, flags, 0, size))
    if new:
        sp, flags, _pad, size = struct.unpack("<QiiQ", k.read(new, 24))
        if flags & ~SS_DISABLE:
            return -errno.EINVAL
        k.task.altstack = (sp, flags, size)
    return 0


@syscall("rt_sigreturn")
def sys_rt_sigreturn(k: Kernel, call: Call) -> int:
    """The handler returned through its restorer: RSP points just past the frame's return address."""
    emu = k.machine.emu
    uctx = emu.reg_read(x86.UC_X86_REG_RSP)
    mctx = uctx + 40
    values = struct.unpack("<17Q", k.read(mctx, 17 * 8))
    (rflags,) = struct.unpack("<Q", k.read(mctx + 17 * 8, 8))
    (mask,) = struct.unpack("<Q", k.read(uctx + 40 + 256, 8))
    for reg, value in zip(_CTX_REGS, values, strict=True):
        emu.reg_write(reg, value)
    # The hook's caller adds the length of `syscall` to RIP after the hook: land on the saved RIP.
    emu.reg_write(x86.UC_X86_REG_RIP, values[-1] - 2)
    emu.reg_write(x86.UC_X86_REG_RFLAGS, (rflags & 0xCD5) | 0x202)
    k.task.sigmask = mask & ~(_bit(SIGKILL) | _bit(SIGSTOP))
    call.keep_regs = True
    rax = int(values[13])  # RAX as it was (a call's -errno too): the dispatcher writes it back
    return rax - (1 << 64) if rax >= 1 << 63 else rax


@syscall("kill", "tgkill", "tkill")
def sys_kill(k: Kernel, call: Call) -> int:
    name = call.ev.syscall
    if name == "tgkill":
        pid, tid, sig = _int32(call.a[0]), _int32(call.a[1]), call.a[2]
    elif name == "tkill":
        pid, tid, sig = 0, _int32(call.a[0]), call.a[1]
    else:
        pid, tid, sig = _int32(call.a[0]), 0, call.a[1]
    if not 0 <= sig <= 64:
        return -errno.EINVAL
    if name == "kill":
        if pid in (0, -1) or -pid == k.proc.pid:
            targets = [k.proc] if pid != -1 else [p for p in k.procs.values() if p.alive and p is not k.proc]
        else:
            target = k.procs.get(abs(pid))
            targets = [target] if target is not None and target.alive else []
        if not targets:
            return -errno.ESRCH
        for proc in targets:
            if sig:
                send_signal(k, proc, sig)
        return 0
    thread = k.threads.get(tid)
    if thread is None or (name == "tgkill" and thread.pid != pid) or tid <= 0:
        return -errno.ESRCH
    if sig:
        send_signal(k, k.procs[thread.pid], sig, thread)
    return 0


@syscall("rt_sigsuspend")
def sys_rt_sigsuspend(k: Kernel, call: Call) -> int:
    """Wait for a signal with a temporary mask; the handler runs with it, and its return restores the old one
    (the frame holds it). A signal already pending that the temporary mask lets through returns at once."""
    new, size = call.a[0], call.a[1]
    if size != 8:
        return -errno.EINVAL
    (mask,) = struct.unpack("<Q", k.read(new, 8))
    t = k.task
    if t.saved_mask is None:
        t.saved_mask = t.sigmask
    t.sigmask = mask & ~(_bit(SIGKILL) | _bit(SIGSTOP))
    if (t.pending | k.proc.pending) & ~t.sigmask:
        return -errno.EINTR  # delivered as this call returns, with the frame restoring the old mask
    t.block("sigsuspend")
    raise Blocked()


@syscall("pause")
def sys_pause(k: Kernel, call: Call) -> int:
    """Wait for a signal: only a signal wakes it, and the call then gives EINTR (its handler runs)."""
    k.task.block("pause")
    raise Blocked()


def _int32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def _default_kills(sig: int) -> bool:
    return sig not in _IGNORED_BY_DEFAULT and sig not in (SIGSTOP, 18, 20, 21, 22)  # stop/continue: not kept


def send_signal(k: Kernel, proc: Process, sig: int, thread: Thread | None = None) -> None:
    """Make `sig` pending for `proc` (or one of its threads); a default action that kills is carried out at
    once, and a thread blocked in a call that the signal can interrupt is woken (its call gives EINTR).

    Delivery itself happens only at deterministic points: as the receiving thread's call returns, or
    when it is switched in (`deliver_pending`).
    """
    from rrtool.linux.calls.tasks import end_process

    action = proc.actions.get(sig, SigAction())
    if action.handler == SIG_IGN or (action.handler == SIG_DFL and not _default_kills(sig)):
        return
    threads = [k.threads[t] for t in proc.threads if t in k.threads]
    owner: Process | Thread = proc if thread is None else thread
    if thread is None:  # a thread that does not block it takes a process-directed signal
        thread = next((t for t in threads if not t.sigmask & _bit(sig)), threads[0] if threads else None)
    if thread is None:
        return
    blocked = bool(thread.sigmask & _bit(sig)) and sig != SIGKILL
    if (action.handler == SIG_DFL or sig == SIGKILL) and not blocked:
        who = f" (sent by task {k.task.tid})" if k.task.pid != proc.pid else " (sent by the program itself)"
        end_process(k, proc, sig, by=who)
        if proc is k.proc:
            k.machine.stop_here()
        return
    interrupts = not blocked and thread.state == BLOCKED and not thread.ready() and thread.wake_ret is None
    # The thread a signal interrupts takes it (else another thread could take it first and leave the woken
    # call with an EINTR and no handler to run).
    (thread if interrupts else owner).pending |= _bit(sig)
    if blocked:
        return
    if interrupts:
        thread.futex = None
        thread.wake_ns = None
        thread.wake_ret = -errno.EINTR
    elif thread.state == SLEEPING:
        thread.resume()  # a sleep a signal cuts short (it had already returned 0)
    k.arm_wakeup()


def _push_frame(k: Kernel, sig: int, action: SigAction, code: int, addr: int, values: list[int], trapno: int) -> bool:
    """Build Linux's rt_sigframe for `sig` below the stack (or on the alternate stack) and enter the handler's
    registers, all but RIP (the caller sets it: a hook's RIP is advanced past `syscall` after it returns).

    `values` are the registers of `_CTX_REGS` as the program is to resume with them. False when the frame
    does not fit in mapped memory (the signal then ends the run).
    """
    emu = k.machine.emu
    rflags = emu.reg_read(x86.UC_X86_REG_RFLAGS)
    sp = values[15]
    alt_sp, alt_flags, alt_size = k.task.altstack
    if action.flags & SA_ONSTACK and not alt_flags & SS_DISABLE and not alt_sp <= sp < alt_sp + alt_size:
        sp = alt_sp + alt_size
    else:
        sp -= 128  # the red zone
    frame = ((sp - _FRAME) & ~0xF) - 8  # the handler starts as if called: RSP+8 is 16-byte aligned
    uctx = frame + 8
    info = frame + 8 + _UCONTEXT
    # The mask the handler's return restores: the one before a sigsuspend, else the current one.
    restored = k.task.saved_mask if k.task.saved_mask is not None else k.task.sigmask
    k.task.saved_mask = None
    mctx = struct.pack("<17QQHHHHQQQQQ8Q", *values, rflags, 0x33, 0, 0, 0x2B, 0, trapno,
                       restored, addr, 0, *([0] * 8))  # fmt: skip
    ucontext = struct.pack("<QQQiiQ", 0, 0, alt_sp, alt_flags, 0, alt_size)[:40] + mctx[:256]
    ucontext += struct.pack("<Q", restored)
    siginfo = struct.pack("<iii4xQ", sig, 0, code, addr).ljust(_SIGINFO, b"\0")
    try:
        k.write(frame, struct.pack("<Q", action.restorer) + ucontext + siginfo)
    except Errno:
        return False
    if not action.flags & SA_NODEFER:
        k.task.sigmask |= _bit(sig) | action.mask
    if action.flags & SA_RESETHAND:
        k.proc.actions[sig] = SigAction()
    emu.reg_write(x86.UC_X86_REG_RSP, frame)
    emu.reg_write(x86.UC_X86_REG_RDI, sig)
    emu.reg_write(x86.UC_X86_REG_RSI, info)
    emu.reg_write(x86.UC_X86_REG_RDX, uctx)
    emu.reg_write(x86.UC_X86_REG_RAX, 0)
    return True


def _handled(action: SigAction) -> bool:
    return action.handler not in (SIG_DFL, SIG_IGN) and bool(action.flags & SA_RESTORER)


def deliver_fault(k: Kernel, fault: Fault) -> bool:
    """Run the program's handler for a synchronous fault, or name the signal that ends the run."""
    sig, code = _VECTORS.get(fault.vector if fault.vector is not None else -1, (SIGSEGV, 1))
    if fault.vector is None and "opcode" in fault.name:
        sig, code = SIGILL, 2
    action = k.proc.actions.get(sig, SigAction())
    blocked = k.task.sigmask & _bit(sig)
    where = f" at address {fault.address:#x}" if fault.address is not None else ""
    fault.signal = sig
    fault.message = f"killed by {signal_name(sig)}: {fault.name}{where} (pc={fault.pc:#x}, icount={fault.icount})"
    if not _handled(action) or blocked:
        if k.proc.pid != FIRST_PID:
            from rrtool.linux.calls.tasks import end_process

            end_process(k, k.proc, sig)  # a child dies of it; the run goes on with the other tasks
            return True
        return False
    emu = k.machine.emu
    values = [emu.reg_read(r) for r in _CTX_REGS]
    values[-1] = fault.pc
    if not _push_frame(k, sig, action, code, fault.address or 0, values, 14 if sig == SIGSEGV else 0):
        fault.message = (
            f"killed by {signal_name(sig)}: no room for the signal frame (pc={fault.pc:#x}, icount={fault.icount})"
        )
        return False
    emu.reg_write(x86.UC_X86_REG_RIP, action.handler)
    return True


def _take_signal(k: Kernel) -> int | None:
    """The lowest pending signal the running thread does not block (its own first, then its process's)."""
    t, proc = k.task, k.proc
    for owner in (t, proc):
        ready = owner.pending & ~t.sigmask
        if ready:
            sig = (ready & -ready).bit_length()
            owner.pending &= ~_bit(sig)
            return sig
    return None


def _deliver(k: Kernel, *, at_syscall: bool, restart: int | None = None) -> None:
    from rrtool.linux.calls.tasks import end_process

    sig = _take_signal(k)
    action = k.proc.actions.get(sig, SigAction()) if sig is not None else SigAction(SIG_IGN)
    if sig is None or action.handler == SIG_IGN or (action.handler == SIG_DFL and sig in _IGNORED_BY_DEFAULT):
        if k.task.saved_mask is not None:  # a sigsuspend returns with no handler to run: its mask goes back
            k.task.sigmask, k.task.saved_mask = k.task.saved_mask, None
        return
    if not _handled(action):
        end_process(k, k.proc, sig, by=" (sent by the program itself)")
        k.machine.stop_here()
        return
    emu = k.machine.emu
    values = [emu.reg_read(r) for r in _CTX_REGS]
    rip = emu.reg_read(x86.UC_X86_REG_RIP)
    if at_syscall:
        values[-1] = rip + 2  # resume after the syscall instruction
        if restart is not None and action.flags & SA_RESTART:
            values[-1], values[13] = rip, restart  # the interrupted call runs again after the handler
    if not _push_frame(k, sig, action, -6, 0, values, 0):  # si_code SI_TKILL
        end_process(k, k.proc, sig, by=": no room for the signal frame")
        k.machine.stop_here()
        return
    # In a syscall hook, the hook's caller adds the length of `syscall` to RIP.
    emu.reg_write(x86.UC_X86_REG_RIP, action.handler - 2 if at_syscall else action.handler)


def after_syscall(k: Kernel, restart: int | None = None) -> None:
    """Deliver the lowest pending signal that is not blocked, as a system call returns (from the syscall hook).

    A call that a signal interrupted (it gave EINTR) is restarted after the handler when the handler asked
    for SA_RESTART, as Linux does: `restart` is its number.
    """
    _deliver(k, at_syscall=True, restart=restart)


def deliver_pending(k: Kernel) -> None:
    """A thread switched in with a signal pending that it does not block: its handler runs first (the end of a
    time slice is a deterministic point). A thread whose call is still to be retried gets it after that."""
    t = k.task
    if t.wake_ret is not None or not (t.pending | k.proc.pending) & ~t.sigmask:
        return
    _deliver(k, at_syscall=False)
