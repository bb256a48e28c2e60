"""Shared fixtures: real guests built with the host's gcc against the SDK, real traces on disk."""

from __future__ import annotations

import _thread
import os
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path

import pytest

from rrtool.guest.build import build_guest, ensure_example

BuildC = Callable[..., Path]


@pytest.fixture(scope="session")
def guests_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("guests")


@pytest.fixture(scope="session")
def build_c(guests_dir: Path) -> BuildC:
    """Build a test guest from C source text (cached per name for the session)."""

    def build(name: str, source: str, cflags: tuple[str, ...] = ()) -> Path:
        out = guests_dir / f"{name}.elf"
        if not out.exists():
            src = guests_dir / f"{name}.c"
            src.write_text(source)
            build_guest([src], out, extra_cflags=cflags)
        return out

    return build


@pytest.fixture(scope="session")
def example() -> Callable[[str], Path]:
    return ensure_example


def rrtool(
    *args: str | Path,
    timeout: float = 120,
    stdin: int | None = subprocess.DEVNULL,
    env: dict[str, str] | None = None,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a subprocess, as a user would (`input`: text piped to its stdin).

    For what only a process shows: signals, the exit status of the real entry point, stdin and terminals.
    Everything else goes through `invoke`, which is much faster.
    """
    return subprocess.run(
        [sys.executable, "-m", "rrtool.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        **({"input": input} if input is not None else {"stdin": stdin}),
        env={**os.environ, **(env or {})},
    )


def invoke(*args: str | Path, timeout: float = 120, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command in this process with typer's CliRunner; the result reads like `rrtool`'s.

    The terminal is 80 columns wide, as for a subprocess whose output is a pipe. An exception that
    escapes the command shows as its traceback on stderr and exit code 1, as Python would show it.
    After `timeout` seconds the command gets a SIGINT (rrtool stops a run on it), so a hang fails
    the test instead of stalling the suite.
    """
    from typer.testing import CliRunner

    from rrtool.cli import app

    watchdog = threading.Timer(timeout, _thread.interrupt_main)
    watchdog.start()
    try:
        result = CliRunner(env={"COLUMNS": "80"}).invoke(app, [str(a) for a in args], input=input, prog_name="rrtool")
    finally:
        watchdog.cancel()
    stderr = result.stderr
    if result.exc_info is not None and not isinstance(result.exc_info[1], SystemExit):  # exit 0 leaves exc_info too
        stderr += "".join(traceback.format_exception(*result.exc_info))
    return subprocess.CompletedProcess(["rrtool", *map(str, args)], result.exit_code, result.stdout, stderr)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fuzz-count", default="200", help="mutants per fuzz run of tests/test_fuzz.py (default 200, fixed seed)"
    )
