"""Assembling a board machine with its host backends, for live runs and recordings alike.

The one place where the outside world is wired to the board: the disk image to
the block device, each `--net` backend to its card, stdin to the console. It
also says what a trace must record of that wiring (`LiveMachine.metadata`), so
the recorder knows nothing of disks or networks.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rrtool.board.board import Board
from rrtool.board.config import BoardConfig
from rrtool.board.console import ConsoleInput
from rrtool.board.disk import DiskBackend, DiskSpec, disk_digest
from rrtool.board.net.factory import make_backend
from rrtool.board.net.spec import NetSpec
from rrtool.machine.config import Limits, MachineConfig
from rrtool.machine.image import GuestImage, load_image
from rrtool.machine.machine import Machine
from rrtool.machine.port import Backend, EventPort
from rrtool.schemas import names as ev


@dataclass
class HostSetup:
    """What the outside world attached to a live machine: its backends, by device."""

    stdin: bool = False
    disk: DiskSpec | None = None
    chaos: int | None = None
    log_write_data: bool = False
    nets: tuple[NetSpec, ...] = ()
    extra: list[Backend] = field(default_factory=list)


@dataclass
class LiveMachine:
    machine: Machine
    image: GuestImage
    board: Board
    host: HostSetup
    disk: DiskBackend | None

    def metadata(self) -> dict[str, str]:
        """What the trace records of the machine and its wiring, so replay builds the same one without it."""
        config = {**self.machine.config.to_dict(), **self.board.config.to_dict()}
        meta = {
            ev.META_MACHINE: json.dumps(config, sort_keys=True),
            ev.META_NET: json.dumps([{"backend": n.kind, **n.nic.to_dict()} for n in self.host.nets]),
        }
        if self.disk is not None:
            spec = self.disk.spec
            meta[ev.META_DISK] = json.dumps({
                "path": str(spec.path.resolve()), "xxh3_128": disk_digest(spec.path),
                "sectors": self.disk.sectors, "writeback": spec.writeback,
            })  # fmt: skip
        return meta


def board_config(data: dict[str, Any]) -> tuple[MachineConfig, BoardConfig]:
    """Both halves of a trace's `rrtool.machine` record."""
    return MachineConfig.from_dict(data), BoardConfig.from_dict(data)


def live_machine(
    image_path: Path,
    config: MachineConfig,
    port: EventPort,
    host: HostSetup,
    *,
    limits: Limits | None = None,
    console_sink: Callable[[bytes], None] | None = None,
) -> LiveMachine:
    """Build the machine and start its backends; the caller runs it and closes the port."""
    image = load_image(image_path, config.ram_size)
    disk = None
    if host.disk is not None:
        disk = DiskBackend(host.disk, chaos=host.chaos, log_write_data=host.log_write_data)
    nets = [make_backend(spec) for spec in host.nets]
    board = Board(BoardConfig(disk.sectors if disk else 0, tuple(spec.nic for spec in host.nets)))
    machine = Machine(image, config, port, board, limits=limits or Limits(), console_sink=console_sink)
    if disk is not None:
        board.block.backend = disk
        port.attach(disk)
    for nic, backend in zip(board.nics, nets, strict=True):
        nic.backend = backend
        port.attach(backend)
    if host.stdin:
        port.attach(ConsoleInput())
    for extra in host.extra:
        port.attach(extra)
    return LiveMachine(machine, image, board, host, disk)
