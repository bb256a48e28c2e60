"""Helpers for tests that tamper with traces: rows out, rows back in through the real writer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rrtool.schemas import events as ev
from rrtool.schemas.event import Event
from rrtool.schemas.tracefile import open_tracefile
from rrtool.schemas.writer import TraceWriter


def read_rows(path: Path) -> list[dict[str, Any]]:
    return list(open_tracefile(path).read_all().to_pylist())


def write_rows(src: Path, dst: Path, rows: list[dict[str, Any]]) -> None:
    meta = {k: v for k, v in open_tracefile(src).metadata.items() if k != ev.META_FORMAT_VERSION}
    writer = TraceWriter(dst, meta)
    for row in rows:
        writer.append(Event(**row))
    writer.close()
