"""Block device record/replay: chaos orders, a disk-less replay, the user's image left alone, bad requests."""

from __future__ import annotations

import hashlib
import os
import re
import stat
import subprocess
from pathlib import Path

import pytest

from rrtool.board.disk import DiskSpec
from rrtool.board.host import HostSetup
from rrtool.player.session import replay
from rrtool.recorder.session import record
from tests.conftest import invoke
from tests.tracetools import read_rows


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def disk(tmp_path: Path) -> Path:
    path = tmp_path / "disk.img"
    path.write_bytes(os.urandom(1 << 16) * 128)  # 8 MiB of recognisable, non-zero content
    return path


def completion_order(trace: Path) -> tuple[int, ...]:
    return tuple(r["req_id"] for r in read_rows(trace) if r["kind"] == "blk_complete")


def test_chaos_recordings_show_several_orders_and_all_replay(example: object, disk: Path, tmp_path: Path) -> None:
    image = example("blkstress")  # type: ignore[operator]
    before = sha(disk)
    orders = set()
    for seed in range(20):
        trace = tmp_path / f"chaos{seed}.arrow"
        rec = record(image, trace, host=HostSetup(disk=DiskSpec(disk), chaos=seed))
        assert rec.run.ok, rec.run.message
        assert b"blkstress: ok" in rec.run.output
        orders.add(completion_order(trace))
        rep = replay(trace)
        assert rep.verified, rep.divergence and rep.divergence.report()
    assert len(orders) > 1
    assert sha(disk) == before  # 20 recordings that wrote megabytes, and the image is untouched


def test_replay_needs_no_disk_and_default_recording_leaves_image_alone(example: object, disk: Path,
                                                                       tmp_path: Path) -> None:  # fmt: skip
    before = sha(disk)
    trace = tmp_path / "t.arrow"
    proc = invoke("record", "blkstress", "-o", trace, "--disk", disk, "--no-stdin", "-q")
    assert proc.returncode == 0, proc.stderr
    assert sha(disk) == before
    disk.unlink()
    proc = invoke("replay", trace, "-q")
    assert proc.returncode == 0, proc.stderr
    assert "replay verified" in proc.stderr


def test_writeback_changes_the_image_and_replays(example: object, disk: Path, tmp_path: Path) -> None:
    before = sha(disk)
    trace = tmp_path / "wb.arrow"
    proc = invoke("record", "blkstress", "-o", trace, "--disk", f"{disk},writeback", "--no-stdin", "-q")
    assert proc.returncode == 0, proc.stderr
    assert sha(disk) != before
    assert replay(trace).verified


def test_write_digests_are_compared_in_replay(example: object, disk: Path, tmp_path: Path) -> None:
    from tests.tracetools import write_rows

    trace = tmp_path / "w.arrow"
    assert record(example("blkstress"), trace, host=HostSetup(disk=DiskSpec(disk))).run.ok  # type: ignore[operator]
    rows = read_rows(trace)
    target = [r for r in rows if r["kind"] == "blk_submit" and r["op"] == "write"][5]
    target["data_digest"] ^= 1
    bad = tmp_path / "bad.arrow"
    write_rows(trace, bad, rows)
    div = replay(bad).divergence
    assert div is not None
    assert div.what == "blk_submit data_digest differs"
    assert div.checkpoint == target["checkpoint"] and div.icount == target["icount"]


def test_each_bad_request_gets_its_error_status(example: object, disk: Path, tmp_path: Path) -> None:
    before = sha(disk)
    trace = tmp_path / "bad.arrow"
    rec = record(example("blkstress"), trace, host=HostSetup(disk=DiskSpec(disk)))  # type: ignore[operator]
    assert rec.run.ok
    statuses = dict(re.findall(rb"bad (\w+) status (\d+)", rec.run.output))
    assert statuses == {b"range": b"2", b"badaddr": b"3", b"zerolen": b"4", b"toolong": b"4", b"badop": b"5",
                        b"badindex": b"7"}  # fmt: skip
    rows = read_rows(trace)
    rejected = [r for r in rows if r["kind"] == "blk_submit" and r["status"] is not None]
    assert sorted(r["status"] for r in rejected) == [2, 3, 4, 4, 5, 7]
    accepted = [r for r in rows if r["kind"] == "blk_submit" and r["status"] is None]
    completed = [r for r in rows if r["kind"] == "blk_complete"]
    assert len(completed) == len(accepted)  # no rejected request ever reached the host disk
    assert sha(disk) == before
    assert replay(trace).verified


@pytest.mark.parametrize(
    ("make", "option", "message"),
    [
        (lambda p: None, "", "no such file"),
        (lambda p: p.mkdir(), "", "is a directory"),
        (lambda p: (p.write_bytes(bytes(4096)), p.chmod(stat.S_IRUSR)), ",writeback", "read-only"),
        (lambda p: p.write_bytes(bytes(4096)), ",bogus", "unknown --disk option"),
    ],
)
def test_bad_disk_options_give_one_line(tmp_path: Path, make: object, option: str, message: str) -> None:
    path = tmp_path / "d.img"
    make(path)  # type: ignore[operator]
    immutable = False
    if message == "read-only" and os.access(path, os.W_OK):
        # Root ignores permission bits: make the file immutable instead, where the file system allows it.
        immutable = subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0
        if not immutable:
            pytest.skip("running as root on a file system without chattr +i: cannot make a file read-only")
    try:
        proc = invoke("run", "hello", "--disk", f"{path}{option}", "--no-stdin")
        assert proc.returncode == 2, proc.stderr
        assert message in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(path)], capture_output=True)
