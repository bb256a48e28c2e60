"""`monitor` commands: what gdb has no command for, asked of the timeline in words (`qRcmd`).

They return text for gdb's console; they never print. `seek` moves the
replay behind gdb's back, so its reply says how to make gdb read the
registers again; `verify` replays the whole recording once more (from the
snapshot at icount 0, so every checkpoint is checked) and then goes back to
where gdb was, so gdb's view stays true.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rrtool.player.timeline import Timeline, TimelineError

#: What gdb needs after the replay moved without a stop reply: its register and frame caches are stale.
FLUSH_HINT = "(gdb still shows the old position: run `maint flush register-cache` to see this one)"


@dataclass(frozen=True)
class MonitorReply:
    text: str
    ok: bool = True


def _number(word: str) -> int:
    """Decimal (with `_` or `,` between digits, as rrtool prints counts) or 0x hex."""
    cleaned = word.replace(",", "").replace("_", "")
    try:
        return int(cleaned, 16) if cleaned.lower().startswith("0x") else int(cleaned, 10)
    except ValueError:
        raise TimelineError(f"not a number: {word!r}") from None


def _icount(tl: Timeline, _args: list[str]) -> MonitorReply:
    return MonitorReply(f"icount {tl.icount} (pc {tl.pc:#x}; the recording ends at icount {tl.last_icount})\n")


def _checkpoint(tl: Timeline, args: list[str]) -> MonitorReply:
    if args:
        stop = tl.seek_checkpoint(_number(args[0]))
        return MonitorReply(f"checkpoint {tl.checkpoint} at icount {stop.icount} (pc {stop.pc:#x})\n{FLUSH_HINT}\n")
    return MonitorReply(f"checkpoint {tl.checkpoint} (of {tl.checkpoints}; icount {tl.icount})\n")


def _seek(tl: Timeline, args: list[str]) -> MonitorReply:
    if len(args) != 1:
        return MonitorReply("usage: monitor seek ICOUNT\n", ok=False)
    stop = tl.seek(_number(args[0]))
    note = "" if stop.reason == "step" else f" (the replay ended there: {stop.reason})"
    return MonitorReply(f"icount {stop.icount} (pc {stop.pc:#x}){note}\n{FLUSH_HINT}\n")


def _verify(tl: Timeline, _args: list[str]) -> MonitorReply:
    back = tl.icount
    tl.seek(0)
    stop = tl.run_to_end()
    checkpoints, divergence = tl.checkpoint, stop.divergence
    tl.seek(min(back, tl.last_icount))
    if divergence is not None:
        return MonitorReply(divergence.report() + "\n")
    cut = "" if tl.complete else " (the recording was cut short: verified up to its last complete batch)"
    return MonitorReply(f"replay verified: every checkpoint matched, {checkpoints + 1} of them, "
                        f"to icount {stop.icount}{cut}\n")  # fmt: skip


def _help(_tl: Timeline, _args: list[str]) -> MonitorReply:
    return MonitorReply("".join(f"monitor {usage:<18} {what}\n" for usage, what, _ in _COMMANDS.values()))


_Command = Callable[[Timeline, list[str]], MonitorReply]
_COMMANDS: dict[str, tuple[str, str, _Command]] = {
    "icount": ("icount", "the current instruction count", _icount),
    "checkpoint": ("checkpoint [K]", "the last checkpoint passed (with K: go to checkpoint K)", _checkpoint),
    "seek": ("seek ICOUNT", "go to exactly ICOUNT instructions", _seek),
    "verify": ("verify", "replay the whole recording again and check every checkpoint", _verify),
    "help": ("help", "this list", _help),
}


def run_monitor(timeline: Timeline, line: str) -> MonitorReply:
    """Run one monitor command line; a bad one is an error reply, never an exception."""
    words = line.split()
    if not words:
        return _help(timeline, [])
    entry = _COMMANDS.get(words[0])
    if entry is None:
        return MonitorReply(f"unknown monitor command {words[0]!r} (try: monitor help)\n", ok=False)
    try:
        return entry[2](timeline, words[1:])
    except TimelineError as exc:
        return MonitorReply(f"{exc}\n", ok=False)


__all__ = ["FLUSH_HINT", "MonitorReply", "run_monitor"]
