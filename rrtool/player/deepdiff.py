"""`rrtool diff --deep`: the first instruction after which two replays of one guest image hold different states.

PANDA's `diverge.py`, automated. Two recordings of the same image whose events differ (one request's
value, an RNG value, a host's timing) run the same instructions until some input makes them part; the
question a person has is *which instruction* first saw a different machine, and what was different.

1. The logs narrow it down for free: every checkpoint row holds digests of the registers and the
   devices (and, at a cadence and at the end, of memory), taken *before* that checkpoint's inputs are
   applied. Rows are compared by id in order; the first that differs (or is missing on one side)
   bounds the search from above, the agreeing ones before it are candidates for a lower bound.
2. Two `Timeline`s (one replay each) then compare the *full* state at chosen icounts: the register
   file, the register, memory and device digests. A position N is "after everything at icount N"
   (`rrtool.player.timeline`), so a state at N+1 that differs from an equal one at N was made by the
   (N+1)-th instruction or by what the machine did at N+1 (a checkpoint's inputs, a read of a
   nondeterministic port). A logged digest that agrees does not prove the full state agrees (memory is
   logged only now and then), so the lower bound is confirmed by replay, going back over the agreeing
   checkpoints until one really is equal; then icounts are bisected between the bounds.
3. The boundary is confirmed (N equal, N+1 different, each sought afresh) and described: the
   instruction, the registers, the memory bytes and the devices that differ, why (the inputs at that
   icount, from the logs), and the checkpoints around it.

Bisection assumes that states which differed stay different. They need not: two paths can part and meet
again (a different value stored and later overwritten). Like PANDA's tool, this finds *a* boundary
between an equal and a different state, always a real one (both ends are replayed and compared), and it
is the first one whenever the states, once apart, stay apart: a parting that heals before the lower
bound (the last checkpoint whose full state is equal) or between two probes is not seen. A difference
that heals before any logged digest can show it is not seen at all; the result is then "no
difference", as the tests show with a stored RNG value that is overwritten at once.

Nothing here prints or changes a replay: the CLI (`rrtool.cli.diff`) renders the `DeepDiffResult`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from rrtool.player.timeline import DEFAULT_SNAPSHOT_MEMORY, DIVERGED, Timeline, TimelineError
from rrtool.schemas import events as ev
from rrtool.schemas.tracefile import TraceFile, open_tracefile

#: At most this many differing memory ranges are listed (all differing pages are counted).
MAX_RANGES = 64
#: Bytes of each side shown per range; `MemoryDifference.length` is the whole run.
MAX_SHOWN_BYTES = 64
#: Memory is compared in chunks of this size, then page by page inside a chunk that differs.
CHUNK = 1 << 20
PAGE = 4096
_BLOCK = 64  # inside a differing page, 64-byte slices are compared before single bytes

#: Kinds whose value is read by one instruction at its exact icount (the event's icount includes it).
READ_KINDS = frozenset({ev.KIND_RNG_READ, ev.KIND_RTC_READ, ev.KIND_CONSOLE_IN, ev.KIND_SYSCALL})
#: How a cause names what the instruction read.
_READ_NAMES = {ev.KIND_RNG_READ: "RNG value", ev.KIND_RTC_READ: "RTC value", ev.KIND_CONSOLE_IN: "console input",
               ev.KIND_SYSCALL: "system call result"}  # fmt: skip
#: Columns that say where a row sits in its file, or host time: never compared when looking for a cause.
_POSITION = ("seq", "checkpoint", "host_ns")

#: `progress(probes done, probes expected)`.
Progress = Callable[[int, int], None]


class DeepDiffError(Exception):
    """Two traces that cannot be compared this way (other images, a trace that does not replay); one line."""


@dataclass(frozen=True)
class RegisterDifference:
    name: str
    a: int
    b: int

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "a": self.a, "b": self.b}


@dataclass(frozen=True)
class MemoryDifference:
    """A run of differing bytes: `length` of them from `address`; `a`/`b` hold the first MAX_SHOWN_BYTES
    (None where that side has no memory mapped there: a Linux mapping only one process has)."""

    address: int
    length: int
    a: bytes | None
    b: bytes | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "length": self.length,
            "a": None if self.a is None else self.a.hex(),
            "b": None if self.b is None else self.b.hex(),
            "truncated": self.length > MAX_SHOWN_BYTES,
        }


@dataclass(frozen=True)
class CheckpointPair:
    """The same moment's checkpoint in each trace: ids may differ once one trace has had more checkpoints."""

    a: int | None
    b: int | None
    icount_a: int | None = None
    icount_b: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "icount_a": self.icount_a, "icount_b": self.icount_b}


