"""`rrtool run`: a guest or a Linux program live, without recording."""

from __future__ import annotations

import typer

from rrtool.cli.console import console_writer, err, report_end, user_errors
from rrtool.cli.options import (
    Chaos,
    Disk,
    Env,
    Image,
    MaxInsns,
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


def run(
    image: Image,
    args: ProgramArgs = None,
    ram: Ram = None,
    ns_per_insn: NsPerInsn = 1,
    max_insns: MaxInsns = None,
    timeout: Timeout = None,
    no_stdin: NoStdin = False,
    quiet: Quiet = False,
    disk: Disk = None,
    chaos: Chaos = None,
    net: Net = None,
    root: Root = None,
    env: Env = None,
    strict_syscalls: StrictSyscalls = False,
    slice_insns: Slice = 2_000_000,
) -> None:
    """Run a guest or a static Linux program live, without recording.

    Options go before PROGRAM; everything after it is the program's own arguments.
    Example: rrtool run timers --max-insns 100000000
    Example: rrtool run --root . /bin/busybox ls -l /
    """
    from rrtool.machine.config import DEFAULT_CHECKPOINT_EVERY, DEFAULT_MEM_DIGEST_EVERY, exit_status
    from rrtool.machine.port import EventPort
    from rrtool.machine.signals import stop_on_signals
    from rrtool.recorder.live import start

    with user_errors():
        path = resolve_guest(image)
        linux = linux_setup(path, image, args, root, env, no_stdin, strict_syscalls, False, quiet, slice_insns, chaos)
        config, limits = machine_setup(
            platform_ram(ram, path), ns_per_insn, DEFAULT_CHECKPOINT_EVERY, DEFAULT_MEM_DIGEST_EVERY, max_insns,
            timeout,
        )  # fmt: skip
        port = EventPort()
        started = start(
            path,
            config,
            port,
            host=host_setup(no_stdin, disk, chaos, False, net),
            linux=linux,
            limits=limits,
            console_sink=console_writer(quiet),
        )
        try:
            with stop_on_signals(port.request_stop):
                result = started.live.machine.run()
        finally:
            port.close()
            started.close()
        summary = started.summary()
    report_end(result)
    if summary:
        err.print(f"rrtool: {summary}", markup=False, soft_wrap=True)
    raise typer.Exit(exit_status(result))
