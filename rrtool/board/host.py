"""Assembling a machine with its host backends, for live runs and recordings alike."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rrtool.board.console_input import ConsoleInput
from rrtool.board.disk import DiskBackend, DiskSpec
from rrtool.board.net.factory import make_backend
from rrtool.board.net.spec import NetSpec
from rrtool.machine.config import Limits, MachineConfig
from rrtool.machine.image import GuestImage, load_image
from rrtool.machine.machine import Machine
from rrtool.machine.port import Backend, EventPort


@dataclass
class HostSetup:
    """What the outside world attached to a live machine: its backends, by device."""

    stdin: bool = False
    disk: DiskSpec | None = None
    chaos: int | None = None
    log_write_data: bool = False
    nets: tuple[NetSpec, ...] = ()
    extra: list[Backend] = field(default_factory=list)


def live_machine(
    image_path: Path,
    config: MachineConfig,
    port: EventPort,
    host: HostSetup,
    *,
    limits: Limits | None = None,
    console_sink: Callable[[bytes], None] | None = None,
) -> tuple[Machine, GuestImage, DiskBackend | None]:
    """Build the machine and start its backends; the caller runs it and closes the port."""
    image = load_image(image_path, config.ram_size)
    disk = None
    if host.disk is not None:
        disk = DiskBackend(host.disk, chaos=host.chaos, log_write_data=host.log_write_data)
        config = dataclasses.replace(config, disk_sectors=disk.sectors)
    nets = [make_backend(spec) for spec in host.nets]
    config = dataclasses.replace(config, nics=tuple(spec.nic for spec in host.nets))
    machine = Machine(image, config, port, limits=limits or Limits(), console_sink=console_sink)
    if disk is not None:
        machine.block.backend = disk
        port.attach(disk)
    for nic, backend in zip(machine.nics, nets, strict=True):
        nic.backend = backend
        port.attach(backend)
    if host.stdin:
        port.attach(ConsoleInput())
    for extra in host.extra:
        port.attach(extra)
    return machine, image, disk
