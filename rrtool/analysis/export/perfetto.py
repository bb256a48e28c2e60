"""`rrtool export perfetto`: a timeline in the Chrome trace-event JSON format (ui.perfetto.dev, chrome://tracing).

One process (the machine) with one track per device. Every event is an
instant on its device's track, except:
- clock warps, which are slices on the `clock` track from warp start to warp
  account (the virtual time the guest slept);
- block requests, which are async slices from blk_submit to blk_complete
  (they overlap, so they cannot be plain slices on one track), plus a
  counter track with each block device's queue depth.
Time is virtual time (`vclock_ns`), written in microseconds as the format
wants, with nanosecond decimals. The JSON is written event by event.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from rrtool._paths import atomic_output, refuse_clobber
from rrtool.analysis.export.rows import rows
from rrtool.analysis.progress import Progress
from rrtool.schemas import events as ev
from rrtool.schemas.tracefile import TraceFile, open_tracefile

PID = 1
_PREVIEW = 32
_COLUMNS = [
    "seq", "checkpoint", "icount", "vclock_ns", "kind", "device", "cp_kind", "pc", "warp_ns", "value", "data",
    "req_id", "op", "sector", "sectors", "status", "order", "length", "card", "flags", "text",
]  # fmt: skip


@dataclass
class PerfettoStats:
    events: int = 0
    tracks: int = 0


def _ts(ns: int) -> float:
    return round(ns / 1000, 3)


def _tid(device: str) -> int:
    return ev.DEVICES.index(device) + 1 if device in ev.DEVICES else len(ev.DEVICES) + 1


def _args(row: dict[str, Any]) -> dict[str, Any]:
    """The row's non-null values, digests and addresses in hex, payloads as a short hex or text preview."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if value is None or key in ("kind", "device", "vclock_ns"):
            continue
        if key == "data":
            if row["kind"] in (ev.KIND_CONSOLE_IN, ev.KIND_CONSOLE_OUT):
                out["text"] = value[:200].decode("utf-8", "replace")
            else:
                out["data"] = value[:_PREVIEW].hex() + ("…" if len(value) > _PREVIEW else "")
            out["data_len"] = len(value)
        elif key in ("pc", "value") and isinstance(value, int):
            out[key] = hex(value)
        else:
            out[key] = value
    return out


class _Writer:
    def __init__(self, out: IO[str]) -> None:
        self._out = out
        self.count = 0
        out.write('{"displayTimeUnit": "ns", "traceEvents": [\n')

    def emit(self, event: dict[str, Any]) -> None:
        self._out.write((",\n" if self.count else "") + json.dumps(event, separators=(",", ":")))
        self.count += 1

    def close(self, other: dict[str, Any]) -> None:
        self._out.write('\n], "otherData": ' + json.dumps(other) + "}\n")


def export_perfetto(trace_path: str | Path, output: str | Path, *, progress: Progress | None = None) -> PerfettoStats:
    """Write the timeline of the trace to `output` (JSON). `progress`: batches read."""
    # Refused before the trace is opened: truncating the mapped trace to write onto it ended in SIGBUS.
    refuse_clobber(Path(output), [(Path(trace_path), "trace file")])
    with open_tracefile(trace_path) as trace, atomic_output(Path(output)) as tmp:
        return _export(trace, tmp, progress)


def _export(trace: TraceFile, output: Path, progress: Progress | None) -> PerfettoStats:
    stats = PerfettoStats()
    tracks: set[str] = set()
    in_flight: dict[tuple[str, int], str] = {}  # (device, req_id) -> slice name
    depth: dict[str, int] = {}
    with open(output, "w", encoding="utf-8") as f:
        w = _Writer(f)
        image = Path(trace.metadata.get(ev.META_IMAGE_PATH, "guest")).name
        w.emit({"ph": "M", "pid": PID, "name": "process_name", "args": {"name": f"rrtool {image}"}})
        for row in rows(trace, None, _COLUMNS, progress):
            device, kind, ts = row["device"], row["kind"], _ts(row["vclock_ns"])
            tid = _tid(device)
            if device not in tracks:
                tracks.add(device)
                w.emit({"ph": "M", "pid": PID, "tid": tid, "name": "thread_name", "args": {"name": device}})
                w.emit({"ph": "M", "pid": PID, "tid": tid, "name": "thread_sort_index", "args": {"sort_index": tid}})
            if kind == ev.KIND_CLOCK_WARP:
                w.emit({"ph": "X", "pid": PID, "tid": tid, "ts": ts, "dur": _ts(row["warp_ns"] or 0),
                        "name": "idle (clock warp)", "cat": "clock", "args": _args(row)})  # fmt: skip
            elif kind in (ev.KIND_BLK_SUBMIT, ev.KIND_BLK_COMPLETE):
                key = (device, int(row["req_id"] if row["req_id"] is not None else -1))
                if kind == ev.KIND_BLK_SUBMIT:
                    name = f"{row['op']} {row['sector']}+{row['sectors']}"
                    in_flight[key] = name
                    depth[device] = depth.get(device, 0) + 1
                    phase = "b"
                else:
                    name = in_flight.pop(key, f"{row['op']} {row['sector']}+{row['sectors']}")
                    depth[device] = max(0, depth.get(device, 0) - 1)
                    phase = "e"
                w.emit({"ph": phase, "pid": PID, "tid": tid, "ts": ts, "name": name, "cat": device,
                        "id": f"{device}:{key[1]}", "args": _args(row)})  # fmt: skip
                w.emit({"ph": "C", "pid": PID, "ts": ts, "name": f"{device} queue depth",
                        "args": {"depth": depth[device]}})  # fmt: skip
            else:
                name = kind if row["cp_kind"] is None else f"{kind} {row['cp_kind']}"
                w.emit({"ph": "i", "s": "t", "pid": PID, "tid": tid, "ts": ts, "name": name, "cat": kind,
                        "args": _args(row)})  # fmt: skip
        meta = {k: v for k, v in trace.metadata.items() if k.startswith("rrtool.")}
        w.close(meta)
        stats.events = w.count
    stats.tracks = len(tracks)
    return stats
