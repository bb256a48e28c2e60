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
        return cls(int(data.get("disk_sectors", 0)), tuple(NicConfig.from_dict(n) for n in data.get("nics", ())))
