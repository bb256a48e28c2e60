"""A minimal pcapng writer: one section, one interface per network card, enhanced packet blocks.

pcapng rather than classic pcap because it has one interface per capture
(so each card is its own interface in Wireshark), nanosecond timestamps
(`if_tsresol` = 9) and a direction flag per packet (`epb_flags`: inbound for
net_rx, outbound for net_tx). dpkt (already a dependency) has a pcapng
writer, but it rounds timestamps to microseconds and writes every packet on
interface 0, so this module writes the three block types itself, following
the pcapng specification (IETF draft-ietf-opsawg-pcapng): little-endian,
every block and option padded to 32 bits.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

LINKTYPE_ETHERNET = 1
_SHB, _IDB, _EPB = 0x0A0D0D0A, 0x00000001, 0x00000006
_BYTE_ORDER_MAGIC = 0x1A2B3C4D
_OPT_END, _OPT_COMMENT = 0, 1
_SHB_USERAPPL = 4
_IF_NAME, _IF_DESCRIPTION, _IF_TSRESOL = 2, 3, 9
_EPB_FLAGS = 2
INBOUND, OUTBOUND = 1, 2  # epb_flags bits 0-1


def _pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def _options(options: list[tuple[int, bytes]]) -> bytes:
    if not options:
        return b""
    out = b"".join(struct.pack("<HH", code, len(value)) + _pad(value) for code, value in options)
    return out + struct.pack("<HH", _OPT_END, 0)


def _block(kind: int, body: bytes) -> bytes:
    total = 12 + len(body)
    return struct.pack("<II", kind, total) + body + struct.pack("<I", total)


class PcapngWriter:
    """Write a section header, then interfaces (`add_interface`) and packets (`write_packet`)."""

    def __init__(self, out: BinaryIO, application: str) -> None:
        self._out = out
        self.interfaces = 0
        self.packets = 0
        body = struct.pack("<IHHq", _BYTE_ORDER_MAGIC, 1, 0, -1) + _options([(_SHB_USERAPPL, application.encode())])
        out.write(_block(_SHB, body))

    def add_interface(self, name: str, description: str = "", linktype: int = LINKTYPE_ETHERNET) -> int:
        """Declare an interface (nanosecond timestamps, no snap length); returns its id."""
        opts = [(_IF_NAME, name.encode()), (_IF_TSRESOL, bytes([9]))]
        if description:
            opts.append((_IF_DESCRIPTION, description.encode()))
        self._out.write(_block(_IDB, struct.pack("<HHI", linktype, 0, 0) + _options(opts)))
        self.interfaces += 1
        return self.interfaces - 1

    def write_packet(
        self, interface: int, ts_ns: int, data: bytes, original_length: int | None = None, flags: int = 0,
        comment: str = "",
    ) -> None:  # fmt: skip
        """One enhanced packet block; `ts_ns` is in ns since the epoch (the interface's resolution)."""
        opts: list[tuple[int, bytes]] = []
        if flags:
            opts.append((_EPB_FLAGS, struct.pack("<I", flags)))
        if comment:
            opts.append((_OPT_COMMENT, comment.encode()))
        length = len(data) if original_length is None else max(original_length, len(data))
        head = struct.pack("<IIIII", interface, (ts_ns >> 32) & 0xFFFFFFFF, ts_ns & 0xFFFFFFFF, len(data), length)
        self._out.write(_block(_EPB, head + _pad(data) + _options(opts)))
        self.packets += 1
