"""`rrtool record`: a guest live, every nondeterministic event into an Arrow trace, with a progress line."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from rrtool.cli.console import console_writer, err, report_end, user_errors
from rrtool.cli.options import (
    Chaos,
    CheckpointEvery,
    Disk,
    Env,
    Image,
    LogWriteData,
    MaxInsns,
    MemDigestEvery,
    Net,
    NoStdin,
    NsPerInsn,
    ProgramArgs,
    Quiet,
    Ram,
    Root,
    Slice,
    StrictSyscalls,
    Timeout,
    host_setup,
    linux_setup,
    machine_setup,
    platform_ram,
    resolve_guest,
)
from rrtool.machine.config import DEFAULT_CHECKPOINT_EVERY, DEFAULT_MEM_DIGEST_EVERY


def record(
    image: Image,
    args: ProgramArgs = None,
    *,
    output: Annotated[
        Path,
        typer.Option(
            "--output", "-o", metavar="FILE", help="Trace file to write (.arrow); <FILE>.part while recording."
        ),
    ],
    ram: Ram = None,
    ns_per_insn: NsPerInsn = 1,
    checkpoint_every: CheckpointEvery = DEFAULT_CHECKPOINT_EVERY,
    mem_digest_every: MemDigestEvery = DEFAULT_MEM_DIGEST_EVERY,
    max_insns: MaxInsns = None,
    timeout: Timeout = None,
    no_stdin: NoStdin = False,
    quiet: Quiet = False,
    disk: Disk = None,
    chaos: Chaos = None,
    log_write_data: LogWriteData = False,
    net: Net = None,
    root: Root = None,
    env: Env = None,
    strict_syscalls: StrictSyscalls = False,
    slice_insns: Slice = 2_000_000,
) -> None:
    """Run a guest or a static Linux program live and record every nondeterministic event into an Arrow trace.

    The trace is written to FILE.part and renamed onto FILE when the run ends (exit, fault, limit,
    timeout, Ctrl-C or SIGTERM); after a SIGKILL, FILE.part is a readable trace cut short. FILE may not
    be the guest, the disk image or a pcap capture.
    Options go before PROGRAM; everything after it is the program's own arguments.
    Example: rrtool record timers -o timers.arrow
    Example: rrtool record -o ls.arrow --root . /bin/busybox ls -l /
    """
    from rrtool.machine.config import exit_status
    from rrtool.recorder.session import record as do_record

    with user_errors():
        path = resolve_guest(image)
        linux = linux_setup(
            path, image, args, root, env, no_stdin, strict_syscalls, log_write_data, quiet, slice_insns, chaos
        )
        config, limits = machine_setup(
            platform_ram(ram, path), ns_per_insn, checkpoint_every, mem_digest_every, max_insns, timeout
        )
        host = host_setup(no_stdin, disk, chaos, log_write_data, net)
        progress = Progress() if err.is_terminal and not quiet else None
        sink = console_writer(quiet)
        result = do_record(
            path,
            output,
            config=config,
            limits=limits,
            host=host,
            linux=linux,
            console_sink=progress.wrap(sink) if progress is not None else sink,
            on_checkpoint=progress,
        )
        if progress is not None:
            progress.done()
    report_end(result.run)
    if result.summary:
        err.print(f"rrtool: {result.summary}", markup=False, soft_wrap=True)
    err.print(
        f"recorded {result.run.icount:,} instructions, {result.run.checkpoints:,} checkpoints, "
        f"{result.events:,} events, {result.bytes:,} bytes to {output} in {result.wall_s:.2f}s",
        markup=False,
    )
    raise typer.Exit(exit_status(result.run))


class Progress:
    """A one-line status (icount, virtual time, events, bytes on disk) on stderr, at most 4 times a second.

    Guest output goes through `wrap`, which lifts the status line out of the way and puts it back after
    each complete line, so the two never mix on the terminal.
    """

    def __init__(self) -> None:
        self._last = 0.0
        self._line = ""

    def __call__(self, cp: Any, port: Any) -> None:
        now = time.monotonic()
        if now - self._last < 0.25:
            return
        self._last = now
        self._line = (
            f"\r[rrtool] icount {cp.icount:,}  vclock {cp.vclock_ns / 1e9:.3f}s  "
            f"events {port.events:,}  bytes {port.writer.bytes_written:,}\x1b[K"
        )
        sys.stderr.write(self._line)
        sys.stderr.flush()

    def wrap(self, sink: Callable[[bytes], None] | None) -> Callable[[bytes], None] | None:
        if sink is None:
            return None
        inner = sink

        def write(data: bytes) -> None:
            if self._line:
                sys.stderr.write("\r\x1b[K")
                sys.stderr.flush()
            inner(data)
            if self._line and data.endswith(b"\n"):
                sys.stderr.write(self._line)
                sys.stderr.flush()

        return write

    def done(self) -> None:
        if self._line:
            sys.stderr.write("\r\x1b[K")
