"""What a replay reports when the machine stops matching its trace."""

from __future__ import annotations

from dataclasses import dataclass, field

from rrtool.machine.port import PortError


class TraceEnd(PortError):
    """The machine needs the next event but the trace has none (a recording cut short)."""


@dataclass
class Divergence(PortError):
    """The first difference between the replayed machine and the trace."""

    checkpoint: int
    icount: int
    what: str
    expected: str
    actual: str
    pc: int | None = None
    disassembly: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return f"divergence at checkpoint {self.checkpoint}, icount {self.icount}: {self.what}"

    def report(self) -> str:
        """The multi-line report printed by `rrtool replay`."""
        lines = [
            f"DIVERGENCE at checkpoint {self.checkpoint}, icount {self.icount}"
            + (f", pc {self.pc:#x}" if self.pc is not None else ""),
            f"  what:     {self.what}",
            f"  expected: {self.expected}",
            f"  actual:   {self.actual}",
        ]
        if self.disassembly:
            lines.append(f"  at pc:    {self.disassembly[0]}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, object]:
        return {
            "checkpoint": self.checkpoint,
            "icount": self.icount,
            "pc": self.pc,
            "what": self.what,
            "expected": self.expected,
            "actual": self.actual,
            "disassembly": self.disassembly,
        }
