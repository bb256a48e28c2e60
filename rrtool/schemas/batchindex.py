"""The batch index of a trace, read from the Arrow file footer without decompressing any batch.

`TraceFile.batch_info` reads a whole record batch (and decompresses it) to get
at the batch's custom metadata, so a binary search over it touches several
batches. For a checkpoint-range query that must read only a few percent of a
large file, that is too much. An Arrow IPC *file* ends with a footer listing
every record batch's offset and length; each batch starts with a small
flatbuffer message header that carries the custom metadata (first/last
checkpoint and icount) and the row count. This module reads the footer and
those headers (a few hundred bytes per batch) with a minimal flatbuffer
decoder: only the handful of fields named in Arrow's `File.fbs` and
`Message.fbs` that the index needs.

A crash-truncated trace has no footer; `TraceFile` already holds its good
batches in memory, so their index comes from `TraceFile.batch_info`. It lives
in `schemas` (pyarrow and the standard library only) so that the player and
the analysis package share it.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

from rrtool.schemas import events as ev
from rrtool.schemas.tracefile import BatchInfo, TraceFile

_FOOTER_TAIL = 10  # int32 footer length + b"ARROW1"
_BLOCK_SIZE = 24  # struct Block { offset: long; metaDataLength: int; (pad); bodyLength: long }
_CONTINUATION = 0xFFFFFFFF


class FooterError(Exception):
    """The footer or a message header is not what an Arrow IPC file should hold."""


class _Table:
    """A flatbuffer table: a position in a buffer plus its vtable."""

    def __init__(self, buf: bytes, pos: int) -> None:
        self.buf = buf
        self.pos = pos
        vtable = pos - struct.unpack_from("<i", buf, pos)[0]
        self._vt = vtable
        self._vt_size = struct.unpack_from("<H", buf, vtable)[0]

    def _field(self, slot: int) -> int | None:
        entry = 4 + 2 * slot
        if entry >= self._vt_size:
            return None
        off: int = struct.unpack_from("<H", self.buf, self._vt + entry)[0]
        return None if off == 0 else self.pos + off

    def scalar(self, slot: int, fmt: str, default: int = 0) -> int:
        at = self._field(slot)
        return default if at is None else int(struct.unpack_from("<" + fmt, self.buf, at)[0])

    def _indirect(self, slot: int) -> int | None:
        at = self._field(slot)
        return None if at is None else at + struct.unpack_from("<I", self.buf, at)[0]

    def table(self, slot: int) -> _Table | None:
        at = self._indirect(slot)
        return None if at is None else _Table(self.buf, at)

    def vector(self, slot: int) -> tuple[int, int]:
        """(position of the first element, length); (0, 0) when absent."""
        at = self._indirect(slot)
        if at is None:
            return 0, 0
        return at + 4, struct.unpack_from("<I", self.buf, at)[0]

    def tables(self, slot: int) -> list[_Table]:
        start, n = self.vector(slot)
        out = []
        for i in range(n):
            elem = start + 4 * i
            out.append(_Table(self.buf, elem + struct.unpack_from("<I", self.buf, elem)[0]))
        return out

    def string(self, slot: int) -> str:
        at = self._indirect(slot)
        if at is None:
            return ""
        n = struct.unpack_from("<I", self.buf, at)[0]
        return self.buf[at + 4 : at + 4 + n].decode()


def _root(buf: bytes) -> _Table:
    return _Table(buf, struct.unpack_from("<I", buf, 0)[0])


def _footer_blocks(f: BinaryIO, size: int) -> list[tuple[int, int, int]]:
    """(offset, metadata length, body length) of every record batch, from the file footer."""
    if size < _FOOTER_TAIL + 8:
        raise FooterError("file too short for an Arrow footer")
    f.seek(size - _FOOTER_TAIL)
    tail = f.read(_FOOTER_TAIL)
    if tail[4:] != b"ARROW1":
        raise FooterError("no Arrow footer magic")
    footer_len = struct.unpack_from("<i", tail, 0)[0]
    if not 0 < footer_len <= size - _FOOTER_TAIL:
        raise FooterError("bad Arrow footer length")
    f.seek(size - _FOOTER_TAIL - footer_len)
    footer = _root(f.read(footer_len))
    start, n = footer.vector(3)  # Footer.recordBatches
    blocks = []
    for i in range(n):
        offset, meta_len, body_len = struct.unpack_from("<qi4xq", footer.buf, start + _BLOCK_SIZE * i)
        blocks.append((offset, meta_len, body_len))
    return blocks


def _message_span(f: BinaryIO, index: int, block: tuple[int, int, int]) -> BatchInfo:
    offset, meta_len, body_len = block
    f.seek(offset)
    head = f.read(meta_len)
    if len(head) < 8:
        raise FooterError(f"batch {index}: message header cut short")
    skip = 8 if struct.unpack_from("<I", head, 0)[0] == _CONTINUATION else 4
    message = _root(head[skip:])
    meta = {kv.string(0): kv.string(1) for kv in message.tables(4)}  # Message.custom_metadata
    batch = message.table(2)  # Message.header (a RecordBatch)
    rows = 0 if batch is None else batch.scalar(0, "q")  # RecordBatch.length
    return BatchInfo(
        index=index,
        first_checkpoint=int(meta.get(ev.BATCH_FIRST_CHECKPOINT, -1)),
        last_checkpoint=int(meta.get(ev.BATCH_LAST_CHECKPOINT, -1)),
        first_icount=int(meta.get(ev.BATCH_FIRST_ICOUNT, -1)),
        last_icount=int(meta.get(ev.BATCH_LAST_ICOUNT, -1)),
        rows=rows,
        offset=offset,
        nbytes=meta_len + body_len,
    )


def batch_index(trace: TraceFile) -> list[BatchInfo]:
    """Every batch's checkpoint and icount range, reading only the footer and message headers.

    Falls back to `TraceFile.batch_info` for crash-truncated traces (their
    batches are in memory already) and for any file whose footer this
    decoder does not understand.
    """
    if trace.complete_file:
        try:
            size = trace.path.stat().st_size
            with open(trace.path, "rb") as f:
                return [_message_span(f, i, b) for i, b in enumerate(_footer_blocks(f, size))]
        except (FooterError, struct.error, UnicodeDecodeError, ValueError):
            pass
    return [trace.batch_info(i) for i in range(trace.num_batches)]
