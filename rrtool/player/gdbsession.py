"""One gdb's requests, answered from a `Timeline`: the remote protocol's packets, one by one (no sockets here).

`GdbSession.handle` takes one packet's payload and returns the payloads to send
back, in order (console output `O...` first, then the reply), or none (`k`
wants no reply). It never raises for what a peer sends: a packet that does not
parse gets an error reply (`E01`), an unknown one the empty reply, which gdb
reads as "not supported". So the socket layer (`gdbserver`) only moves bytes.

What gdb is told, and why:
- one process with one thread (id 1), always attached (`qAttached` 1, so gdb
  detaches rather than kills when it quits);
- `swbreak`/`hwbreak` stop reasons (when gdb asks for them): the timeline
  stops *at* a breakpoint, before its instruction, so gdb must not back the pc
  up by the length of an int3 as it does for a stub that cannot say why it
  stopped;
- watchpoint stops name the watched address; forward, the timeline stops after
  the access (as x86 debug registers do), backward before it, which is where
  gdb's own reverse execution stops too;
- at either end of the recording, `replaylog:begin`/`replaylog:end`: gdb then
  says "No more reverse-execution history." and keeps the session;
- every write (`G`, `P`, `M`, `X`) is refused: a replay cannot change the past.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable

from rrtool.player import gdbtarget
from rrtool.player.divergence import Divergence
from rrtool.player.gdbmonitor import run_monitor
from rrtool.player.rsp import PacketError, escape, hex_bytes, parse_hex
from rrtool.player.timeline import (
    BEGIN,
    BREAKPOINT,
    END,
    INTERRUPTED,
    WATCH_KINDS,
    Stop,
    Timeline,
    TimelineError,
)

#: The largest packet either side sends (told to gdb in qSupported); replies are built to fit it.
PACKET_SIZE = 0x4000
#: The most memory one `m` reply carries (two hex digits a byte, and room for the framing).
MAX_READ = (PACKET_SIZE - 16) // 2
#: Memory is read a page at a time when a whole range cannot be: the reply is the readable start.
PAGE = 0x1000

SIGINT, SIGTRAP = 2, 5
THREAD = 1
_OUR_THREADS = {"", "0", "-1", "1", "p1.1", "p1.-1", "p-1.-1", "p1.0", "p0.0"}
_WATCH_PACKETS = {"2": "write", "3": "read", "4": "access"}
_RESUME_ACTIONS = "cCsS"

ERROR = b"E01"
#: What a read outside guest memory returns (EFAULT, as gdbserver says it).
MEMORY_ERROR = b"E14"
OK = b"OK"
EMPTY = b""

#: What a session ended with: gdb detached, or killed the (replayed) program.
DETACHED, KILLED = "detached", "killed"


def _hex_text(text: str) -> bytes:
    return text.encode("utf-8", "replace").hex().encode()


def console(text: str) -> list[bytes]:
    """`text` as `O` packets for gdb's console, each small enough for one packet."""
    data = text.encode("utf-8", "replace")
    step = MAX_READ - 8
    return [b"O" + data[i : i + step].hex().encode() for i in range(0, len(data), step)]


