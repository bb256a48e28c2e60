"""The command line on bad input: one line and exit 2, nothing the user owns changed, outputs never half-written.

Every case runs the real `rrtool` in a subprocess, in a work directory of real files (a recorded trace, a
guest ELF and its source, a disk image, a capture file, a fifo), and hashes every file there before and
after: a refused command must leave them all as they were, and write nothing new. Cases of one command
run side by side (each is its own process) to keep the suite quick; a failure names every failing case.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.test_analysis_support import scenario, write_trace

SPIN = '#include "rrtool.h"\nint main(void) { volatile unsigned long i = 0; for (;;) i++; return 0; }\n'
HELLO = '#include "rrtool.h"\nint main(void) { rr_printf("hello\\n"); return 0; }\n'


@dataclass(frozen=True)
class Work:
    dir: Path
    env: dict[str, str]


def cli(
    work: Work, *args: str, timeout: float = 60, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`rrtool ARGS` in the work directory, stdin empty, stdout and stderr captured (not a terminal)."""
    return subprocess.run(
        [sys.executable, "-m", "rrtool.cli", *args], cwd=work.dir, capture_output=True, text=True,
        timeout=timeout, stdin=subprocess.DEVNULL, env={**work.env, **(env or {})},
    )  # fmt: skip


def snapshot(directory: Path) -> dict[str, str]:
    """Every entry under `directory` by relative path: a regular file by the sha256 of its bytes, others by kind."""
    found: dict[str, str] = {}
    for path in sorted(directory.rglob("*")):
        rel = str(path.relative_to(directory))
        if path.is_fifo():
            found[rel] = "fifo"
        elif path.is_dir():
            found[rel] = "dir"
        else:
            found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Work:
    """Real inputs: a recorded trace, an ELF and its source, a disk image, a capture, a fifo, a spinning guest."""
    root = tmp_path_factory.mktemp("reliability")
    d = root / "work"
    d.mkdir()
    env = {**os.environ, "RRTOOL_CACHE": str(root / "cache"), "COLUMNS": "80"}
    env.pop("FORCE_COLOR", None)
    w = Work(d, env)
    (d / "hello.c").write_text(HELLO)
    (d / "spin.c").write_text(SPIN)
    for name in ("hello", "spin"):
        built = cli(w, "guest", "build", f"{name}.c", "-o", f"{name}.elf")
        assert built.returncode == 0, built.stderr
    recorded = cli(w, "record", "hello.elf", "-o", "t.arrow", "--no-stdin", "-q")
    assert recorded.returncode == 0, recorded.stderr
    (d / "v.img").write_bytes(os.urandom(64 * 1024))
    (d / "cap.pcap").write_bytes(b"not really a capture")
    os.mkfifo(d / "fifo")
    return w


@pytest.fixture
def unchanged(work: Work) -> Iterator[None]:
    """Fails the test if any file in the work directory changed, appeared or went away."""
    before = snapshot(work.dir)
    yield
    assert snapshot(work.dir) == before


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str | None:
    """None when the process failed as a usage error should: exit 2, one stderr line with the prefix."""
    lines = proc.stderr.splitlines()
    if proc.returncode != 2:
        return f"exit {proc.returncode}: {proc.stderr[-300:]!r}"
    if "Traceback" in proc.stderr:
        return f"traceback: {proc.stderr[-300:]!r}"
    if len(lines) != 1 or not lines[0].startswith("rrtool: error: "):
        return f"not one 'rrtool: error:' line: {proc.stderr[-300:]!r}"
    return None


def run_table(work: Work, cases: Sequence[Sequence[str]]) -> list[str]:
    """Run every case side by side; the failures, one string each naming the command line."""

    def one(args: Sequence[str]) -> str | None:
        try:
            problem = one_line_error(cli(work, *args, timeout=60))
        except subprocess.TimeoutExpired:
            problem = "hung (a fifo or device opened?)"
        return None if problem is None else f"rrtool {' '.join(args)!r}: {problem}"

    with ThreadPoolExecutor(max_workers=4) as pool:
        return [p for p in pool.map(one, cases) if p is not None]


