"""The trace contract: a schema change must come with a FORMAT_VERSION bump."""

from __future__ import annotations

import json
from pathlib import Path

from rrtool.schemas import events as ev

SNAPSHOT = Path(__file__).with_name("schema_snapshot.json")


def current() -> dict[str, object]:
    return {
        "format_version": ev.FORMAT_VERSION,
        "columns": [[c.name, str(c.type), c.nullable] for c in ev.COLUMNS],
        "dictionaries": {k: list(v) for k, v in ev.DICTIONARIES.items()},
    }


def test_schema_matches_snapshot_or_version_was_bumped() -> None:
    snap = json.loads(SNAPSHOT.read_text())
    now = current()
    if now != snap:
        assert now["format_version"] != snap["format_version"], (
            "the events schema changed but FORMAT_VERSION did not: bump it, then refresh "
            "tests/schema_snapshot.json (python -m tests.test_schema)"
        )


def test_every_column_is_documented() -> None:
    for column in ev.COLUMNS:
        assert len(column.doc) > 20, column.name
    assert ev.EVENTS_SCHEMA.names == list(ev.COLUMN_NAMES)


def test_file_metadata_carries_the_format_version() -> None:
    schema = ev.schema_with_metadata({ev.META_HOST: "h"})
    assert schema.metadata[ev.META_FORMAT_VERSION.encode()] == str(ev.FORMAT_VERSION).encode()


if __name__ == "__main__":
    SNAPSHOT.write_text(json.dumps(current(), indent=1) + "\n")
