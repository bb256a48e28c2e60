"""`diff_traces`: compare two traces window by window and sum up what lined up and what did not."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl

from rrtool.analysis.diff.align import Outcome, align
from rrtool.analysis.diff.model import (
    POSITION_COLUMNS,
    STREAM_COLUMNS,
    Difference,
    DiffOptions,
    DiffResult,
    KindSummary,
)
from rrtool.analysis.diff.stream import Side, frame_columns, windows
from rrtool.analysis.errors import AnalysisError
from rrtool.analysis.progress import Progress, Tally
from rrtool.schemas import events as ev
from rrtool.schemas.tracefile import TraceFile, open_tracefile


def check_options(options: DiffOptions) -> None:
    """Unknown kinds or columns are user errors (a typo must not silently compare everything)."""
    for kind in sorted(options.ignore_kinds):
        if kind not in ev.KINDS:
            raise AnalysisError(f"--ignore-kind {kind}: no such kind (kinds: {', '.join(ev.KINDS)})")
    for col in sorted(options.ignore_columns):
        if col not in ev.COLUMN_NAMES:
            raise AnalysisError(f"--ignore-column {col}: no such column (see `rrtool sql T 'describe events'`)")
        if col in STREAM_COLUMNS:
            raise AnalysisError(f"--ignore-column {col}: events are paired by kind and device; use --ignore-kind")
    if options.resync_checkpoints < 0:
        raise AnalysisError("--resync-window must not be negative")


def _meta_key(key: str) -> str:
    return key if key.startswith("rrtool.") else f"rrtool.{key}"


def _json_object(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _metadata_diff(a: TraceFile, b: TraceFile, ignore: frozenset[str]) -> list[tuple[str, str | None, str | None]]:
    """Metadata keys that differ; a JSON object (the machine record) is compared key by key.

    Key by key because a Linux trace's machine record holds its AT_RANDOM bytes, different in every recording:
    reported whole, the record would hide what else changed (argv, env) in one long line, and could not be
    left out without leaving out all of it. Each of its keys is `rrtool.machine.<key>`, so
    `--ignore-meta machine.at_random` leaves out just that.
    """
    skip = {_meta_key(k) for k in ignore}
    keys = sorted((set(a.metadata) | set(b.metadata)) - skip)
    out: list[tuple[str, str | None, str | None]] = []
    for k in keys:
        va, vb = a.metadata.get(k), b.metadata.get(k)
        if va == vb:
            continue
        ja, jb = _json_object(va), _json_object(vb)
        if ja is None or jb is None:
            out.append((k, va, vb))
            continue
        for sub in sorted(set(ja) | set(jb)):
            name = f"{k}.{sub}"
            if name not in skip and ja.get(sub) != jb.get(sub):
                show = [None if sub not in j else json.dumps(j[sub], sort_keys=True) for j in (ja, jb)]
                out.append((name, show[0], show[1]))
    return out


class _Totals:
    """Running per-kind summaries and the earliest differences seen so far."""

    def __init__(self, limit: int) -> None:
        self.kinds: dict[int, KindSummary] = {}
        self.limit = limit
        self._differences: list[Difference] = []

    def kind(self, code: int) -> KindSummary:
        if code not in self.kinds:
            self.kinds[code] = KindSummary(ev.KINDS[code] if 0 <= code < len(ev.KINDS) else f"?{code}")
        return self.kinds[code]

    def add_side(self, frame: pl.DataFrame | None, side: str) -> None:
        if frame is None:
            return
        for code, n, nbytes in frame.group_by("kind").agg(pl.len(), pl.col("_bytes").sum()).iter_rows():
            summary = self.kind(code)
            setattr(summary, f"events_{side}", getattr(summary, f"events_{side}") + n)
            setattr(summary, f"bytes_{side}", getattr(summary, f"bytes_{side}") + int(nbytes))

    def add(self, outcome: Outcome) -> None:
        for code, counts in outcome.counts.items():
            summary = self.kind(code)
            for name, n in counts.items():
                setattr(summary, name, getattr(summary, name) + n)
        for code, cols in outcome.changed_columns.items():
            summary = self.kind(code)
            for col, n in cols.items():
                summary.changed_columns[col] = summary.changed_columns.get(col, 0) + n
        if outcome.differences:
            merged = self._differences + outcome.differences
            self._differences = sorted(merged, key=Difference.sort_key)[: self.limit]

    def differences(self) -> list[Difference]:
        return list(self._differences)


def _for_align(frame: pl.DataFrame | None, carry: pl.DataFrame | None, columns: list[str]) -> pl.DataFrame | None:
    parts = []
    if carry is not None:
        parts.append(carry)
    if frame is not None:
        parts.append(frame.select(frame_columns(columns)).with_columns(pl.lit(False).alias("_old")))
    if not parts:
        return None
    return pl.concat(parts) if len(parts) > 1 else parts[0]


def diff_traces(
    a: str | Path, b: str | Path, options: DiffOptions | None = None, progress: Progress | None = None
) -> DiffResult:
    """Align two traces and report the first differences and a per-kind summary, in bounded memory.

    `progress` hears of every batch read, of both traces' batches together.
    """
    options = options or DiffOptions()
    check_options(options)
    with open_tracefile(a) as ta, open_tracefile(b) as tb:
        return _diff(a, b, ta, tb, options, progress)


def _diff(
    a: str | Path, b: str | Path, ta: TraceFile, tb: TraceFile, options: DiffOptions, progress: Progress | None
) -> DiffResult:
    columns = options.compared_columns()
    ignore_codes = [ev.KINDS.index(k) for k in sorted(options.ignore_kinds)]
    tally = Tally(ta.num_batches + tb.num_batches, progress)
    side_a, side_b = Side(ta, columns, ignore_codes, tally), Side(tb, columns, ignore_codes, tally)
    totals = _Totals(max(1, options.max_differences))
    carry_a: pl.DataFrame | None = None
    carry_b: pl.DataFrame | None = None
    for wa, wb in windows(side_a, side_b):
        totals.add_side(wa, "a")
        totals.add_side(wb, "b")
        fa, fb = _for_align(wa, carry_a, columns), _for_align(wb, carry_b, columns)
        outcome = align(fa, fb, columns, options, final=False)
        totals.add(outcome)
        carry_a, carry_b = outcome.carry_a, outcome.carry_b
    totals.add(align(carry_a, carry_b, columns, options, final=True))

    notes = []
    for path, trace in ((a, ta), (b, tb)):
        if not trace.complete:
            notes.append(f"{path}: the recording was cut short (no footer or no end checkpoint), so the traces "
                         "differ; compared up to its last complete batch")  # fmt: skip
    ignored = sorted(set(options.ignore_columns) | set(POSITION_COLUMNS))
    if not options.compare_host_time:
        ignored.append("host_ns")
    notes.append(
        "not compared: "
        + ", ".join(ignored)
        + (f"; kinds left out: {', '.join(sorted(options.ignore_kinds))}" if options.ignore_kinds else "")
    )
    return DiffResult(
        a=str(a),
        b=str(b),
        kinds={s.kind: s for s in totals.kinds.values()},
        differences=totals.differences(),
        metadata=_metadata_diff(ta, tb, options.ignore_meta),
        notes=notes,
        complete_a=ta.complete,
        complete_b=tb.complete,
    )
