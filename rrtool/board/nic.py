"""Network card: RX and TX descriptor rings in guest RAM, one IRQ line, drop and error counters.

Transmit is deterministic (the guest bumps TX_TAIL at an exact icount), so
frames are checked, logged as net_tx and handed to the backend on the spot;
replay compares them with the log. Receive is the outside world: frames come
as net_rx events applied at checkpoints (QEMU's filter-replay), and whatever
happens to them then (stored, or dropped for want of a buffer) is
deterministic and logged as net_drop.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Protocol

from rrtool.board import regs
from rrtool.board.bus import Bus
from rrtool.machine.units import UnitBase
from rrtool.schemas.event import Event
from rrtool.schemas.names import KIND_NET_DROP, KIND_NET_RX, KIND_NET_TX

DESC = struct.Struct("<IHH")  # addr, len, flags
DONE, ERR = 1, 2
MIN_FRAME, MAX_FRAME = 14, 1514
MAX_RING = 256

#: net_drop reasons (the `status` column).
DROP_NO_BUFFER = 1
DROP_BAD_FRAME = 2
DROP_BUFFER_TOO_SMALL = 3
DROP_RX_DISABLED = 4
DROP_BAD_RX_DESCRIPTOR = 5
DROP_BAD_TX_DESCRIPTOR = 6


@dataclass(frozen=True)
class NicConfig:
    """What the guest sees of a card's identity (recorded, so replay builds the same card)."""

    mac: bytes
    ipv4: bytes  # 4 bytes, or zeros for none

    def to_dict(self) -> dict[str, str]:
        return {"mac": self.mac.hex(":"), "ipv4": ".".join(str(b) for b in self.ipv4)}

    @classmethod
    def from_dict(cls, data: dict[str, str]) -> NicConfig:
        """A card from a trace's machine record (hostile input): a ValueError unless a 6-byte MAC and an IPv4."""
        mac, ipv4 = data.get("mac"), data.get("ipv4")
        if not isinstance(mac, str) or not isinstance(ipv4, str):
            raise ValueError("a card without a mac and an ipv4 string")
        mac_bytes = bytes.fromhex(mac.replace(":", ""))
        ip_bytes = bytes(int(x) for x in ipv4.split("."))  # int() and bytes() raise ValueError when out of range
        if len(mac_bytes) != 6 or len(ip_bytes) != 4:
            raise ValueError(f"card mac {mac!r} or ipv4 {ipv4!r} is malformed")
        return cls(mac_bytes, ip_bytes)


class NetBackend(Protocol):
    def send(self, frame: bytes) -> None: ...


