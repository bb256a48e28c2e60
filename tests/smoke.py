"""Smoke test of every command against an installed rrtool, with nothing but what that install brought.

The test suite runs in the development environment, whose extras pull in packages (numpy, through
matplotlib) that a user's `pip install rrtool` does not have, so a command can work there and fail for every
user. `.ci/run` therefore makes fresh virtual environments with only the runtime dependencies, or with one
extra, and runs this script with their Python:

    venv/bin/python tests/smoke.py                 # every command, runtime dependencies only
    venv/bin/python tests/smoke.py --notebooks     # the [notebooks] extra: the notebooks execute

It uses the standard library only (plus nbclient for --notebooks), runs each command as a user would, in a
subprocess, and checks its exit code and what it printed. One line per check; exit 1 if any failed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GUEST = r"""
#include "rrtool.h"
int main(void) { rr_printf("smoke %d\n", 42); return 3; }
"""
Check = Callable[[subprocess.CompletedProcess[str]], bool]


class Smoke:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.failures: list[str] = []
        self.env = {**os.environ, "RRTOOL_CACHE": str(work / "cache")}

    def rrtool(self, *args: str | Path, code: int, check: Check = lambda p: True, what: str = "") -> str:
        """Run `rrtool ARGS`; it must exit with `code`, print no traceback, and pass `check`."""
        start = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "rrtool.cli", *map(str, args)],
            capture_output=True, text=True, cwd=self.work, env=self.env, stdin=subprocess.DEVNULL, timeout=300,
        )  # fmt: skip
        label = what or " ".join(map(str, args))
        problems = []
        if proc.returncode != code:
            problems.append(f"exit {proc.returncode}, expected {code}")
        if "Traceback" in proc.stdout + proc.stderr:
            problems.append("printed a traceback")
        if not problems and not check(proc):
            problems.append("unexpected output")
        status = "ok  " if not problems else "FAIL"
        print(f"{status} {time.monotonic() - start:5.2f}s rrtool {label}", flush=True)
        if problems:
            tail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-5:]
            print("       " + "; ".join(problems) + "\n       " + "\n       ".join(tail), flush=True)
            self.failures.append(label)
        return proc.stdout

    def commands(self) -> None:
        w = self.work
        self.rrtool("--version", code=0, check=lambda p: p.stdout.startswith("rrtool "))
        self.rrtool("guest", "list", code=0, check=lambda p: "timers" in p.stdout and "kvstore" in p.stdout)
        (w / "smoke.c").write_text(GUEST)
        self.rrtool("guest", "build", "smoke.c", "-o", "smoke.elf", code=0, check=lambda p: (w / "smoke.elf").exists())
        self.rrtool("run", "smoke.elf", "--no-stdin", code=3, check=lambda p: "smoke 42" in p.stdout)
        for name in ("a", "b"):
            self.rrtool("record", "timers", "-o", f"{name}.arrow", "--no-stdin", "-q", code=0,
                        check=lambda p: "recorded" in p.stderr)  # fmt: skip
        self.rrtool("replay", "a.arrow", "-q", code=0, check=lambda p: "replay verified" in p.stderr)
        self.rrtool("replay", "a.arrow", "--json", code=0, check=lambda p: json.loads(p.stdout)["verified"] is True)
        self.rrtool("info", "a.arrow", "--json", code=0,
                    check=lambda p: json.loads(p.stdout)["complete"] is True and "rng_read" in p.stdout)  # fmt: skip
        self.rrtool("info", "a.arrow", code=0, check=lambda p: "complete" in p.stdout)
        self.rrtool("sql", "a.arrow", "select count(*) as n from events", code=0, check=lambda p: "n" in p.stdout)
        for view in ("events", "packets", "block_ops", "clock", "checkpoints", "console", "interrupts"):
            is_rows: Check = lambda p: isinstance(json.loads(p.stdout), list)  # noqa: E731
            self.rrtool("sql", "a.arrow", "--json", f"select * from {view} limit 3", code=0, check=is_rows,
                        what=f"sql --json ... from {view}")  # fmt: skip
        self.rrtool("sql", "a.arrow", "--csv", "select text from console where direction = 'out'", code=0,
                    check=lambda p: "rnd" in p.stdout, what="sql --csv (console text)")  # fmt: skip
        self.rrtool("sql", "a.arrow", "b.arrow", "select trace, count(*) from events group by trace", code=0)
        self.rrtool("sql", "a.arrow", "select nonsense from nowhere", code=2, check=lambda p: "error" in p.stderr)
        self.rrtool("diff", "a.arrow", "a.arrow", code=0)
        self.rrtool("diff", "a.arrow", "b.arrow", code=1, check=lambda p: "rng_read" in p.stdout)
        self.rrtool("diff", "a.arrow", "b.arrow", "--json", code=1,
                    check=lambda p: json.loads(p.stdout)["equivalent"] is False)  # fmt: skip
        self.rrtool("seek", "a.arrow", "--icount", "20000", code=0, check=lambda p: "icount 20,000" in p.stdout)
        self.rrtool("seek", "a.arrow", "--checkpoint", "2", "--json", code=0,
                    check=lambda p: "rip" in json.loads(p.stdout)["registers"])  # fmt: skip
        self.rrtool("seek", "a.arrow", "--icount", "999999999999", code=2, check=lambda p: "past the end" in p.stderr)
        self.rrtool("diff", "--deep", "a.arrow", "a.arrow", code=0)
        self.rrtool("diff", "--deep", "a.arrow", "b.arrow", "--json", code=1,
                    check=lambda p: json.loads(p.stdout)["icount"] > 0)  # fmt: skip
        self.rrtool("replay", "a.arrow", "--gdb", "10.0.0.1:1234", code=2, check=lambda p: "loopback" in p.stderr)
        self.rrtool("demo", "--dir", "demo", "-q", code=0, check=lambda p: "replay verified" in p.stdout)
        trace = "demo/kvstore.arrow"
        self.rrtool("export", "pcap", trace, "-o", "k.pcapng", code=0,
                    check=lambda p: (w / "k.pcapng").read_bytes()[:4] == b"\x0a\x0d\x0d\x0a")  # fmt: skip
        self.rrtool("export", "parquet", trace, "-o", "k.parquet", code=0,
                    check=lambda p: any((w / "k.parquet").rglob("*.parquet")))  # fmt: skip
        self.rrtool("export", "perfetto", trace, "-o", "k.json", code=0,
                    check=lambda p: bool(json.loads((w / "k.json").read_text())["traceEvents"]))  # fmt: skip
        self.rrtool("sql", trace, "--parquet", "p.parquet", "select * from packets", code=0,
                    check=lambda p: (w / "p.parquet").read_bytes()[:4] == b"PAR1")  # fmt: skip
        self.rrtool("replay", "missing.arrow", code=2, check=lambda p: "no such trace" in p.stderr)
        self.rrtool("record", "timers", code=2, check=lambda p: "--output" in p.stderr, what="record (no -o)")
        one_line: Check = lambda p: len(p.stderr.splitlines()) == 1 and p.stderr.startswith("rrtool: error:")  # noqa: E731
        self.rrtool("record", "timers", "-o", "x.arrow", "--checkpoint-every", "0", code=2, check=one_line)
        self.rrtool("record", "smoke.elf", "-o", "smoke.elf", code=2, check=lambda p: "is the guest image" in p.stderr)
        self.rrtool("sql", "a.arrow", "select seq, kind from events order by seq limit 2", code=0,
                    check=lambda p: p.stdout.splitlines()[0] == "seq,kind", what="sql into a pipe (CSV)")  # fmt: skip
        is_elf: Check = lambda p: (w / "timers.elf").read_bytes()[:4] == b"\x7fELF"  # noqa: E731
        self.rrtool("guest", "build", "timers", "-o", "timers.elf", code=0, check=is_elf, what="guest build timers")

    def notebooks(self) -> None:
        """Execute every notebook as the [notebooks] extra promises (they record a trace themselves)."""
        import nbclient
        import nbformat

        for path in sorted((REPO / "notebooks").glob("*.ipynb")):
            start = time.monotonic()
            try:
                nb = nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]  # nbformat ships no types
                nbclient.NotebookClient(nb, timeout=300, resources={"metadata": {"path": str(self.work)}}).execute()
                ok, detail = True, ""
            except Exception as exc:  # a failing cell: report which, not a traceback of the runner
                ok, detail = False, str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            print(f"{'ok  ' if ok else 'FAIL'} {time.monotonic() - start:5.2f}s notebook {path.name}", flush=True)
            if not ok:
                print(f"       {detail}", flush=True)
                self.failures.append(path.name)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebooks", action="store_true", help="execute the notebooks instead of the commands")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="rrtool-smoke-") as tmp:
        smoke = Smoke(Path(tmp))
        smoke.notebooks() if args.notebooks else smoke.commands()
    if smoke.failures:
        print(f"smoke: {len(smoke.failures)} failed: {', '.join(smoke.failures)}")
        return 1
    print("smoke: all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