REC = ("-o", "x.arrow", "--no-stdin", "-q")
#: The options `run` and `record` share, with values that must each be refused when parsed.
MACHINE_BAD = [
    ["--ram", "0"], ["--ram", "1T"], ["--ram", "-5M"], ["--ram", ""], ["--ram", "4097K"], ["--ram", "99999G"],
    ["--ns-per-insn", "0"], ["--ns-per-insn", "-1"], ["--ns-per-insn", "9223372036854775808"],
    ["--ns-per-insn", "x"], ["--max-insns", "0"], ["--max-insns", "-5"],
    ["--max-insns", "99999999999999999999999"], ["--timeout", "inf"], ["--timeout", "nan"],
    ["--timeout", "-1"], ["--timeout", "0"], ["--timeout", "1e300"], ["--timeout", "soon"],
    ["--chaos", "-1"], ["--chaos", "99999999999999999999999"],
    ["--net", "user,hostfwd=udp:127.0.0.1:99999-:5555"], ["--net", "user,hostfwd=udp:127.0.0.1:5555-:70000"],
    ["--net", "user,hostfwd=udp:127.0.0.1:0-:5"], ["--net", "user,hostfwd=tcp:127.0.0.1:5555-:7"],
    ["--net", "socket,listen=127.0.0.1:99999,peer=127.0.0.1:5"], ["--net", "socket,listen=127.0.0.1:5"],
    ["--net", "user,ip=999.1.1.1"], ["--net", "bogus"], ["--net", ""], ["--net", "pcap,file=fifo"],
    ["--net", "pcap,file=missing.pcap"], ["--net", "pcap"], ["--net", "user,mac=zz"],
    ["--disk", "fifo"], ["--disk", "/dev/zero"], ["--disk", ""], ["--disk", ",writeback"], ["--disk", "v.img,bogus"],
    ["--disk", "missing.img"], ["--disk", "."], ["--bogus"],
]  # fmt: skip

