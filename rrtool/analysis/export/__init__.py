"""Exports into the formats of the tools people already use: pcapng, hive-partitioned Parquet, Perfetto JSON.

Each export streams the trace one record batch at a time, so its memory does
not grow with the trace (except Perfetto's few per-request entries).
"""
