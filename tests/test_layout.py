"""The dependency direction of design.md holds: schemas <- machine <- board <- recorder, player <- cli.

Checked on the source (every `import` and `from ... import`, including the lazy ones inside functions),
so a new import against the grain fails here before it becomes a tangle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import rrtool

ROOT = Path(rrtool.__file__).parent

#: Which rrtool packages each package may import (itself always).
ALLOWED: dict[str, set[str]] = {
    "schemas": set(),
    "machine": {"schemas"},
    "board": {"schemas", "machine"},
    "recorder": {"schemas", "machine", "board"},
    "player": {"schemas", "machine", "board"},
    "analysis": {"schemas"},
    "guest": set(),
}


def _rrtool_imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "rrtool" and len(parts) > 1:
                found.add(parts[1])
    return found


def test_packages_import_only_downstream() -> None:
    problems = []
    for package, allowed in ALLOWED.items():
        for path in sorted((ROOT / package).rglob("*.py")):
            for target in _rrtool_imports(path) - allowed - {package, "__init__"}:
                if target in ALLOWED or target == "cli":
                    problems.append(f"{path.relative_to(ROOT)} imports rrtool.{target}")
    assert not problems, "\n".join(problems)


#: What each command must not import (start-up time and memory): the analysis stack stays out of the
#: commands that run guests, and `run`, which writes no trace, does without pyarrow and dpkt too.
#: (capstone is not on the list: the counter decodes a block with it, once, to find the exact icount of
#: a device access inside the block; it is imported on the first such access, 30 ms.) pydantic is what
#: typer 0.29 converts options with (80 ms and 10 MiB): pyproject keeps typer below it.
HEAVY = ("polars", "duckdb", "rrtool.analysis", "pydantic")
_PROBE = """
import atexit, json, runpy, sys
out = sys.argv[1]
atexit.register(lambda: open(out, "w").write(json.dumps(sorted(sys.modules))))
sys.argv = ["rrtool", *sys.argv[2:]]
try:
    runpy.run_module("rrtool.cli", run_name="__main__")
except SystemExit:
    pass
"""


def _modules_of(tmp_path: Path, *args: str) -> set[str]:
    import json
    import subprocess
    import sys

    out = tmp_path / "modules.json"
    proc = subprocess.run([sys.executable, "-c", _PROBE, str(out), *args], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return set(json.loads(out.read_text()))


def test_commands_that_run_guests_import_only_what_they_use(tmp_path: Path) -> None:
    trace = tmp_path / "hello.arrow"
    for args, absent in [
        (("run", "hello", "-q"), (*HEAVY, "pyarrow", "dpkt")),
        (("record", "hello", "-o", str(trace), "-q"), HEAVY),
        (("replay", str(trace), "-q"), HEAVY),
    ]:
        loaded = _modules_of(tmp_path, *args)
        assert "unicorn" in loaded  # the probe really ran the command
        assert not [m for m in absent if m in loaded], f"rrtool {args[0]} imports {[m for m in absent if m in loaded]}"
