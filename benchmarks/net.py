"""What does recording cost a network guest, next to a plain run of it?

The `netecho` guest echoes every UDP datagram to port 7 and halts between
frames. It runs with `user` networking and a hostfwd from a free port on
127.0.0.1 to its port 7, so an ordinary UDP socket in this process talks to
it: a client thread sends N datagrams of 64 bytes one at a time, waiting for
each echo before sending the next, and measures packets per second and the
round-trip time of each (median and 99th percentile). At the start it sends
probes with a 0.5 s timeout until the guest, still booting, answers; at the
end it sends QUIT, which the guest echoes and exits on. Every inbound frame
is an event the machine takes at a checkpoint, every echo a logged `net_tx`.

Measured in one process, interleaved: a plain live run (`live_machine` +
`Machine.run()`, as `rrtool run`), a recording (`rrtool.recorder.session.record`)
and a replay of that recording (`rrtool.player.session.replay`: no sockets,
no waiting, so its speed is packets in the trace / replay wall time).

Target: recording within 1.5x of a plain run in packets per second.

Traffic only ever goes to 127.0.0.1. ``--quick`` sends 300 datagrams
instead of 1500.

Each figure is the median of 5 repeats by default (not 3): the runs are
short and the client shares the machine's interpreter, so jitter is large.

Run: ``python benchmarks/net.py [--quick] [--repeats N] [--markdown] [--check]``.
"""

from __future__ import annotations

import gc
import re
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

import pyarrow.compute as pc
from _common import (
    environment_line,
    load_average,
    make_console,
    median,
    parse_args,
    repeat,
    show,
    spread,
    table_box,
    verdict,
)
from record_replay import status
from rich.table import Table

from rrtool.board.host import HostSetup, live_machine
from rrtool.board.net.spec import NetSpec
from rrtool.guest.build import ensure_example
from rrtool.machine.config import Limits, MachineConfig, RunResult
from rrtool.machine.port import EventPort
from rrtool.player.session import replay
from rrtool.recorder.session import record
from rrtool.schemas import events as ev
from rrtool.schemas.tracefile import open_tracefile

#: Target from the performance issue: record within this factor of run, in packets per second.
TARGET_RECORD_VS_RUN = 1.5

DATAGRAMS = 1500
QUICK_DATAGRAMS = 300
PAYLOAD_BYTES = 64
HOST = "127.0.0.1"  # the only address this script ever sends to
GUEST_PORT = 7

BOOT_TIMEOUT_S = 0.5  # per probe while the guest boots
BOOT_TRIES = 40
ECHO_TIMEOUT_S = 5.0  # an echo lost after boot is an error, not something to retry
MACHINE_TIMEOUT_S = 120.0  # so a lost client can never hang the benchmark
DEFAULT_REPEATS = 5

_ECHOED = re.compile(rb"netecho: (\d+) datagrams echoed")


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def payload(i: int) -> bytes:
    head = b"bench %06d " % i
    return head + b"x" * (PAYLOAD_BYTES - len(head))


