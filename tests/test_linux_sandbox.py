"""The Linux platform's root and file semantics under attack: what a review found, kept found.

Each check runs `tests/linux_programs/sandbox_checks.c` (or Debian's busybox) over a root the test builds,
with a host file or directory outside it that must stay unread and unchanged, and replays the recording.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from rrtool.linux.sandbox import Root
from tests.test_linux import BUSYBOX, PROGRAMS, make_root, needs_busybox, rec, rep


@pytest.fixture(scope="module")
def checks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("checks") / "sandbox_checks"
    subprocess.run(["gcc", "-static", "-O1", "-o", str(out), str(PROGRAMS / "sandbox_checks.c")], check=True,
                   capture_output=True)  # fmt: skip
    return out


def run_check(prog: Path, check: str, root: Path, tmp: Path, **setup: object) -> bytes:
    trace = tmp / f"{check}.arrow"
    result, out, errs = rec(prog, (check,), root, trace, **setup)  # type: ignore[arg-type]
    assert result.run.ok, (result.run.message, errs)
    replayed, again = rep(trace)
    assert replayed.verified, replayed.divergence
    assert again == out
    return out


def test_a_directory_made_over_a_symlink_hides_what_the_symlink_pointed_at(checks: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("TOP SECRET")
    root = make_root(tmp_path)
    (root / "link").symlink_to(outside)
    out = run_check(checks, "shadow", root, tmp_path)
    assert b"SECRET" not in out and b"No such file" in out
    assert (root / "link").is_symlink()  # and the root is as it was


def test_a_read_only_descriptor_never_changes_the_root(checks: Path, tmp_path: Path) -> None:
    root = make_root(tmp_path)
    before = os.stat(root / "f.txt")
    assert run_check(checks, "fchange", root, tmp_path) == b"fchmod 0 futimens 0\n"
    after = os.stat(root / "f.txt")
    assert (after.st_mode, after.st_mtime_ns) == (before.st_mode, before.st_mtime_ns)


@needs_busybox
def test_touch_of_a_symlink_changes_nothing_outside_the_root(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("x")
    os.utime(victim, ns=(10**9, 10**9))
    root = make_root(tmp_path)
    (root / "l").symlink_to(victim)
    for writeback in (False, True):
        result, _, errs = rec(BUSYBOX, ("touch", "-h", "/l"), root, tmp_path / "t.arrow", writeback=writeback)
        assert result.run.ok, errs
        assert os.stat(victim).st_mtime_ns == 10**9


def test_rename_of_a_directory_keeps_its_contents_and_keeps_types_apart(checks: Path, tmp_path: Path) -> None:
    root = make_root(tmp_path)
    out = run_check(checks, "rename", root, tmp_path)
    assert out == b"rename 0\nd3/e/x there, d No such file or directory\nfile onto dir: Is a directory\n"
    assert (root / "d" / "e" / "x").is_file() and not (root / "d3").exists()  # the root itself is untouched


def test_truncating_a_root_file_in_the_overlay_keeps_its_mode(checks: Path, tmp_path: Path) -> None:
    root = make_root(tmp_path)
    os.chmod(root / "f.txt", 0o640)
    assert run_check(checks, "trunc", root, tmp_path) == b"fd 3 mode 640 size 0\n"
    assert (root / "f.txt").read_text() == "hello\nworld\n"


def test_a_trailing_slash_names_a_directory(checks: Path, tmp_path: Path) -> None:
    root = make_root(tmp_path)
    assert run_check(checks, "slash", root, tmp_path) == b"f.txt/: Not a directory; d/: ok\n"


def test_code_read_over_code_already_run_is_the_code_that_runs(checks: Path, tmp_path: Path) -> None:
    root = make_root(tmp_path)
    (root / "code.bin").write_bytes(b"\xb8\x02\x00\x00\x00\xc3")
    assert run_check(checks, "code", root, tmp_path) == b"before 1 after 2\n"


def test_append_set_by_fcntl_appends(checks: Path, tmp_path: Path) -> None:
    root = make_root(tmp_path)
    assert run_check(checks, "append", root, tmp_path, writeback=True) == b"read /f.txt: hello\nworld\nZ\n"


def test_a_bad_sleep_is_einval(checks: Path, tmp_path: Path) -> None:
    root = make_root(tmp_path)
    assert run_check(checks, "sleep", root, tmp_path) == b"nanosleep -1 Invalid argument\n"


@needs_busybox
def test_mkdir_p_and_arguments_that_are_not_utf8(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    result, _, errs = rec(BUSYBOX, ("mkdir", "-p", "/x/y/z"), root, tmp_path / "m.arrow", writeback=True)
    assert result.run.ok, errs
    assert (root / "x" / "y" / "z").is_dir()
    odd = os.fsdecode(b"a\xffb")  # how a non-UTF-8 argument reaches Python: surrogate-escaped
    result, out, _ = rec(BUSYBOX, ("echo", odd), root, tmp_path / "e.arrow")
    assert result.run.ok and out == b"a\xffb\n"
    assert rep(tmp_path / "e.arrow")[1] == out


def test_a_deep_path_resolves_with_and_without_whiteouts(tmp_path: Path) -> None:
    """Review found each component's lookup rebuilding every prefix (a 2000-deep stat took 18 s); the
    prefix test is now linear per lookup, and both of its ways give the same answers."""
    root = Root(tmp_path)
    deep = "/".join(["d"] * 600)
    (tmp_path / deep).mkdir(parents=True)
    assert root.resolve("/" + deep, "/") == "/" + deep
    root.whiteouts.update({"/elsewhere", "/d/d/d/gone"})  # few: each is tested against the path
    assert root.resolve("/" + deep, "/") == "/" + deep
    assert root.locate("/d/d/d/gone/x") is None
    root.whiteouts.update(f"/w{i}" for i in range(3000))  # many: the path's prefixes are looked up instead
    assert root.resolve("/" + deep, "/") == "/" + deep
    assert root.locate("/d/d/d/gone/x") is None and root.locate("/d/d") is not None
