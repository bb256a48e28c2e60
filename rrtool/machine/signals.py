"""Ending a run cleanly on SIGINT and SIGTERM, for every command that runs a guest.

Here rather than in the recorder so that `rrtool run`, which writes no trace,
does not import the trace writer (and pyarrow with it) to get it.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator
from types import FrameType


@contextlib.contextmanager
def stop_on_signals(stop: Callable[[], None]) -> Iterator[None]:
    """SIGINT and SIGTERM end the run at the next checkpoint, so the trace is closed cleanly."""

    def handler(signum: int, frame: FrameType | None) -> None:
        stop()

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, prev in old.items():
            signal.signal(sig, prev)