class Client(threading.Thread):
    """Probes until the guest answers, then N timed echoes one at a time, then QUIT."""

    def __init__(self, port: int, count: int) -> None:
        super().__init__(name="bench-client", daemon=True)
        self.addr = (HOST, port)
        self.count = count
        self.probes = 0
        self.rtts_ns: list[int] = []
        self.elapsed_s = 0.0
        self.error: str | None = None

    def run(self) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            try:
                self._boot(sock)
                self._timed(sock)
            except Exception as exc:  # reported by the main thread
                self.error = f"{type(exc).__name__}: {exc}"
            finally:
                self._quit(sock)

    @staticmethod
    def _await(sock: socket.socket, message: bytes) -> bool:
        """Wait for the echo of `message`, skipping late echoes of earlier probes; False on a timeout."""
        try:
            while True:
                reply, _ = sock.recvfrom(2048)
                if reply == message:
                    return True
        except OSError:  # TimeoutError, or an ICMP error while nothing listens yet
            return False

    def _boot(self, sock: socket.socket) -> None:
        sock.settimeout(BOOT_TIMEOUT_S)
        for i in range(BOOT_TRIES):
            message = b"boot probe %d" % i
            self.probes += 1
            try:
                sock.sendto(message, self.addr)
            except OSError:
                time.sleep(BOOT_TIMEOUT_S)
                continue
            if self._await(sock, message):
                return
        raise TimeoutError(f"no echo after {BOOT_TRIES} probes")

    def _timed(self, sock: socket.socket) -> None:
        sock.settimeout(ECHO_TIMEOUT_S)
        messages = [payload(i) for i in range(self.count)]
        rtts = self.rtts_ns
        clock = time.perf_counter_ns
        start = clock()
        for message in messages:
            sent = clock()
            sock.sendto(message, self.addr)
            if not self._await(sock, message):
                raise TimeoutError(f"no echo of datagram {len(rtts)} within {ECHO_TIMEOUT_S} s")
            rtts.append(clock() - sent)
        self.elapsed_s = (clock() - start) / 1e9

    def _quit(self, sock: socket.socket) -> None:
        sock.settimeout(BOOT_TIMEOUT_S)
        for _ in range(10):
            try:
                sock.sendto(b"QUIT", self.addr)
            except OSError:
                return
            if self._await(sock, b"QUIT"):
                return


@dataclass(frozen=True)
class Sample:
    """One timed library call: wall seconds, what the client measured, what the trace holds."""

    wall_s: float
    echoed: int  # datagrams the guest echoed: timed ones, answered probes and QUIT
    pps: float = 0.0
    rtt_median_us: float = 0.0
    rtt_p99_us: float = 0.0
    events: int = 0
    net_rx: int = 0
    net_tx: int = 0
    checkpoints: int = 0
    batches: int = 0
    trace_bytes: int = 0
    verified: bool = True
    extra: dict[str, float] = field(default_factory=dict)


def echoed(label: str, run: RunResult | None) -> int:
    """Datagrams the guest says it echoed; any failure of the guest ends the benchmark."""
    if run is None or run.reason != "exit" or run.exit_code != 0:
        what = "no result" if run is None else f"{run.reason} (exit code {run.exit_code}): {run.message}"
        raise SystemExit(f"{label}: netecho did not finish cleanly: {what}")
    found = _ECHOED.search(run.output)
    if found is None:
        raise SystemExit(f"{label}: netecho printed no summary")
    return int(found.group(1))


class TraceStats(TypedDict, total=False):
    """What trace_stats counts: the trace fields of a Sample, passed on as keywords."""

    events: int
    net_rx: int
    net_tx: int
    checkpoints: int
    batches: int


def trace_stats(trace: Path) -> TraceStats:
    tf = open_tracefile(trace)
    table = tf.read_all()
    kinds = table["kind"]
    return {
        "events": table.num_rows,
        "net_rx": int(pc.sum(pc.equal(kinds, ev.KIND_NET_RX)).as_py() or 0),
        "net_tx": int(pc.sum(pc.equal(kinds, ev.KIND_NET_TX)).as_py() or 0),
        "checkpoints": int(pc.sum(pc.equal(kinds, ev.KIND_CHECKPOINT)).as_py() or 0),
        "batches": int(tf.num_batches),
    }


