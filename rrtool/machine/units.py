"""Units: each source of machine state or of events declares itself once, and a registry does the rest.

A unit is one device or event source (the virtual clock, the console, the RTC,
a network card, ...). It says which event kinds it writes to the trace, which
of those are *async* (they come from the outside world and are applied at a
checkpoint), how such an event is applied, and what its state is, both as
bytes for the checkpoint digest and as a saved object for snapshots. This is
QEMU's `replay-net.c` pattern (save, load and run of one source side by side)
turned into a registry: nothing else in the tree switches on an event kind or
keeps a hand-written list of async kinds in step with the devices.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar, Protocol

import xxhash

from rrtool.machine.config import MachineConfig
from rrtool.schemas.event import Event


class Unit(Protocol):
    """One device or event source, as the machine core sees it."""

    @property
    def name(self) -> str:
        """The `device` column of the events it writes, and its name in the digest."""
        ...

    @property
    def kinds(self) -> tuple[str, ...]:
        """Every event kind it writes to the trace."""
        ...

    @property
    def applies(self) -> tuple[str, ...]:
        """The kinds among `kinds` that come from the outside world and are applied at a checkpoint."""
        ...

    def apply(self, event: Event) -> None:
        """Apply an async event of one of the `applies` kinds (called at a checkpoint, on the CPU thread)."""
        ...

    def state(self) -> bytes:
        """Deterministic bytes of all guest-visible state, for the device digest at every checkpoint."""
        ...

    def save(self) -> object:
        """A copy of the state that `load` can bring back (snapshots); never shared with the live unit."""
        ...

    def load(self, saved: object) -> None: ...


class UnitBase:
    """What most units share: no events unless declared, and `save`/`load` of the attributes in `SAVED`.

    Deep copies both ways, so a snapshot never aliases the live unit's lists or dicts and can be
    loaded twice. Host-side things (backends, sinks) are deliberately not in `SAVED`.
    """

    name: str
    kinds: tuple[str, ...] = ()
    applies: tuple[str, ...] = ()
    SAVED: ClassVar[tuple[str, ...]] = ()

    def apply(self, event: Event) -> None:
        raise AssertionError(f"{type(self).__name__} applies no {event.kind} events")

    def save(self) -> object:
        return {name: _copy(getattr(self, name)) for name in self.SAVED}

    def load(self, saved: object) -> None:
        assert isinstance(saved, dict)
        for name in self.SAVED:
            setattr(self, name, _copy(saved[name]))


def _copy(value: object) -> object:
    """A deep copy, but none for the immutable values most state is made of (deepcopy's dispatch is slow)."""
    return value if isinstance(value, int | str | bytes | None) else copy.deepcopy(value)


class UnitError(Exception):
    """Two units claim the same name or the same async event."""


class EventRejected(Exception):
    """An input event from a trace that no live run could have produced here; replay reports it as a divergence.

    Live backends only post events for devices that exist and requests in flight, so in replay
    an event naming a missing device, or a completion of a request that is not in flight, means
    the trace was edited or damaged, not that the guest behaved differently.
    """

    def __init__(self, event: Event, reason: str) -> None:
        super().__init__(reason)
        self.event = event
        self.reason = reason


class Units:
    """The registry: dispatch of async events, the device digest, save and load of everything."""

    def __init__(self, units: Iterable[Unit]) -> None:
        self._units: list[Unit] = []
        self._appliers: dict[tuple[str, str], Unit] = {}
        for unit in units:
            self.add(unit)

    def add(self, unit: Unit) -> None:
        if any(u.name == unit.name for u in self._units):
            raise UnitError(f"two units named {unit.name!r}")
        self._units.append(unit)
        for kind in unit.applies:
            self._appliers[(kind, unit.name)] = unit

    def __iter__(self) -> Iterator[Unit]:
        return iter(self._units)

    @property
    def kinds(self) -> frozenset[str]:
        return frozenset(k for u in self._units for k in u.kinds)

    @property
    def async_kinds(self) -> frozenset[str]:
        """Kinds that sit after a checkpoint row in the trace and are applied there."""
        return frozenset(kind for kind, _ in self._appliers)

    def apply(self, event: Event) -> None:
        """Hand an async event to the unit it names; one for a device this machine lacks is `EventRejected`."""
        unit = self._appliers.get((event.kind, event.device))
        if unit is None:
            raise EventRejected(event, f"a {event.kind} event for {event.device}, which this machine does not have")
        unit.apply(event)

    def digest(self) -> int:
        """xxh3-64 of every unit's name and state, in order: one call over the joined bytes, the same value as
        feeding them one by one, instead of two calls per unit (this runs at every checkpoint)."""
        parts: list[bytes] = []
        for unit in self._units:
            parts.append(unit.name.encode())
            parts.append(unit.state())
        return int(xxhash.xxh3_64_intdigest(b"".join(parts)))

    def save(self) -> dict[str, Any]:
        return {unit.name: unit.save() for unit in self._units}

    def load(self, saved: dict[str, Any]) -> None:
        for unit in self._units:
            unit.load(saved[unit.name])


class ShapeUnit(UnitBase):
    """The machine's shape as a unit of the digest: its state is the config, so every checkpoint covers it.

    Replay builds the machine from the trace's `rrtool.machine` record. Some of its fields change
    what replay computes (RAM size, ns per instruction, the memory digest cadence), but the
    checkpoint cadence does not: replay stops where the log says. With the whole record in the
    digest, an edited record diverges at the first checkpoint instead of replaying a machine
    that only happens to agree with the log.
    """

    name = "shape"

    def __init__(self, config: MachineConfig) -> None:
        self._state = json.dumps(config.to_dict(), sort_keys=True).encode()

    def state(self) -> bytes:
        return self._state
