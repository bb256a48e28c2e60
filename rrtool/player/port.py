"""Replay mode of the event port: every value comes from the trace, every output is checked against it.

The trace is consumed strictly in `seq` order: the machine's sequence of port
calls is deterministic, so the n-th call must match the n-th row. That one
rule catches a dropped event, an extra one, a shifted icount or a changed
value at the first place it shows.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import operator
from collections import deque
from collections.abc import Callable, Iterator

import pyarrow as pa

from rrtool.machine.port import FREE, EventPort, NothingCanWake, StopPlan
from rrtool.player.divergence import Divergence, TraceEnd
from rrtool.schemas import events as ev
from rrtool.schemas.event import Event
from rrtool.schemas.tracefile import TraceFile

#: Every field is compared except the row number and host time, which no replay can reproduce.
_COMPARED = tuple(f.name for f in dataclasses.fields(Event) if f.name not in ("seq", "host_ns"))
#: What a program passes into a system call whose result comes from the host: compared in replay, while the
#: result (`ret`, `data` and the digest of that data in `value`) is taken from the trace.
_SYSCALL_OUT = ("sysno", "syscall", "args", "path", "fd", "length", "data_digest", "task")


#: How many decoded batches time travel keeps (`ReplayPort._batch_events`).
DECODED_BATCHES = 8


#: Event's fields in its own order, so a row of column values builds an Event positionally.
_FIELDS = tuple(f.name for f in dataclasses.fields(Event))


def _values(column: pa.Array) -> list[object]:
    """A column as Python values.

    A dictionary column's own `to_pylist` builds an Arrow scalar per row (about 3 us each, and the events
    table has four such columns): it was most of what a replay spent per checkpoint. Its indices map
    through the few dictionary values instead. The trace reader has validated the batch in full, so every
    index is in range.
    """
    if isinstance(column, pa.DictionaryArray):
        values = column.dictionary.to_pylist()
        return [None if i is None else values[i] for i in column.indices.to_pylist()]
    plain: list[object] = column.to_pylist()
    return plain


def _events(batch: pa.RecordBatch) -> list[Event]:
    """A batch as events, column by column (the reader has checked that its columns are the events table's)."""
    columns = [_values(batch.column(name)) for name in _FIELDS]
    return [Event(*row) for row in zip(*columns, strict=True)]


@functools.cache
def _getter(fields: tuple[str, ...]) -> Callable[[Event], object]:
    """The compared fields of an event as one tuple, so a match (the usual case) costs one C call per side."""
    return operator.attrgetter(*fields)


class ReplayPort(EventPort):
    wants_digests = True

    def __init__(self, trace: TraceFile, on_checkpoint: Callable[[Event], None] | None = None) -> None:
        super().__init__()
        self._on_checkpoint = on_checkpoint
        self._trace = trace
        self._source: Iterator[list[Event]] = (_events(batch) for batch in trace.batches())
        self._decoded: dict[int, list[Event]] = {}  # time travel: batches decoded lately, by index
        self._rows: deque[Event] = deque()
        self._row_starts: list[int] | None = None  # the seq of each batch's first row, for `load`
        self._next_cp: Event | None = None
        self.checkpoints_verified = 0
        self.events_replayed = 0
        self.last_checkpoint = -1
        self.last_icount = 0

    # -- reading the log -------------------------------------------------
    def _fill(self) -> bool:
        for rows in self._source:
            if rows:
                self._rows.extend(rows)
                return True
        return False

    def _batch_events(self, index: int) -> list[Event]:
        """Batch `index` as events, kept for a while: a debugger restores near the same place again and again.

        Sharing is safe: the port only reads logged events (results are copied out of them).
        """
        rows = self._decoded.get(index)
        if rows is None:
            rows = _events(self._trace.batch(index)[0])
            self._decoded[index] = rows
            while len(self._decoded) > DECODED_BATCHES:
                del self._decoded[next(iter(self._decoded))]
        return rows

    def _peek(self) -> Event | None:
        if not self._rows and not self._fill():
            return None
        return self._rows[0]

    def _take(self, actual: Event) -> Event:
        if actual.kind != ev.KIND_CHECKPOINT:
            actual.checkpoint = self.current_checkpoint
        logged = self._peek()
        if logged is None:
            raise TraceEnd()
        self._rows.popleft()
        if logged is self._next_cp:
            self._next_cp = None
        self.events_replayed += 1
        if logged.kind != actual.kind or logged.device != actual.device:
            self._diverge(
                logged,
                actual,
                f"expected a {logged.kind} event from {logged.device}, "
                f"the machine produced a {actual.kind} event from {actual.device}",
            )
        if logged.icount != actual.icount:
            self._diverge(logged, actual, f"{logged.kind} icount differs")
        if logged.vclock_ns != actual.vclock_ns:
            self._diverge(logged, actual, f"{logged.kind} vclock_ns differs")
        return logged

    def _compare(self, logged: Event, actual: Event, fields: tuple[str, ...]) -> None:
        getter = _getter(fields)
        if getter(logged) == getter(actual):
            return
        for name in fields:
            want, got = getattr(logged, name), getattr(actual, name)
            if want != got:
                if isinstance(want, bytes) and isinstance(got, bytes):
                    self._diverge_bytes(logged, actual, name, want, got)
                self._diverge(logged, actual, f"{logged.kind} {name} differs")

    def _diverge_bytes(self, logged: Event, actual: Event, name: str, want: bytes, got: bytes) -> None:
        """Point at the first differing byte and show both sides around it (a payload can be long)."""
        at = next((i for i, (a, b) in enumerate(zip(want, got, strict=False)) if a != b), min(len(want), len(got)))
        lo = max(0, at - 24)
        raise Divergence(
            checkpoint=logged.checkpoint, icount=actual.icount,
            what=f"{logged.kind} {name} differs at byte {at} (lengths {len(want)} and {len(got)})",
            expected=f"{logged.kind} icount={logged.icount} {name}[{lo}:]={want[lo:at + 24]!r}",
            actual=f"{actual.kind} icount={actual.icount} {name}[{lo}:]={got[lo:at + 24]!r}",
        )  # fmt: skip

    def _diverge(self, logged: Event, actual: Event, what: str) -> None:
        raise Divergence(
            checkpoint=logged.checkpoint,
            icount=actual.icount,
            what=what,
            expected=logged.describe(),
            actual=actual.describe(),
        )

    # -- time travel: the cursor as part of a snapshot ------------------------
    def save(self) -> tuple[int, ...]:
        """Where the port is in the trace: every row before `events_replayed` (= its seq) was consumed."""
        return (self.events_replayed, self.checkpoints_verified, self.last_checkpoint, self.last_icount,
                self.current_checkpoint)  # fmt: skip

    def load(self, saved: object) -> None:
        """Put the cursor back where `save` found it: the batch holding that row, read again from there.

        Rows are numbered by `seq`, which runs from 0 without gaps (the order check), so the row to
        resume at is found from the batch index's row counts without reading the batches before it.
        """
        assert isinstance(saved, tuple)
        seq, self.checkpoints_verified, self.last_checkpoint, self.last_icount, self.current_checkpoint = saved
        if self._row_starts is None:
            starts, total = [], 0
            for info in self._trace.batch_index():
                starts.append(total)
                total += info.rows
            self._row_starts = starts
        starts = self._row_starts
        index = max(0, bisect.bisect_right(starts, seq) - 1)
        self.events_replayed = seq
        self._next_cp = None
        self._rows.clear()
        count = len(starts)
        while index < count:
            rows = self._batch_events(index)
            skip = seq - starts[index]
            index += 1
            if skip < len(rows):
                self._rows.extend(rows[skip:])
                break
        self._source = (self._batch_events(i) for i in range(index, count))

    @property
    def exhausted(self) -> bool:
        return self._peek() is None

    # -- the machine's side --------------------------------------------
    def plan(self) -> StopPlan:
        """The next logged checkpoint: stop exactly there and take that kind (timed sources are in the log)."""
        cp = self._upcoming_checkpoint()
        if cp is None:
            return FREE  # the trace ends here: the machine runs on until it asks for an event that is not there
        return StopPlan(at=cp.icount, kind=cp.cp_kind or ev.CP_PERIODIC, end_text=cp.text)

    def _upcoming_checkpoint(self) -> Event | None:
        if self._next_cp is None:
            i = 0
            while True:
                if i >= len(self._rows) and not self._fill():
                    return None
                if self._rows[i].kind == ev.KIND_CHECKPOINT:
                    self._next_cp = self._rows[i]
                    break
                i += 1
        return self._next_cp

    def checkpoint(self, cp: Event) -> list[Event]:
        logged = self._take(cp)
        self._compare(logged, cp, _COMPARED)
        cp.host_ns = logged.host_ns
        self.current_checkpoint = cp.checkpoint
        self.checkpoints_verified += 1
        self.last_checkpoint = cp.checkpoint
        self.last_icount = cp.icount
        if self._on_checkpoint is not None:
            self._on_checkpoint(cp)
        events: list[Event] = []
        while (nxt := self._peek()) is not None and nxt.kind in self.async_kinds:
            if (nxt.checkpoint, nxt.icount, nxt.vclock_ns) != (cp.checkpoint, cp.icount, cp.vclock_ns):
                # Inputs enter only at a checkpoint, stamped with it; one stamped elsewhere was moved.
                self._diverge(nxt, cp, f"a {nxt.kind} input is not stamped with the checkpoint it follows")
            self._rows.popleft()
            self.events_replayed += 1
            events.append(nxt)
        return events

    def sync_value(self, ev_: Event, produce: Callable[[], int]) -> int:
        logged = self._take(ev_)
        assert logged.value is not None
        ev_.value = logged.value
        return logged.value

    def syscall(self, event: Event, perform: Callable[[], tuple[int, bytes | None]] | None) -> Event:
        """What the program passed is compared; what the host returned comes from the trace (see EventPort)."""
        logged = self._take(event)
        if perform is None:
            self._compare(logged, event, _COMPARED)
            return event
        self._compare(logged, event, _SYSCALL_OUT)
        event.ret, event.data, event.value = logged.ret, logged.data, logged.value
        return event

    def schedule(self, event: Event, choose: Callable[[], tuple[int, int]]) -> Event:
        """The scheduler's decision comes from the trace: which task runs next and its slice (the platform
        checks that the task can run). Why it decided (`text`) and who ran are recomputed and compared."""
        logged = self._take(event)
        self._compare(logged, event, ("task", "text"))
        event.value, event.length = logged.value, logged.length
        return event

    def emit(self, event: Event) -> None:
        logged = self._take(event)
        self._compare(logged, event, _COMPARED)

    def wait(self, event: Event, max_ns: int | None) -> int:
        nxt = self._peek()
        if nxt is not None and nxt.kind == ev.KIND_CHECKPOINT and nxt.cp_kind == ev.CP_END:
            raise NothingCanWake()  # the recording found nothing that could wake the guest here
        logged = self._take(event)
        warp = logged.warp_ns or 0
        if max_ns is not None and warp > max_ns:
            event.warp_ns = warp
            self._diverge(logged, event, f"recorded warp of {warp} ns overshoots the next timer deadline ({max_ns} ns)")
        event.warp_ns = warp
        return warp
