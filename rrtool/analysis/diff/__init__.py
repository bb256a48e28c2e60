"""`rrtool diff`: two traces aligned event by event, the first divergence and a per-kind summary.

`engine.diff_traces` reads both traces side by side in icount windows
(`stream`), lines up each window's events (`align`) and sums up
(`model.DiffResult`); `report` formats the result as text lines (`DiffResult.to_dict` is the JSON).
"""

from rrtool.analysis.diff.engine import diff_traces
from rrtool.analysis.diff.model import Difference, DiffOptions, DiffResult, KindSummary

__all__ = ["DiffOptions", "DiffResult", "Difference", "KindSummary", "diff_traces"]
