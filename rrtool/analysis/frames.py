"""Typed per-kind Polars frames over the events table (the Python side of the SQL views).

The events table is one wide table with typed nullable columns per kind;
these frames pick one kind's rows and columns, name them for what they mean
(`direction`, `latency_ns`, `host_wait_ns`) and add what is tedious to derive
by hand (a block request's completion, a warp's real waiting time). They are
lazy: nothing is read until `.collect()`. `rrtool.analysis.views` defines the
same frames in SQL for DuckDB; a test checks that both agree row for row.
"""

from __future__ import annotations

import polars as pl

from rrtool.schemas import events as ev

#: The dictionary-encoded columns as Polars enums with the schema's fixed dictionaries, so that
#: frames from different traces (or from the file and from memory) compare and join directly.
ENUMS: dict[str, pl.Enum] = {name: pl.Enum(list(values)) for name, values in ev.DICTIONARIES.items()}

#: Bytes of `data` shown in hex in `data_hex`.
HEX_PREVIEW_BYTES = 32

_TIME = ["seq", "checkpoint", "icount", "vclock_ns", "vclock_s"]


def _utf8(data: pl.Series) -> pl.Series:
    return pl.Series(
        data.name, [None if b is None else b.decode("utf-8", "replace") for b in data.to_list()], pl.String
    )


def _mac(expr: pl.Expr) -> pl.Expr:
    return expr.bin.encode("hex").str.replace_all("(..)", "$1:").str.strip_chars_end(":")


def normalize(raw: pl.LazyFrame) -> pl.LazyFrame:
    """Raw rows as read from Arrow -> the `events` frame: enum columns plus the derived ones."""
    return raw.with_columns(
        *(pl.col(name).cast(dtype) for name, dtype in ENUMS.items()),
        (pl.col("vclock_ns") / 1e9).alias("vclock_s"),
        pl.col("data").bin.size().cast(pl.Int64).alias("data_len"),
        pl.col("data").bin.head(HEX_PREVIEW_BYTES).bin.encode("hex").alias("data_hex"),
    )


def packets(events: pl.LazyFrame) -> pl.LazyFrame:
    """Frames received (rx), sent (tx) and dropped (drop), with their Ethernet header fields."""
    direction = {ev.KIND_NET_RX: "rx", ev.KIND_NET_TX: "tx", ev.KIND_NET_DROP: "drop"}
    return events.filter(pl.col("kind").is_in(list(direction))).select(
        *_TIME,
        pl.col("kind"),
        pl.col("device"),
        pl.col("card"),
        pl.col("kind").cast(pl.String).replace_strict(direction, return_dtype=pl.String).alias("direction"),
        pl.col("length"),
        pl.col("flags"),
        pl.col("status"),
        _mac(pl.col("data").bin.slice(0, 6)).alias("eth_dst"),
        _mac(pl.col("data").bin.slice(6, 6)).alias("eth_src"),
        pl.col("data").bin.slice(12, 2).bin.reinterpret(dtype=pl.UInt16, endianness="big").cast(pl.Int32)
        .alias("ethertype"),
        pl.col("data_len"),
        pl.col("data_hex"),
        pl.col("data"),
    )  # fmt: skip


