"""Record mode of the event port: live behaviour, plus every event written to the trace."""

from __future__ import annotations

from collections.abc import Callable

from rrtool.machine.port import EventPort
from rrtool.schemas import events as ev
from rrtool.schemas.event import Event
from rrtool.schemas.writer import FLUSH_SECONDS, TraceWriter

#: The first batches are flushed sooner than the writer's steady FLUSH_SECONDS: the first as soon as one
#: checkpoint is complete, then after 0.125, 0.25, 0.5 s, ... doubling up to FLUSH_SECONDS. A recording
#: killed (SIGKILL) in its first second, when the writer's one-second rule had not fired yet, used to hold
#: no events at all; now it holds every checkpoint but the last few hundred milliseconds, for a handful
#: of small batches.
EARLY_FLUSH_SECONDS = 0.125


class RecordPort(EventPort):
    wants_digests = True

    def __init__(self, writer: TraceWriter | None, on_checkpoint: Callable[[Event], None] | None = None) -> None:
        super().__init__()
        self.writer = writer
        self._on_checkpoint = on_checkpoint
        self.counts: dict[str, int] = {}

    def _log(self, event: Event) -> None:
        assert self.writer is not None, "the recorder attaches its writer before the run"
        self.writer.append(event)
        self.counts[event.kind] = self.counts.get(event.kind, 0) + 1

    def checkpoint(self, cp: Event) -> list[Event]:
        events = super().checkpoint(cp)
        self._log(cp)
        self._flush_early()
        for event in events:
            self._log(event)
        if self._on_checkpoint is not None:
            self._on_checkpoint(cp)
        return events

    def sync_value(self, ev_: Event, produce: Callable[[], int]) -> int:
        value = super().sync_value(ev_, produce)
        self._log(ev_)
        return value

    def syscall(self, event: Event, perform: Callable[[], tuple[int, bytes | None]] | None) -> Event:
        super().syscall(event, perform)
        self._log(event)
        return event

    def schedule(self, event: Event, choose: Callable[[], tuple[int, int]]) -> Event:
        super().schedule(event, choose)
        self._log(event)
        return event

    def emit(self, event: Event) -> None:
        super().emit(event)
        self._log(event)

    def wait(self, event: Event, max_ns: int | None) -> int:
        warp = super().wait(event, max_ns)
        self._log(event)
        return warp

    def _flush_early(self) -> None:
        """Just after a new checkpoint row, every row before it belongs to a complete checkpoint: write those
        now if the early schedule says so (the writer's own rule takes over once it is at FLUSH_SECONDS)."""
        assert self.writer is not None
        batches = self.writer.batches
        interval = 0.0 if batches == 0 else EARLY_FLUSH_SECONDS * 2.0 ** (batches - 1)
        if interval < FLUSH_SECONDS and self.writer.seconds_since_flush() >= interval:
            self.writer.flush_complete_checkpoints()

    def idle_tick(self) -> None:
        """A sleep that outlasts the flush interval must not hold back the crash-safe copy."""
        assert self.writer is not None
        if self.writer.seconds_since_flush() >= FLUSH_SECONDS:
            self.writer.flush_complete_checkpoints()

    @property
    def events(self) -> int:
        return sum(self.counts.values())

    def kind_counts(self) -> dict[str, int]:
        return dict(sorted(self.counts.items()))


__all__ = ["RecordPort", "ev"]
