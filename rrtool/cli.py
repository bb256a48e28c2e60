"""The `rrtool` command line: thin wrappers, one library call per command.

Exit codes follow `diff`/`cmp` where they fit: replay 0 verified, 1 diverged,
2 error. `run` and `record` exit with the guest's own code, 3 on a guest
fault or hang, 4 on --max-insns or --timeout.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from rrtool import __version__
from rrtool.analysis.cli_commands import diff_command, export_app, sql_command

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Deterministic record/replay for an emulated x86-64 machine; the trace is an Arrow dataset.",
)
guest_app = typer.Typer(no_args_is_help=True, help="Build and list guest programs (the guest SDK).")


err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)


def fail(message: str, code: int = 2) -> NoReturn:
    err.print(f"[bold red]rrtool: error:[/] {message}", markup=True, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn every expected failure into one line and exit code 2 (never a traceback)."""
    from rrtool.board.disk import DiskError
    from rrtool.board.net.spec import NetError
    from rrtool.guest.build import GuestBuildError
    from rrtool.machine.config import MachineError
    from rrtool.machine.icount import CounterError
    from rrtool.machine.image import ImageError
    from rrtool.player.session import ReplayError
    from rrtool.schemas.tracefile import TraceError

    try:
        yield
    except (
        GuestBuildError,
        CounterError,
        DiskError,
        ImageError,
        MachineError,
        NetError,
        ReplayError,
        TraceError,
    ) as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "))


def parse_size(text: str) -> int:
    """'32M', '64MiB', '1G' or plain bytes."""
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(t[-1:], 1)
    try:
        return int(t[:-1] if mult > 1 else t) * mult
    except ValueError:
        fail(f"bad size {text!r} (use e.g. 32M)")


def resolve_guest(image: str) -> Path:
    """A path to an ELF, or the name of a bundled example (built on demand)."""
    from rrtool.guest.build import ensure_example, list_examples

    path = Path(image)
    if path.exists() or "/" in image or image.endswith(".elf"):
        return path
    if image in list_examples():
        return ensure_example(image)
    return path


def console_writer(quiet: bool) -> Callable[[bytes], None] | None:
    if quiet:
        return None

    def write(data: bytes) -> None:
        sys.stdout.write(data.decode("utf-8", "replace"))
        sys.stdout.flush()

    return write


