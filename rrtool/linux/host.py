"""Assembling a Linux process on the machine: live runs and recordings wire the host, replay wires nothing.

The one place where the outside world meets the Linux platform: the root
directory (and its overlay), stdin, the recorded start-up values (AT_RANDOM,
the ids). It also says what a trace records of it (`LinuxLive.metadata`) and
builds the same process from that record for replay (`replay_kernel`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rrtool.linux.config import LinuxConfig, merge_env
from rrtool.linux.kernel import Kernel
from rrtool.linux.loader import Program, load_program
from rrtool.linux.sandbox import Root
from rrtool.linux.tasks import DEFAULT_SLICE
from rrtool.machine.config import Limits, MachineConfig, MachineError
from rrtool.machine.machine import Machine
from rrtool.machine.port import EventPort
from rrtool.schemas import names as ev

META_ROOT = "rrtool.root"


@dataclass
class LinuxSetup:
    """How a live Linux process meets the host."""

    args: tuple[str, ...] = ()
    #: argv[0] as the user typed the program (`./prog`); the program's path when None.
    argv0: str | None = None
    root: Path = field(default_factory=Path.cwd)
    writeback: bool = False
    env: tuple[str, ...] = ()
    stdin: bool = True
    strict_syscalls: bool = False
    log_write_data: bool = False
    #: The scheduler: its time slice in instructions, and chaos mode's seed (None: off).
    slice_insns: int = DEFAULT_SLICE
    chaos: int | None = None
    stderr_sink: Callable[[bytes], None] | None = None


def guest_exe(program: Path, root: Path) -> str:
    """The program's path as the guest sees it: inside the root if it is there, else /<its name>."""
    try:
        rel = program.resolve().relative_to(root.resolve())
        return "/" + rel.as_posix() if rel.parts else "/" + program.name
    except ValueError:
        return "/" + program.name


@dataclass
class LinuxLive:
    machine: Machine
    kernel: Kernel
    program: Program
    root: Root

    @property
    def image(self) -> Any:
        return self.program.image

    def metadata(self) -> dict[str, str]:
        config = {**self.machine.config.to_dict(), **self.kernel.config.to_dict()}
        root = {"path": str(self.root.root), "writeback": self.root.writeback}
        return {ev.META_MACHINE: json.dumps(config, sort_keys=True), META_ROOT: json.dumps(root)}

    def close(self) -> None:
        self.kernel.close()
        self.root.close()


def live_linux(
    program_path: Path,
    config: MachineConfig,
    port: EventPort,
    setup: LinuxSetup,
    *,
    limits: Limits | None = None,
    console_sink: Callable[[bytes], None] | None = None,
) -> LinuxLive:
    """Load the program, start its process over the root, ready to run; the caller closes it."""
    program = load_program(program_path, config.ram_size)
    try:
        root = Root(setup.root, writeback=setup.writeback)
    except (OSError, NotADirectoryError) as exc:
        raise MachineError(
            f"--root {setup.root}: {exc.strerror if isinstance(exc, OSError) and exc.strerror else exc}"
        ) from None
    linux = LinuxConfig(
        argv=(setup.argv0 or str(program_path), *setup.args),
        env=merge_env(list(setup.env)),
        exe=guest_exe(program_path, setup.root),
        at_random=os.urandom(16),
        uid=os.getuid(),
        gid=os.getgid(),
        strict_syscalls=setup.strict_syscalls,
        log_write_data=setup.log_write_data,
        slice_insns=setup.slice_insns,
        chaos=setup.chaos,
    )
    kernel = Kernel(program, linux, root, stdin_fd=0 if setup.stdin else None, stderr_sink=setup.stderr_sink)
    machine = Machine(program.image, config, port, kernel, limits=limits or Limits(), console_sink=console_sink)
    return LinuxLive(machine, kernel, program, root)


def replay_kernel(data: dict[str, Any], program_path: Path, ram_size: int,
                  stderr_sink: Callable[[bytes], None] | None = None) -> Kernel:  # fmt: skip
    """The recorded process, with no host behind it: no root, no stdin."""
    return Kernel(load_program(program_path, ram_size), LinuxConfig.from_dict(data), None, stderr_sink=stderr_sink)
