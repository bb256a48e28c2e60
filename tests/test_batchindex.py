"""The batch index comes from pyarrow reading one small column per batch, and a range query reads little.

The trace here has batches of about a thousand rows of incompressible
console bytes, so a batch's body dwarfs its message header, as in a real
recording (tens of thousands of rows per batch): reading every batch in full
and reading only the index then differ by two orders of magnitude.
"""

from __future__ import annotations

import random
from pathlib import Path

import pyarrow as pa
import pytest

from rrtool.analysis import open_trace
from rrtool.analysis.window import Span, Window, _CountingFile
from rrtool.schemas import events as ev
from rrtool.schemas.batchindex import INDEX_COLUMN, BatchInfo, index_reader, read_index
from rrtool.schemas.event import Event
from rrtool.schemas.tracefile import open_tracefile
from tests.test_analysis_support import cp, truncate, write_trace

CHECKPOINTS = 40
PER_CHECKPOINT = 250


@pytest.fixture(scope="module")
def bulky(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = random.Random(9)
    events: list[Event] = []
    for c in range(CHECKPOINTS):
        events.append(cp(c, c * 10_000, c * 10_000, ev.CP_INIT if c == 0 else ev.CP_PERIODIC))
        for k in range(PER_CHECKPOINT):
            i = c * 10_000 + k + 1
            events.append(Event(ev.KIND_CONSOLE_OUT, "console", i, i, checkpoint=c, data=rng.randbytes(120)))
    events[-PER_CHECKPOINT - 1].cp_kind = ev.CP_END
    return write_trace(tmp_path_factory.mktemp("index") / "bulky.arrow", events, rows=4 * PER_CHECKPOINT)


def _index_bytes(path: Path) -> int:
    counting = _CountingFile(str(path))
    try:
        read_index(index_reader(pa.PythonFile(counting, mode="r")))
    finally:
        counting.close()
    return counting.bytes_read


def test_index_matches_the_metadata_of_the_full_batches(bulky: Path) -> None:
    tf = open_tracefile(bulky)
    spans = tf.batch_index()
    assert len(spans) >= CHECKPOINTS // 4
    assert spans[0].rows == 0 and spans[0].first_checkpoint == -1  # the empty header batch
    for span in spans:
        batch, meta = tf.batch(span.index)
        assert span.rows == batch.num_rows
        keys = (ev.BATCH_FIRST_CHECKPOINT, ev.BATCH_LAST_CHECKPOINT, ev.BATCH_FIRST_ICOUNT, ev.BATCH_LAST_ICOUNT)
        assert (span.first_checkpoint, span.last_checkpoint, span.first_icount, span.last_icount) == tuple(
            int(meta[k]) for k in keys
        )
        if span.rows:
            assert span.first_checkpoint == batch.column("checkpoint")[0].as_py()
            assert span.last_icount == batch.column("icount")[-1].as_py()
    assert tf.find_batch(CHECKPOINTS // 2) == next(
        s.index for s in spans if s.first_checkpoint <= CHECKPOINTS // 2 <= s.last_checkpoint
    )
    assert tf.find_batch(CHECKPOINTS + 5) is None


def test_index_decodes_one_small_column_only(bulky: Path) -> None:
    reader = index_reader(str(bulky))
    assert reader.get_batch(1).schema.names == [INDEX_COLUMN]
    size = bulky.stat().st_size
    assert _index_bytes(bulky) < 0.05 * size


def test_range_query_reads_index_entries_and_the_overlapping_batches_only(bulky: Path) -> None:
    size = bulky.stat().st_size
    window = open_trace(bulky, checkpoints=(20, 20))
    got = window.events.select("checkpoint").collect()["checkpoint"].unique().to_list()
    assert got == [20] and window.events.collect().height == PER_CHECKPOINT + 1
    assert window.bytes_read is not None
    assert 0 < window.bytes_read < 0.25 * size  # one or two batches of ten, and the index entries searched


def test_truncated_trace_has_an_index_from_its_good_batches(bulky: Path, tmp_path: Path) -> None:
    cut = truncate(bulky, tmp_path / "cut.arrow", 0.5)
    with pytest.raises(pa.ArrowInvalid):
        index_reader(str(cut))  # no footer
    tf = open_tracefile(cut)
    assert not tf.complete_file
    spans = tf.batch_index()
    assert 1 < len(spans) < len(open_tracefile(bulky).batch_index())
    assert spans == open_tracefile(bulky).batch_index()[: len(spans)]
    window = open_trace(cut, checkpoints=(2, 3))
    assert set(window.events.select("checkpoint").collect()["checkpoint"].to_list()) == {2, 3}


def test_binary_search_finds_the_same_batches_as_a_scan(bulky: Path) -> None:
    tf = open_tracefile(bulky)
    spans = tf.batch_index()
    probes: list[int] = []

    def info(i: int) -> BatchInfo:
        probes.append(i)
        return spans[i]

    def scan(window: Window) -> list[int]:
        def hit(span: Span | None, first: int, last: int) -> bool:
            return span is None or span.overlaps(first, last)

        return [s.index for s in spans if s.rows and hit(window.checkpoints, s.first_checkpoint, s.last_checkpoint)
                and hit(window.icounts, s.first_icount, s.last_icount)]  # fmt: skip

    ends = [None, -3, 0, 1, 7, 8, 19, 20, 21, CHECKPOINTS - 1, CHECKPOINTS, CHECKPOINTS + 9]
    for lo in ends:
        for hi in ends:
            if lo is not None and hi is not None and lo > hi:
                continue
            for window in (
                Window(checkpoints=Span(lo, hi)),
                Window(icounts=Span(None if lo is None else lo * 10_000 + 3, None if hi is None else hi * 10_000 + 3)),
                Window(checkpoints=Span(lo, hi), icounts=Span(60_000, 250_000)),
            ):
                assert window.overlapping(len(spans), info) == scan(window), window
    many = [BatchInfo(0, -1, -1, -1, -1, 0)] + [BatchInfo(i, i * 10, i * 10 + 9, i * 1000, i * 1000 + 999, 50)
                                               for i in range(1, 2000)]  # fmt: skip
    seen: set[int] = set()

    def look(i: int) -> BatchInfo:
        seen.add(i)
        return many[i]

    chosen = Window(checkpoints=Span(12_345, 12_360)).overlapping(len(many), look)
    assert chosen == [1234, 1235, 1236] and len(seen) < 30  # not 2000
