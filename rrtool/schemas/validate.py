"""Checking a trace before anything trusts it: the Arrow structure, the columns, and the order of the rows.

A trace is hostile input. Arrow's C++ reader trusts what it decodes (a
flipped length can abort the process), Polars and DuckDB scan the file with
readers of their own, and the player takes values from the rows as given.
So every batch is checked here before use, in three layers:

1. Arrow: ``validate(full=True)`` (offsets, dictionary indices, UTF-8) and a
   schema equal to `EVENTS_SCHEMA`, field for field.
2. The contract of `rrtool.schemas.events`: the fixed dictionaries, no nulls
   in the core columns, each kind's columns set and all others null
   (`KIND_FIELDS`), each kind from its device (`KIND_DEVICES`), and a batch's
   index metadata equal to what the batch holds.
3. Order (`RowOrder`, fed the batches in file order): ``seq`` from 0 without
   gaps, checkpoint ids from 0 without gaps with every other row belonging to
   the newest checkpoint, icount and virtual time never going backwards,
   nothing after the end checkpoint.

The checks are vectorised (pyarrow.compute over whole columns), so they cost
a few milliseconds per batch of 65,536 rows. What only replay can judge (a
digest, an input the machine did not ask for) stays with the player.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from rrtool.schemas import events as ev

__all__ = [
    "ARROW_ERRORS",
    "RowOrder",
    "TraceError",
    "check_batch",
    "check_schema",
    "decode_file_metadata",
    "first_line",
    "parse_batch_meta",
]


class TraceError(Exception):
    """The file cannot be read as a trace; the message is one line for the user."""


#: Exceptions pyarrow raises on bytes it cannot decode (ArrowInvalid, ArrowMemoryError, ... and OSError).
ARROW_ERRORS = (pa.ArrowException, OSError, ValueError, IndexError, KeyError, OverflowError, MemoryError)

_FIXED_DICTIONARIES = {name: pa.array(values, type=pa.string()) for name, values in ev.DICTIONARIES.items()}
_NON_NULL = [c.name for c in ev.COLUMNS if not c.nullable]
_OPTIONAL_COLUMNS = [c.name for c in ev.COLUMNS if c.nullable]
_CHECKPOINT_CODE = ev.KINDS.index(ev.KIND_CHECKPOINT)
_END_CODE = ev.CHECKPOINT_KINDS.index(ev.CP_END)


def check_schema(schema: pa.Schema) -> None:
    """The columns must be exactly the events table's: same names, order, types and nullability."""
    try:
        names = list(schema.names)
    except UnicodeDecodeError:
        raise TraceError("a column name is not UTF-8 text") from None
    expected = list(ev.COLUMN_NAMES)
    if names != expected:
        missing = [n for n in expected if n not in names]
        extra = [n for n in names if n not in expected]
        if missing:
            raise TraceError(f"column {missing[0]!r} is missing")
        if extra:
            raise TraceError(f"unexpected column {extra[0]!r}")
        raise TraceError("columns are not in the events table's order")
    for got, want in zip(schema, ev.EVENTS_SCHEMA, strict=True):
        if not got.type.equals(want.type) or got.nullable != want.nullable:
            null = "" if got.nullable else " not null"
            raise TraceError(f"column {got.name!r} is {got.type}{null}, expected {want.type}")


def decode_file_metadata(raw: Mapping[bytes, bytes] | None) -> dict[str, str]:
    """The schema metadata as text; bytes that are not UTF-8 make the file not a trace."""
    try:
        return {k.decode(): v.decode() for k, v in (raw or {}).items()}
    except UnicodeDecodeError:
        raise TraceError("file metadata is not UTF-8 text") from None


_META_KEYS = (ev.BATCH_FIRST_CHECKPOINT, ev.BATCH_LAST_CHECKPOINT, ev.BATCH_FIRST_ICOUNT, ev.BATCH_LAST_ICOUNT)


