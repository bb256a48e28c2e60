"""Damaged traces never crash, hang or fool any command: a fuzz run from a fixed seed (see tests/fuzz_traces.py).

The count is bounded so that CI stays within minutes; `pytest --fuzz-count 5000 tests/test_fuzz.py`
(or `python -m tests.fuzz_traces --count 5000 --seed N`) runs a longer campaign.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import fuzz_traces

SEED = 20261201


def test_every_command_survives_damaged_traces(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    count = int(request.config.getoption("--fuzz-count"))
    sources = fuzz_traces.record_sources(tmp_path)
    jobs = fuzz_traces.make_jobs(sources, count, SEED, tmp_path, list(fuzz_traces.COMMANDS))
    outcomes = fuzz_traces.drive_parallel(jobs, tmp_path)
    assert len(outcomes) == len(jobs) == count * len(fuzz_traces.COMMANDS)
    problems = [f"{o.job['how']} {o.job['command']} ({o.job['mutant']}): {o.problem}" for o in outcomes if o.problem]
    summary = fuzz_traces.summarize(outcomes)
    print("\n".join(f"{n:6d}  {key}" for key, n in summary.items()))
    assert not problems, "\n".join(problems[:40])
    # The mutants reach both sides: some are refused as damaged, some still replay verified.
    assert summary.get("replay: exit 2", 0) > count // 10
    assert summary.get("replay: exit 0", 0) > 0
    assert summary.get("replay: exit 1", 0) > 0