TABLES: dict[str, list[list[str]]] = {
    # `run` and `record` share their option declarations (rrtool/cli/options.py): `run` gets a sample of each.
    "run": [["run", "hello.elf", "--no-stdin", "-q", *bad] for bad in MACHINE_BAD[::4]]
    + [
        ["run"],
        ["run", "fifo"],
        ["run", ""],
        ["run", "missing.elf"],
        ["run", "a\nb"],
        ["run", "t.arrow"],
        ["run", "."],
    ],
    "record": [["record", "hello.elf", *REC, *bad] for bad in MACHINE_BAD]
    + [
        ["record", "hello.elf", *REC, "--checkpoint-every", "0"],
        ["record", "hello.elf", *REC, "--checkpoint-every", "999"],
        ["record", "hello.elf", *REC, "--checkpoint-every", "99999999999999999999999"],
        ["record", "hello.elf", *REC, "--mem-digest-every", "0"],
        ["record", "hello.elf", *REC, "--mem-digest-every", "-1"],
        ["record", "hello.elf", *REC, "--mem-digest-every", "99999999999999999999999"],
        ["record", "hello.elf"],
        ["record"],
        ["record", "fifo", *REC],
        ["record", "", *REC],
        ["record", "hello.elf", "-o", "missing-dir/x.arrow"],
        ["record", "hello.elf", "-o", "."],
        ["record", "hello.elf", "-o", ""],
        ["record", "hello.elf", "-o", "fifo"],
        ["record", "hello.elf", "-o", "/proc/x.arrow"],
    ],
    "replay": [
        ["replay"],
        ["replay", "fifo"],
        ["replay", "/dev/zero"],
        ["replay", "."],
        ["replay", ""],
        ["replay", "missing.arrow"],
        ["replay", "hello.elf"],
        ["replay", "t.arrow", "--image", "fifo"],
        ["replay", "t.arrow", "--image", "missing.elf"],
        ["replay", "t.arrow", "--bogus"],
    ],
    "info": [["info"], ["info", "fifo"], ["info", "/dev/zero"], ["info", "."], ["info", "hello.c"], ["info", "a\nb"]],
    "diff": [
        ["diff", "t.arrow"],
        ["diff", "t.arrow", "fifo"],
        ["diff", "fifo", "t.arrow"],
        ["diff", "t.arrow", "t.arrow", "--resync-window", "-1"],
        ["diff", "t.arrow", "t.arrow", "--resync-window", "99999999999999999999999"],
        ["diff", "t.arrow", "t.arrow", "--show", "0"],
        ["diff", "t.arrow", "t.arrow", "--show", "-3"],
        ["diff", "t.arrow", "t.arrow", "--show", "99999999999999999999999"],
    ],
    "sql": [
        ["sql"],
        ["sql", "fifo", "select 1"],
        ["sql", "/dev/zero", "select 1"],
        ["sql", "", "select 1"],
        ["sql", "t.arrow", "--max-rows", "0", "select 1"],
        ["sql", "t.arrow", "--max-rows", "99999999999999999999999"],
        ["sql", "t.arrow", "--checkpoints", "99999999999999999999999:", "select 1"],
        ["sql", "t.arrow", "--checkpoints", "-5:3", "select 1"],
        ["sql", "t.arrow", "--checkpoints", ":", "select 1"],
        ["sql", "t.arrow", "--checkpoints", "9:3", "select 1"],
        ["sql", "t.arrow", "--icounts", "x", "select 1"],
        ["sql", "t.arrow", "--parquet", "missing-dir/p.parquet", "select 1"],
        ["sql", "t.arrow", "--parquet", ".", "select 1"],
        ["sql", "t.arrow", "--parquet", "/proc/p.parquet", "select 1"],
        ["sql", "t.arrow", "--csv", "--json", "select 1"],
        ["sql", "t.arrow", ""],
        ["sql", "t.arrow", "select nope"],
        ["sql", "t.arrow", "--name", "", "select 1"],
    ],
    "export": [
        ["export", "bogus"],
        ["export", "pcap"],
        ["export", "pcap", "t.arrow"],
        ["export", "pcap", "fifo", "-o", "x.pcapng"],
        ["export", "pcap", "t.arrow", "-o", "."],
        ["export", "pcap", "t.arrow", "-o", "missing-dir/x.pcapng"],
        ["export", "pcap", "t.arrow", "-o", "/proc/x"],
        ["export", "pcap", "t.arrow", "-o", "x.pcapng", "--time-base", "bogus"],
        ["export", "perfetto", "/dev/zero", "-o", "x.json"],
        ["export", "perfetto", "t.arrow", "-o", ""],
        ["export", "perfetto", "t.arrow", "-o", "fifo"],
        ["export", "parquet", "t.arrow", "-o", "hello.c"],
        ["export", "parquet", "t.arrow", "-o", "missing-dir/p"],
        ["export", "parquet", "t.arrow", "-o", "pq", "--checkpoints-per-partition", "0"],
        ["export", "parquet", "t.arrow", "-o", "pq", "--checkpoints-per-partition", "99999999999999999999999"],
        ["export", "parquet", "fifo", "-o", "pq"],
    ],
    "guest": [
        ["guest", "bogus"],
        ["guest", "build"],
        ["guest", "build", "hello.c"],
        ["guest", "build", "fifo", "-o", "x.elf"],
        ["guest", "build", "missing.c", "-o", "x.elf"],
        ["guest", "build", "hello.c", "-o", "missing-dir/x.elf"],
        ["guest", "build", "hello.c", "-o", "."],
        ["guest", "build", "hello.c", "-o", "/proc/x.elf"],
        ["guest", "list", "extra"],
    ],
    "top": [["bogus"], ["--bogus"], ["demo", "--dir", "hello.c"], ["demo", "--bogus"]],
}


@pytest.mark.parametrize("command", sorted(TABLES))
def test_bad_values_are_one_line_usage_errors(work: Work, unchanged: None, command: str) -> None:
    """Each bad value, missing argument or unknown option: exit 2, one `rrtool: error:` line, no traceback."""
    failures = run_table(work, TABLES[command])
    assert not failures, "\n".join(failures)


OUTPUT_ONTO_INPUT = [
    (["record", "hello.elf", "-o", "hello.elf", "--no-stdin", "-q"], "is the guest image"),
    (["record", "spin.elf", "-o", "v.img", "--disk", "v.img", "--no-stdin", "-q"], "is the disk image"),
    (["record", "spin.elf", "-o", "v.img", "--disk", "./v.img,writeback", "--no-stdin", "-q"], "is the disk image"),
    (["record", "hello.elf", "-o", "cap.pcap", "--net", "pcap,file=cap.pcap", "--no-stdin", "-q"], "pcap capture"),
    (["export", "perfetto", "t.arrow", "-o", "t.arrow"], "is the trace file"),
    (["export", "pcap", "t.arrow", "-o", "./t.arrow"], "is the trace file"),
    (["export", "parquet", "t.arrow", "-o", "t.arrow"], "is the trace file"),
    (["sql", "t.arrow", "--parquet", "t.arrow", "select 1"], "is the trace file"),
    (["guest", "build", "hello.c", "-o", "hello.c"], "is the guest source"),
]


