"""The trace contract: the events schema is pinned by tests/schema_snapshot.json.

Any change to the format (columns, their types and nullability, the
dictionaries, the metadata keys, which columns each kind sets and which
devices it comes from) fails here until FORMAT_VERSION is bumped and
the snapshot regenerated; a change to a column's doc fails until the snapshot
is regenerated, and needs a bump too if the column's meaning changed. To
regenerate, from the repository root:

    .venv/bin/python -m tests.test_schema

which refuses to record a format change under the stored FORMAT_VERSION.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from rrtool.schemas import events as ev

SNAPSHOT = Path(__file__).with_name("schema_snapshot.json")
REGENERATE = "python -m tests.test_schema"
#: The parts of the snapshot that are the format; "docs" is the rest.
FORMAT_PARTS = ("format_version", "columns", "dictionaries", "metadata_keys", "kind_fields", "kind_devices")


def current() -> dict[str, Any]:
    return {
        "format_version": ev.FORMAT_VERSION,
        "columns": [[c.name, str(c.type), c.nullable] for c in ev.COLUMNS],
        "dictionaries": {k: list(v) for k, v in ev.DICTIONARIES.items()},
        "metadata_keys": {k: v for k, v in vars(ev).items() if k.startswith(("META_", "BATCH_"))},
        "kind_fields": {k: [sorted(req), sorted(opt)] for k, (req, opt) in ev.KIND_FIELDS.items()},
        "kind_devices": {k: sorted(v) for k, v in ev.KIND_DEVICES.items()},
        "docs": {c.name: c.doc for c in ev.COLUMNS},
    }


def differences(old: dict[str, Any], new: dict[str, Any], parts: tuple[str, ...]) -> list[str]:
    """What changed from ``old`` to ``new`` in ``parts``, one readable line each."""
    lines = []
    for part in parts:
        before, after = old.get(part), new.get(part)
        if before == after:
            continue
        if part == "columns":
            was = {name: rest for name, *rest in before or []}
            now = {name: rest for name, *rest in after or []}
            lines += [f"column {name} added: {now[name]}" for name in now.keys() - was.keys()]
            lines += [f"column {name} removed" for name in was.keys() - now.keys()]
            lines += [f"column {n}: {was[n]} -> {now[n]}" for n in now.keys() & was.keys() if was[n] != now[n]]
            if [c for c in was if c in now] != [c for c in now if c in was]:
                lines.append("columns reordered")
        elif isinstance(before, dict) and isinstance(after, dict):
            keys = sorted(before.keys() | after.keys())
            lines += [
                f"{part}[{k}]: {before.get(k)!r} -> {after.get(k)!r}" for k in keys if before.get(k) != after.get(k)
            ]
        else:
            lines.append(f"{part}: {before!r} -> {after!r}")
    return sorted(lines)


def test_format_matches_snapshot() -> None:
    snap, now = json.loads(SNAPSHOT.read_text()), current()
    changed = differences(snap, now, FORMAT_PARTS)
    if now["format_version"] == snap["format_version"]:
        advice = (
            "the trace format changed but FORMAT_VERSION did not: bump FORMAT_VERSION in rrtool/schemas/events.py "
            f"(readers refuse other versions), then regenerate tests/schema_snapshot.json ({REGENERATE})"
        )
    else:
        advice = f"FORMAT_VERSION was bumped: regenerate tests/schema_snapshot.json ({REGENERATE}) and commit it"
    assert not changed, advice + ":\n  " + "\n  ".join(changed)


def test_column_docs_match_snapshot() -> None:
    snap, now = json.loads(SNAPSHOT.read_text()), current()
    changed = differences(snap, now, ("docs",))
    assert not changed, (
        f"column docs changed: regenerate tests/schema_snapshot.json ({REGENERATE}); if a column's meaning "
        "changed, not just its wording, bump FORMAT_VERSION first:\n  " + "\n  ".join(changed)
    )


def test_every_column_is_documented() -> None:
    for column in ev.COLUMNS:
        assert len(column.doc) > 20, column.name
    assert ev.EVENTS_SCHEMA.names == list(ev.COLUMN_NAMES)


def test_file_metadata_carries_the_format_version() -> None:
    schema = ev.schema_with_metadata({ev.META_HOST: "h"})
    assert schema.metadata[ev.META_FORMAT_VERSION.encode()] == str(ev.FORMAT_VERSION).encode()


def regenerate() -> int:
    """Write the snapshot; refuse a format change that kept the stored FORMAT_VERSION."""
    now = current()
    if SNAPSHOT.exists():
        snap = json.loads(SNAPSHOT.read_text())
        changed = differences(snap, now, FORMAT_PARTS)
        if changed and now["format_version"] <= snap["format_version"]:
            print(
                f"not written: the format changed but FORMAT_VERSION is {now['format_version']} "
                f"(the snapshot has {snap['format_version']}); bump it in rrtool/schemas/events.py first:",
                *changed,
                sep="\n  ",
                file=sys.stderr,
            )
            return 1
    SNAPSHOT.write_text(json.dumps(now, indent=1) + "\n")
    print(f"wrote {SNAPSHOT}")
    return 0


if __name__ == "__main__":
    sys.exit(regenerate())