@dataclass
class DeepDiffResult:
    """What `deep_diff` found. With `found`, `icount` is the first position whose state differs: the
    `icount`-th instruction (at `pc`, disassembled as `instruction`) ran from equal states, and after it
    (and after what the machine did at that icount, see `cause`) the states differ."""

    a: str
    b: str
    found: bool
    icount: int | None = None
    pc: int | None = None
    instruction: str | None = None
    cause: str | None = None
    #: "read" (the instruction read a different input), "input" (a checkpoint's inputs differ),
    #: "start" (the states differ from icount 0), "unexplained" (no input in the logs differs).
    cause_kind: str | None = None
    registers: list[RegisterDifference] = field(default_factory=list)
    memory: list[MemoryDifference] = field(default_factory=list)
    memory_pages: int = 0  # pages with a difference (all of them, also beyond the listed ranges)
    memory_more: bool = False  # more ranges differ than are listed
    devices: list[str] = field(default_factory=list)
    digests: dict[str, tuple[int, int]] = field(default_factory=dict)  # the ones that differ
    before: CheckpointPair | None = None  # the last checkpoint at or before icount - 1
    after: CheckpointPair | None = None  # the first at or after icount
    logged: str | None = None  # what the logs alone said
    probes: int = 0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "different": self.found,
            "icount": self.icount,
            "pc": self.pc,
            "instruction": self.instruction,
            "cause": self.cause,
            "cause_kind": self.cause_kind,
            "registers": [r.to_dict() for r in self.registers],
            "memory": [m.to_dict() for m in self.memory],
            "memory_pages": self.memory_pages,
            "memory_more": self.memory_more,
            "devices": self.devices,
            "digests": {k: {"a": va, "b": vb} for k, (va, vb) in self.digests.items()},
            "checkpoint_before": None if self.before is None else self.before.to_dict(),
            "checkpoint_after": None if self.after is None else self.after.to_dict(),
            "logged": self.logged,
            "probes": self.probes,
            "notes": self.notes,
        }


# ---------------------------------------------------------------- the logs
@dataclass(frozen=True)
class _Cp:
    id: int
    icount: int
    kind: str
    pc: int
    reg: int
    dev: int
    mem: int | None


def _checkpoints(trace: TraceFile) -> list[_Cp]:
    """Every checkpoint row of `trace`, in order (one batch decompressed at a time)."""
    cps: list[_Cp] = []
    for batch in trace.batches():
        rows = batch.filter(pc.equal(batch.column("kind").cast(pa.string()), ev.KIND_CHECKPOINT))
        cols = rows.select(["checkpoint", "icount", "cp_kind", "pc", "reg_digest", "dev_digest", "mem_digest"])
        for r in cols.to_pylist():
            cps.append(_Cp(r["checkpoint"], r["icount"], str(r["cp_kind"]), r["pc"], r["reg_digest"],
                           r["dev_digest"], r["mem_digest"]))  # fmt: skip
    return cps


def _disagreement(x: _Cp, y: _Cp) -> list[str]:
    """What differs between two checkpoint rows of the same id (mem_digest only when both logged it)."""
    fields = [name for name, va, vb in (("icount", x.icount, y.icount), ("cp_kind", x.kind, y.kind),
                                         ("pc", x.pc, y.pc), ("reg_digest", x.reg, y.reg),
                                         ("dev_digest", x.dev, y.dev)) if va != vb]  # fmt: skip
    if x.mem is not None and y.mem is not None and x.mem != y.mem:
        fields.append("mem_digest")
    return fields


