"""`user` networking: a tiny gateway in the spirit of QEMU's slirp, no root needed.

The guest sees a gateway at the .2 address of its /24 that answers ARP and
ping. UDP the guest sends to the gateway's port P goes to 127.0.0.1:P from a
host socket (and replies come back from the gateway's port P). Host ports
forwarded with `hostfwd=udp:127.0.0.1:H-:G` reach the guest's port G; each
client gets its own gateway-side port so replies find their way back. Only
loopback is ever sent to.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import selectors
import socket
import threading

import dpkt

from rrtool.board.net.base import FrameBackend
from rrtool.board.net.spec import HostFwd, NetError

GATEWAY_MAC = bytes.fromhex("525500000202")
_BROADCAST = b"\xff" * 6
_NAT_PORTS = range(40000, 60000)


class UserNet(FrameBackend):
    def __init__(self, card: int, guest_mac: bytes, guest_ip: bytes, hostfwd: tuple[HostFwd, ...]) -> None:
        super().__init__(card)
        self.guest_mac = guest_mac
        self.guest_ip = guest_ip
        self.gateway_ip = guest_ip[:3] + bytes([2])
        self._hostfwd = hostfwd
        self._sel = selectors.DefaultSelector()
        self._lock = threading.Lock()
        self._fwd_socks: list[tuple[socket.socket, HostFwd]] = []
        # gateway port -> (forward socket, client address) for forwarded clients
        self._clients: dict[int, tuple[socket.socket, tuple[str, int]]] = {}
        self._client_ports: dict[tuple[int, tuple[str, int]], int] = {}
        self._next_port = itertools.cycle(_NAT_PORTS)
        # guest source port -> host socket for guest-initiated UDP
        self._outbound: dict[tuple[int, int], socket.socket] = {}
        self._wake_r, self._wake_w = os.pipe()
        self._thread: threading.Thread | None = None

    def open(self) -> None:
        for fwd in self._hostfwd:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                sock.bind((fwd.host_ip, fwd.host_port))
            except OSError as exc:
                sock.close()
                raise NetError(f"hostfwd {fwd.host_ip}:{fwd.host_port}: {exc.strerror}") from None
            self._fwd_socks.append((sock, fwd))
            self._sel.register(sock, selectors.EVENT_READ, ("fwd", fwd))
        self._sel.register(self._wake_r, selectors.EVENT_READ, ("wake", None))
        self._thread = threading.Thread(target=self._loop, name=f"user-net{self.card}", daemon=True)
        self._thread.start()

    def close(self) -> None:
        super().close()
        os.write(self._wake_w, b"x")
        if self._thread is not None:
            self._thread.join(timeout=2)
        with self._lock:
            for sock, _ in self._fwd_socks:
                sock.close()
            for sock in self._outbound.values():
                sock.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    # -- host -> guest ------------------------------------------------------------
    def _loop(self) -> None:
        while not self._closed.is_set():
            for key, _ in self._sel.select(timeout=0.5):
                what, info = key.data
                if what == "wake":
                    return
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                try:
                    payload, addr = sock.recvfrom(65535)
                except OSError:
                    continue
                if what == "fwd":
                    gw_port = self._client_port(sock, addr)
                    self._udp_to_guest(gw_port, info.guest_port, payload)
                else:  # a reply to guest-initiated UDP: info = (guest port, host port)
                    guest_port, host_port = info
                    self._udp_to_guest(host_port, guest_port, payload)

    def _client_port(self, sock: socket.socket, addr: tuple[str, int]) -> int:
        key = (sock.fileno(), addr)
        with self._lock:
            port = self._client_ports.get(key)
            if port is None:
                port = next(self._next_port)
                self._client_ports[key] = port
                self._clients[port] = (sock, addr)
            return port

    def _udp_to_guest(self, src_port: int, dst_port: int, payload: bytes) -> None:
        udp = dpkt.udp.UDP(sport=src_port, dport=dst_port, data=payload)
        udp.ulen = len(udp)
        ip = dpkt.ip.IP(src=self.gateway_ip, dst=self.guest_ip, p=dpkt.ip.IP_PROTO_UDP, ttl=64, data=udp)
        self._to_guest(ip)

    def _to_guest(self, ip: dpkt.ip.IP) -> None:
        ip.len = len(ip)
        eth = dpkt.ethernet.Ethernet(dst=self.guest_mac, src=GATEWAY_MAC, type=dpkt.ethernet.ETH_TYPE_IP, data=ip)
        self.deliver(bytes(eth))

    # -- guest -> host (called from the emulation thread: keep it short) -------------
    def send(self, frame: bytes) -> None:
        try:
            eth = dpkt.ethernet.Ethernet(frame)
        except (dpkt.UnpackError, dpkt.NeedData):
            return
        if eth.type == dpkt.ethernet.ETH_TYPE_ARP and isinstance(eth.data, dpkt.arp.ARP):
            self._arp(eth.data)
        elif eth.type == dpkt.ethernet.ETH_TYPE_IP and isinstance(eth.data, dpkt.ip.IP):
            ip = eth.data
            if ip.dst != self.gateway_ip:
                return  # nothing else exists on this virtual network
            if isinstance(ip.data, dpkt.icmp.ICMP) and ip.data.type == dpkt.icmp.ICMP_ECHO:
                self._ping_reply(ip)
            elif isinstance(ip.data, dpkt.udp.UDP):
                self._udp_from_guest(ip.data)

    def _arp(self, arp: dpkt.arp.ARP) -> None:
        if arp.op != dpkt.arp.ARP_OP_REQUEST or arp.tpa != self.gateway_ip:
            return
        reply = dpkt.arp.ARP(op=dpkt.arp.ARP_OP_REPLY, sha=GATEWAY_MAC, spa=self.gateway_ip, tha=arp.sha, tpa=arp.spa)
        eth = dpkt.ethernet.Ethernet(dst=arp.sha, src=GATEWAY_MAC, type=dpkt.ethernet.ETH_TYPE_ARP, data=reply)
        self.deliver(bytes(eth))

    def _ping_reply(self, ip: dpkt.ip.IP) -> None:
        echo = ip.data
        reply = dpkt.icmp.ICMP(type=dpkt.icmp.ICMP_ECHOREPLY, code=0, data=echo.data)
        self._to_guest(dpkt.ip.IP(src=self.gateway_ip, dst=ip.src, p=dpkt.ip.IP_PROTO_ICMP, ttl=64, data=reply))

    def _udp_from_guest(self, udp: dpkt.udp.UDP) -> None:
        with self._lock:
            client = self._clients.get(udp.dport)
        if client is not None:
            fwd_sock, addr = client
            with contextlib.suppress(OSError):
                fwd_sock.sendto(bytes(udp.data), addr)
            return
        key = (udp.sport, udp.dport)
        with self._lock:
            sock = self._outbound.get(key)
            if sock is None:
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sock.bind(("127.0.0.1", 0))
                self._outbound[key] = sock
                self._sel.register(sock, selectors.EVENT_READ, ("out", (udp.sport, udp.dport)))
        with contextlib.suppress(OSError):
            sock.sendto(bytes(udp.data), ("127.0.0.1", udp.dport))
