"""The host helpers (rrtool._host): one cache directory and one compiler lookup for every user."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rrtool import _host
from rrtool.cli import sql
from rrtool.machine import icount


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No cache variables from the developer's shell, and a home of our own."""
    monkeypatch.delenv("RRTOOL_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return monkeypatch


def test_cache_defaults_to_home(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert _host.cache_dir() == tmp_path / "home" / ".cache" / "rrtool"


def test_xdg_cache_home_beats_home(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _host.cache_dir() == tmp_path / "xdg" / "rrtool"


def test_rrtool_cache_beats_xdg(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    env.setenv("RRTOOL_CACHE", str(tmp_path / "mine"))
    assert _host.cache_dir() == tmp_path / "mine"  # used as is: no "rrtool" appended


def test_empty_variables_count_as_unset(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env.setenv("RRTOOL_CACHE", "")
    env.setenv("XDG_CACHE_HOME", "")
    assert _host.cache_dir() == tmp_path / "home" / ".cache" / "rrtool"


def test_sql_history_lives_in_the_cache(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert sql.history_file() == tmp_path / "xdg" / "rrtool" / "sql_history"


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")
def test_counter_fallback_builds_into_the_cache(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env.delenv("RRTOOL_CC", raising=False)
    env.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    built = icount._compile_fallback(Path(icount.__file__).with_name("_icount.c"))
    assert built.parent == tmp_path / "xdg" / "rrtool"
    assert built.is_file()


def _fake_tool(directory: Path, name: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    tool = directory / name
    tool.write_text("#!/bin/sh\nexit 0\n")
    tool.chmod(0o755)
    return tool


def test_compiler_prefers_gcc_then_cc(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("RRTOOL_CC", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    cc = _fake_tool(tmp_path / "bin", "cc")
    assert _host.find_c_compiler("x") == str(cc)
    gcc = _fake_tool(tmp_path / "bin", "gcc")
    assert _host.find_c_compiler("x") == str(gcc)


def test_rrtool_cc_overrides_and_is_looked_up(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    _fake_tool(tmp_path / "bin", "gcc")
    mine = _fake_tool(tmp_path / "bin", "my-gcc")
    monkeypatch.setenv("RRTOOL_CC", "my-gcc")
    assert _host.find_c_compiler("x") == str(mine)
    monkeypatch.setenv("RRTOOL_CC", str(tmp_path / "no-such-gcc"))
    with pytest.raises(_host.CompilerNotFoundError, match=r"no-such-gcc.*\(from RRTOOL_CC\) not found: x needs"):
        _host.find_c_compiler("x")


def test_no_compiler_at_all(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("RRTOOL_CC", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(_host.CompilerNotFoundError, match=r"^gcc not found: x needs a C compiler \(apt-get"):
        _host.find_c_compiler("x")


def test_counter_reports_a_missing_compiler(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("RRTOOL_CC", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(icount.CounterError, match="native instruction counter needs a C compiler"):
        icount._compile_fallback(Path(icount.__file__).with_name("_icount.c"))
