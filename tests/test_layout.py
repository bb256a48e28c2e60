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