def time_live(label: str, image: Path, count: int, trace: Path | None) -> Sample:
    """A plain run (trace None) or a recording, with the client talking to the guest throughout."""
    port = free_udp_port()
    host = HostSetup(nets=(NetSpec.parse(f"user,hostfwd=udp:{HOST}:{port}-:{GUEST_PORT}", 0),))
    limits = Limits(timeout_s=MACHINE_TIMEOUT_S)
    client = Client(port, count)
    gc.collect()
    client.start()
    start = time.perf_counter()
    if trace is None:
        event_port = EventPort()
        try:
            machine = live_machine(image, MachineConfig(), event_port, host, limits=limits).machine
            result = machine.run()
        finally:
            event_port.close()
        nbytes = 0
    else:
        recording = record(image, trace, host=host, limits=limits)
        result, nbytes = recording.run, recording.bytes
    wall = time.perf_counter() - start
    client.join(timeout=10)
    if client.error is not None or client.is_alive():
        raise SystemExit(f"{label}: client failed: {client.error or 'still running'}")
    got = echoed(label, result)
    if got < count + 2:  # at least one probe, every timed datagram, QUIT
        raise SystemExit(f"{label}: the guest echoed {got} datagrams, the client sent {count} + probes + QUIT")
    rtts = sorted(client.rtts_ns)
    stats: TraceStats = trace_stats(trace) if trace is not None else {}
    return Sample(
        wall,
        got,
        pps=count / client.elapsed_s,
        rtt_median_us=statistics.median(rtts) / 1e3,
        rtt_p99_us=statistics.quantiles(rtts, n=100, method="inclusive")[98] / 1e3,
        trace_bytes=nbytes,
        extra={"probes": client.probes},
        **stats,
    )


def time_replay(label: str, trace: Path) -> Sample:
    """`rrtool replay` minus the CLI, of the trace the record step just wrote: no sockets, no waiting."""
    gc.collect()
    start = time.perf_counter()
    result = replay(trace)
    wall = time.perf_counter() - start
    if not result.verified:
        raise SystemExit(f"{label}: replay diverged: {result.divergence}")
    got = echoed(label, result.run)
    return Sample(wall, got, pps=got / wall, trace_bytes=trace.stat().st_size, verified=True, **trace_stats(trace))


def med(samples: Sequence[Sample], value: Callable[[Sample], float]) -> float:
    return median([float(value(s)) for s in samples])


def pps_range(samples: Sequence[Sample]) -> str:
    values = [s.pps for s in samples]
    return f"{min(values):,.0f}-{max(values):,.0f}"


