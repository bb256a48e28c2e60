"""`socket` networking: one Ethernet frame per UDP datagram between two loopback endpoints.

The framing of QEMU's `-netdev dgram`, so two rrtool machines (or a test
script) can exchange frames: `--net socket,listen=127.0.0.1:9000,peer=127.0.0.1:9001`.
"""

from __future__ import annotations

import contextlib
import socket
import threading

from rrtool.board.net.base import FrameBackend
from rrtool.board.net.spec import NetError, parse_endpoint


class DgramNet(FrameBackend):
    def __init__(self, card: int, listen: str, peer: str) -> None:
        super().__init__(card)
        self._listen = parse_endpoint(listen, "socket listen")
        self._peer = parse_endpoint(peer, "socket peer")
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def open(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind(self._listen)
        except OSError as exc:
            sock.close()
            raise NetError(f"socket listen {self._listen[0]}:{self._listen[1]}: {exc.strerror}") from None
        sock.settimeout(0.5)
        self._sock = sock
        self._thread = threading.Thread(target=self._loop, name=f"dgram-net{self.card}", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        assert self._sock is not None
        while not self._closed.is_set():
            try:
                frame = self._sock.recv(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            self.deliver(frame)

    def send(self, frame: bytes) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.sendto(frame, self._peer)

    def close(self) -> None:
        super().close()
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self._sock is not None:
            self._sock.close()
