"""Building the backend a `--net` spec names.

The backends are imported when a spec names them: two of them need dpkt, which
costs a run without networking 70 ms of start-up for nothing.
"""

from __future__ import annotations

from rrtool.board.net.base import FrameBackend
from rrtool.board.net.spec import NetError, NetSpec


def make_backend(spec: NetSpec) -> FrameBackend:
    if spec.kind == "user":
        from rrtool.board.net.user import UserNet

        return UserNet(spec.index, spec.mac, spec.ip, spec.hostfwd)
    if spec.kind == "tap":
        from rrtool.board.net.tap import TapNet

        return TapNet(spec.index, spec.options.get("ifname", f"rr{spec.index}"))
    if spec.kind == "socket":
        if "listen" not in spec.options or "peer" not in spec.options:
            raise NetError("--net socket needs listen=HOST:PORT and peer=HOST:PORT (loopback)")
        from rrtool.board.net.dgram import DgramNet

        return DgramNet(spec.index, spec.options["listen"], spec.options["peer"])
    if "file" not in spec.options:
        raise NetError("--net pcap needs file=PATH")
    from rrtool.board.net.pcap import PcapNet

    return PcapNet(spec.index, spec.options["file"])
