"""Analysis of Linux traces: the `syscalls` view, `rrtool info` and `rrtool diff` on real busybox recordings.

Debian's static busybox runs in a throw-away root holding one small file:
`cat` of that file and of a missing one (an open that succeeds, one that
fails with ENOENT, output on stdout and stderr), `wc -c` of it (a `read`
of the whole file; busybox's cat uses sendfile), `ls /`, `md5sum` of the
file four times (reads and writes the busiest calls) and two `cat`
recordings over roots whose files differ in content but not in size (so the
diff pairs every event at the same icount and only the bytes differ).

Then the tasks of a shell pipeline (busybox's sh forking its applets, `wc`
exec'ing /proc/self/exe), of a shell that execs other programs before and
after it forks, and of two threads: the `sched` and `tasks` views and the
Perfetto export's task tracks.
"""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from rrtool.analysis import DiffOptions, diff_traces, frames, open_trace
from rrtool.analysis.diff.model import DEFAULT_IGNORED_META
from rrtool.analysis.diff.report import first_divergence_lines
from rrtool.analysis.export.perfetto import export_perfetto
from rrtool.analysis.info import trace_info
from rrtool.analysis.views import VIEW_NAMES
from rrtool.analysis.viewspec import VIEWS
from rrtool.linux.host import LinuxSetup
from rrtool.recorder.session import record
from tests.conftest import invoke

