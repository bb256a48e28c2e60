"""The board's part of the machine configuration: which disk and network cards the guest sees."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rrtool.board.nic import NicConfig


@dataclass(frozen=True)
class BoardConfig:
    """Recorded beside `MachineConfig` in the trace's `rrtool.machine` record, so replay builds the same board."""

    disk_sectors: int = 0  # 0: no disk attached
    nics: tuple[NicConfig, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"disk_sectors": self.disk_sectors, "nics": [n.to_dict() for n in self.nics]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BoardConfig:
        """The board's part of a trace's `rrtool.machine` record, which is hostile input: ValueError if odd."""
        sectors = data.get("disk_sectors", 0)
        if type(sectors) is not int or not 0 <= sectors <= MAX_DISK_SECTORS:
            raise ValueError(f"disk_sectors is {sectors!r}, not a disk size rrtool can attach")
        nics = data.get("nics", [])
        if not isinstance(nics, list) or len(nics) > MAX_NICS or not all(isinstance(n, dict) for n in nics):
            raise ValueError("nics is not a list of at most 4 cards")
        return cls(sectors, tuple(NicConfig.from_dict(n) for n in nics))


#: Bounds of a recorded board: 2^54 sectors is 8 EiB, far past any image and inside the block device's
#: 64-bit capacity register and the trace's int64 columns; the board has four card slots.
MAX_DISK_SECTORS = 1 << 54
MAX_NICS = 4
