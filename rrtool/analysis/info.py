"""`rrtool info`: what a trace holds, read from its batches without running anything."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from rrtool.schemas import events as ev
from rrtool.schemas.tracefile import open_tracefile

#: How many system calls `trace_info` lists, the most frequent first.
TOP_SYSCALLS = 10
#: The board is the platform of a trace whose machine record names none (recorded before there were two).
BOARD = "board"
LINUX = "linux"
#: Linux's error results, -4095..-1 (as in the `syscalls` view).
_MAX_ERRNO = 4095


class _SyscallTally:
    """Calls and failures per system call name, summed batch by batch (a trace is never loaded whole)."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self.failed: dict[str, int] = {}

    def add(self, batch: pa.RecordBatch, kinds: pa.Array) -> None:
        rows = batch.filter(pc.equal(kinds, ev.KIND_SYSCALL))
        if not rows.num_rows:
            return
        names, ret = rows.column("syscall"), rows.column("ret")
        failed = pc.and_(pc.greater_equal(ret, -_MAX_ERRNO), pc.less(ret, 0))
        for counter, values in ((self.calls, names), (self.failed, names.filter(failed))):
            for item in pc.value_counts(values).to_pylist():
                name = str(item["values"])
                counter[name] = counter.get(name, 0) + item["counts"]

    def summary(self, top: int) -> dict[str, Any]:
        ranked = sorted(self.calls.items(), key=lambda t: (-t[1], t[0]))[:top]
        return {
            "syscalls": sum(self.calls.values()),
            "syscalls_failed": sum(self.failed.values()),
            "distinct_syscalls": len(self.calls),
            "top_syscalls": [{"name": n, "calls": c, "failed": self.failed.get(n, 0)} for n, c in ranked],
        }


def _linux_info(machine: dict[str, Any], tally: _SyscallTally, top: int) -> dict[str, Any]:
    """What a Linux trace says of its process (from the machine record) and its busiest system calls."""
    return {"argv": machine.get("argv"), "exe": machine.get("exe"), "env": machine.get("env"), **tally.summary(top)}


def trace_info(path: Path, *, top: int = TOP_SYSCALLS) -> dict[str, Any]:
    """Metadata, counts per kind, checkpoint range, size, and whether the recording finished.

    `platform` is "board" or "linux"; for a Linux trace `linux` holds the
    program's argv, exe and env and its `top` most frequent system calls
    with how many failed (None for a board trace), so a user sees at a
    glance what ran and what it mostly asked of the host.
    """
    with open_tracefile(path) as trace:
        platform = str(trace.machine.get("platform", BOARD))
        syscalls = _SyscallTally()
        counts: dict[str, int] = {}
        rows = 0
        first_icount = last_icount = last_vclock = None
        last_cp: dict[str, Any] | None = None
        for batch in trace.batches():
            if batch.num_rows == 0:
                continue
            rows += batch.num_rows
            kinds = batch.column("kind").cast(pa.string())
            for item in pc.value_counts(kinds).to_pylist():
                counts[item["values"]] = counts.get(item["values"], 0) + item["counts"]
            if platform == LINUX:
                syscalls.add(batch, kinds)
            if first_icount is None:
                first_icount = batch.column("icount")[0].as_py()
            last_icount = batch.column("icount")[-1].as_py()
            last_vclock = batch.column("vclock_ns")[-1].as_py()
            cps = batch.filter(pc.equal(kinds, ev.KIND_CHECKPOINT))
            if cps.num_rows:
                last_cp = cps.slice(cps.num_rows - 1).to_pylist()[0]
        ended = last_cp is not None and last_cp["cp_kind"] == ev.CP_END
        return {
            "path": str(path),
            "size_bytes": path.stat().st_size,
            "complete": trace.complete_file and ended,
            "format_version": int(trace.metadata[ev.META_FORMAT_VERSION]),
            "tool_version": trace.metadata.get(ev.META_TOOL_VERSION),
            "image": trace.metadata.get(ev.META_IMAGE_PATH),
            "image_sha256": trace.metadata.get(ev.META_IMAGE_SHA256),
            "start_time": trace.metadata.get(ev.META_START_TIME),
            "host": trace.metadata.get(ev.META_HOST),
            "platform": platform,
            "machine": trace.machine,
            "batches": trace.num_batches,
            "events": rows,
            "counts": dict(sorted(counts.items())),
            "checkpoints": counts.get(ev.KIND_CHECKPOINT, 0),
            "last_checkpoint": None if last_cp is None else last_cp["checkpoint"],
            "icount_range": [first_icount, last_icount],
            "vclock_end_ns": last_vclock,
            "end": None if not ended or last_cp is None else last_cp["text"],
            "linux": _linux_info(trace.machine, syscalls, top) if platform == LINUX else None,
        }
