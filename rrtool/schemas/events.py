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
FORMAT_VERSION = 1

#: Event kinds (the `kind` column).
KIND_CHECKPOINT = "checkpoint"
KIND_CLOCK_WARP = "clock_warp"
KIND_RTC_READ = "rtc_read"
KIND_RNG_READ = "rng_read"
KIND_CONSOLE_IN = "console_in"
KIND_CONSOLE_OUT = "console_out"
KIND_IRQ = "irq"

#: Every value the dictionary-encoded columns may hold, in a fixed order: an Arrow IPC file
#: allows one dictionary per field, so every batch must carry the same one.
KINDS = (KIND_CHECKPOINT, KIND_CLOCK_WARP, KIND_RTC_READ, KIND_RNG_READ, KIND_CONSOLE_IN, KIND_CONSOLE_OUT, KIND_IRQ)
DEVICES = ("machine", "clock", "rtc", "rng", "console", "intc", "system", "block", "net0", "net1", "net2", "net3")

#: Kinds that come from the outside world at a checkpoint (applied after the checkpoint row).
ASYNC_KINDS = frozenset({KIND_CONSOLE_IN})
#: Kinds the machine produces by itself; replay recomputes and compares them.
DETERMINISTIC_KINDS = frozenset({KIND_CONSOLE_OUT, KIND_IRQ, KIND_CHECKPOINT})

#: Checkpoint kinds (the `cp_kind` column).
CP_INIT = "init"
CP_PERIODIC = "periodic"
CP_TIMER = "timer"
CP_INTERRUPT = "interrupt"
CP_WARP_START = "warp_start"
CP_WARP_ACCOUNT = "warp_account"
CP_RESET = "reset"
CP_END = "end"
CHECKPOINT_KINDS = (CP_INIT, CP_PERIODIC, CP_TIMER, CP_INTERRUPT, CP_WARP_START, CP_WARP_ACCOUNT, CP_RESET, CP_END)

#: The fixed dictionary of each dictionary-encoded column.
DICTIONARIES: dict[str, tuple[str, ...]] = {"kind": KINDS, "device": DEVICES, "cp_kind": CHECKPOINT_KINDS}


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
        "kind", _DICT, "Event kind: checkpoint, clock_warp, rtc_read, rng_read, console_in, console_out, irq.", False
    ),
    Column("device", _DICT, "Device the event belongs to (machine, clock, rtc, rng, console, intc).", False),
    Column(
        "cp_kind",
        _DICT,
        "checkpoint: why it happened (init, periodic, timer, interrupt, warp_start, warp_account, reset, end).",
    ),
    Column("pc", pa.uint64(), "checkpoint, irq: guest RIP at that point (for irq, the interrupted RIP)."),
    Column("reg_digest", pa.uint64(), "checkpoint: xxh3-64 of the CPU registers."),
    Column("dev_digest", pa.uint64(), "checkpoint: xxh3-64 of all device state."),
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
    Column("data", pa.large_binary(), "console_in, console_out: the bytes."),
    Column("text", pa.string(), "checkpoint end: how the run ended (exit, fault, limit, timeout, interrupted)."),
    Column(
        "host_ns",
        pa.int64(),
        "checkpoint: host monotonic time in ns since the start of the recording "
        "(nondeterministic, for analysis only; replay ignores it).",
    ),
)

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

#: Per-batch metadata keys: let a reader seek to a checkpoint without scanning.
BATCH_FIRST_CHECKPOINT = "first_checkpoint"
BATCH_LAST_CHECKPOINT = "last_checkpoint"
BATCH_FIRST_ICOUNT = "first_icount"
BATCH_LAST_ICOUNT = "last_icount"


def schema_with_metadata(metadata: dict[str, str]) -> pa.Schema:
    """The events schema carrying a trace's file metadata (format version always included)."""
    meta = {META_FORMAT_VERSION: str(FORMAT_VERSION), **metadata}
    return EVENTS_SCHEMA.with_metadata({k.encode(): v.encode() for k, v in meta.items()})
