"""Host backends: threads that only feed the event queue, never the machine."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

from rrtool.schemas.event import Event
from rrtool.schemas.events import KIND_CONSOLE_IN


class ConsoleInput:
    """Console input from a file descriptor (stdin by default), read on its own thread."""

    def __init__(self, fd: int = 0) -> None:
        self._fd = fd
        self._eof = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, post: Callable[[Event], None]) -> None:
        def pump() -> None:
            try:
                while True:
                    data = os.read(self._fd, 4096)
                    if not data:
                        break
                    post(Event(KIND_CONSOLE_IN, "console", 0, 0, data=data))
            except OSError:
                pass
            finally:
                self._eof.set()

        self._thread = threading.Thread(target=pump, name="console-input", daemon=True)
        self._thread.start()

    def alive(self) -> bool:
        return not self._eof.is_set()

    def close(self) -> None:
        return None  # a daemon thread blocked in read(); it ends with the process
