"""`rrtool diff`: two traces compared, as a report for people or as JSON (exit 0 same, 1 different, 2 error)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from rrtool.cli.console import fail, out, user_errors
from rrtool.cli.options import MAX_SHOWN, Json
from rrtool.cli.progress import Bar

if TYPE_CHECKING:
    from rich.table import Table

    from rrtool.analysis.diff import DiffOptions, DiffResult
    from rrtool.player.deepdiff import CheckpointPair, DeepDiffResult


def diff(
    traces: Annotated[
        list[str],
        typer.Argument(
            metavar="A B | TRACE...",
            help="Two traces; with --baseline, trace files, globs and directories to compare with it.",
        ),
    ],
    baseline: Annotated[
        Path | None,
        typer.Option(
            "--baseline",
            metavar="BASE",
            help="Compare every TRACE with this one: a line each, equivalent or its first divergence.",
        ),
    ] = None,
    as_json: Json = False,
    ignore_kind: Annotated[
        list[str] | None,
        typer.Option("--ignore-kind", metavar="KIND", help="Leave out events of this kind (repeatable)."),
    ] = None,
    ignore_column: Annotated[
        list[str] | None,
        typer.Option("--ignore-column", metavar="COLUMN", help="Do not compare this column (repeatable)."),
    ] = None,
    ignore_meta: Annotated[
        list[str] | None,
        typer.Option(
            "--ignore-meta",
            metavar="KEY",
            help="Do not compare this metadata key (repeatable; start_time, host always).",
        ),
    ] = None,
    host_time: Annotated[bool, typer.Option("--host-time", help="Also compare host_ns (ignored by default).")] = False,
    resync_window: Annotated[
        int,
        typer.Option(
            "--resync-window",
            metavar="N",
            min=0,
            max=MAX_SHOWN,
            help="Pair moved events at most this many checkpoints apart.",
        ),
    ] = 2,
    show: Annotated[
        int, typer.Option("--show", metavar="N", min=1, max=MAX_SHOWN, help="Differences listed (all are counted).")
    ] = 10,
    deep: Annotated[
        bool,
        typer.Option(
            "--deep",
            help="Replay both and find the first instruction after which their machine states differ "
            "(registers, memory bytes, devices).",
        ),
    ] = False,
) -> None:
    """Compare two traces: the first divergence and a per-kind summary (exit 0 same, 1 different, 2 error).

    A trace cut short by a crash is compared up to its last complete batch; what the other trace has beyond
    counts as "only in" the other, so the exit code is 1.

    With --deep, two recordings of one guest image are replayed side by side (PANDA's diverge.py): the
    checkpoints' logged digests bound the search, then icounts are bisected, comparing the whole state, to the
    instruction after which the states first differ; it is named with its registers and memory bytes that
    differ and the input that made the difference. The boundary found is always real (an equal state, then a
    different one); it is the first unless the states parted and met again before it, which no probe can see.
    With --baseline BASE, each TRACE (files, globs, directories) is compared with BASE as above, and one
    line per trace says "equivalent" or where it first differs (checkpoint, icount, kind, device, fields);
    the exit code is 1 if any differs.
    Example: rrtool diff a.arrow b.arrow --ignore-kind rng_read
    Example: rrtool diff --deep a.arrow b.arrow
    Example: rrtool diff --baseline good.arrow 'runs/*.arrow'
    """
    if baseline is not None and deep:
        fail("--deep compares two recordings; it does not take --baseline")
    if baseline is None and len(traces) != 2:
        fail(f"give two traces to compare (or --baseline BASE and the traces to compare with it), not {len(traces)}")
    a, b = (Path(traces[0]), Path(traces[-1])) if baseline is None else (baseline, baseline)
    if deep:
        event_options = {
            "--ignore-kind": bool(ignore_kind), "--ignore-column": bool(ignore_column),
            "--ignore-meta": bool(ignore_meta), "--host-time": host_time,
            "--resync-window": resync_window != 2, "--show": show != 10,
        }  # fmt: skip
        given = [name for name, used in event_options.items() if used]
        if given:
            fail(f"--deep compares machine states, not events: {', '.join(given)} does not apply to it")
        deep_diff_command(a, b, as_json)
        return
    from rrtool._paths import check_input_file
    from rrtool.analysis.diff import DiffOptions, diff_traces
    from rrtool.analysis.diff.model import DEFAULT_IGNORED_META

    with user_errors():
        check_input_file(a, "trace file")
        check_input_file(b, "trace file")
        options = DiffOptions(
            ignore_kinds=frozenset(ignore_kind or ()),
            ignore_columns=frozenset(ignore_column or ()),
            ignore_meta=frozenset([*DEFAULT_IGNORED_META, *(ignore_meta or ())]),
            compare_host_time=host_time,
            resync_checkpoints=resync_window,
            max_differences=max(show, 20),
        )
        if baseline is not None:
            baseline_command(baseline, traces, options, as_json)
            return
        with Bar("diff", enabled=not as_json, unit="batches") as bar:
            result = diff_traces(a, b, options, bar.progress)
    if as_json:
        out.print_json(json.dumps(result.to_dict()))
    else:
        print_report(result, out, show=show)
    raise typer.Exit(0 if result.equivalent else 1)


def baseline_command(baseline: Path, traces: list[str], options: DiffOptions, as_json: bool) -> None:
    """`diff --baseline`: a line (or a JSON object) per trace; exit 1 if any differs from the baseline."""
    from rrtool.analysis.diff.baseline import diff_baseline

    with user_errors(), Bar("diff --baseline", enabled=not as_json, unit="traces") as bar:
        verdicts = diff_baseline(baseline, traces, options, bar.progress)
    if as_json:
        out.print_json(json.dumps({"baseline": str(baseline), "traces": [v.to_dict() for v in verdicts]}))
    else:
        for verdict in verdicts:
            out.print(verdict.line(), markup=False, highlight=False, soft_wrap=True)
        differ = sum(not v.equivalent for v in verdicts)
        out.print(f"{differ} of {len(verdicts)} differ from {baseline}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(1 if any(not v.equivalent for v in verdicts) else 0)


def summary_table(result: DiffResult) -> Table:
    """Per kind: events and payload bytes on each side, then how they lined up (fits 80 columns)."""
    from rich.table import Table  # here, not at the top: `rrtool run` imports every command module

    table = Table(title="per kind", show_header=True, header_style="bold")
    for name in ("kind", "events a / b", "bytes a / b", "matched", "changed", "only a", "only b"):
        table.add_column(name, justify="left" if name == "kind" else "right", no_wrap=True)
    for k in [*sorted(result.kinds.values(), key=lambda k: k.kind), result.totals()]:
        style = "bold" if k.kind == "total" else ("yellow" if k.differs else None)
        table.add_row(
            k.kind, f"{k.events_a:,} / {k.events_b:,}", f"{k.bytes_a:,} / {k.bytes_b:,}", f"{k.matched:,}",
            f"{k.changed:,}", f"{k.only_a:,}", f"{k.only_b:,}", style=style,
        )  # fmt: skip
    return table


def print_report(result: DiffResult, console: Console, show: int = 10) -> None:
    """The human report: verdict, first divergence, further differences, metadata, summary, notes."""
    from rrtool.analysis.diff.report import changed_columns_lines, describe, first_divergence_lines

    verdict = "equivalent" if result.equivalent else "DIFFERENT"
    console.print(f"[bold]{verdict}[/]: {result.a} vs {result.b}", highlight=False, soft_wrap=False)
    if result.first is not None:
        console.print("\n".join(first_divergence_lines(result.first)), markup=False, highlight=False, soft_wrap=True)
    more = result.differences[1:show]
    if more:
        console.print("next differences:", markup=False, soft_wrap=False)
        for d in more:
            fields = f" [{', '.join(d.fields)}]" if d.fields else ""
            console.print(f"  {describe(d)}{fields}", markup=False, highlight=False, soft_wrap=True)
    for key, va, vb in result.metadata:
        console.print(f"metadata {key}: a {va!r}, b {vb!r}", markup=False, highlight=False, soft_wrap=True)
    console.print(summary_table(result), soft_wrap=False)
    for line in changed_columns_lines(result):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    for note in result.notes:
        console.print(f"[dim]note: {note}[/]", highlight=False, soft_wrap=True)


def deep_diff_command(a: Path, b: Path, as_json: bool) -> None:
    """`diff --deep`: exit 0 when the states never differ, 1 when they do, 2 on an error (one line)."""
    from rrtool._paths import check_input_file
    from rrtool.player.deepdiff import deep_diff

    with user_errors():
        check_input_file(a, "trace file")
        check_input_file(b, "trace file")
        with Bar("deep diff", enabled=not as_json, unit="probes") as bar:
            result = deep_diff(a, b, progress=bar.progress)
    if as_json:
        out.print_json(json.dumps(result.to_dict()))
    else:
        print_deep_report(result, out)
    raise typer.Exit(1 if result.found else 0)


def deep_report_lines(result: DeepDiffResult) -> list[str]:
    """The human report of a deep diff, as plain lines (addresses and values in hex)."""
    from rrtool.player.deepdiff import MAX_SHOWN_BYTES

    if not result.found:
        lines = [f"no difference: {result.a} vs {result.b}"]
        if result.logged:
            lines.append(f"  logs: {result.logged}")
        return lines + [f"  note: {n}" for n in result.notes]
    assert result.icount is not None
    lines = [f"DIFFERENT: {result.a} vs {result.b}"]
    if result.cause_kind == "start":
        lines.append(f"the states differ at icount 0, before the first instruction (pc {result.pc:#x})")
    else:
        lines.append(
            f"first differing state at icount {result.icount:,}: after instruction #{result.icount:,} "
            f"({result.instruction})"
        )
    lines.append(f"  cause: {result.cause}")

    def cp(pair: CheckpointPair | None) -> str:
        def one(cid: int | None, icount: int | None) -> str:
            return "none" if cid is None or icount is None else f"{cid} (icount {icount:,})"

        if pair is None:
            return "none"
        if (pair.a, pair.icount_a) == (pair.b, pair.icount_b):
            return one(pair.a, pair.icount_a)
        return f"a {one(pair.a, pair.icount_a)}, b {one(pair.b, pair.icount_b)}"

    lines.append(f"  between checkpoints {cp(result.before)} and {cp(result.after)}")
    if result.logged:
        lines.append(f"  logs: {result.logged}")
    if result.registers:
        lines.append("registers that differ:")
        width = max(len(r.name) for r in result.registers)
        lines += [f"  {r.name:<{width}}  a {r.a:#x}  b {r.b:#x}" for r in result.registers]
    if result.memory:
        more = " (more not listed)" if result.memory_more else ""
        pages = f"{result.memory_pages} page{'s' if result.memory_pages != 1 else ''}"
        lines.append(f"memory that differs: {len(result.memory)} ranges in {pages}{more}")
        for m in result.memory:
            cut = " ..." if m.length > MAX_SHOWN_BYTES else ""
            show_a = "unmapped" if m.a is None else m.a.hex(" ") + cut
            show_b = "unmapped" if m.b is None else m.b.hex(" ") + cut
            lines.append(f"  {m.address:#010x} {m.length:>5} bytes  a: {show_a}")
            lines.append(f"  {'':10} {'':>5}        b: {show_b}")
    if result.devices:
        lines.append(f"devices that differ: {', '.join(result.devices)}")
    lines.append(f"found in {result.probes} probes of both replays")
    return lines + [f"note: {n}" for n in result.notes]


def print_deep_report(result: DeepDiffResult, console: Console) -> None:
    console.print("\n".join(deep_report_lines(result)), markup=False, highlight=False, soft_wrap=True)
