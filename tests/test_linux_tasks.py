"""Processes and threads on the Linux platform: fork, exec, pipes, clone, futex, signals, the scheduler, chaos.

Each program is recorded over a root the test builds and replayed with the root deleted, so
everything a task did (and which task ran when) can only come from the trace. busybox's shell
pipelines are compared with the same commands run natively; the C programs under
`linux_programs/` check their own results and say so in their output.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pyarrow as pa
import pytest

from rrtool.linux.host import LinuxSetup
from rrtool.machine.config import DEFAULT_LINUX_RAM, MachineConfig
from rrtool.player.session import replay
from rrtool.recorder.session import RecordResult, record
from rrtool.schemas import events as ev
from rrtool.schemas.tracefile import open_tracefile
from tests.conftest import invoke
from tests.test_linux import build
from tests.test_reliability_trace import rewrite, set_value

BUSYBOX = Path("/bin/busybox")
PROGRAMS = Path(__file__).parent / "linux_programs"
pytestmark = pytest.mark.skipif(not BUSYBOX.is_file(), reason="Debian's busybox-static is not installed")

#: The shell's control flow and pipelines of the issue, each compared with busybox run natively.
PIPELINES = [
    "seq 1 20000 | sort -rn | head -3",
    "for i in 1 2 3; do echo $i; done | wc -l",
    "false || echo recovered",
    "(echo in a subshell; exit 3); echo status $?",
    "yes | head -1",
    "echo one two three | tr ' ' '\\n' | sort | uniq -c | sort -rn",
    "sleep 0.05 & sleep 0.02; echo mid; wait; echo done $?",  # wait: rt_sigsuspend until SIGCHLD
]


@pytest.fixture(scope="module")
def programs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("task_programs")
    built = {}
    for name in ("fork_children", "race", "prodcons", "signal_child", "threads_misc"):
        built[name] = build(out, f"{name}.c", name, "-pthread")
    return built


def rec_and_replay(
    program: Path, args: tuple[str, ...], tmp: Path, *, name: str = "t", **setup: object
) -> tuple[RecordResult, bytes, Path]:
    """Record over a fresh root, delete the root, replay: the replay must verify and print the same."""
    root = tmp / f"root-{name}"
    root.mkdir()
    trace = tmp / f"{name}.arrow"
    out = bytearray()
    result = record(
        program, trace, config=MachineConfig(ram_size=DEFAULT_LINUX_RAM), console_sink=out.extend,
        linux=LinuxSetup(args=args, root=root, stdin=False, stderr_sink=lambda _b: None, **setup),  # type: ignore[arg-type]
    )  # fmt: skip
    shutil.rmtree(root)
    again = bytearray()
    replayed = replay(trace, console_sink=again.extend)
    assert replayed.verified, replayed.divergence
    assert bytes(again) == bytes(out)
    return result, bytes(out), trace


def sched_rows(trace: Path) -> list[dict[str, object]]:
    table = open_tracefile(trace).read_all()
    rows = table.filter(pa.compute.equal(table.column("kind").cast(pa.string()), ev.KIND_SCHED))
    picked: list[dict[str, object]] = rows.select(["icount", "task", "value", "length", "text"]).to_pylist()
    return picked


@pytest.mark.parametrize("command", PIPELINES)
def test_busybox_pipelines_match_the_native_run(command: str, tmp_path: Path) -> None:
    native = subprocess.run([str(BUSYBOX), "sh", "-c", command], capture_output=True, check=False)
    result, out, trace = rec_and_replay(BUSYBOX, ("sh", "-c", command), tmp_path)
    assert out == native.stdout
    assert result.run.exit_code == native.returncode
    rows = sched_rows(trace)
    started = {r["task"] for r in rows if r["text"] == "start"}
    ended = {r["task"]: r["value"] for r in rows if r["text"] == "exit"}
    assert started <= set(ended), "every child the shell started ended, and the trace says how"
    decisions = [r for r in rows if r["text"] not in ("start", "exit")]
    assert bool(decisions) == bool(started)  # a builtin-only command never switches
    assert all(isinstance(r["length"], int) and r["length"] > 0 for r in decisions)
    if command == "yes | head -1":
        assert 13 in ended.values(), "yes was killed by SIGPIPE once head exited"


def test_a_pipeline_streams_through_a_small_pipe_in_many_switches(tmp_path: Path) -> None:
    """yes fills the pipe while its reader sleeps (virtual time: the others run meanwhile), then blocks on
    the full pipe; the readers block on empty ones, many times over."""
    command = "yes | (sleep 0.01; head -c 300000) | wc -c"
    _, out, trace = rec_and_replay(BUSYBOX, ("sh", "-c", command), tmp_path)
    assert out.strip() == b"300000"
    reasons = [str(r["text"]) for r in sched_rows(trace)]
    assert "sleep" in reasons
    assert any(r.startswith("blocked: write pipe") for r in reasons)
    assert sum(r.startswith("blocked: read pipe") for r in reasons) >= 5


def test_fifty_children_each_exit_with_their_own_status(programs: dict[str, Path], tmp_path: Path) -> None:
    result, out, trace = rec_and_replay(programs["fork_children"], (), tmp_path)
    assert out == b"reaped 50 children, status sum 6275\n" and result.run.exit_code == 0
    rows = sched_rows(trace)
    ends: dict[int, int] = {int(str(r["task"])): int(str(r["value"])) for r in rows
                            if r["text"] == "exit" and r["task"] != 1000}  # fmt: skip
    assert sorted(ends) == list(range(1001, 1051))
    assert [ends[1001 + i] for i in range(50)] == [((i * 5 + 3) & 0xFF) << 8 for i in range(50)]


def test_a_data_race_shows_under_chaos_and_every_recording_replays(programs: dict[str, Path], tmp_path: Path) -> None:
    totals = set()
    for seed in range(20):
        result, out, _ = rec_and_replay(programs["race"], (), tmp_path, name=f"race{seed}", chaos=seed)
        assert result.run.exit_code == 0
        totals.add(out)
    assert len(totals) >= 2, totals
    # Without chaos the scheduler is round robin with long slices: the same total every time, no race.
    _, plain, _ = rec_and_replay(programs["race"], (), tmp_path, name="plain")
    assert plain == b"total 400000\n"


def test_a_chaos_seed_gives_the_same_run_again(programs: dict[str, Path], tmp_path: Path) -> None:
    _, first, a = rec_and_replay(programs["race"], (), tmp_path, name="a", chaos=7)
    _, second, b = rec_and_replay(programs["race"], (), tmp_path, name="b", chaos=7)
    assert first == second and sched_rows(a) == sched_rows(b)


def test_producer_consumer_with_a_mutex_and_condition_variables(programs: dict[str, Path], tmp_path: Path) -> None:
    for seed in (None, 3):
        _, out, trace = rec_and_replay(programs["prodcons"], (), tmp_path, name=f"pc{seed}", chaos=seed)
        assert out == b"consumed 5000 items, sum 12502500\n"
        assert any(str(r["text"]).startswith("blocked: futex") for r in sched_rows(trace))


def test_threads_have_their_own_ids_and_join(programs: dict[str, Path], tmp_path: Path) -> None:
    _, out, trace = rec_and_replay(programs["threads_misc"], (), tmp_path)
    assert out == b"threads ok\n"
    assert {r["task"] for r in sched_rows(trace) if r["text"] == "start"} == {1001, 1002, 1003, 1004}


def test_one_process_signals_another(programs: dict[str, Path], tmp_path: Path) -> None:
    _, out, trace = rec_and_replay(programs["signal_child"], (), tmp_path)
    assert out == b"child got SIGUSR1\nchild killed by signal 15\n"
    assert {"task": 1001, "value": 15} in [{"task": r["task"], "value": r["value"]} for r in sched_rows(trace)
                                           if r["text"] == "exit"]  # fmt: skip


def test_a_program_forks_and_execs_a_program_of_the_root(tmp_path: Path) -> None:
    exe = build(tmp_path, (
        "#include <stdio.h>\n#include <unistd.h>\n#include <sys/wait.h>\n"
        "int main(void) { pid_t p = fork(); if (p == 0) { char *a[] = {\"echo\", \"from exec\", 0};"
        " execv(\"/bin/busybox\", a); _exit(99); } int st; waitpid(p, &st, 0);"
        " char *b[] = {\"x\", 0}; int bad = execv(\"/bin/script\", b);"
        " printf(\"child %d, script exec %d\\n\", WEXITSTATUS(st), bad); return 0; }\n"
    ), "spawn")
    root = tmp_path / "root-t"
    (root / "bin").mkdir(parents=True)
    shutil.copy(BUSYBOX, root / "bin" / "busybox")
    (root / "bin" / "script").write_text("#!/bin/sh\necho no\n")
    trace = tmp_path / "t.arrow"
    out = bytearray()
    record(exe, trace, config=MachineConfig(ram_size=DEFAULT_LINUX_RAM), console_sink=out.extend,
           linux=LinuxSetup(root=root, stdin=False))  # fmt: skip
    assert bytes(out) == b"from exec\nchild 0, script exec -1\n"
    shutil.rmtree(root)
    again = bytearray()
    assert replay(trace, console_sink=again.extend).verified
    assert bytes(again) == bytes(out)


def test_tasks_blocked_on_each_other_end_the_run_as_a_hang(tmp_path: Path) -> None:
    exe = build(tmp_path, (
        "#include <unistd.h>\nint main(void) { int a[2], b[2]; char c; pipe(a); pipe(b);"
        " if (fork() == 0) { read(a[0], &c, 1); write(b[1], &c, 1); return 0; }"
        " read(b[0], &c, 1); write(a[1], &c, 1); return 0; }\n"
    ), "deadlock")
    result, _, _ = rec_and_replay(exe, (), tmp_path)
    assert result.run.reason == "hang"
    assert "every task is blocked" in result.run.message and "1001 (read pipe:[" in result.run.message


def test_unsupported_clone_flags_are_an_error_and_an_event(tmp_path: Path) -> None:
    exe = build(tmp_path, (
        "#define _GNU_SOURCE\n#include <sched.h>\n#include <signal.h>\n#include <stdio.h>\n#include <errno.h>\n"
        "#include <unistd.h>\n#include <sys/syscall.h>\n"
        "int main(void) { long r = syscall(SYS_clone, CLONE_NEWNS | SIGCHLD, 0, 0, 0, 0);"
        " long t = syscall(SYS_clone, CLONE_THREAD | SIGCHLD, 0, 0, 0, 0);"
        " printf(\"%ld %d %ld\\n\", r, errno, t); return 0; }\n"
    ), "ns")
    result, out, trace = rec_and_replay(exe, (), tmp_path)
    assert out == b"-1 22 -1\n" and result.run.exit_code == 0
    table = open_tracefile(trace).read_all().to_pylist()
    clones = [r for r in table if r["syscall"] == "clone"]
    assert [r["ret"] for r in clones] == [-22, -22]
    assert "clone with unsupported flags 0x20000" in (result.summary or "")


def test_an_edited_scheduling_decision_is_refused_in_one_line(programs: dict[str, Path], tmp_path: Path) -> None:
    _, _, trace = rec_and_replay(programs["race"], (), tmp_path, chaos=1)
    table = open_tracefile(trace).read_all()
    kinds = table.column("kind").cast(pa.string()).to_pylist()
    texts = table.column("text").to_pylist()
    pairs = enumerate(zip(kinds, texts, strict=True))
    row = next(i for i, (kind, text) in pairs if kind == "sched" and text not in ("start", "exit"))
    for column, value in (("value", 4242), ("length", 0)):

        def edit(table: pa.Table, column: str = column, value: int = value) -> pa.Table:
            return set_value(table, column, row, value)

        bad = rewrite(trace, tmp_path / f"bad-{column}.arrow", edit)
        done = invoke("replay", bad)
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        assert "DIVERGENCE" in done.stderr and "which cannot run now" in done.stderr, done.stderr


@pytest.mark.parametrize("which", ["pipeline", "threads"])
def test_seeks_across_tasks_match_a_straight_pass(which: str, programs: dict[str, Path], tmp_path: Path) -> None:
    """Snapshots hold every address space and every thread: seeks in random order land where one pass did."""
    import random

    from rrtool.player.timeline import END, Timeline

    if which == "pipeline":
        _, _, trace = rec_and_replay(BUSYBOX, ("sh", "-c", "seq 1 3000 | sort -rn | head -2; echo x | wc -c"),
                                     tmp_path)  # fmt: skip
    else:
        _, _, trace = rec_and_replay(programs["race"], ("20000",), tmp_path, chaos=5)
    rng = random.Random(3)

    def state(tl: Timeline) -> tuple[int, int, int, int]:
        return tl.register_digest(), tl.memory_digest(), tl.device_digest(), tl.pc

    with Timeline(trace, every=1 << 62) as straight:
        points = sorted({rng.randrange(0, straight.last_icount + 1) for _ in range(40)})
        reference = {p: (straight.seek(p), state(straight))[1] for p in points}
    rng.shuffle(points)
    with Timeline(trace, every=300_000 if which == "pipeline" else 20_000) as tl:
        for p in points:
            tl.seek(p)
            assert state(tl) == reference[p], p
        assert tl.snapshot_count > 3
        assert tl.run_to_end().reason == END and tl.divergence is None


def test_no_address_reaches_another_process_s_memory(tmp_path: Path) -> None:
    """Each address space lives at its own guest-physical offset: a pointer that would name the child's copy
    of a variable through the identity mapping above RAM faults instead of reading it."""
    exe = build(tmp_path, (
        "#include <stdio.h>\n#include <stdint.h>\n#include <unistd.h>\n"
        "volatile long secret;\n"
        "int main(void) { int p[2], w[2]; char c; pipe(p); pipe(w); if (fork() == 0) { secret = 0x5ec7e7;"
        " write(p[1], \"x\", 1); read(w[0], &c, 1); return 0; } read(p[0], &c, 1); secret = 1;"
        " volatile long *q = (volatile long *)((1UL << 48) + (uintptr_t)&secret);"
        " printf(\"read %lx\\n\", *q); return 0; }\n"
    ), "peek")
    result, out, _ = rec_and_replay(exe, (), tmp_path)
    assert out == b""
    assert result.run.reason == "fault" and result.run.signal == 11, result.run


def test_poll_waits_for_another_process_to_write(tmp_path: Path) -> None:
    exe = build(tmp_path, (
        "#include <poll.h>\n#include <stdio.h>\n#include <unistd.h>\n#include <sys/wait.h>\n"
        "int main(void) { int p[2]; pipe(p); if (fork() == 0) { for (volatile int i = 0; i < 100000; i++);"
        " write(p[1], \"ok\", 2); return 0; } close(p[1]); struct pollfd f = {p[0], POLLIN, 0};"
        " int n = poll(&f, 1, -1); char b[4] = {0}; read(p[0], b, 2); wait(0);"
        " printf(\"poll %d revents %d read %s\\n\", n, f.revents, b); return 0; }\n"
    ), "pollpipe")
    _, out, trace = rec_and_replay(exe, (), tmp_path, slice_insns=50_000)  # the child is preempted mid-loop
    assert out in (b"poll 1 revents 1 read ok\n", b"poll 1 revents 17 read ok\n")  # 17: the writer also exited
    assert any(str(r["text"]).startswith("blocked: poll on 1 pipe") for r in sched_rows(trace))


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("vfork_signal", b"parent saw shared=2 status=7\n"),
        ("restart_in_thread", b"read=1 errno=- handled_in_main=1\n"),
        ("thread_altstack", b"thread altstack flags=2 sp=(nil)\n"),
        ("thread_exec", b"after exec: pid=1000 tid=1000\n"),
    ],
)
def test_signal_and_thread_edges_behave_as_on_linux(name: str, expected: bytes, tmp_path: Path) -> None:
    exe = build(tmp_path, f"{name}.c", name, "-pthread")
    native = subprocess.run([str(exe)], capture_output=True, check=False, timeout=60).stdout
    if name != "thread_exec":  # natively the ids are the host's
        assert native == expected
    _, out, _ = rec_and_replay(exe, (), tmp_path)
    assert out == expected


def test_a_child_killed_off_the_cpu_gives_its_ram_back(tmp_path: Path) -> None:
    """Sixty children, each killed by its parent while it waits: their address spaces' slots are reused."""
    from rrtool.machine.port import EventPort
    from rrtool.recorder.live import start

    exe = build(tmp_path, (
        "#include <signal.h>\n#include <stdio.h>\n#include <string.h>\n#include <unistd.h>\n#include <sys/wait.h>\n"
        "int main(void) { static char buf[1 << 20]; for (int i = 0; i < 60; i++) { int f[2]; pipe(f);"
        " pid_t p = fork(); if (p == 0) { memset(buf, i + 1, sizeof buf); write(f[1], \"r\", 1); pause(); }"
        " char c; read(f[0], &c, 1); close(f[0]); close(f[1]); kill(p, SIGKILL); waitpid(p, 0, 0); }"
        " puts(\"done\"); return 0; }\n"
    ), "killmany")
    out = bytearray()
    started = start(exe, MachineConfig(ram_size=DEFAULT_LINUX_RAM), EventPort(), console_sink=out.extend,
                    linux=LinuxSetup(root=tmp_path, stdin=False))  # fmt: skip
    result = started.live.machine.run()
    kernel = started.live.kernel  # type: ignore[attr-defined]  # a Linux run's Live is a LinuxLive
    started.close()
    assert result.ok and bytes(out) == b"done\n"
    assert len(kernel._rams) <= 3, "a killed child's slot was never freed"
