"""`pcap` networking: frames injected from a capture file at their capture times, in virtual time.

A deterministic source for tests: the first frame arrives at virtual time
`start` (default 1 ms), each later one after the same gap as in the capture.
Frames the guest sends are dropped. The backend is *timed*: the machine asks
it for its next due time and stops there, so every run sees the same frames
at the same icounts (and the trace still holds them, so replay needs no file).
"""

from __future__ import annotations

from pathlib import Path

import dpkt

from rrtool.board.net.base import FrameBackend
from rrtool.board.net.spec import NetError


class PcapNet(FrameBackend):
    def __init__(self, card: int, path: str, start_ns: int = 1_000_000) -> None:
        super().__init__(card)
        self._frames: list[tuple[int, bytes]] = []
        file = Path(path)
        try:
            with file.open("rb") as f:
                reader = dpkt.pcap.UniversalReader(f)
                first: float | None = None
                for ts, frame in reader:
                    first = ts if first is None else first
                    self._frames.append((start_ns + round((float(ts) - first) * 1e9), bytes(frame)))
        except OSError as exc:
            raise NetError(f"pcap {path}: {exc.strerror}") from None
        except (ValueError, dpkt.UnpackError, dpkt.NeedData) as exc:
            raise NetError(f"pcap {path}: not a readable capture ({exc})") from None
        self._next = 0

    def next_due_ns(self) -> int | None:
        return self._frames[self._next][0] if self._next < len(self._frames) else None

    def poll(self, vclock_ns: int) -> None:
        """Deliver every frame due by `vclock_ns` (called at checkpoints, on the emulation thread)."""
        while self._next < len(self._frames) and self._frames[self._next][0] <= vclock_ns:
            self.deliver(self._frames[self._next][1])
            self._next += 1

    def alive(self) -> bool:
        return self._next < len(self._frames)

    def send(self, frame: bytes) -> None:
        return None
