"""The unit registry: every event kind has one owner, async events reach their unit, state saves and loads."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from rrtool.board import Board, BoardConfig, regs
from rrtool.board.nic import NicConfig
from rrtool.machine.config import MachineConfig
from rrtool.machine.image import load_image
from rrtool.machine.machine import CORE_KINDS, Machine
from rrtool.machine.port import EventPort
from rrtool.machine.units import EventRejected, UnitBase, UnitError, Units
from rrtool.schemas import events as ev
from rrtool.schemas.event import Event


def _full_board() -> Board:
    cards = tuple(NicConfig(bytes([0x52, 0, 0, 0, 0, i]), bytes([10, 0, 2, 15])) for i in range(4))
    return Board(BoardConfig(disk_sectors=2048, nics=cards))


def _machine(image: Path, port: EventPort, board: Board | None = None) -> Machine:
    config = MachineConfig()
    return Machine(load_image(image, config.ram_size), config, port, board or _full_board())


def test_every_kind_has_exactly_one_owner(example: Callable[[str], Path]) -> None:
    machine = _machine(example("hello"), EventPort())
    owners: dict[str, list[str]] = {}
    for unit in machine.units:
        assert set(unit.applies) <= set(unit.kinds), unit.name
        for kind in unit.kinds:
            owners.setdefault(kind, []).append(unit.name)
        if unit.kinds:
            assert unit.name in ev.DEVICES or unit.name.startswith("net"), f"{unit.name} writes events"
    per_kind = {kind: len(set(names) - {f"net{i}" for i in range(1, 4)}) for kind, names in owners.items()}
    assert all(n == 1 for n in per_kind.values()), owners
    # Every kind is the board's or the core's, except the Linux platform's system calls and scheduler (below).
    assert set(owners) | CORE_KINDS == set(ev.KINDS) - {ev.KIND_SYSCALL, ev.KIND_SCHED}
    assert not set(owners) & CORE_KINDS
    # The trace places exactly these after a checkpoint row; replay reads them there.
    assert machine.units.async_kinds == {ev.KIND_CONSOLE_IN, ev.KIND_BLK_COMPLETE, ev.KIND_NET_RX}
    assert machine.port.async_kinds == machine.units.async_kinds


def test_registry_refuses_two_units_of_one_name() -> None:
    class Thing(UnitBase):
        name = "thing"

        def state(self) -> bytes:
            return b""

    with pytest.raises(UnitError, match="two units named 'thing'"):
        Units([Thing(), Thing()])


def test_async_events_reach_their_unit_and_unknown_devices_are_rejected(example: Callable[[str], Path]) -> None:
    board = _full_board()
    machine = _machine(example("hello"), EventPort(), board)
    before = machine.device_digest()
    for stray in (
        Event(ev.KIND_NET_RX, "net7", 0, 0, card=7, data=b"\x00" * 60),  # no such card
        Event(ev.KIND_BLK_COMPLETE, "net0", 0, 0, req_id=0),  # not a kind net0 applies
    ):
        with pytest.raises(EventRejected, match="which this machine does not have"):
            machine.units.apply(stray)
    assert machine.device_digest() == before
    machine.units.apply(Event(ev.KIND_CONSOLE_IN, "console", 0, 0, data=b"hi"))
    assert machine.device_digest() != before
    assert board.console.read(regs.CON_DATA, 1) == ord("h")
    assert board.intc.pending & (1 << regs.IRQ_CONSOLE)


class _SavingPort(EventPort):
    """Saves every unit at one checkpoint of a live run, to load them back at the end."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at = at
        self.machine: Machine | None = None
        self.saved: dict[str, object] | None = None
        self.digest_then = 0

    def checkpoint(self, cp: Event) -> list[Event]:
        events = super().checkpoint(cp)
        if cp.checkpoint == self.at:
            assert self.machine is not None
            self.saved = self.machine.units.save()
            self.digest_then = self.machine.device_digest()
        return events


def test_units_save_and_load_their_state(example: Callable[[str], Path]) -> None:
    port = _SavingPort(at=6)
    machine = _machine(example("timers"), port)
    port.machine = machine
    result = machine.run()
    assert result.ok and port.saved is not None
    at_end = machine.device_digest()
    assert at_end != port.digest_then  # timers fired and the guest printed since: state moved on
    machine.units.load(port.saved)
    assert machine.device_digest() == port.digest_then
    machine.units.load(port.saved)  # a snapshot is never aliased by the live units: it loads twice
    assert machine.device_digest() == port.digest_then


@pytest.mark.skipif(not Path("/bin/busybox").is_file(), reason="Debian's busybox-static is not installed")
def test_the_linux_platform_owns_system_calls_and_applies_nothing(tmp_path: Path) -> None:
    from rrtool.linux.host import LinuxSetup, live_linux
    from rrtool.machine.config import DEFAULT_LINUX_RAM

    live = live_linux(Path("/bin/busybox"), MachineConfig(ram_size=DEFAULT_LINUX_RAM), EventPort(),
                      LinuxSetup(args=("true",), root=tmp_path, stdin=False))  # fmt: skip
    try:
        kinds = {kind for unit in live.machine.units for kind in unit.kinds}
        assert ev.KIND_SYSCALL in kinds and kinds <= set(ev.KINDS)
        assert live.machine.units.async_kinds == frozenset()  # every system call result is synchronous
    finally:
        live.close()
