"""`rrtool diff --baseline`: every trace of a corpus against one baseline, a verdict per trace.

A CI fleet or a campaign of chaos seeds asks "which runs left the known-good
run, and where": each trace is compared with the baseline by `diff_traces`
(the same alignment as a two-trace diff), and only its verdict is kept: equivalent,
or its first divergence (checkpoint, icount, kind, device, the fields that differ),
a metadata difference, or a run that ended differently. The files are all
opened before the first comparison, so a damaged or foreign file among many is
named before any work is done.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rrtool.analysis.corpus import unique_names
from rrtool.analysis.diff.engine import diff_traces
from rrtool.analysis.diff.model import DiffOptions, DiffResult
from rrtool.analysis.errors import AnalysisError
from rrtool.analysis.progress import Progress
from rrtool.analysis.sources import Sources, expand
from rrtool.schemas.tracefile import TraceError, open_tracefile


@dataclass(frozen=True)
class Verdict:
    """One trace against the baseline."""

    path: Path
    result: DiffResult
    #: The trace's name in a corpus of the same sources (`open_corpus`, `rrtool sql`), to join verdicts to it.
    name: str = ""

    @property
    def equivalent(self) -> bool:
        return self.result.equivalent

    def line(self) -> str:
        """The verdict in one line: `equivalent`, or what differs first."""
        r = self.result
        if r.equivalent:
            return f"{self.path}: equivalent"
        first = r.first
        if first is not None:
            fields = f" [{', '.join(first.fields)}]" if first.fields else ""
            what = {"changed": "changed", "only_a": "only in the baseline", "only_b": "only in this trace"}
            meta = f"; metadata differs: {', '.join(k for k, _, _ in r.metadata)}" if r.metadata else ""
            return (
                f"{self.path}: DIFFERENT at checkpoint {first.checkpoint} (icount {first.icount:,}): "
                f"{first.kind} on {first.device} {what.get(first.status, first.status)}{fields}{meta}"
            )
        if r.metadata:
            keys = ", ".join(k for k, _, _ in r.metadata)
            return f"{self.path}: DIFFERENT metadata: {keys}"
        ends = {True: "finished", False: "was cut short"}
        return f"{self.path}: DIFFERENT end: the baseline {ends[r.complete_a]}, this trace {ends[r.complete_b]}"

    def to_dict(self) -> dict[str, Any]:
        r = self.result
        first = r.first
        return {
            "trace": self.name,
            "path": str(self.path),
            "equivalent": r.equivalent,
            "complete": r.complete_b,
            "first": None
            if first is None
            else {
                "checkpoint": first.checkpoint,
                "icount": first.icount,
                "kind": first.kind,
                "device": first.device,
                "status": first.status,
                "fields": first.fields,
            },
            "metadata": [k for k, _, _ in r.metadata],
            "differences": r.totals().changed + r.totals().only_a + r.totals().only_b,
        }


def diff_baseline(
    baseline: Path,
    sources: Sequence[str | Path] | Sources,
    options: DiffOptions | None = None,
    progress: Progress | None = None,
) -> list[Verdict]:
    """Each trace named by `sources` (files, globs, directories) against `baseline`; `progress`: traces done.

    The baseline itself, if a glob names it too, is left out: it would only say it equals itself.
    """
    listed = sources if isinstance(sources, Sources) else expand(sources)
    if listed.dataset is not None:
        raise AnalysisError(f"{listed.dataset}: an exported dataset; compare the trace files it came from")
    base_key = os.path.realpath(baseline)
    paths = [p for p in listed.traces if os.path.realpath(p) != base_key]
    if not paths:
        raise AnalysisError("no trace to compare with the baseline (only the baseline itself was named)")
    for path in [baseline, *paths]:
        try:
            open_tracefile(path).close()
        except TraceError as exc:
            raise AnalysisError(str(exc)) from None
    names = dict(zip(listed.traces, unique_names(list(listed.traces)), strict=True))
    verdicts = []
    for i, path in enumerate(paths):
        verdicts.append(Verdict(path, diff_traces(baseline, path, options or DiffOptions()), names[path]))
        if progress is not None:
            progress(i + 1, len(paths))
    return verdicts
