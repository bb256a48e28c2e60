"""The Linux platform with programs nobody here wrote: Debian's static busybox, SQLite and Lua from Debian.

Each program is recorded over a root directory the test builds, then replayed with that root deleted:
replay opens no host file, so the output can only come from the trace. Where a program is
deterministic its output is also compared with the same program run natively.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pyarrow as pa
import pytest

from rrtool.linux.host import LinuxSetup
from rrtool.machine.config import DEFAULT_LINUX_RAM, MachineConfig, RunResult
from rrtool.player.session import ReplayResult, replay
from rrtool.recorder.session import RecordResult, record
from rrtool.schemas import events as ev
from tests.conftest import invoke
from tests.test_reliability_trace import one_line_error, rewrite, set_value

BUSYBOX = Path("/bin/busybox")
PROGRAMS = Path(__file__).parent / "linux_programs"
needs_busybox = pytest.mark.skipif(not BUSYBOX.is_file(), reason="Debian's busybox-static is not installed")
LIBS = Path("/usr/lib/x86_64-linux-gnu")


def build(tmp: Path, source: str | Path, name: str, *flags: str) -> Path:
    """A static executable from C: `source` is a file under linux_programs/ or the C text itself."""
    src = PROGRAMS / source if isinstance(source, str) and source.endswith(".c") else tmp / f"{name}.c"
    if not isinstance(source, Path) and not str(source).endswith(".c"):
        src.write_text(str(source))
    out = tmp / name
    subprocess.run(["gcc", "-static", "-O1", "-o", str(out), str(src), *flags], check=True, capture_output=True)
    return out


def rec(
    program: Path, args: tuple[str, ...], root: Path, trace: Path, *, writeback: bool = False, **setup: object
) -> tuple[RecordResult, bytes, bytes]:
    out, errs = bytearray(), bytearray()
    result = record(
        program,
        trace,
        config=MachineConfig(ram_size=DEFAULT_LINUX_RAM),
        linux=LinuxSetup(args=args, root=root, writeback=writeback, stdin=False, stderr_sink=errs.extend, **setup),  # type: ignore[arg-type]
        console_sink=out.extend,
    )
    return result, bytes(out), bytes(errs)


def rep(trace: Path) -> tuple[ReplayResult, bytes]:
    out = bytearray()
    result = replay(trace, console_sink=out.extend)
    return result, bytes(out)


def native(program: Path, args: tuple[str, ...], root: Path) -> bytes:
    return subprocess.run([str(program), *args], cwd=root, capture_output=True, check=True).stdout


def make_root(tmp: Path) -> Path:
    root = tmp / "root"
    (root / "d" / "e").mkdir(parents=True)
    (root / "f.txt").write_text("hello\nworld\n")
    (root / "s.txt").write_text("pear\napple\nfig\n")
    (root / "d" / "e" / "x").write_bytes(bytes(range(256)) * 64)
    return root


DETERMINISTIC = [
    ("sha256sum", "f.txt", "d/e/x"),
    ("md5sum", "f.txt"),
    ("wc", "f.txt", "s.txt"),
    ("sort", "s.txt"),
    ("gzip", "-c", "f.txt"),
    ("find", "."),
    ("cat", "f.txt", "s.txt"),
]
NONDETERMINISTIC = [("ls", "-l", "/"), ("date",), ("head", "-c", "64", "/dev/urandom")]


@needs_busybox
@pytest.mark.parametrize("args", DETERMINISTIC + NONDETERMINISTIC, ids=lambda a: " ".join(a))
def test_busybox_records_and_replays_without_its_root(args: tuple[str, ...], tmp_path: Path) -> None:
    root = make_root(tmp_path)
    expected = native(BUSYBOX, args, root) if args in DETERMINISTIC else None
    trace = tmp_path / "t.arrow"
    result, out, errs = rec(BUSYBOX, args, root, trace)
    assert result.run.reason == "exit" and result.run.exit_code == 0, (result.run.message, errs)
    assert result.platform == "linux"
    if expected is not None:
        assert out == expected
    else:
        assert out
    shutil.rmtree(root)
    replayed, again = rep(trace)
    assert replayed.verified, replayed.divergence
    assert again == out


@needs_busybox
def test_urandom_and_date_are_events_whose_values_replay(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    _, out1, _ = rec(BUSYBOX, ("head", "-c", "64", "/dev/urandom"), root, tmp_path / "a.arrow")
    _, out2, _ = rec(BUSYBOX, ("head", "-c", "64", "/dev/urandom"), root, tmp_path / "b.arrow")
    assert len(out1) == len(out2) == 64 and out1 != out2  # host randomness really reached the program
    assert rep(tmp_path / "a.arrow")[1] == out1 and rep(tmp_path / "b.arrow")[1] == out2


@pytest.fixture(scope="module")
def sqlite_rows(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (LIBS / "libsqlite3.a").is_file():
        pytest.skip("Debian's libsqlite3-dev is not installed")
    return build(tmp_path_factory.mktemp("sqlite"), "sqlite_rows.c", "sqlite_rows", "-lsqlite3", "-lm", "-lpthread")


def test_sqlite_database_in_the_root_overlay_and_with_writeback(sqlite_rows: Path, tmp_path: Path) -> None:
    import hashlib

    def digest(path: Path) -> str:
        return hashlib.sha256(path.read_bytes()).hexdigest()

    root = make_root(tmp_path)
    native(sqlite_rows, ("test.db", "0"), root)  # an existing, empty database in the root
    before = digest(root / "test.db")
    trace = tmp_path / "sq.arrow"
    result, out, errs = rec(sqlite_rows, ("test.db", "10000"), root, trace)
    assert result.run.ok, (result.run.message, errs)
    assert out == b"rows in range: 1000, sum 5000500\ntotal rows: 10000\n"
    assert digest(root / "test.db") == before  # without writeback the database file is unchanged
    assert sorted(p.name for p in root.iterdir()) == ["d", "f.txt", "s.txt", "test.db"]  # and no journal left
    shutil.rmtree(root)
    replayed, again = rep(trace)
    assert replayed.verified, replayed.divergence
    assert again == out

    root = make_root(tmp_path / "wb")
    native(sqlite_rows, ("test.db", "0"), root)
    before = digest(root / "test.db")
    result, out, _ = rec(sqlite_rows, ("test.db", "2000"), root, tmp_path / "wb.arrow", writeback=True)
    assert result.run.ok and digest(root / "test.db") != before  # with writeback it is changed
    native_db = subprocess.run([str(sqlite_rows), "test.db", "0"], cwd=root, capture_output=True, check=True)
    assert b"total rows: 2000" in native_db.stdout  # the host's own run reads what the guest wrote back


@pytest.fixture(scope="module")
def lua_script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (LIBS / "liblua5.4.a").is_file():
        pytest.skip("Debian's liblua5.4-dev is not installed")
    tmp = tmp_path_factory.mktemp("lua")
    return build(tmp, "lua_script.c", "lua_script", "-I/usr/include/lua5.4", "-llua5.4", "-lm")


LUA = """
local f = assert(io.open("f.txt"))
local text = f:read("a")
f:close()
print("lines", select(2, text:gsub("\\n", "")))
print(text:upper():gsub("\\n", " "))
math.randomseed(os.time())
local r = math.random(1, 1000)
print("random in range", r >= 1 and r <= 1000, "now", os.time() > 1700000000)
print(string.format("%05.1f|%s", 3.14159, string.rep("ab", 3)))
"""


def test_lua_script_reading_a_file_with_time_and_random(lua_script: Path, tmp_path: Path) -> None:
    root = make_root(tmp_path)
    (root / "s.lua").write_text(LUA)
    trace = tmp_path / "lua.arrow"
    result, out, errs = rec(lua_script, ("s.lua",), root, trace)
    assert result.run.ok, (result.run.message, errs)
    assert out == b"lines\t2\nHELLO WORLD \t2\nrandom in range\ttrue\tnow\ttrue\n003.1|ababab\n"
    shutil.rmtree(root)
    replayed, again = rep(trace)
    assert replayed.verified and again == out


# -- a trace that lies ---------------------------------------------------------------
def _first_read_with_data(table: pa.Table) -> int:
    names, datas = table.column("syscall").to_pylist(), table.column("data").to_pylist()
    return next(i for i, (n, d) in enumerate(zip(names, datas, strict=True)) if n in ("read", "sendfile") and d)


@needs_busybox
def test_a_tampered_read_result_diverges_at_that_call(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    trace = tmp_path / "t.arrow"
    rec(BUSYBOX, ("cat", "f.txt"), root, trace)

    def tamper(t: pa.Table) -> pa.Table:
        row = _first_read_with_data(t)
        return set_value(t, "data", row, b"HELLO\nworld\n")

    bad = rewrite(trace, tmp_path / "bad.arrow", tamper)
    result, _ = rep(bad)
    assert result.divergence is not None  # at the call itself: its bytes no longer match their digest
    assert "do not match their digest" in result.divergence.what
    assert result.divergence.icount == rep(trace)[0].icount or result.divergence.checkpoint == 0

    def consistent(t: pa.Table) -> pa.Table:  # a lie that keeps its digest: the output is where it shows
        import xxhash

        row = _first_read_with_data(t)
        t = set_value(t, "data", row, b"HELLO\nworld\n")
        return set_value(t, "value", row, xxhash.xxh3_64_intdigest(b"HELLO\nworld\n"))

    result, _ = rep(rewrite(trace, tmp_path / "lie.arrow", consistent))
    assert result.divergence is not None and "console_out data differs" in result.divergence.what

    def overflow(t: pa.Table) -> pa.Table:
        row = _first_read_with_data(t)
        name, args = t.column("syscall")[row].as_py(), t.column("args")[row].as_py()
        asked = args[3] if name == "sendfile" else args[2]
        t = set_value(t, "data", row, b"x" * (min(asked, 1 << 24) + 1))  # more than the program asked for
        return set_value(t, "ret", row, min(asked, 1 << 24) + 1)

    result, _ = rep(rewrite(trace, tmp_path / "big.arrow", overflow))
    assert result.divergence is not None and "cannot return" in result.divergence.what


@needs_busybox
def test_paths_cannot_leave_the_root(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("TOP SECRET\n")
    root = make_root(tmp_path)
    (root / "abs").symlink_to(tmp_path / "secret")
    (root / "rel").symlink_to("../secret")
    (root / "dirlink").symlink_to(tmp_path)
    (root / "chain1").symlink_to("chain2")
    (root / "chain2").symlink_to("/../../rel")
    for target in ("../secret", "/../secret", "abs", "rel", "dirlink/secret", "chain1", "d/../../secret"):
        result, out, errs = rec(BUSYBOX, ("cat", target), root, tmp_path / "t.arrow")
        assert b"SECRET" not in out + errs, target
        assert result.run.exit_code == 1 and b"No such file" in errs, (target, errs)


# -- faults and signals ------------------------------------------------------------------
SEGV = r"""
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
static void on_segv(int sig, siginfo_t *info, void *ctx) {
    char line[80];
    int n = snprintf(line, sizeof line, "caught signal %d at %p\n", sig, info->si_addr);
    write(1, line, n);
    _exit(7);
}
int main(int argc, char **argv) {
    if (argc > 1) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = on_segv;
        sa.sa_flags = SA_SIGINFO;
        sigaction(SIGSEGV, &sa, 0);
    }
    volatile int *p = (int *)0x10;
    printf("before\n");
    fflush(stdout);
    return *p;
}
"""


def test_a_fault_ends_the_run_as_a_signal_or_runs_the_programs_handler(tmp_path: Path) -> None:
    prog = build(tmp_path, SEGV, "segv")
    root = make_root(tmp_path)
    result, out, _ = rec(prog, (), root, tmp_path / "a.arrow")
    assert result.run.reason == "fault" and result.run.signal == 11
    assert "killed by SIGSEGV" in result.run.message and "0x10" in result.run.message
    assert out == b"before\n"
    assert rep(tmp_path / "a.arrow")[0].verified

    result, out, _ = rec(prog, ("handle",), root, tmp_path / "b.arrow")
    assert result.run.reason == "exit" and result.run.exit_code == 7
    assert out == b"before\ncaught signal 11 at 0x10\n"
    assert rep(tmp_path / "b.arrow")[0].verified

    proc = invoke("run", "--root", root, prog)
    assert proc.returncode == 139 and "killed by SIGSEGV" in proc.stderr


SLEEP_AND_UNKNOWN = r"""
#include <stdio.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>
int main(void) {
    struct timespec a, b, d = {0, 200000000};
    clock_gettime(CLOCK_MONOTONIC, &a);
    nanosleep(&d, 0);
    clock_gettime(CLOCK_MONOTONIC, &b);
    long ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
    printf("slept %s\n", ms >= 200 && ms < 300 ? "200ms" : "wrong");
    printf("unknown call: %ld\n", syscall(999));
    return 0;
}
"""


def test_sleep_is_an_idle_warp_and_an_unknown_call_is_enosys(tmp_path: Path) -> None:
    prog = build(tmp_path, SLEEP_AND_UNKNOWN, "sleepy")
    root = make_root(tmp_path)
    trace = tmp_path / "s.arrow"
    result, out, _ = rec(prog, (), root, trace)
    assert out == b"slept 200ms\nunknown call: -1\n"
    assert result.counts.get(ev.KIND_CLOCK_WARP) == 1
    assert result.summary is not None and "unknown_999" in result.summary
    replayed, again = rep(trace)
    assert replayed.verified and again == out
    assert replayed.run is not None and replayed.run.vclock_ns == result.run.vclock_ns >= 200_000_000

    strict: RunResult = rec(prog, (), root, tmp_path / "t.arrow", strict_syscalls=True)[0].run
    assert strict.reason == "fault" and "unsupported system call unknown_999" in strict.message


# -- what cannot run: one line each ---------------------------------------------------------
def test_programs_that_cannot_run_are_one_line_errors(tmp_path: Path) -> None:
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    elf32 = tmp_path / "elf32"
    elf32.write_bytes(b"\x7fELF\x01\x01\x01" + bytes(9) + bytes([2, 0, 3, 0]) + bytes(48))
    arm = tmp_path / "arm64"
    arm.write_bytes(b"\x7fELF\x02\x01\x01" + bytes(9) + bytes([2, 0, 183, 0]) + bytes(48))
    dynamic = Path("/bin/true")
    cases = {
        dynamic: "dynamically linked",
        script: "a script for /bin/sh",
        elf32: "rrtool runs x86-64",
        arm: "ARM64",
        tmp_path / "missing": "missing",
    }
    for program, words in cases.items():
        line = one_line_error(invoke("run", program))
        assert words in line or (words == "missing" and "no such" in line.lower()), line
    assert "-static" in one_line_error(invoke("record", "-o", tmp_path / "t.arrow", dynamic))


# -- the command line ---------------------------------------------------------------------
@needs_busybox
def test_everything_after_the_program_is_its_own_and_stdin_is_recorded(tmp_path: Path) -> None:
    import sys

    root = make_root(tmp_path)
    proc = invoke("run", "--root", root, BUSYBOX, "ls", "-l", "/")
    assert proc.returncode == 0, proc.stderr
    assert "f.txt" in proc.stdout and "-rw" in proc.stdout  # `-l` reached ls, not rrtool

    trace = tmp_path / "in.arrow"
    cmd = [sys.executable, "-m", "rrtool", "record", "-o", str(trace), "--root", str(root), str(BUSYBOX), "wc", "-c"]
    done = subprocess.run(cmd, input=b"four\n", capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [b"5"]
    again = subprocess.run([sys.executable, "-m", "rrtool", "replay", str(trace)], capture_output=True, timeout=120,
                           stdin=subprocess.DEVNULL)  # fmt: skip
    assert again.returncode == 0 and again.stdout.split() == [b"5"], again.stderr  # stdin came from the trace


TORTURE = r"""
#include <stdio.h>
#include <unistd.h>
#include <sys/syscall.h>
/* Every system call number with hostile arguments: wild pointers, -1, huge sizes. Calls that would
   end or reshape the process (exit, signals to itself, unmapping its own code, sleeping) are skipped. */
