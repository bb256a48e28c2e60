"""Every view is defined once (`viewspec`) and rendered for Polars and for DuckDB: both give the same rows.

The traces are real recordings: timers (clock warps, interrupts), blkstress
on a disk with chaos completion order (block requests), netecho fed from a
capture with bad frames (received, sent and dropped packets) and a guest
that prints ill-formed UTF-8 (console text). Rows are compared exactly,
enums as strings, in `seq` order.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import polars as pl
import pytest

from rrtool.analysis import open_trace
from rrtool.analysis.views import VIEW_NAMES
from rrtool.analysis.viewspec import Col, Render, Utf8
from rrtool.board.disk import DiskSpec
from rrtool.board.host import HostSetup
from rrtool.recorder.session import record
from tests.conftest import BuildC, rrtool
from tests.test_net import udp_frame, write_pcap

BAD_UTF8 = r"""
#include "rrtool.h"

int main(void)
{
    rr_puts("plain ascii\n");
    rr_puts("caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x98\x80\n");
    rr_puts("bad: \xff | \xc0\x80 | \xe0\x80 | \xed\xa0\x80 | \xf0\x9f\x98 | \xf4\x90\x80\x80 | \xe2\x9c end\n");
    rr_puts("cut at the end \xe2\x9c");
    return 0;
}
"""


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory, build_c: BuildC, example: object) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("engines")
    out = {name: tmp / f"{name}.arrow" for name in ("timers", "blkstress", "netecho", "utf8")}
    assert record(example("timers"), out["timers"]).run.ok  # type: ignore[operator]
    disk = tmp / "disk.img"
    disk.write_bytes(os.urandom(1 << 16) * 32)
    rec = record(example("blkstress"), out["blkstress"], host=HostSetup(disk=DiskSpec(disk), chaos=3))  # type: ignore[operator]
    assert rec.run.ok, rec.run.message
    cap = tmp / "in.pcap"
    write_pcap(cap, [
        (100.000, b"\x01\x02\x03"),  # a runt: dropped, its ethertype unknown
        (100.001, udp_frame(b"ping one")[:13]),  # one byte short of an Ethernet header
        (100.002, udp_frame(b"ping two")),
        (100.003, udp_frame(b"x" * 1600)[:1600]),  # over the MTU
        (100.004, udp_frame(b"QUIT")),
    ])  # fmt: skip
    proc = rrtool("record", "netecho", "-o", out["netecho"], "--no-stdin", "-q", "--net", f"pcap,file={cap}")
    assert proc.returncode == 0, proc.stderr
    assert record(build_c("bad_utf8", BAD_UTF8), out["utf8"]).run.ok
    return out


def _rows(frame: pl.DataFrame) -> list[tuple[object, ...]]:
    return frame.with_columns(pl.col(pl.Enum, pl.Categorical).cast(pl.String)).rows()


@pytest.mark.parametrize("name", ["timers", "blkstress", "netecho", "utf8"])
def test_every_view_has_the_same_rows_in_polars_and_duckdb(recordings: dict[str, Path], name: str) -> None:
    with open_trace(recordings[name]) as trace:
        for view in VIEW_NAMES:
            frame = getattr(trace, view).collect()
            sql = trace.sql(f"select * exclude (trace) from {view}").pl()
            if view == "events":  # the one view without an order of its own (it is the scanned file)
                frame, sql = frame.sort("seq"), sql.sort("seq")
            assert frame.columns == sql.columns, (name, view)
            assert _rows(frame) == _rows(sql), (name, view)


def test_the_recordings_exercise_every_view(recordings: dict[str, Path]) -> None:
    def count(name: str, query: str) -> int:
        with open_trace(recordings[name]) as t:
            return int(t.sql(query).fetchall()[0][0])

    assert count("timers", "select count(*) from clock where host_wait_ns is not null") > 0
    assert count("timers", "select count(*) from interrupts") > 0
    assert count("blkstress", "select count(*) from block_ops where completed") > 10
    assert count("netecho", "select count(*) from packets where direction = 'drop' and ethertype is null") >= 2
    assert count("netecho", "select count(*) from packets where direction = 'tx' and ethertype = 2048") >= 1
    assert count("utf8", "select count(*) from console where text like '%\ufffd%'") >= 1
    with open_trace(recordings["utf8"]) as t:
        text = "".join(t.console.collect()["text"].to_list())
        data = b"".join(t.console.collect()["data"].to_list())
    assert text == data.decode("utf-8", "replace") and "café ✓ 😀" in text


def test_utf8_matches_python_replace_in_both_engines() -> None:
    """Every 1- to 3-byte string over the bytes where UTF-8 decoders disagree, then longer random ones."""
    edges = [0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xE1, 0xEC, 0xED,
             0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFF]  # fmt: skip
    values: list[bytes | None] = [bytes(p) for n in (1, 2, 3) for p in itertools.product(edges, repeat=n)]
    rng = __import__("random").Random(5)
    values += [bytes(rng.choice(edges) for _ in range(rng.randint(0, 12))) for _ in range(3000)]
    values += ["héllo ✓ 😀".encode(), b"", None]
    want = [None if v is None else v.decode("utf-8", "replace") for v in values]
    expr = Utf8(Col("x"))
    frame = pl.DataFrame({"x": values}, schema={"x": pl.Binary})
    assert frame.select(expr.polars(Render({}))).to_series().to_list() == want
    con = duckdb.connect()
    con.register("t", frame.with_row_index("i").to_arrow())
    got = [r[0] for r in con.sql(f"select {expr.sql(Render({}))} from t as v order by i").fetchall()]
    assert got == want


def test_sql_views_need_no_numpy(recordings: dict[str, Path]) -> None:
    """No Python function in the views: DuckDB needs numpy for those, and numpy is no dependency of rrtool."""
    code = (
        "import sys; sys.modules['numpy'] = None\n"  # import numpy now fails
        "from rrtool.analysis import open_trace\n"
        "t = open_trace(sys.argv[1])\n"
        "print(repr(t.sql('select text from console order by seq limit 1').fetchall()[0][0]))\n"
        "print(t.sql('select count(*) from block_ops').fetchall()[0][0])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(recordings["utf8"])], capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [repr("plain ascii\n"), "0"]