def version_callback(value: bool) -> None:
    if value:
        out.print(f"rrtool {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool, typer.Option("--version", callback=version_callback, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """rrtool: record a guest run, replay it bit for bit, and query the trace."""


# ---------------------------------------------------------------------- options
Ram = Annotated[str, typer.Option("--ram", help="Guest RAM size, e.g. 32M.")]
NsPerInsn = Annotated[int, typer.Option("--ns-per-insn", min=1, help="Virtual ns per guest instruction.")]
CheckpointEvery = Annotated[
    int, typer.Option("--checkpoint-every", min=1000, help="Checkpoint at least every N instructions while busy.")
]
MemDigestEvery = Annotated[
    int, typer.Option("--mem-digest-every", min=1, help="Digest guest RAM at the first checkpoint after every N insns.")
]
MaxInsns = Annotated[int | None, typer.Option("--max-insns", min=1, help="Stop after N guest instructions.")]
Timeout = Annotated[float | None, typer.Option("--timeout", min=0.0, help="Stop after S seconds of wall time.")]
NoStdin = Annotated[bool, typer.Option("--no-stdin", help="Do not feed stdin to the guest console.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Do not show the guest's console output.")]
Disk = Annotated[
    str | None,
    typer.Option(
        "--disk",
        help="Raw disk image for the block device: PATH[,writeback]. Without writeback the "
        "image is never modified (writes go to a copy-on-write overlay).",
    ),
]
Chaos = Annotated[
    int | None, typer.Option("--chaos", help="Seed for random delays of disk completions (rare orders show up).")
]
LogWriteData = Annotated[
    bool, typer.Option("--log-write-data", help="Also store the data of disk writes in the trace (not just a digest).")
]


Net = Annotated[
    list[str] | None,
    typer.Option(
        "--net",
        help="A network card (repeat for more): user[,hostfwd=udp:127.0.0.1:H-:G][,ip=A.B.C.D], "
        "tap[,ifname=rr0], socket,listen=127.0.0.1:P,peer=127.0.0.1:Q, or pcap,file=F.pcap.",
    ),
]


def host_setup(no_stdin: bool, disk: str | None, chaos: int | None, log_write_data: bool, net: list[str] | None) -> Any:
    from rrtool.board.disk import DiskSpec
    from rrtool.board.host import HostSetup
    from rrtool.board.net.spec import NetSpec

    return HostSetup(
        stdin=not no_stdin,
        disk=None if disk is None else DiskSpec.parse(disk),
        chaos=chaos,
        log_write_data=log_write_data,
        nets=tuple(NetSpec.parse(text, i) for i, text in enumerate(net or [])),
    )


def _machine_setup(
    ram: str,
    ns_per_insn: int,
    checkpoint_every: int,
    mem_digest_every: int,
    max_insns: int | None,
    timeout: float | None,
) -> tuple[Any, Any]:
    from rrtool.machine.config import Limits, MachineConfig

    config = MachineConfig(
        ram_size=parse_size(ram),
        ns_per_insn=ns_per_insn,
        checkpoint_every=checkpoint_every,
        mem_digest_every=mem_digest_every,
    )
    return config, Limits(max_insns=max_insns, timeout_s=timeout)


def _report_end(run: Any) -> None:
    if run.reason != "exit":
        err.print(f"rrtool: {run.reason}: {run.message}", markup=False, soft_wrap=True)


@app.command()
def run(
    image: Annotated[str, typer.Argument(help="Guest ELF, or the name of a bundled example.")],
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
    from rrtool.recorder.session import stop_on_signals

    with user_errors():
        config, limits = _machine_setup(
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
    _report_end(result)
    raise typer.Exit(exit_status(result))


@app.command()
def record(
    image: Annotated[str, typer.Argument(help="Guest ELF, or the name of a bundled example.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Trace file to write (.arrow).")],
    ram: Ram = "32M",
    ns_per_insn: NsPerInsn = 1,
    checkpoint_every: CheckpointEvery = 1_000_000,
    mem_digest_every: MemDigestEvery = 200_000_000,
    max_insns: MaxInsns = None,
    timeout: Timeout = None,
    no_stdin: NoStdin = False,
    quiet: Quiet = False,
    disk: Disk = None,
    chaos: Chaos = None,
    log_write_data: LogWriteData = False,
    net: Net = None,
) -> None:
    """Run a guest live and record every nondeterministic event into an Arrow trace.

    Example: rrtool record timers -o timers.arrow
    """
    from rrtool.machine.config import exit_status
    from rrtool.recorder.session import record as do_record

    with user_errors():
        config, limits = _machine_setup(ram, ns_per_insn, checkpoint_every, mem_digest_every, max_insns, timeout)
        path = resolve_guest(image)
        host = host_setup(no_stdin, disk, chaos, log_write_data, net)
        progress = _Progress() if err.is_terminal and not quiet else None
        sink = console_writer(quiet)
        result = do_record(
            path,
            output,
            config=config,
            limits=limits,
            host=host,
            console_sink=progress.wrap(sink) if progress is not None else sink,
            on_checkpoint=progress,
        )
        if progress is not None:
            progress.done()
    _report_end(result.run)
    err.print(
        f"recorded {result.run.icount:,} instructions, {result.run.checkpoints:,} checkpoints, "
        f"{result.events:,} events, {result.bytes:,} bytes to {output} in {result.wall_s:.2f}s",
        markup=False,
    )
    raise typer.Exit(exit_status(result.run))


class _Progress:
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


@app.command()
def replay(
    trace: Annotated[Path, typer.Argument(help="Trace file written by `rrtool record`.")],
    image: Annotated[Path | None, typer.Option("--image", help="Guest ELF (default: the recorded path).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replay even if the image hash differs.")] = False,
    quiet: Quiet = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Replay a trace with every backend off, verifying every checkpoint.

    Exit 0 when verified, 1 on divergence (with a report), 2 on error.
    Example: rrtool replay timers.arrow
    """
    from rrtool.player.session import replay as do_replay

    with user_errors():
        result = do_replay(trace, image=image, force=force, console_sink=console_writer(quiet or as_json))
    div = result.divergence
    if as_json:
        out.print_json(
            json.dumps(
                {
                    "verified": result.verified,
                    "complete": result.complete,
                    "checkpoints": result.checkpoints,
                    "events": result.events,
                    "icount": result.icount,
                    "wall_s": round(result.wall_s, 4),
                    "divergence": None if div is None else div.to_dict(),
                }
            )
        )
    elif div is not None:
        err.print(div.report(), markup=False)
    else:
        note = "" if result.complete else " (the recording was cut short: verified up to its last complete batch)"
        err.print(
            f"replay verified: {result.checkpoints:,} checkpoints, {result.events:,} events, "
            f"icount {result.icount:,} in {result.wall_s:.2f}s{note}",
            markup=False,
        )
    raise typer.Exit(0 if div is None else 1)


@app.command()
def info(
    trace: Annotated[Path, typer.Argument(help="Trace file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Show a trace's metadata, event counts per kind, checkpoints and whether it is complete.

    Example: rrtool info timers.arrow --json
    """
    from rrtool.analysis.info import trace_info

    with user_errors():
        data = trace_info(trace)
    if as_json:
        out.print_json(json.dumps(data))
        return
    table = Table(title=str(trace), show_header=False)
    for key in (
        "complete",
        "end",
        "size_bytes",
        "batches",
        "events",
        "checkpoints",
        "icount_range",
        "vclock_end_ns",
        "image",
        "image_sha256",
        "start_time",
        "host",
        "tool_version",
        "format_version",
    ):
        table.add_row(key, str(data[key]))
    table.add_row("machine", json.dumps(data["machine"]))
    for kind, n in data["counts"].items():
        table.add_row(f"events: {kind}", f"{n:,}")
    out.print(table)


@app.command()
def demo(
    workdir: Annotated[Path, typer.Option("--dir", help="Where to write the disk image and the trace.")] = Path(
        "rrtool-demo"
    ),
    quiet: Quiet = False,
) -> None:
    """Record a scripted client session with the kvstore guest, replay it, and show the verified summary.

    The guest keeps its data on the block device and is restarted mid-session; the client talks UDP through
    user networking on 127.0.0.1. Example: rrtool demo
    """
    from rrtool.analysis.info import trace_info
    from rrtool.demo import run_demo

    with user_errors():
        result = run_demo(workdir, console_sink=console_writer(quiet), say=lambda m: err.print(m, markup=False))
        data = trace_info(result.trace)
    rec, rep = result.recording, result.replay
    talk = Table(title="client session (UDP through user networking)")
    talk.add_column("request")
    talk.add_column("reply")
    for request, reply in result.transcript:
        talk.add_row(request, reply)
    out.print(talk)
    table = Table(title="record vs replay")
    table.add_column("")
    table.add_column("record", justify="right")
    table.add_column("replay", justify="right")
    table.add_row("wall time", f"{rec.wall_s:.3f}s", f"{rep.wall_s:.3f}s")
    table.add_row("virtual time", f"{rec.run.vclock_ns / 1e9:.3f}s", "")
    table.add_row("instructions", f"{rec.run.icount:,}", f"{rep.icount:,}")
    table.add_row("checkpoints", f"{rec.run.checkpoints:,}", f"{rep.checkpoints:,} verified")
    table.add_row("events", f"{rec.events:,}", f"{rep.events:,}")
    table.add_row("trace size", f"{rec.bytes:,} bytes", "")
    for kind, n in data["counts"].items():
        table.add_row(f"  {kind}", f"{n:,}", "")
    out.print(table)
    if rep.divergence is not None:
        err.print(rep.divergence.report(), markup=False)
        raise typer.Exit(1)
    if not rec.run.ok:
        fail(f"the guest ended with {rec.run.reason}: {rec.run.message}", 1)
    out.print(
        f"[bold green]replay verified[/]: {rep.checkpoints} checkpoints match, without the disk or the network. "
        f"Look inside: rrtool info {result.trace}"
    )


@guest_app.command("build")
def guest_build(
    sources: Annotated[list[Path], typer.Argument(help="C or assembly sources.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="ELF file to write.")],
) -> None:
    """Compile a guest program against the SDK with the host's gcc.

    Example: rrtool guest build hello.c -o hello.elf
    """
    from rrtool.guest.build import build_guest

    with user_errors():
        path = build_guest(sources, output)
    err.print(f"built {path}", markup=False)


@guest_app.command("list")
def guest_list() -> None:
    """List the bundled example guests (usable by name wherever an IMAGE is expected).

    Example: rrtool guest list
    """
    from rrtool.guest.build import example_source, list_examples

    for name in list_examples():
        first = example_source(name).read_text().splitlines()[0].strip("/* ").rstrip("*/ ")
        out.print(f"{name:10} {first}", markup=False)


# Registered last so `rrtool --help` lists them after the record/replay commands.
app.command("sql")(sql_command)
app.command("diff")(diff_command)
app.add_typer(export_app, name="export")
app.add_typer(guest_app, name="guest")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
