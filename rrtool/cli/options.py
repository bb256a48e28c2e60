"""The options and arguments more than one command takes, their checks, and turning them into library objects.

Each alias is an `Annotated` type, so a command declares `ram: Ram = "32M"`
and every command spells, checks and documents the option the same way.
Every value is checked when the command line is parsed, against the range
the machine, the trace's int64 columns and the host can take, so a bad one is
a usage error (one line, exit 2) before anything runs, never a traceback from
deep inside (an `OverflowError` from a socket, a thread that cannot wait
`inf` seconds). `machine_setup` and `host_setup` are the one place the CLI
builds a `MachineConfig`/`Limits` and a `HostSetup`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import typer

# ------------------------------------------------------------------- bounds
#: Instruction counts (limits, cadences, checkpoint ranges) fit the trace's int64 columns with room to add.
MAX_COUNT = 1 << 62
#: One millisecond of virtual time per instruction: vclock_ns stays in int64 for 9e12 instructions.
MAX_NS_PER_INSN = 1_000_000
#: Guest RAM: the machine's own minimum, and a maximum a host can map (guests use a few tens of MiB).
MIN_RAM, MAX_RAM = 2 << 20, 4 << 30
#: Wall-clock timeout: a year is plenty, and far below what a thread can wait (threading.TIMEOUT_MAX).
MAX_TIMEOUT_S = 365 * 24 * 3600.0
#: Memory for the time-travel snapshots of `replay --gdb`: the least that keeps more than the start, and a cap.
MIN_SNAPSHOT_MEMORY, MAX_SNAPSHOT_MEMORY = 1 << 20, 1 << 40
#: Rows, differences or windows a person asks to see: generous, but ints that every layer can hold.
MAX_SHOWN = 1_000_000_000


# --------------------------------------------------------------- checks
def parse_size(text: str) -> int:
    """'32M', '64MiB', '1G' or plain bytes; raises ValueError with the reason."""
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(t[-1:], 1)
    digits = t[:-1] if mult > 1 else t
    if not (digits.isascii() and digits.isdigit()):  # isdigit alone takes '²', which int() refuses
        raise ValueError(f"bad size {text!r} (use e.g. 32M)")
    return int(digits) * mult


def check_ram(value: str | None) -> str | None:
    if value is None:
        return None  # the platform's default
    try:
        size = parse_size(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if not MIN_RAM <= size <= MAX_RAM:
        raise typer.BadParameter(f"{value!r}: guest RAM must be between 2M and 4G")
    if size % 0x1000:
        raise typer.BadParameter(f"{value!r}: guest RAM must be a multiple of 4K")
    return value


def check_timeout(value: float | None) -> float | None:
    """Seconds: finite and positive (a thread cannot wait `inf` or `nan`; 0 would stop before the start)."""
    if value is not None and not (math.isfinite(value) and 0 < value <= MAX_TIMEOUT_S):
        raise typer.BadParameter(f"{value}: give seconds, more than 0 and at most {MAX_TIMEOUT_S:.0f}")
    return value


def check_span(value: str | None) -> str | None:
    """`A:B`, `A:`, `:B` or `A`, checked at parse time by the same parser the analysis uses (`Span.parse`)."""
    if value is None:
        return None
    from rrtool.analysis.errors import AnalysisError
    from rrtool.analysis.window import Span  # only commands that read traces take ranges: polars is theirs

    try:
        Span.parse(value)
    except AnalysisError as exc:
        raise typer.BadParameter(str(exc).removeprefix("bad range ")) from None
    return value


def check_disk(value: str | None) -> str | None:
    """`PATH[,writeback]`: known options, and PATH a regular file (a fifo would block, a device never end)."""
    if value is None:
        return None
    from rrtool.board.disk import DiskError, DiskSpec

    try:
        if not value.partition(",")[0].strip():
            raise DiskError("no disk image path before the options")
        DiskSpec.parse(value).check()
    except DiskError as exc:
        raise typer.BadParameter(str(exc)) from None
    return value


def _check_port(port: int, what: str, text: str, low: int = 1) -> None:
    if not low <= port <= 65535:
        raise typer.BadParameter(f"{text!r}: {what} port {port} is out of range ({low}-65535)")


def check_nets(values: list[str] | None) -> list[str] | None:
    """Each `--net` parsed now, with its ports in range and a pcap file a regular file."""
    if not values:
        return values
    from rrtool._paths import PathError, check_input_file
    from rrtool.board.net.spec import NetError, NetSpec, parse_endpoint

    try:
        for index, text in enumerate(values):
            spec = NetSpec.parse(text, index)
            for fwd in spec.hostfwd:
                _check_port(fwd.host_port, "host", text)
                _check_port(fwd.guest_port, "guest", text)
            for key in ("listen", "peer"):
                if key in spec.options:
                    _check_port(parse_endpoint(spec.options[key], f"--net socket {key}")[1], key, text)
            if spec.kind == "pcap" and "file" in spec.options:
                check_input_file(Path(spec.options["file"]), "pcap capture")
    except (NetError, PathError) as exc:
        raise typer.BadParameter(str(exc)) from None
    return values


def check_snapshot_memory(value: str) -> str:
    """A size, e.g. 256M: at least 1M (the snapshot at icount 0 alone is a few pages) and at most 1024G."""
    try:
        size = parse_size(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if not MIN_SNAPSHOT_MEMORY <= size <= MAX_SNAPSHOT_MEMORY:
        raise typer.BadParameter(f"{value!r}: the snapshot budget must be between 1M and 1024G")
    return value


def check_gdb(value: str | None) -> str | None:
    """`HOST:PORT` or `PORT`, HOST a loopback address: checked now, so a bad one never starts a replay."""
    if value is None:
        return None
    from rrtool.player.gdbserver import GdbError, parse_address

    try:
        parse_address(value)
    except GdbError as exc:
        raise typer.BadParameter(str(exc).removeprefix(f"--gdb {value!r}: ")) from None
    return value


def check_time_base(value: str) -> str:
    if value not in ("start", "zero"):
        raise typer.BadParameter(f"{value!r}: use start or zero")
    return value


# ------------------------------------------------------------------ arguments
Image = Annotated[
    str,
    typer.Argument(
        metavar="PROGRAM",
        help="An SDK guest (ELF or the name of a bundled example) or a static Linux x86-64 executable.",
    ),
]
ProgramArgs = Annotated[
    list[str] | None, typer.Argument(metavar="ARGS", help="Arguments for a Linux program (after PROGRAM).")
]
Root = Annotated[
    str | None,
    typer.Option(
        "--root",
        metavar="DIR[,writeback]",
        help="Linux: the program's / (default: the current directory). Writes go to a private copy-on-write "
        "overlay unless ,writeback is given.",
    ),
]
Env = Annotated[
    list[str] | None,
    typer.Option("--env", metavar="KEY=VALUE", help="Linux: set an environment variable (repeatable)."),
]
StrictSyscalls = Annotated[
    bool, typer.Option("--strict-syscalls", help="Linux: an unsupported system call is a fault, not ENOSYS.")
]
Slice = Annotated[
    int,
    typer.Option(
        "--slice", metavar="N", min=1, max=1 << 30,
        help="Linux: a task runs at most N instructions before another ready task gets the CPU.",
    ),
]  # fmt: skip
TraceArg = Annotated[Path, typer.Argument(metavar="TRACE", help="Trace file.")]

# -------------------------------------------------------------------- machine
Ram = Annotated[
    str | None,
    typer.Option(
        "--ram",
        metavar="SIZE",
        callback=check_ram,
        help="Guest RAM size, 2M to 4G, e.g. 32M (default: 32M for SDK guests, 512M for Linux programs).",
    ),
]
NsPerInsn = Annotated[
    int,
    typer.Option("--ns-per-insn", metavar="NS", min=1, max=MAX_NS_PER_INSN, help="Virtual ns per guest instruction."),
]
CheckpointEvery = Annotated[
    int,
    typer.Option(
        "--checkpoint-every", metavar="N", min=1000, max=MAX_COUNT,
        help="Checkpoint at least every N instructions while busy.",
    ),
]  # fmt: skip
MemDigestEvery = Annotated[
    int,
    typer.Option(
        "--mem-digest-every", metavar="N", min=1, max=MAX_COUNT,
        help="Digest guest RAM at the first checkpoint after every N insns.",
    ),
]  # fmt: skip
MaxInsns = Annotated[
    int | None,
    typer.Option("--max-insns", metavar="N", min=1, max=MAX_COUNT, help="Stop after N guest instructions."),
]
Timeout = Annotated[
    float | None,
    typer.Option("--timeout", metavar="SECONDS", callback=check_timeout, help="Stop after S seconds of wall time."),
]

# ----------------------------------------------------------------------- host
NoStdin = Annotated[bool, typer.Option("--no-stdin", help="Do not feed stdin to the guest console.")]
NoProgress = Annotated[bool, typer.Option("--quiet", "-q", help="Show no progress bar.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Do not show the guest's console output.")]
Disk = Annotated[
    str | None,
    typer.Option(
        "--disk",
        metavar="PATH[,writeback]",
        callback=check_disk,
        help="Raw disk image for the block device (a regular file). Without writeback the "
        "image is never modified (writes go to a copy-on-write overlay).",
    ),
]
Chaos = Annotated[
    int | None,
    typer.Option(
        "--chaos", metavar="SEED", min=0, max=(1 << 64) - 1,
        help="Seed for chaos mode: random delays of disk completions on a board; on Linux, random time slices "
        "and a random choice of the next task (rare interleavings show up, and the recording replays them).",
    ),
]  # fmt: skip
LogWriteData = Annotated[
    bool, typer.Option("--log-write-data", help="Also store the data of disk writes in the trace (not just a digest).")
]
Net = Annotated[
    list[str] | None,
    typer.Option(
        "--net",
        metavar="SPEC",
        callback=check_nets,
        help="A network card (repeat for more): user[,hostfwd=udp:127.0.0.1:H-:G][,ip=A.B.C.D], "
        "tap[,ifname=rr0], socket,listen=127.0.0.1:P,peer=127.0.0.1:Q, or pcap,file=F.pcap.",
    ),
]

# ---------------------------------------------------------------- time travel
Gdb = Annotated[
    str | None,
    typer.Option(
        "--gdb",
        metavar="ADDR",
        callback=check_gdb,
        help="Serve gdb's remote protocol on ADDR (127.0.0.1:PORT, or PORT; loopback only, port 0 picks one) "
        "instead of replaying straight through: gdb can step, continue and watch either way in time.",
    ),
]
SnapshotMemory = Annotated[
    str,
    typer.Option(
        "--snapshot-memory",
        metavar="SIZE",
        callback=check_snapshot_memory,
        help="With --gdb: memory for the snapshots that going back in time restores, e.g. 256M.",
    ),
]

# ------------------------------------------------------------------- analysis
Json = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
Checkpoints = Annotated[
    str | None,
    typer.Option(
        "--checkpoints",
        metavar="A:B",
        callback=check_span,
        help="Only checkpoints A:B (inclusive; A: and :B leave an end open). Reads only the batches that hold them.",
    ),
]
Icounts = Annotated[
    str | None,
    typer.Option("--icounts", metavar="A:B", callback=check_span, help="Only events with icount in A:B (inclusive)."),
]
Output = Annotated[Path, typer.Option("--output", "-o", metavar="FILE", help="File to write.")]


def resolve_guest(image: str) -> Path:
    """A path to an ELF, or the name of a bundled example (built on demand); the path must be a regular file."""
    from rrtool._paths import PathError, check_input_file
    from rrtool.guest.build import ensure_example, list_examples

    if not image.strip():
        raise PathError("empty guest image name")
    path = Path(image)
    if not path.exists() and "/" not in image and not image.endswith(".elf") and image in list_examples():
        return ensure_example(image)
    check_input_file(path, "guest image")
    return path


def machine_setup(
    ram: str | None,
    ns_per_insn: int,
    checkpoint_every: int,
    mem_digest_every: int,
    max_insns: int | None,
    timeout: float | None,
) -> tuple[Any, Any]:
    """The `MachineConfig` and `Limits` of `run` and `record` (the values were checked at parse time)."""
    from rrtool.machine.config import Limits, MachineConfig

    config = MachineConfig(
        ram_size=parse_size(ram or "32M"),
        ns_per_insn=ns_per_insn,
        checkpoint_every=checkpoint_every,
        mem_digest_every=mem_digest_every,
    )
    return config, Limits(max_insns=max_insns, timeout_s=timeout)


def host_setup(no_stdin: bool, disk: str | None, chaos: int | None, log_write_data: bool, net: list[str] | None) -> Any:
    """The `HostSetup` (stdin, disk, network backends) of `run` and `record`."""
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


def is_linux(path: Path) -> bool:
    from rrtool.machine.image import PLATFORM_LINUX, platform_of

    return platform_of(path) == PLATFORM_LINUX


def platform_ram(ram: str | None, path: Path) -> str | None:
    """The --ram value, or the default of the program's platform."""
    if ram is not None:
        return ram
    from rrtool.machine.config import DEFAULT_LINUX_RAM

    return f"{DEFAULT_LINUX_RAM >> 20}M" if is_linux(path) else None


