"""gdb's remote serial protocol on the wire: framing, checksums, acks, binary escaping, hex (pure, no I/O).

A packet is `$payload#cs`, `cs` the two-hex-digit sum of the payload bytes mod
256. Outside packets the peer sends `+` (ack), `-` (nak: send again) and the
lone byte 0x03 (Ctrl-C). Binary data (the `X` packet gdb sends, the
`qXfer` replies we send) escapes `$ # } *` as `}` followed by the byte xor 0x20;
`*` is escaped too because it would start a run-length sequence, which this
side never sends (replies are run-length free, so any gdb reads them).

`Decoder` turns whatever bytes arrive (whole packets, a packet split over many
reads, garbage, a packet that never ends) into a sequence of events, and holds
at most `max_packet` bytes: a peer cannot make it grow without bound or stall.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Bytes a reply's binary data must escape (gdb: "#$}" always, "*" in replies).
_ESCAPE = frozenset(b"#$}*")
_HEX = frozenset(b"0123456789abcdefABCDEF")
INTERRUPT_BYTE = 0x03


class PacketError(ValueError):
    """A packet's arguments do not parse (bad hex, a missing field, a number out of range)."""


def checksum(payload: bytes) -> int:
    return sum(payload) & 0xFF


def frame(payload: bytes) -> bytes:
    """`$payload#cs`; the payload must already be escaped where it carries binary data."""
    return b"$" + payload + b"#" + b"%02x" % checksum(payload)


def escape(data: bytes) -> bytes:
    """Binary data as it may appear inside a packet."""
    out = bytearray()
    for byte in data:
        if byte in _ESCAPE:
            out += bytes((0x7D, byte ^ 0x20))
        else:
            out.append(byte)
    return bytes(out)


def unescape(data: bytes) -> bytes:
    """The inverse of `escape`; a trailing lone `}` is a `PacketError`."""
    out = bytearray()
    it = iter(data)
    for byte in it:
        if byte == 0x7D:
            nxt = next(it, None)
            if nxt is None:
                raise PacketError("binary data ends in an escape byte")
            out.append(nxt ^ 0x20)
        else:
            out.append(byte)
    return bytes(out)


def parse_hex(text: str | bytes, *, limit: int = 1 << 64) -> int:
    """An unsigned hex number (gdb's addresses, lengths, register numbers), below `limit`."""
    raw = text.encode("latin-1") if isinstance(text, str) else text
    if not raw or len(raw) > 32 or not all(c in _HEX for c in raw):
        raise PacketError(f"not a hex number: {raw[:40]!r}")
    value = int(raw, 16)
    if value >= limit:
        raise PacketError(f"number out of range: {raw[:40]!r}")
    return value


def hex_bytes(text: str) -> bytes:
    """Hex pairs to bytes (monitor commands, `M` data)."""
    if len(text) % 2 or not all(c in "0123456789abcdefABCDEF" for c in text):
        raise PacketError("bad hex data")
    return bytes.fromhex(text)


@dataclass(frozen=True)
class Packet:
    """A packet whose checksum was right; `payload` is still escaped (only `X` unescapes its data)."""

    payload: bytes


@dataclass(frozen=True)
class BadPacket:
    """A packet with a wrong or unreadable checksum, or one longer than the decoder holds."""

    why: str


@dataclass(frozen=True)
class Ack:
    pass


@dataclass(frozen=True)
class Nak:
    pass


@dataclass(frozen=True)
class Interrupt:
    """Ctrl-C: the 0x03 byte outside a packet."""


Event = Packet | BadPacket | Ack | Nak | Interrupt


class Decoder:
    """Bytes in, events out, in the order they arrived; see the module docstring."""

    def __init__(self, max_packet: int) -> None:
        self.max_packet = max_packet
        self._body: bytearray | None = None  # inside a packet, after '$'
        self._overflow = False
        self._sum: bytearray | None = None  # after '#': the checksum digits so far

    def feed(self, data: bytes) -> list[Event]:
        events: list[Event] = []
        for byte in data:
            event = self._byte(byte)
            if event is not None:
                events.append(event)
        return events

    def _byte(self, byte: int) -> Event | None:
        if self._sum is not None:
            self._sum.append(byte)
            if len(self._sum) < 2:
                return None
            return self._finish()
        if self._body is not None:
            if byte == ord("#"):
                self._sum = bytearray()
            elif byte == ord("$"):
                # A '$' is never raw inside a packet: the packet before was cut off, this one starts over.
                self._body, self._overflow = bytearray(), False
            elif len(self._body) >= self.max_packet:
                self._overflow = True
            else:
                self._body.append(byte)
            return None
        if byte == ord("$"):
            self._body, self._overflow = bytearray(), False
            return None
        if byte == ord("+"):
            return Ack()
        if byte == ord("-"):
            return Nak()
        if byte == INTERRUPT_BYTE:
            return Interrupt()
        return None  # line noise between packets

    def _finish(self) -> Event:
        body, digits, overflow = bytes(self._body or b""), bytes(self._sum or b""), self._overflow
        self._body, self._sum, self._overflow = None, None, False
        if overflow:
            return BadPacket(f"packet longer than {self.max_packet} bytes")
        if not all(c in _HEX for c in digits):
            return BadPacket(f"unreadable checksum {digits!r}")
        if int(digits, 16) != checksum(body):
            return BadPacket(f"checksum {digits.decode()} but the packet sums to {checksum(body):02x}")
        return Packet(body)


__all__ = [
    "INTERRUPT_BYTE",
    "Ack",
    "BadPacket",
    "Decoder",
    "Event",
    "Interrupt",
    "Nak",
    "Packet",
    "PacketError",
    "checksum",
    "escape",
    "frame",
    "hex_bytes",
    "parse_hex",
    "unescape",
]