@pytest.mark.parametrize(("args", "words"), OUTPUT_ONTO_INPUT, ids=lambda v: " ".join(v) if isinstance(v, list) else v)
def test_an_output_that_is_an_input_is_refused(work: Work, unchanged: None, args: list[str], words: str) -> None:
    proc = cli(work, *args)
    assert one_line_error(proc) is None, proc.stderr
    assert words in proc.stderr


def test_a_hard_link_to_an_input_is_the_input(work: Work) -> None:
    link = work.dir / "link.arrow"
    os.link(work.dir / "t.arrow", link)
    try:
        before = snapshot(work.dir)
        proc = cli(work, "export", "perfetto", "t.arrow", "-o", "link.arrow")
        assert one_line_error(proc) is None and "is the trace file" in proc.stderr
        assert snapshot(work.dir) == before
    finally:
        link.unlink()


def corrupt_trace(path: Path) -> Path:
    """A trace whose footer is intact but a batch in the middle is garbage: an export fails half-way."""
    write_trace(path, scenario(200), rows=10)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(b ^ 0xFF for b in data[middle : middle + 64])
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize(
    "args",
    [
        ["export", "perfetto", "bad.arrow", "-o", "old.out", "-q"],
        ["export", "pcap", "bad.arrow", "-o", "old.out", "-q"],
        ["sql", "bad.arrow", "--parquet", "old.out", "-q", "select * from events"],
        ["export", "parquet", "bad.arrow", "-o", "old-dir", "-q"],
    ],
    ids=lambda a: " ".join(a[:2]),
)
def test_a_failed_export_leaves_the_old_output_and_no_temporary(tmp_path: Path, args: list[str]) -> None:
    """The writer dies half-way (a corrupt batch): the previous output is intact, no partial file is left."""
    corrupt_trace(tmp_path / "bad.arrow")
    (tmp_path / "old.out").write_text("the previous export")
    (tmp_path / "old-dir").mkdir()
    before = snapshot(tmp_path)
    work = Work(tmp_path, {**os.environ, "RRTOOL_CACHE": str(tmp_path / "cache")})
    proc = cli(work, *args)
    assert one_line_error(proc) is None, proc.stderr
    assert snapshot(tmp_path) == before


def test_exports_replace_an_old_output_and_leave_no_temporary(work: Work, tmp_path: Path) -> None:
    for args in (["export", "perfetto", "t.arrow", "-o"], ["export", "pcap", "t.arrow", "-o"]):
        out = tmp_path / "out"
        out.write_text("old")
        proc = cli(work, *args, str(out), "-q")
        assert proc.returncode == 0, proc.stderr
        assert out.read_bytes() != b"old" and out.stat().st_size > 0
        assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    proc = cli(work, "export", "parquet", "t.arrow", "-o", str(tmp_path / "pq"), "-q")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "pq"]
    assert list((tmp_path / "pq").glob("events/trace=t/checkpoint_start=*/part-0.parquet"))


def start_spinning(work: Work, output: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "rrtool.cli", "record", "spin.elf", "-o", output, "--no-stdin", "-q"],
        cwd=work.dir, env=work.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    part = work.dir / f"{output}.part"
    deadline = time.monotonic() + 60
    while not (part.exists() and part.stat().st_size > 4096):  # a batch or more is on disk
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline, "no .part file appeared"
        time.sleep(0.05)
    time.sleep(1.2)  # a batch is flushed at least every second
    return proc


def test_record_writes_a_part_file_that_a_sigkill_leaves_readable(work: Work) -> None:
    out = work.dir / "killed.arrow"
    out.write_bytes(b"the previous recording")
    proc = start_spinning(work, "killed.arrow")
    proc.kill()
    proc.wait(timeout=30)
    part = work.dir / "killed.arrow.part"
    try:
        assert out.read_bytes() == b"the previous recording"  # untouched until a recording ends
        info = cli(work, "info", part.name, "--json")
        assert info.returncode == 0, info.stderr
        assert '"complete": false' in info.stdout
        replay = cli(work, "replay", part.name, "-q")
        assert replay.returncode == 0, replay.stderr
        assert "cut short" in replay.stderr
    finally:
        part.unlink(missing_ok=True)
        out.unlink()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stopped_recording_is_renamed_onto_its_output(work: Work, sig: signal.Signals) -> None:
    proc = start_spinning(work, "stopped.arrow")
    proc.send_signal(sig)
    proc.wait(timeout=60)
    out = work.dir / "stopped.arrow"
    try:
        assert not (work.dir / "stopped.arrow.part").exists()
        info = cli(work, "info", out.name, "--json")
        assert info.returncode == 0 and '"complete": true' in info.stdout, info.stdout + info.stderr
    finally:
        out.unlink(missing_ok=True)


