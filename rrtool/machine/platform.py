"""The boundary between the machine core and a platform (the SDK board today, Linux next).

The core owns the CPU, the counter, the run loop, checkpoints, digests, the
virtual clock and the port; a platform owns how the guest reaches the outside
(port I/O devices, or system calls), which interrupts it can raise, and what
a guest reset puts back. The core calls a platform only through this
protocol, so a second platform lands beside `rrtool/board/`, not inside the
core.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from rrtool.machine.config import Fault
from rrtool.machine.units import Unit

if TYPE_CHECKING:
    from rrtool.machine.machine import Machine


class Platform(Protocol):
    @property
    def units(self) -> Sequence[Unit]:
        """The platform's units, in digest order (the core puts its own clock first)."""
        ...

    @property
    def timers(self) -> int:
        """How many guest timers the core's clock keeps."""
        ...

    def attach(self, machine: Machine) -> None:
        """Install the platform's CPU hooks on `machine.emu`; called once, after the core is set up."""
        ...

    def timers_fired(self, mask: int) -> None:
        """The clock fired these timers at a checkpoint (raise their interrupt lines)."""
        ...

    def pending_interrupt(self) -> tuple[int, int] | None:
        """(mask of lines pending and enabled, guest vector) when one can be delivered, else None."""
        ...

    def before_checkpoint(self, icount: int) -> None:
        """Flush what a device buffers (console output) so the checkpoint sees it logged."""
        ...

    def reset(self) -> None:
        """The guest restarted: put every device back to its power-on state (the disk keeps its data)."""
        ...

    def wants_idle(self) -> bool:
        """After a stop: the guest is blocked in the platform (a sleeping system call) and idles as after hlt."""
        ...

    def on_fault(self, fault: Fault) -> bool:
        """A precise CPU fault: True when the platform delivered it to the guest, which then runs on.

        Otherwise the run ends with the fault; the platform may fill in `fault.signal` and `fault.message`.
        """
        ...

    def current_task(self) -> int | None:
        """The task the CPU runs (Linux: a thread id), stamped on every row; None for a platform without tasks."""
        ...

    def at_stop(self) -> None:
        """Between two slices, after the stop's checkpoint: the platform may switch what the CPU runs (the
        Linux scheduler). Called at every stop in every mode; it must decide only from guest state and the
        icount, so a replay (which stops in fewer places) makes the same decisions."""
        ...

    def deadline(self) -> int | None:
        """An icount the platform needs a stop at in every mode (the end of a task's time slice), or None."""
        ...

    def memory_digest(self) -> int | None:
        """A digest of guest memory the platform computes itself (several address spaces), or None: the
        machine then hashes `memory_ranges` of its RAM."""
        ...

    def memory_ranges(self) -> list[tuple[int, int]] | None:
        """The guest memory the memory digest covers, as [start, end) ranges; None for all of RAM.

        Memory outside the ranges must be zero and unreachable by the guest (Linux: unmapped pages).
        """
        ...
