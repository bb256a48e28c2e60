"""The `events` table: one row per nondeterministic input, deterministic output or checkpoint.

One wide table with typed, nullable columns per kind (rather than one table
per kind) keeps the trace a single ordered stream: replay consumes it in `seq`
order, and a checkpoint's events always sit between its row and the next
checkpoint's row. Columns a kind does not use are null, which Arrow stores as
a validity bit and zstd squeezes to almost nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from rrtool.schemas.names import *  # noqa: F403  (the vocabulary, re-exported: see names.py)
from rrtool.schemas.names import FORMAT_VERSION, META_FORMAT_VERSION


@dataclass(frozen=True)
class Column:
    """A column of the events table with the sentence that documents it."""

    name: str
    type: pa.DataType
    doc: str
    nullable: bool = True


_DICT = pa.dictionary(pa.int8(), pa.string())

COLUMNS: tuple[Column, ...] = (
    Column("seq", pa.int64(), "Position of the event in the trace, from 0, without gaps.", False),
    Column(
        "checkpoint", pa.int64(), "Id of the checkpoint the event belongs to (the last one at or before it).", False
    ),
    Column("icount", pa.int64(), "Guest instructions retired when the event happened (exact).", False),
    Column("vclock_ns", pa.int64(), "Virtual clock in ns: icount * ns_per_insn plus all clock warps so far.", False),
    Column(
        "kind",
        _DICT,
        "Event kind: checkpoint, clock_warp, rtc_read, rng_read, console_in, console_out, irq, blk_submit, "
        "blk_complete, net_rx, net_tx, net_drop, syscall.",
        False,
    ),
    Column(
        "device",
        _DICT,
        "Device the event belongs to (machine, clock, rtc, rng, console, intc, block, net0-3; linux, stdout, stderr).",
        False,
    ),
    Column(
        "cp_kind",
        _DICT,
        "checkpoint: why it happened (init, periodic, timer, interrupt, warp_start, warp_account, reset, end, io).",
    ),
    Column("pc", pa.uint64(), "checkpoint, irq: guest RIP at that point (for irq, the interrupted RIP)."),
    Column("reg_digest", pa.uint64(), "checkpoint: xxh3-64 of the CPU registers."),
    Column(
        "dev_digest",
        pa.uint64(),
        "checkpoint: xxh3-64 of every unit's name and state in registry order (the machine's shape, the core "
        "clock, then the platform's devices).",
    ),
    Column(
        "mem_digest", pa.uint64(), "checkpoint: xxh3-64 of guest RAM; only at the memory digest cadence and at end."
    ),
    Column(
        "warp_ns",
        pa.int64(),
        "clock_warp: virtual ns the clock jumped while the CPU slept.",
    ),
    Column(
        "value",
        pa.uint64(),
        "rtc_read: host wall time in ns since the epoch; rng_read: the 32 random bits; "
        "irq: the pending-and-enabled line mask delivered; checkpoint end: the guest exit code, if any; "
        "syscall: xxh3-64 of `data` as the host returned it (an edited result diverges at its call); "
        "sched: the task that runs next.",
    ),
    Column(
        "data",
        pa.large_binary(),
        "console_in, console_out: the bytes; blk_complete: the data read (or written, when asked); "
        "net_rx, net_tx, net_drop: the Ethernet frame; syscall: the bytes the host gave the program (read data, "
        "a stat buffer, a directory listing, a clock value, random bytes), or written data with --log-write-data.",
    ),
    Column("req_id", pa.int64(), "blk_submit, blk_complete: the request's tag, unique among requests in flight."),
    Column("op", _DICT, "blk_submit, blk_complete: read, write, flush or invalid."),
    Column("sector", pa.int64(), "blk_submit, blk_complete: first 512-byte sector."),
    Column("sectors", pa.int32(), "blk_submit, blk_complete: number of sectors."),
    Column("status", pa.int32(), "blk_complete: 0 ok, else an error status given to the guest; net_drop: reason code."),
    Column("order", pa.int64(), "blk_complete: completion order, from 0, as the host backend finished requests."),
    Column(
        "data_digest",
        pa.uint64(),
        "blk_submit of a write, syscall writing data: xxh3-64 of the data written (compared in replay).",
    ),
    Column(
        "length",
        pa.int32(),
        "net_rx, net_tx, net_drop: frame length in bytes; block: bytes transferred; syscall: bytes the program "
        "passed out (written, sent); sched: the time slice the next task gets, in instructions.",
    ),
    Column("card", pa.int16(), "net_rx, net_tx, net_drop: network card index (also in `device` as net<N>)."),
    Column(
        "flags",
        pa.int32(),
        "net_rx, net_tx: frame flags (0 for ordinary frames); blk_complete: the device's reset "
        "generation the request was submitted in (completions from before a guest reset are ignored).",
    ),
    Column("text", pa.string(), "checkpoint end: how the run ended (exit, fault, limit, timeout, interrupted); "
           "sched: why the scheduler decided (the task blocked, exited, its slice ended, a task became ready)."),
    Column(
        "host_ns",
        pa.int64(),
        "checkpoint: host monotonic time in ns since the start of the recording "
        "(nondeterministic, for analysis only; replay ignores it).",
    ),
    Column("sysno", pa.int32(), "syscall: the x86-64 system call number (RAX at the `syscall` instruction)."),
    Column("syscall", pa.string(), "syscall: its name (`unknown_<N>` for a number Linux does not define)."),
    Column("args", pa.list_(pa.uint64()), "syscall: the six argument registers (RDI, RSI, RDX, R10, R8, R9)."),
    Column("ret", pa.int64(), "syscall: the result the program got in RAX; -4095..-1 is -errno."),
    Column("path", pa.string(), "syscall: the path argument as the program passed it (the first, for two)."),
    Column("fd", pa.int32(), "syscall: the file descriptor argument, or the new descriptor an open returned."),
    Column(
        "task",
        pa.int32(),
        "Linux: the task (thread id) the row belongs to: the one running at a system call, a console write or "
        "a checkpoint; sched: the task that ran until this decision. Null on the board.",
    ),
)

EVENTS_SCHEMA = pa.schema([pa.field(c.name, c.type, nullable=c.nullable) for c in COLUMNS])
COLUMN_NAMES = tuple(c.name for c in COLUMNS)


def schema_with_metadata(metadata: dict[str, str]) -> pa.Schema:
    """The events schema carrying a trace's file metadata (format version always included)."""
    meta = {META_FORMAT_VERSION: str(FORMAT_VERSION), **metadata}
    return EVENTS_SCHEMA.with_metadata({k.encode(): v.encode() for k, v in meta.items()})
