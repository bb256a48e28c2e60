"""The command line's shape: cheap imports for the machine commands, a library that never prints, the prompt."""

from __future__ import annotations

import ast
import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from importlib.metadata import entry_points
from pathlib import Path

import pytest

import rrtool
from tests.test_analysis_support import scenario, write_trace

ANALYSIS = Path(rrtool.__file__).parent / "analysis"

#: Runs commands the way `rrtool` does, in one fresh interpreter, then lists what got imported.
IMPORTS_AFTER = """
import json, sys
from rrtool.cli import app
import rrtool.cli.replay
for argv in json.loads(sys.argv[1]):
    try:
        app(argv, prog_name="rrtool")
    except SystemExit as exc:
        assert exc.code in (0, None), (argv, exc.code)
heavy = ("polars", "duckdb", "rrtool.analysis")
print(json.dumps(sorted(m for m in sys.modules if m in heavy or m.startswith(tuple(h + "." for h in heavy)))))
"""


def imported_by(*commands: list[str]) -> list[str]:
    proc = subprocess.run(
        [sys.executable, "-c", IMPORTS_AFTER, json.dumps(commands)],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return list(json.loads(proc.stdout.splitlines()[-1]))


def test_help_run_record_replay_import_neither_polars_duckdb_nor_analysis(tmp_path: Path) -> None:
    trace = tmp_path / "hello.arrow"
    quiet = ["--no-stdin", "-q"]
    loaded = imported_by(
        ["--help"], ["run", "--help"], ["run", "hello", *quiet], ["record", "hello", "-o", str(trace), *quiet],
        ["replay", str(trace), "-q"],
    )  # fmt: skip
    assert trace.exists()
    assert loaded == []


def test_the_analysis_commands_do_import_them(tmp_path: Path) -> None:
    """The check above can see an import: `sql` loads DuckDB and the analysis package."""
    trace = write_trace(tmp_path / "t.arrow", scenario(), rows=10)
    assert {"duckdb", "rrtool.analysis.sql"} <= set(imported_by(["sql", str(trace), "select 1"]))


def _names(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_names(node.value)}.{node.attr}"
    return ""


@pytest.mark.parametrize("path", sorted(ANALYSIS.rglob("*.py")), ids=lambda p: str(p.relative_to(ANALYSIS)))
def test_the_analysis_library_never_prints(path: Path) -> None:
    """No rich, typer or click; no print(), input() or sys.stdin/stdout/stderr: rendering is rrtool/cli's job."""
    tree = ast.parse(path.read_text(), str(path))
    found: list[str] = []
    for node in ast.walk(tree):
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules = [node.module or ""]
        if isinstance(node, ast.Import | ast.ImportFrom):
            ui = [m for m in modules if m.split(".")[0] in ("rich", "typer", "click")]
            found += [f"line {node.lineno}: import {m}" for m in ui]
        if isinstance(node, ast.Call) and _names(node.func) in ("print", "input", "breakpoint"):
            found.append(f"line {node.lineno}: {_names(node.func)}()")
        if isinstance(node, ast.Attribute) and _names(node) in ("sys.stdin", "sys.stdout", "sys.stderr"):
            found.append(f"line {node.lineno}: {_names(node)}")
    assert found == []


def test_importing_all_of_the_analysis_package_loads_no_ui_library() -> None:
    code = (
        "import importlib, pkgutil, sys, rrtool.analysis as a\n"
        "for m in pkgutil.walk_packages(a.__path__, 'rrtool.analysis.'): importlib.import_module(m.name)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('rich', 'typer', 'click')))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_the_rrtool_script_is_the_cli_package_main() -> None:
    from rrtool.cli import main

    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "rrtool"]
    assert script.value == "rrtool.cli:main"
    assert script.load() is main


def test_every_expected_error_named_by_the_cli_exists() -> None:
    """`user_errors()` names the library's error classes by module; a rename must fail here, not in a user's face."""
    from importlib import import_module

    from rrtool.cli.console import EXPECTED_ERRORS

    for module, name in EXPECTED_ERRORS:
        cls = getattr(import_module(module), name)
        assert isinstance(cls, type) and issubclass(cls, Exception), (module, name)


def _expect(fd: int, text: bytes, seen: bytearray, timeout: float = 30) -> None:
    """Read the terminal until `text` shows (after what was already matched)."""
    end = time.monotonic() + timeout
    while text not in seen:
        ready, _, _ = select.select([fd], [], [], max(0.0, end - time.monotonic()))
        if not ready:
            raise AssertionError(f"{text!r} never showed; the terminal has {bytes(seen)!r}")
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the child closed the terminal
            chunk = b""
        if not chunk:
            raise AssertionError(f"{text!r} never showed; the terminal has {bytes(seen)!r}")
        seen += chunk


def test_interactive_prompt_on_a_terminal(tmp_path: Path) -> None:
    """`rrtool sql TRACE` on a terminal: a prompt with .tables, multi-line statements, errors that do not end it."""
    trace = write_trace(tmp_path / "t.arrow", scenario(), rows=10)
    env = {**os.environ, "RRTOOL_CACHE": str(tmp_path / "cache"), "TERM": "dumb", "COLUMNS": "80"}
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        os.execve(sys.executable, [sys.executable, "-m", "rrtool.cli", "sql", str(trace)], env)
    seen = bytearray()
    status = None
    try:
        _expect(fd, b"rrtool> ", seen)
        assert b"views (all traces, with a `trace` column): events" in seen
        for line, answer in [
            (b"select count(*) as n\n", b"   ...> "),
            (b"from interrupts;\n", b"1 row"),
            (b".tables\n", b"t.*  "),
            (b"select nope from events;\n", b"error: SQL: Binder Error"),
            (b".help\n", b"commands: .tables, .quit; anything else is SQL"),
        ]:
            del seen[:]
            os.write(fd, line)
            _expect(fd, answer, seen)
            if answer == b"1 row":
                assert b"\xe2\x94\x82 8 \xe2\x94\x82" in seen  # the table's one cell: 8 interrupts
        os.write(fd, b".quit\n")
        _, status = os.waitpid(pid, 0)
    finally:
        if status is None:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0
    history = (tmp_path / "cache" / "sql_history").read_text()
    assert "from interrupts;" in history and ".quit" in history
