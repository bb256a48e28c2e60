"""rrtool: deterministic record/replay for an emulated x86-64 machine.

The trace is an Arrow IPC file; `open_trace` (in `rrtool.analysis`) reads it
without running the emulator.
"""

from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """`rrtool.open_trace`, imported on first use so that `import rrtool` stays cheap."""
    if name == "open_trace":
        from rrtool.analysis.trace import open_trace

        return open_trace
    raise AttributeError(f"module 'rrtool' has no attribute {name!r}")
