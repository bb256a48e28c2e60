"""`--net KIND,key=value,...` parsed into a card identity and a backend to build."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from rrtool.board.nic import NicConfig

KINDS = ("user", "tap", "socket", "pcap")


class NetError(Exception):
    """A --net option that cannot be used; one line for the user."""


@dataclass(frozen=True)
class HostFwd:
    """hostfwd=udp:HOSTIP:HOSTPORT-:GUESTPORT (QEMU's syntax; the host side must be loopback)."""

    host_ip: str
    host_port: int
    guest_port: int

    @classmethod
    def parse(cls, text: str) -> HostFwd:
        try:
            proto, rest = text.split(":", 1)
            host, guest = rest.split("-", 1)
            host_ip, host_port = host.rsplit(":", 1)
            guest_port = guest.rsplit(":", 1)[-1]
            if proto != "udp":
                raise NetError(f"hostfwd {text!r}: only udp is supported")
            fwd = cls(host_ip or "127.0.0.1", int(host_port), int(guest_port))
        except (ValueError, IndexError):
            raise NetError(f"bad hostfwd {text!r} (expected udp:127.0.0.1:5555-:7)") from None
        loopback_only(fwd.host_ip, "hostfwd")
        return fwd


@dataclass(frozen=True)
class NetSpec:
    kind: str
    index: int
    mac: bytes
    ip: bytes
    options: dict[str, str] = field(default_factory=dict)
    hostfwd: tuple[HostFwd, ...] = ()

    @property
    def nic(self) -> NicConfig:
        return NicConfig(self.mac, self.ip)

    @classmethod
    def parse(cls, text: str, index: int) -> NetSpec:
        kind, *parts = text.split(",")
        if kind not in KINDS:
            raise NetError(f"unknown network backend {kind!r} (known: {', '.join(KINDS)})")
        options: dict[str, str] = {}
        fwds: list[HostFwd] = []
        for part in parts:
            key, eq, value = part.partition("=")
            if not eq:
                raise NetError(f"--net {text!r}: {part!r} is not key=value")
            if key == "hostfwd":
                fwds.append(HostFwd.parse(value))
            else:
                options[key] = value
        mac = bytes([0x52, 0x54, 0x00, 0x12, 0x34, 0x56 + index])
        if "mac" in options:
            try:
                mac = bytes.fromhex(options.pop("mac").replace(":", ""))
            except ValueError:
                mac = b""
            if len(mac) != 6:
                raise NetError(f"--net {text!r}: bad mac (expected 52:54:00:12:34:56)")
        try:
            ip = ipaddress.IPv4Address(options.pop("ip", "10.0.2.15")).packed
        except ValueError:
            raise NetError(f"--net {text!r}: bad ip") from None
        if fwds and kind != "user":
            raise NetError("hostfwd is only for the user backend")
        allowed = {"user": set(), "tap": {"ifname"}, "socket": {"listen", "peer"}, "pcap": {"file"}}[kind]
        unknown = set(options) - allowed
        if unknown:
            raise NetError(f"--net {kind}: unknown option {sorted(unknown)[0]!r}")
        return cls(kind, index, mac, ip, options, tuple(fwds))


def loopback_only(host: str, what: str) -> None:
    """rrtool never sends traffic off this machine: socket endpoints must be loopback addresses."""
    try:
        if not ipaddress.ip_address(host).is_loopback:
            raise NetError(f"{what}: {host} is not a loopback address (only 127.0.0.0/8 and ::1 are allowed)")
    except ValueError:
        raise NetError(f"{what}: {host!r} is not an IP address") from None


def parse_endpoint(text: str, what: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        raise NetError(f"{what}: bad endpoint {text!r} (expected 127.0.0.1:9000)") from None
    loopback_only(host or "127.0.0.1", what)
    return host or "127.0.0.1", number