def test_record_ends_by_timeout_renamed_and_replayable(work: Work) -> None:
    proc = cli(work, "record", "spin.elf", "-o", "timed.arrow", "--no-stdin", "-q", "--timeout", "0.5")
    out = work.dir / "timed.arrow"
    try:
        assert proc.returncode == 4, proc.stderr
        assert out.exists() and not (work.dir / "timed.arrow.part").exists()
        assert cli(work, "replay", "timed.arrow", "-q").returncode == 0
    finally:
        out.unlink(missing_ok=True)


def all_commands() -> list[list[str]]:
    """Every command and subcommand, as the words that name it."""
    from typer.main import get_command

    from rrtool.cli import app

    found: list[list[str]] = [[]]

    def walk(group: object, prefix: list[str]) -> None:
        for name, sub in getattr(group, "commands", {}).items():
            found.append([*prefix, name])
            walk(sub, [*prefix, name])

    walk(get_command(app), [])
    return found


def option_names(words: list[str]) -> list[str]:
    from typer.main import get_command

    from rrtool.cli import app

    command = get_command(app)
    for word in words:
        command = command.commands[word]  # type: ignore[attr-defined]
    return [name for param in command.params for name in (*param.opts, *param.secondary_opts) if name.startswith("-")]


@pytest.mark.parametrize("columns", ["80", "40"])
def test_help_never_truncates_and_flags_take_no_value(work: Work, columns: str) -> None:
    """`COLUMNS=80 rrtool X --help`, for every X: every option name whole, no ellipsis, no `<bool>`."""
    commands = all_commands()
    assert ["export", "parquet"] in commands and ["guest", "build"] in commands

    def check(words: list[str]) -> str | None:
        proc = cli(work, *words, "--help", env={"COLUMNS": columns})
        text = proc.stdout
        words_shown = {word.strip(",") for word in text.split()}
        problems = [f"exit {proc.returncode}"] if proc.returncode != 0 else []
        problems += [f"missing {name}" for name in option_names(words) if name not in words_shown]
        problems += [mark for mark in ("…", "<bool>", "BOOLEAN", "╭") if mark in text]
        return f"rrtool {' '.join(words)} --help: {problems}\n{text}" if problems else None

    with ThreadPoolExecutor(max_workers=4) as pool:
        failures = [f for f in pool.map(check, commands) if f is not None]
    assert not failures, "\n".join(failures)
    net = cli(work, "record", "--help", env={"COLUMNS": columns}).stdout
    assert "user[,hostfwd=udp:127.0.0.1:H-:G][,ip=A.B.C.D]," in net.split()


def test_sql_into_a_pipe_is_csv_with_every_column_whole(work: Work) -> None:
    """Wide rows piped: CSV with a header and every row, no table squeezed to 80 columns."""
    proc = cli(work, "sql", "t.arrow", "select *, repeat('x', 300) as wide from events order by seq")
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.reader(io.StringIO(proc.stdout)))
    header, body = rows[0], rows[1:]
    assert header[:3] == ["trace", "seq", "checkpoint"] and header[-1] == "wide"
    count = cli(work, "sql", "t.arrow", "--json", "select count(*) as n from events")
    assert len(body) == int(count.stdout.split(":")[1].strip(" }]\n"))
    assert all(len(row) == len(header) and row[-1] == "x" * 300 for row in body)
    assert [int(row[1]) for row in body] == list(range(len(body)))
    assert "┃" not in proc.stdout and "│" not in proc.stdout


def test_guest_build_takes_the_names_guest_list_shows(work: Work, tmp_path: Path) -> None:
    names = [line.split()[0] for line in cli(work, "guest", "list").stdout.splitlines()]
    assert "timers" in names
    out = tmp_path / "t.elf"
    proc = cli(work, "guest", "build", "timers", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes()[:4] == b"\x7fELF" and os.access(out, os.X_OK)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.elf"]
    ran = cli(work, "run", str(out), "--no-stdin", "--max-insns", "100000")
    assert ran.returncode in (0, 4), ran.stderr
