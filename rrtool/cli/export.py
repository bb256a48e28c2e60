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
    traces: Annotated[
        list[str],
        typer.Argument(metavar="TRACE...", help="Trace files, globs ('runs/*.arrow') and directories."),
    ],
    output: Annotated[
        Path,
        typer.Option("--output", "-o", metavar="DIR", help="Dataset to create, or an exported one to add to."),
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
    jobs: Annotated[
        int | None,
        typer.Option("--jobs", "-j", metavar="N", min=1, max=1024, help="Traces exported at once [default: CPUs]."),
    ] = None,
    quiet: NoProgress = False,
) -> None:
    """Traces as one hive-partitioned Parquet dataset: DIR/traces.parquet and DIR/events/trace=NAME/....

    Each trace's events are under events/trace=NAME/checkpoint_start=K/part-0.parquet. Into an existing
    dataset, the traces are added (the others are not rewritten) or, exported again, replace their own
    partition in one rename. A new dataset is built beside DIR and renamed onto it when complete.

    Example: rrtool export parquet 'runs/*.arrow' -o corpus/
    """
    from rrtool.analysis.export.parquet import export_parquet as do_export

    with user_errors(), Bar("export parquet", enabled=not quiet, unit="batches") as bar:
        stats = do_export(
            traces, output, checkpoints_per_partition=checkpoints_per_partition, jobs=jobs, progress=bar.progress
        )
    replaced = f", {stats.replaced:,} replaced" if stats.replaced else ""
    err.print(
        f"wrote {stats.traces:,} trace(s){replaced}, {stats.rows:,} events in {stats.files:,} file(s) under {output}",
        markup=False,
        soft_wrap=False,
    )


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
