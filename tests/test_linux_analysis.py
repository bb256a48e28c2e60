"""Analysis of Linux traces: the `syscalls` view, `rrtool info` and `rrtool diff` on real busybox recordings.

Debian's static busybox runs in a throw-away root holding one small file:
`cat` of that file and of a missing one (an open that succeeds, one that
fails with ENOENT, output on stdout and stderr), `wc -c` of it (a `read`
of the whole file; busybox's cat uses sendfile), `ls /`, `md5sum` of the
file four times (reads and writes the busiest calls) and two `cat`
recordings over roots whose files differ in content but not in size (so the
diff pairs every event at the same icount and only the bytes differ).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from rrtool.analysis import DiffOptions, diff_traces, open_trace
from rrtool.analysis.diff.model import DEFAULT_IGNORED_META
from rrtool.analysis.diff.report import first_divergence_lines
from rrtool.analysis.info import trace_info
from rrtool.analysis.views import VIEW_NAMES
from rrtool.linux.host import LinuxSetup
from rrtool.recorder.session import record
from tests.conftest import invoke

BUSYBOX = Path("/bin/busybox")
CONTENT_A = b"hello from the first root\n" * 40
CONTENT_B = b"HELLO FROM THE OTHER ROOT\n" * 40  # same length: same syscalls, same icounts, other bytes

pytestmark = pytest.mark.skipif(not BUSYBOX.exists(), reason="needs Debian's static busybox (busybox-static)")


def _record(out: Path, root: Path, *args: str) -> Path:
    result = record(BUSYBOX, out, linux=LinuxSetup(args=args, root=root, stdin=False), console_sink=lambda _: None)
    assert result.run.reason == "exit", result.run.message
    return out


@pytest.fixture(scope="module")
def traces(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("linux")
    root_a, root_b = tmp / "root_a", tmp / "root_b"
    for root, content in ((root_a, CONTENT_A), (root_b, CONTENT_B)):
        root.mkdir()
        (root / "f.txt").write_bytes(content)
    return {
        "cat": _record(tmp / "cat.arrow", root_a, "cat", "/f.txt", "/missing"),
        "wc": _record(tmp / "wc.arrow", root_a, "wc", "-c", "/f.txt"),
        "ls": _record(tmp / "ls.arrow", root_a, "ls", "/"),
        "md5": _record(tmp / "md5.arrow", root_a, "md5sum", "/f.txt", "/f.txt", "/f.txt", "/f.txt"),
        "cat_a": _record(tmp / "cat_a.arrow", root_a, "cat", "/f.txt"),
        "cat_b": _record(tmp / "cat_b.arrow", root_b, "cat", "/f.txt"),
    }


def _rows(frame: pl.DataFrame) -> list[tuple[object, ...]]:
    return frame.with_columns(pl.col(pl.Enum, pl.Categorical).cast(pl.String)).rows()


# -- the syscalls view ----------------------------------------------------------------------------------------


def test_syscalls_view_reads_like_strace(traces: dict[str, Path]) -> None:
    with open_trace(traces["cat"]) as t:
        opens = t.sql(
            "select path, ret, fd, ok, errno, errno_name from syscalls where name = 'openat' order by seq"
        ).fetchall()
        assert [o[0] for o in opens] == ["/f.txt", "/missing"]
        _, ret, fd, ok, err, err_name = opens[0]
        assert ok is True and ret >= 0 and fd == ret and err is None and err_name is None
        _, ret, fd, ok, err, err_name = opens[1]
        assert (ret, ok, err, err_name) == (-2, False, 2, "ENOENT")
        # The file's bytes came in through one call (sendfile) and went out as stdout; the error went to stderr.
        got_in = t.sql("select bytes_in, data from syscalls where name = 'sendfile' and ret > 0").fetchall()
        assert got_in == [(len(CONTENT_A), CONTENT_A)]
        console = t.sql("select device, data from console order by seq").fetchall()
        assert console[0] == ("stdout", CONTENT_A)
        assert console[-1][0] == "stderr" and b"/missing" in console[-1][1]
        exits = t.sql("select name, arg0 from syscalls where name = 'exit_group'").fetchall()
        assert exits == [("exit_group", 1)]  # cat of a missing file exits 1


def test_read_brings_in_the_whole_file(traces: dict[str, Path]) -> None:
    with open_trace(traces["wc"]) as t:
        reads = t.sql("select fd, ret, bytes_in, data from syscalls where name = 'read' order by seq").fetchall()
        fd = t.sql("select ret from syscalls where name = 'openat' and path = '/f.txt'").fetchall()[0][0]
        assert reads[0] == (fd, len(CONTENT_A), len(CONTENT_A), CONTENT_A)
        assert reads[-1][1:3] == (0, 0)  # end of file
        writes = t.sql("select fd, bytes_out, ret from syscalls where name = 'write'").fetchall()
        assert writes == [(1, len(f"{len(CONTENT_A)} /f.txt\n"), len(f"{len(CONTENT_A)} /f.txt\n"))]


def test_args_list_and_arg_columns_agree(traces: dict[str, Path]) -> None:
    with open_trace(traces["ls"]) as t:
        frame = t.syscalls.collect()
    assert frame.height > 10
    for row in frame.iter_rows(named=True):
        assert len(row["args"]) == 6
        assert [row[f"arg{i}"] for i in range(6)] == row["args"]
        assert row["ok"] == (row["errno"] is None)
        assert row["errno"] is None or row["errno"] == -row["ret"]
    names = dict(zip(frame["sysno"].to_list(), frame["name"].to_list(), strict=True))
    assert names[217] == "getdents64" and names[1] == "write"  # x86-64 numbers


def test_every_view_has_the_same_rows_in_polars_and_duckdb(traces: dict[str, Path]) -> None:
    """As tests/test_view_engines does for board traces: both renderings of each view, exactly."""
    for name in ("cat", "ls"):
        with open_trace(traces[name]) as t:
            for view in VIEW_NAMES:
                frame = getattr(t, view).collect()
                sql = t.sql(f"select * exclude (trace) from {view}").pl()
                if view == "events":
                    frame, sql = frame.sort("seq"), sql.sort("seq")
                assert frame.columns == sql.columns, (name, view)
                assert _rows(frame) == _rows(sql), (name, view)


def test_sql_cli_queries_syscalls(traces: dict[str, Path]) -> None:
    query = "select name, path, errno_name from syscalls where name = 'openat' order by seq"
    proc = invoke("sql", traces["cat"], "--csv", query)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["name,path,errno_name", "openat,/f.txt,", "openat,/missing,ENOENT"]


# -- info ------------------------------------------------------------------------------------------------------


def test_info_names_the_platform_argv_and_busiest_syscalls(traces: dict[str, Path]) -> None:
    info = trace_info(traces["wc"])
    assert info["platform"] == "linux"
    linux = info["linux"]
    assert linux["argv"] == [str(BUSYBOX), "wc", "-c", "/f.txt"]
    top = {c["name"]: c for c in linux["top_syscalls"]}
    assert top["read"]["calls"] == 2 and len(top) == 10  # wc's one write ties with a dozen other calls, cut
    calls = [c["calls"] for c in linux["top_syscalls"]]
    assert calls == sorted(calls, reverse=True)
    every = trace_info(traces["wc"], top=1000)["linux"]
    assert every["top_syscalls"][: len(top)] == linux["top_syscalls"]
    assert len(every["top_syscalls"]) == every["distinct_syscalls"]
    assert sum(c["calls"] for c in every["top_syscalls"]) == linux["syscalls"] == info["counts"]["syscall"]
    assert {c["name"]: c["calls"] for c in every["top_syscalls"]}["write"] == 1
    busy = {c["name"]: c["calls"] for c in trace_info(traces["md5"])["linux"]["top_syscalls"]}
    assert (busy["read"], busy["write"], busy["openat"], busy["close"]) == (8, 4, 4, 4)  # per file: 2, 1, 1, 1
    assert next(iter(busy)) == "read"
    failed = trace_info(traces["cat"])["linux"]
    assert {c["name"]: c["failed"] for c in failed["top_syscalls"]}.get("openat") == 1
    assert failed["syscalls_failed"] >= 1


def test_info_cli_shows_linux_rows(traces: dict[str, Path]) -> None:
    proc = invoke("info", traces["wc"])
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert any("platform" in line and "linux" in line for line in lines)
    assert any("argv" in line and "/bin/busybox wc -c /f.txt" in line for line in lines)
    assert any("syscall: read" in line for line in lines)
    as_json = invoke("info", traces["wc"], "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout)["linux"]["argv"][1] == "wc"


# -- diff ------------------------------------------------------------------------------------------------------


def test_diff_of_a_trace_with_itself_is_equivalent(traces: dict[str, Path]) -> None:
    result = diff_traces(traces["ls"], traces["ls"])
    assert result.equivalent and result.first is None
    assert result.kinds["syscall"].matched == result.kinds["syscall"].events_a > 0


def test_diff_finds_the_file_contents_in_a_syscall(traces: dict[str, Path]) -> None:
    result = diff_traces(traces["cat_a"], traces["cat_b"])
    assert not result.equivalent
    first = result.first
    assert first is not None and first.kind == "syscall" and first.status == "changed"
    assert first.checkpoint == 0 and "data" in first.fields
    # The first is getrandom (new random bytes every recording); the file's bytes follow, in sendfile.
    sendfile = [d for d in result.differences if d.kind == "syscall" and d.a and d.a["syscall"] == "sendfile"]
    assert sendfile and set(sendfile[0].fields) == {"data", "value"}  # the bytes and their digest
    assert sendfile[0].a is not None and sendfile[0].b is not None
    assert (sendfile[0].a["data"], sendfile[0].b["data"]) == (CONTENT_A, CONTENT_B)
    assert isinstance(sendfile[0].a["args"], list)  # the list column survives pairing and decoding
    assert result.kinds["syscall"].only_a == result.kinds["syscall"].only_b == 0
    assert result.kinds["console_out"].changed == 1
    assert f"{first.kind} {first.a and first.a['syscall']} on linux" in first_divergence_lines(first)[0]
    json.dumps(result.to_dict())  # the JSON report takes the lists and the bytes


def test_diff_reports_machine_metadata_by_key(traces: dict[str, Path]) -> None:
    result = diff_traces(traces["cat_a"], traces["cat_b"])
    keys = [k for k, _, _ in result.metadata]
    assert "rrtool.machine.at_random" in keys and "rrtool.machine.argv" not in keys
    quiet = DiffOptions(ignore_meta=frozenset([*DEFAULT_IGNORED_META, "machine.at_random", "root"]))
    assert diff_traces(traces["cat_a"], traces["cat_b"], quiet).metadata == []


def test_diff_cli_names_the_syscall(traces: dict[str, Path]) -> None:
    proc = invoke("diff", traces["cat_a"], traces["cat_b"])
    assert proc.returncode == 1, proc.stderr
    assert "first divergence at checkpoint 0" in proc.stdout and "syscall getrandom on linux" in proc.stdout
    assert "syscall sendfile on linux" in proc.stdout


def test_analysis_of_a_linux_trace_loads_no_emulator(traces: dict[str, Path]) -> None:
    """Analysing a trace needs neither Unicorn nor the Linux platform (see rrtool/analysis/__init__.py)."""
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from rrtool.analysis import open_trace, diff_traces\n"
        "from rrtool.analysis.info import trace_info\n"
        "t = open_trace(sys.argv[1]); t.sql('select * from syscalls').fetchall(); t.syscalls.collect()\n"
        "trace_info(Path(sys.argv[1])); diff_traces(sys.argv[1], sys.argv[1])\n"
        "bad = sorted(m for m in sys.modules if m.startswith(('rrtool.machine', 'rrtool.linux', 'unicorn')))\n"
        "print(bad)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(traces["cat"])], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