def linux_setup(
    path: Path, program: str, args: list[str] | None, root: str | None, env: list[str] | None, no_stdin: bool,
    strict: bool, log_write_data: bool, quiet: bool, slice_insns: int = 2_000_000, chaos: int | None = None,
) -> Any:  # fmt: skip
    """The `LinuxSetup` of `run` and `record`, or None for an SDK guest (which takes no ARGS)."""
    from rrtool._paths import PathError
    from rrtool.cli.console import stderr_writer
    from rrtool.linux.config import merge_env
    from rrtool.linux.host import LinuxSetup

    if not is_linux(path):
        if args:
            raise PathError(f"{path} is an SDK guest: it takes no arguments (got {' '.join(args)})")
        if root or env:
            raise PathError(f"{path} is an SDK guest: --root and --env are for Linux programs")
        return None
    root_dir, writeback = Path.cwd(), False
    if root is not None:
        text, sep, flag = root.rpartition(",")
        if sep and flag == "writeback":
            root_dir, writeback = Path(text), True
        else:
            root_dir = Path(root)
        if not root_dir.is_dir():
            raise PathError(f"--root {root_dir}: not a directory")
    try:
        merge_env(env or [])
    except Exception as exc:
        raise PathError(str(exc)) from None
    return LinuxSetup(
        args=tuple(args or ()),
        argv0=program,
        root=root_dir,
        writeback=writeback,
        env=tuple(env or ()),
        stdin=not no_stdin,
        strict_syscalls=strict,
        log_write_data=log_write_data,
        slice_insns=slice_insns,
        chaos=chaos,
        stderr_sink=stderr_writer(quiet),
    )
