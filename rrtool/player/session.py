"""A replay: the machine driven by a trace, with every backend switched off."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rrtool._paths import PathError, check_input_file
from rrtool.board.board import Board
from rrtool.board.host import board_config
from rrtool.machine.config import MachineConfig, MachineError, RunResult
from rrtool.machine.image import PLATFORM_BOARD, PLATFORM_LINUX, ImageError, load_image, sha256_file
from rrtool.machine.machine import Machine
from rrtool.machine.units import EventRejected
from rrtool.player.divergence import Divergence, TraceEnd
from rrtool.player.port import ReplayPort
from rrtool.schemas import events as ev
from rrtool.schemas.event import Event
from rrtool.schemas.tracefile import TraceFile, open_tracefile


class ReplayError(Exception):
    """Replay cannot start (missing or mismatched image); one line for the user."""


@dataclass
class ReplayResult:
    trace: Path
    checkpoints: int
    events: int
    icount: int
    wall_s: float
    complete: bool  # the trace was a finished recording
    run: RunResult | None
    divergence: Divergence | None

    @property
    def verified(self) -> bool:
        return self.divergence is None


def resolve_image(recorded: str | None, override: Path | None, sha256: str | None, force: bool) -> Path:
    path = override if override is not None else (Path(recorded) if recorded else None)
    if path is None:
        raise ReplayError("the trace does not name its guest image: pass --image")
    try:
        check_input_file(path, "guest image")
    except PathError as exc:
        raise ReplayError(f"{exc} (pass --image to point at it)") from None
    if not sha256 and not force:
        raise ReplayError("the trace does not say which image it was recorded with (no image sha256); "
                          "pass --force to replay anyway")  # fmt: skip
    if sha256 and not force:
        actual = sha256_file(path)
        if actual != sha256:
            raise ReplayError(
                f"guest image {path} has sha256 {actual[:16]}…, the trace was recorded with {sha256[:16]}… "
                "(use --force to replay anyway)"
            )
    return path


@dataclass(frozen=True)
class ReplayProgress:
    """Where a replay is, of what the trace holds (totals from the trace's batch index)."""

    checkpoints: int  # verified so far
    icount: int
    wall_s: float
    total_checkpoints: int
    total_icount: int


def replay(
    trace_path: Path,
    *,
    image: Path | None = None,
    force: bool = False,
    console_sink: Callable[[bytes], None] | None = None,
    on_progress: Callable[[ReplayProgress], None] | None = None,
    stderr_sink: Callable[[bytes], None] | None = None,
) -> ReplayResult:
    """Replay `trace_path` and verify it; `on_progress` is called after every verified checkpoint.

    A Linux program's stderr goes to `stderr_sink` (its stdout, like a board guest's console, to `console_sink`).
    """
    with open_tracefile(trace_path) as trace:
        return _replay(trace, trace_path, image, force, console_sink, on_progress, stderr_sink)


def build_replay(
    trace: TraceFile,
    trace_path: Path,
    image: Path | None,
    force: bool,
    console_sink: Callable[[bytes], None] | None = None,
    stderr_sink: Callable[[bytes], None] | None = None,
    on_checkpoint: Callable[[Event], None] | None = None,
) -> tuple[Machine, ReplayPort]:
    """The recorded machine, rebuilt from the trace's record and driven by a replay port; or one `ReplayError` line."""
    path = resolve_image(trace.metadata.get(ev.META_IMAGE_PATH), image, trace.metadata.get(ev.META_IMAGE_SHA256), force)
    if ev.META_MACHINE not in trace.metadata:
        raise ReplayError(f"{trace_path}: the trace does not describe its machine (no {ev.META_MACHINE!r})")
    if trace.totals()[0] == 0:
        raise ReplayError(f"{trace_path}: the trace holds no complete checkpoint, so there is nothing to verify")
    record = trace.machine
    platform = record.get("platform", PLATFORM_BOARD) if isinstance(record, dict) else None
    try:
        if platform == PLATFORM_LINUX:
            from rrtool.linux.host import replay_kernel  # only Linux replays pay for the Linux platform

            config = MachineConfig.from_dict(record)
            kernel = replay_kernel(record, path, config.ram_size, stderr_sink)
        elif platform == PLATFORM_BOARD:
            config, board = board_config(trace.machine)
        else:
            raise MachineError(f"unknown platform {platform!r}")
        rebuilt = {**config.to_dict(), **(kernel.config.to_dict() if platform == PLATFORM_LINUX else board.to_dict())}
        if rebuilt != record:
            # A key this rrtool does not know, or one missing, would otherwise fall back to a default: the
            # replayed machine must be exactly the recorded one, so its own record must read back the same.
            odd = sorted(k for k in set(rebuilt) | set(record) if rebuilt.get(k) != record.get(k))
            raise MachineError(f"keys that do not describe this machine: {', '.join(odd)}")
    except ImageError as exc:
        raise ReplayError(str(exc)) from None
    except (MachineError, TypeError, ValueError, KeyError, AttributeError) as exc:
        raise ReplayError(f"{trace_path}: metadata {ev.META_MACHINE!r} is not a machine this rrtool can build "
                          f"({exc})") from None  # fmt: skip
    port = ReplayPort(trace, on_checkpoint)
    try:
        if platform == PLATFORM_LINUX:
            machine = Machine(kernel.program.image, config, port, kernel, console_sink=console_sink)
        else:
            machine = Machine(load_image(path, config.ram_size), config, port, Board(board), console_sink=console_sink)
    except MachineError as exc:
        raise ReplayError(f"{trace_path}: the recorded machine cannot be built: {exc}") from None
    return machine, port


def trailing_rows(machine: Machine, port: ReplayPort, run: RunResult) -> Divergence | None:
    """The run ended: a divergence if the trace still holds rows, which the machine never asked for."""
    if port.exhausted:
        return None
    extra = port._peek()
    assert extra is not None
    return located(Divergence(checkpoint=extra.checkpoint, icount=machine.icount,
                              what="the machine ended but the trace goes on", expected=extra.describe(),
                              actual=f"end of run ({run.reason})"), machine)  # fmt: skip


def as_divergence(
    exc: Divergence | EventRejected | TraceEnd, machine: Machine, port: ReplayPort, complete: bool
) -> Divergence | None:
    """What a replay's exception means for the user: the first difference, or None (a cut-short trace ran out)."""
    if isinstance(exc, Divergence):
        return located(exc, machine)
    if isinstance(exc, EventRejected):
        return located(Divergence(checkpoint=port.last_checkpoint, icount=machine.icount,
                                  what=f"an input event in the trace does not belong here: {exc.reason}",
                                  expected=exc.event.describe(),
                                  actual="no such input can occur at this point of a run"), machine)  # fmt: skip
    if not complete:
        return None
    return located(Divergence(checkpoint=port.last_checkpoint, icount=machine.icount,
                              what="the trace ended before the machine did", expected="end of trace",
                              actual="the machine asked for another event"), machine)  # fmt: skip


def located(divergence: Divergence, machine: Machine) -> Divergence:
    divergence.pc = machine.pc
    divergence.disassembly = machine.disassemble(machine.pc)
    return divergence


def _replay(
    trace: TraceFile,
    trace_path: Path,
    image: Path | None,
    force: bool,
    console_sink: Callable[[bytes], None] | None,
    on_progress: Callable[[ReplayProgress], None] | None,
    stderr_sink: Callable[[bytes], None] | None = None,
) -> ReplayResult:
    on_checkpoint = None
    if on_progress is not None:
        total_checkpoints, total_icount = trace.totals()

        def on_checkpoint(cp: Event) -> None:
            on_progress(ReplayProgress(cp.checkpoint + 1, cp.icount, time.monotonic() - start, total_checkpoints,
                                       total_icount))  # fmt: skip

    machine, port = build_replay(trace, trace_path, image, force, console_sink, stderr_sink, on_checkpoint)
    start = time.monotonic()
    run: RunResult | None = None
    divergence: Divergence | None = None
    try:
        run = machine.run()
        divergence = trailing_rows(machine, port, run)
    except (Divergence, EventRejected, TraceEnd) as exc:
        divergence = as_divergence(exc, machine, port, trace.complete)
    return ReplayResult(
        trace=trace_path,
        checkpoints=port.checkpoints_verified,
        events=port.events_replayed,
        icount=port.last_icount,
        wall_s=time.monotonic() - start,
        complete=trace.complete,
        run=run,
        divergence=divergence,
    )
