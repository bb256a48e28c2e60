"""The options and arguments more than one command takes, and turning them into library objects.

Each alias is an `Annotated` type, so a command declares `ram: Ram = "32M"`
and every command spells, checks and documents the option the same way.
`machine_setup` and `host_setup` are the one place the CLI builds a
`MachineConfig`/`Limits` and a `HostSetup`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from rrtool.cli.console import fail

# ------------------------------------------------------------------ arguments
Image = Annotated[str, typer.Argument(help="Guest ELF, or the name of a bundled example.")]
TraceArg = Annotated[Path, typer.Argument(help="Trace file.")]

# -------------------------------------------------------------------- machine
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

# ----------------------------------------------------------------------- host
NoStdin = Annotated[bool, typer.Option("--no-stdin", help="Do not feed stdin to the guest console.")]
NoProgress = Annotated[bool, typer.Option("--quiet", "-q", help="Show no progress bar.")]
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

# ------------------------------------------------------------------- analysis
Json = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
Checkpoints = Annotated[
    str | None,
    typer.Option(
        "--checkpoints",
        help="Only checkpoints A:B (inclusive; A: and :B leave an end open). Reads only the batches that hold them.",
    ),
]
Icounts = Annotated[str | None, typer.Option("--icounts", help="Only events with icount in A:B (inclusive).")]
Output = Annotated[Path, typer.Option("--output", "-o", help="File to write.")]


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


def machine_setup(
    ram: str,
    ns_per_insn: int,
    checkpoint_every: int,
    mem_digest_every: int,
    max_insns: int | None,
    timeout: float | None,
) -> tuple[Any, Any]:
    """The `MachineConfig` and `Limits` of `run` and `record`."""
    from rrtool.machine.config import Limits, MachineConfig

    config = MachineConfig(
        ram_size=parse_size(ram),
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