def main() -> int:
    # Short, jittery runs: 5 repeats unless told otherwise, so the median holds.
    args = parse_args(__doc__.splitlines()[0] if __doc__ else "", ["--repeats", str(DEFAULT_REPEATS), *sys.argv[1:]])
    console = make_console(args.markdown)
    console.print(environment_line())
    count = QUICK_DATAGRAMS if args.quick else DATAGRAMS
    console.print(
        f"guest: netecho (bundled), user networking, hostfwd udp {HOST}:<free port> -> guest port {GUEST_PORT}; "
        f"{count:,} datagrams of {PAYLOAD_BYTES} bytes{' (--quick)' if args.quick else ''}, one at a time"
    )
    console.print(f"{args.repeats} run(s) of each configuration, interleaved, median shown")

    with tempfile.TemporaryDirectory(prefix="rrtool-bench-") as tmp:
        trace = Path(tmp) / "netecho.arrow"
        image = ensure_example("netecho")
        run, rec, rep = repeat(
            args.repeats,
            [
                lambda: time_live("run", image, count, None),
                lambda: time_live("record", image, count, trace),
                lambda: time_replay("replay", trace),
            ],
        )

    run_pps, rec_pps = med(run, lambda s: s.pps), med(rec, lambda s: s.pps)
    rep_pps = med(rep, lambda s: s.pps)
    timing = Table(title="netecho through user networking (median)", box=table_box(args.markdown))
    columns: tuple[str, ...]
    columns = ("configuration", "datagrams", "packets/s", "min-max", "vs run", "RTT median µs", "RTT p99 µs", "wall s")
    for name in columns:
        timing.add_column(name, justify="left" if name == "configuration" else "right")
    for label, samples, pps in (("run", run, run_pps), ("record", rec, rec_pps)):
        timing.add_row(
            label,
            f"{count:,}",
            f"{pps:,.0f}",
            pps_range(samples),
            f"{run_pps / pps:.2f}x",
            f"{med(samples, lambda s: s.rtt_median_us):.0f}",
            f"{med(samples, lambda s: s.rtt_p99_us):.0f}",
            f"{med(samples, lambda s: s.wall_s):.3f}",
        )
    timing.add_row(
        "replay (as replayed)",
        f"{med(rep, lambda s: s.echoed):,.0f}",
        f"{rep_pps:,.0f}",
        pps_range(rep),
        f"{run_pps / rep_pps:.2f}x",
        "",
        "",
        f"{med(rep, lambda s: s.wall_s):.3f}",
    )
    show(console, timing, args.markdown)
    console.print(
        "run, record: packets/s = timed datagrams / the client's time from the first send to the last echo; "
        "RTT per datagram, sendto to its echo. replay: every datagram the guest echoed (timed ones, boot probes "
        "that reached it, QUIT) / replay wall. vs run: run's packets/s / this row's. wall s: the whole library "
        f"call; for run and record it includes the guest's boot and usually one lost {BOOT_TIMEOUT_S} s probe "
        f"(median {med(run + rec, lambda s: s.extra['probes']):.0f} probe(s) sent)."
    )

    size = Table(title="trace (median of the recordings)", box=table_box(args.markdown))
    columns = ("events", "net_rx", "net_tx", "checkpoints", "batches", "trace bytes", "bytes / datagram")
    for name in ("recording", *columns):
        size.add_column(name, justify="left" if name == "recording" else "right")
    size.add_column("replays verified")
    nbytes = med(rec, lambda s: s.trace_bytes)
    size.add_row(
        f"netecho, {count:,} datagrams",
        f"{med(rec, lambda s: s.events):,.0f}",
        f"{med(rec, lambda s: s.net_rx):,.0f}",
        f"{med(rec, lambda s: s.net_tx):,.0f}",
        f"{med(rec, lambda s: s.checkpoints):,.0f}",
        f"{med(rec, lambda s: s.batches):,.0f}",
        f"{nbytes:,.0f}",
        f"{nbytes / med(rec, lambda s: s.echoed):.0f}",
        "yes" if all(s.verified for s in rep) else "[bold red]NO[/]",
    )
    show(console, size, args.markdown)
    console.print(
        "each recording (in order): packets/s "
        + ", ".join(f"{s.pps:,.0f}" for s in rec)
        + "; checkpoints "
        + ", ".join(f"{s.checkpoints:,}" for s in rec)
        + "; batches "
        + ", ".join(f"{s.batches:,}" for s in rec)
        + "; replay s "
        + ", ".join(f"{s.wall_s:.3f}" for s in rep)
    )
    console.print(
        "Each datagram is a net_rx event (the frame), a net_tx (the echo), a console line and the checkpoints "
        "around the guest's sleep."
    )

    targets = Table(title="targets", box=table_box(args.markdown))
    targets.add_column("target")
    targets.add_column("measured", justify="right")
    targets.add_column("limit", justify="right")
    targets.add_column("status")
    checks: list[bool] = []
    ratio = run_pps / rec_pps
    noise = max(spread([s.pps for s in run]), spread([s.pps for s in rec]))
    text, ok = status(ratio, TARGET_RECORD_VS_RUN, noise)
    checks.append(ok)
    targets.add_row("record / run, packets per second", f"{ratio:.2f}x", f"<= {TARGET_RECORD_VS_RUN:g}x", text)
    checks.append(all(s.verified for s in rep))
    targets.add_row("every replay verified", "", "", verdict(checks[-1]))
    show(console, targets, args.markdown)
    console.print(f"load average {load_average():.2f} at end")
    return 1 if args.check and not all(checks) else 0


if __name__ == "__main__":
    sys.exit(main())