class Nic(UnitBase):
    kinds = (KIND_NET_RX, KIND_NET_TX, KIND_NET_DROP)
    applies = (KIND_NET_RX,)
    SAVED = ("enabled", "rx_ring", "rx_size", "rx_head", "rx_tail", "tx_ring", "tx_size", "tx_head", "tx_tail",
             "rx_drops", "rx_errors", "tx_errors")  # fmt: skip

    def __init__(self, bus: Bus, index: int, config: NicConfig) -> None:
        self._bus = bus
        self.index = index
        self.name = f"net{index}"
        base = regs.NET_BASE + regs.NET_STRIDE * index
        self.base = base
        self.ports = range(base, base + regs.NET_STRIDE)
        self.config = config
        self.backend: NetBackend | None = None
        self.reset()

    def reset(self) -> None:
        self.enabled = False
        self.rx_ring = self.rx_size = self.rx_head = self.rx_tail = 0
        self.tx_ring = self.tx_size = self.tx_head = self.tx_tail = 0
        self.rx_drops = self.rx_errors = self.tx_errors = 0

    def read(self, port: int, size: int) -> int:
        mac = self.config.mac
        return {
            regs.NET_MAC_LO: int.from_bytes(mac[:4], "little"),
            regs.NET_MAC_HI: int.from_bytes(mac[4:6], "little"),
            regs.NET_STATUS: 1,
            regs.NET_CTRL: int(self.enabled),
            regs.NET_RX_HEAD: self.rx_head & 0xFFFFFFFF,
            regs.NET_TX_HEAD: self.tx_head & 0xFFFFFFFF,
            regs.NET_RX_DROPS: self.rx_drops,
            regs.NET_RX_ERRORS: self.rx_errors,
            regs.NET_TX_ERRORS: self.tx_errors,
            regs.NET_IPV4: int.from_bytes(self.config.ipv4, "little"),
        }.get(port - self.base, 0)

    def write(self, port: int, size: int, value: int) -> None:
        off = port - self.base
        value &= 0xFFFFFFFF
        if off == regs.NET_CTRL:
            self.enabled = bool(value & 1)
        elif off == regs.NET_RX_RING:
            self.rx_ring = value
        elif off == regs.NET_RX_SIZE:
            self.rx_size = value
        elif off == regs.NET_RX_TAIL:
            self.rx_tail = value
        elif off == regs.NET_TX_RING:
            self.tx_ring = value
        elif off == regs.NET_TX_SIZE:
            self.tx_size = value
        elif off == regs.NET_TX_TAIL:
            self.tx_tail = value
            self._transmit()

    # -- transmit (deterministic) -----------------------------------------------
    def _transmit(self) -> None:
        if not (0 < self.tx_size <= MAX_RING and self._bus.ram_ok(self.tx_ring, self.tx_size * DESC.size)):
            self.tx_errors += 1
            self._note_drop(DROP_BAD_TX_DESCRIPTOR, b"")
            self.tx_head = self.tx_tail
            return
        pending = (self.tx_tail - self.tx_head) & 0xFFFFFFFF
        if pending > self.tx_size:  # the guest claims more frames than the ring holds
            self.tx_errors += 1
            self._note_drop(DROP_BAD_TX_DESCRIPTOR, b"")
            self.tx_head = (self.tx_tail - self.tx_size) & 0xFFFFFFFF
        while self.tx_head != self.tx_tail:
            slot = self.tx_ring + (self.tx_head % self.tx_size) * DESC.size
            addr, length, _flags = DESC.unpack(self._bus.mem_read(slot, DESC.size))
            if MIN_FRAME <= length <= MAX_FRAME and self._bus.ram_ok(addr, length):
                frame = self._bus.mem_read(addr, length)
                now = self._bus.now()
                self._bus.port.emit(Event(KIND_NET_TX, self.name, now, self._bus.vclock_at(now), card=self.index,
                                          length=length, flags=0, data=frame))  # fmt: skip
                if self.backend is not None:
                    self.backend.send(frame)
                flags = DONE
            else:
                self.tx_errors += 1
                self._note_drop(DROP_BAD_TX_DESCRIPTOR, b"")
                flags = DONE | ERR
            self._bus.mem_write(slot + 6, struct.pack("<H", flags))
            self.tx_head = (self.tx_head + 1) & 0xFFFFFFFF

    # -- receive (an async event, applied at a checkpoint) ------------------------
    def apply(self, event: Event) -> None:
        """An inbound frame (net_rx) arrived at a checkpoint: store it in the next RX buffer, or drop it."""
        frame = event.data or b""
        if not MIN_FRAME <= len(frame) <= MAX_FRAME:
            self.rx_errors += 1
            self._note_drop(DROP_BAD_FRAME, frame)
            return
        ring_ok = 0 < self.rx_size <= MAX_RING and self._bus.ram_ok(self.rx_ring, self.rx_size * DESC.size)
        if not self.enabled or not ring_ok:
            self.rx_drops += 1
            self._note_drop(DROP_RX_DISABLED, frame)
            return
        if self.rx_head == self.rx_tail or ((self.rx_tail - self.rx_head) & 0xFFFFFFFF) > self.rx_size:
            self.rx_drops += 1
            self._note_drop(DROP_NO_BUFFER, frame)
            return
        slot = self.rx_ring + (self.rx_head % self.rx_size) * DESC.size
        addr, capacity, _flags = DESC.unpack(self._bus.mem_read(slot, DESC.size))
        self.rx_head = (self.rx_head + 1) & 0xFFFFFFFF
        if capacity < len(frame) or not self._bus.ram_ok(addr, len(frame)):
            self.rx_errors += 1
            reason = DROP_BUFFER_TOO_SMALL if capacity < len(frame) else DROP_BAD_RX_DESCRIPTOR
            self._note_drop(reason, frame)
            self._bus.mem_write(slot + 6, struct.pack("<H", DONE | ERR))
        else:
            self._bus.mem_write(addr, frame)
            self._bus.mem_write(slot + 4, struct.pack("<HH", len(frame), DONE))
        self._bus.raise_irq(regs.IRQ_NET0 + self.index)

    def _note_drop(self, reason: int, frame: bytes) -> None:
        now = self._bus.now()
        self._bus.port.emit(Event(KIND_NET_DROP, self.name, now, self._bus.vclock_at(now), card=self.index,
                                  status=reason, length=len(frame), data=frame or None))  # fmt: skip

    def state(self) -> bytes:
        """Registers and counters, and the card's MAC and IPv4: they come from the trace's machine record, so an
        edited record diverges at the first checkpoint."""
        return self.config.mac + self.config.ipv4 + struct.pack(
            "<?12I", self.enabled, self.rx_ring, self.rx_size, self.rx_head, self.rx_tail, self.tx_ring,
            self.tx_size, self.tx_head, self.tx_tail, self.rx_drops, self.rx_errors, self.tx_errors, self.index,
        )  # fmt: skip


class AbsentNic(UnitBase):
    """The ports of a card slot with no card: reads float high (0xFFFFFFFF), writes vanish.

    Guests probe for cards by reading MAC_HI, as on a real bus; that must not fault.
    """

    def __init__(self, index: int) -> None:
        self.name = f"net{index}-absent"
        base = regs.NET_BASE + regs.NET_STRIDE * index
        self.ports = range(base, base + regs.NET_STRIDE)

    def read(self, port: int, size: int) -> int:
        return 0xFFFFFFFF

    def write(self, port: int, size: int, value: int) -> None:
        return None

    def state(self) -> bytes:
        return b""