def parse_batch_meta(meta: Mapping[str, str], index: int) -> tuple[int, int, int, int]:
    """(first, last checkpoint, first, last icount) from a batch's index metadata, or TraceError."""
    values = []
    for key in _META_KEYS:
        raw = meta.get(key)
        try:
            if raw is None:
                raise ValueError
            value = int(raw)
        except ValueError:
            raise TraceError(f"batch {index}: index entry {key!r} is {raw!r}, not a number") from None
        if not -1 <= value < 2**63:
            raise TraceError(f"batch {index}: index entry {key!r} is out of range")
        values.append(value)
    return values[0], values[1], values[2], values[3]


def check_batch(batch: pa.RecordBatch, meta: Mapping[str, str], index: int) -> None:
    """Layers 1 and 2 for one batch (see the module docstring); raises TraceError naming the batch."""
    try:
        _check_batch(batch, meta, index)
    except TraceError as exc:
        message = str(exc)
        raise TraceError(message if message.startswith("batch ") else f"batch {index}: {message}") from None
    except ARROW_ERRORS as exc:
        raise TraceError(f"batch {index}: damaged ({first_line(exc)})") from None


def _check_batch(batch: pa.RecordBatch, meta: Mapping[str, str], index: int) -> None:
    check_schema(batch.schema)
    try:
        batch.validate(full=True)
    except pa.ArrowInvalid as exc:
        raise TraceError(f"damaged ({first_line(exc)})") from None
    for name, fixed in _FIXED_DICTIONARIES.items():
        column = batch.column(name)
        assert isinstance(column, pa.DictionaryArray)
        if not column.dictionary.equals(fixed):
            raise TraceError(f"column {name!r} has a dictionary other than the events table's")
    for name in _NON_NULL:
        if batch.column(name).null_count:
            raise TraceError(f"column {name!r} has nulls")
    first_cp, last_cp, first_ic, last_ic = parse_batch_meta(meta, index)
    rows = batch.num_rows
    if rows == 0:
        if (first_cp, last_cp, first_ic, last_ic) != (-1, -1, -1, -1):
            raise TraceError("index entry of an empty batch names checkpoints")
        return
    checkpoints = batch.column("checkpoint")
    icounts = batch.column("icount")
    held = (checkpoints[0].as_py(), checkpoints[rows - 1].as_py(), icounts[0].as_py(), icounts[rows - 1].as_py())
    if held != (first_cp, last_cp, first_ic, last_ic):
        raise TraceError("index entry does not match the rows it indexes")
    _check_kinds(batch)


def _check_kinds(batch: pa.RecordBatch) -> None:
    """Each kind from its own device, with its own columns set and no others.

    Done on bitmaps as Python integers (bit i = row i): one bitmap of rows per kind present and
    one of set values per column, so each (kind, column) rule is an AND of two 8 KiB integers,
    about a microsecond, where filtering the column per kind cost a pass over the batch each.
    """
    kind_col = batch.column("kind")
    device_col = batch.column("device")
    assert isinstance(kind_col, pa.DictionaryArray) and isinstance(device_col, pa.DictionaryArray)
    kinds = kind_col.indices
    rows = batch.num_rows
    everything = (1 << rows) - 1
    present = [ev.KINDS[int(i)] for i in pc.unique(kinds).to_pylist()]
    rows_of = {kind: _bits(pc.equal(kinds, ev.KINDS.index(kind)), everything) for kind in present}
    devices = device_col.indices
    device_rows = {ev.DEVICES[int(d)]: _bits(pc.equal(devices, d), everything) for d in pc.unique(devices).to_pylist()}
    for kind in present:
        right_device = 0
        for device in ev.KIND_DEVICES[kind]:
            right_device |= device_rows.get(device, 0)
        if rows_of[kind] & ~right_device:
            raise TraceError(f"a {kind} row names a device that does not produce {kind} events")
    for name in _OPTIONAL_COLUMNS:
        column = batch.column(name)
        nulls = column.null_count
        is_set = everything if nulls == 0 else 0 if nulls == rows else _bits(pc.is_valid(column), everything)
        for kind in present:
            required, optional = ev.KIND_FIELDS[kind]
            if name in required:
                if rows_of[kind] & ~is_set:
                    raise TraceError(f"a {kind} row lacks its {name!r}")
            elif name not in optional and name not in ev.ANY_KIND_FIELDS and rows_of[kind] & is_set:
                raise TraceError(f"a {kind} row has a {name!r}, which {kind} events do not carry")
    nets = [k for k in (ev.KIND_NET_RX, ev.KIND_NET_TX, ev.KIND_NET_DROP) if k in present]
    if nets:
        net_rows = pc.is_in(kinds, pa.array([ev.KINDS.index(k) for k in nets], pa.int8()))
        first_net = ev.DEVICES.index("net0")
        cards = pc.cast(pc.filter(batch.column("card"), net_rows), pa.int16())
        devices = pc.subtract(pc.cast(pc.filter(device_col.indices, net_rows), pa.int16()), first_net)
        if not pc.all(pc.equal(cards, devices)).as_py():
            raise TraceError("a network row's card is not the one its device names")


