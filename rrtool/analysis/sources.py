"""Which files a corpus is made of: trace files, globs and directories, as the user typed them.

Shells expand an unquoted `runs/*.arrow` themselves, but a corpus of many
thousand traces overflows a command line, and a quoted glob or a directory
is what a script passes; so the analysis commands expand globs (with `**`)
and walk directories (every `*.arrow` below, in name order) themselves.
An exported Parquet dataset (`rrtool export parquet`, a directory holding
`traces.parquet` and `events/`) is a source of its own kind.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rrtool._paths import PathError, check_input_file
from rrtool.analysis.errors import AnalysisError

#: The files of an exported dataset (`rrtool.analysis.export.corpus`).
TRACES_FILE = "traces.parquet"
EVENTS_DIR = "events"

_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class Sources:
    """What the sources named: trace files in order, or one exported Parquet dataset."""

    traces: tuple[Path, ...] = ()
    dataset: Path | None = None


def is_dataset(path: Path) -> bool:
    """True for a directory that `rrtool export parquet` wrote a corpus into."""
    return (path / TRACES_FILE).is_file() and (path / EVENTS_DIR).is_dir()


def _is_glob(text: str) -> bool:
    return any(c in _GLOB_CHARS for c in text)


def _walk(directory: Path) -> list[Path]:
    """Every `*.arrow` file under `directory`, in path order; hidden files and directories are left out."""
    found: list[Path] = []
    for root, dirs, files in os.walk(directory, onerror=None, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(root) / f for f in sorted(files) if f.endswith(".arrow") and not f.startswith(".")]
    return found


def expand(sources: Sequence[str | Path]) -> Sources:
    """Globs and directories expanded, duplicates dropped (first place kept); each missing one is an error.

    A glob that matches nothing, a directory without a trace, a path that is
    not there: one line naming it (`AnalysisError`), before any file is
    opened, rather than a corpus silently smaller than the user meant.
    """
    if not sources:
        raise AnalysisError("give at least one trace file, glob or directory")
    found: list[Path] = []
    datasets: list[Path] = []
    for source in sources:
        text = str(source)
        if not text.strip():
            raise AnalysisError("an empty trace path (a variable that was not set?)")
        path = Path(text)
        if _is_glob(text) and not path.exists():
            try:
                matches = sorted(glob.glob(text, recursive=True))
            except (RecursionError, OSError) as exc:  # `**` follows symlinks: one to a parent loops
                why = "a directory loop (a symbolic link to a parent?)" if isinstance(exc, RecursionError) else exc
                raise AnalysisError(f"{text}: cannot expand this pattern: {why}") from None
            files = [Path(m) for m in matches if Path(m).is_file()]
            if not files:
                raise AnalysisError(f"{text}: no file matches this pattern")
            found += files
        elif path.is_dir():
            if is_dataset(path):
                datasets.append(path)
                continue
            files = _walk(path)
            if not files:
                raise AnalysisError(f"{path}: a directory with no .arrow trace in it")
            found += files
        else:
            try:
                check_input_file(path, "trace file")
            except PathError as exc:
                raise AnalysisError(str(exc)) from None
            found.append(path)
    if datasets and (found or len(datasets) > 1):
        raise AnalysisError(f"{datasets[0]}: an exported dataset is queried on its own, not with other sources")
    if datasets:
        return Sources(dataset=datasets[0])
    seen: set[str] = set()
    unique: list[Path] = []
    for path in found:
        key = os.path.realpath(path)
        if key not in seen:
            seen.add(key)
            unique.append(path)
    return Sources(traces=tuple(unique))
