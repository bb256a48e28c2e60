"""The deterministic machine: Unicorn CPU, native icount, devices, checkpoints, idle warps, interrupts.

The run loop only ever stops the CPU through the native counter (deadlines or
hlt), so every place where the outside world can touch the machine is an
exact icount. Which icounts those are is decided here in live and record mode
(timers, periodic checkpoints, device requests) and by the log in replay mode
(`EventPort.next_stop`), so a replay stops exactly where the recording did.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import unicorn as uc
import xxhash
from unicorn import x86_const as x86

from rrtool.board import regs
from rrtool.board.base import Device
from rrtool.board.block import BlockDevice
from rrtool.board.clock import Clock
from rrtool.board.console import Console
from rrtool.board.intc import Intc
from rrtool.board.nic import AbsentNic, Nic
from rrtool.board.rng import Rng
from rrtool.board.rtc import Rtc
from rrtool.board.system import System
from rrtool.machine.config import (
    Limits,
    MachineConfig,
    MachineError,
    RunResult,
    exit_status,
)
from rrtool.machine.cpu import (
    EXCEPTION_NAMES,
    FAULT_NAMES,
    IF_FLAG,
    RAM_BASE,
    RDTSC_CALLBACK,
    STI_OPCODE,
    PcReader,
    disassemble,
    push_interrupt_frame,
    setup_cpu,
)
from rrtool.machine.digest import DIGEST_REGS, GuestRam, RegisterDigester
from rrtool.machine.icount import NO_DEADLINE, STOP_IRQ, STOP_NONE, Counter, add_insn_hook
from rrtool.machine.image import GuestImage
from rrtool.machine.port import EventPort, NothingCanWake
from rrtool.schemas import events as ev
from rrtool.schemas.event import Event


class Machine:
    """One guest on one Unicorn instance. Not thread-safe: host threads talk to it via the port."""

    def __init__(
        self,
        image: GuestImage,
        config: MachineConfig,
        port: EventPort,
        *,
        limits: Limits | None = None,
        console_sink: Callable[[bytes], None] | None = None,
    ) -> None:
        if config.ns_per_insn < 1:
            raise MachineError("ns_per_insn must be at least 1")
        if config.checkpoint_every < 1000:
            raise MachineError("checkpoint_every must be at least 1000 instructions")
        if config.ram_size < 2 << 20 or config.ram_size % 0x1000:
            raise MachineError("RAM must be at least 2 MiB and a multiple of 4 KiB")
        self.config = config
        self.limits = limits or Limits()
        self.port = port
        self.image = image
        self.emu = uc.Uc(uc.UC_ARCH_X86, uc.UC_MODE_64)
        self.ram = GuestRam(self.emu, RAM_BASE, config.ram_size - RAM_BASE)
        for seg in image.segments:
            self.emu.mem_write(seg.vaddr, seg.data)  # the rest of memsz is already zero
        setup_cpu(self.emu, image.entry, config.ram_size)
        self.counter = Counter(self.emu)
        self._regs = RegisterDigester(self.emu)
        self._read_pc = PcReader(self.emu)

        self.clock = Clock(self, config.ns_per_insn)
        self.intc = Intc(self)
        self.console = Console(self, console_sink)
        self.system = System(self)
        self.block = BlockDevice(self, config.disk_sectors, config.ram_size)
        if len(config.nics) > regs.NUM_NETS:
            raise MachineError(f"at most {regs.NUM_NETS} network cards")
        self.nics = [Nic(self, i, nic, config.ram_size) for i, nic in enumerate(config.nics)]
        self.devices: list[Device] = [
            self.clock, self.intc, self.console, self.system, Rtc(self), Rng(self), self.block, *self.nics,
        ]  # fmt: skip
        empty_slots: list[Device] = [AbsentNic(i) for i in range(len(self.nics), regs.NUM_NETS)]
        self._port_map: dict[int, Device] = {p: d for d in self.devices + empty_slots for p in d.ports}
        self._hooks = [
            self.emu.hook_add(uc.UC_HOOK_INSN, self._on_in, None, 1, 0, x86.UC_X86_INS_IN),
            self.emu.hook_add(uc.UC_HOOK_INSN, self._on_out, None, 1, 0, x86.UC_X86_INS_OUT),
            self.emu.hook_add(uc.UC_HOOK_INTR, self._on_intr),
            self.emu.hook_add(uc.UC_HOOK_MEM_UNMAPPED | uc.UC_HOOK_MEM_PROT, self._on_bad_mem),
        ]
        # rdtsc would leak host time; the Python wrapper refuses RDTSC hooks, so register it raw.
        self._rdtsc_cb = RDTSC_CALLBACK(self._on_rdtsc)
        self._rdtsc_hook = add_insn_hook(self.emu, self._rdtsc_cb, x86.UC_X86_INS_RDTSC)

        self.checkpoint_id = -1
        self._last_cp_icount = 0
        self._next_mem_digest = config.mem_digest_every
        self._device_stop = False
        self._internal_stop: int | None = None
        self._internal_stop_slice: int | None = None
        self._last_stop_reason = STOP_NONE
        self._fault: tuple[str, int] | None = None
        self._hook_error: Exception | None = None
        self._reset_requested = False
        self._running = False
        self._result: RunResult | None = None
        self._timed_out = threading.Event()

    # ------------------------------------------------------------------ Bus
    def now(self) -> int:
        if not self._running:
            return self.counter.icount  # stopped at a checkpoint: the counter is exact
        return self.counter.icount_at(self._read_pc())

    def vclock_at(self, icount: int) -> int:
        return self.clock.vclock_at(icount)

    def raise_irq(self, line: int) -> None:
        self.intc.raise_line(line)

    def request_stop(self) -> None:
        if not self.port.log_driven:  # in replay the log says where to stop
            self._device_stop = True
            self.counter.state.soft_deadline = 0

    def timers_changed(self) -> None:
        due = self.clock.next_deadline_icount()
        if due is None:
            return
        if due > self.counter.icount:
            self.counter.state.hard_deadline = min(int(self.counter.state.hard_deadline), due)
        else:
            self.request_stop()

    def guest_exit(self, code: int) -> None:
        self.request_stop()

    def guest_reset(self) -> None:
        self._reset_requested = True
        self.request_stop()

    def mem_read(self, addr: int, size: int) -> bytes:
        return bytes(self.emu.mem_read(addr, size))

    def mem_write(self, addr: int, data: bytes) -> None:
        self.emu.mem_write(addr, data)

    def ram_ok(self, addr: int, length: int) -> bool:
        return addr >= RAM_BASE and addr + length <= self.config.ram_size

    # ---------------------------------------------------------------- hooks
    def _on_in(self, emu: uc.Uc, port: int, size: int, _user: object) -> int:
        dev = self._port_map.get(port)
        if dev is None:
            return self._bad_port(port)
        try:
            return dev.read(port, size) & ((1 << (8 * size)) - 1)
        except Exception as exc:  # e.g. a replay divergence: surface it after emu_start returns
            self._keep_hook_error(exc)
            return 0

    def _on_out(self, emu: uc.Uc, port: int, size: int, value: int, _user: object) -> None:
        dev = self._port_map.get(port)
        if dev is None:
            self._bad_port(port)
            return
        try:
            dev.write(port, size, value)
        except Exception as exc:
            self._keep_hook_error(exc)

    def _keep_hook_error(self, exc: Exception) -> None:
        """The first error wins: the block goes on running after emu_stop and may raise again."""
        if self._hook_error is None:
            self._hook_error = exc
        self.emu.emu_stop()

    def _bad_port(self, port: int) -> int:
        pc = self.emu.reg_read(x86.UC_X86_REG_RIP)
        self._fault = (f"access to unassigned I/O port {port:#x}", pc)
        self.emu.emu_stop()  # terminal: the re-executed instruction problem does not matter
        return 0xFFFFFFFF

    def _on_rdtsc(self, _uch: int, _user: int) -> int:
        """rdtsc returns virtual ns: a 1 GHz TSC that replays exactly."""
        value = self.clock.vclock_at(self.now())
        self.emu.reg_write(x86.UC_X86_REG_RAX, value & 0xFFFFFFFF)
        self.emu.reg_write(x86.UC_X86_REG_RDX, value >> 32)
        return 1  # skip the real instruction

    def _on_intr(self, emu: uc.Uc, intno: int, _user: object) -> None:
        pc = emu.reg_read(x86.UC_X86_REG_RIP)
        self._fault = (EXCEPTION_NAMES.get(intno, f"CPU exception {intno}"), pc)
        emu.emu_stop()

    def _on_bad_mem(self, emu: uc.Uc, access: int, address: int, size: int, value: int, _user: object) -> bool:
        pc = emu.reg_read(x86.UC_X86_REG_RIP)
        if access in (uc.UC_MEM_FETCH_UNMAPPED, uc.UC_MEM_FETCH_PROT):
            self._fault = (f"jump outside RAM to {address:#x}", pc)
        else:
            kind = "write" if access in (uc.UC_MEM_WRITE_UNMAPPED, uc.UC_MEM_WRITE_PROT) else "read"
            self._fault = (f"invalid memory {kind} at {address:#x}", pc)
        return False

    # -------------------------------------------------------------- run loop
    @property
    def icount(self) -> int:
        return self.counter.icount

    @property
    def pc(self) -> int:
        return self._read_pc()

    def run(self) -> RunResult:
        """Run to the end: guest exit, fault, hang, a limit or a stop request."""
        watchdog = None
        if self.limits.timeout_s is not None:
            watchdog = threading.Timer(self.limits.timeout_s, self._on_timeout)
            watchdog.daemon = True
            watchdog.start()
        try:
            self._checkpoint(ev.CP_INIT)
            while self._result is None:
                halted = self._run_slice()
                if self._result is None:
                    self._after_stop(halted)
            return self._result
        finally:
            if watchdog is not None:
                watchdog.cancel()

    def _on_timeout(self) -> None:
        self._timed_out.set()
        self.port.request_stop()

    def _run_slice(self) -> bool:
        """Run until the next stop; True when the guest executed hlt."""
        icount = self.counter.icount
        hard = NO_DEADLINE
        due = self.clock.next_deadline_icount()
        if due is not None and due > icount:
            hard = due
        io_due = self.port.next_due_ns()
        if io_due is not None:
            hard = min(hard, max(icount + 1, self.clock.icount_for(io_due)))
        if self.limits.max_insns is not None:
            hard = min(hard, self.limits.max_insns)
        if self._internal_stop is not None:
            hard = min(hard, self._internal_stop)
            self._internal_stop_slice = self._internal_stop
            self._internal_stop = None
        logged = self.port.next_stop()
        if logged is not None:
            hard = min(hard, logged)
            soft = NO_DEADLINE
        else:
            soft = self._last_cp_icount + self.config.checkpoint_every
        if hard <= icount:
            return False
        # A pending interrupt held back by IF=0 is taken as soon as the guest enables interrupts (not at the
        # next periodic checkpoint). In replay the log already holds that stop; while single-stepping an sti
        # shadow the shadow's instruction must run first.
        waiting = not self.port.log_driven and self._internal_stop_slice is None and bool(self.intc.deliverable())
        self.counter.state.irq_waiting = int(waiting and not self.emu.reg_read(x86.UC_X86_REG_RFLAGS) & IF_FLAG)
        self._internal_stop_slice = None
        self._running = True
        try:
            stop = self.counter.run(self.pc, soft, hard)
        except uc.UcError as exc:
            if self._fault is None:
                self._fault = (FAULT_NAMES.get(exc.errno, str(exc)), self.pc)
            stop = None
        finally:
            self._running = False
        if self._hook_error is not None:
            raise self._hook_error
        if self._fault is not None:
            name, pc = self._fault
            exact = self.counter.instructions_before(pc)
            self._end("fault", f"{name} (pc={pc:#x}, icount={exact})", at=exact)
            return False
        self._last_stop_reason = STOP_NONE if stop is None else stop.reason
        return stop is not None and stop.reason == STOP_NONE

    def _after_stop(self, halted: bool) -> None:
        icount = self.counter.icount
        if self.system.exit_code is not None:
            self._end("exit", f"guest exited with code {self.system.exit_code}", exit_code=self.system.exit_code)
            return
        if self._timed_out.is_set():
            self._end("timeout", f"wall-clock timeout of {self.limits.timeout_s}s reached")
            return
        if self.port.stop_requested:
            self._end("interrupted", "recording stopped by a signal")
            return
        if self.limits.max_insns is not None and icount >= self.limits.max_insns:
            self._end("limit", f"instruction limit of {self.limits.max_insns} reached")
            return
        if self._reset_requested:
            self._reset()
            return
        logged = self.port.next_stop()
        if logged == icount and self.port.expected_checkpoint_kind() == ev.CP_END:
            self._end_as_logged()
            return
        if halted:
            self._idle()
        else:
            kind = self._stop_kind(icount, logged)
            self._device_stop = False
            if kind is not None:
                self._checkpoint(kind)
        if self._result is None:
            self._deliver_interrupt(halted)

    def _stop_kind(self, icount: int, logged: int | None) -> str | None:
        if self.clock.any_due(icount):
            return ev.CP_TIMER
        if logged is not None:
            if logged != icount:
                return None  # an internal stop (sti shadow)
            expected = self.port.expected_checkpoint_kind()
            return expected if expected in (ev.CP_PERIODIC, ev.CP_INTERRUPT, ev.CP_IO) else ev.CP_PERIODIC
        if self._device_stop or self._last_stop_reason == STOP_IRQ:
            return ev.CP_INTERRUPT
        io_due = self.port.next_due_ns()
        if io_due is not None and io_due <= self.clock.vclock_at(icount):
            return ev.CP_IO
        if icount >= self._last_cp_icount + self.config.checkpoint_every:
            return ev.CP_PERIODIC
        return None

    def _idle(self) -> None:
        """hlt: warp the clock to the next deadline or host event (QEMU's warp start/account)."""
        rflags = self.emu.reg_read(x86.UC_X86_REG_RFLAGS)
        if not rflags & IF_FLAG:
            self._end("hang", "guest halted with interrupts disabled: nothing can wake it")
            return
        if self.intc.deliverable():
            return  # an interrupt is already pending: hlt wakes at once
        self._checkpoint(ev.CP_WARP_START)
        if self.intc.deliverable():
            return  # what arrived at warp start already wakes the guest
        icount = self.counter.icount
        deadlines = [d for d in (self.clock.next_deadline_ns(), self.port.next_due_ns()) if d is not None]
        deadline = min(deadlines) if deadlines else None
        max_ns = None if deadline is None else max(0, deadline - self.clock.vclock_at(icount))
        warp = Event(ev.KIND_CLOCK_WARP, "clock", icount, self.clock.vclock_at(icount), checkpoint=self.checkpoint_id)
        try:
            self.clock.warp_ns += self.port.wait(warp, max_ns)
        except NothingCanWake:
            self._end("hang", "guest sleeps with no timer armed and no device that could wake it")
            return
        self._checkpoint(ev.CP_WARP_ACCOUNT)

    def _deliver_interrupt(self, halted: bool) -> None:
        mask = self.intc.deliverable()
        if not mask:
            return
        emu = self.emu
        rflags = emu.reg_read(x86.UC_X86_REG_RFLAGS)
        if not rflags & IF_FLAG:
            return
        if not halted and self._in_sti_shadow():
            self._internal_stop = self.counter.icount + 1
            return
        rip = push_interrupt_frame(emu, self.intc.vector)
        icount = self.counter.icount
        self.port.emit(
            Event(
                ev.KIND_IRQ,
                "intc",
                icount,
                self.clock.vclock_at(icount),
                checkpoint=self.checkpoint_id,
                pc=rip,
                value=mask,
            )
        )

    def _in_sti_shadow(self) -> bool:
        last = self.counter.last_instruction()
        return last is not None and self.emu.mem_read(last, 1)[0] == STI_OPCODE

    # ----------------------------------------------------------- checkpoints
    def device_digest(self) -> int:
        h = xxhash.xxh3_64()
        for dev in self.devices:
            h.update(dev.name.encode())
            h.update(dev.state())
        return int(h.intdigest())

    def memory_digest(self) -> int:
        return self.ram.digest()

    def _checkpoint(
        self, kind: str, *, at: int | None = None, text: str | None = None, value: int | None = None
    ) -> None:
        icount = self.counter.icount if at is None else at
        self.console.flush(icount)
        self.checkpoint_id += 1
        cp = Event(ev.KIND_CHECKPOINT, "machine", icount, self.clock.vclock_at(icount), checkpoint=self.checkpoint_id,
                   cp_kind=kind, pc=self.pc, text=text, value=value)  # fmt: skip
        if self.port.wants_digests:
            cp.reg_digest = self._regs.digest()
            cp.dev_digest = self.device_digest()
            if kind == ev.CP_END or icount >= self._next_mem_digest:
                cp.mem_digest = self.memory_digest()
                self._next_mem_digest = icount + self.config.mem_digest_every
        self._last_cp_icount = icount
        for event in self.port.checkpoint(cp):
            self._apply(event)
        self.clock.expire(icount)

    def _apply(self, event: Event) -> None:
        if event.kind == ev.KIND_CONSOLE_IN and event.data:
            self.console.feed(event.data)
        elif event.kind == ev.KIND_BLK_COMPLETE:
            self.block.complete(event)
        elif event.kind == ev.KIND_NET_RX and event.card is not None and event.card < len(self.nics):
            self.nics[event.card].receive(event.data or b"")

    def _reset(self) -> None:
        """The guest asked to restart: reload the image, reset CPU and devices; the disk and time go on."""
        self._reset_requested = False
        self._checkpoint(ev.CP_RESET)
        emu = self.emu
        self.ram.zero()
        for seg in self.image.segments:
            emu.mem_write(seg.vaddr, seg.data)
        for reg in DIGEST_REGS:
            emu.reg_write(reg, 0)
        emu.reg_write(x86.UC_X86_REG_RFLAGS, 0x2)
        setup_cpu(emu, self.image.entry, self.config.ram_size)
        self.counter.flush()
        self.clock.reset()
        self.intc.reset()
        self.system.reset()
        self.block.reset()
        for nic in self.nics:
            nic.reset()

    def _end(self, reason: str, message: str, *, exit_code: int | None = None, at: int | None = None) -> None:
        icount = self.counter.icount if at is None else at
        self._checkpoint(
            ev.CP_END, at=at, text=f"{reason}: {message}", value=None if exit_code is None else exit_code & 0xFFFFFFFF
        )
        self._result = RunResult(
            reason=reason,
            icount=icount,
            vclock_ns=self.clock.vclock_at(icount),
            checkpoints=self.checkpoint_id + 1,
            exit_code=exit_code,
            message=message,
            output=bytes(self.console.output),
        )

    def _end_as_logged(self) -> None:
        """Replay of a run that ended for a host reason (signal, limit, timeout)."""
        text = self.port.expected_end_text() or "interrupted: "
        reason, _, message = text.partition(": ")
        self._end(reason, message)

    # ------------------------------------------------------------- inspection
    def disassemble(self, pc: int, count: int = 1) -> list[str]:
        return disassemble(self.emu, pc, count)


__all__ = ["Limits", "Machine", "MachineConfig", "MachineError", "RunResult", "exit_status"]
