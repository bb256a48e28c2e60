"""A live machine on the platform its image asks for: the SDK board or a Linux process.

`rrtool run` and `rrtool record` both start here, so the choice of platform
(from the ELF itself: SDK guests carry the SDK's note, see
`rrtool.machine.image.platform_of`) is made in one place. Nothing here
imports pyarrow (`run` records nothing), and the Linux platform is imported only for a Linux program.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from rrtool.board.host import HostSetup, live_machine
from rrtool.machine.config import Limits, MachineConfig
from rrtool.machine.image import PLATFORM_LINUX, GuestImage, platform_of
from rrtool.machine.machine import Machine
from rrtool.machine.port import EventPort

if TYPE_CHECKING:
    from rrtool.linux.host import LinuxSetup


class Live(Protocol):
    machine: Machine

    @property
    def image(self) -> GuestImage: ...

    def metadata(self) -> dict[str, str]: ...


@dataclass
class Started:
    """A machine ready to run, what the trace says of it, and how to let go of its host resources."""

    live: Live
    platform: str
    close: Callable[[], None]
    #: One line about the run to show at its end (Linux: the calls answered ENOSYS), or None.
    summary: Callable[[], str | None]


def start(
    image_path: Path,
    config: MachineConfig,
    port: EventPort,
    *,
    host: HostSetup | None = None,
    linux: LinuxSetup | None = None,
    limits: Limits | None = None,
    console_sink: Callable[[bytes], None] | None = None,
) -> Started:
    platform = platform_of(image_path)
    if platform == PLATFORM_LINUX:
        from rrtool.linux.host import LinuxSetup, live_linux  # only Linux runs pay for the Linux platform

        proc = live_linux(image_path, config, port, linux or LinuxSetup(), limits=limits, console_sink=console_sink)
        return Started(proc, platform, proc.close, proc.kernel.summary)
    board = live_machine(image_path, config, port, host or HostSetup(), limits=limits, console_sink=console_sink)
    return Started(board, platform, lambda: None, lambda: None)
