"""`rrtool export {pcap,parquet,perfetto}`: a trace as pcapng, a Parquet dataset or Perfetto JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rrtool.cli.console import err, user_errors
from rrtool.cli.core import Command, Group
from rrtool.cli.options import MAX_COUNT, NoProgress, Output, TraceArg, check_time_base
from rrtool.cli.progress import Bar

export_app = typer.Typer(
    cls=Group, rich_markup_mode=None, no_args_is_help=True, help="Export a trace as pcapng, Parquet or Perfetto JSON."
)


@export_app.command("pcap", cls=Command)
def export_pcap(
    trace: TraceArg,
    output: Output,
    time_base: Annotated[
        str,
        typer.Option(
            "--time-base",
            metavar="start|zero",
            callback=check_time_base,
            help="start: recording start + virtual time; zero: virtual time from 0.",
        ),
    ] = "start",
    quiet: NoProgress = False,
) -> None:
    """Frames received (net_rx) and sent (net_tx) as pcapng, one interface per card, virtual-time timestamps.

    Example: rrtool export pcap t.arrow -o t.pcapng && tshark -r t.pcapng
    """
    from rrtool._paths import check_input_file
    from rrtool.analysis.export.pcap import export_pcap as do_export

    with user_errors(), Bar("export pcap", enabled=not quiet, unit="batches") as bar:
        check_input_file(trace, "trace file")
        stats = do_export(trace, output, time_base=time_base, progress=bar.progress)
    err.print(
        f"wrote {stats.packets:,} frames ({stats.rx:,} received, {stats.tx:,} sent) on "
        f"{len(stats.interfaces)} interface(s) to {output}",
        markup=False,
        soft_wrap=False,
    )


@export_app.command("parquet", cls=Command)
def export_parquet(
    trace: TraceArg,
    output: Annotated[
        Path, typer.Option("--output", "-o", metavar="DIR", help="Directory to create (missing or empty).")
    ],
    checkpoints_per_partition: Annotated[
        int,
        typer.Option(
            "--checkpoints-per-partition",
            metavar="N",
            min=1,
            max=MAX_COUNT,
            help="Checkpoints per partition directory.",
        ),
    ] = 10_000,
    quiet: NoProgress = False,
) -> None:
    """The events table as a hive-partitioned Parquet dataset (checkpoint_start=K/part-0.parquet).

    The dataset is built in a temporary directory beside DIR and renamed onto DIR when complete.

    Example: rrtool export parquet t.arrow -o t.parquet/
    """
    from rrtool._paths import check_input_file
    from rrtool.analysis.export.parquet import export_parquet as do_export

    with user_errors(), Bar("export parquet", enabled=not quiet, unit="batches") as bar:
        check_input_file(trace, "trace file")
        stats = do_export(trace, output, checkpoints_per_partition=checkpoints_per_partition, progress=bar.progress)
    err.print(f"wrote {stats.rows:,} events in {stats.files:,} file(s) under {output}", markup=False, soft_wrap=False)


@export_app.command("perfetto", cls=Command)
def export_perfetto(
    trace: TraceArg,
    output: Output,
    quiet: NoProgress = False,
) -> None:
    """A timeline as Chrome trace-event JSON (open in ui.perfetto.dev): a track per device, warps and I/O as slices.

    Example: rrtool export perfetto t.arrow -o t.json
    """
    from rrtool._paths import check_input_file
    from rrtool.analysis.export.perfetto import export_perfetto as do_export

    with user_errors(), Bar("export perfetto", enabled=not quiet, unit="batches") as bar:
        check_input_file(trace, "trace file")
        stats = do_export(trace, output, progress=bar.progress)
    err.print(
        f"wrote {stats.events:,} trace events on {stats.tracks} tracks to {output}", markup=False, soft_wrap=False
    )
