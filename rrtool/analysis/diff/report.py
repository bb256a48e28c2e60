"""A `DiffResult` as text lines for people: the first divergence (payloads as a hex diff), changed columns.

Pure formatting, returning strings; `rrtool diff` (`rrtool/cli/diff.py`) prints them with its summary table.
"""

from __future__ import annotations

from typing import Any

from rrtool.analysis.diff.model import Difference, DiffResult
from rrtool.schemas import events as ev

#: Columns shown in hex (digests, addresses, raw values), as the replay divergence report does.
_HEX_COLUMNS = {"pc", "reg_digest", "dev_digest", "mem_digest", "value", "data_digest"}
_ROW = 16
_CONTEXT_ROWS = 2
_IDENTITY = ("seq", "checkpoint", "icount", "kind", "device")


def format_value(column: str, value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bytes):
        text = value[:48].hex(" ")
        return f"{len(value)} bytes: {text}{' ...' if len(value) > 48 else ''}"
    if column in _HEX_COLUMNS and isinstance(value, int):
        return f"{value:#x}"
    return str(value)


def hex_diff(a: bytes, b: bytes) -> list[str]:
    """Hexdump rows of both payloads around the first differing byte, with carets under the differences."""
    first = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    lines = [f"{len(a)} bytes in a, {len(b)} in b; first difference at byte {first}"]
    start_row = max(0, first // _ROW - 1)
    end_row = min(max(len(a), len(b)) // _ROW + 1, first // _ROW + _CONTEXT_ROWS + 1)
    for row in range(start_row, end_row):
        lo = row * _ROW
        ra, rb = a[lo : lo + _ROW], b[lo : lo + _ROW]
        if not ra and not rb:
            break
        marks = "".join(
            "^^ " if (i >= len(ra) or i >= len(rb) or ra[i] != rb[i]) else "   " for i in range(max(len(ra), len(rb)))
        )
        lines.append(f"{lo:04x}  a: {ra.hex(' ')}")
        lines.append(f"      b: {rb.hex(' ')}")
        if marks.strip():
            lines.append(f"         {marks.rstrip()}")
    return lines


def describe(diff: Difference) -> str:
    """One line naming the event: kind, device, where it is on each side."""

    def where(row: dict[str, Any] | None, side: str) -> str:
        if row is None:
            return f"absent in {side}"
        return f"{side}: checkpoint {row['checkpoint']}, icount {row['icount']}, seq {row['seq']}"

    head = {"changed": "changed", "only_a": "only in a", "only_b": "only in b"}[diff.status]
    return f"{head}: {event_name(diff)} on {diff.device} ({where(diff.a, 'a')}; {where(diff.b, 'b')})"


def event_name(diff: Difference) -> str:
    """The kind, and for a system call which one (`syscall openat`): every Linux event is a syscall on linux,
    so the kind alone does not say where two runs parted."""
    if diff.kind != ev.KIND_SYSCALL:
        return diff.kind
    names = dict.fromkeys(str(row["syscall"]) for row in (diff.a, diff.b) if row is not None and "syscall" in row)
    return f"{diff.kind} {'/'.join(names)}" if names else diff.kind


def first_divergence_lines(diff: Difference) -> list[str]:
    lines = [
        f"first divergence at checkpoint {diff.checkpoint}, icount {diff.icount}: {event_name(diff)} on {diff.device}"
    ]
    lines.append("  " + describe(diff))
    if diff.status != "changed":
        row = diff.a if diff.a is not None else diff.b
        assert row is not None
        for col, value in row.items():
            if col not in _IDENTITY:
                lines.append(f"  {col}: {format_value(col, value)}")
        return lines
    assert diff.a is not None and diff.b is not None
    lines.append(f"  fields that differ: {', '.join(diff.fields)}")
    for col in diff.fields:
        va, vb = diff.a.get(col), diff.b.get(col)
        if isinstance(va, bytes) and isinstance(vb, bytes):
            lines.append(f"  {col}:")
            lines.extend("    " + line for line in hex_diff(va, vb))
        else:
            lines.append(f"  {col}: a {format_value(col, va)}")
            lines.append(f"  {' ' * len(col)}  b {format_value(col, vb)}")
    return lines


def changed_columns_lines(result: DiffResult) -> list[str]:
    lines = []
    for k in sorted(result.kinds.values(), key=lambda k: k.kind):
        if k.changed_columns:
            cols = ", ".join(f"{c} {n:,}" for c, n in sorted(k.changed_columns.items(), key=lambda t: (-t[1], t[0])))
            lines.append(f"  {k.kind}: {cols}")
    return ["changed columns:", *lines] if lines else []
