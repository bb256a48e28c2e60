"""What a user installs works: every command with the runtime dependencies alone, each extra on its own.

The rest of the suite runs in the development environment, whose extras bring packages (numpy, through
matplotlib) that `pip install rrtool` does not; `rrtool sql` once needed numpy and only users saw it fail.
Each test here makes a fresh virtual environment with `pip install .` (or one extra) from the package
registry and runs `tests/smoke.py` with its Python. pip's wheel cache makes the second install on a
machine cheap.
"""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SMOKE = REPO / "tests" / "smoke.py"


def _venv(where: Path, requirement: str) -> Path:
    """A fresh virtual environment holding `requirement` and what it depends on, nothing else."""
    venv.create(where, with_pip=True)
    python = where / "bin" / "python"
    proc = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", requirement],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, f"pip install {requirement} failed:\n{proc.stderr[-3000:]}"
    return python


def _smoke(python: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(python), str(SMOKE), *args], capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def runtime_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _venv(tmp_path_factory.mktemp("runtime-venv"), str(REPO))


def test_runtime_install_has_no_extras(runtime_python: Path) -> None:
    """The environment really is bare: if numpy crept in, the smoke test below would prove nothing."""
    probe = "import importlib.util as u; print([m for m in ('numpy', 'pytest', 'matplotlib') if u.find_spec(m)])"
    out = subprocess.run([str(runtime_python), "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_every_command_works_with_only_the_runtime_dependencies(runtime_python: Path) -> None:
    proc = _smoke(runtime_python)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "smoke: all passed" in proc.stdout


def test_notebooks_extra_alone_runs_the_notebooks(tmp_path: Path) -> None:
    python = _venv(tmp_path / "notebooks-venv", f"{REPO}[notebooks]")
    proc = _smoke(python, "--notebooks")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    ran = [line for line in proc.stdout.splitlines() if line.startswith("ok ")]
    assert len(ran) == len(list((REPO / "notebooks").glob("*.ipynb")))


def test_smoke_script_uses_only_the_standard_library() -> None:
    """It runs in environments without pytest or the dev tools; nbclient is imported only for --notebooks."""
    proc = subprocess.run([sys.executable, "-S", str(SMOKE), "--help"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "--notebooks" in proc.stdout
