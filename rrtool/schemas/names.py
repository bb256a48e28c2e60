"""The trace's vocabulary: event kinds, devices, checkpoint kinds, which columns each kind sets, metadata keys.

Plain Python constants, kept apart from the Arrow schema in `events` so that
what runs a guest (the machine and the board) never imports pyarrow: `rrtool
run` records nothing and starts faster without it. `events` re-exports every
name here, so readers and writers of traces use one module.
"""

from __future__ import annotations

#: Bump on any change to the columns below or to their meaning; readers refuse other versions.
FORMAT_VERSION = 7

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
KIND_SYSCALL = "syscall"  # the Linux platform: one row per system call
KIND_SCHED = "sched"  # the Linux platform: a scheduling decision (which task runs next, for how long)

#: Every value the dictionary-encoded columns may hold, in a fixed order: an Arrow IPC file
#: allows one dictionary per field, so every batch must carry the same one.
KINDS = (
    KIND_CHECKPOINT, KIND_CLOCK_WARP, KIND_RTC_READ, KIND_RNG_READ, KIND_CONSOLE_IN, KIND_CONSOLE_OUT, KIND_IRQ,
    KIND_BLK_SUBMIT, KIND_BLK_COMPLETE, KIND_NET_RX, KIND_NET_TX, KIND_NET_DROP, KIND_SYSCALL, KIND_SCHED,
)  # fmt: skip
#: The board's devices, then the Linux platform's: "linux" (its system calls), "stdout" and "stderr" (console output
#: per file descriptor).
DEVICES = (
    "machine", "clock", "rtc", "rng", "console", "intc", "system", "block", "net0", "net1", "net2", "net3",
    "linux", "stdout", "stderr",
)  # fmt: skip

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


#: Columns every row has (non-nullable above); the kind-specific ones follow in `KIND_FIELDS`.
CORE_FIELDS = ("seq", "checkpoint", "icount", "vclock_ns", "kind", "device")
#: Columns any kind may set: the task a row belongs to (null on the board, which has no tasks).
ANY_KIND_FIELDS = frozenset({"task"})

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
    KIND_SYSCALL: (frozenset({"sysno", "syscall", "args", "ret"}),
                   frozenset({"path", "fd", "data", "data_digest", "length", "value"})),
    KIND_SCHED: (frozenset({"task", "value", "length", "text"}), frozenset()),
}  # fmt: skip

#: The device(s) each kind comes from; a net kind's card is the digit in its device name.
KIND_DEVICES: dict[str, frozenset[str]] = {
    KIND_CHECKPOINT: frozenset({"machine"}),
    KIND_CLOCK_WARP: frozenset({"clock"}),
    KIND_RTC_READ: frozenset({"rtc"}),
    KIND_RNG_READ: frozenset({"rng"}),
    KIND_CONSOLE_IN: frozenset({"console"}),
    KIND_CONSOLE_OUT: frozenset({"console", "stdout", "stderr"}),
    KIND_IRQ: frozenset({"intc"}),
    KIND_BLK_SUBMIT: frozenset({"block"}),
    KIND_BLK_COMPLETE: frozenset({"block"}),
    KIND_NET_RX: frozenset(d for d in DEVICES if d.startswith("net")),
    KIND_NET_TX: frozenset(d for d in DEVICES if d.startswith("net")),
    KIND_NET_DROP: frozenset(d for d in DEVICES if d.startswith("net")),
    KIND_SYSCALL: frozenset({"linux"}),
    KIND_SCHED: frozenset({"linux"}),
}

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
