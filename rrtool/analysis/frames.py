"""The views as Polars lazy frames (`Trace.events`, `Trace.packets`, ...), from `rrtool.analysis.viewspec`.

They are lazy: nothing is read until `.collect()`. `rrtool.analysis.views`
renders the same definitions as DuckDB SQL.
"""

from __future__ import annotations

import polars as pl

from rrtool.analysis import viewspec
from rrtool.schemas import events as ev

#: The dictionary-encoded columns as Polars enums with the schema's fixed dictionaries, so that
#: frames from different traces (or from the file and from memory) compare and join directly.
ENUMS: dict[str, pl.Enum] = {name: pl.Enum(list(values)) for name, values in ev.DICTIONARIES.items()}


def normalize(raw: pl.LazyFrame) -> pl.LazyFrame:
    """Raw rows as read from Arrow -> the `events` frame: enum columns plus the derived ones."""
    return viewspec.events_polars(raw.with_columns(pl.col(name).cast(dtype) for name, dtype in ENUMS.items()))


def view(name: str, events: pl.LazyFrame) -> pl.LazyFrame:
    """The per-kind view `name` (`packets`, `block_ops`, ...) over the `events` frame."""
    return viewspec.view_polars(viewspec.VIEWS[name], events)
