"""Tests for the guest SDK build (rrtool.guest.build).

These check the shape of the produced ELF (what the machine's loader relies
on) and the error messages a user sees, without running the guest.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from rrtool.guest import build
from rrtool.guest.build import (
    GuestBuildError,
    build_guest,
    ensure_example,
    example_source,
    list_examples,
)

IMAGE_BASE = 0x100000
ALL_EXAMPLES = ["blkstress", "bridge", "compute", "hello", "kvstore", "netecho", "timers"]
# Symbols from every part of the SDK: crt0.S, libc.c, blk.c and net.c are
# linked into every guest, whether it uses them or not.
SDK_SYMBOLS = (
    "_start",
    "rr_irq_entry",
    "rr_irq_dispatch",
    "rr_wait_until",
    "rr_reset",
    "rr_blk_submit",
    "rr_blk_poll",
    "rr_net_init",
    "rr_net_poll",
    "rr_udp_send",
)

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep the user's compiler override and cache out of the tests."""
    monkeypatch.delenv("RRTOOL_CC", raising=False)
    monkeypatch.setenv("RRTOOL_CACHE", str(tmp_path / "cache"))


def test_examples_are_listed() -> None:
    assert set(ALL_EXAMPLES) <= set(list_examples())
    assert list_examples() == sorted(list_examples())


@pytest.mark.parametrize("name", ALL_EXAMPLES)
def test_example_first_line_describes_it(name: str) -> None:
    """`rrtool guest list` shows each example's first line."""
    first = example_source(name).read_text().splitlines()[0]
    assert re.fullmatch(rf"/\* {name}\.c - \S.* \*/", first), first
    assert len(first) <= 80


@needs_gcc
@pytest.mark.parametrize("name", ALL_EXAMPLES)
def test_example_builds_to_static_elf(name: str, tmp_path: Path) -> None:
    out = build_guest([example_source(name)], tmp_path / f"{name}.elf")
    with out.open("rb") as f:
        elf = ELFFile(f)
        assert elf.elfclass == 64
        assert elf["e_machine"] == "EM_X86_64"
        assert elf["e_type"] == "ET_EXEC"
        kinds = [seg["p_type"] for seg in elf.iter_segments()]
        assert "PT_INTERP" not in kinds
        assert "PT_DYNAMIC" not in kinds
        loads = [seg for seg in elf.iter_segments() if seg["p_type"] == "PT_LOAD"]
        assert loads
        for seg in loads:
            assert seg["p_vaddr"] >= IMAGE_BASE
        entry = elf["e_entry"]
        assert entry >= IMAGE_BASE
        assert any(s["p_vaddr"] <= entry < s["p_vaddr"] + s["p_memsz"] for s in loads)
        symbols = elf.get_section_by_name(".symtab")
        assert isinstance(symbols, SymbolTableSection)
        for sym in ("main", "_end", "__bss_start", *SDK_SYMBOLS):
            assert symbols.get_symbol_by_name(sym), sym


@needs_gcc
def test_examples_build_without_warnings(tmp_path: Path) -> None:
    """The SDK and examples stay clean under -Wall -Wextra (warnings are errors here)."""
    for name in ALL_EXAMPLES:
        build_guest([example_source(name)], tmp_path / f"{name}.elf", extra_cflags=["-Wextra", "-Werror"])


@needs_gcc
def test_blkstress_builds_without_bad_requests(tmp_path: Path) -> None:
    out = build_guest([example_source("blkstress")], tmp_path / "b.elf", extra_cflags=["-DBAD_REQUESTS=0"])
    assert out.is_file()


def test_sdk_sources_cover_every_c_file() -> None:
    sources = build._sdk_sources()
    assert sources[0].name == "crt0.S"
    names = {p.name for p in sources}
    assert {"libc.c", "blk.c", "net.c"} <= names
    assert names - {"crt0.S"} == {p.name for p in build.SDK_DIR.glob("*.c")}


def test_build_key_covers_every_sdk_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    sdk = tmp_path / "sdk"
    shutil.copytree(build.SDK_DIR, sdk)
    monkeypatch.setattr(build, "SDK_DIR", sdk)
    source = example_source("hello")
    key = build._build_key(source)
    assert build._build_key(source) == key
    (sdk / "net.c").write_text((sdk / "net.c").read_text() + "\n/* changed */\n")
    changed = build._build_key(source)
    assert changed != key
    (sdk / "extra.c").write_text("int rr_extra;\n")
    assert build._build_key(source) != changed


