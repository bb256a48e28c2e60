"""Shared fixtures: real guests built with the host's gcc against the SDK, real traces on disk."""

from __future__ import annotations

import os
import subprocess
import sys
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
    *args: str | Path, timeout: float = 120, stdin: int | None = subprocess.DEVNULL, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a subprocess, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "rrtool.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=stdin,
        env={**os.environ, **(env or {})},
    )
