"""Lining up the events of one icount window of two traces.

Events are only ever paired within a stream, (kind, device). Three passes,
each on what the previous left over:

1. identical events at the same icount are *matched* (a hash of the compared
   columns, plus the occurrence number among equal ones);
2. events left at the same (kind, device, icount), in order, are the same
   event with *changed* values (a different packet payload, RNG value...);
3. events left in a stream are aligned by a longest common subsequence of
   their content without icount and vclock, and paired when their
   checkpoints are at most `resync_checkpoints` apart: the same event moved
   (an icount drift), or in order the events that replaced each other.

What is still left is *only in a* or *only in b*. An inserted or missing
event therefore costs one "only" and nothing after it changes: no pass
looks at `seq` or `checkpoint`, which such an insertion shifts. Rows left in
pass 3 are carried into the next window once (the other side's partner may
sit just past the window's edge) before they count as "only".
"""

from __future__ import annotations

import difflib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from rrtool.analysis.diff.model import Difference, DiffOptions
from rrtool.analysis.diff.stream import frame_columns
from rrtool.schemas import events as ev

_SEED = 0x5EED
#: Pass 3 runs difflib per stream; above this many leftovers it pairs in order instead (cost).
_LCS_LIMIT = 5000
_DRIFT_COLUMNS = ("icount", "vclock_ns", "warp_ns")  # a warp to a deadline absorbs the drift before it


