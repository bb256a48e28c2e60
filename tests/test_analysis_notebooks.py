"""The notebooks in notebooks/ run top to bottom on recordings made here, and are stored without outputs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"

nbformat = pytest.importorskip("nbformat", reason="notebook tests need the dev extra (nbformat, nbclient, ipykernel)")
nbclient = pytest.importorskip("nbclient", reason="notebook tests need the dev extra (nbclient)")
pytest.importorskip("matplotlib", reason="notebook tests need the dev extra (matplotlib)")


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from rrtool.guest.build import ensure_example
    from rrtool.recorder.session import record

    d = tmp_path_factory.mktemp("nb")
    a, b = d / "a.arrow", d / "b.arrow"
    record(ensure_example("timers"), a)
    record(ensure_example("timers"), b)
    return a, b


def run_notebook(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> object:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend renders figures as PNG
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": tmp_path}})
    client.execute()
    return nb


def outputs_text(nb: object) -> str:
    parts = []
    for cell in nb.cells:  # type: ignore[attr-defined]
        for out in cell.get("outputs", []):
            parts.append(out.get("text", "") + str(out.get("data", {}).get("text/plain", "")))
    return "\n".join(parts)


def test_explore_runs_on_a_timers_recording(
    recordings: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nb = run_notebook("explore.ipynb", tmp_path, monkeypatch, {"RRTOOL_TRACE": str(recordings[0])})
    text = outputs_text(nb)
    assert "0 requests, 0 completed" in text and "0 frames" in text
    images = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]  # type: ignore[attr-defined]
    assert len(images) >= 4


def test_diff_runs_on_two_timers_recordings(
    recordings: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = recordings
    nb = run_notebook("diff.ipynb", tmp_path, monkeypatch, {"RRTOOL_TRACE_A": str(a), "RRTOOL_TRACE_B": str(b)})
    text = outputs_text(nb)
    assert "different" in text and "first divergence at checkpoint 0" in text and "rtc_read" in text


#: The corpus notebook's last line.
CORPUS_SUMMARY = re.compile(
    r"(\d+) runs, (\d+) distinct completion orders, (\d+) of (\d+) diverge from the baseline "
    r"\((\d+) runs on other images at checkpoint 0\), its rerun (is equivalent|diverges at checkpoint \d+), "
    r"replay of the baseline (verified|DIVERGED)"
)


def test_corpus_records_fifty_blkstress_runs_then_analyses_them_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = tmp_path / "runs"
    nb = run_notebook("corpus.ipynb", tmp_path, monkeypatch, {"RRTOOL_CORPUS_DIR": str(runs)})
    text = outputs_text(nb)
    found = CORPUS_SUMMARY.search(text)
    assert found is not None, text[-3000:]
    total, orders, diverging, compared, elsewhere = map(int, found.groups()[:5])
    assert total == 50 and len(list(runs.glob("*.arrow"))) == 50
    assert 2 <= orders <= total  # chaos (and the host's thread pool) reorder completions
    assert compared == total - 1  # every run against the baseline, but not the baseline itself
    assert elsewhere == 32  # 2 other images x 16 seeds: their disk, in the device state, differs at checkpoint 0
    # Recording is not deterministic: even the rerun of the baseline's configuration captures the host's
    # completion order and wait times, so it diverges too; only replay is (and the baseline's verifies).
    assert diverging == compared and found.group(6).startswith("diverges")
    assert found.group(7) == "verified"
    assert "DuckDB and Polars agree on p50 and p99" in text
    images = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]  # type: ignore[attr-defined]
    assert len(images) >= 3

    # A directory of recordings is analysed as it is (nothing recorded), and the same files give the same answers.
    before = {p.name: p.stat().st_mtime_ns for p in runs.glob("*.arrow")}
    rerun = run_notebook("corpus.ipynb", tmp_path, monkeypatch, {"RRTOOL_CORPUS_DIR": str(runs)})
    again = CORPUS_SUMMARY.search(outputs_text(rerun))
    assert again is not None and again.group(0) == found.group(0)
    assert {p.name: p.stat().st_mtime_ns for p in runs.glob("*.arrow")} == before


@pytest.mark.parametrize("name", ["explore.ipynb", "diff.ipynb", "corpus.ipynb"])
def test_notebooks_are_stored_without_outputs(name: str) -> None:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{name}: strip outputs before committing"
