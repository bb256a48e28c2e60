"""The in-memory form of one row of the events table.

Field names match `rrtool.schemas.events.COLUMNS` one for one, so the
recorder can turn a list of events into columns without a mapping table.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Event:
    """One event; fields a kind does not use stay None (null in the trace)."""

    kind: str
    device: str
    icount: int
    vclock_ns: int
    checkpoint: int = 0
    seq: int = 0
    cp_kind: str | None = None
    pc: int | None = None
    reg_digest: int | None = None
    dev_digest: int | None = None
    mem_digest: int | None = None
    warp_ns: int | None = None
    value: int | None = None
    data: bytes | None = None
    text: str | None = None
    host_ns: int | None = None
    req_id: int | None = None
    op: str | None = None
    sector: int | None = None
    sectors: int | None = None
    status: int | None = None
    order: int | None = None
    data_digest: int | None = None
    length: int | None = None
    card: int | None = None
    flags: int | None = None
    sysno: int | None = None
    syscall: str | None = None
    args: list[int] | None = None
    ret: int | None = None
    path: str | None = None
    fd: int | None = None
    task: int | None = None

    def describe(self) -> str:
        """A short human form for divergence reports."""
        parts = [self.kind if self.cp_kind is None else f"{self.kind}({self.cp_kind})", f"icount={self.icount}"]
        for name in ("pc", "reg_digest", "dev_digest", "mem_digest"):
            val = getattr(self, name)
            if val is not None:
                parts.append(f"{name}={val:#x}")
        if self.warp_ns is not None:
            parts.append(f"warp_ns={self.warp_ns}")
        if self.value is not None:
            parts.append(f"value={self.value:#x}")
        if self.data is not None:
            parts.append(f"data={self.data[:48]!r}{'...' if len(self.data) > 48 else ''}")
        if self.text is not None:
            parts.append(f"text={self.text}")
        if self.syscall is not None:
            args = ", ".join(f"{a:#x}" for a in self.args or ())
            parts.append(f"{self.syscall}({args}) = {self.ret}")
        for name in ("path", "fd", "length", "data_digest"):
            val = getattr(self, name)
            if val is not None and self.syscall is not None:
                parts.append(f"{name}={val!r}")
        return " ".join(parts)
