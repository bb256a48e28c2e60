"""Where the CLI's output goes, and how an expected failure becomes one line and exit code 2.

`out` is stdout (results: tables, JSON, the guest's console) and `err` is
stderr (status lines, reports, errors). Both soft-wrap: a line is never cut or
folded at the terminal width unless a command asks (`soft_wrap=False`).
`user_errors()` is the one place that knows which exceptions are the user's
fault; everything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.text import Text

err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)

#: The exceptions a library raises for bad input, by module. One is only checked when its module is
#: loaded (an exception of a module never imported cannot have been raised), so catching them costs
#: `rrtool run` no import of the analysis package, nor `rrtool sql` one of Unicorn.
EXPECTED_ERRORS = (
    ("rrtool._paths", "PathError"),
    ("rrtool.guest.build", "GuestBuildError"),
    ("rrtool.machine.icount", "CounterError"),
    ("rrtool.board.disk", "DiskError"),
    ("rrtool.machine.image", "ImageError"),
    ("rrtool.machine.config", "MachineError"),
    ("rrtool.board.net.spec", "NetError"),
    ("rrtool.player.session", "ReplayError"),
    ("rrtool.player.timeline", "TimelineError"),
    ("rrtool.player.gdbserver", "GdbError"),
    ("rrtool.player.deepdiff", "DeepDiffError"),
    ("rrtool.schemas.tracefile", "TraceError"),
    ("rrtool.analysis.errors", "AnalysisError"),
)


#: Control characters shown escaped, so that a path with a newline in it keeps an error to one line.
_ESCAPES = {c: repr(chr(c))[1:-1] for c in (*range(0x20), 0x7F)}


def one_line(message: str) -> str:
    """The message as one line: control characters (a newline in a path) are shown escaped, as Python would."""
    return message.strip().translate(_ESCAPES)


def print_error(message: str) -> None:
    """`rrtool: error: MESSAGE` on stderr, one line, the message as plain text (never markup)."""
    err.print(Text.assemble(("rrtool: error:", "bold red"), f" {one_line(message)}"), soft_wrap=True)


def fail(message: str, code: int = 2) -> NoReturn:
    """`rrtool: error: MESSAGE` on stderr (one line), then exit."""
    print_error(message)
    raise typer.Exit(code)


def error_message(exc: BaseException) -> str | None:
    """The one line shown for an expected failure; None for anything else (a bug)."""
    expected = tuple(getattr(sys.modules[module], name) for module, name in EXPECTED_ERRORS if module in sys.modules)
    if isinstance(exc, expected):
        return str(exc)
    arrow = sys.modules.get("pyarrow")
    if arrow is not None and isinstance(exc, arrow.ArrowException):
        return f"cannot read the trace: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
    if isinstance(exc, OSError):
        return f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": ")
    return None


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn every expected failure into one line and exit code 2 (never a traceback)."""
    try:
        yield
    except BrokenPipeError:
        raise  # the reader went away (`| head`): not an error to report; rrtool.cli.core exits quietly
    except Exception as exc:
        message = error_message(exc)
        if message is None:
            raise
        fail(message)


def console_writer(quiet: bool) -> Callable[[bytes], None] | None:
    """Where the guest's console output goes: stdout, as it comes, or nowhere."""
    if quiet:
        return None

    def write(data: bytes) -> None:
        # Bytes as the guest wrote them: a Linux program's output may be binary (gzip -c).
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()

    return write


def stderr_writer(quiet: bool) -> Callable[[bytes], None] | None:
    """Where a Linux program's stderr goes: rrtool's stderr, as raw bytes, or nowhere."""
    if quiet:
        return None

    def write(data: bytes) -> None:
        sys.stderr.flush()
        sys.stderr.buffer.write(data)
        sys.stderr.buffer.flush()

    return write


def report_end(run: Any) -> None:
    """Why a run ended, unless the guest exited: a fault, a hang, a limit or a signal."""
    if run.reason != "exit":
        err.print(f"rrtool: {run.reason}: {run.message}", markup=False, soft_wrap=True)
