"""Opening a trace file: complete, cut short by a crash, or not a trace at all.

A complete trace is an Arrow IPC *file* (footer with the batch index). A
recording killed with SIGKILL has no footer, but the IPC file format is the
IPC stream format after an 8-byte magic, so the batches written before the
kill are read as a stream until the first incomplete message. Shared by the
player and the analysis package, so it depends on pyarrow only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc

from rrtool._paths import PathError, check_input_file
from rrtool.schemas import events as ev
from rrtool.schemas.batchindex import BatchInfo, batch_info, decode_metadata, index_reader, read_info
from rrtool.schemas.validate import (
    ARROW_ERRORS,
    RowOrder,
    TraceError,
    check_batch,
    check_schema,
    decode_file_metadata,
    first_line,
)
from rrtool.schemas.verified import file_identity, remember_verified, was_verified

__all__ = ["TraceError", "TraceFile", "open_tracefile"]

_MAGIC = b"ARROW1"
#: What pyarrow's stream reader says when a message runs past the end of the file: a recording cut
#: short. Any other failure to read a message is damage (checked against pyarrow 16-22's wording).
_TRUNCATED = re.compile(r"only \d+ bytes available|but only read \d+|Expected to be able to read \d+ bytes")
_STREAM_OFFSET = 8  # magic (6 bytes) + padding to 8


class TraceFile:
    """A readable trace: its metadata, its batches and whether the recording finished.

    It holds the file memory-mapped until `close()` (or the end of a `with`
    block); batches read before that stay valid, as pyarrow keeps the mapping
    alive while a buffer points into it.

    Every batch is checked (`rrtool.schemas.validate`) before it is handed
    out, and `batches()` from the start also checks the order of the rows;
    `verify()` does both for the whole file, for readers such as Polars and
    DuckDB that scan the file themselves. Every failure is a `TraceError`
    whose message is one line.
    """

    def __init__(self, path: Path, *, threads: bool = True) -> None:
        """`threads`: decompress a batch's columns on pyarrow's thread pool (the default), or on the
        caller's thread only, for callers that already read many files at once on threads of their own."""
        self.path = path
        self._options = ipc.IpcReadOptions(use_threads=threads)
        try:
            check_input_file(path, "trace file")
        except PathError as exc:
            raise TraceError(str(exc)) from None
        self._identity = file_identity(path)  # before the file is read: see rrtool.schemas.verified
        self._source = pa.memory_map(str(path))
        self._checked: set[int] = set()
        self.verified = False
        self._file: ipc.RecordBatchFileReader | None = None
        self._index: ipc.RecordBatchFileReader | None = None  # the same file, one small column (`batchindex`)
        self._stream_batches: list[tuple[pa.RecordBatch, dict[str, str]]] | None = None
        #: The batch decoded last, with its metadata: `summarize` after a full read, or `last_checkpoint`
        #: then the end text, ask for the last batch again, and decompressing it twice costs a few ms.
        self._recent: tuple[int, pa.RecordBatch, dict[str, str]] | None = None
        #: Index entries known without the index reader: those of the batches decoded and checked so far.
        self._infos: dict[int, BatchInfo] = {}
        try:
            self.schema: pa.Schema = self._open(path)
            self.metadata: dict[str, str] = decode_file_metadata(self.schema.metadata)
            check_schema(self.schema)
        except TraceError as exc:
            self._source.close()  # not a trace we can read: do not keep the file mapped until the GC runs
            message = str(exc)
            raise TraceError(message if message.startswith(f"{path}:") else f"{path}: {message}") from None
        except BaseException:
            self._source.close()
            raise

    def _open(self, path: Path) -> pa.Schema:
        head = self._source.read(_STREAM_OFFSET)
        self._source.seek(0)
        if head[:6] != _MAGIC:
            raise TraceError(f"{path}: not an Arrow IPC file (no ARROW1 magic)")
        try:
            self._file = ipc.open_file(self._source, options=self._options)
            schema: pa.Schema = self._file.schema
            self.complete_file = True
        except ARROW_ERRORS as exc:
            if self._source.size() > 2 * len(_MAGIC) and _ends_with_magic(self._source):
                # Only a finished recording ends with the footer's magic; a killed one never does.
                raise TraceError(f"{path}: the file's footer is damaged ({first_line(exc)})") from None
            schema = self._open_stream(path)
            self.complete_file = False
        version = decode_file_metadata(schema.metadata).get(ev.META_FORMAT_VERSION)
        if version is None:
            raise TraceError(f"{path}: an Arrow file, but not an rrtool trace (no format version)")
        if version != str(ev.FORMAT_VERSION):
            shown = version[:40].encode("unicode_escape").decode()  # one line, whatever the bytes
            raise TraceError(
                f"{path}: trace format version {shown} is not supported (this rrtool reads version {ev.FORMAT_VERSION})"
            )
        return schema

    def _open_stream(self, path: Path) -> pa.Schema:
        buf = self._source.read_buffer()
        stream = pa.BufferReader(buf.slice(_STREAM_OFFSET))
        try:
            reader = ipc.open_stream(stream)
        except ARROW_ERRORS:
            raise TraceError(f"{path}: truncated before the end of its Arrow header") from None
        batches: list[tuple[pa.RecordBatch, dict[str, str]]] = []
        while True:
            try:
                batch, meta = reader.read_next_batch_with_custom_metadata()
            except StopIteration:
                break
            except ARROW_ERRORS as exc:
                if _TRUNCATED.search(str(exc)):
                    break  # the batch being written when the recorder died
                raise TraceError(f"{path}: batch {len(batches)} is damaged ({first_line(exc)})") from None
            batches.append((batch, decode_metadata(meta)))
        self._stream_batches = batches
        return reader.schema

    # -- lifetime ------------------------------------------------------------
    def close(self) -> None:
        """Let go of the file: the memory map, its readers and the batches of a truncated file. Idempotent."""
        self._file = None
        self._index = None
        self._stream_batches = None
        self._recent = None
        self._source.close()

    @property
    def closed(self) -> bool:
        return bool(self._source.closed)

    def __enter__(self) -> TraceFile:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError(f"{self.path}: trace file is closed")

    # -- facts ---------------------------------------------------------------
    @property
    def machine(self) -> dict[str, Any]:
        """The `rrtool.machine` record: a JSON object, else TraceError."""
        data: dict[str, Any] = self.json_metadata(ev.META_MACHINE, {})
        return data

    def json_metadata(self, key: str, default: Any) -> Any:
        """A JSON-valued metadata entry, of the same JSON type as `default` (returned when absent)."""
        raw = self.metadata.get(key)
        if raw is None:
            return default
        try:
            data = json.loads(raw)
        except ValueError:
            raise TraceError(f"{self.path}: metadata {key!r} is not valid JSON") from None
        if not isinstance(data, type(default)):
            raise TraceError(f"{self.path}: metadata {key!r} is not a JSON {type(default).__name__}")
        return data

    @property
    def num_batches(self) -> int:
        self._check_open()
        if self._file is not None:
            return int(self._file.num_record_batches)
        assert self._stream_batches is not None
        return len(self._stream_batches)

    def batch(self, index: int) -> tuple[pa.RecordBatch, dict[str, str]]:
        """Batch `index` and its index metadata, checked (layers 1 and 2 of `rrtool.schemas.validate`)."""
        self._check_open()
        if self._recent is not None and self._recent[0] == index:
            return self._recent[1], self._recent[2]
        if self._file is not None:
            try:
                batch, raw = self._file.get_batch_with_custom_metadata(index)
                meta = decode_metadata(raw)
            except (*ARROW_ERRORS, UnicodeDecodeError) as exc:
                raise TraceError(f"{self.path}: batch {index} is damaged ({first_line(exc)})") from None
        else:
            assert self._stream_batches is not None
            batch, meta = self._stream_batches[index]
        if index not in self._checked:
            try:
                check_batch(batch, meta, index)
            except TraceError as exc:
                raise TraceError(f"{self.path}: {exc}") from None
            self._checked.add(index)
        if self._file is not None:
            self._recent = (index, batch, meta)
            self._infos[index] = batch_info(index, batch.num_rows, meta)  # parsed by check_batch already: valid
        return batch, meta

    def batches(self, start: int = 0) -> Iterator[pa.RecordBatch]:
        """Batches in order, each checked; from the start, their rows' order too. One is decompressed at a time."""
        order = RowOrder() if start == 0 and not self.verified else None
        for i in range(start, self.num_batches):
            batch = self.batch(i)[0]
            if order is not None:
                self._feed(order, batch, i)
            yield batch

    def _feed(self, order: RowOrder, batch: pa.RecordBatch, index: int) -> None:
        try:
            order.feed(batch, index)
        except TraceError as exc:
            raise TraceError(f"{self.path}: {exc}") from None

    def verify(self) -> None:
        """Check every batch and the order of all rows, once; for readers that scan the file on their own.

        A full check decompresses the whole file (about 0.3 s per million events), which would
        make every `rrtool sql` on a large trace pay it again. So a passed check is remembered
        (`rrtool.schemas.verified`) under the file's identity and change time, which no write
        to the file can keep, and a later open of the unchanged file skips it.
        """
        if self.verified:
            return
        if self.complete_file and was_verified(self._identity):
            self.verified = True
            return
        order = RowOrder()
        for i in range(self.num_batches):
            self._feed(order, self.batch(i)[0], i)
        self.verified = True
        if self.complete_file and file_identity(self.path) == self._identity:
            remember_verified(self._identity)

    def batch_info(self, index: int) -> BatchInfo:
        """Batch `index`'s checkpoint and icount range, from its metadata; no batch is decompressed for it."""
        self._check_open()
        if self._file is not None:
            known = self._infos.get(index)
            if known is not None:
                return known
            if self._index is None:
                self._index = index_reader(self._source)
            return read_info(self._index, index)
        assert self._stream_batches is not None
        batch, meta = self._stream_batches[index]  # a crash-truncated file: its batches are in memory already
        return batch_info(index, batch.num_rows, meta)

    def batch_index(self) -> list[BatchInfo]:
        """Every batch's checkpoint and icount range (see `rrtool.schemas.batchindex`)."""
        return [self.batch_info(i) for i in range(self.num_batches)]

    def totals(self) -> tuple[int, int]:
        """(checkpoints, icount at the last one) the file holds, from the index of its last non-empty batch."""
        for i in range(self.num_batches - 1, -1, -1):
            info = self.batch_info(i)
            if info.rows:
                return info.last_checkpoint + 1, info.last_icount
        return 0, 0

    def find_batch(self, checkpoint: int) -> int | None:
        """Index of the batch holding `checkpoint`, by binary search over the batch index."""
        spans = [s for s in self.batch_index() if s.rows]
        lo, hi = 0, len(spans) - 1
        while lo <= hi:
            mid = (lo + hi) // 2
            span = spans[mid]
            if checkpoint < span.first_checkpoint:
                hi = mid - 1
            elif checkpoint > span.last_checkpoint:
                lo = mid + 1
            else:
                return span.index
        return None

    def last_checkpoint(self) -> tuple[int, str | None] | None:
        """(id, cp_kind) of the last checkpoint in the file, or None when it has none."""
        for i in range(self.num_batches - 1, -1, -1):
            batch = self.batch(i)[0]
            rows = pc.indices_nonzero(pc.equal(batch.column("kind"), ev.KIND_CHECKPOINT))  # on the dictionary codes
            if len(rows):
                row = rows[len(rows) - 1].as_py()
                return int(batch.column("checkpoint")[row].as_py()), batch.column("cp_kind")[row].as_py()
        return None

    @property
    def complete(self) -> bool:
        """Finished cleanly: footer written and the last checkpoint is the end checkpoint."""
        if not self.complete_file:
            return False
        last = self.last_checkpoint()
        return last is not None and last[1] == ev.CP_END

    def read_all(self) -> pa.Table:
        return pa.Table.from_batches(list(self.batches()), schema=self.schema)


def open_tracefile(path: str | Path, *, threads: bool = True) -> TraceFile:
    return TraceFile(Path(path), threads=threads)


def _ends_with_magic(source: pa.MemoryMappedFile) -> bool:
    source.seek(source.size() - len(_MAGIC))
    tail = source.read(len(_MAGIC))
    source.seek(0)
    return bool(tail == _MAGIC)
