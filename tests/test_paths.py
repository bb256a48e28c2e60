"""The shared path rules: only regular files as inputs, no output onto an input, outputs renamed when complete."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rrtool._paths import PathError, atomic_output, check_input_file, refuse_clobber


def test_inputs_must_be_regular_files(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    regular = tmp_path / "f"
    regular.write_bytes(b"x")
    assert check_input_file(regular, "trace file").st_size == 1
    for path, words in [
        (fifo, "not a regular file"),
        (Path("/dev/zero"), "not a regular file"),
        (tmp_path, "is a directory"),
        (tmp_path / "missing", "no such trace file"),
    ]:
        with pytest.raises(PathError, match=words):
            check_input_file(path, "trace file")


def test_output_onto_input_is_refused_through_links(tmp_path: Path) -> None:
    src = tmp_path / "g.elf"
    src.write_bytes(b"elf")
    link = tmp_path / "link.elf"
    link.symlink_to(src)
    hard = tmp_path / "hard.elf"
    os.link(src, hard)
    for out in (src, link, hard, tmp_path / "." / "g.elf"):
        with pytest.raises(PathError, match="is the guest image"):
            refuse_clobber(out, [(None, "disk image"), (src, "guest image")])
    refuse_clobber(tmp_path / "other", [(src, "guest image")])


def test_atomic_output_renames_only_when_complete(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    out.write_text("old")
    with pytest.raises(RuntimeError), atomic_output(out) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert out.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]
    with atomic_output(out) as tmp:
        tmp.write_text("new")
    assert out.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]
    assert out.stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
