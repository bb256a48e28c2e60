"""Reading traces as data: `open_trace`, SQL views, diff and exports. Never runs the emulator.

This package depends on `rrtool.schemas` only (plus pyarrow, polars and
duckdb), so analysing a trace needs neither Unicorn nor the guest SDK. It
returns data and never prints or reads stdin: rendering is `rrtool/cli`'s job.
Names are imported on first use, so `rrtool info` (which imports
`rrtool.analysis.info`) does not pay for importing Polars and DuckDB.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rrtool.analysis.corpus import Corpus, open_corpus
    from rrtool.analysis.diff import DiffOptions, DiffResult, diff_traces
    from rrtool.analysis.errors import AnalysisError
    from rrtool.analysis.trace import Trace, open_trace
    from rrtool.analysis.window import Span, Window

_EXPORTS = {
    "AnalysisError": "rrtool.analysis.errors",
    "Corpus": "rrtool.analysis.corpus",
    "open_corpus": "rrtool.analysis.corpus",
    "DiffOptions": "rrtool.analysis.diff",
    "DiffResult": "rrtool.analysis.diff",
    "Span": "rrtool.analysis.window",
    "Trace": "rrtool.analysis.trace",
    "Window": "rrtool.analysis.window",
    "diff_traces": "rrtool.analysis.diff",
    "open_trace": "rrtool.analysis.trace",
}

__all__ = [
    "AnalysisError", "Corpus", "DiffOptions", "DiffResult", "Span", "Trace", "Window", "diff_traces", "open_corpus",
    "open_trace",
]  # fmt: skip


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'rrtool.analysis' has no attribute {name!r}")
    return getattr(import_module(module), name)