def _rows_at(trace: TraceFile, icount: int) -> list[dict[str, Any]]:
    """Every row logged at exactly `icount`, in order; only the batches whose range holds it are read."""
    rows: list[dict[str, Any]] = []
    for info in trace.batch_index():
        if info.rows and info.first_icount <= icount <= info.last_icount:
            batch = trace.batch(info.index)[0]
            rows.extend(batch.filter(pc.equal(batch.column("icount"), icount)).to_pylist())
    return rows


def _content(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if v is not None and k not in _POSITION}


def _machine_differences(ta: TraceFile, tb: TraceFile) -> list[str]:
    ma, mb = ta.machine, tb.machine
    return [k for k in sorted(set(ma) | set(mb)) if ma.get(k) != mb.get(k)]


# --------------------------------------------------------------- the states
@dataclass(frozen=True)
class _State:
    registers: dict[str, int]
    reg: int
    mem: int
    dev: int


def _state(tl: Timeline) -> _State:
    return _State(tl.registers(), tl.register_digest(), tl.memory_digest(), tl.device_digest())


class _Prober:
    """Both timelines moved to one icount and their full states compared; counts the probes."""

    def __init__(self, a: Timeline, b: Timeline, progress: Progress | None) -> None:
        self.a, self.b = a, b
        self.probes = 0
        self.expected = 8
        self._progress = progress

    def seek(self, icount: int) -> None:
        for tl in (self.a, self.b):
            try:
                stop = tl.seek(icount)
            except TimelineError as exc:
                raise DeepDiffError(f"{tl.path}: {exc}") from None
            if stop.reason == DIVERGED:
                raise DeepDiffError(f"{tl.path} does not replay ({stop.divergence}): a deep diff needs traces that do")
            if stop.icount != icount:
                raise DeepDiffError(f"{tl.path}: replay ended at icount {stop.icount:,} before {icount:,}")

    def finish(self) -> None:
        if self._progress is not None:
            self._progress(self.probes, self.probes)

    def differs(self, icount: int) -> bool:
        self.seek(icount)
        self.probes += 1
        if self._progress is not None:
            self._progress(self.probes, max(self.expected, self.probes))
        return _state(self.a) != _state(self.b)


