"""`rrtool replay --gdb`: Debian's gdb against the server, and raw sockets for what gdb never sends.

Each test records a small guest built with symbols, starts the real CLI as a
server in a subprocess (`--gdb 127.0.0.1:0`, the port read from its stderr
line) and drives gdb in batch mode. The protocol tests (Ctrl-C, malformed
packets, random bytes) talk to the server over a plain socket, which is more
robust than timing signals to gdb, and read its replies with a parser of their
own rather than the server's.
"""

from __future__ import annotations

import contextlib
import random
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from rrtool.player import gdbtarget, rsp
from rrtool.player.gdbserver import GdbError, parse_address
from rrtool.player.gdbsession import MAX_READ, PACKET_SIZE, GdbSession
from rrtool.player.timeline import Timeline
from rrtool.recorder.session import record
from tests.conftest import BuildC, invoke
from tests.guests import STEP_LOOP
from tests.test_linux import build
from tests.tracetools import read_rows, write_rows

needs_gdb = pytest.mark.skipif(shutil.which("gdb") is None, reason="gdb is not installed")
#: step_fn's argument i, and counter after step_fn(i) has run: counter = counter * 3 + i.
COUNTER = [0, 1, 5, 18, 58, 179, 543, 1636, 4916, 14757]


# ----------------------------------------------------------------------------- fixtures
@dataclass(frozen=True)
class Guest:
    elf: Path
    trace: Path
    icount: int  # the recording's last icount

    def symbol(self, name: str) -> int:
        with self.elf.open("rb") as f:
            table = ELFFile(f).get_section_by_name(".symtab")
            assert isinstance(table, SymbolTableSection)
            found = table.get_symbol_by_name(name)
            assert found, name
            return int(found[0]["st_value"])


def _guest(build_c: BuildC, tmp: Path, name: str, *defines: str) -> Guest:
    elf = build_c(name, STEP_LOOP, cflags=("-g", *defines))
    trace = tmp / f"{name}.arrow"
    result = record(elf, trace)
    assert result.run.reason == "exit"
    return Guest(elf, trace, result.run.icount)


@pytest.fixture(scope="module")
def loop(build_c: BuildC, tmp_path_factory: pytest.TempPathFactory) -> Guest:
    """Ten calls of step_fn; a few hundred instructions in all."""
    return _guest(build_c, tmp_path_factory.mktemp("gdb"), "gdb_loop")


#: When to send Ctrl-C into a reverse-continue from the end of `long_loop` (about 2 s to the start here). A
#: search interrupted inside its first window stops where it began (the rest of that window is unsearched),
#: so the Ctrl-C must come after the first window: at 0.3 s it came before it on a slow moment of this host.
BACKWARD_DELAY_S = 0.6


@pytest.fixture(scope="module")
def long_loop(build_c: BuildC, tmp_path_factory: pytest.TempPathFactory) -> Guest:
    """The same, then 1.2G instructions with no call and no write of `counter`: a second of replay or more even
    on a fast host, so a Ctrl-C sent 0.3 s into a continue always finds it running."""
    return _guest(build_c, tmp_path_factory.mktemp("gdb"), "gdb_long", "-DSPIN=200000000ull")


# ------------------------------------------------------------------------------ the server
@dataclass
class Server:
    proc: subprocess.Popen[str]
    port: int
    first_line: str
    stderr: str = ""
    returncode: int | None = None


