"""`rrtool export perfetto`: a timeline in the Chrome trace-event JSON format (ui.perfetto.dev, chrome://tracing).

One process (the machine) with one track per device. Every event is an
instant on its device's track, except:
- clock warps, which are slices on the `clock` track from warp start to warp
  account (the virtual time the guest slept);
- block requests, which are async slices from blk_submit to blk_complete
  (they overlap, so they cannot be plain slices on one track), plus a
  counter track with each block device's queue depth;
- on a Linux trace, the tasks: one track per task (thread id, named by its
  id and program), with a "running" slice for each stretch it had the CPU
  (from the scheduling decision that picked it to the next one; the first
  task from the start; a clock warp, when the CPU slept, cuts the slice),
  its system calls as instants named by the call, and its start and exit.
  The sched rows are the slices, not instants of the `linux` track.
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
    "task", "syscall", "args", "ret", "path", "fd",
]  # fmt: skip
#: Calls that create a task and return its id (clone with CLONE_THREAD makes a thread).
_CREATE = ("fork", "vfork", "clone", "clone3")
#: As in `rrtool.analysis.viewspec` (not imported: it needs Polars, which an export does not): the texts of the
#: sched rows that are no decision, clone's thread flag, the path an exec of the same program again names.
SCHED_START, SCHED_EXIT, CLONE_THREAD, SELF_EXE = "start", "exit", 0x10000, "/proc/self/exe"


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
        elif key == "args" and isinstance(value, list):
            out[key] = [hex(a) if isinstance(a, int) else a for a in value]
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


class _Tasks:
    """The tasks of a Linux trace, as the rows go by: which one has the CPU since when, what each runs.

    A task's program follows the `tasks` view: its last exec of another program (an exec of /proc/self/exe
    runs the same one again), else what its creator ran when it was created; the first task runs the trace's
    own (`exe` in the machine record).
    """

    def __init__(self, w: _Writer, program: str) -> None:
        self._w = w
        self._first_program = program
        self.program: dict[int, str] = {}
        self.thread: dict[int, bool] = {}
        self.order: list[int] = []
        #: The task with the CPU: (task, since ns, what the slice's args say of how it got it).
        self._running: tuple[int, int, dict[str, Any]] | None = None
        self._last_ns = 0

    def _track(self, task: int) -> int:
        if task not in self.program:
            self.program[task] = self._first_program
            self.order.append(task)
        return task

    def _run(self, task: int, ns: int, why: dict[str, Any]) -> None:
        self._track(task)
        self._running = (task, ns, why)

    def _stop(self, ns: int, ended: str) -> None:
        if self._running is None:
            return
        task, since, why = self._running
        self._running = None
        self._w.emit({"ph": "X", "pid": PID, "tid": task, "ts": _ts(since), "dur": _ts(max(0, ns - since)),
                      "name": "running", "cat": "sched", "args": {**why, "ended": ended}})  # fmt: skip

    def row(self, row: dict[str, Any]) -> bool:
        """Take a row that has a task; True when it is drawn here (on a task's track), not on its device's."""
        task, kind, ns = int(row["task"]), row["kind"], int(row["vclock_ns"])
        self._last_ns = max(self._last_ns, ns)
        if self._running is None and not self.order:
            self._run(task, ns, {"decision": "the first task", "seq": row["seq"]})
        elif kind != ev.KIND_SCHED and self._running is not None and self._running[0] != task:
            # The CPU went to another task without a decision: a thread that execs goes on as the leader.
            was = self._running[0]
            self._stop(ns, f"went on as task {task}")
            self._run(task, ns, {"decision": f"task {was} went on as this one", "seq": row["seq"]})
        if kind == ev.KIND_SCHED:
            text, value = row["text"], row["value"]
            if text == SCHED_START:
                self._track(task)
                parent = int(value) if value is not None else None
                if parent is not None and parent in self.program:
                    self.program[task] = self.program[parent]
                self._instant(task, row, "start", {"parent": parent})
            elif text == SCHED_EXIT:
                status = int(value) if value is not None else 0
                how = {"exit_code": status >> 8} if status & 0x7F == 0 else {"signal": status & 0x7F}
                self._instant(task, row, "exit", {"status": status, **how})
            else:
                self._stop(ns, text)
                self._run(int(value) if value is not None else task, ns,
                          {"decision": text, "slice": row["length"], "from": task, "seq": row["seq"]})  # fmt: skip
            return True
        if kind == ev.KIND_CLOCK_WARP and self._running is not None and self._running[0] == task:
            _, _, why = self._running
            self._stop(ns, "clock warp (the CPU slept)")
            end = ns + int(row["warp_ns"] or 0)
            self._last_ns = max(self._last_ns, end)
            self._running = (task, end, {**why, "after": "clock warp"})
            return False
        if kind == ev.KIND_SYSCALL:
            name, ret = row["syscall"], row["ret"]
            if name in ("execve", "execveat") and ret == 0 and row["path"] and row["path"] != SELF_EXE:
                self._track(task)
                self.program[task] = row["path"]
            elif name in _CREATE and isinstance(ret, int) and ret > 0:
                args = row["args"] or []
                if name == "clone" and args:
                    self.thread[ret] = bool(args[0] & CLONE_THREAD)
                elif name != "clone3":
                    self.thread[ret] = False
            self._instant(task, row, name or kind, None)
            return True
        return False

    def _instant(self, task: int, row: dict[str, Any], name: str, extra: dict[str, Any] | None) -> None:
        self._track(task)
        args = _args(row) if extra is None else {"seq": row["seq"], "icount": row["icount"], **extra}
        self._w.emit({"ph": "i", "s": "t", "pid": PID, "tid": task, "ts": _ts(int(row["vclock_ns"])), "name": name,
                      "cat": row["kind"], "args": args})  # fmt: skip

    def close(self) -> int:
        """End the last slice at the trace's end, name every task's track; the number of tracks."""
        self._stop(self._last_ns, "end of the trace")
        for task in self.order:
            kind = {True: " (thread)", False: ""}.get(self.thread.get(task, False), "")
            name = f"task {task} {self.program[task]}{kind}"
            self._w.emit({"ph": "M", "pid": PID, "tid": task, "name": "thread_name", "args": {"name": name}})
            self._w.emit({"ph": "M", "pid": PID, "tid": task, "name": "thread_sort_index",
                          "args": {"sort_index": task}})  # fmt: skip
        return len(self.order)


def _program(trace: TraceFile) -> str:
    """The program a Linux trace started (the path the guest sees), for naming the first task's track."""
    machine = trace.machine
    exe, argv = machine.get("exe"), machine.get("argv")
    if isinstance(exe, str) and exe:
        return exe
    if isinstance(argv, list) and argv and isinstance(argv[0], str):
        return argv[0]
    return Path(trace.metadata.get(ev.META_IMAGE_PATH, "program")).name


def _export(trace: TraceFile, output: Path, progress: Progress | None) -> PerfettoStats:
    stats = PerfettoStats()
    tracks: set[str] = set()
    in_flight: dict[tuple[str, int], str] = {}  # (device, req_id) -> slice name
    depth: dict[str, int] = {}
    with open(output, "w", encoding="utf-8") as f:
        w = _Writer(f)
        tasks = _Tasks(w, _program(trace))
        image = Path(trace.metadata.get(ev.META_IMAGE_PATH, "guest")).name
        w.emit({"ph": "M", "pid": PID, "name": "process_name", "args": {"name": f"rrtool {image}"}})
        for row in rows(trace, None, _COLUMNS, progress):
            if row["task"] is not None and tasks.row(row):
                continue
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
        task_tracks = tasks.close()
        meta = {k: v for k, v in trace.metadata.items() if k.startswith("rrtool.")}
        w.close(meta)
        stats.events = w.count
    stats.tracks = len(tracks) + task_tracks
    return stats