def block_ops(events: pl.LazyFrame) -> pl.LazyFrame:
    """One row per block request: its submission joined to its completion, with the latency.

    A request's tag (`req_id`) is unique only among requests in flight, so a
    submission is joined to the first completion with the same device and
    tag after it, and only if no later submission reused the tag before that
    completion (a request lost to a guest reset stays incomplete).
    """
    submits = (
        events.filter(pl.col("kind") == ev.KIND_BLK_SUBMIT)
        .select(
            "device", "req_id", "op", "sector", "sectors", "length", "data_digest",
            pl.col("seq").alias("submit_seq"),
            pl.col("checkpoint").alias("submit_checkpoint"),
            pl.col("icount").alias("submit_icount"),
            pl.col("vclock_ns").alias("submit_vclock_ns"),
        )
        .sort("submit_seq")
        .with_columns(pl.col("submit_seq").shift(-1).over(["device", "req_id"]).alias("_next_submit"))
    )  # fmt: skip
    completes = (
        events.filter(pl.col("kind") == ev.KIND_BLK_COMPLETE)
        .select(
            "device", "req_id",
            pl.col("seq").alias("complete_seq"),
            pl.col("checkpoint").alias("complete_checkpoint"),
            pl.col("icount").alias("complete_icount"),
            pl.col("vclock_ns").alias("complete_vclock_ns"),
            "status", "order",
            pl.col("flags").alias("generation"),
            "data_len",
        )
        .sort("complete_seq")
    )  # fmt: skip
    joined = submits.join_asof(
        completes,
        left_on="submit_seq",
        right_on="complete_seq",
        by=["device", "req_id"],
        strategy="forward",
        check_sortedness=False,
    )
    lost = pl.col("_next_submit").is_not_null() & (pl.col("complete_seq") > pl.col("_next_submit"))
    complete_cols = [
        "complete_seq", "complete_checkpoint", "complete_icount", "complete_vclock_ns",
        "status", "order", "generation", "data_len",
    ]  # fmt: skip
    return (
        joined.with_columns(pl.when(lost).then(None).otherwise(pl.col(c)).alias(c) for c in complete_cols)
        .with_columns(
            (pl.col("complete_vclock_ns") - pl.col("submit_vclock_ns")).alias("latency_ns"),
            (pl.col("complete_icount") - pl.col("submit_icount")).alias("latency_insns"),
            pl.col("complete_seq").is_not_null().alias("completed"),
        )
        .select(
            "device", "req_id", "op", "sector", "sectors", "length", "data_digest",
            "submit_seq", "submit_checkpoint", "submit_icount", "submit_vclock_ns",
            *complete_cols[:4], "latency_ns", "latency_insns", *complete_cols[4:], "completed",
        )
        .sort("submit_seq")
    )  # fmt: skip


def _checkpoint_rows(events: pl.LazyFrame) -> pl.LazyFrame:
    return events.filter(pl.col("kind") == ev.KIND_CHECKPOINT)


def clock(events: pl.LazyFrame) -> pl.LazyFrame:
    """Clock warps: where the CPU slept, how far virtual time jumped, and how long the host really waited."""
    hosts = _checkpoint_rows(events).select("checkpoint", "host_ns")
    start = hosts.rename({"host_ns": "_host_start"})
    end = hosts.select((pl.col("checkpoint") - 1).alias("checkpoint"), pl.col("host_ns").alias("_host_end"))
    return (
        events.filter(pl.col("kind") == ev.KIND_CLOCK_WARP)
        .join(start, on="checkpoint", how="left")
        .join(end, on="checkpoint", how="left")
        .select(
            *_TIME,
            "warp_ns",
            (pl.col("vclock_ns") + pl.col("warp_ns")).alias("end_vclock_ns"),
            (pl.col("_host_end") - pl.col("_host_start")).alias("host_wait_ns"),
        )
        .sort("seq")
    )


def checkpoints(events: pl.LazyFrame) -> pl.LazyFrame:
    """Checkpoint rows with why they happened, the instructions since the previous one and their event count."""
    counts = events.group_by("checkpoint").agg(pl.len().cast(pl.Int64).alias("events"))
    return (
        _checkpoint_rows(events)
        .sort("seq")
        .select(
            *_TIME,
            "cp_kind", "pc", "reg_digest", "dev_digest", "mem_digest", "host_ns",
            pl.col("value").alias("exit_code"),
            "text",
            (pl.col("icount") - pl.col("icount").shift(1)).alias("insns"),
        )
        .join(counts, on="checkpoint", how="left")
        .sort("seq")
    )  # fmt: skip


def console(events: pl.LazyFrame) -> pl.LazyFrame:
    """Console input and output, with the bytes decoded as UTF-8 (bad bytes shown as U+FFFD)."""
    direction = {ev.KIND_CONSOLE_IN: "in", ev.KIND_CONSOLE_OUT: "out"}
    return events.filter(pl.col("kind").is_in(list(direction))).select(
        *_TIME,
        pl.col("kind").cast(pl.String).replace_strict(direction, return_dtype=pl.String).alias("direction"),
        "data_len",
        pl.col("data").map_batches(_utf8, return_dtype=pl.String).alias("text"),
        "data",
    )


def interrupts(events: pl.LazyFrame) -> pl.LazyFrame:
    """Interrupts delivered: where (icount, interrupted pc) and which lines (`mask`)."""
    return events.filter(pl.col("kind") == ev.KIND_IRQ).select(*_TIME, "device", "pc", pl.col("value").alias("mask"))
