"""A recording: a live run of the machine with every event written to an Arrow trace."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import signal
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from rrtool import __version__
from rrtool.machine.event import Event
from rrtool.machine.image import load_image
from rrtool.machine.machine import Limits, Machine, MachineConfig, RunResult
from rrtool.machine.port import Backend
from rrtool.recorder.port import RecordPort
from rrtool.recorder.writer import TraceWriter
from rrtool.schemas import events as ev


@dataclass
class RecordResult:
    run: RunResult
    trace: Path
    events: int
    bytes: int
    wall_s: float
    counts: dict[str, int] = field(default_factory=dict)


@contextlib.contextmanager
def stop_on_signals(stop: Callable[[], None]) -> Iterator[None]:
    """SIGINT and SIGTERM end the run at the next checkpoint, so the trace is closed cleanly."""

    def handler(signum: int, frame: FrameType | None) -> None:
        stop()

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, prev in old.items():
            signal.signal(sig, prev)


def trace_metadata(image_path: Path, sha256: str, config: MachineConfig) -> dict[str, str]:
    return {
        ev.META_TOOL_VERSION: __version__,
        ev.META_MACHINE: json.dumps(config.to_dict(), sort_keys=True),
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
    backends: tuple[Backend, ...] = (),
    console_sink: Callable[[bytes], None] | None = None,
    on_checkpoint: Callable[[Event, RecordPort], None] | None = None,
) -> RecordResult:
    """Run `image_path` live and write its trace to `output` (replaced if it exists)."""
    config = config or MachineConfig()
    limits = limits or Limits()
    image = load_image(image_path, config.ram_size)
    writer = TraceWriter(output, trace_metadata(image_path, image.sha256, config))
    port: RecordPort

    def progress(cp: Event) -> None:
        if on_checkpoint is not None:
            on_checkpoint(cp, port)

    port = RecordPort(writer, progress)
    start = time.monotonic()
    try:
        machine = Machine(image, config, port, limits=limits, console_sink=console_sink)
        for backend in backends:
            port.attach(backend)
        with stop_on_signals(port.request_stop):
            result = machine.run()
    finally:
        writer.close()
        port.close()
    return RecordResult(
        run=result,
        trace=output,
        events=writer.seq,
        bytes=writer.bytes_written,
        wall_s=time.monotonic() - start,
        counts=port.kind_counts(),
    )
