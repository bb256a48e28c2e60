"""The SDK board as a platform: its devices on I/O ports, their interrupt lines, and their reset.

`Board` is two things at once. To the machine core it is the `Platform`
(CPU hooks for `in`/`out`, pending interrupts, timers firing, reset). To each
device it is the `Bus`: the machine's services (exact icount, DMA, stops) plus
the board's own (interrupt lines). Devices never see the machine itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import unicorn as uc
from unicorn import x86_const as x86

from rrtool.board import regs
from rrtool.board.block import BlockDevice
from rrtool.board.bus import Device
from rrtool.board.clock import ClockDevice
from rrtool.board.config import BoardConfig
from rrtool.board.console import Console
from rrtool.board.intc import Intc
from rrtool.board.nic import AbsentNic, Nic
from rrtool.board.rng import Rng
from rrtool.board.rtc import Rtc
from rrtool.board.system import System
from rrtool.machine.clock import Clock
from rrtool.machine.config import Fault, MachineError
from rrtool.machine.port import EventPort

if TYPE_CHECKING:
    from rrtool.machine.machine import Machine


class Board:
    timers = regs.NUM_TIMERS

    def __init__(self, config: BoardConfig) -> None:
        if len(config.nics) > regs.NUM_NETS:
            raise MachineError(f"at most {regs.NUM_NETS} network cards")
        self.config = config
        self._machine: Machine | None = None
        self.timer_regs = ClockDevice(self)
        self.intc = Intc(self)
        self.console = Console(self)
        self.system = System(self)
        self.block = BlockDevice(self, config.disk_sectors)
        self.nics = [Nic(self, i, nic) for i, nic in enumerate(config.nics)]
        self.units: list[Device] = [
            self.timer_regs, self.intc, self.console, self.system, Rtc(self), Rng(self), self.block, *self.nics,
        ]  # fmt: skip
        empty_slots = [AbsentNic(i) for i in range(len(self.nics), regs.NUM_NETS)]
        self._port_map: dict[int, Device] = {p: d for d in [*self.units, *empty_slots] for p in d.ports}

    @property
    def machine(self) -> Machine:
        assert self._machine is not None, "the board is attached to its machine at construction"
        return self._machine

    # -- Platform ------------------------------------------------------------
    def attach(self, machine: Machine) -> None:
        self._machine = machine
        emu = machine.emu
        self._hooks = [
            emu.hook_add(uc.UC_HOOK_INSN, self._on_in, None, 1, 0, x86.UC_X86_INS_IN),
            emu.hook_add(uc.UC_HOOK_INSN, self._on_out, None, 1, 0, x86.UC_X86_INS_OUT),
        ]

    def timers_fired(self, mask: int) -> None:
        for i in range(regs.NUM_TIMERS):
            if mask >> i & 1:
                self.intc.raise_line(regs.IRQ_TIMER0 + i)

    def pending_interrupt(self) -> tuple[int, int] | None:
        mask = self.intc.deliverable()
        return (mask, self.intc.vector) if mask else None

    def before_checkpoint(self, icount: int) -> None:
        self.console.flush(icount)

    def wants_idle(self) -> bool:
        return False  # the board idles only on hlt

    def on_fault(self, fault: Fault) -> bool:
        return False  # an SDK guest has no fault handlers: the fault ends the run

    def current_task(self) -> int | None:
        return None  # a board guest is one program: no tasks

    def at_stop(self) -> None:
        return None

    def deadline(self) -> int | None:
        return None

    def memory_digest(self) -> int | None:
        return None

    def memory_ranges(self) -> list[tuple[int, int]] | None:
        return None  # an SDK guest may use any of its RAM

    def reset(self) -> None:
        self.timer_regs.reset()
        self.intc.reset()
        self.system.reset()
        self.block.reset()
        for nic in self.nics:
            nic.reset()

    # -- port I/O ------------------------------------------------------------
    def _on_in(self, emu: uc.Uc, port: int, size: int, _user: object) -> int:
        if self.machine.bus_inert:
            return 0xFFFFFFFF  # the run has ended; the CPU is only finishing its block (Machine.guest_fault)
        dev = self._port_map.get(port)
        if dev is None:
            self.machine.guest_fault(f"access to unassigned I/O port {port:#x}")
            return 0xFFFFFFFF
        try:
            return dev.read(port, size) & ((1 << (8 * size)) - 1)
        except Exception as exc:  # e.g. a replay divergence: surface it after emu_start returns
            self.machine.hook_failed(exc)
            return 0

    def _on_out(self, emu: uc.Uc, port: int, size: int, value: int, _user: object) -> None:
        if self.machine.bus_inert:
            return
        dev = self._port_map.get(port)
        if dev is None:
            self.machine.guest_fault(f"access to unassigned I/O port {port:#x}")
            return
        try:
            dev.write(port, size, value)
        except Exception as exc:
            self.machine.hook_failed(exc)

    # -- Bus (what the devices see) ----------------------------------------------
    @property
    def port(self) -> EventPort:
        return self.machine.port

    @property
    def clock(self) -> Clock:
        return self.machine.clock

    def now(self) -> int:
        return self.machine.now()

    def vclock_at(self, icount: int) -> int:
        return self.machine.clock.vclock_at(icount)

    def raise_irq(self, line: int) -> None:
        self.intc.raise_line(line)

    def request_stop(self) -> None:
        self.machine.request_stop()

    def timers_changed(self) -> None:
        self.machine.timers_changed()

    def guest_exit(self, code: int) -> None:
        self.machine.guest_exit(code)

    def guest_reset(self) -> None:
        self.machine.guest_reset()

    def guest_output(self, data: bytes) -> None:
        self.machine.guest_output(data)

    def mem_read(self, addr: int, size: int) -> bytes:
        return self.machine.mem_read(addr, size)

    def mem_write(self, addr: int, data: bytes) -> None:
        self.machine.mem_write(addr, data)

    def ram_ok(self, addr: int, length: int) -> bool:
        return self.machine.ram_ok(addr, length)