class GdbSession:
    """The state of one gdb connection over one timeline: its breakpoints, watchpoints and last stop."""

    def __init__(self, timeline: Timeline, on_message: Callable[[str], None] | None = None) -> None:
        self.timeline = timeline
        self.on_message = on_message
        #: The peer asked to stop acknowledging packets (the socket layer reads this after each reply).
        self.no_ack = False
        #: Why the session ended (DETACHED or KILLED), once it has.
        self.ended: str | None = None
        self._gdb_features: set[str] = set()
        self._breakpoints: dict[int, set[int]] = {}  # address -> the Z types (0 software, 1 hardware) set there
        self._watchpoints: Counter[tuple[str, int, int]] = Counter()
        self._last_reply = f"T{SIGTRAP:02x}thread:{THREAD};".encode()
        self._reported: tuple[int, int, str] | None = None
        self._xml = gdbtarget.target_xml().encode()

    # -- the entry point -----------------------------------------------------------
    def handle(self, payload: bytes, interrupt: threading.Event | None = None) -> list[bytes]:
        """The replies to one packet, in order; `interrupt` is what Ctrl-C sets while a continue runs."""
        text = payload.decode("latin-1")
        try:
            return self._dispatch(text, payload, interrupt)
        except (PacketError, TimelineError):
            return [ERROR]

    def _dispatch(self, text: str, payload: bytes, interrupt: threading.Event | None) -> list[bytes]:
        head = text[:1]
        if head == "?":
            return [self._last_reply]
        if head == "g" and text == "g":
            return [gdbtarget.encode_registers(self.timeline.registers()).encode()]
        if head == "p":
            return [self._register(text[1:])]
        if head == "m":
            return [self._read_memory(text[1:])]
        if head and head in "GPMX":
            return [ERROR]  # a replay cannot change the past
        if head in ("Z", "z"):
            return [self._point(text)]
        if head and head in _RESUME_ACTIONS:
            return self._resume_legacy(text, interrupt)
        if text in ("bc", "bs"):
            return self._resume(text[1], reverse=True, interrupt=interrupt)
        if head == "H":
            return [OK if text[2:] in _OUR_THREADS else ERROR]  # Hg, Hc: which thread (there is one)
        if head == "T":
            return [OK if text[1:] in _OUR_THREADS - {"", "0", "-1"} else ERROR]
        if head == "D":
            self.ended = DETACHED
            return [OK]
        if text == "k":
            self.ended = KILLED
            return []
        if head == "v":
            return self._v_packet(text, interrupt)
        if head == "q":
            return self._query(text)
        if text == "QStartNoAckMode":
            self.no_ack = True
            return [OK]
        return [EMPTY]

    # -- queries ---------------------------------------------------------------------
    def _query(self, text: str) -> list[bytes]:
        name, _, args = text.partition(":")
        if name == "qSupported":
            self._gdb_features = {f[:-1] for f in args.split(";") if f.endswith("+")}
            features = [f"PacketSize={PACKET_SIZE:x}", "qXfer:features:read+", "ReverseStep+", "ReverseContinue+",
                        "QStartNoAckMode+", "swbreak+", "hwbreak+", "vContSupported+"]  # fmt: skip
            return [";".join(features).encode()]
        if text.startswith("qXfer:features:read:"):
            return [self._xfer(text.removeprefix("qXfer:features:read:"))]
        if text == "qC":
            return [f"QC{THREAD:x}".encode()]
        if text.startswith("qAttached"):
            return [b"1"]
        if text == "qfThreadInfo":
            return [f"m{THREAD:x}".encode()]
        if text == "qsThreadInfo":
            return [b"l"]
        if text.startswith("qThreadExtraInfo,"):
            return [_hex_text("replay")]
        if text == "qOffsets":
            return [b"Text=0;Data=0;Bss=0"]
        if text.startswith("qSymbol"):
            return [OK]
        if text.startswith("qRcmd,"):
            return self._monitor(text.removeprefix("qRcmd,"))
        return [EMPTY]

    def _xfer(self, args: str) -> bytes:
        annex, _, span = args.partition(":")
        if annex != "target.xml":
            return b"E00"
        offset_text, comma, length_text = span.partition(",")
        if not comma:
            raise PacketError("qXfer wants OFFSET,LENGTH")
        offset, length = parse_hex(offset_text), parse_hex(length_text)
        length = min(length, PACKET_SIZE - 16)
        if offset >= len(self._xml):
            return b"l"
        # The length counts bytes as sent, escapes included: take as many as fit once escaped.
        chunk, end = b"", offset
        while end < len(self._xml) and len(chunk) < length:
            piece = escape(self._xml[end : end + 1])
            if len(chunk) + len(piece) > length:
                break
            chunk += piece
            end += 1
        return (b"l" if end >= len(self._xml) else b"m") + chunk

    def _monitor(self, hex_text: str) -> list[bytes]:
        line = hex_bytes(hex_text).decode("utf-8", "replace")
        reply = run_monitor(self.timeline, line)
        return [*console(reply.text), OK if reply.ok else ERROR]

    # -- state -------------------------------------------------------------------------
    def _register(self, args: str) -> bytes:
        number = parse_hex(args)
        if number >= len(gdbtarget.REGISTERS):
            return ERROR
        return gdbtarget.encode_register(self.timeline.registers(), number).encode()

    def _read_memory(self, args: str) -> bytes:
        addr_text, comma, length_text = args.partition(",")
        if not comma:
            raise PacketError("m wants ADDR,LENGTH")
        addr, length = parse_hex(addr_text), parse_hex(length_text)
        length = min(length, MAX_READ, (1 << 64) - addr)
        try:
            return self.timeline.read_memory(addr, length).hex().encode()
        except TimelineError:
            pass
        data = b""
        while len(data) < length:  # the readable start of the range, a page at a time
            at = addr + len(data)
            size = min(length - len(data), PAGE - at % PAGE)
            try:
                data += self.timeline.read_memory(at, size)
            except TimelineError:
                break
        return data.hex().encode() if data else MEMORY_ERROR

    # -- breakpoints and watchpoints ---------------------------------------------------
    def _point(self, text: str) -> bytes:
        insert = text[0] == "Z"
        fields = text[1:].split(";", 1)[0].split(",")  # ";cond..." and ";cmds..." are not offered, so ignored
        if len(fields) != 3:
            raise PacketError("Z/z wants TYPE,ADDR,KIND")
        ztype, addr, size = fields[0], parse_hex(fields[1]), parse_hex(fields[2])
        if ztype in ("0", "1"):
            kind = int(ztype)
            kinds = self._breakpoints.setdefault(addr, set())
            if insert:
                if not kinds:
                    self.timeline.add_breakpoint(addr)
                kinds.add(kind)
            else:
                kinds.discard(kind)
                if not kinds:
                    del self._breakpoints[addr]
                    self.timeline.remove_breakpoint(addr)
            return OK
        if ztype in _WATCH_PACKETS:
            key = (_WATCH_PACKETS[ztype], addr, size)
            if size < 1 or addr + size > 1 << 64:
                return ERROR
            if insert:
                if not self._watchpoints[key]:
                    self.timeline.add_watchpoint(*key)
                self._watchpoints[key] += 1
            elif self._watchpoints[key]:
                self._watchpoints[key] -= 1
                if not self._watchpoints[key]:
                    del self._watchpoints[key]
                    self.timeline.remove_watchpoint(*key)
            return OK
        return EMPTY  # another kind of point: not supported

    # -- moving ----------------------------------------------------------------------------
    def _resume_legacy(self, text: str, interrupt: threading.Event | None) -> list[bytes]:
        """`c`, `s` and their signal forms (`C05`, `S05;ADDR`); the signal is not delivered (nothing is)."""
        action, rest = text[0].lower(), text[1:]
        if text[0] in "CS":
            signal, _, rest = rest.partition(";")
            parse_hex(signal, limit=256)
        if rest and parse_hex(rest) != self.timeline.pc:
            return [ERROR]  # resuming somewhere else would write the pc
        return self._resume(action, reverse=False, interrupt=interrupt)

    def _v_packet(self, text: str, interrupt: threading.Event | None) -> list[bytes]:
        if text == "vCont?":
            return [b"vCont;c;C;s;S"]
        if text.startswith("vCont;"):
            for action in text.removeprefix("vCont;").split(";"):
                verb, _, thread = action.partition(":")
                if thread not in _OUR_THREADS:
                    continue
                if verb[:1] in ("c", "s") and len(verb) == 1:
                    return self._resume(verb, reverse=False, interrupt=interrupt)
                if verb[:1] in ("C", "S"):
                    parse_hex(verb[1:], limit=256)
                    return self._resume(verb[0].lower(), reverse=False, interrupt=interrupt)
                return [ERROR]  # an action we did not offer (t, r)
            return [ERROR]  # nothing for our thread to do
        if text.startswith("vKill"):
            self.ended = KILLED
            return [OK]
        return [EMPTY]  # vMustReplyEmpty, vFile, vRun, vAttach...

    def _resume(self, action: str, *, reverse: bool, interrupt: threading.Event | None) -> list[bytes]:
        tl = self.timeline
        if action == "s":
            stop = tl.reverse_step() if reverse else tl.step()
        else:
            stop = tl.reverse_cont(interrupt) if reverse else tl.cont(interrupt)
        out = self._divergence(stop.divergence)
        self._last_reply = self._stop_reply(stop)
        return [*out, self._last_reply]

    def _divergence(self, div: Divergence | None) -> list[bytes]:
        """A divergence is told once, to gdb's console and to `on_message` (the server's stderr)."""
        if div is None:
            return []
        key = (div.checkpoint, div.icount, div.what)
        if key == self._reported:
            return []
        self._reported = key
        if self.on_message is not None:
            self.on_message(div.report())
        return console(f"rrtool: the replay diverged from its recording: {div}\n")

    def _stop_reply(self, stop: Stop) -> bytes:
        signal = SIGINT if stop.reason == INTERRUPTED else SIGTRAP
        parts = []
        if stop.reason == BREAKPOINT:
            kinds = self._breakpoints.get(stop.pc, set())
            if 0 in kinds and "swbreak" in self._gdb_features:
                parts.append("swbreak:")
            elif 1 in kinds and "hwbreak" in self._gdb_features:
                parts.append("hwbreak:")
        elif stop.reason in WATCH_KINDS.values() and stop.address is not None:
            parts.append(f"{stop.reason}:{stop.address:x}")
        elif stop.reason == BEGIN:
            parts.append("replaylog:begin")
        elif stop.reason == END:
            parts.append("replaylog:end")
        parts.append(f"thread:{THREAD:x}")
        return (f"T{signal:02x}" + "".join(f"{part};" for part in parts)).encode()


__all__ = ["DETACHED", "KILLED", "MAX_READ", "PACKET_SIZE", "GdbSession", "console"]
