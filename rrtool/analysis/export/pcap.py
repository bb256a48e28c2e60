"""`rrtool export pcap`: the frames the guest received (net_rx) and sent (net_tx) as a pcapng capture.

Timestamps are virtual time: the recording's start time (file metadata) plus
the frame's `vclock_ns`, so Wireshark's "time since start" is virtual time
and the dates are plausible (`time_base="zero"` starts at the epoch instead).
Each card is its own interface (`net0`, `net1`, ...); dropped frames
(net_drop) are not in the capture.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from rrtool import __version__
from rrtool._paths import atomic_output, refuse_clobber
from rrtool.analysis.errors import AnalysisError
from rrtool.analysis.export.pcapng import INBOUND, OUTBOUND, PcapngWriter
from rrtool.analysis.export.rows import rows, start_epoch_ns
from rrtool.analysis.progress import Progress
from rrtool.schemas import events as ev
from rrtool.schemas.tracefile import TraceFile, open_tracefile


@dataclass
class PcapStats:
    packets: int = 0
    rx: int = 0
    tx: int = 0
    interfaces: dict[int, str] = field(default_factory=dict)


def _card_descriptions(trace: TraceFile) -> dict[int, str]:
    """Interface descriptions from `rrtool.net`, which only describes the host side: anything odd there is
    ignored (the interface keeps a plain name) rather than failing the export."""
    try:
        cards = json.loads(trace.metadata.get(ev.META_NET, "[]"))
    except ValueError:
        return {}
    out = {}
    for i, card in enumerate(cards if isinstance(cards, list) else []):
        if isinstance(card, dict):
            index = card.get("index", card.get("card", i))
            if type(index) is not int or not 0 <= index < 4:
                continue
            details = ", ".join(f"{k} {v}" for k, v in card.items() if k not in ("index", "card"))
            out[index] = f"rrtool card {index}" + (f" ({details})"[:200] if details else "")
    return out


def export_pcap(
    trace_path: str | Path, output: str | Path, *, time_base: str = "start", progress: Progress | None = None
) -> PcapStats:
    """Write the trace's frames to `output` (pcapng); returns what was written. `progress`: batches read."""
    if time_base not in ("start", "zero"):
        raise AnalysisError(f"bad time base {time_base!r}: use start or zero")
    # Refused before the trace is opened: writing onto it would destroy the very file being read.
    refuse_clobber(Path(output), [(Path(trace_path), "trace file")])
    with open_tracefile(trace_path) as trace, atomic_output(Path(output)) as tmp:
        return _export(trace, tmp, time_base, progress)


def _export(trace: TraceFile, output: Path, time_base: str, progress: Progress | None) -> PcapStats:
    base = start_epoch_ns(trace) if time_base == "start" else 0
    descriptions = _card_descriptions(trace)
    stats = PcapStats()
    with open(output, "wb") as f:
        writer = PcapngWriter(f, f"rrtool {__version__}")
        ids: dict[int, int] = {}
        # Cards named in the metadata first, in order, so interface ids follow card numbers when they can.
        for card in sorted(descriptions):
            ids[card] = writer.add_interface(f"net{card}", descriptions[card])
            stats.interfaces[card] = f"net{card}"
        columns = ["kind", "card", "device", "vclock_ns", "icount", "checkpoint", "data", "length"]
        for row in rows(trace, (ev.KIND_NET_RX, ev.KIND_NET_TX), columns, progress):
            card = row["card"] if row["card"] is not None else _card_of(row["device"])
            if card not in ids:
                ids[card] = writer.add_interface(f"net{card}", f"rrtool card {card}")
                stats.interfaces[card] = f"net{card}"
            inbound = row["kind"] == ev.KIND_NET_RX
            data = row["data"] or b""
            writer.write_packet(
                ids[card], base + int(row["vclock_ns"]), data, row["length"], INBOUND if inbound else OUTBOUND,
                comment=f"checkpoint {row['checkpoint']} icount {row['icount']}",
            )  # fmt: skip
            stats.packets += 1
            stats.rx += inbound
            stats.tx += not inbound
    return stats


def _card_of(device: str | None) -> int:
    if device and device.startswith("net") and device[3:].isdigit():
        return int(device[3:])
    return 0
