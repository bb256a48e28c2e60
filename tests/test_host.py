"""The host helpers (rrtool._host): one cache directory for every user of it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rrtool import _host
from rrtool.analysis import sql
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
    assert sql._history_file() == tmp_path / "xdg" / "rrtool" / "sql_history"


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")
def test_counter_fallback_builds_into_the_cache(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env.delenv("RRTOOL_CC", raising=False)
    env.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    built = icount._compile_fallback(Path(icount.__file__).with_name("_icount.c"))
    assert built.parent == tmp_path / "xdg" / "rrtool"
    assert built.is_file()
