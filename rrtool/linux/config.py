"""What shapes a Linux process and so is recorded with it: argv, the environment, identity, AT_RANDOM.

All of it goes into the trace's machine record, so replay starts the very same
process without asking the host anything. The environment is a small fixed
default plus the user's `--env`; the user and group ids are the recording
host's, read once (so `id` and `ls -l` look as they do natively) and then fixed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rrtool.linux.tasks import DEFAULT_SLICE, MAX_SLICE
from rrtool.machine.config import MachineError

#: The environment every Linux guest starts with; `--env K=V` adds to it or replaces a key.
DEFAULT_ENV = ("PATH=/bin:/usr/bin:/sbin:/usr/sbin", "HOME=/", "PWD=/", "LANG=C", "TERM=dumb", "USER=user")
#: Bounds on what a trace's record may ask the loader to build (the stack holds all of it).
MAX_ARGS = 4096
MAX_ARG_BYTES = 1 << 20
PLATFORM = "linux"


def merge_env(extra: list[str]) -> tuple[str, ...]:
    """The default environment with `extra` (K=V strings) applied in order; a later key replaces an earlier."""
    env: dict[str, str] = {}
    for item in (*DEFAULT_ENV, *extra):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise MachineError(f"--env wants KEY=VALUE, not {item!r}")
        env[key] = value
    return tuple(f"{k}={v}" for k, v in env.items())


@dataclass(frozen=True)
class LinuxConfig:
    argv: tuple[str, ...]
    env: tuple[str, ...] = DEFAULT_ENV
    #: The program's path as the guest sees it (`/proc/self/exe`, AT_EXECFN).
    exe: str = "/program"
    #: The 16 bytes AT_RANDOM points at (glibc's stack protector and pointer guard): host randomness, recorded.
    at_random: bytes = bytes(16)
    uid: int = 1000
    gid: int = 1000
    #: An unknown system call is a fault rather than -ENOSYS.
    strict_syscalls: bool = False
    #: Log the bytes of every write (not only their digest).
    log_write_data: bool = False
    #: The scheduler's time slice in instructions, and chaos mode's seed (None: round robin, fixed slices).
    #: Recorded for the reader only: a replay follows the trace's `sched` rows, whatever these say.
    slice_insns: int = DEFAULT_SLICE
    chaos: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "platform": PLATFORM,
            "argv": list(self.argv),
            "env": list(self.env),
            "exe": self.exe,
            "at_random": self.at_random.hex(),
            "uid": self.uid,
            "gid": self.gid,
            "strict_syscalls": self.strict_syscalls,
            "log_write_data": self.log_write_data,
            "slice": self.slice_insns,
            "chaos": self.chaos,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LinuxConfig:
        """The Linux half of a trace's machine record, checked: a damaged record is an error, not a crash."""
        argv, env = data.get("argv"), data.get("env")
        for name, value in (("argv", argv), ("env", env)):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise MachineError(f"{name} is not a list of strings")
            if (
                len(value) > MAX_ARGS
                or sum(len(v.encode("utf-8", "surrogateescape")) + 1 for v in value) > MAX_ARG_BYTES
            ):
                raise MachineError(f"{name} is too long")
        assert isinstance(argv, list) and isinstance(env, list)
        if not argv:
            raise MachineError("argv is empty")
        exe, rnd = data.get("exe"), data.get("at_random")
        if not isinstance(exe, str) or not exe.startswith("/") or len(exe) > 4000:
            raise MachineError("exe is not an absolute guest path")
        if not isinstance(rnd, str):
            raise MachineError("at_random is not hex")
        try:
            at_random = bytes.fromhex(rnd)
        except ValueError:
            raise MachineError("at_random is not hex") from None
        if len(at_random) != 16:
            raise MachineError("at_random is not 16 bytes")
        ids = {}
        for key in ("uid", "gid"):
            value = data.get(key)
            if type(value) is not int or not 0 <= value < 2**32:
                raise MachineError(f"{key} is {value!r}, not a 32-bit id")
            ids[key] = value
        flags: dict[str, Any] = {}
        for key in ("strict_syscalls", "log_write_data"):
            value = data.get(key, False)
            if type(value) is not bool:
                raise MachineError(f"{key} is {value!r}, not true or false")
            flags[key] = value
        slice_insns, chaos = data.get("slice", DEFAULT_SLICE), data.get("chaos")
        if type(slice_insns) is not int or not 1 <= slice_insns <= MAX_SLICE:
            raise MachineError(f"slice is {slice_insns!r}, not a number of instructions from 1 to {MAX_SLICE}")
        if chaos is not None and (type(chaos) is not int or not 0 <= chaos < 2**64):
            raise MachineError(f"chaos is {chaos!r}, not a seed from 0 to 2**64-1")
        return cls(tuple(argv), tuple(env), exe, at_random, ids["uid"], ids["gid"], **flags, slice_insns=slice_insns,
                   chaos=chaos)  # fmt: skip
