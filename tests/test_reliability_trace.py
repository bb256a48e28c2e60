"""Hostile traces, class by class: each gets one line and its exit code, and no input file changes.

The fuzz test (`test_fuzz.py`) finds what random damage does; these are the classes named in the
reliability issue, made on purpose: a trace with nothing to verify, rows out of order, values a
replay would use unchecked, metadata that lies, and files that are not trace files at all.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc
import pytest

from rrtool.board.disk import DiskSpec
from rrtool.board.host import HostSetup
from rrtool.guest.build import ensure_example
from rrtool.recorder.session import record
from rrtool.schemas import events as ev
from rrtool.schemas.writer import TraceWriter
from tests.conftest import invoke
from tests.tracetools import read_rows, write_rows

READERS: list[list[str]] = [["replay", "-q"], ["info"], ["info", "--json"], ["sql", "select count(*) from events"]]


@pytest.fixture(scope="module")
def timers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rel") / "timers.arrow"
    assert record(ensure_example("timers"), path, console_sink=lambda b: None).run.ok
    return path


@pytest.fixture(scope="module")
def blk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("relblk")
    disk = where / "disk.img"
    disk.write_bytes(bytes(1 << 20))
    path = where / "blk.arrow"
    assert record(ensure_example("blkstress"), path, host=HostSetup(disk=DiskSpec(disk)), console_sink=lambda b: None)
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run(*args: str | Path, timeout: float = 60) -> Any:
    """`invoke`, checking that no file named on the command line changed (a refused input stays as it was)."""
    files = [Path(a) for a in args if isinstance(a, Path) and Path(a).is_file()]
    before = [sha(f) for f in files]
    proc = invoke(*args, timeout=timeout)
    assert [sha(f) for f in files] == before, "an input file changed"
    return proc


def one_line_error(proc: Any, code: int = 2) -> str:
    """The run failed with `code` and exactly one `rrtool: error:` line, no traceback; returns the line."""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(lines) == 1 and lines[0].startswith("rrtool: error:"), proc.stderr
    return str(lines[0])


def rewrite(
    src: Path,
    dst: Path,
    table: Callable[[pa.Table], pa.Table] = lambda t: t,
    meta: Callable[[dict[bytes, bytes]], dict[bytes, bytes]] = lambda m: m,
) -> Path:
    """`src` rewritten with raw pyarrow (not rrtool's writer, which would renumber and re-index)."""
    with pa.memory_map(str(src)) as source:
        reader = ipc.open_file(source)
        schema = reader.schema
        batches = [reader.get_batch_with_custom_metadata(i) for i in range(reader.num_record_batches)]
    rows = [b for b, _ in batches if b.num_rows]
    original = pa.Table.from_batches(rows).combine_chunks()
    whole = table(original)
    new_schema = whole.schema.with_metadata(meta(dict(schema.metadata)))
    edited = whole if {"checkpoint", "icount"} <= set(whole.column_names) else original
    first, last = edited.column("checkpoint"), edited.column("icount")
    index = {
        ev.BATCH_FIRST_CHECKPOINT: str(first[0]), ev.BATCH_LAST_CHECKPOINT: str(first[-1]),
        ev.BATCH_FIRST_ICOUNT: str(last[0]), ev.BATCH_LAST_ICOUNT: str(last[-1]),
    }  # fmt: skip
    with pa.OSFile(str(dst), "wb") as sink, ipc.new_file(sink, new_schema) as writer:
        for batch in whole.to_batches():
            writer.write_batch(batch, custom_metadata=index)
    return dst


def set_value(table: pa.Table, column: str, row: int, value: object) -> pa.Table:
    values = table.column(column).to_pylist()
    values[row] = value
    field = table.schema.field(column)
    if pa.types.is_dictionary(field.type):
        dictionary = table.column(column).combine_chunks().dictionary
        words = dictionary.to_pylist()
        indices = pa.array([None if v is None else words.index(v) for v in values], pa.int8())
        array: pa.Array = pa.DictionaryArray.from_arrays(indices, dictionary)
    else:
        array = pa.array(values, field.type)
    return table.set_column(table.schema.get_field_index(column), field, array)


def first_row(table: pa.Table, kind: str) -> int:
    return next(i for i, k in enumerate(table.column("kind").to_pylist()) if k == kind)


# -- a trace with nothing to verify ------------------------------------------------
def test_a_trace_without_a_checkpoint_never_verifies(timers: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty.arrow"
    meta = {k: v for k, v in read_meta(timers).items() if k != ev.META_FORMAT_VERSION}
    TraceWriter(empty, meta).close()  # what a recording killed before its first batch leaves
    assert "no complete checkpoint" in one_line_error(run("replay", empty))
    assert invoke("info", empty).returncode == 0  # it is a readable trace, just an empty one


def read_meta(path: Path) -> dict[str, str]:
    from rrtool.schemas.tracefile import open_tracefile

    with open_tracefile(path) as trace:
        return dict(trace.metadata)


# -- order: seq, checkpoints, icount ---------------------------------------------------
@pytest.mark.parametrize(
    ("name", "edit", "words"),
    [
        ("negative icount", lambda t: set_value(t, "icount", 5, -3), "icount goes backwards"),
        ("icount backwards", lambda t: set_value(t, "icount", t.num_rows - 2, 1), "icount goes backwards"),
        ("swapped rows", lambda t: t.take([0, 2, 1, *range(3, t.num_rows)]), "seq does not continue"),
        ("duplicated row", lambda t: t.take([0, 1, 1, *range(2, t.num_rows)]), "seq does not continue"),
        ("checkpoint id skipped", lambda t: set_value(t, "checkpoint", 0, 4), "checkpoint ids"),
        ("rows after the end", lambda t: t.take([*range(t.num_rows), 1]), "seq does not continue"),
    ],
)
def test_rows_out_of_order_are_refused_not_replayed_forever(
    timers: Path, tmp_path: Path, name: str, edit: Callable[[pa.Table], pa.Table], words: str
) -> None:
    bad = rewrite(timers, tmp_path / "bad.arrow", edit)
    before = sha(bad)
    for args in READERS:
        assert words in one_line_error(run(*args[:1], bad, *args[1:], timeout=30))
    assert "differ" not in invoke("diff", bad, timers).stdout
    assert sha(bad) == before


# -- values replay would use unchecked ------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "column", "value", "words"),
    [
        ("rtc_read", "value", None, "lacks its 'value'"),
        ("rtc_read", "data", b"smuggled", "has a 'data'"),
        ("clock_warp", "warp_ns", None, "lacks its 'warp_ns'"),
        ("checkpoint", "kind", None, "column 'kind' has nulls"),
        ("rng_read", "device", "console", "names a device"),
    ],
)
def test_rows_that_break_the_kind_contract_are_refused(
    timers: Path, tmp_path: Path, kind: str, column: str, value: object, words: str
) -> None:
    bad = rewrite(timers, tmp_path / "bad.arrow", lambda t: set_value(t, column, first_row(t, kind), value))
    for args in READERS:
        assert words in one_line_error(run(*args[:1], bad, *args[1:]))


def test_a_block_completion_for_another_device_is_refused(blk: Path, tmp_path: Path) -> None:
    bad = rewrite(blk, tmp_path / "bad.arrow", lambda t: set_value(t, "device", first_row(t, "blk_complete"), "net0"))
    assert "names a device" in one_line_error(run("replay", bad))


def test_a_duplicated_input_row_diverges(blk: Path, tmp_path: Path) -> None:
    rows = read_rows(blk)
    at = next(i for i, r in enumerate(rows) if r["kind"] == "blk_complete")
    rows.insert(at, dict(rows[at]))  # through rrtool's own writer: seq and the index are renumbered
    bad = tmp_path / "dup.arrow"
    write_rows(blk, bad, rows)
    proc = invoke("replay", bad, "-q")
    assert proc.returncode == 1, proc.stderr
    assert "DIVERGENCE" in proc.stderr and "does not belong" in proc.stderr


def test_an_input_moved_off_its_checkpoint_diverges(timers: Path, tmp_path: Path) -> None:
    rows = read_rows(timers)
    cp = next(r for r in rows if r["kind"] == "checkpoint" and r["checkpoint"] == 3)
    cleared = dict.fromkeys(("cp_kind", "pc", "reg_digest", "dev_digest", "mem_digest", "host_ns", "text", "value"))
    moved = {**cp, **cleared, "kind": "console_in", "device": "console", "icount": cp["icount"] + 1, "data": b"x"}
    rows.insert(rows.index(cp) + 1, moved)
    bad = tmp_path / "moved.arrow"
    write_rows(timers, bad, rows)
    proc = invoke("replay", bad, "-q")
    assert proc.returncode == 1 and "not stamped with the checkpoint" in proc.stderr, proc.stderr


def test_a_memory_digest_replay_does_not_take_diverges(timers: Path, tmp_path: Path) -> None:
    def add_digest(t: pa.Table) -> pa.Table:
        kinds, cps = t.column("kind").to_pylist(), t.column("cp_kind").to_pylist()
        row = next(i for i in range(1, t.num_rows) if kinds[i] == "checkpoint" and cps[i] == "interrupt")
        return set_value(t, "mem_digest", row, 12345)

    proc = invoke("replay", rewrite(timers, tmp_path / "mem.arrow", add_digest), "-q")
    assert proc.returncode == 1 and "mem_digest differs" in proc.stderr, proc.stderr


# -- metadata -------------------------------------------------------------------------
def _drop(key: str) -> Callable[[dict[bytes, bytes]], dict[bytes, bytes]]:
    return lambda m: {k: v for k, v in m.items() if k != key.encode()}


def _set(key: str, value: bytes) -> Callable[[dict[bytes, bytes]], dict[bytes, bytes]]:
    return lambda m: {**m, key.encode(): value}


@pytest.mark.parametrize(
    ("meta", "words", "readers"),
    [
        (_drop(ev.META_IMAGE_SHA256), "no image sha256", ["replay"]),
        (_drop(ev.META_MACHINE), "does not describe its machine", ["replay"]),
        (_set(ev.META_MACHINE, b'{"ram_size": '), "is not valid JSON", ["replay", "info"]),
        (_set(ev.META_MACHINE, b"[1, 2]"), "is not a JSON dict", ["replay", "info"]),
        (_set(ev.META_MACHINE, b'{"ram_size": "x"}'), "not an integer", ["replay"]),
        (_set(ev.META_MACHINE, b'{"ns_per_insn": 1.5}'), "not an integer", ["replay"]),
        (_set(ev.META_MACHINE, b'{"disk_sectors": 18446744073709551616}'), "not a disk size", ["replay"]),
        (_set(ev.META_MACHINE, b'{"nics": [{"mac": "zz", "ipv4": "1.2.3.4"}]}'), "rrtool can build", ["replay"]),
        (_set(ev.META_IMAGE_PATH, b"/dev/zero"), "not a regular file", ["replay"]),
        (_set(ev.META_HOST, b"\xff\xfe"), "not UTF-8", ["replay", "info", "sql"]),
        (_set(ev.META_FORMAT_VERSION, b"3\nx"), "format version 3\\nx is not supported", ["replay", "info"]),
    ],
)
def test_metadata_that_lies_is_refused(
    timers: Path, tmp_path: Path, meta: Callable[[dict[bytes, bytes]], dict[bytes, bytes]], words: str,
    readers: list[str],
) -> None:  # fmt: skip
    bad = rewrite(timers, tmp_path / "meta.arrow", meta=meta)
    for command in readers:
        query = ["select 1"] if command == "sql" else []
        assert words in one_line_error(run(command, bad, *query, timeout=30))


def test_force_replays_a_trace_without_its_image_hash(timers: Path, tmp_path: Path) -> None:
    bad = rewrite(timers, tmp_path / "nosha.arrow", meta=_drop(ev.META_IMAGE_SHA256))
    assert invoke("replay", bad, "--force", "-q").returncode == 0


# -- the columns ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (lambda t: t.append_column("extra", pa.array([1] * t.num_rows)), "unexpected column 'extra'"),
        (lambda t: t.drop_columns(["vclock_ns"]), "column 'vclock_ns' is missing"),
        (lambda t: t.rename_columns([("icnunt" if n == "icount" else n) for n in t.column_names]), "is missing"),
        (lambda t: t.set_column(2, pa.field("icount", pa.int32(), False), t.column("icount").cast(pa.int32())),
         "column 'icount' is int32"),
    ],
)  # fmt: skip
def test_columns_other_than_the_events_table_are_refused(
    timers: Path, tmp_path: Path, edit: Callable[[pa.Table], pa.Table], words: str
) -> None:
    bad = rewrite(timers, tmp_path / "cols.arrow", edit)
    out = tmp_path / "out.json"
    commands: list[list[str | Path]] = [[args[0], bad, *args[1:]] for args in READERS]
    commands += [["diff", bad, timers], ["export", "perfetto", bad, "-o", out]]
    for command in commands:
        assert words in one_line_error(run(*command))
    assert not (tmp_path / "out.json").exists()


