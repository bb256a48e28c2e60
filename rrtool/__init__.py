"""rrtool: deterministic record/replay for an emulated x86-64 machine.

The trace is an Arrow IPC file; `open_trace` (in `rrtool.analysis`) reads it
without running the emulator.
"""

__version__ = "0.1.0"
