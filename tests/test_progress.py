"""Progress bars appear where a person watches (a terminal) and nowhere else (a pipe, -q, --json)."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from rrtool.recorder.session import record
from tests.conftest import rrtool


def _stderr_on_a_terminal(*args: str | Path) -> tuple[int, str]:
    """Run the CLI with stderr on a pseudo-terminal, as in an interactive shell; return exit code and stderr."""
    master, slave = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "160"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rrtool.cli", *map(str, args)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave, env=env,
    )  # fmt: skip
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed its end
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    return proc.wait(timeout=120), b"".join(chunks).decode("utf-8", "replace")


def test_replay_bar_reaches_the_recorded_checkpoint_count(example: Callable[[str], Path], tmp_path: Path) -> None:
    trace = tmp_path / "timers.arrow"
    checkpoints = record(example("timers"), trace).run.checkpoints
    code, shown = _stderr_on_a_terminal("replay", trace)
    assert code == 0
    assert f"checkpoint {checkpoints:,}/{checkpoints:,}" in shown
    assert "100%" in shown and "replay verified" in shown


def test_no_bar_on_a_pipe_with_quiet_or_json(example: Callable[[str], Path], tmp_path: Path) -> None:
    trace = tmp_path / "timers.arrow"
    record(example("timers"), trace)
    piped = rrtool("replay", trace)
    assert piped.returncode == 0 and "replay verified" in piped.stderr
    assert "checkpoint " not in piped.stderr and "\x1b[" not in piped.stderr
    for flag in ("-q", "--json"):
        code, shown = _stderr_on_a_terminal("replay", trace, flag)
        assert code == 0
        assert "checkpoint " not in shown and "%" not in shown, flag


def test_analysis_jobs_report_batches_done_to_the_end(example: Callable[[str], Path], tmp_path: Path) -> None:
    from rrtool.analysis.diff import diff_traces
    from rrtool.analysis.export.parquet import export_parquet
    from rrtool.analysis.export.pcap import export_pcap
    from rrtool.analysis.export.perfetto import export_perfetto
    from rrtool.analysis.sql import open_session, write_parquet
    from rrtool.schemas.tracefile import open_tracefile

    trace = tmp_path / "timers.arrow"
    record(example("timers"), trace)
    with open_tracefile(trace) as tf:
        batches = tf.num_batches
    assert batches > 1
    jobs: dict[str, Callable[[Callable[[int, int], None]], object]] = {
        "pcap": lambda p: export_pcap(trace, tmp_path / "t.pcapng", progress=p),
        "parquet": lambda p: export_parquet(trace, tmp_path / "t.parquet", progress=p),
        "perfetto": lambda p: export_perfetto(trace, tmp_path / "t.json", progress=p),
        "diff": lambda p: diff_traces(trace, trace, progress=p),
    }
    for name, job in jobs.items():
        seen: list[tuple[int, int]] = []
        job(lambda done, total, seen=seen: seen.append((done, total)))  # type: ignore[misc]
        total = 2 * batches if name == "diff" else batches
        assert seen[-1] == (total, total), name
        assert [d for d, _ in seen] == sorted(d for d, _ in seen), name

    session = open_session([trace])
    rel = session.run("select * from events")
    assert rel is not None
    sql_seen: list[tuple[int, int]] = []
    write_parquet(rel, tmp_path / "q.parquet", con=session.con, progress=lambda d, t: sql_seen.append((d, t)))
    assert sql_seen[-1] == (1000, 1000)
