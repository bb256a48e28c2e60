"""`rrtool info`: what a trace holds, read from its batches without running anything."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from rrtool.schemas import events as ev
from rrtool.schemas.tracefile import open_tracefile


def trace_info(path: Path) -> dict[str, Any]:
    """Metadata, counts per kind, checkpoint range, size, and whether the recording finished."""
    with open_tracefile(path) as trace:
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
            "machine": trace.machine,
            "batches": trace.num_batches,
            "events": rows,
            "counts": dict(sorted(counts.items())),
            "checkpoints": counts.get(ev.KIND_CHECKPOINT, 0),
            "last_checkpoint": None if last_cp is None else last_cp["checkpoint"],
            "icount_range": [first_icount, last_icount],
            "vclock_end_ns": last_vclock,
            "end": None if not ended or last_cp is None else last_cp["text"],
        }
