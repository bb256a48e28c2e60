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

#: Bump on any change to the columns below or to their meaning; readers refuse other versions.
FORMAT_VERSION = 5

#: Event kinds (the `kind` column).
KIND_CHECKPOINT = "checkpoint"
KIND_CLOCK_WARP = "clock_warp"
KIND_RTC_READ = "rtc_read"
KIND_RNG_READ = "rng_read"
KIND_CONSOLE_IN = "console_in"
KIND_CONSOLE_OUT = "console_out"
KIND_IRQ = "irq"
KIND_BLK_SUBMIT = "blk_submit"
KIND_BLK_COMPLETE = "blk_complete"
KIND_NET_RX = "net_rx"
KIND_NET_TX = "net_tx"
KIND_NET_DROP = "net_drop"

#: Every value the dictionary-encoded columns may hold, in a fixed order: an Arrow IPC file
#: allows one dictionary per field, so every batch must carry the same one.
KINDS = (
    KIND_CHECKPOINT, KIND_CLOCK_WARP, KIND_RTC_READ, KIND_RNG_READ, KIND_CONSOLE_IN, KIND_CONSOLE_OUT, KIND_IRQ,
    KIND_BLK_SUBMIT, KIND_BLK_COMPLETE, KIND_NET_RX, KIND_NET_TX, KIND_NET_DROP,
)  # fmt: skip
DEVICES = ("machine", "clock", "rtc", "rng", "console", "intc", "system", "block", "net0", "net1", "net2", "net3")

#: Block operations (the `op` column).
BLOCK_OPS = ("read", "write", "flush", "invalid")

#: Checkpoint kinds (the `cp_kind` column).
CP_INIT = "init"
CP_PERIODIC = "periodic"
CP_TIMER = "timer"
CP_INTERRUPT = "interrupt"
CP_WARP_START = "warp_start"
CP_WARP_ACCOUNT = "warp_account"
CP_IO = "io"  # a timed host source (a pcap replayed in virtual time) was due
CP_RESET = "reset"
CP_END = "end"
CHECKPOINT_KINDS = (
    CP_INIT, CP_PERIODIC, CP_TIMER, CP_INTERRUPT, CP_WARP_START, CP_WARP_ACCOUNT, CP_RESET, CP_END, CP_IO,
)  # fmt: skip

#: The fixed dictionary of each dictionary-encoded column.
DICTIONARIES: dict[str, tuple[str, ...]] = {
    "kind": KINDS,
    "device": DEVICES,
    "cp_kind": CHECKPOINT_KINDS,
    "op": BLOCK_OPS,
}


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
        "blk_complete, net_rx, net_tx, net_drop.",
        False,
    ),
    Column(
        "device", _DICT, "Device the event belongs to (machine, clock, rtc, rng, console, intc, block, net0-3).", False
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
        "checkpoint: xxh3-64 of every unit's name and state in registry order (the core clock, then the "
        "platform's devices).",
    ),
    Column(
        "mem_digest", pa.uint64(), "checkpoint: xxh3-64 of guest RAM; only at the memory digest cadence and at end."
    ),
    Column("warp_ns", pa.int64(), "clock_warp: virtual ns the clock jumped while the CPU slept."),
    Column(
        "value",
        pa.uint64(),
        "rtc_read: host wall time in ns since the epoch; rng_read: the 32 random bits; "
        "irq: the pending-and-enabled line mask delivered; checkpoint end: the guest exit code, if any.",
    ),
    Column(
        "data",
        pa.large_binary(),
        "console_in, console_out: the bytes; blk_complete: the data read (or written, when asked); "
        "net_rx, net_tx, net_drop: the Ethernet frame.",
    ),
    Column("req_id", pa.int64(), "blk_submit, blk_complete: the request's tag, unique among requests in flight."),
    Column("op", _DICT, "blk_submit, blk_complete: read, write, flush or invalid."),
    Column("sector", pa.int64(), "blk_submit, blk_complete: first 512-byte sector."),
    Column("sectors", pa.int32(), "blk_submit, blk_complete: number of sectors."),
    Column("status", pa.int32(), "blk_complete: 0 ok, else an error status given to the guest; net_drop: reason code."),
    Column("order", pa.int64(), "blk_complete: completion order, from 0, as the host backend finished requests."),
    Column("data_digest", pa.uint64(), "blk_submit of a write: xxh3-64 of the data written (compared in replay)."),
    Column("length", pa.int32(), "net_rx, net_tx, net_drop: frame length in bytes; block: bytes transferred."),
    Column("card", pa.int16(), "net_rx, net_tx, net_drop: network card index (also in `device` as net<N>)."),
    Column(
        "flags",
        pa.int32(),
        "net_rx, net_tx: frame flags (0 for ordinary frames); blk_complete: the device's reset "
        "generation the request was submitted in (completions from before a guest reset are ignored).",
    ),
    Column("text", pa.string(), "checkpoint end: how the run ended (exit, fault, limit, timeout, interrupted)."),
    Column(
        "host_ns",
        pa.int64(),
        "checkpoint: host monotonic time in ns since the start of the recording "
        "(nondeterministic, for analysis only; replay ignores it).",
    ),
)

