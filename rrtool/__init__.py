"""rrtool: deterministic record/replay for an emulated x86-64 machine.

The trace is an Arrow IPC file; `open_trace` reads one and `open_corpus` many as
one dataset (both in `rrtool.analysis`), without running the emulator.
"""

from typing import Any

#: The installed distribution's version (pyproject.toml is its one source), or
#: "0+unknown" when rrtool runs from a source tree that was never installed.
#: Looked up on first use: importlib.metadata costs more than the rest of `import rrtool`.
__version__: str


def _installed_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rrtool")
    except PackageNotFoundError:
        return "0+unknown"


def __getattr__(name: str) -> Any:
    """`rrtool.__version__`, `open_trace` and `open_corpus`, found on first use so that `import rrtool` stays cheap."""
    if name == "__version__":
        found = _installed_version()
        globals()["__version__"] = found  # later reads are plain attribute reads
        return found
    if name == "open_trace":
        from rrtool.analysis.trace import open_trace

        return open_trace
    if name == "open_corpus":
        from rrtool.analysis.corpus import open_corpus

        return open_corpus
    raise AttributeError(f"module 'rrtool' has no attribute {name!r}")