@needs_gcc
def test_extra_cflags_are_passed(tmp_path: Path) -> None:
    src = tmp_path / "flag.c"
    src.write_text(
        '#include "rrtool.h"\n#ifndef MUST_BE_SET\n#error MUST_BE_SET missing\n#endif\nint main(void) { return 0; }\n'
    )
    build_guest([src], tmp_path / "flag.elf", extra_cflags=["-DMUST_BE_SET=1"])
    with pytest.raises(GuestBuildError, match="MUST_BE_SET missing"):
        build_guest([src], tmp_path / "noflag.elf")


@needs_gcc
def test_syntax_error_gives_one_line_message(tmp_path: Path) -> None:
    src = tmp_path / "broken.c"
    src.write_text('#include "rrtool.h"\nint main(void) { return 0 }\n')
    with pytest.raises(GuestBuildError) as info:
        build_guest([src], tmp_path / "broken.elf")
    message = str(info.value)
    assert "\n" not in message
    assert "broken.c" in message
    assert "error" in message
    assert "broken.c" in info.value.details
    assert not (tmp_path / "broken.elf").exists()


@needs_gcc
def test_link_error_is_reported(tmp_path: Path) -> None:
    src = tmp_path / "undef.c"
    src.write_text("void nowhere(void);\nint main(void) { nowhere(); return 0; }\n")
    with pytest.raises(GuestBuildError, match="nowhere") as info:
        build_guest([src], tmp_path / "undef.elf")
    assert "\n" not in str(info.value)


def test_missing_source_is_reported(tmp_path: Path) -> None:
    missing = tmp_path / "absent.c"
    with pytest.raises(GuestBuildError, match=r"not found.*absent\.c"):
        build_guest([missing], tmp_path / "absent.elf")


def test_unknown_example_lists_available() -> None:
    with pytest.raises(GuestBuildError) as info:
        example_source("no-such-guest")
    message = str(info.value)
    assert "no-such-guest" in message
    for name in list_examples():
        assert name in message


def test_missing_compiler_is_reported(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RRTOOL_CC", str(tmp_path / "no-such-gcc"))
    with pytest.raises(GuestBuildError) as info:
        build_guest([example_source("hello")], tmp_path / "hello.elf")
    message = str(info.value)
    assert "not found" in message
    assert "C compiler" in message
    assert "\n" not in message


def test_no_gcc_on_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(GuestBuildError, match=r"^gcc not found: .*apt-get install gcc"):
        build_guest([example_source("hello")], tmp_path / "hello.elf")


@needs_gcc
def test_ensure_example_caches(tmp_path: Path) -> None:
    first = ensure_example("hello")
    assert first.is_file()
    assert first.parent == tmp_path / "cache" / "guests"
    assert first.name.startswith("hello-") and first.suffix == ".elf"
    assert len(first.stem.split("-")[-1]) == 16
    mtime = first.stat().st_mtime_ns

    second = ensure_example("hello")
    assert second == first
    assert second.stat().st_mtime_ns == mtime
    # No temporary files are left behind.
    assert sorted(p.name for p in first.parent.iterdir()) == [first.name]


@needs_gcc
def test_ensure_example_does_not_call_compiler_when_cached(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = ensure_example("hello")

    def fail(*args: object, **kwargs: object) -> Path:
        raise AssertionError("rebuilt a cached guest")

    monkeypatch.setattr(build, "build_guest", fail)
    assert ensure_example("hello") == first


def test_debug_build_keeps_debug_info_and_the_same_code(tmp_path: Path) -> None:
    from tests.conftest import invoke

    src = tmp_path / "g.c"
    src.write_text('#include "rrtool.h"\nint f(int x) { return x * 3; }\nint main(void) { return f(2); }\n')
    plain, debug = tmp_path / "plain.elf", tmp_path / "debug.elf"
    assert invoke("guest", "build", src, "-o", plain).returncode == 0
    assert invoke("guest", "build", "-g", src, "-o", debug).returncode == 0

    def sections(path: Path) -> dict[str, bytes]:
        with path.open("rb") as f:
            return {s.name: s.data() for s in ELFFile(f).iter_sections()}

    a, b = sections(plain), sections(debug)
    assert ".debug_info" in b and ".debug_info" not in a
    assert a[".text"] == b[".text"]  # gdb gets source lines; the guest runs exactly the same instructions
