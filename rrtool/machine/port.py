"""The event port: the one door between the machine and the outside world.

Devices never know whether the run is live, recorded or replayed; they call
the port, and the port's mode decides where values come from (QEMU's
`replay_mode` idea). Live mode lives here; record and replay subclass it in
`rrtool.recorder` and `rrtool.player`.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from rrtool.schemas.event import Event

#: A long sleep is cut in slices of this many seconds so the port can do housekeeping between them.
IDLE_SLICE_S = 0.25


class PortError(Exception):
    """The port refused the machine's next step (replay: a divergence, the end of the trace).

    Hooks pass these on to the run loop (`Machine.hook_failed`); anything else a platform's hook
    raises is its own failure, which must end the run with one line instead of a traceback.
    """


class NothingCanWake(Exception):
    """The guest sleeps with no timer armed and no backend that could ever deliver an event."""


class Backend(Protocol):
    """A host-side event source running on its own thread(s)."""

    def start(self, post: Callable[[Event], None]) -> None: ...
    def alive(self) -> bool: ...
    def close(self) -> None: ...


class TimedBackend(Backend, Protocol):
    """A backend whose events are due at virtual times (a capture replayed on the virtual clock)."""

    def next_due_ns(self) -> int | None: ...
    def poll(self, vclock_ns: int) -> None: ...


@dataclass(frozen=True, slots=True)
class StopPlan:
    """Where and why the machine stops next, as the port decides it (QEMU's replay_mode in one answer).

    Live and record plan from the host (a timed backend's next frame); replay reads the
    next logged checkpoint. With `kind` None the machine picks its own stops and their
    kinds (device requests, interrupts after sti, the checkpoint cadence); with a `kind`
    it stops exactly at `at` and takes that checkpoint there, nothing else.
    """

    #: Stop exactly at this icount (None: nowhere in particular).
    at: int | None = None
    #: The checkpoint kind taken at `at`; None leaves stops and kinds to the machine.
    kind: str | None = None
    #: For an end checkpoint: how the run ended ("reason: message").
    end_text: str | None = None
    #: Virtual ns at which a timed host source has an event due (the machine stops there and can warp there).
    io_due_ns: int | None = None


#: The plan when nothing outside the machine asks for a stop.
FREE = StopPlan()


class EventPort:
    """Live mode: values come from the host, async events from backends via a queue."""

    #: State digests cost time and only record and replay use them.
    wants_digests = False

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Event | None] = queue.SimpleQueue()
        self._backends: list[Backend] = []
        self._held: list[Event] = []
        self._timed: list[TimedBackend] = []  # taken off the queue by wait(), applied at the next checkpoint
        self._stop = threading.Event()
        self.t0 = time.monotonic_ns()
        self.current_checkpoint = -1  # stamped on every event between two checkpoints
        self.async_kinds: frozenset[str] = frozenset()
        self._waker: Callable[[], None] | None = None

    # -- backends -------------------------------------------------------
    def attach(self, backend: Backend) -> None:
        """Start a backend; its events reach the machine only at checkpoints."""
        self._backends.append(backend)
        if hasattr(backend, "next_due_ns"):
            self._timed.append(backend)  # type: ignore[arg-type]
        backend.start(self._post)

    def _post(self, event: Event) -> None:
        """A backend's event (from its own thread): queue it, then have the busy CPU stop to take it."""
        self._queue.put(event)
        self._wake()

    def _wake(self) -> None:
        waker = self._waker
        if waker is not None:
            waker()

    def set_waker(self, waker: Callable[[], None]) -> None:
        """The machine's way to be stopped from any thread when something is posted (QEMU's vCPU kick).

        It only moves the next checkpoint closer; the queue is still drained at a checkpoint only.
        """
        self._waker = waker

    def has_pending(self) -> bool:
        """Whether something posted waits for the next checkpoint (or a stop was asked for)."""
        return bool(self._held) or not self._queue.empty()

    def request_stop(self) -> None:
        """Ask the run to end at the next checkpoint (signal handlers call this)."""
        self._stop.set()
        self._queue.put(None)
        self._wake()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def close(self) -> None:
        for backend in self._backends:
            backend.close()

    # -- the machine's side --------------------------------------------
    def connect(self, async_kinds: frozenset[str]) -> None:
        """The machine names the kinds its units apply at checkpoints (replay reads them after each one)."""
        self.async_kinds = async_kinds

    def plan(self) -> StopPlan:
        """Where and why the machine stops next: here, when a timed backend has an event due."""
        due = [d for b in self._timed if (d := b.next_due_ns()) is not None]
        return StopPlan(io_due_ns=min(due)) if due else FREE

    def checkpoint(self, cp: Event) -> list[Event]:
        """Take what the backends queued; the machine applies the returned events in order."""
        cp.host_ns = time.monotonic_ns() - self.t0
        self.current_checkpoint = cp.checkpoint
        for backend in self._timed:
            backend.poll(cp.vclock_ns)
        events: list[Event] = self._held
        self._held = []
        while True:
            try:
                ev = self._queue.get_nowait()
            except queue.Empty:
                break
            if ev is not None:
                events.append(ev)
        for ev in events:
            ev.checkpoint = cp.checkpoint
            ev.icount = cp.icount
            ev.vclock_ns = cp.vclock_ns
        return events

    def sync_value(self, ev: Event, produce: Callable[[], int]) -> int:
        """A synchronous read of a nondeterministic value (RTC, RNG)."""
        ev.checkpoint = self.current_checkpoint
        value = produce()
        ev.value = value
        return value

    def syscall(self, ev: Event, perform: Callable[[], tuple[int, bytes | None]] | None) -> Event:
        """A system call: `ev` holds what the program passed (number, arguments, path, digest of data out).

        With `perform` (a call whose result comes from the host: files, clocks, randomness, sockets) the
        live and record modes call it for (ret, bytes in) and replay takes both from the trace instead,
        never touching the host. Without it the platform computed `ev.ret` itself (memory, signals,
        identity) and replay checks it against the trace. Returns the event, results filled in.
        """
        ev.checkpoint = self.current_checkpoint
        if perform is not None:
            ev.ret, ev.data = perform()
        return ev

    def schedule(self, ev: Event, choose: Callable[[], tuple[int, int]]) -> Event:
        """A scheduling decision (the Linux platform's): `choose` gives (next task, slice in instructions)
        live and when recording; replay follows the trace's decision instead. `ev` holds the task that ran
        and why the scheduler decided; returns it with `value` (next task) and `length` (slice) filled in."""
        ev.checkpoint = self.current_checkpoint
        ev.value, ev.length = choose()
        return ev

    def emit(self, ev: Event) -> None:
        """A deterministic output or note (console output, interrupt delivered)."""
        ev.checkpoint = self.current_checkpoint

    def save(self) -> object:
        """The port's position for a snapshot; only a replay can have one (its inputs come from a file)."""
        raise NotImplementedError("only a replay can be snapshotted: a live or recording port has the outside world")

    def load(self, saved: object) -> None:
        raise NotImplementedError("only a replay can be snapshotted")

    def idle_tick(self) -> None:
        """Called every IDLE_SLICE_S of a long sleep (the recorder flushes its buffer here)."""

    def wait(self, ev: Event, max_ns: int | None) -> int:
        """Sleep while the guest idles: until a host event arrives or `max_ns` passes.

        Returns the virtual ns to warp (the real time waited, bounded by `max_ns`),
        and fills `ev.warp_ns` with it.
        """
        ev.checkpoint = self.current_checkpoint
        start = time.monotonic_ns()
        if max_ns is not None and max_ns <= 0:
            ev.warp_ns = 0
            return 0
        woke = bool(self._held) or not self._queue.empty() or self._stop.is_set()
        deadline = None if max_ns is None else start + max_ns
        while not woke:
            if deadline is None and not any(b.alive() for b in self._backends):
                raise NothingCanWake()
            left = IDLE_SLICE_S if deadline is None else min(IDLE_SLICE_S, (deadline - time.monotonic_ns()) / 1e9)
            if left <= 0:
                break
            try:
                item = self._queue.get(timeout=left)
            except queue.Empty:
                self.idle_tick()
                continue
            if item is not None:
                self._held.append(item)
            woke = True
        waited = time.monotonic_ns() - start
        # Woken by the deadline: land on it exactly; by an event: at the real time waited.
        warp = max_ns if (max_ns is not None and not woke) else waited
        if max_ns is not None:
            warp = min(warp, max_ns)
        ev.warp_ns = warp
        return warp
