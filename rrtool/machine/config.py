"""What shapes a run (recorded with it), what bounds it, and how it ended."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DEFAULT_RAM = 32 << 20
#: A Linux program's RAM unless --ram says otherwise: room for its heap, mmap areas and an 8 MiB stack. Only
#: the mapped pages cost anything (RAM is lazily allocated, and the memory digest covers the mappings).
DEFAULT_LINUX_RAM = 512 << 20
#: The busy cadence: a checkpoint (with its register and device digests) at least every this many instructions.
#: It need not bound how long a host event waits (a backend's post stops the CPU, see HOST_EVENT_GAP), so it is
#: set by what a checkpoint costs: about 60 us of Python at a stop, which every 1M instructions (0.5 ms of a busy
#: board guest) was 10-15% of a recording or replay, and every 10M is about 1.5%.
DEFAULT_CHECKPOINT_EVERY = 10_000_000
#: A host event (console input, a network frame, a disk completion) posted while the CPU is busy is taken at the
#: first block boundary at least this many instructions after the previous checkpoint (or the cadence's, if that
#: is denser): at once after a quiet spell, and no more than one checkpoint per this many instructions under a flood.
HOST_EVENT_GAP = 1_000_000
#: Chosen by measurement (benchmarks/record_replay.py): hashing 32 MiB costs 0.5-5 ms with the host, so a digest
#: every 200M instructions is 1-3% of a busy recording, while every 10M costs 15-20%.
DEFAULT_MEM_DIGEST_EVERY = 200_000_000


@dataclass(frozen=True)
class MachineConfig:
    """What shapes a run on any platform and so must be recorded with it (the platform adds its own)."""

    ram_size: int = DEFAULT_RAM
    ns_per_insn: int = 1
    checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY
    mem_digest_every: int = DEFAULT_MEM_DIGEST_EVERY

    def to_dict(self) -> dict[str, Any]:
        return {
            "ram_size": self.ram_size,
            "ns_per_insn": self.ns_per_insn,
            "checkpoint_every": self.checkpoint_every,
            "mem_digest_every": self.mem_digest_every,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MachineConfig:
        """The core's part of a trace's `rrtool.machine` record (the platform reads its own keys)."""
        values = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for key, value in values.items():
            if type(value) is not int or not 0 <= value < 2**63:
                raise MachineError(f"{key} is {value!r}, not an integer from 0 to 2^63-1")
        return cls(**values)


@dataclass(frozen=True)
class Limits:
    """Bounds on a run that are not part of the machine (not recorded as config)."""

    max_insns: int | None = None
    timeout_s: float | None = None


@dataclass
class RunResult:
    reason: str  # exit, fault, hang, limit, timeout, interrupted
    icount: int
    vclock_ns: int
    checkpoints: int
    exit_code: int | None = None
    message: str = ""
    output: bytes = field(default=b"", repr=False)
    #: For a fault that ended the run: the signal its platform names for it (Linux), reported as 128 + signal.
    signal: int | None = None

    @property
    def ok(self) -> bool:
        return self.reason == "exit" and self.exit_code == 0


@dataclass
class Fault:
    """A precise CPU fault (the instruction at `pc` did not retire), as the machine hands it to its platform.

    A platform that delivers it to the guest (a Linux signal handler) returns True from `on_fault`; one
    that does not may name the `signal` and the `message` of the run's end.
    """

    name: str
    pc: int
    icount: int
    #: The memory address the faulting access touched, when it was a memory access.
    address: int | None = None
    #: The CPU exception vector (0 divide error, 6 invalid opcode, 13 #GP, 14 #PF), when one was raised.
    vector: int | None = None
    signal: int | None = None
    message: str | None = None


class MachineError(Exception):
    """A machine set-up problem (not a guest fault)."""


def exit_status(result: RunResult) -> int:
    """Process exit code for a run: the guest's own code on exit, 3 for faults and hangs, 4 for limits."""
    if result.reason == "exit":
        return (result.exit_code or 0) & 0xFF
    if result.reason == "fault" and result.signal is not None:
        return 128 + result.signal  # as a shell reports a process killed by a signal
    if result.reason in ("fault", "hang"):
        return 3
    if result.reason in ("limit", "timeout"):
        return 4
    return 130
