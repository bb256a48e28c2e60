"""The deterministic machine core: Unicorn CPU, native icount, checkpoints, idle warps, interrupts.

The run loop only ever stops the CPU through the native counter (deadlines or
hlt), so every place where the outside world can touch the machine is an
exact icount. Where the next stop is comes from the port's stop plan
(`EventPort.plan`): live and record leave the choice to the machine (timers,
the checkpoint cadence, device requests), replay fixes it to the next logged
checkpoint, so a replay stops exactly where the recording did. The devices
the guest talks to belong to a platform (`rrtool.machine.platform`); their
state and their async events go through the unit registry (`Units`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import unicorn as uc
from unicorn import x86_const as x86

from rrtool.machine.clock import Clock
from rrtool.machine.config import (
    HOST_EVENT_GAP,
    Fault,
    Limits,
    MachineConfig,
    MachineError,
    RunResult,
    exit_status,
)
from rrtool.machine.cpu import (
    CPU_MODEL,
    EXCEPTION_NAMES,
    FAULT_NAMES,
    GUARD_SIZE,
    IF_FLAG,
    INTERRUPT_FRAME_SIZE,
    MSR_TSC_AUX,
    RAM_BASE,
    RDTSC_CALLBACK,
    STI_OPCODE,
    PcReader,
    cpuid,
    disassemble,
    interrupt_frame_address,
    map_guard_page,
    push_interrupt_frame,
    setup_cpu,
)
from rrtool.machine.digest import DIGEST_REGS, GuestRam, RegisterDigester
from rrtool.machine.icount import NO_DEADLINE, STOP_IRQ, STOP_NONE, STOP_SOFT, Counter, StopInfo, add_insn_hook
from rrtool.machine.image import GuestImage
from rrtool.machine.pages import PAGE_NONE, REFUSED_FETCH, REFUSED_WRITE, SPACES_START, Pages, access_target
from rrtool.machine.platform import Platform
from rrtool.machine.port import FREE, EventPort, NothingCanWake, StopPlan
from rrtool.machine.units import ShapeUnit, Units
from rrtool.schemas import names as ev
from rrtool.schemas.event import Event

#: Kinds the core writes itself: checkpoints, and the interrupts it delivers (device "intc").
CORE_KINDS = frozenset({ev.KIND_CHECKPOINT, ev.KIND_IRQ})
#: Checkpoint kinds a plain (not halted) stop can take; any other logged kind there is taken as periodic,
#: and the comparison with the log then reports the difference.
_BUSY_KINDS = (ev.CP_PERIODIC, ev.CP_INTERRUPT, ev.CP_IO)


class Machine:
    """One guest on one Unicorn instance. Not thread-safe: host threads talk to it via the port."""

    def __init__(
        self,
        image: GuestImage,
        config: MachineConfig,
        port: EventPort,
        platform: Platform,
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
        self.emu.ctl_set_cpu_model(CPU_MODEL)  # before anything maps memory: it fixes which instructions exist
        self.ram = GuestRam(self.emu, RAM_BASE, config.ram_size - RAM_BASE)
        map_guard_page(self.emu, config.ram_size)
        for seg in image.segments:
            self.emu.mem_write(seg.vaddr, seg.data)  # the rest of memsz is already zero
        setup_cpu(self.emu, image.entry, config.ram_size)
        self.counter = Counter(self.emu)
        self.pages = Pages(self.emu, image, RAM_BASE, config.ram_size, self.counter)
        self._regs = RegisterDigester(self.emu)
        self._read_pc = PcReader(self.emu)
        self.clock = Clock(config.ns_per_insn, platform.timers)
        self.platform = platform
        self.units = Units([ShapeUnit(config), self.clock, *platform.units])
        port.connect(self.units.async_kinds)
        #: How soon after a checkpoint a posted host event gets one of its own (see HOST_EVENT_GAP).
        self._event_gap = min(config.checkpoint_every, HOST_EVENT_GAP)
        port.set_waker(self._host_event)
        self._sink = console_sink
        self.output = bytearray()  # everything the guest printed, for callers and tests
        self._longest_output = b""  # time travel: the most output seen (every position's is a prefix of it)
        # The invalid-memory hooks cover only what is not RAM: a hook whose range includes a RAM page puts
        # every store to that page back on Unicorn's slow path (see rrtool.machine.pages).
        bad_mem = uc.UC_HOOK_MEM_UNMAPPED | uc.UC_HOOK_MEM_PROT
        self._hooks = [
            self.emu.hook_add(uc.UC_HOOK_INTR, self._on_intr),
            self.emu.hook_add(bad_mem, self._on_bad_mem, None, 0, RAM_BASE - 1),
            # Up to the other address spaces' RAM only (see SPACES_START): above, the page policy refuses.
            self.emu.hook_add(bad_mem, self._on_bad_mem, None, config.ram_size, SPACES_START - 1),
        ]
        # Instructions whose result would come from the host: rdtsc and rdtscp read virtual time, CPUID
        # answers from a fixed table (cpu.CPUID_TABLE); rdrand and rdseed do not exist on CPU_MODEL (#UD).
        # The Python wrapper refuses RDTSC and RDTSCP hooks, so those are registered raw.
        self._rdtsc_cb = RDTSC_CALLBACK(self._on_rdtsc)
        self._rdtsc_hook = add_insn_hook(self.emu, self._rdtsc_cb, x86.UC_X86_INS_RDTSC)
        self._rdtscp_cb = RDTSC_CALLBACK(self._on_rdtscp)
        self._rdtscp_hook = add_insn_hook(self.emu, self._rdtscp_cb, x86.UC_X86_INS_RDTSCP)
        self._hooks.append(self.emu.hook_add(uc.UC_HOOK_INSN, self._on_cpuid, None, 1, 0, x86.UC_X86_INS_CPUID))

        self._plan: StopPlan = FREE
        self._exit_code: int | None = None
        self.checkpoint_id = -1
        self._last_cp_icount = 0
        self._next_mem_digest = config.mem_digest_every
        self._device_stop = False
        self._internal_stop: int | None = None
        self._internal_stop_slice: int | None = None
        #: Set by time travel (`rrtool.player.timeline`) on a replay: stops the log does not hold are pauses.
        self.time_travel = False
        #: Told of every host write to guest RAM (a system call's result, a device's DMA): watchpoints see them.
        self.host_write_observer: Callable[[int, int], None] | None = None
        self._pause_requested = False
        self._slice_natural = NO_DEADLINE  # the slice's own hard deadline, without a pause
        self._slice_paused = False  # the last slice ended at a pause only
        self._last_stop_reason = STOP_NONE
        self._fault: tuple[str, int] | None = None
        self._fault_addr: int | None = None  # the address a memory fault touched
        self._fault_vector: int | None = None  # the CPU exception, when one was raised
        self._signal: int | None = None  # the signal a platform named for the fault that ended the run
        #: How the guest ended the run from inside a hook (exit or a hook fault): (reason, message).
        self._ending: tuple[str, str] | None = None
        self._hook_error: Exception | None = None
        self._reset_requested = False
        self._running = False
        self._result: RunResult | None = None
        self._timed_out = threading.Event()
        platform.attach(self)

    # ---------------------------------------------- services for the platform
    @property
    def running(self) -> bool:
        """Inside `emu_start` (a hook is running on an instruction), not stopped between two slices."""
        return self._running

    def now(self) -> int:
        """Exact icount including the instruction being executed (from a hook), or at the stop."""
        if not self._running:
            return self.counter.icount  # stopped at a checkpoint: the counter is exact
        return self.counter.icount_at(self._read_pc())

    def vclock_at(self, icount: int) -> int:
        return self.clock.vclock_at(icount)

    def request_stop(self) -> None:
        """A device wants a stop at the next block boundary; only when the plan leaves stops to the machine."""
        if self._plan.kind is None:
            self._device_stop = True
            self.counter.stop_soon()

    def timers_changed(self) -> None:
        due = self.clock.next_deadline_icount()
        if due is None:
            return
        if due > self.counter.icount:
            self.counter.limit_hard(due)
            self._slice_natural = min(self._slice_natural, due)
        else:
            self.request_stop()

    def advance_clock(self, ns: int) -> None:
        """Move virtual time on by `ns` at this instruction, without idling: the host already waited that long.

        For a platform whose call waited inside the host (a Linux poll that timed out): an idle warp
        would wait again. Replay takes the same step from the same logged result, and the clock's total
        warp is in its digest, so the step is checked like any warp.
        """
        if ns > 0:
            self.clock.warp_ns += ns
            self.timers_changed()

    def stop_here(self) -> None:
        """From a hook: stop right after this instruction, in every mode (replay too, unlike `request_stop`).

        For a platform that must act between slices at a point the guest decides (a Linux task that blocks
        or exits hands the CPU to another task): the counter's hard deadline is this very icount, so the
        next block is refused and the stop is exact without a checkpoint of its own.
        """
        now = self.now()
        self.counter.limit_hard(now)
        self._slice_natural = min(self._slice_natural, now)

    def _physical(self, addr: int) -> int:
        """Where Unicorn's own mem_read/mem_write find guest RAM address `addr` (they take physical addresses)."""
        ram = self.ram
        return addr + ram.offset if ram.base <= addr < ram.base + ram.size else addr

    def add_ram(self, ram: GuestRam) -> None:
        """Map another address space's RAM (a Linux process) at its own guest-physical offset, once."""
        assert ram.offset >= SPACES_START, "where no virtual address reaches (the page policy refuses there)"
        ram.map_into(self.emu)

    def switch_ram(self, ram: GuestRam, kinds: bytes) -> None:
        """Put another address space under the CPU between two slices (a Linux process switch).

        Every address space's RAM stays mapped, each at its own guest-physical offset, and the TLB
        policy maps virtual pages to the running one's (`Pages.set_offset`). So a switch is a TLB flush:
        Unicorn keys translated code by physical address, and each process keeps its own. Only the
        counter's block sizes, cached by virtual address, go.
        """
        assert not self._running, "only between slices"
        self.ram = ram
        self.pages.set_offset(ram.offset)
        self.counter.phys_offset = ram.offset
        self.pages.load_kinds(kinds)  # flushes the TLB
        # A snapshot's dirty marks describe the RAM that was under the CPU: every page of this one is changed.
        self.pages.mark_dirty(ram.base, ram.base + ram.size)
        self.counter.forget_blocks()

    def end_hang(self, message: str) -> None:
        """Between slices: nothing the guest waits for can ever happen (every Linux task blocked)."""
        self._end("hang", message)

    def guest_exit(self, code: int) -> None:
        """The guest wrote its exit code: the run ends at the next block boundary (see `guest_fault`)."""
        if self._ending is not None:
            return
        self._exit_code = code
        self._ending = ("exit", f"guest exited with code {code}")
        self.request_stop()

    def guest_reset(self) -> None:
        self._reset_requested = True
        self.request_stop()

    def guest_output(self, data: bytes) -> None:
        self.output += data
        if self._sink is not None:
            self._sink(data)

    def mem_read(self, addr: int, size: int) -> bytes:
        return bytes(self.emu.mem_read(self._physical(addr), size))

    def mem_write(self, addr: int, data: bytes) -> None:
        """Every host write to guest RAM goes here (or marks its pages itself): snapshots diff by dirty pages."""
        self.emu.mem_write(self._physical(addr), data)
        self.pages.mark_dirty(addr, addr + len(data))
        if self.host_write_observer is not None:
            self.host_write_observer(addr, len(data))

    def discard_ram(self, start: int, end: int) -> None:
        """[start, end) reads as zero again (a Linux munmap); the caller drops translations of code there."""
        self.ram.discard(start, end)
        self.pages.mark_dirty(start, end)
        if self.host_write_observer is not None:
            self.host_write_observer(start, end - start)

    def ram_ok(self, addr: int, length: int) -> bool:
        return addr >= RAM_BASE and addr + length <= self.config.ram_size

    def hook_failed(self, exc: Exception) -> None:
        """A platform hook raised (e.g. a replay divergence): surface it after emu_start returns.

        The first error wins: the block goes on running after emu_stop and may raise again.
        """
        if self._hook_error is None:
            self._hook_error = exc
        self.emu.emu_stop()

    def guest_fault(self, message: str, *, signal: int | None = None) -> None:
        """The guest did what its platform forbids (an unassigned port), seen from inside a hook.

        The fault is the instruction at RIP (exact in port I/O hooks), and the message names it with
        its exact icount. Unicorn cannot stop the CPU there: `emu_stop` from a hook only takes effect
        at the next translation-block boundary (or, under a code hook, the next instruction), so what
        runs in between depends on how the run was sliced, which differs between record (which did
        not know the fault was coming) and replay (which stopped exactly at the recorded icount and
        never ran the faulting instruction): the end checkpoints then disagreed on pc and registers.
        So a hook fault ends the run the way a guest exit does: the machine asks for a stop at the
        next block boundary, the bus goes inert for the rest of the block (no device sees another
        access), and the end checkpoint is taken where the CPU really stopped. Replay stops at that
        same logged icount without splitting the block, runs into the same fault and ends the same way.
        """
        if self._ending is not None:
            return  # the run already ended (exit or an earlier fault) on this instruction or before it
        pc = self._read_pc()
        self._ending = ("fault", f"{message} (pc={pc:#x}, icount={self.counter.icount_at(pc) - 1})")
        self._signal = signal
        self.request_stop()

    @property
    def bus_inert(self) -> bool:
        """True once the guest exited or faulted: instructions Unicorn runs before it can stop touch no device."""
        return self._ending is not None

    # ---------------------------------------------------------------- hooks
    def _on_rdtsc(self, _uch: int, _user: int) -> int:
        """rdtsc returns virtual ns: a 1 GHz TSC that replays exactly."""
        value = self.clock.vclock_at(self.now())
        self.emu.reg_write(x86.UC_X86_REG_RAX, value & 0xFFFFFFFF)
        self.emu.reg_write(x86.UC_X86_REG_RDX, value >> 32)
        return 1  # skip the real instruction

    def _on_rdtscp(self, _uch: int, _user: int) -> int:
        """rdtscp: the same virtual TSC as rdtsc, and ECX = IA32_TSC_AUX (guest state, 0 unless it wrote it)."""
        self._on_rdtsc(_uch, _user)
        self.emu.reg_write(x86.UC_X86_REG_RCX, self.emu.msr_read(MSR_TSC_AUX) & 0xFFFFFFFF)
        return 1

    def _on_cpuid(self, emu: uc.Uc, _user: object) -> int:
        """CPUID from the fixed table, so a guest's feature choices never depend on the Unicorn build."""
        eax, ebx, ecx, edx = cpuid(emu.reg_read(x86.UC_X86_REG_EAX), emu.reg_read(x86.UC_X86_REG_ECX))
        emu.reg_write(x86.UC_X86_REG_RAX, eax)
        emu.reg_write(x86.UC_X86_REG_RBX, ebx)
        emu.reg_write(x86.UC_X86_REG_RCX, ecx)
        emu.reg_write(x86.UC_X86_REG_RDX, edx)
        return 1  # skip Unicorn's own answer

    def _on_intr(self, emu: uc.Uc, intno: int, _user: object) -> None:
        pc = emu.reg_read(x86.UC_X86_REG_RIP)
        self._fault = (EXCEPTION_NAMES.get(intno, f"CPU exception {intno}"), pc)
        self._fault_vector = intno
        emu.emu_stop()

    def _on_bad_mem(self, emu: uc.Uc, access: int, address: int, size: int, value: int, _user: object) -> bool:
        pc = emu.reg_read(x86.UC_X86_REG_RIP)
        if access in (uc.UC_MEM_FETCH_UNMAPPED, uc.UC_MEM_FETCH_PROT):
            self._fault = (f"jump outside RAM to {address:#x}", pc)
        else:
            kind = "write" if access in (uc.UC_MEM_WRITE_UNMAPPED, uc.UC_MEM_WRITE_PROT) else "read"
            self._fault = (f"invalid memory {kind} at {address:#x}", pc)
        self._fault_addr = address
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
            self.start()
            result = self.advance()
            assert result is not None
            return result
        finally:
            if watchdog is not None:
                watchdog.cancel()

    def start(self) -> None:
        """Take the init checkpoint; `advance` runs on from there (`run` does both)."""
        self._checkpoint(ev.CP_INIT)

    @property
    def result(self) -> RunResult | None:
        """How the run ended, once it has."""
        return self._result

    def advance(self, pause_at: int | None = None) -> RunResult | None:
        """Run until the run ends (its result), or pause: at exactly `pause_at` instructions, or on `pause_soon`.

        A pause is time travel's stop (`rrtool.player.timeline`): it lands *after* everything the
        machine does at its icount (checkpoints, their inputs, an interrupt delivered), so the next
        instruction to run is the (icount+1)-th, and resuming is indistinguishable from never having
        paused. Only a replay in time-travel mode may pause: its stops are fixed by the log, so a
        stop between two of them is a pure pause that touches nothing (no checkpoint, no interrupt
        delivery, no end that a hook already decided: a replay ends where its log says). Live and
        record would take their checkpoints where the pauses fell.
        """
        self._pause_requested = False
        while self._result is None:
            if self._pause_due(pause_at) and self._settled():
                return None
            halted = self._run_slice(pause_at)
            if self._result is None and not self._slice_paused:
                self._after_stop(halted)
        return self._result

    def pause_soon(self) -> None:
        """From a hook: pause `advance` at the next block boundary (exact: the counter stops there)."""
        assert self.time_travel, "only a time-travel replay pauses"
        self._pause_requested = True
        self.counter.stop_soon()

    def _pause_due(self, pause_at: int | None) -> bool:
        return self._pause_requested or (pause_at is not None and self.counter.icount >= pause_at)

    def _settled(self) -> bool:
        """Nothing more is due at this icount: no planned checkpoint and no internal stop still to take."""
        icount = self.counter.icount
        return self.port.plan().at != icount and self._internal_stop != icount

    def _is_pause(self, stop: StopInfo | None, pause_at: int | None) -> bool:
        """Whether what cut the slice was only a pause: not hlt, not a deadline the run has anyway.

        Decided from what stopped the CPU, never from the state it stopped in: a hlt or a deadline
        stop (a timer, the log's next checkpoint, even a timer disarmed since) is the run's own and
        takes its `_after_stop` exactly as in the recording, pause or not.
        """
        if not self.time_travel or stop is None or stop.reason == STOP_NONE:
            return False
        if self._pause_requested and stop.reason == STOP_SOFT:
            return True
        icount = self.counter.icount
        return pause_at is not None and icount == pause_at < self._slice_natural

    def _on_timeout(self) -> None:
        self._timed_out.set()
        self.port.request_stop()

    def _run_slice(self, pause_at: int | None = None) -> bool:
        """Run until the next stop (or `pause_at`); True when the guest executed hlt."""
        plan = self._plan = self.port.plan()
        icount = self.counter.icount
        hard = NO_DEADLINE
        due = self.clock.next_deadline_icount()
        if due is not None and due > icount:
            hard = due
        if plan.io_due_ns is not None:
            hard = min(hard, max(icount + 1, self.clock.icount_for(plan.io_due_ns)))
        if self.limits.max_insns is not None:
            hard = min(hard, self.limits.max_insns)
        if self._internal_stop is not None:
            hard = min(hard, self._internal_stop)
            self._internal_stop_slice = self._internal_stop
            self._internal_stop = None
        if plan.at is not None:
            hard = min(hard, plan.at)
        platform_due = self.platform.deadline()
        if platform_due is not None and platform_due > icount:
            hard = min(hard, platform_due)
        self._slice_natural = hard  # the run's own deadline; timers_changed may lower it during the slice
        self._slice_paused = False
        if pause_at is not None and pause_at > icount:
            hard = min(hard, pause_at)
        soft = NO_DEADLINE
        if plan.kind is None:
            soft = self._last_cp_icount + self.config.checkpoint_every
            if self.port.has_pending():
                soft = min(soft, self._last_cp_icount + self._event_gap)
        if hard <= icount:
            return False
        # A pending interrupt held back by IF=0 is taken as soon as the guest enables interrupts (not at the
        # next periodic checkpoint), unless the plan fixes the stops (the log then holds that stop); while
        # single-stepping an sti shadow the shadow's instruction must run first.
        waiting = plan.kind is None and self._internal_stop_slice is None and self.platform.pending_interrupt()
        self.counter.set_irq_waiting(bool(waiting) and not self.emu.reg_read(x86.UC_X86_REG_RFLAGS) & IF_FLAG)
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
        refused = self.pages.take_refused()
        if refused is not None:
            # The page policy refused an access (a fetch from a data page, NX; any access to an unmapped
            # page; a store outside RAM). Unicorn reports that as an exception with RIP at the instruction
            # (for a fetch, the target): the name comes from what the fill callback saw, the exact address
            # of a load or store from the instruction (the fill sees only the page).
            what, addr = refused
            if what == REFUSED_FETCH:
                unmapped = self.pages.kind(addr) == PAGE_NONE
                self._fault = (f"jump to {'unmapped memory' if unmapped else 'non-executable data'} at {self.pc:#x}",
                               self.pc)  # fmt: skip
            else:
                addr = access_target(self.emu, self.pc, addr, self.counter.phys_offset)
                self._fault = (f"invalid memory {'write' if what == REFUSED_WRITE else 'read'} at {addr:#x}", self.pc)
            self._fault_addr = addr
        if self._fault is not None and self._ending is None:
            # A CPU fault is precise (Unicorn aborts the instruction): the end is exactly before it.
            # After an exit or a hook fault it is only the rest of that block running on: the first end wins.
            name, pc = self._fault
            if self.config.ram_size <= pc < self.config.ram_size + GUARD_SIZE:
                name = f"jump outside RAM to {pc:#x}"  # the ud2 of the guard page (cpu.map_guard_page)
            exact = self.counter.instructions_before(pc)
            fault = Fault(name, pc, exact, self._fault_addr, self._fault_vector)
            self._fault = None
            self._fault_addr = None
            self._fault_vector = None
            # The faulting instruction did not retire: the count is exactly the instructions before it, also
            # for what the platform logs while it takes the fault (a Linux child that dies of it).
            self.counter.set_icount(exact)
            if self.platform.on_fault(fault):
                return False  # handed to the guest (a Linux signal handler), or only one task ended
            self._signal = fault.signal
            self._end("fault", fault.message or f"{name} (pc={pc:#x}, icount={exact})", at=exact)
            return False
        self._last_stop_reason = STOP_NONE if stop is None else stop.reason
        self._slice_paused = self._is_pause(stop, pause_at)
        return stop is not None and stop.reason == STOP_NONE

    def _after_stop(self, halted: bool) -> None:
        icount = self.counter.icount
        plan = self._plan
        if self._ending is not None:
            reason, message = self._ending
            self._end(reason, message, exit_code=self._exit_code)
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
        if plan.kind == ev.CP_END and plan.at == icount:
            self._end_as_planned(plan.end_text)
            return
        if halted or self.platform.wants_idle():
            self._idle()
        else:
            kind = self._stop_kind(icount, plan)
            self._device_stop = False
            if kind is not None:
                self._checkpoint(kind)
        if self._result is None:
            self.platform.at_stop()
        if self._result is None:
            self._deliver_interrupt(halted)

    def _stop_kind(self, icount: int, plan: StopPlan) -> str | None:
        if self.clock.any_due(icount):
            return ev.CP_TIMER
        if plan.kind is not None:
            if plan.at != icount:
                return None  # an internal stop (sti shadow)
            return plan.kind if plan.kind in _BUSY_KINDS else ev.CP_PERIODIC
        if self._device_stop or self._last_stop_reason == STOP_IRQ:
            return ev.CP_INTERRUPT
        if plan.io_due_ns is not None and plan.io_due_ns <= self.clock.vclock_at(icount):
            return ev.CP_IO
        if icount >= self._last_cp_icount + self.config.checkpoint_every:
            return ev.CP_PERIODIC
        if icount >= self._last_cp_icount + self._event_gap and self.port.has_pending():
            return ev.CP_PERIODIC  # a host event was posted: take it now rather than at the cadence's checkpoint
        return None

    def _host_event(self) -> None:
        """The port's waker, called on a backend's thread after it posted: move the next stop closer.

        Record and live runs only (replay's stops come from the log). The stop is still a checkpoint at an
        exact icount, where the event enters and is logged; only where that checkpoint falls depends on the host.
        """
        self.counter.kick(self._last_cp_icount + self._event_gap)

    def _idle(self) -> None:
        """hlt: warp the clock to the next deadline or host event (QEMU's warp start/account)."""
        rflags = self.emu.reg_read(x86.UC_X86_REG_RFLAGS)
        if not rflags & IF_FLAG:
            self._end("hang", "guest halted with interrupts disabled: nothing can wake it")
            return
        if self.platform.pending_interrupt():
            return  # an interrupt is already pending: hlt wakes at once
        self._checkpoint(ev.CP_WARP_START)
        if self.platform.pending_interrupt():
            return  # what arrived at warp start already wakes the guest
        icount = self.counter.icount
        deadlines = [d for d in (self.clock.next_deadline_ns(), self.port.plan().io_due_ns) if d is not None]
        deadline = min(deadlines) if deadlines else None
        max_ns = None if deadline is None else max(0, deadline - self.clock.vclock_at(icount))
        warp = Event(ev.KIND_CLOCK_WARP, "clock", icount, self.clock.vclock_at(icount), checkpoint=self.checkpoint_id,
                     task=self.platform.current_task())
        try:
            self.clock.warp_ns += self.port.wait(warp, max_ns)
        except NothingCanWake:
            self._end("hang", "guest sleeps with no timer armed and no device that could wake it")
            return
        self._checkpoint(ev.CP_WARP_ACCOUNT)

    def _deliver_interrupt(self, halted: bool) -> None:
        pending = self.platform.pending_interrupt()
        if pending is None:
            return
        emu = self.emu
        rflags = emu.reg_read(x86.UC_X86_REG_RFLAGS)
        if not rflags & IF_FLAG:
            return
        if not halted and self._in_sti_shadow():
            self._internal_stop = self.counter.icount + 1
            return
        mask, vector = pending
        rsp = emu.reg_read(x86.UC_X86_REG_RSP)
        if not self.ram_ok(interrupt_frame_address(rsp), INTERRUPT_FRAME_SIZE):
            # The guest's stack pointer is wild: a real CPU would double-fault. Here it is a fault line, at this
            # stop (exact: the interrupted instruction has not run), and replay reaches the same one.
            pc = self.pc
            icount = self.counter.icount
            self._end("fault", f"interrupt frame outside RAM (rsp={rsp:#x}) (pc={pc:#x}, icount={icount})")
            return
        rip = push_interrupt_frame(emu, vector)
        frame = interrupt_frame_address(rsp)
        self.pages.mark_dirty(frame, frame + INTERRUPT_FRAME_SIZE)
        icount = self.counter.icount
        self.port.emit(Event(ev.KIND_IRQ, "intc", icount, self.clock.vclock_at(icount), checkpoint=self.checkpoint_id,
                             pc=rip, value=mask))  # fmt: skip

    def _in_sti_shadow(self) -> bool:
        last = self.counter.last_instruction()
        return last is not None and self.mem_read(last, 1)[0] == STI_OPCODE

    # ----------------------------------------------------------- checkpoints
    def register_digest(self) -> int:
        return self._regs.digest()

    def device_digest(self) -> int:
        return self.units.digest()

    def guest_ranges(self) -> list[tuple[int, int]]:
        """The guest's memory as [start, end) ranges: all of RAM, or what the platform maps (a Linux process)."""
        ranges = self.platform.memory_ranges()
        return [(self.ram.base, self.ram.base + self.ram.size)] if ranges is None else list(ranges)

    def memory_digest(self) -> int:
        own = self.platform.memory_digest()
        if own is not None:
            return own
        ranges = self.platform.memory_ranges()
        return self.ram.digest() if ranges is None else self.ram.digest_ranges(ranges)

    def _checkpoint(
        self, kind: str, *, at: int | None = None, text: str | None = None, value: int | None = None
    ) -> None:
        icount = self.counter.icount if at is None else at
        self.platform.before_checkpoint(icount)
        self.checkpoint_id += 1
        cp = Event(ev.KIND_CHECKPOINT, "machine", icount, self.clock.vclock_at(icount), checkpoint=self.checkpoint_id,
                   cp_kind=kind, pc=self.pc, text=text, value=value, task=self.platform.current_task())  # fmt: skip
        if self.port.wants_digests:
            cp.reg_digest = self._regs.digest()
            cp.dev_digest = self.device_digest()
            if kind == ev.CP_END or icount >= self._next_mem_digest:
                cp.mem_digest = self.memory_digest()
                self._next_mem_digest = icount + self.config.mem_digest_every
        self._last_cp_icount = icount
        for event in self.port.checkpoint(cp):
            self.units.apply(event)
        fired = self.clock.expire(icount)
        if fired:
            self.platform.timers_fired(fired)

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
        self.pages.mark_dirty(RAM_BASE, self.config.ram_size)
        self.forget_translations()
        self.clock.reset()
        self.platform.reset()

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
            output=bytes(self.output),
            signal=self._signal if reason == "fault" else None,
        )

    def _end_as_planned(self, text: str | None) -> None:
        """Replay of a run that ended for a host reason (signal, limit, timeout): end as the log says."""
        reason, _, message = (text or "interrupted: ").partition(": ")
        self._end(reason, message)

    def forget_translations(self) -> None:
        """RAM was replaced behind Unicorn's back (reset, a snapshot restore): drop translated code, the
        counter's cached block sizes and the TLB, so nothing decoded from the old bytes runs again and
        each page's first access asks the page policy afresh."""
        self.counter.flush()
        self.pages.flush()

    # ------------------------------------------------------------ snapshots
    #: The run loop's own state between two stops; with the CPU, RAM, the units and the port it is the machine.
    _CORE_FIELDS = ("checkpoint_id", "_last_cp_icount", "_next_mem_digest", "_device_stop", "_internal_stop",
                    "_last_stop_reason", "_exit_code", "_ending", "_signal", "_reset_requested",
                    "_result")  # fmt: skip

    def save_core(self) -> dict[str, object]:
        """The run loop's state and the icount, for a snapshot taken between stops (`rrtool.machine.snapshot`)."""
        saved: dict[str, object] = {name: getattr(self, name) for name in self._CORE_FIELDS}
        saved["icount"] = self.counter.icount
        saved["output"] = len(self.output)
        return saved

    def load_core(self, saved: dict[str, object]) -> None:
        for name in self._CORE_FIELDS:
            setattr(self, name, saved[name])
        icount, output = saved["icount"], saved["output"]
        assert isinstance(icount, int) and isinstance(output, int)
        self.counter.set_icount(icount)
        # A replay's output at any point is a prefix of the longest it has produced: keep that, so a
        # restore to a later snapshot than the present gets its output back too.
        if len(self.output) > len(self._longest_output):
            self._longest_output = bytes(self.output)
        self.output[:] = self._longest_output[:output] if output > len(self.output) else self.output[:output]
        self._hook_error = None
        self._fault = None
        self._fault_addr = None
        self._fault_vector = None

    # ------------------------------------------------------------- inspection
    def disassemble(self, pc: int, count: int = 1) -> list[str]:
        return disassemble(self.emu, pc, count, self._physical(pc) - pc)


__all__ = ["CORE_KINDS", "Limits", "Machine", "MachineConfig", "MachineError", "RunResult", "exit_status"]