static const long skip[] = {SYS_exit, SYS_exit_group, SYS_kill, SYS_tkill, SYS_tgkill, SYS_munmap, SYS_mprotect,
    SYS_mremap, SYS_brk, SYS_rt_sigreturn, SYS_nanosleep, SYS_clock_nanosleep, SYS_arch_prctl, SYS_mmap,
    SYS_madvise, SYS_rt_sigaction, SYS_rt_sigprocmask, SYS_close, SYS_dup2, SYS_dup3, SYS_read, SYS_readv,
    SYS_pread64, SYS_preadv, SYS_set_tid_address, SYS_select, SYS_pselect6, SYS_poll, SYS_ppoll,
    SYS_epoll_wait, SYS_epoll_pwait, SYS_pause, SYS_vfork, SYS_fork, SYS_clone, SYS_clone3, SYS_execve,
    SYS_execveat, SYS_wait4, SYS_waitid, SYS_rt_sigsuspend, SYS_rt_sigtimedwait, SYS_accept, SYS_accept4,
    SYS_recvfrom, SYS_recvmsg, SYS_futex, SYS_exit};
int main(void) {
    const unsigned long args[][6] = {
        {0xdeadbeef000UL, 0xdeadbeef000UL, 0xdeadbeef000UL, 0xdeadbeef000UL, 0, 0},
        {-1UL, -1UL, -1UL, -1UL, -1UL, -1UL},
        {3, 0x7fffffffffffffffUL, 1UL << 40, 0x10, 4096, 1},
    };
    long answered = 0;
    for (long nr = 0; nr < 460; nr++) {
        int skipped = 0;
        for (unsigned i = 0; i < sizeof skip / sizeof skip[0]; i++)
            if (skip[i] == nr)
                skipped = 1;
        if (skipped)
            continue;
        for (unsigned a = 0; a < 3; a++) {
            syscall(nr, args[a][0], args[a][1], args[a][2], args[a][3], args[a][4], args[a][5]);
            answered++;
        }
    }
    printf("survived %ld calls\n", answered);
    return 0;
}
"""


def test_hostile_system_call_arguments_never_crash_the_recorder(tmp_path: Path) -> None:
    prog = build(tmp_path, TORTURE, "torture")
    root = make_root(tmp_path)
    trace = tmp_path / "t.arrow"
    result, out, errs = rec(prog, (), root, trace)
    assert result.run.ok, (result.run.message, errs)
    assert out.startswith(b"survived ") and b" calls" in out
    assert sorted(p.name for p in root.iterdir()) == ["d", "f.txt", "s.txt"]  # nothing in the root changed
    replayed, again = rep(trace)
    assert replayed.verified, replayed.divergence
    assert again == out


def test_a_static_pie_executable_is_loaded_and_relocates_itself(tmp_path: Path) -> None:
    src = tmp_path / "pie.c"
    src.write_text('#include <stdio.h>\nint main(int c, char **v) { printf("pie %s %d\\n", v[0], c); return 3; }\n')
    prog = tmp_path / "pie"
    subprocess.run(["gcc", "-static-pie", "-O1", "-o", str(prog), str(src)], check=True, capture_output=True)
    root = make_root(tmp_path)
    result, out, _ = rec(prog, ("a", "b"), root, tmp_path / "p.arrow")
    assert (result.run.reason, result.run.exit_code) == ("exit", 3)
    assert out == f"pie {prog} 3\n".encode()
    assert rep(tmp_path / "p.arrow")[0].verified


@needs_busybox
def test_a_machine_record_with_an_unknown_key_is_refused(tmp_path: Path) -> None:
    """Found by the fuzz campaign: a key spelt wrong fell back to its default and the trace verified."""
    root = make_root(tmp_path)
    trace = tmp_path / "t.arrow"
    rec(BUSYBOX, ("wc", "f.txt"), root, trace)

    def misspell(meta: dict[bytes, bytes]) -> dict[bytes, bytes]:
        key = ev.META_MACHINE.encode()
        return {**meta, key: meta[key].replace(b"checkpoint_every", b"cieckpoint_every")}

    proc = invoke("replay", rewrite(trace, tmp_path / "bad.arrow", meta=misspell))
    assert "cieckpoint_every" in one_line_error(proc)


FAULTS = r"""
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
static void on_signal(int sig) { char c = '0' + sig % 10; write(1, &c, 1); _exit(sig); }
int main(int argc, char **argv) {
    volatile int zero = 0;
    if (argc > 2) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sigaction(atoi(argv[2]), &sa, 0);
    }
    if (argv[1][0] == 'f') return argc / zero;
    if (argv[1][0] == 'i') __builtin_trap();
    if (argv[1][0] == 'a') abort();
    return 0;
}
"""


@pytest.mark.parametrize(("how", "sig", "name"), [("fpe", 8, "SIGFPE"), ("ill", 4, "SIGILL"), ("abort", 6, "SIGABRT")])
def test_each_fault_is_its_signal_with_or_without_a_handler(tmp_path: Path, how: str, sig: int, name: str) -> None:
    prog = build(tmp_path, FAULTS, "faults")
    root = make_root(tmp_path)
    result, _, _ = rec(prog, (how,), root, tmp_path / "a.arrow")
    assert result.run.reason == "fault" and result.run.signal == sig and f"killed by {name}" in result.run.message
    assert rep(tmp_path / "a.arrow")[0].verified
    if how != "abort":  # a handler for a synchronous fault runs; abort's own signal is not delivered yet
        result, out, _ = rec(prog, (how, str(sig)), root, tmp_path / "b.arrow")
        assert (result.run.reason, result.run.exit_code, out) == ("exit", sig, str(sig % 10).encode())
        assert rep(tmp_path / "b.arrow")[0].verified


RAISE = r"""
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
static volatile int got;
static void on_usr1(int sig) { got++; char m[] = "handler\n"; write(1, m, sizeof m - 1); }
int main(void) {
    signal(SIGUSR1, on_usr1);
    raise(SIGUSR1);
    printf("after raise: %d\n", got);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigprocmask(SIG_BLOCK, &set, 0);
    raise(SIGUSR1);
    printf("while blocked: %d\n", got);
    fflush(stdout);
    sigprocmask(SIG_UNBLOCK, &set, 0);
    printf("after unblock: %d\n", got);
    signal(SIGUSR2, SIG_IGN);
    raise(SIGUSR2);
    fflush(stdout);
    raise(SIGTERM);
    printf("not reached\n");
    return 0;
}
"""


def test_signals_a_program_sends_itself_run_handlers_wait_while_blocked_and_kill_by_default(tmp_path: Path) -> None:
    prog = build(tmp_path, RAISE, "raise")
    root = make_root(tmp_path)
    result, out, _ = rec(prog, (), root, tmp_path / "r.arrow")
    assert out == b"handler\nafter raise: 1\nwhile blocked: 1\nhandler\nafter unblock: 2\n"
    assert result.run.reason == "fault" and result.run.signal == 15 and "killed by SIGTERM" in result.run.message
    replayed, again = rep(tmp_path / "r.arrow")
    assert replayed.verified and again == out


SIGPIPE_PROG = r"""
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>
int main(int argc, char **argv) {
    int fds[2];
    pipe(fds);
    close(fds[0]);
    if (argc > 1)
        signal(SIGPIPE, SIG_IGN);
    long n = write(fds[1], "x", 1);
    printf("write gave %ld errno %d\n", n, errno);
    return 0;
}
"""


def test_a_write_to_a_pipe_nobody_reads_raises_sigpipe(tmp_path: Path) -> None:
    prog = build(tmp_path, SIGPIPE_PROG, "sigpipe")
    root = make_root(tmp_path)
    result, out, _ = rec(prog, (), root, tmp_path / "a.arrow")
    assert result.run.signal == 13 and out == b""  # killed by SIGPIPE, as a shell shows with status 141
    result, out, _ = rec(prog, ("ignore",), root, tmp_path / "b.arrow")
    assert result.run.ok and out == b"write gave -1 errno 32\n"  # ignored: EPIPE
    assert rep(tmp_path / "a.arrow")[0].verified and rep(tmp_path / "b.arrow")[0].verified
