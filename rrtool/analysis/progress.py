"""Progress of a long analysis job, reported to whoever asked (the CLI draws it; the library never does).

A job reports `(done, total)` in a unit it chooses (batches read for diff and exports, per mille of the
query for `sql --parquet`), from the thread doing the work.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

#: `progress(done, total)`.
Progress = Callable[[int, int], None]
T = TypeVar("T")


class Tally:
    """Counts units done of a known total and passes each step on to an optional `Progress`."""

    def __init__(self, total: int, progress: Progress | None) -> None:
        self.total = total
        self.done = 0
        self._progress = progress

    def step(self, n: int = 1) -> None:
        self.done += n
        if self._progress is not None:
            self._progress(self.done, self.total)

    def each(self, items: Iterable[T]) -> Iterator[T]:
        """`items`, one step counted as each is handed out (a batch is done once the caller asks for the next)."""
        for item in items:
            yield item
            self.step()