@dataclass
class Outcome:
    """Counts per kind code, the differences worth showing, and rows carried to the next window."""

    counts: dict[int, dict[str, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    changed_columns: dict[int, dict[str, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    differences: list[Difference] = field(default_factory=list)
    carry_a: pl.DataFrame | None = None
    carry_b: pl.DataFrame | None = None


def decode_row(row: dict[str, Any]) -> dict[str, Any]:
    """A row with dictionary codes turned back into names and nulls and helper columns dropped."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if value is None or key.startswith("_"):
            continue
        if key in ev.DICTIONARIES:
            names = ev.DICTIONARIES[key]
            value = names[value] if 0 <= value < len(names) else f"?{value}"
        out[key] = value
    return out


def _hash(columns: list[str]) -> pl.Expr:
    return pl.struct(columns).hash(_SEED) if columns else pl.lit(0, dtype=pl.UInt64)


def _pair_by_keys(a: pl.DataFrame, b: pl.DataFrame, keys: list[str]) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Pair rows with equal keys (the n-th with the n-th); returns (pairs, rest of a, rest of b)."""
    occ = pl.int_range(pl.len()).over(keys).alias("_occ")
    left = a.select("_i", *keys, occ)
    right = b.select(pl.col("_i").alias("_j"), *keys, occ)
    pairs = left.join(right, on=[*keys, "_occ"], how="inner").select("_i", "_j")
    rest_a = a.join(pairs.select("_i"), on="_i", how="anti")
    rest_b = b.join(pairs.select(pl.col("_j").alias("_i")), on="_i", how="anti")
    return pairs, rest_a, rest_b


def _resync(a: pl.DataFrame, b: pl.DataFrame, window: int) -> pl.DataFrame:
    """Pass 3: per stream, pair leftovers by an LCS of their content, within `window` checkpoints."""
    pairs: list[tuple[int, int]] = []
    streams_a = a.partition_by("kind", "device", as_dict=True, maintain_order=True)
    streams_b = b.partition_by("kind", "device", as_dict=True, maintain_order=True)
    for key, sa in streams_a.items():
        sb = streams_b.get(key)
        if sb is None:
            continue
        ia, ca, ha = sa["_i"].to_list(), sa["checkpoint"].to_list(), sa["_hc"].to_list()
        ib, cb, hb = sb["_i"].to_list(), sb["checkpoint"].to_list(), sb["_hc"].to_list()
        blocks: list[tuple[str, int, int, int, int]] = [("replace", 0, len(ia), 0, len(ib))]
        if len(ia) * len(ib) <= _LCS_LIMIT * _LCS_LIMIT // 4:
            blocks = list(difflib.SequenceMatcher(None, ha, hb, autojunk=False).get_opcodes())
        for tag, a0, a1, b0, b1 in blocks:
            if tag not in ("equal", "replace"):
                continue
            for x, y in zip(range(a0, a1), range(b0, b1), strict=False):
                if abs(ca[x] - cb[y]) <= window:
                    pairs.append((ia[x], ib[y]))
    return pl.DataFrame(pairs, schema={"_i": pl.UInt32, "_j": pl.UInt32}, orient="row")


def _empty_like(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.clear()


def _count_kinds(frame: pl.DataFrame, outcome: Outcome, what: str) -> None:
    if frame.height == 0:
        return
    for kind, n in frame.group_by("kind").len().iter_rows():
        outcome.counts[kind][what] += n


def _fast_path(a: pl.DataFrame, b: pl.DataFrame, columns: list[str]) -> bool:
    if a.height != b.height or a["_old"].any() or b["_old"].any():
        return False
    cols = frame_columns(columns)[2:]  # all but seq and checkpoint
    return a.select(cols).equals(b.select(cols), null_equal=True)


def _differences(frame: pl.DataFrame, status: str, limit: int, columns: list[str]) -> list[Difference]:
    out = []
    all_cols = frame_columns(columns)
    for row in frame.sort("_pos_icount", "_pos_seq").head(limit).iter_rows(named=True):
        a: dict[str, Any] | None
        b: dict[str, Any] | None
        if status == "changed":
            a = decode_row({c: row[f"{c}_a"] for c in all_cols})
            b = decode_row({c: row[f"{c}_b"] for c in all_cols})
            fields = [c for c in columns if row[f"_d_{c}"]]
        else:
            plain = decode_row(row)
            a, b, fields = (plain, None, []) if status == "only_a" else (None, plain, [])
        side = a if a is not None else b
        assert side is not None
        out.append(Difference(status, str(side["kind"]), str(side["device"]), a, b, fields))
    return out


def align(
    a: pl.DataFrame | None, b: pl.DataFrame | None, columns: list[str], options: DiffOptions, final: bool
) -> Outcome:
    """Compare one window; rows of pass 3 not paired are carried once unless this is the last window."""
    outcome = Outcome()
    if a is None and b is None:
        return outcome
    if a is None:
        assert b is not None
        a = _empty_like(b)
    if b is None:
        b = _empty_like(a)
    if _fast_path(a, b, columns):
        _count_kinds(a, outcome, "matched")
        return outcome

    all_cols = frame_columns(columns)
    keep = [*all_cols, "_old"]
    A = a.select(keep).with_row_index("_i")
    B = b.select(keep).with_row_index("_i")
    content = [c for c in columns if c not in _DRIFT_COLUMNS]
    A = A.with_columns(_hash(columns).alias("_h"), _hash(content).alias("_hc"))
    B = B.with_columns(_hash(columns).alias("_h"), _hash(content).alias("_hc"))

    p1, rest_a, rest_b = _pair_by_keys(A, B, ["kind", "device", "icount", "_h"])
    p2, rest_a, rest_b = _pair_by_keys(rest_a, rest_b, ["kind", "device", "icount"])
    p3 = _resync(rest_a, rest_b, options.resync_checkpoints)
    if p3.height:
        rest_a = rest_a.join(p3.select("_i"), on="_i", how="anti")
        rest_b = rest_b.join(p3.select(pl.col("_j").alias("_i")), on="_i", how="anti")
    pairs = pl.concat([p1, p2, p3])

    side_a = A.select("_i", *(pl.col(c).alias(f"{c}_a") for c in all_cols))
    side_b = B.select(pl.col("_i").alias("_j"), *(pl.col(c).alias(f"{c}_b") for c in all_cols))
    joined = pairs.join(side_a, on="_i").join(side_b, on="_j")
    diffs = [pl.col(f"{c}_a").ne_missing(pl.col(f"{c}_b")).alias(f"_d_{c}") for c in columns]
    joined = joined.with_columns(diffs).with_columns(
        pl.any_horizontal([f"_d_{c}" for c in columns] or [pl.lit(False)]).alias("_changed"),
        pl.col("kind_a").alias("kind"),
        pl.col("icount_a").alias("_pos_icount"),
        pl.col("seq_a").alias("_pos_seq"),
    )
    changed = joined.filter(pl.col("_changed"))
    _count_kinds(joined.filter(~pl.col("_changed")), outcome, "matched")
    _count_kinds(changed, outcome, "changed")
    if changed.height:
        per_col = changed.group_by("kind").agg(pl.col(f"_d_{c}").sum() for c in columns)
        for row in per_col.iter_rows(named=True):
            for c in columns:
                if row[f"_d_{c}"]:
                    outcome.changed_columns[row["kind"]][c] += row[f"_d_{c}"]
    limit = options.max_differences
    outcome.differences.extend(_differences(changed, "changed", limit, columns))

    for rest, status, side in ((rest_a, "only_a", "a"), (rest_b, "only_b", "b")):
        done = rest if final else rest.filter(pl.col("_old"))
        carry = rest.clear() if final else rest.filter(~pl.col("_old"))
        _count_kinds(done, outcome, status)
        done = done.with_columns(pl.col("icount").alias("_pos_icount"), pl.col("seq").alias("_pos_seq"))
        outcome.differences.extend(_differences(done, status, limit, columns))
        carried = carry.select(*all_cols).with_columns(pl.lit(True).alias("_old")) if carry.height else None
        if side == "a":
            outcome.carry_a = carried
        else:
            outcome.carry_b = carried
    return outcome
