"""The batch index of a trace: each record batch's checkpoint and icount range, without decompressing the batches.

The writer (`rrtool.schemas.writer`) puts the first and last checkpoint and
icount of every record batch in that batch's IPC custom metadata. pyarrow
hands the metadata out only together with the batch, so the index reads each
batch restricted to a single column (`IpcReadOptions(included_fields=...)`):
pyarrow then reads the batch's message header and that column's buffers, and
decompresses nothing else. The column is `text`, null on every row but the end
checkpoint's, so its compressed buffers are a few bytes per batch; what the
index reads is mostly the message headers (which list every column's
buffers): about 0.3% of a 10-million-event trace.

`IpcReadOptions(included_fields=[])` means all columns, not none, hence one
small column rather than an empty projection. `get_batch_with_custom_metadata`
needs pyarrow 11. This module depends on pyarrow only, so the player and the
analysis package share it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc

from rrtool.schemas import events as ev
from rrtool.schemas.validate import ARROW_ERRORS, TraceError, first_line, parse_batch_meta

#: The column the index reads with each batch's metadata: the smallest one.
INDEX_COLUMN = "text"


@dataclass(frozen=True)
class BatchInfo:
    """One batch of the index: which checkpoints and icounts it holds (-1 for the empty header batch)."""

    index: int
    first_checkpoint: int
    last_checkpoint: int
    first_icount: int
    last_icount: int
    rows: int


def decode_metadata(meta: object) -> dict[str, str]:
    """A batch's custom metadata (pyarrow's KeyValueMetadata, bytes keys and values) as a str dict."""
    if meta is None:
        return {}
    items = meta.items() if hasattr(meta, "items") else []
    return {
        (k.decode() if isinstance(k, bytes) else str(k)): (v.decode() if isinstance(v, bytes) else str(v))
        for k, v in items
    }


def batch_info(index: int, rows: int, meta: Mapping[str, str]) -> BatchInfo:
    """The entry of batch `index`; a malformed one raises `TraceError` (a trace is hostile input)."""
    first_cp, last_cp, first_ic, last_ic = parse_batch_meta(meta, index)
    return BatchInfo(index, first_cp, last_cp, first_ic, last_ic, rows)


def index_reader(source: Any) -> ipc.RecordBatchFileReader:
    """A reader of a complete trace file (`source`: a path, a memory map or a file) that decodes `INDEX_COLUMN` only.

    Raises pyarrow's ArrowInvalid for a file without a footer.
    """
    options = ipc.IpcReadOptions(included_fields=[ev.COLUMN_NAMES.index(INDEX_COLUMN)], use_threads=False)
    return ipc.open_file(source, options=options)


def read_info(reader: ipc.RecordBatchFileReader, index: int) -> BatchInfo:
    """Batch `index`'s entry, through a reader from `index_reader`; an undecodable one raises `TraceError`."""
    try:
        batch, raw = reader.get_batch_with_custom_metadata(index)
        meta = decode_metadata(raw)
    except (*ARROW_ERRORS, UnicodeDecodeError) as exc:
        raise TraceError(f"batch {index} is damaged ({first_line(exc)})") from None
    assert isinstance(batch, pa.RecordBatch)
    return batch_info(index, batch.num_rows, meta)


def read_index(reader: ipc.RecordBatchFileReader) -> list[BatchInfo]:
    """Every batch's entry, through a reader from `index_reader`."""
    return [read_info(reader, i) for i in range(reader.num_record_batches)]
