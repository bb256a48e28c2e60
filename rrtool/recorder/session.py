"""A recording: a live run of the machine with every event written to an Arrow trace."""

from __future__ import annotations

import datetime as dt
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rrtool import __version__
from rrtool._paths import check_output_path, part_path, refuse_clobber
from rrtool.board.host import HostSetup
from rrtool.machine.config import DEFAULT_LINUX_RAM, Limits, MachineConfig, RunResult
from rrtool.machine.image import PLATFORM_LINUX, platform_of
from rrtool.machine.signals import stop_on_signals
from rrtool.recorder.live import start as start_live
from rrtool.recorder.port import RecordPort
from rrtool.schemas import events as ev
from rrtool.schemas.event import Event
from rrtool.schemas.writer import TraceWriter

if TYPE_CHECKING:
    from rrtool.linux.host import LinuxSetup


@dataclass
class RecordResult:
    run: RunResult
    trace: Path
    events: int
    bytes: int
    wall_s: float
    counts: dict[str, int] = field(default_factory=dict)
    platform: str = "board"
    #: One line about the run for its end (Linux: system calls answered ENOSYS), or None.
    summary: str | None = None


def trace_metadata(image_path: Path, sha256: str) -> dict[str, str]:
    """What every recording says of itself; the platform adds its machine record and wiring."""
    return {
        ev.META_TOOL_VERSION: __version__,
        ev.META_IMAGE_PATH: str(image_path.resolve()),
        ev.META_IMAGE_SHA256: sha256,
        ev.META_START_TIME: dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        ev.META_HOST: socket.gethostname(),
    }


def record(
    image_path: Path,
    output: Path,
    *,
    config: MachineConfig | None = None,
    limits: Limits | None = None,
    host: HostSetup | None = None,
    linux: LinuxSetup | None = None,
    console_sink: Callable[[bytes], None] | None = None,
    on_checkpoint: Callable[[Event, RecordPort], None] | None = None,
) -> RecordResult:
    """Run `image_path` live and write its trace to `output` (replaced if it exists and is not an input).

    The trace is written to `<output>.part` beside it while the guest runs
    and renamed onto `output` when the run ends, however it ends (exit,
    fault, hang, limit, timeout, SIGINT or SIGTERM): until then `output`
    keeps whatever it held, and a SIGKILL leaves `<output>.part`, readable as
    a trace cut short at its last batch. An output that is one of the inputs
    (the guest, the disk image, a pcap capture) is refused before anything is
    written, and so is a `.part` name that is one.
    """
    if config is None:
        linux_program = platform_of(image_path) == PLATFORM_LINUX
        config = MachineConfig(ram_size=DEFAULT_LINUX_RAM) if linux_program else MachineConfig()
    host = host or HostSetup()
    port: RecordPort

    def progress(cp: Event) -> None:
        if on_checkpoint is not None:
            on_checkpoint(cp, port)

    inputs = [(image_path, "guest image"), (host.disk.path if host.disk else None, "disk image")]
    inputs += [(Path(n.options["file"]), "pcap capture") for n in host.nets if "file" in n.options]
    check_output_path(output, "trace file")
    partial = part_path(output)
    check_output_path(partial, "trace file")
    refuse_clobber(output, inputs)
    refuse_clobber(partial, inputs)
    writer: TraceWriter | None = None
    start = time.monotonic()
    # The writer needs the metadata, which needs the machine, which needs the port: attach it last.
    port = RecordPort(None, progress)
    started = None
    try:
        started = start_live(image_path, config, port, host=host, linux=linux, limits=limits,
                             console_sink=console_sink)  # fmt: skip
        live = started.live
        meta = {**trace_metadata(image_path, live.image.sha256), **live.metadata()}
        writer = TraceWriter(partial, meta)
        port.writer = writer
        with stop_on_signals(port.request_stop):
            result = live.machine.run()
    finally:
        if writer is not None:
            writer.close()
        port.close()
        if started is not None:
            started.close()
    # Only a run that ended (for any of its reasons) is renamed; an exception leaves the closed `.part`.
    os.replace(partial, output)
    return RecordResult(
        run=result,
        trace=output,
        events=writer.seq,
        bytes=writer.bytes_written,
        wall_s=time.monotonic() - start,
        counts=port.kind_counts(),
        platform=started.platform,
        summary=started.summary(),
    )
