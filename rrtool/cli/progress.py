"""A progress bar on stderr for the commands that can take long (replay, diff, export, sql --parquet).

Shown only where a person is watching: stderr is a terminal, the command was not given `-q` or `--json`,
and the job has already run `delay` seconds (a quick command never flashes a bar). The bar is refreshed
from the caller's own thread, at most ten times a second, never by a background thread: in replay the
caller is the emulation thread, and a thread drawing the bar would make every device callback wait for
the GIL (see unicorn-notes.md, "Threads and the GIL"). While it is shown, what the guest prints goes above
it (rich redirects stdout), so the console stays readable.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import TYPE_CHECKING

from rich.console import Console

from rrtool.cli.console import err

if TYPE_CHECKING:
    # rich.progress is imported when a bar is first shown: ~15 ms that `run`, `record -q` and scripts never need.
    from rich.progress import Progress, TaskID

#: Seconds between two redraws.
REFRESH_S = 0.1


class Bar:
    def __init__(
        self,
        what: str,
        total: int = 0,
        *,
        enabled: bool,
        delay: float = 1.0,
        unit: str = "",
        console: Console | None = None,
    ) -> None:
        self.what = what
        self.unit = unit
        self.total = max(total, 0)
        self._console = console or err
        self.enabled = enabled and self._console.is_terminal and not self._console.is_dumb_terminal
        self.delay = delay
        self.shown = False
        self._start = time.monotonic()
        self._last = 0.0
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._done = 0
        self._note = ""

    def update(self, done: int, note: str = "", *, force: bool = False) -> None:
        """`done` of `total` units; `note` is shown after the bar (e.g. "checkpoint 12/420, 350 MIPS")."""
        self._done, self._note = done, note
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < REFRESH_S:
            return
        self._last = now
        if self._progress is None:
            if now - self._start < self.delay:
                return
            from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

            self._progress = Progress(
                TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                TextColumn("{task.fields[note]}"), TimeRemainingColumn(),
                console=self._console, auto_refresh=False, transient=False,
            )  # fmt: skip
            self._progress.start()
            self._task = self._progress.add_task(self.what, total=self.total or None, note=note)
            self.shown = True
        assert self._task is not None
        self._progress.update(self._task, completed=done, total=self.total or None, note=note)
        self._progress.refresh()

    def progress(self, done: int, total: int) -> None:
        """An `rrtool.analysis.progress.Progress`: `done` of `total` units (`unit` names them, if given)."""
        self.total = total
        self.update(done, f"{done:,}/{total:,} {self.unit}" if self.unit else "")

    def close(self) -> None:
        """Draw the last state (if the bar was shown) and give the terminal back."""
        if self._progress is not None:
            self.update(self._done, self._note, force=True)
            self._progress.stop()
            self._progress = None

    def __enter__(self) -> Bar:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