def _union(*lists: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Page-aligned union of ranges, sorted and merged."""
    spans = sorted((s // PAGE * PAGE, -(-e // PAGE) * PAGE) for ranges in lists for s, e in ranges if e > s)
    merged: list[tuple[int, int]] = []
    for s, e in spans:
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], e))
        else:
            merged.append((s, e))
    return merged


def _read(tl: Timeline, addr: int, length: int) -> bytes | None:
    try:
        return tl.read_memory(addr, length)
    except TimelineError:
        return None


def _chunks(a: Timeline, b: Timeline) -> Iterator[tuple[int, bytes | None, bytes | None]]:
    for start, end in _union(a.guest_ranges(), b.guest_ranges()):
        for addr in range(start, end, CHUNK):
            n = min(CHUNK, end - addr)
            ca, cb = _read(a, addr, n), _read(b, addr, n)
            if ca is not None and ca == cb:
                continue
            if ca is not None and cb is not None:
                yield addr, ca, cb
                continue
            # Not readable whole on one side or both (a Linux mapping starts or ends inside the chunk):
            # page by page, so what is mapped on either side is compared.
            for p in range(addr, addr + n, PAGE):
                yield p, _read(a, p, PAGE), _read(b, p, PAGE)


def _differing_bytes(pa_: bytes, pb: bytes) -> Iterator[int]:
    """Offsets where two equal-length pages differ: 64-byte slices compared in C, single bytes only inside."""
    for off in range(0, len(pa_), _BLOCK):
        sa, sb = pa_[off : off + _BLOCK], pb[off : off + _BLOCK]
        if sa != sb:
            for i, (x, y) in enumerate(zip(sa, sb, strict=True)):
                if x != y:
                    yield off + i


def memory_differences(a: Timeline, b: Timeline) -> tuple[list[MemoryDifference], int, bool]:
    """(the first MAX_RANGES runs of differing bytes, pages that differ, whether more runs differ).

    Chunks of a megabyte are compared first (a memcmp: cheaper than hashing and exact), then the pages
    of a chunk that differs; bytes are only looked at one by one inside a 64-byte slice that differs.
    """
    runs: list[tuple[int, int]] = []  # [start, end) of each run, in address order
    pages = 0
    more = False
    for base, ca, cb in _chunks(a, b):
        size = len(ca) if ca is not None else len(cb) if cb is not None else 0
        for off in range(0, size, PAGE):
            pga = None if ca is None else ca[off : off + PAGE]
            pgb = None if cb is None else cb[off : off + PAGE]
            if pga == pgb:
                continue
            pages += 1
            if more:
                continue
            offsets = range(PAGE) if pga is None or pgb is None else _differing_bytes(pga, pgb)
            for i in offsets:
                at = base + off + i
                if runs and runs[-1][1] == at:
                    runs[-1] = (runs[-1][0], at + 1)
                elif len(runs) == MAX_RANGES:
                    more = True
                    break
                else:
                    runs.append((at, at + 1))
    out = []
    for start, end in runs:
        n = min(end - start, MAX_SHOWN_BYTES)
        out.append(MemoryDifference(start, end - start, _read(a, start, n), _read(b, start, n)))
    return out, pages, more


def register_differences(a: Timeline, b: Timeline) -> list[RegisterDifference]:
    ra, rb = a.registers(), b.registers()
    return [RegisterDifference(name, ra[name], rb.get(name, 0)) for name in ra if ra[name] != rb.get(name, 0)]


def device_differences(a: Timeline, b: Timeline) -> list[str]:
    """The units (devices, the clock, the machine's shape...) whose digested state differs."""
    sb = {unit.name: unit.state() for unit in b.machine.units}
    return [unit.name for unit in a.machine.units if unit.state() != sb.get(unit.name)]


# ------------------------------------------------------------------ search
def _cause(ta: TraceFile, tb: TraceFile, icount: int, async_kinds: frozenset[str]) -> tuple[str, str]:
    """Why the states part at `icount`, from the rows both logs hold there: (cause_kind, sentence)."""
    ra, rb = _rows_at(ta, icount), _rows_at(tb, icount)
    reads = [(x, y) for x, y in _pairs(ra, rb) if _kind(x, y) in READ_KINDS and _content_of(x) != _content_of(y)]
    if reads:
        x, y = reads[0]
        what = _READ_NAMES.get(_kind(x, y), _kind(x, y))
        return "read", f"the instruction read a different {what} ({_show(x)} in a, {_show(y)} in b)"
    cps_a = [r["checkpoint"] for r in ra if r["kind"] == ev.KIND_CHECKPOINT]
    cps_b = [r["checkpoint"] for r in rb if r["kind"] == ev.KIND_CHECKPOINT]
    applied = [(x, y) for x, y in _pairs(ra, rb)
               if _kind(x, y) in async_kinds and _content_of(x) != _content_of(y)]  # fmt: skip
    where = f"checkpoint {_ids(cps_a)} in a, {_ids(cps_b)} in b"
    if applied:
        kinds = ", ".join(dict.fromkeys(_kind(x, y) for x, y in applied))
        return "input", f"inputs applied at this checkpoint differ ({kinds}; {where})"
    if bool(cps_a) != bool(cps_b):
        return "input", f"inputs applied at this checkpoint differ (a checkpoint here in only one trace; {where})"
    return "unexplained", "no input logged at this icount differs (see the registers and memory below)"


def _pairs(ra: list[dict[str, Any]], rb: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any] | None, ...]]:
    """Rows of each side paired in order within each (kind, device) stream."""
    streams: dict[tuple[str, str], tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {}
    for side, rows in ((0, ra), (1, rb)):
        for r in rows:
            streams.setdefault((str(r["kind"]), str(r["device"])), ([], []))[side].append(r)
    for xs, ys in streams.values():
        for i in range(max(len(xs), len(ys))):
            yield (xs[i] if i < len(xs) else None, ys[i] if i < len(ys) else None)


def _kind(x: dict[str, Any] | None, y: dict[str, Any] | None) -> str:
    row = x if x is not None else y
    assert row is not None
    return str(row["kind"])


def _content_of(row: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if row is None else _content(row)


def _show(row: dict[str, Any] | None) -> str:
    if row is None:
        return "none"
    for col in ("value", "ret"):
        if row.get(col) is not None:
            return f"{col} {row[col]:#x}"
    if row.get("data") is not None:
        data: bytes = row["data"]
        return f"data {data[:16].hex()}{'…' if len(data) > 16 else ''}"
    return json.dumps(_content(row), default=str)[:60]


def _ids(ids: list[int]) -> str:
    return "/".join(map(str, ids)) if ids else "none"


def _bracket(cps: list[_Cp], icount: int) -> tuple[_Cp | None, _Cp | None]:
    before = after = None
    for cp in cps:
        if cp.icount < icount:
            before = cp
        elif after is None:
            after = cp
    return before, after


def _pair(x: _Cp | None, y: _Cp | None) -> CheckpointPair:
    return CheckpointPair(None if x is None else x.id, None if y is None else y.id,
                          None if x is None else x.icount, None if y is None else y.icount)  # fmt: skip


def deep_diff(
    a: Path,
    b: Path,
    *,
    progress: Progress | None = None,
    image_a: Path | None = None,
    image_b: Path | None = None,
    snapshot_memory: int = DEFAULT_SNAPSHOT_MEMORY,
) -> DeepDiffResult:
    """Find the first instruction after which replays of `a` and `b` hold different states (module docstring).

    Raises `DeepDiffError` for traces of different images or a trace that does not replay; a damaged
    trace is the reader's `TraceError`, a missing image the player's `ReplayError`.
    """
    result = DeepDiffResult(str(a), str(b), found=False)
    with open_tracefile(a) as ta, open_tracefile(b) as tb:
        sha_a, sha_b = ta.metadata.get(ev.META_IMAGE_SHA256), tb.metadata.get(ev.META_IMAGE_SHA256)
        if sha_a != sha_b:
            raise DeepDiffError(
                f"the traces were recorded from different guest images (sha256 {str(sha_a)[:12]}… and "
                f"{str(sha_b)[:12]}…): a deep diff compares two runs of one image"
            )
        cps_a, cps_b = _checkpoints(ta), _checkpoints(tb)
        common = min(len(cps_a), len(cps_b))
        k = next((i for i in range(common) if _disagreement(cps_a[i], cps_b[i])), None)
        if k is None and len(cps_a) == len(cps_b):
            result.logged = f"all {common:,} checkpoints agree"
            return result
        if k is not None:
            cpk, fields = cps_a[k], ", ".join(_disagreement(cps_a[k], cps_b[k]))
            result.logged = f"first differing checkpoint {k} ({cpk.kind}, icount {cpk.icount:,}): {fields}"
        else:
            shorter = "a" if len(cps_a) < len(cps_b) else "b"
            result.logged = f"{common:,} checkpoints agree; {shorter} ends there, the other goes on"
        with (
            _timeline(a, image_a, snapshot_memory) as tla,
            _timeline(b, image_b, snapshot_memory) as tlb,
        ):
            prober = _Prober(tla, tlb, progress)
            _search(result, ta, tb, cps_a, cps_b, k, prober)
            prober.finish()
    return result


def _timeline(path: Path, image: Path | None, snapshot_memory: int) -> Timeline:
    return Timeline(path, image=image, snapshot_memory=snapshot_memory)


def _search(
    result: DeepDiffResult,
    ta: TraceFile,
    tb: TraceFile,
    cps_a: list[_Cp],
    cps_b: list[_Cp],
    k: int | None,
    probe: _Prober,
) -> None:
    """Bound the first difference by checkpoints, bisect the icounts between, confirm and describe it."""
    limit = min(probe.a.last_icount, probe.b.last_icount)  # the furthest icount both replays reach
    agreeing = sorted({cp.icount for cp in cps_a[: len(cps_a) if k is None else k]} | {0})
    agreeing = [x for x in agreeing if x <= limit]
    uppers: set[int] = {limit}
    if k is not None:
        for cp in (cps_a[k], cps_b[k]):
            uppers |= {cp.icount, cp.icount - 1}  # its pre-input state differs: the instruction before or at it
    # Lower bound: the last agreeing checkpoint whose full state is equal (going back while they differ).
    lo: int | None = None
    hi: int | None = None
    probe.expected = 4 + int(math.log2(max(2, limit)))
    if not probe.differs(agreeing[-1]):
        lo = agreeing[-1]
    else:
        hi = agreeing[-1]
        if hi == 0 or probe.differs(0):
            hi = 0
        else:
            i, j = 0, len(agreeing) - 1  # equal at agreeing[i], different at agreeing[j]
            while j - i > 1:
                m = (i + j) // 2
                if probe.differs(agreeing[m]):
                    j = m
                else:
                    i = m
            lo, hi = agreeing[i], agreeing[j]
    if hi is None:
        assert lo is not None
        for x in sorted(u for u in uppers if lo < u <= limit):
            if probe.differs(x):
                hi = x
                break
        if hi is None:
            result.notes.append(
                f"the replayed states agree at every icount probed up to {limit:,}, the end both traces reach"
            )
            result.probes = probe.probes
            return
    if hi == 0:
        _describe_start(result, ta, tb, cps_a, cps_b, probe)
        return
    assert lo is not None
    probe.expected = probe.probes + int(math.log2(max(2, hi - lo))) + 4
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if probe.differs(mid):
            hi = mid
        else:
            lo = mid
    # Confirm, each end sought afresh: a timeline that did not reproduce a state would show here.
    if probe.differs(lo) or not probe.differs(hi):
        raise DeepDiffError(f"replaying icount {lo:,} and {hi:,} again gave other states than the bisection saw")
    _describe(result, ta, tb, cps_a, cps_b, probe, hi)


def _describe(
    result: DeepDiffResult,
    ta: TraceFile,
    tb: TraceFile,
    cps_a: list[_Cp],
    cps_b: list[_Cp],
    probe: _Prober,
    icount: int,
) -> None:
    """Fill in the boundary: states equal at icount - 1, different at `icount`."""
    probe.seek(icount - 1)
    result.pc = probe.a.pc
    shown = probe.a.disassemble(result.pc, 1)
    result.instruction = shown[0] if shown else f"{result.pc:#x}: <cannot decode>"
    result.cause_kind, result.cause = _cause(ta, tb, icount, probe.a.machine.units.async_kinds)
    _fill_state(result, probe, icount)
    ba, aa = _bracket(cps_a, icount)
    bb, ab = _bracket(cps_b, icount)
    result.before, result.after = _pair(ba, bb), _pair(aa, ab)


def _describe_start(
    result: DeepDiffResult, ta: TraceFile, tb: TraceFile, cps_a: list[_Cp], cps_b: list[_Cp], probe: _Prober
) -> None:
    """The states differ at icount 0, after the init checkpoint: no instruction made the difference."""
    keys = _machine_differences(ta, tb)
    result.cause_kind = "start"
    result.cause = "the states differ from the start, before any instruction" + (
        f" (the machine records differ: {', '.join(keys)})" if keys else " (the init checkpoint's inputs differ)"
    )
    probe.seek(0)
    result.pc = probe.a.pc
    _fill_state(result, probe, 0)
    result.before = None
    result.after = _pair(cps_a[0] if cps_a else None, cps_b[0] if cps_b else None)


def _fill_state(result: DeepDiffResult, probe: _Prober, icount: int) -> None:
    probe.seek(icount)
    a, b = probe.a, probe.b
    result.found = True
    result.icount = icount
    result.registers = register_differences(a, b)
    result.memory, result.memory_pages, result.memory_more = memory_differences(a, b)
    result.devices = device_differences(a, b)
    sa, sb = _state(a), _state(b)
    for name, va, vb in (("register", sa.reg, sb.reg), ("memory", sa.mem, sb.mem), ("device", sa.dev, sb.dev)):
        if va != vb:
            result.digests[name] = (va, vb)
    result.probes = probe.probes


__all__ = [
    "MAX_RANGES",
    "CheckpointPair",
    "DeepDiffError",
    "DeepDiffResult",
    "MemoryDifference",
    "RegisterDifference",
    "deep_diff",
    "device_differences",
    "memory_differences",
    "register_differences",
]