@dataclass
class RowOrder:
    """Layer 3: the rows of successive batches, in file order, form one well-ordered stream."""

    next_seq: int = 0
    last_checkpoint: int = -1
    last_icount: int = 0
    last_vclock: int = 0
    ended: bool = False

    def feed(self, batch: pa.RecordBatch, index: int) -> None:
        """Check `batch` (already through `check_batch`) against the rows before it; raises TraceError."""
        rows = batch.num_rows
        if rows == 0:
            return
        where = f"batch {index}"
        if self.ended:
            raise TraceError(f"{where}: rows after the end checkpoint")
        seq = batch.column("seq")
        if seq[0].as_py() != self.next_seq or not _steps_by_one(seq):
            raise TraceError(f"{where}: seq does not continue from {self.next_seq} without gaps (rows missing, "
                             "repeated or out of order)")  # fmt: skip
        cp_kind = batch.column("cp_kind")
        assert isinstance(cp_kind, pa.DictionaryArray)
        is_cp = pc.equal(batch.column("kind").indices, _CHECKPOINT_CODE)
        owner = pc.add(pc.cumulative_sum(pc.cast(is_cp, pa.int64())), self.last_checkpoint)
        if not pc.all(pc.equal(owner, batch.column("checkpoint"))).as_py():
            raise TraceError(f"{where}: checkpoint ids do not run from {self.last_checkpoint + 1} without gaps, "
                             "or an event is not filed under the checkpoint before it")  # fmt: skip
        for name, last in (("icount", self.last_icount), ("vclock_ns", self.last_vclock)):
            column = batch.column(name)
            if column[0].as_py() < last or not _never_decreases(column):
                raise TraceError(f"{where}: {name} goes backwards")
        ends = pc.sum(pc.cast(pc.equal(cp_kind.indices, _END_CODE), pa.int64())).as_py() or 0
        if ends:
            if ends > 1 or cp_kind[rows - 1].as_py() != ev.CP_END:
                raise TraceError(f"{where}: rows after the end checkpoint")
            self.ended = True
        if self.next_seq == 0 and cp_kind[0].as_py() != ev.CP_INIT:
            raise TraceError(f"{where}: the trace does not start with its init checkpoint")
        self.next_seq += rows
        self.last_checkpoint = int(batch.column("checkpoint")[rows - 1].as_py())
        self.last_icount = int(batch.column("icount")[rows - 1].as_py())
        self.last_vclock = int(batch.column("vclock_ns")[rows - 1].as_py())


def _bits(mask: pa.Array, everything: int) -> int:
    """A boolean array without nulls (a compute result, offset 0) as an integer whose bit i is row i."""
    data = mask.buffers()[1]
    assert data is not None and mask.offset == 0
    return int.from_bytes(data.to_pybytes()[: (len(mask) + 7) // 8], "little") & everything


def _steps_by_one(column: pa.Array) -> bool:
    return len(column) < 2 or bool(pc.all(pc.equal(pc.pairwise_diff(column), 1)).as_py())


def _never_decreases(column: pa.Array) -> bool:
    if len(column) and pc.min(column).as_py() < 0:
        return False
    return len(column) < 2 or bool(pc.all(pc.greater_equal(pc.pairwise_diff(column), 0)).as_py())


def first_line(exc: BaseException) -> str:
    """The first line of an error from a C++ library, bounded, for a one-line message."""
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]