# -- diff --------------------------------------------------------------------------------
def test_diff_of_a_cut_short_trace_is_a_difference(timers: Path, tmp_path: Path) -> None:
    rows = read_rows(timers)
    cut = tmp_path / "cut.arrow"
    write_rows(timers, cut, rows[: len(rows) // 2])  # a finished file whose last checkpoint is not the end
    proc = invoke("diff", cut, timers)
    assert proc.returncode == 1, proc.stdout
    assert "cut short" in proc.stdout
    same = tmp_path / "same.arrow"
    write_rows(timers, same, rows)
    assert invoke("diff", same, timers).returncode == 0


# -- not trace files at all ---------------------------------------------------------------
def test_fifos_devices_and_directories_are_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.arrow"
    os.mkfifo(fifo)
    for path in (fifo, Path("/dev/zero"), tmp_path):
        for args in READERS:
            # `sql` takes a directory as a corpus: it walks it, finds fifo.arrow, and refuses that.
            words = "is a directory" if path == tmp_path and args[0] != "sql" else "not a regular file"
            assert words in one_line_error(run(*args[:1], path, *args[1:], timeout=20))


def test_a_damaged_footer_is_damage_not_a_crash(timers: Path, tmp_path: Path) -> None:
    data = bytearray(timers.read_bytes())
    data[-20] ^= 0xFF  # inside the footer's flatbuffer
    bad = tmp_path / "footer.arrow"
    bad.write_bytes(bytes(data))
    for args in READERS:
        line = one_line_error(run(*args[:1], bad, *args[1:]))
        assert "damaged" in line or "footer" in line, line


def test_an_edited_machine_record_diverges_at_the_first_checkpoint(timers: Path, tmp_path: Path) -> None:
    def slower_cadence(meta: dict[bytes, bytes]) -> dict[bytes, bytes]:
        machine = json.loads(meta[ev.META_MACHINE.encode()])
        machine["checkpoint_every"] += 100  # replay stops where the log says, so only the digest can notice
        return {**meta, ev.META_MACHINE.encode(): json.dumps(machine).encode()}

    proc = run("replay", rewrite(timers, tmp_path / "cadence.arrow", meta=slower_cadence), "-q")
    assert proc.returncode == 1 and "checkpoint 0" in proc.stderr and "dev_digest differs" in proc.stderr, proc.stderr


def test_a_successful_block_read_without_its_data_diverges(blk: Path, tmp_path: Path) -> None:
    def drop_read_data(t: pa.Table) -> pa.Table:
        kinds, ops, data = t.column("kind").to_pylist(), t.column("op").to_pylist(), t.column("data").to_pylist()
        row = next(i for i in range(t.num_rows) if kinds[i] == "blk_complete" and ops[i] == "read" and data[i])
        return set_value(t, "data", row, None)

    proc = run("replay", rewrite(blk, tmp_path / "nodata.arrow", drop_read_data), "-q")
    assert proc.returncode == 1 and "without its data" in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    "args", [["sql", "{t}", "select 1", "--checkpoints", "\u00b2"], ["run", "hello", "--ram", "\u00b2M"]]
)
def test_digits_that_are_not_ascii_are_usage_errors(timers: Path, args: list[str]) -> None:
    one_line_error(run(*[timers if a == "{t}" else a for a in args]))
