"""`tap` networking: a Linux TAP device, so the host's own tools (ping, a UDP client) reach the guest.

Needs root (or CAP_NET_ADMIN). The device is created when the run starts
and disappears when it ends; configure its address on the host side
(`ip addr add 10.0.2.2/24 dev rr0; ip link set rr0 up`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import struct
import threading

from rrtool.board.net.base import FrameBackend
from rrtool.board.net.spec import NetError

_TUNSETIFF = 0x400454CA
_IFF_TAP = 0x0002
_IFF_NO_PI = 0x1000


class TapNet(FrameBackend):
    def __init__(self, card: int, ifname: str) -> None:
        super().__init__(card)
        if not ifname or len(ifname) > 15:
            raise NetError(f"tap: bad interface name {ifname!r}")
        self.ifname = ifname
        self._fd = -1
        self._thread: threading.Thread | None = None

    def open(self) -> None:
        try:
            fd = os.open("/dev/net/tun", os.O_RDWR)
        except OSError as exc:
            raise NetError(f"tap: cannot open /dev/net/tun: {exc.strerror}") from None
        try:
            fcntl.ioctl(fd, _TUNSETIFF, struct.pack("16sH", self.ifname.encode(), _IFF_TAP | _IFF_NO_PI))
        except OSError as exc:
            os.close(fd)
            raise NetError(f"tap {self.ifname}: {exc.strerror} (a TAP device needs root)") from None
        self._fd = fd
        self._thread = threading.Thread(target=self._loop, name=f"tap-net{self.card}", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._closed.is_set():
            ready, _, _ = select.select([self._fd], [], [], 0.5)
            if not ready:
                continue
            try:
                frame = os.read(self._fd, 65535)
            except OSError:
                return
            self.deliver(frame)

    def send(self, frame: bytes) -> None:
        if self._fd >= 0:
            with contextlib.suppress(OSError):  # link down: the frame is lost, as on a wire
                os.write(self._fd, frame)

    def close(self) -> None:
        super().close()
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