#: Columns every row has (non-nullable above); the kind-specific ones follow in `KIND_FIELDS`.
CORE_FIELDS = ("seq", "checkpoint", "icount", "vclock_ns", "kind", "device")

#: Per kind: (columns that must be set, columns that may be set). Every other column is null.
#: The reader holds a trace to this, so a row cannot smuggle a value the player would use unchecked
#: (a `data` on an rtc_read) or lack one it needs (an rtc_read without `value`).
KIND_FIELDS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    KIND_CHECKPOINT: (frozenset({"cp_kind", "pc", "reg_digest", "dev_digest"}),
                      frozenset({"mem_digest", "text", "value", "host_ns"})),
    KIND_CLOCK_WARP: (frozenset({"warp_ns"}), frozenset()),
    KIND_RTC_READ: (frozenset({"value"}), frozenset()),
    KIND_RNG_READ: (frozenset({"value"}), frozenset()),
    KIND_CONSOLE_IN: (frozenset({"data"}), frozenset()),
    KIND_CONSOLE_OUT: (frozenset({"data"}), frozenset()),
    KIND_IRQ: (frozenset({"pc", "value"}), frozenset()),
    KIND_BLK_SUBMIT: (frozenset({"req_id", "op"}),
                      frozenset({"sector", "sectors", "status", "length", "data_digest"})),
    KIND_BLK_COMPLETE: (frozenset({"req_id", "op", "sector", "sectors", "status", "order", "length", "flags"}),
                        frozenset({"data"})),
    KIND_NET_RX: (frozenset({"card", "data", "length", "flags"}), frozenset()),
    KIND_NET_TX: (frozenset({"card", "data", "length", "flags"}), frozenset()),
    KIND_NET_DROP: (frozenset({"card", "length", "status"}), frozenset({"data"})),  # no data: an empty frame
}  # fmt: skip

#: The device(s) each kind comes from; a net kind's card is the digit in its device name.
KIND_DEVICES: dict[str, frozenset[str]] = {
    KIND_CHECKPOINT: frozenset({"machine"}),
    KIND_CLOCK_WARP: frozenset({"clock"}),
    KIND_RTC_READ: frozenset({"rtc"}),
    KIND_RNG_READ: frozenset({"rng"}),
    KIND_CONSOLE_IN: frozenset({"console"}),
    KIND_CONSOLE_OUT: frozenset({"console"}),
    KIND_IRQ: frozenset({"intc"}),
    KIND_BLK_SUBMIT: frozenset({"block"}),
    KIND_BLK_COMPLETE: frozenset({"block"}),
    KIND_NET_RX: frozenset(d for d in DEVICES if d.startswith("net")),
    KIND_NET_TX: frozenset(d for d in DEVICES if d.startswith("net")),
    KIND_NET_DROP: frozenset(d for d in DEVICES if d.startswith("net")),
}

EVENTS_SCHEMA = pa.schema([pa.field(c.name, c.type, nullable=c.nullable) for c in COLUMNS])
COLUMN_NAMES = tuple(c.name for c in COLUMNS)

#: File-level metadata keys (schema metadata of the Arrow file).
META_FORMAT_VERSION = "rrtool.format_version"
META_TOOL_VERSION = "rrtool.tool_version"
META_MACHINE = "rrtool.machine"  # JSON: ram, ns_per_insn, checkpoint_every, mem_digest_every, ...
META_IMAGE_PATH = "rrtool.image_path"
META_IMAGE_SHA256 = "rrtool.image_sha256"
META_START_TIME = "rrtool.start_time"
META_HOST = "rrtool.host"
META_DISK = "rrtool.disk"  # JSON: path, sha256, size, writeback
META_NET = "rrtool.net"  # JSON: list of cards with their backend and MAC

#: Per-batch metadata keys: let a reader seek to a checkpoint without scanning.
BATCH_FIRST_CHECKPOINT = "first_checkpoint"
BATCH_LAST_CHECKPOINT = "last_checkpoint"
BATCH_FIRST_ICOUNT = "first_icount"
BATCH_LAST_ICOUNT = "last_icount"


def schema_with_metadata(metadata: dict[str, str]) -> pa.Schema:
    """The events schema carrying a trace's file metadata (format version always included)."""
    meta = {META_FORMAT_VERSION: str(FORMAT_VERSION), **metadata}
    return EVENTS_SCHEMA.with_metadata({k.encode(): v.encode() for k, v in meta.items()})
