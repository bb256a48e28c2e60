"""The trace writer: events in, zstd-compressed Arrow record batches of whole checkpoints out.

Rows are buffered as Python lists (cheap per event) and turned into a batch
at a checkpoint boundary once a second has passed or the buffer is large, so
compression happens in pyarrow's C++ in big pieces and a crash loses at most
about a second of recording.
"""

from __future__ import annotations

import operator
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc

from rrtool.schemas import events as ev
from rrtool.schemas.event import Event

FLUSH_SECONDS = 1.0
MAX_BUFFERED_ROWS = 65536


class TraceWriter:
    def __init__(self, path: Path, metadata: dict[str, str]) -> None:
        self.path = path
        self._schema = ev.schema_with_metadata(metadata)
        self._sink = pa.OSFile(str(path), "wb")
        self._writer = ipc.new_file(self._sink, self._schema, options=ipc.IpcWriteOptions(compression="zstd"))
        # Rows are kept as tuples (one C-level attrgetter call per event) and turned into columns
        # with zip(*rows) at flush time: a per-column append per event costs several times more.
        self._rows: list[tuple[object, ...]] = []
        self._row_of = operator.attrgetter(*ev.COLUMN_NAMES)
        self._codes = {name: {v: i for i, v in enumerate(vals)} for name, vals in ev.DICTIONARIES.items()}
        self._dictionaries = {name: pa.array(vals, type=pa.string()) for name, vals in ev.DICTIONARIES.items()}
        self._last_cp_row = 0  # index in the buffer of the newest checkpoint row
        self._last_flush = time.monotonic()
        # One writer thread, so batches reach the file in order while the guest keeps running.
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="trace-writer")
        self._pending: list[Future[None]] = []
        self.seq = 0
        self.bytes_written = 0
        self.batches = 0
        # pyarrow writes the file header lazily; an empty first batch (with the same fixed dictionaries)
        # puts the magic and the schema on disk now, so a recording killed before its first real batch is
        # still a readable, empty trace.
        empty = pa.RecordBatch.from_arrays([self._array(c, []) for c in ev.COLUMNS], schema=self._schema)
        none = "-1"
        self._writer.write_batch(
            empty,
            custom_metadata={
                ev.BATCH_FIRST_CHECKPOINT: none,
                ev.BATCH_LAST_CHECKPOINT: none,
                ev.BATCH_FIRST_ICOUNT: none,
                ev.BATCH_LAST_ICOUNT: none,
            },
        )
        self._sink.flush()
        self.bytes_written = self._sink.tell()

    def append(self, event: Event) -> None:
        event.seq = self.seq
        self.seq += 1
        if event.kind == ev.KIND_CHECKPOINT:
            if self._rows and (
                time.monotonic() - self._last_flush >= FLUSH_SECONDS or len(self._rows) >= MAX_BUFFERED_ROWS
            ):
                self._flush_rows(len(self._rows))
            self._last_cp_row = len(self._rows)
        self._rows.append(self._row_of(event))

    def seconds_since_flush(self) -> float:
        return time.monotonic() - self._last_flush

    def flush_complete_checkpoints(self) -> None:
        """Write every buffered checkpoint but the newest (whose events may still come): before a long wait."""
        if self._last_cp_row > 0:
            self._flush_rows(self._last_cp_row)

    def _array(self, column: ev.Column, values: Sequence[object]) -> pa.Array:
        codes = self._codes.get(column.name)
        if codes is None:
            return pa.array(values, type=column.type)
        indices = pa.array([None if v is None else codes[str(v)] for v in values], type=pa.int8())
        return pa.DictionaryArray.from_arrays(indices, self._dictionaries[column.name])

    def _flush_rows(self, n: int) -> None:
        columns = dict(zip(ev.COLUMN_NAMES, zip(*self._rows[:n], strict=True), strict=True))
        arrays = [self._array(c, columns[c.name]) for c in ev.COLUMNS]
        batch = pa.RecordBatch.from_arrays(arrays, schema=self._schema)
        checkpoints = columns["checkpoint"]
        icounts = columns["icount"]
        meta = {
            ev.BATCH_FIRST_CHECKPOINT: str(checkpoints[0]),
            ev.BATCH_LAST_CHECKPOINT: str(checkpoints[n - 1]),
            ev.BATCH_FIRST_ICOUNT: str(icounts[0]),
            ev.BATCH_LAST_ICOUNT: str(icounts[n - 1]),
        }
        for done in [f for f in self._pending if f.done()]:
            done.result()  # a failed write (disk full, ...) surfaces here, at the next flush
        self._pending = [f for f in self._pending if not f.done()]
        self._pending.append(self._io.submit(self._write, batch, meta))
        del self._rows[:n]
        self._last_cp_row -= n
        self.batches += 1
        self._last_flush = time.monotonic()

    def _write(self, batch: pa.RecordBatch, meta: dict[str, str]) -> None:
        """On the writer thread: compression and I/O happen inside pyarrow's C++, without the GIL."""
        self._writer.write_batch(batch, custom_metadata=meta)
        self._sink.flush()
        self.bytes_written = self._sink.tell()

    def close(self) -> None:
        if self._rows:
            self._flush_rows(len(self._rows))
        self._io.shutdown(wait=True)
        for future in self._pending:
            future.result()  # surface a write error (disk full, ...) instead of losing it
        self._writer.close()
        self._sink.close()
        self.bytes_written = self.path.stat().st_size
