"""`rrtool.__version__` comes from the installed metadata, and `import rrtool` does not pay for looking it up."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

import pytest

import rrtool


def test_version_is_the_installed_one() -> None:
    assert rrtool.__version__ == importlib.metadata.version("rrtool")


def test_version_without_an_installation(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    assert rrtool._installed_version() == "0+unknown"


def test_import_stays_cheap() -> None:
    code = "import sys, rrtool; print('importlib.metadata' in sys.modules); print(rrtool.__version__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", rrtool.__version__]
