"""What every network backend shares: the card it serves and how frames become events."""

from __future__ import annotations

import threading
from collections.abc import Callable

from rrtool.schemas.event import Event
from rrtool.schemas.names import KIND_NET_RX


class FrameBackend:
    """A backend feeding one card: `deliver` turns an inbound frame into a net_rx event on the queue."""

    def __init__(self, card: int) -> None:
        self.card = card
        self._post: Callable[[Event], None] | None = None
        self._closed = threading.Event()

    def start(self, post: Callable[[Event], None]) -> None:
        self._post = post
        self.open()

    def open(self) -> None:
        """Open sockets/devices and start threads (after the port is ready for events)."""

    def deliver(self, frame: bytes) -> None:
        if self._post is not None and not self._closed.is_set():
            self._post(Event(KIND_NET_RX, f"net{self.card}", 0, 0, card=self.card, length=len(frame), flags=0,
                             data=frame))  # fmt: skip

    def alive(self) -> bool:
        return not self._closed.is_set()

    def close(self) -> None:
        self._closed.set()

    def send(self, frame: bytes) -> None:
        raise NotImplementedError
