"""Network record/replay with real clients: user (loopback UDP), tap (a netns of our own), socket, pcap."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dpkt
import pytest

from rrtool.player.session import replay
from tests.conftest import BuildC, invoke
from tests.tracetools import read_rows, write_rows

GUEST_MAC = bytes.fromhex("525400123456")
PEER_MAC = bytes.fromhex("020000000001")
GUEST_IP = bytes([10, 0, 2, 15])
PEER_IP = bytes([10, 0, 2, 99])


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rrtool_cmd(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "rrtool.cli", *map(str, args)]


@contextmanager
def background(cmd: list[str]) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


def ask(sock: socket.socket, addr: tuple[str, int], message: bytes, expect: bytes = b"", tries: int = 20) -> bytes:
    """Send until a reply starting with `expect` comes back (the guest may still be booting)."""
    sock.settimeout(0.5)
    for _ in range(tries):
        sock.sendto(message, addr)
        try:
            reply, _ = sock.recvfrom(2048)
        except TimeoutError:
            continue
        if reply.startswith(expect):
            return reply
    raise AssertionError(f"no reply to {message!r}")


def udp_frame(payload: bytes, sport: int = 4321, dport: int = 7) -> bytes:
    udp = dpkt.udp.UDP(sport=sport, dport=dport, data=payload)
    udp.ulen = len(udp)
    ip = dpkt.ip.IP(src=PEER_IP, dst=GUEST_IP, p=dpkt.ip.IP_PROTO_UDP, ttl=64, data=udp)
    ip.len = len(ip)
    return bytes(dpkt.ethernet.Ethernet(dst=GUEST_MAC, src=PEER_MAC, type=dpkt.ethernet.ETH_TYPE_IP, data=ip))


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def kv_trace(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[bytes]]:
    """A kvstore session through `user` networking: puts, a guest restart, gets, quit."""
    tmp = tmp_path_factory.mktemp("kv")
    disk = tmp / "kv.img"
    disk.write_bytes(bytes(1 << 20))
    before = sha(disk)
    trace = tmp / "kv.arrow"
    port = free_udp_port()
    cmd = rrtool_cmd("record", "kvstore", "-o", trace, "--disk", disk, "--no-stdin", "-q",
                     "--net", f"user,hostfwd=udp:127.0.0.1:{port}-:5555")  # fmt: skip
    replies = []
    with background(cmd) as proc, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        addr = ("127.0.0.1", port)
        replies.append(ask(s, addr, b"PUT colour blue", b"OK"))
        replies.append(ask(s, addr, b"PUT answer 42", b"OK"))
        replies.append(ask(s, addr, b"GET colour", b"VALUE"))
        replies.append(ask(s, addr, b"DEL colour", b"OK"))
        replies.append(ask(s, addr, b"RESTART", b"RESTARTING"))
        replies.append(ask(s, addr, b"GET answer", b"VALUE"))  # survived the restart, from the disk
        replies.append(ask(s, addr, b"GET colour", b"NOTFOUND"))
        replies.append(ask(s, addr, b"QUIT", b"BYE"))
        _, stderr = proc.communicate(timeout=30)
        assert proc.returncode == 0, stderr
    assert sha(disk) == before  # the default recording never writes the user's image
    return trace, disk, replies


def test_kvstore_session_through_user_net_replays(kv_trace: tuple[Path, Path, list[bytes]]) -> None:
    trace, disk, replies = kv_trace
    assert replies[2] == b"VALUE blue"
    assert replies[5] == b"VALUE 42"
    rows = read_rows(trace)
    kinds = {r["kind"] for r in rows}
    assert {"net_rx", "net_tx", "blk_submit", "blk_complete"} <= kinds
    assert any(r["kind"] == "checkpoint" and r["cp_kind"] == "reset" for r in rows)
    moved = disk.with_suffix(".away")
    disk.rename(moved)  # replay never opens the disk, nor any socket
    try:
        rep = replay(trace)
    finally:
        moved.rename(disk)
    assert rep.verified, rep.divergence and rep.divergence.report()


def test_tampered_inbound_frame_diverges_at_the_reply(kv_trace: tuple[Path, Path, list[bytes]], tmp_path: Path) -> None:
    trace = kv_trace[0]
    rows = read_rows(trace)
    # The copy the guest answered (the client may have resent it while the guest was rebooting), and the
    # reply it got. A frame that arrives while the guest boots waits in the RX ring, so the reply can come
    # some checkpoints later: the divergence belongs at the reply, where the change first shows.
    idx, reply = next(
        (i, next(t for t in rows[i + 1:] if t["kind"] in ("net_rx", "net_tx")))
        for i, r in enumerate(rows)
        if r["kind"] == "net_rx" and b"GET answer" in (r["data"] or b"")
        and b"VALUE 42" in next(t["data"] for t in rows[i + 1:] if t["kind"] in ("net_rx", "net_tx"))
    )  # fmt: skip
    target = rows[idx]
    data = bytearray(target["data"])
    data[data.index(b"answer")] ^= 0x20  # 'a' -> 'A': a key that does not exist
    data[40:42] = b"\x00\x00"  # UDP checksum 0 (none), so the guest takes the changed datagram as valid
    target["data"] = bytes(data)
    bad = tmp_path / "tampered.arrow"
    write_rows(trace, bad, rows)
    div = replay(bad).divergence
    assert div is not None
    assert reply["kind"] == "net_tx" and div.checkpoint == reply["checkpoint"]
    assert div.what.startswith("net_tx")  # the reply: at another icount, or with other data
    assert f"icount={reply['icount']}" in div.expected
    assert "VALUE" in div.expected and "NOTFOU" in div.actual


def _netns_available() -> str | None:
    if os.geteuid() != 0:
        return "creating a network namespace needs root"
    if shutil.which("ip") is None or shutil.which("ping") is None:
        return "needs iproute2 and iputils-ping (.ci/run installs them)"
    if not Path("/dev/net/tun").exists():
        return "no /dev/net/tun on this machine"
    return None


def test_real_ping_and_udp_through_tap_in_a_private_netns(tmp_path: Path) -> None:
    reason = _netns_available()
    if reason:
        pytest.skip(reason)
    ns = f"rrtest-{uuid.uuid4().hex[:8]}"
    if subprocess.run(["ip", "netns", "add", ns], capture_output=True).returncode != 0:
        pytest.skip("cannot create a network namespace here")
    trace = tmp_path / "tap.arrow"
    try:
        subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"], check=True)
        cmd = ["ip", "netns", "exec", ns, *rrtool_cmd("record", "netecho", "-o", trace, "--no-stdin", "-q",
                                                      "--net", "tap,ifname=rr0,ip=10.77.0.15")]  # fmt: skip
        with background(cmd) as proc:
            for _ in range(100):
                if subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "show", "rr0"],
                                  capture_output=True).returncode == 0:  # fmt: skip
                    break
                time.sleep(0.05)
            subprocess.run(["ip", "netns", "exec", ns, "ip", "addr", "add", "10.77.0.1/24", "dev", "rr0"], check=True)
            subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "rr0", "up"], check=True)
            ping = subprocess.run(["ip", "netns", "exec", ns, "ping", "-c", "3", "-i", "0.2", "-W", "2", "10.77.0.15"],
                                  capture_output=True, text=True, timeout=30)  # fmt: skip
            assert ping.returncode == 0, ping.stdout + ping.stderr
            assert "3 received" in ping.stdout
            client = (
                "import socket\ns=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3)\n"
                "for m in [b'over the wire', b'QUIT']:\n"
                "    s.sendto(m, ('10.77.0.15', 7)); print(s.recvfrom(100)[0].decode())\n"
            )
            udp = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", client], capture_output=True,
                                 text=True, timeout=30)  # fmt: skip
            assert udp.stdout.split() == ["over", "the", "wire", "QUIT"], udp.stderr
            proc.communicate(timeout=30)
            assert proc.returncode == 0
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    assert ns not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    rows = read_rows(trace)
    icmp_replies = [r for r in rows if r["kind"] == "net_tx" and r["data"][23] == dpkt.ip.IP_PROTO_ICMP]
    assert len(icmp_replies) >= 3
    rep = replay(trace)  # the namespace and its TAP device are gone
    assert rep.verified, rep.divergence and rep.divergence.report()


def test_two_cards_bridge_with_card_ids(tmp_path: Path) -> None:
    a_in, a_out, b_in, b_out = (free_udp_port() for _ in range(4))
    trace = tmp_path / "bridge.arrow"
    cmd = rrtool_cmd("record", "bridge", "-o", trace, "--no-stdin", "-q",
                     "--net", f"socket,listen=127.0.0.1:{a_in},peer=127.0.0.1:{a_out}",
                     "--net", f"socket,listen=127.0.0.1:{b_in},peer=127.0.0.1:{b_out}")  # fmt: skip
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as side_a,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as side_b,
    ):
        side_a.bind(("127.0.0.1", a_out))
        side_b.bind(("127.0.0.1", b_out))
        side_a.settimeout(0.5)
        side_b.settimeout(0.5)
        with background(cmd) as proc:
            frame_ab = udp_frame(b"from a to b")
            frame_ba = udp_frame(b"from b to a", sport=99)
            for sender, receiver, frame, dest in ((side_a, side_b, frame_ab, a_in), (side_b, side_a, frame_ba, b_in)):
                for _ in range(20):
                    sender.sendto(frame, ("127.0.0.1", dest))
                    try:
                        got = receiver.recv(2048)
                        break
                    except TimeoutError:
                        continue
                assert got == frame
            side_a.sendto(udp_frame(b"QUIT"), ("127.0.0.1", a_in))
            proc.communicate(timeout=30)
            assert proc.returncode == 0
    rows = read_rows(trace)
    rx_cards = {(r["card"], r["device"]) for r in rows if r["kind"] == "net_rx"}
    tx_cards = {(r["card"], r["device"]) for r in rows if r["kind"] == "net_tx"}
    assert rx_cards == {(0, "net0"), (1, "net1")}
    assert tx_cards == {(0, "net0"), (1, "net1")}
    forwarded = [r for r in rows if r["kind"] == "net_tx" and r["data"] == frame_ab]
    assert forwarded and forwarded[0]["card"] == 1
    rep = replay(trace)
    assert rep.verified, rep.divergence and rep.divergence.report()


def write_pcap(path: Path, frames: list[tuple[float, bytes]]) -> None:
    with path.open("wb") as f:
        writer = dpkt.pcap.Writer(f)
        for ts, frame in frames:
            writer.writepkt(frame, ts=ts)


def test_bad_frames_are_dropped_counted_and_logged_and_pcap_is_deterministic(tmp_path: Path) -> None:
    cap = tmp_path / "in.pcap"
    write_pcap(cap, [
        (100.000, b"\x01\x02\x03"),  # a runt
        (100.001, udp_frame(b"x" * 1600)[:1600]),  # over the MTU
        (100.002, os.urandom(100)),  # garbage of a plausible size
        (100.003, udp_frame(b"ping one")),
        (100.004, udp_frame(b"QUIT")),
    ])  # fmt: skip
    icounts = []
    for i in range(2):
        trace = tmp_path / f"pcap{i}.arrow"
        proc = invoke("record", "netecho", "-o", trace, "--no-stdin", "-q", "--net", f"pcap,file={cap}", timeout=60)
        assert proc.returncode == 0, proc.stderr
        rows = read_rows(trace)
        drops = [r for r in rows if r["kind"] == "net_drop"]
        assert [d["status"] for d in drops][:2] == [2, 2]  # runt and oversize: bad frames
        icounts.append([(r["kind"], r["icount"]) for r in rows if r["kind"] in ("net_rx", "net_tx")])
        rep = replay(trace)
        assert rep.verified, rep.divergence and rep.divergence.report()
    assert icounts[0] == icounts[1]  # a capture replayed on the virtual clock is a deterministic source
    assert sum(1 for k, _ in icounts[0] if k == "net_rx") == 5


def test_socket_endpoints_must_be_loopback() -> None:
    spec = "socket,listen=127.0.0.1:9,peer=192.0.2.1:9"
    proc = invoke("run", "netecho", "--no-stdin", "--net", spec)
    assert proc.returncode == 2
    assert "not a loopback address" in proc.stderr


def test_malformed_guest_descriptors_get_an_error_status(build_c: BuildC, tmp_path: Path) -> None:
    from tests import guests

    path = build_c("bad_tx", guests.BAD_TX_DESCRIPTORS)
    trace = tmp_path / "badtx.arrow"
    port = free_udp_port()
    proc = invoke("record", path, "-o", trace, "--no-stdin", "--net",
                  f"socket,listen=127.0.0.1:{port},peer=127.0.0.1:{port + 1}", timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    flags = [int(x) for x in re.findall(r"desc \d flags (\d+)", proc.stdout)]
    assert flags == [3, 3, 3, 1]  # DONE|ERR three times, then DONE
    errors, head = (int(x) for x in re.search(r"tx_errors (\d+) tx_head (\d+)", proc.stdout).groups())  # type: ignore[union-attr]
    assert errors >= 4  # the three bad descriptors and the impossible tail
    assert head == 100  # the device caught up with the tail instead of looping over garbage
    rows = read_rows(trace)
    assert sum(1 for r in rows if r["kind"] == "net_drop" and r["status"] == 6) == errors
    assert sum(1 for r in rows if r["kind"] == "net_tx") >= 1
    assert replay(trace).verified
