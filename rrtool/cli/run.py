"""`rrtool run`: a guest live, without recording."""

from __future__ import annotations

import typer

from rrtool.cli.console import console_writer, report_end, user_errors
from rrtool.cli.options import (
    Chaos,
    Disk,
    Image,
    MaxInsns,
    Net,
    NoStdin,
    NsPerInsn,
    Quiet,
    Ram,
    Timeout,
    host_setup,
    machine_setup,
    resolve_guest,
)


def run(
    image: Image,
    ram: Ram = "32M",
    ns_per_insn: NsPerInsn = 1,
    max_insns: MaxInsns = None,
    timeout: Timeout = None,
    no_stdin: NoStdin = False,
    quiet: Quiet = False,
    disk: Disk = None,
    chaos: Chaos = None,
    net: Net = None,
) -> None:
    """Run a guest live, without recording.

    Example: rrtool run timers --max-insns 100000000
    """
    from rrtool.board.host import live_machine
    from rrtool.machine.config import DEFAULT_CHECKPOINT_EVERY, DEFAULT_MEM_DIGEST_EVERY, exit_status
    from rrtool.machine.port import EventPort
    from rrtool.machine.signals import stop_on_signals

    with user_errors():
        config, limits = machine_setup(
            ram, ns_per_insn, DEFAULT_CHECKPOINT_EVERY, DEFAULT_MEM_DIGEST_EVERY, max_insns, timeout
        )
        path = resolve_guest(image)
        port = EventPort()
        live = live_machine(
            path,
            config,
            port,
            host_setup(no_stdin, disk, chaos, False, net),
            limits=limits,
            console_sink=console_writer(quiet),
        )
        with stop_on_signals(port.request_stop):
            result = live.machine.run()
        port.close()
    report_end(result)
    raise typer.Exit(exit_status(result))