def _readline(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stderr is not None
    ready, _, _ = select.select([proc.stderr], [], [], timeout)
    assert ready, "the server printed nothing"
    return proc.stderr.readline()


@contextmanager
def server(trace: Path, address: str = "127.0.0.1:0", *extra: str) -> Iterator[Server]:
    """The CLI serving `trace`; after the block it must exit by itself (gdb detached), and its status is kept."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "rrtool.cli", "replay", str(trace), "--gdb", address, *extra],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = _readline(proc, 60)
        found = re.search(r"listening on 127\.0\.0\.1:(\d+) \(in gdb: target remote 127\.0\.0\.1:\1\)", line)
        assert found, line
        srv = Server(proc, int(found.group(1)), line)
        yield srv
        try:
            _, srv.stderr = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail("the server did not exit after gdb left")
        srv.returncode = proc.returncode
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def gdb(guest: Guest, port: int, *commands: str, timeout: float = 60) -> str:
    """Debian's gdb in batch mode against the server: its whole output (stdout and stderr, in order)."""
    args = ["gdb", "-nx", "-batch", "-ex", "set confirm off", "-ex", "set pagination off"]
    args += ["-ex", f"target remote 127.0.0.1:{port}"]
    for command in commands:
        args += ["-ex", command]
    proc = subprocess.run(
        [*args, str(guest.elf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout
    )
    out = proc.stdout
    # Whatever gdb thought of the target description, or a reply it could not read, shows as a warning.
    assert "warning:" not in out.lower(), out
    assert "Remote failure reply" not in out and "Protocol error" not in out, out
    return out


def registers(text: str) -> dict[str, int]:
    """`info registers` lines (`rip 0x102640 0x102640 <step_fn>`) as name -> value."""
    return {m.group(1): int(m.group(2), 16) for m in re.finditer(r"^(\w+)\s+(0x[0-9a-f]+)\s", text, re.M)}


def section(text: str, name: str) -> str:
    """What gdb printed between `echo @@NAME` and the next marker."""
    return text.split(f"@@{name}\n", 1)[1].split("@@", 1)[0]


def mark(name: str) -> str:
    return f"echo @@{name}\\n"


def finished(srv: Server) -> None:
    assert srv.returncode == 0, srv.stderr
    assert "Traceback" not in srv.stderr and "internal error" not in srv.stderr, srv.stderr


# --------------------------------------------------------------------------- gdb, for real
@needs_gdb
def test_break_at_a_function_and_continue_stops_at_its_address(loop: Guest) -> None:
    with server(loop.trace) as srv:
        out = gdb(loop, srv.port, "break step_fn", "continue", mark("regs"), "info registers rip", "print i")
    finished(srv)
    assert "Breakpoint 1, step_fn (i=i@entry=0)" in out, out
    assert registers(section(out, "regs"))["rip"] == loop.symbol("step_fn")
    assert "$1 = 0" in out
    assert "gdb detached" in srv.stderr


@needs_gdb
def test_reverse_stepi_returns_to_the_first_stepi_with_the_same_registers(loop: Guest) -> None:
    with server(loop.trace) as srv:
        out = gdb(
            loop, srv.port, "break step_fn", "continue", "continue",
            "stepi", mark("first"), "info registers", mark("-"),
            "stepi", mark("second"), "info registers", mark("-"),
            "reverse-stepi", mark("back"), "info registers", mark("-"),
        )  # fmt: skip
    finished(srv)
    first, second, back = (registers(section(out, name)) for name in ("first", "second", "back"))
    assert len(first) >= 24, first  # the general registers, rip, eflags and the segments
    assert first["rip"] != second["rip"] and first["rip"] != loop.symbol("step_fn")
    assert back == first
    assert section(out, "back") == section(out, "first")  # as gdb prints them, eflags' flags and all
    assert first["rdi"] == 1  # the second call


@needs_gdb
def test_reverse_continue_reaches_the_previous_breakpoint_hit(loop: Guest) -> None:
    with server(loop.trace) as srv:
        out = gdb(
            loop, srv.port, "break step_fn", "continue", "continue", "continue",
            mark("third"), "print i", "reverse-continue", mark("back"), "print i", "info registers rip",
            "reverse-continue", mark("first"), "print i", mark("end"),
        )  # fmt: skip
    finished(srv)
    assert "= 2" in section(out, "third")
    back = section(out, "back")
    assert "= 1" in back and registers(back)["rip"] == loop.symbol("step_fn")
    assert "= 0" in section(out, "first")


@needs_gdb
def test_watchpoint_under_reverse_continue_stops_at_the_last_write(loop: Guest) -> None:
    # At the sixth call (i=5) counter holds what step_fn(4) wrote. Backward, gdb stops before that write,
    # where counter still holds step_fn(3)'s value: "Old" is what gdb saw last (later in time), "New" is
    # the value now, as gdb's own reverse execution reports it. Forward again, the same write shows the other way.
    with server(loop.trace) as srv:
        out = gdb(
            loop, srv.port, "break step_fn if i == 5", "continue", "delete", "watch counter",
            mark("back"), "reverse-continue", "print i", "print/x $pc",
            mark("forward"), "continue", "print i", mark("end"),
        )  # fmt: skip
    finished(srv)
    back, forward = section(out, "back"), section(out, "forward")
    assert "Hardware watchpoint 2: counter" in back, out
    assert f"Old value = {COUNTER[4]}\nNew value = {COUNTER[3]}\n" in back, back
    assert "$1 = 4" in back  # inside step_fn(4), before its write
    pc = int(re.findall(r"\$2 = (0x[0-9a-f]+)", back)[0], 16)
    assert loop.symbol("step_fn") < pc < loop.symbol("main")
    assert f"Old value = {COUNTER[3]}\nNew value = {COUNTER[4]}\n" in forward, forward
    assert "$3 = 4" in forward


@needs_gdb
def test_reverse_continue_to_the_start_is_the_end_of_history(loop: Guest) -> None:
    with server(loop.trace) as srv:
        out = gdb(
            loop, srv.port, "break step_fn", "continue", "delete",
            mark("back"), "reverse-continue", "info registers rip", "monitor icount", mark("end"),
        )  # fmt: skip
    finished(srv)
    back = section(out, "back")
    assert "No more reverse-execution history." in back, back
    assert registers(back)["rip"] == loop.symbol("_start")
    assert "icount 0 " in back


@needs_gdb
def test_continue_to_the_end_is_the_end_of_history(loop: Guest) -> None:
    with server(loop.trace) as srv:
        out = gdb(loop, srv.port, mark("end"), "continue", "monitor icount", "stepi", mark("done"))
    finished(srv)
    end = section(out, "end")
    assert end.count("No more reverse-execution history.") == 2, end  # continue, and stepi there
    assert f"icount {loop.icount} " in end


@needs_gdb
def test_writes_are_refused(loop: Guest) -> None:
    with server(loop.trace) as srv:
        out = gdb(
            loop, srv.port, "break step_fn if i == 3", "continue",
            mark("mem"), "set var counter = 5", "print counter",
            mark("reg"), "set var $rax = 7", "print $rax == 7", mark("end"),
        )  # fmt: skip
    finished(srv)
    mem, reg = section(out, "mem"), section(out, "reg")
    assert f"Cannot access memory at address {loop.symbol('counter'):#x}" in mem, mem
    assert f"$1 = {COUNTER[2]}" in mem
    assert "Could not write register" in reg or "E01" in reg, reg
    assert "$2 = 0" in reg


@needs_gdb
def test_target_description_gives_gdb_every_register(loop: Guest) -> None:
    with server(loop.trace) as srv:
        out = gdb(
            loop, srv.port, "show architecture", mark("all"), "info all-registers", mark("end"),
            "print $xmm15.v4_int32", "print $st0", "print/x $fs_base", "print $eflags",
        )  # fmt: skip
    finished(srv)
    assert '(currently "i386:x86-64")' in out
    names = set(registers(section(out, "all")))
    want = {r.name for r in gdbtarget.REGISTERS} - {f"st{i}" for i in range(8)} - {f"xmm{i}" for i in range(16)}
    assert want <= names, want - names
    for name in ("st0", "st7", "xmm0", "xmm15", "ymm0"):
        assert re.search(rf"^{name}\s", section(out, "all"), re.M) or name == "ymm0", name
    assert "{0, 0, 0, 0}" in out and "$3 = 0x0" in out


@needs_gdb
def test_monitor_commands(loop: Guest) -> None:
    with server(loop.trace) as srv:
        out = gdb(
            loop, srv.port, "break step_fn", "continue", "continue",
            mark("where"), "monitor icount", "monitor checkpoint",
            mark("seek"), "monitor seek 0", "maint flush register-cache", "info registers rip",
            mark("verify"), "monitor verify", "monitor icount", "info registers rip",
            mark("help"), "monitor help", mark("end"),
        )  # fmt: skip
    finished(srv)
    where = section(out, "where")
    icount = int(re.findall(r"icount (\d+) \(pc (0x[0-9a-f]+)", where)[0][0])
    assert 0 < icount < loop.icount
    assert "checkpoint 0 (of 2" in where
    assert registers(section(out, "seek"))["rip"] == loop.symbol("_start")
    verify = section(out, "verify")
    assert "replay verified: every checkpoint matched, 2 of them" in verify, verify
    assert "icount 0 (" in verify  # verify goes back to where gdb was
    assert "monitor seek ICOUNT" in section(out, "help")


@needs_gdb
def test_an_unknown_monitor_command_is_an_error(loop: Guest) -> None:
    with server(loop.trace) as srv:
        proc = subprocess.run(
            ["gdb", "-nx", "-batch", "-ex", f"target remote 127.0.0.1:{srv.port}", "-ex", "monitor frobnicate",
             "-ex", "monitor seek 99999999999", str(loop.elf)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60,
        )  # fmt: skip
    finished(srv)
    assert "unknown monitor command 'frobnicate' (try: monitor help)" in proc.stdout
    assert "past the end of the recording" in proc.stdout


@needs_gdb
def test_kill_ends_the_server(loop: Guest) -> None:
    with server(loop.trace, str(0)) as srv:  # --gdb PORT: 127.0.0.1
        out = gdb(loop, srv.port, "stepi", "kill")
    finished(srv)
    assert "[Inferior 1 (Remote target) killed]" in out, out
    assert "gdb killed" in srv.stderr


@needs_gdb
def test_a_divergence_is_a_stop_and_a_report(loop: Guest, tmp_path: Path) -> None:
    rows = read_rows(loop.trace)
    console = next(r for r in rows if r["kind"] == "console_out")
    console["data"] = b"counter 0\n"  # not what the guest prints
    bad = tmp_path / "bad.arrow"
    write_rows(loop.trace, bad, rows)
    with server(bad) as srv:
        out = gdb(loop, srv.port, "continue", "monitor icount", "continue", "reverse-stepi", "monitor icount")
    finished(srv)
    told = f"rrtool: the replay diverged from its recording: divergence at checkpoint 0, icount {console['icount']}"
    assert out.count(told) == 1, out  # once, however often gdb runs into it
    assert "Program received signal SIGTRAP" in out
    assert srv.stderr.count("DIVERGENCE at checkpoint 0") == 1, srv.stderr
    stopped, back = (int(n) for n in re.findall(r"^icount (\d+) ", out, re.M))
    assert console["icount"] <= stopped and back < stopped  # going back still works


# ----------------------------------------------------------------------- raw socket client
class Raw:
    """A minimal remote-protocol client with its own framing, to send what gdb never would."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.buf = b""
        self.acks = b""  # '+' and '-' seen from the server

    def send(self, payload: bytes) -> None:
        self.sock.sendall(b"$%s#%02x" % (payload, sum(payload) & 0xFF))

    def packet(self, timeout: float = 30) -> bytes:
        """The next packet's payload (checksum checked); acks and noise before it are kept in `acks`."""
        deadline = time.monotonic() + timeout
        while True:
            found = re.search(rb"\$([^$#]*)#([0-9a-f]{2})", self.buf)
            if found:
                self.acks += self.buf[: found.start()]
                self.buf = self.buf[found.end() :]
                payload = found.group(1)
                assert int(found.group(2), 16) == sum(payload) & 0xFF
                return payload
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            data = self.sock.recv(65536)
            assert data, "the server closed the connection"
            self.buf += data

    def ask(self, payload: bytes) -> bytes:
        self.send(payload)
        return self.packet()

    def monitor(self, command: str) -> str:
        """A monitor command's console text (its O packets), up to its OK."""
        self.send(b"qRcmd," + command.encode().hex().encode())
        text = b""
        while (reply := self.packet()) not in (b"OK", b"E01"):
            assert reply.startswith(b"O"), reply
            text += bytes.fromhex(reply[1:].decode())
        return text.decode()


def icount_of(client: Raw) -> int:
    return int(re.findall(r"icount (\d+)", client.monitor("icount"))[0])


def test_ctrl_c_stops_a_long_continue_either_way(long_loop: Guest) -> None:
    with server(long_loop.trace) as srv:
        client = Raw(srv.port)
        assert b"ReverseContinue+" in client.ask(b"qSupported:swbreak+;hwbreak+")
        client.send(b"c")
        time.sleep(0.3)
        started = time.monotonic()
        client.sock.sendall(b"\x03")
        assert client.packet() == b"T02thread:1;"  # SIGINT, not the end of the log
        assert time.monotonic() - started < 5
        forward = icount_of(client)
        assert 0 < forward < long_loop.icount

        # Backward from the end, not from `forward`: a search back as short as the run forward could reach
        # the start before the Ctrl-C does.
        assert b"replaylog:end" in client.ask(b"c")
        client.send(b"bc")
        time.sleep(BACKWARD_DELAY_S)
        client.sock.sendall(b"\x03")
        assert client.packet() == b"T02thread:1;"
        backward = icount_of(client)
        assert 0 < backward < long_loop.icount

        client.sock.sendall(b"\x03")  # a Ctrl-C while nothing runs is dropped: the next step is not cut short
        assert client.ask(b"s") == b"T05thread:1;"
        assert icount_of(client) == backward + 1
        assert client.ask(b"D") == b"OK"
    finished(srv)


@needs_gdb
def test_ctrl_c_in_gdb_stops_a_continue_either_way(long_loop: Guest) -> None:
    """gdb's own Ctrl-C (SIGINT to gdb, which sends 0x03), timed by what gdb prints: it flushes each line."""
    with server(long_loop.trace) as srv:
        commands = [f"target remote 127.0.0.1:{srv.port}", mark("forward"), "continue", "monitor icount",
                    "continue", mark("backward"), "reverse-continue", "monitor icount"]  # fmt: skip
        proc = subprocess.Popen(
            ["gdb", "-nx", "-batch", *(a for c in commands for a in ("-ex", c)), str(long_loop.elf)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        assert proc.stdout is not None
        out = ""
        for line in proc.stdout:
            out += line
            # Forward the continue runs a second or more, backward from the end about two: both delays are inside.
            if line.startswith("@@forward") or line.startswith("@@backward"):
                time.sleep(0.3 if line.startswith("@@forward") else BACKWARD_DELAY_S)
                proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
    finished(srv)
    forward, backward = section(out, "forward"), section(out, "backward")
    assert "Program received signal SIGINT, Interrupt." in forward, out
    assert "No more reverse-execution history." in forward  # the second continue ran to the end
    assert "Program received signal SIGINT, Interrupt." in backward, out
    stopped = [int(n) for n in re.findall(r"^icount (\d+) ", out, re.M)]
    assert len(stopped) == 2 and 0 < stopped[0] < long_loop.icount and 0 < stopped[1] < long_loop.icount


def test_ctrl_c_sent_with_the_continue_still_stops_it(long_loop: Guest) -> None:
    with server(long_loop.trace) as srv:
        client = Raw(srv.port)
        client.sock.sendall(b"$c#63\x03")  # the Ctrl-C may be read before the continue starts
        assert client.packet() == b"T02thread:1;"
        assert icount_of(client) < long_loop.icount
        client.ask(b"D")
    finished(srv)


def test_gdb_going_away_mid_continue_ends_the_server(long_loop: Guest) -> None:
    with server(long_loop.trace) as srv:
        client = Raw(srv.port)
        assert client.ask(b"?") == b"T05thread:1;"
        client.send(b"c")
        time.sleep(0.1)
        client.sock.close()  # the continue stops (the reader sets the interrupt) and nobody gets its reply
    finished(srv)
    assert "rrtool: gdb disconnected" in srv.stderr


def test_malformed_packets_get_errors_and_the_server_carries_on(loop: Guest) -> None:
    with server(loop.trace) as srv:
        client = Raw(srv.port)
        client.sock.sendall(b"$g#00")  # wrong checksum: a NAK, nothing else
        client.sock.sendall(b"$g#zz")  # unreadable checksum
        assert client.ask(b"?") == b"T05thread:1;"
        assert client.acks.count(b"-") == 2 and b"+" in client.acks
        client.sock.sendall(b"$" + b"m" * (PACKET_SIZE + 10) + b"#00")  # longer than the server holds
        client.sock.sendall(b"garbage\x7f\xff+++")
        assert client.ask(b"?") == b"T05thread:1;"
        assert client.acks.count(b"-") == 3
        errors = [
            b"mzz,4", b"m100000", b"m,", b"m100000,", b"p", b"pxyz", b"p999", b"Z0,zz,1", b"Z2,100,0", b"Z0,1",
            b"qXfer:features:read:target.xml:zz,10", b"qXfer:features:read:target.xml:0", b"qRcmd,zz",
            b"qRcmd,616", b"vCont;r0,1", b"vCont;c:2", b"vCont;t", b"C", b"Czz", b"c123", b"Tzz",
            b"m" + b"f" * 40 + b",1",
        ]  # fmt: skip
        for payload in errors:
            reply = client.ask(payload)
            assert reply.startswith(b"E"), (payload, reply)
        for write in (b"G" + b"00" * 552, b"P0=0100000000000000", b"M140fb0,1:05", b"X140fb0,1:\x05", b"X140fb0,0:"):
            assert client.ask(write) == b"E01", write
        assert client.ask(b"mffffffffffff0000,10") == b"E14"  # not guest memory
        for unknown in (b"", b"vMustReplyEmpty", b"qTStatus", b"Z9,0,0", b"!", b"\x00\xff", b"QNonStop:1"):
            assert client.ask(unknown) == b"", unknown
        big = client.ask(b"m100000,ffffffffff")  # a huge length: as much as one reply holds
        assert len(big) == 2 * MAX_READ
        assert client.ask(b"m100000,4") == big[:8]
        assert client.ask(b"?") == b"T05thread:1;"
        assert client.ask(b"D") == b"OK"
    finished(srv)


def test_the_session_in_no_ack_mode_with_thread_forms(loop: Guest) -> None:
    with server(loop.trace) as srv:
        client = Raw(srv.port)
        features = client.ask(b"qSupported:multiprocess+;swbreak+;hwbreak+;vContSupported+").split(b";")
        assert set(features) >= {b"qXfer:features:read+", b"ReverseStep+", b"ReverseContinue+",
                                 b"QStartNoAckMode+", b"swbreak+", b"hwbreak+", b"vContSupported+",
                                 b"PacketSize=%x" % PACKET_SIZE}  # fmt: skip
        assert client.ask(b"QStartNoAckMode") == b"OK"
        client.sock.sendall(b"+")
        assert client.ask(b"qC") == b"QC1" and client.ask(b"qAttached") == b"1"
        assert client.ask(b"qfThreadInfo") == b"m1" and client.ask(b"qsThreadInfo") == b"l"
        for h in (b"Hg0", b"Hgp0.0", b"Hc-1", b"Hc1", b"T1"):
            assert client.ask(h) == b"OK", h
        assert client.ask(b"vCont?") == b"vCont;c;C;s;S"
        xml = b""
        while True:
            chunk = client.ask(b"qXfer:features:read:target.xml:%x,%x" % (len(xml), 700))
            xml += rsp.unescape(chunk[1:])
            if chunk[:1] == b"l":
                break
            assert chunk[:1] == b"m"
        assert xml.decode() == gdbtarget.target_xml()
        ET.fromstring(xml)
        addr = b"%x" % loop.symbol("step_fn")
        assert client.ask(b"Z0," + addr + b",1") == b"OK"
        assert client.ask(b"Z1," + addr + b",1") == b"OK"
        assert client.ask(b"vCont;c:p1.-1") == b"T05swbreak:;thread:1;"
        assert client.ask(b"z0," + addr + b",1") == b"OK"
        assert client.ask(b"vCont;c") == b"T05hwbreak:;thread:1;"  # the hardware one is still there
        assert client.ask(b"z1," + addr + b",1") == b"OK"
        assert client.ask(b"vCont;s:1;c") == b"T05thread:1;"
        counter = b"%x" % loop.symbol("counter")
        assert client.ask(b"Z2," + counter + b",8") == b"OK"
        assert client.ask(b"c") == b"T05watch:" + counter + b";thread:1;"
        assert client.ask(b"bc") == b"T05watch:" + counter + b";thread:1;"
        assert client.ask(b"z2," + counter + b",8") == b"OK"
        assert client.ask(b"Z3," + counter + b",8") == b"OK"
        assert client.ask(b"C05") == b"T05rwatch:" + counter + b";thread:1;"
        assert client.ask(b"z3," + counter + b",8") == b"OK"
        assert client.ask(b"Z4," + counter + b",4") == b"OK"
        assert client.ask(b"S05") == b"T05thread:1;"
        assert client.ask(b"c").startswith(b"T05awatch:" + counter)
        assert client.ask(b"z4," + counter + b",4") == b"OK"
        assert client.ask(b"c") == b"T05replaylog:end;thread:1;"
        assert client.ask(b"bc") == b"T05replaylog:begin;thread:1;"
        assert client.ask(b"bs") == b"T05replaylog:begin;thread:1;"
        regs = client.ask(b"g")
        assert len(regs) == 2 * sum(r.bits // 8 for r in gdbtarget.REGISTERS)
        rip = gdbtarget.NUMBERS["rip"]
        assert client.ask(b"p%x" % rip) == (loop.symbol("_start")).to_bytes(8, "little").hex().encode()
        assert client.ask(b"vKill;a410") == b"OK"
    finished(srv)
    assert "gdb killed" in srv.stderr


def test_random_bytes_do_not_crash_or_stall_the_server(loop: Guest) -> None:
    rng = random.Random(20261202)
    with server(loop.trace) as srv:
        client = Raw(srv.port)
        received = bytearray()

        def read() -> None:  # replies to the noise are collected as they come, so the server never blocks on us
            with contextlib.suppress(OSError):
                while data := client.sock.recv(65536):
                    received.extend(data)

        client.sock.settimeout(60)
        reader = threading.Thread(target=read)
        reader.start()
        noise = b"$#}+-\x03mgpZzqv0123456789abcdef,:;"
        for _ in range(300):
            if rng.random() < 0.5:
                chunk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
            else:
                chunk = bytes(rng.choice(noise) for _ in range(rng.randrange(1, 200)))
            client.sock.sendall(chunk)
        for _ in range(200):  # well-framed packets with random arguments reach the dispatcher
            client.send(random_packet(rng))
        # Still answering? A monitor command's reply is unmistakable. It is sent more than once: the first
        # may be swallowed as the checksum of a packet the noise left open.
        marker = b"O" + b"icount ".hex().encode()
        deadline = time.monotonic() + 30
        while marker not in received and time.monotonic() < deadline:
            client.send(b"qRcmd," + b"icount".hex().encode())
            time.sleep(0.2)
        assert marker in received, "the server stopped answering"
        client.send(b"D")
        reader.join(30)
        assert not reader.is_alive()
        client.sock.close()
    finished(srv)
    assert "gdb detached" in srv.stderr


#: Packet heads the random packets start from: everything the server parses, except those that end it.
HEADS = ["m", "M", "X", "g", "G", "p", "P", "Z0,", "Z1,", "Z2,", "Z3,", "Z4,", "z0,", "z1,", "z2,", "z3,", "z4,",
         "c", "C", "s", "S", "bc", "bs", "vCont;", "vCont?", "qXfer:features:read:target.xml:", "qXfer:features:read:",
         "qRcmd,", "qSupported:", "H", "T", "q", "Q", "?", "v", "qC", "qAttached", "qfThreadInfo"]  # fmt: skip


def random_packet(rng: random.Random) -> bytes:
    head = rng.choice(HEADS).encode()
    pieces = [b"%x" % rng.choice([0, 1, 0x100000, 0x140FB0, 1 << 63, (1 << 64) - 1, rng.randrange(1 << 70)])
              for _ in range(rng.randrange(4))]  # fmt: skip
    tail = bytes(rng.choice(b"0123456789abcdefxyz,:;-.}*") for _ in range(rng.randrange(6)))
    body = head + rng.choice([b",", b":", b";"]).join(pieces) + tail
    if head == b"qRcmd,":
        body = head + rng.choice([b"icount", b"checkpoint", b"seek 5", b"seek x", b"", b"help"]).hex().encode()
    return rsp.escape(body).replace(b"}", b"")  # unescaped '$' or '#' would end the packet early


# ----------------------------------------------------------------- in-process: pure parts and the dispatcher
def test_session_fuzz_never_raises_and_replies_stay_framable(loop: Guest) -> None:
    rng = random.Random(7)
    messages: list[str] = []
    with Timeline(loop.trace) as tl:
        session = GdbSession(tl, messages.append)
        for _ in range(3000):
            payload = random_packet(rng) if rng.random() < 0.8 else bytes(rng.randrange(256) for _ in range(20))
            if payload[:1] in (b"D", b"k") or payload.startswith(b"vKill"):
                continue
            replies = session.handle(payload)
            assert session.ended is None, payload
            for reply in replies:
                assert isinstance(reply, bytes)
                assert b"$" not in reply and b"#" not in reply, (payload, reply)
                assert len(rsp.frame(reply)) <= PACKET_SIZE, (payload, len(reply))
    assert messages == []


def test_decoder_events_do_not_depend_on_how_the_bytes_arrive() -> None:
    rng = random.Random(3)
    for _ in range(200):
        stream = b"".join(
            rng.choice([rsp.frame(bytes(rng.choice(b"abc$#}") for _ in range(rng.randrange(8)))), b"+", b"-", b"\x03",
                        bytes(rng.randrange(256) for _ in range(rng.randrange(6)))])
            for _ in range(rng.randrange(1, 20))
        )  # fmt: skip
        whole = rsp.Decoder(64).feed(stream)
        split = rsp.Decoder(64)
        events: list[rsp.Event] = []
        at = 0
        while at < len(stream):
            step = rng.randrange(1, 5)
            events += split.feed(stream[at : at + step])
            at += step
        assert events == whole
    assert rsp.Decoder(4).feed(b"$123456#00$ok#da") == [rsp.BadPacket("packet longer than 4 bytes"), rsp.Packet(b"ok")]


def test_escape_round_trips_and_checksums() -> None:
    rng = random.Random(5)
    for _ in range(200):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(50)))
        escaped = rsp.escape(data)
        assert not set(escaped) & set(b"$#*") and rsp.unescape(escaped) == data
    assert rsp.frame(b"g") == b"$g#67" and rsp.frame(b"OK") == b"$OK#9a"
    with pytest.raises(rsp.PacketError):
        rsp.unescape(b"ab}")


@pytest.mark.parametrize(
    ("text", "want"),
    [("127.0.0.1:1234", ("127.0.0.1", 1234)), ("1234", ("127.0.0.1", 1234)), ("0", ("127.0.0.1", 0)),
     ("localhost:5", ("127.0.0.1", 5)), ("127.1.2.3:9", ("127.1.2.3", 9)), ("[::1]:7", ("::1", 7))],
)  # fmt: skip
def test_loopback_addresses_are_accepted(text: str, want: tuple[str, int]) -> None:
    assert parse_address(text) == want


@pytest.mark.parametrize(
    "text", ["10.0.0.1:1234", "0.0.0.0:1234", "[::]:1", "example.com:1", "127.0.0.1:70000", "127.0.0.1:", ":1", "x"]
)
def test_other_addresses_are_refused(text: str) -> None:
    with pytest.raises(GdbError):
        parse_address(text)


def test_the_cli_refuses_a_non_loopback_address_with_one_line(loop: Guest) -> None:
    for address in ("10.0.0.1:1234", "0.0.0.0:1234", "example.com:1"):
        proc = invoke("replay", loop.trace, "--gdb", address)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, proc.stderr
        assert "loopback" in lines[0] or "not an IP address" in lines[0], lines
    proc = invoke("replay", loop.trace, "--gdb", "1234", "--snapshot-memory", "lots")
    assert proc.returncode == 2 and "bad size 'lots'" in proc.stderr
    proc = invoke("replay", loop.trace, "--gdb", "1234", "--json")
    assert proc.returncode == 2 and "--json does not go with --gdb" in proc.stderr


def test_the_port_in_use_is_one_line(loop: Guest) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        proc = invoke("replay", loop.trace, "--gdb", f"127.0.0.1:{port}")
    assert proc.returncode == 2
    want = f"rrtool: error: cannot listen on 127.0.0.1:{port}: Address already in use"
    assert proc.stderr.strip().splitlines() == [want]


LINUX_PROGRAM = r"""
#include <stdio.h>
#include <unistd.h>
long total;
__attribute__((noinline)) void add(long v) { total = total * 3 + v; }
int main(void) {
    for (long i = 0; i < 5; i++) add(i + getpid() % 2);
    printf("total %ld\n", total);
    return 0;
}
"""


@needs_gdb
def test_a_linux_program_under_gdb_both_ways(tmp_path: Path) -> None:
    """A static glibc program: break, continue, a watchpoint backward, across system calls replayed from the log."""
    exe = build(tmp_path, LINUX_PROGRAM, "prog", "-g")
    trace = tmp_path / "prog.arrow"
    proc = invoke("record", "-q", "-o", trace, "--root", tmp_path, exe, timeout=60)
    assert proc.returncode == 0, proc.stderr
    prog = Guest(exe, trace, 0)
    with server(trace) as srv:
        out = gdb(
            prog, srv.port, "break add", "continue", "continue", "continue", mark("third"), "print v",
            "reverse-continue", mark("second"), "print v", "continue", "delete", "watch total", "reverse-continue",
            mark("watch"), "print total", mark("end"),
        )  # fmt: skip
    finished(srv)
    assert "$1 = 2" in section(out, "third"), out  # getpid() is 1000: even
    assert "$2 = 1" in section(out, "second"), out
    # Back from add(2): the last write was add(1)'s, 0 -> 1 (gdb going backward calls the later value old).
    assert "Old value = 1\nNew value = 0\n" in out and "in add (v=1)" in out, out
    assert "$3 = 0" in section(out, "watch")
