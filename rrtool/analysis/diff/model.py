"""What a diff is asked to do (`DiffOptions`) and what it found (`DiffResult`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rrtool.schemas import events as ev

#: Columns that say where an event sits in its file rather than what happened: an inserted event
#: shifts `seq` of everything after it, an inserted checkpoint shifts `checkpoint`. They are
#: reported but never compared, so one insertion does not make the rest of the trace "changed".
POSITION_COLUMNS = ("seq", "checkpoint")
#: Columns that name an event's stream; events are only ever paired within one stream.
STREAM_COLUMNS = ("kind", "device")
#: Nondeterministic by nature and for analysis only: ignored unless asked for.
HOST_TIME_COLUMNS = ("host_ns",)
#: File metadata that differs between any two recordings.
DEFAULT_IGNORED_META = (ev.META_START_TIME, ev.META_HOST)


@dataclass(frozen=True)
class DiffOptions:
    """What to leave out of the comparison, and how far to look when resynchronising."""

    ignore_kinds: frozenset[str] = frozenset()
    ignore_columns: frozenset[str] = frozenset()
    ignore_meta: frozenset[str] = frozenset(DEFAULT_IGNORED_META)
    compare_host_time: bool = False
    #: Events of a stream that did not line up at the same icount are paired when their checkpoints
    #: are at most this far apart (after an inserted event or a drift in icount).
    resync_checkpoints: int = 2
    #: How many differences to keep in the result (all are counted).
    max_differences: int = 20

    def compared_columns(self) -> list[str]:
        """The columns whose values must agree for two paired events to count as matched."""
        skip = set(POSITION_COLUMNS) | set(STREAM_COLUMNS) | set(self.ignore_columns)
        if not self.compare_host_time:
            skip |= set(HOST_TIME_COLUMNS)
        return [c for c in ev.COLUMN_NAMES if c not in skip]


@dataclass
class KindSummary:
    """Per kind: how many events and payload bytes each side has, and how they lined up."""

    kind: str
    events_a: int = 0
    events_b: int = 0
    bytes_a: int = 0
    bytes_b: int = 0
    matched: int = 0
    changed: int = 0
    only_a: int = 0
    only_b: int = 0
    changed_columns: dict[str, int] = field(default_factory=dict)

    @property
    def differs(self) -> bool:
        return bool(self.changed or self.only_a or self.only_b)

    def to_dict(self) -> dict[str, Any]:
        return {
            "events_a": self.events_a, "events_b": self.events_b, "bytes_a": self.bytes_a, "bytes_b": self.bytes_b,
            "matched": self.matched, "changed": self.changed, "only_a": self.only_a, "only_b": self.only_b,
            "changed_columns": dict(sorted(self.changed_columns.items())),
        }  # fmt: skip


@dataclass
class Difference:
    """One event that is not the same on both sides: changed, only in a, or only in b.

    `a` and `b` hold the event's non-null values on each side (None for the
    side that lacks it); `fields` lists the compared columns that differ.
    """

    status: str  # "changed", "only_a", "only_b"
    kind: str
    device: str
    a: dict[str, Any] | None
    b: dict[str, Any] | None
    fields: list[str] = field(default_factory=list)

    def _side(self) -> dict[str, Any]:
        side = self.a if self.a is not None else self.b
        assert side is not None
        return side

    @property
    def checkpoint(self) -> int:
        return int(self._side()["checkpoint"])

    @property
    def icount(self) -> int:
        return int(self._side()["icount"])

    def sort_key(self) -> tuple[int, int, int]:
        side = self._side()
        return int(side["icount"]), int(side["checkpoint"]), int(side["seq"])

    def to_dict(self) -> dict[str, Any]:
        def plain(row: dict[str, Any] | None) -> dict[str, Any] | None:
            if row is None:
                return None
            return {k: (v.hex() if isinstance(v, bytes) else v) for k, v in row.items()}

        return {
            "status": self.status, "kind": self.kind, "device": self.device,
            "checkpoint": self.checkpoint, "icount": self.icount, "fields": self.fields,
            "a": plain(self.a), "b": plain(self.b),
        }  # fmt: skip


@dataclass
class DiffResult:
    """The outcome: per-kind summaries, the first differences in trace order, metadata and notes."""

    a: str
    b: str
    kinds: dict[str, KindSummary]
    differences: list[Difference]
    metadata: list[tuple[str, str | None, str | None]]
    notes: list[str]
    complete_a: bool
    complete_b: bool

    @property
    def equivalent(self) -> bool:
        """Same rows, same checked metadata, and both finished or both cut short (a crash is a difference)."""
        same_end = self.complete_a == self.complete_b
        return same_end and not self.metadata and not any(k.differs for k in self.kinds.values())

    @property
    def first(self) -> Difference | None:
        return self.differences[0] if self.differences else None

    def totals(self) -> KindSummary:
        total = KindSummary("total")
        for k in self.kinds.values():
            for name in ("events_a", "events_b", "bytes_a", "bytes_b", "matched", "changed", "only_a", "only_b"):
                setattr(total, name, getattr(total, name) + getattr(k, name))
            for col, n in k.changed_columns.items():
                total.changed_columns[col] = total.changed_columns.get(col, 0) + n
        return total

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "equivalent": self.equivalent,
            "complete_a": self.complete_a,
            "complete_b": self.complete_b,
            "first": None if self.first is None else self.first.to_dict(),
            "differences": [d.to_dict() for d in self.differences],
            "kinds": {name: k.to_dict() for name, k in sorted(self.kinds.items())},
            "totals": self.totals().to_dict(),
            "metadata": [{"key": k, "a": va, "b": vb} for k, va, vb in self.metadata],
            "notes": self.notes,
        }
