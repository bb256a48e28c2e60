"""Building the backend a `--net` spec names."""

from __future__ import annotations

from rrtool.board.net.base import FrameBackend
from rrtool.board.net.dgram import DgramNet
from rrtool.board.net.pcap import PcapNet
from rrtool.board.net.spec import NetError, NetSpec
from rrtool.board.net.tap import TapNet
from rrtool.board.net.user import UserNet


def make_backend(spec: NetSpec) -> FrameBackend:
    if spec.kind == "user":
        return UserNet(spec.index, spec.mac, spec.ip, spec.hostfwd)
    if spec.kind == "tap":
        return TapNet(spec.index, spec.options.get("ifname", f"rr{spec.index}"))
    if spec.kind == "socket":
        if "listen" not in spec.options or "peer" not in spec.options:
            raise NetError("--net socket needs listen=HOST:PORT and peer=HOST:PORT (loopback)")
        return DgramNet(spec.index, spec.options["listen"], spec.options["peer"])
    if "file" not in spec.options:
        raise NetError("--net pcap needs file=PATH")
    return PcapNet(spec.index, spec.options["file"])