BUSYBOX = Path("/bin/busybox")
PROGRAMS = Path(__file__).parent / "linux_programs"
#: Two pipelines, the first of which ends with `head` before `sort` has written all (SIGPIPE), and a subshell
#: that exits 3. busybox's sh forks each part; `wc` is the one applet that execs (/proc/self/exe).
PIPELINE = "seq 1 2000 | sort -rn | head -3; for i in 1 2 3; do echo $i; done | wc -l; (echo sub; exit 3); echo $?"
#: The shell execs /bin/sh (a copy of busybox), which forks a subshell that forks a pipeline, then execs
#: /bin/busybox: the children run /bin/sh, whatever the shell ran before or after.
EXECS = 'exec /bin/sh -c "(true | cat); exec /bin/busybox echo hi"'

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
    programs = tmp / "root_programs"
    (programs / "bin").mkdir(parents=True)
    for name in ("sh", "busybox"):
        shutil.copy(BUSYBOX, programs / "bin" / name)
    return {
        "pipeline": _record(tmp / "pipeline.arrow", root_a, "sh", "-c", PIPELINE),
        "execs": _record(tmp / "execs.arrow", programs, "sh", "-c", EXECS),
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
    for name in ("cat", "ls", "pipeline", "execs"):
        with open_trace(traces[name]) as t:
            for view in VIEW_NAMES:
                frame = (t.events if view == "events" else frames.view(view, t.events)).collect()
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


# -- tasks: the sched and tasks views, the Perfetto task tracks ------------------------------------------------

#: Why the scheduler decides (`sched.reason`); a blocked task says on what after the colon.
REASONS = {"exited", "sleep", "slice ended", "a task became ready", "the task yielded", "a sleeping task woke"}


def _view(trace: Path, name: str) -> list[dict[str, Any]]:
    """The view's rows from DuckDB, checked equal to Polars' (whatever the every-view test covers)."""
    with open_trace(trace) as t:
        rows = t.sql(f"select * exclude (trace) from {name}").pl()
        assert _rows(frames.view(name, t.events).collect()) == _rows(rows), name
    dicts: list[dict[str, Any]] = rows.to_dicts()
    return dicts


def _tasks(trace: Path) -> dict[int, dict[str, Any]]:
    return {row["task"]: row for row in _view(trace, "tasks")}


def test_sched_view_is_a_chain_of_decisions(traces: dict[str, Path]) -> None:
    decisions = _view(traces["pipeline"], "sched")
    tasks = _tasks(traces["pipeline"])
    assert len(decisions) >= 10 and len(tasks) >= 6
    assert decisions[0]["from_task"] == 1000  # the first task runs until the first decision
    for before, after in itertools.pairwise(decisions):
        assert after["from_task"] == before["to_task"], (before, after)  # the one picked ran until the next
        assert (after["seq"], after["icount"]) > (before["seq"], before["icount"])
    for d in decisions:
        assert d["to_task"] in tasks and d["from_task"] in tasks  # a started task, or the first one
        assert d["slice"] > 0
        assert d["reason"] in REASONS or d["reason"].startswith("blocked: "), d
        if d["reason"] == "exited":  # at the instruction its exit row is at
            assert tasks[d["from_task"]]["end_icount"] == d["icount"]
    reasons = {d["reason"].split(":")[0] for d in decisions}
    assert {"blocked", "exited"} <= reasons
    assert any(d["reason"].startswith("blocked: read pipe:[") for d in decisions)  # a pipe's reader waited
    assert any(d["reason"] == "blocked: wait4" for d in decisions)  # the shell waited for its children


def test_tasks_view_of_a_pipeline(traces: dict[str, Path]) -> None:
    tasks = _tasks(traces["pipeline"])
    shell = tasks[1000]
    assert (shell["parent"], shell["start_icount"], shell["seq"], shell["exit_code"]) == (None, 0, 0, 0)
    assert list(tasks) == sorted(tasks) and list(tasks)[:2] == [1000, 1001]
    with open_trace(traces["pipeline"]) as t:
        created = t.sql("select ret, task from syscalls where name in ('clone', 'fork', 'vfork') and ok").fetchall()
        exits = dict(t.sql("select task, icount from syscalls where name in ('exit', 'exit_group')").fetchall())
        codes = dict(t.sql("select task, arg0 from syscalls where name in ('exit', 'exit_group')").fetchall())
        self_execs = t.sql("select task from syscalls where name = 'execve' and ok").fetchall()
        exe = t.machine["exe"]
    # The shell forked every task (one per pipeline part, one for the subshell); each started, then ended.
    assert sorted(created) == sorted((task, row["parent"]) for task, row in tasks.items() if task != 1000)
    assert {row["parent"] for task, row in tasks.items() if task != 1000} == {1000}
    assert len(tasks) == 7
    for task, row in tasks.items():
        assert row["ended"] and row["exit_status"] is not None, task
        assert row["start_icount"] < row["end_icount"] and row["seq"] < row["end_seq"]
        assert row["thread"] is False
        if row["signal"] is None:  # it called exit: at that instruction, with that code
            assert (row["end_icount"], row["exit_code"]) == (exits[task], codes[task]), task
            assert row["exit_status"] == row["exit_code"] << 8
        else:
            assert task not in exits and row["exit_code"] is None and row["exit_status"] == row["signal"]
    assert [task for task, row in tasks.items() if row["exit_code"] == 3] == [max(tasks)]  # the subshell, last
    assert {row["signal"] for row in tasks.values()} == {None, 13}  # sort, writing after head had gone
    # Only `wc` execs, and only /proc/self/exe: the program again. So every task runs the trace's own program,
    # which the view leaves null (it is the machine record's `exe`, which views do not see).
    assert len(self_execs) == 1 and exe == "/busybox"
    with open_trace(traces["pipeline"]) as t:
        assert t.sql("select path from syscalls where name = 'execve'").fetchall() == [("/proc/self/exe",)]
    assert {row["program"] for row in tasks.values()} == {None}


def test_tasks_run_what_they_exec_or_their_creator_ran(traces: dict[str, Path]) -> None:
    tasks = _tasks(traces["execs"])
    parents = {task: row["parent"] for task, row in tasks.items()}
    assert parents == {1000: None, 1001: 1000, 1002: 1001, 1003: 1001}  # the subshell forked the pipeline
    programs = {task: row["program"] for task, row in tasks.items()}
    # The shell exec'd /bin/sh, forked, then exec'd /bin/busybox; its children keep what it ran when they
    # started, and so do theirs (`cat` exec'd /proc/self/exe, which changes nothing).
    assert programs == {1000: "/bin/busybox", 1001: "/bin/sh", 1002: "/bin/sh", 1003: "/bin/sh"}
    assert all(row["exit_code"] == 0 for row in tasks.values())


def _threaded(name: str, tmp: Path, *args: str, chaos: int | None = None) -> Path:
    """A program of `linux_programs/` built and recorded (chaos: the scheduler's seed)."""
    exe = tmp / name
    source = PROGRAMS / f"{name}.c"
    subprocess.run(["gcc", "-static", "-O1", "-pthread", "-o", str(exe), str(source)], check=True, capture_output=True)
    trace = tmp / f"{name}.arrow"
    result = record(exe, trace, linux=LinuxSetup(args=args, root=tmp, stdin=False, chaos=chaos),
                    console_sink=lambda _: None)  # fmt: skip
    assert result.run.reason == "exit", result.run.message
    return trace


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc to build the threaded program")
def test_tasks_view_tells_threads_from_processes(tmp_path: Path) -> None:
    trace = _threaded("race", tmp_path, "20000", chaos=1)
    tasks = _tasks(trace)
    assert {task: (row["parent"], row["thread"]) for task, row in tasks.items()} == {
        1000: (None, False), 1001: (1000, True), 1002: (1000, True)
    }  # fmt: skip
    assert all(row["exit_code"] == 0 for row in tasks.values())
    decisions = _view(trace, "sched")
    assert {d["to_task"] for d in decisions} == set(tasks)  # chaos: each thread had the CPU
    assert any(d["reason"] == "slice ended" for d in decisions)


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc to build the threaded program")
def test_a_thread_that_execs_goes_on_as_the_leader(tmp_path: Path) -> None:
    """The leader's id ends twice (the old leader killed, then the process); the view keeps the last, the
    process's status its parent would see. The rows go on as the leader with no decision between: the export
    moves the CPU to it there."""
    trace = _threaded("thread_exec", tmp_path)
    tasks = _tasks(trace)
    assert (tasks[1000]["exit_code"], tasks[1000]["signal"], tasks[1001]["thread"]) == (3, None, True)
    with open_trace(trace) as t:
        calls = t.sql("select seq, task, name, vclock_ns from syscalls").fetchall()
        leader_exits = t.sql("select value from events where kind = 'sched' and text = 'exit' and task = 1000")
        assert leader_exits.fetchall() == [(9,), (3 << 8,)]  # SIGKILL, then exit(3)
    _calls_run_on_their_tasks(_perfetto(trace, tmp_path), calls)


def _perfetto(trace: Path, tmp: Path) -> list[dict[str, Any]]:
    out = tmp / (trace.stem + ".json")
    export_perfetto(trace, out)
    events: list[dict[str, Any]] = json.loads(out.read_text())["traceEvents"]
    return events


def _ns(us: float) -> int:
    return round(us * 1000)


def _calls_run_on_their_tasks(events: list[dict[str, Any]], calls: list[tuple[Any, ...]]) -> None:
    """Every call (seq, task, name, vclock_ns) is an instant on its task's track, inside one of that task's
    running slices."""
    running = [e for e in events if e.get("name") == "running"]
    instants = {e["args"]["seq"]: e for e in events if e.get("cat") == "syscall"}
    assert sorted(instants) == [seq for seq, *_ in calls]
    for seq, task, name, ns in calls:
        e = instants[seq]
        assert (e["tid"], e["name"], _ns(e["ts"])) == (task, name, ns)
        assert any(s["tid"] == task and _ns(s["ts"]) <= ns <= _ns(s["ts"] + s["dur"]) for s in running), seq


def test_perfetto_has_a_track_per_task_and_one_task_runs_at_a_time(traces: dict[str, Path], tmp_path: Path) -> None:
    events = _perfetto(traces["pipeline"], tmp_path)
    tasks = _tasks(traces["pipeline"])
    names = {e["tid"]: e["args"]["name"] for e in events if e.get("name") == "thread_name"}
    assert {tid: name for tid, name in names.items() if tid in tasks} == {t: f"task {t} /busybox" for t in tasks}
    assert set(names) - set(tasks) == {1, 14}  # the machine's checkpoints and stdout; no `linux` track
    running = sorted((e for e in events if e.get("name") == "running"), key=lambda e: e["ts"])
    assert {e["tid"] for e in running} == set(tasks)
    with open_trace(traces["pipeline"]) as t:
        end = t.sql("select max(vclock_ns) from events").fetchall()[0][0]
        calls = t.sql("select seq, task, name, vclock_ns from syscalls").fetchall()
    # One slice per decision, plus the first task's first; end to end, from 0 to the end (no warps here).
    assert len(running) == len(_view(traces["pipeline"], "sched")) + 1
    assert _ns(running[0]["ts"]) == 0 and _ns(running[-1]["ts"] + running[-1]["dur"]) == end
    for before, after in itertools.pairwise(running):
        assert _ns(before["ts"] + before["dur"]) == _ns(after["ts"]), (before, after)
    _calls_run_on_their_tasks(events, calls)
    starts = {e["tid"]: e["args"]["parent"] for e in events if e.get("name") == "start"}
    assert starts == {t: row["parent"] for t, row in tasks.items() if t != 1000}
    exits = {e["tid"]: e["args"].get("exit_code") for e in events if e.get("name") == "exit"}
    assert exits == {t: row["exit_code"] for t, row in tasks.items()}


def test_perfetto_names_tracks_by_what_each_task_runs(traces: dict[str, Path], tmp_path: Path) -> None:
    events = _perfetto(traces["execs"], tmp_path)
    names = {e["tid"]: e["args"]["name"] for e in events if e.get("name") == "thread_name" and e["tid"] >= 1000}
    programs = {task: row["program"] for task, row in _tasks(traces["execs"]).items()}
    assert names == {task: f"task {task} {program}" for task, program in programs.items()}


def test_every_view_is_documented() -> None:
    for name, view in VIEWS.items():
        assert view.name == name and len(view.doc) > 40, name
        assert len({column for column, _ in view.columns}) == len(view.columns), name
