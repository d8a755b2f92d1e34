#!/usr/bin/env python3
"""Regenerate the sample captures in this directory and their ground truth.

Run from anywhere: ``python captures/make_captures.py [OUTDIR]``. The output is
deterministic (fixed timestamps, sequence numbers and gzip mtime), so rerunning it gives
byte-identical files; a test checks that.

Packets are built with scapy; the link-layer headers and the capture file formats are
written here with ``struct``, independently of pcapflows' own reader, so that reading
these files back tests pcapflows against something it did not produce.
``expected.json`` is the ground truth: for each capture, the flows in order of first
packet with the bytes each side sent, the messages, gaps and conflicts, all derived from
what this script put on the wire.
"""

from __future__ import annotations

import gzip
import json
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet import fragment as scapy_fragment
from scapy.layers.inet6 import IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrHopByHop
from scapy.layers.inet6 import fragment6 as scapy_fragment6
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Raw

T0 = 1_700_000_000.0


@dataclass
class Pkt:
    """One IP packet (bytes from the IP header on) with its capture time."""

    ts: float
    ip: bytes
    snap: int | None = None  # bytes of the frame kept when the snap length cuts it
    l2: str = "ip"  # "ip", or "arp" for link-layer noise with no IP


@dataclass
class Flow:
    """Ground truth for one connection."""

    client: tuple[str, int]
    server: tuple[str, int]
    handshake: bool = True
    messages: list[list[Any]] = field(default_factory=list)  # [from_client, hex, ts]
    gaps: list[list[Any]] = field(default_factory=list)  # [from_client, offset, length]
    conflicts: list[list[Any]] = field(default_factory=list)
    error: bool = False
    open_at_end: bool = False

    def sent(self, from_client: bool) -> bytes:
        return b"".join(bytes.fromhex(m[1]) for m in self.messages if m[0] == from_client)

    def as_json(self) -> dict[str, Any]:
        return {
            "client": list(self.client),
            "server": list(self.server),
            "handshake_seen": self.handshake,
            "messages": self.messages,
            "gaps": self.gaps,
            "conflicts": self.conflicts,
            "error": self.error,
            "open_at_end": self.open_at_end,
        }


def ip_layer(src: str, dst: str) -> Any:
    return IPv6(src=src, dst=dst) if ":" in src else IP(src=src, dst=dst, id=1, ttl=64)


class Conversation:
    """Builds one TCP connection packet by packet, tracking both sequence numbers."""

    def __init__(
        self,
        client: tuple[str, int],
        server: tuple[str, int],
        t0: float,
        isn_c: int = 1000,
        isn_s: int = 5000,
    ) -> None:
        self.client, self.server = client, server
        self.t = t0
        self.seq = {True: isn_c, False: isn_s}
        self.pkts: list[Pkt] = []
        self.flow = Flow(client, server)

    def _tcp(self, from_client: bool, flags: str, seq: int, payload: bytes) -> bytes:
        src, dst = (self.client, self.server) if from_client else (self.server, self.client)
        ack = self.seq[not from_client] & 0xFFFFFFFF if "A" in flags else 0
        pkt = ip_layer(src[0], dst[0]) / TCP(
            sport=src[1],
            dport=dst[1],
            flags=flags,
            seq=seq & 0xFFFFFFFF,
            ack=ack,
            window=64240,
        )
        if payload:
            pkt = pkt / Raw(payload)
        return bytes(pkt)

    def step(self, dt: float = 0.01) -> float:
        self.t = round(self.t + dt, 6)
        return self.t

    def handshake(self) -> Conversation:
        self.pkts.append(Pkt(self.step(), self._tcp(True, "S", self.seq[True], b"")))
        self.seq[True] += 1
        self.pkts.append(Pkt(self.step(), self._tcp(False, "SA", self.seq[False], b"")))
        self.seq[False] += 1
        self.pkts.append(Pkt(self.step(), self._tcp(True, "A", self.seq[True], b"")))
        return self

    def send(
        self, from_client: bool, data: bytes, mss: int = 1000, record: bool = True
    ) -> list[int]:
        """Send ``data`` in segments of at most ``mss``; returns their packet indexes."""
        idx = []
        first_ts = None
        for i in range(0, len(data), mss):
            part = data[i : i + mss]
            ts = self.step()
            first_ts = ts if first_ts is None else first_ts
            self.pkts.append(Pkt(ts, self._tcp(from_client, "PA", self.seq[from_client], part)))
            idx.append(len(self.pkts) - 1)
            self.seq[from_client] += len(part)
        self.pkts.append(
            Pkt(self.step(), self._tcp(not from_client, "A", self.seq[not from_client], b""))
        )
        if record:
            msgs = self.flow.messages
            if msgs and msgs[-1][0] == from_client:
                msgs[-1][1] += data.hex()
            else:
                msgs.append([from_client, data.hex(), first_ts])
        return idx

    def close(self) -> Conversation:
        self.pkts.append(Pkt(self.step(), self._tcp(True, "FA", self.seq[True], b"")))
        self.seq[True] += 1
        self.pkts.append(Pkt(self.step(), self._tcp(False, "FA", self.seq[False], b"")))
        self.seq[False] += 1
        self.pkts.append(Pkt(self.step(), self._tcp(True, "A", self.seq[True], b"")))
        return self

    def reset(self) -> Conversation:
        self.pkts.append(Pkt(self.step(), self._tcp(False, "RA", self.seq[False], b"")))
        self.flow.error = True
        return self


REQ = b"GET /index.html HTTP/1.1\r\nHost: example.test\r\nUser-Agent: pcapflows-sample\r\n\r\n"


def response(repeat: int) -> bytes:
    body = b"<html><body>" + b"pcapflows sample body. " * repeat + b"</body></html>"
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n"
    return head % len(body) + body


RESP = response(12)
BIG = response(80)  # more than one segment, and big enough to need IP fragments


def simple(client: tuple[str, int], server: tuple[str, int], t0: float, **kw: int) -> Conversation:
    c = Conversation(client, server, t0, **kw).handshake()
    c.send(True, REQ)
    c.send(False, RESP)
    return c.close()


# -- capture writers (struct only) -------------------------------------------------------

LINK_HEADERS = {
    # name: (linktype, function(ip bytes, version) -> frame)
    "ethernet": (1, lambda ip, v: _eth(v) + ip),
    "vlan": (1, lambda ip, v: _eth_tags(v, [0x8100]) + ip),
    "qinq": (1, lambda ip, v: _eth_tags(v, [0x88A8, 0x8100]) + ip),
    "sll": (
        113,
        lambda ip, v: struct.pack(">HHH8sH", 0, 1, 6, b"\x02" * 6 + b"\0\0", _etype(v)) + ip,
    ),
    "sll2": (
        276,
        lambda ip, v: (
            struct.pack(">HHIHBB8s", _etype(v), 0, 2, 1, 0, 6, b"\x02" * 6 + b"\0\0") + ip
        ),
    ),
    "null_le": (0, lambda ip, v: struct.pack("<I", 2 if v == 4 else 30) + ip),
    "null_be": (0, lambda ip, v: struct.pack(">I", 2 if v == 4 else 24) + ip),
    "null_af28": (0, lambda ip, v: struct.pack("<I", 2 if v == 4 else 28) + ip),
    "loop": (108, lambda ip, v: struct.pack(">I", 2 if v == 4 else 24) + ip),
    "raw12": (12, lambda ip, v: ip),
    "raw14": (14, lambda ip, v: ip),
    "raw101": (101, lambda ip, v: ip),
    "raw228": (228, lambda ip, v: ip),
    "raw229": (229, lambda ip, v: ip),
}


def _etype(v: int) -> int:
    return 0x0800 if v == 4 else 0x86DD


def _eth(v: int) -> bytes:
    return b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01" + struct.pack(">H", _etype(v))


def _eth_tags(v: int, tpids: list[int]) -> bytes:
    head = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01"
    for i, tpid in enumerate(tpids):
        head += struct.pack(">HH", tpid, 100 + i)
    return head + struct.pack(">H", _etype(v))


def frames(pkts: list[Pkt], link: str) -> list[tuple[float, bytes, int]]:
    """(timestamp, captured bytes, original length) per packet."""
    _, make = LINK_HEADERS[link]
    out = []
    for p in pkts:
        if p.l2 == "arp":
            frame = p.ip  # already a full Ethernet frame
        else:
            frame = make(p.ip, p.ip[0] >> 4)
            if link == "ethernet" and len(frame) < 60:
                frame += b"\x00" * (60 - len(frame))  # Ethernet minimum frame: padding
        cap = frame if p.snap is None else frame[: p.snap]
        out.append((p.ts, cap, len(frame)))
    return out


def write_pcap(
    path: Path,
    fr: list[tuple[float, bytes, int]],
    linktype: int,
    endian: str = "<",
    nano: bool = False,
) -> None:
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    units = 1_000_000_000 if nano else 1_000_000
    out = [struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, 262144, linktype)]
    for ts, data, orig in fr:
        ticks = round(ts * units)
        out.append(struct.pack(endian + "IIII", ticks // units, ticks % units, len(data), orig))
        out.append(data)
    path.write_bytes(b"".join(out))


def _pad4(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 4)


def _block(btype: int, body: bytes) -> bytes:
    body = _pad4(body)
    n = len(body) + 12
    return struct.pack("<II", btype, n) + body + struct.pack("<I", n)


def write_pcapng(
    path: Path, ifaces: list[tuple[int, int]], pkts: list[tuple[int, float, bytes, int]]
) -> None:
    """``ifaces``: (linktype, tsresol byte); ``pkts``: (interface, ts, data, orig)."""
    out = [_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))]
    for linktype, resol in ifaces:
        opts = struct.pack("<HH", 9, 1) + _pad4(bytes([resol])) + struct.pack("<HH", 0, 0)
        out.append(_block(1, struct.pack("<HHI", linktype, 0, 262144) + opts))
    for iface, ts, data, orig in pkts:
        resol = ifaces[iface][1]
        units = (1 << (resol & 0x7F)) if resol & 0x80 else 10**resol
        ticks = round(ts * units)
        body = struct.pack("<IIIII", iface, ticks >> 32, ticks & 0xFFFFFFFF, len(data), orig)
        out.append(_block(6, body + _pad4(data)))
    path.write_bytes(b"".join(out))


def gz(path: Path, data: bytes) -> None:
    with open(path, "wb") as f, gzip.GzipFile(fileobj=f, mode="wb", mtime=0) as g:
        g.write(data)


# -- the captures ------------------------------------------------------------------------


def demo() -> tuple[list[Pkt], list[Flow]]:
    """A realistic little session: several HTTP connections over IPv4 and IPv6."""
    flows: list[Flow] = []
    pkts: list[Pkt] = []
    a = simple(("192.168.1.10", 51000), ("93.184.216.34", 80), T0)
    b = Conversation(("192.168.1.10", 51001), ("93.184.216.34", 80), T0 + 0.5, 7_000, 9_000)
    b.handshake()
    b.send(True, REQ)
    idx = b.send(False, BIG, mss=1400)
    # The second segment of the response overtook the first on the way.
    b.pkts[idx[0]].ip, b.pkts[idx[1]].ip = b.pkts[idx[1]].ip, b.pkts[idx[0]].ip
    b.flow.messages[-1][2] = b.pkts[idx[1]].ts
    b.send(True, REQ.replace(b"index", b"style"))  # keep-alive: a second request
    b.send(False, RESP)
    dup = b.pkts[-2]  # retransmission of the last data segment
    b.pkts.append(Pkt(b.step(0.2), dup.ip))
    b.close()
    c = simple(("2001:db8::10", 51002), ("2001:db8::80", 80), T0 + 1.0)
    d = Conversation(("192.168.1.10", 51003), ("203.0.113.5", 443), T0 + 1.5).handshake()
    d.send(True, b"\x16\x03\x01\x00\x2a" + bytes(range(42)))
    d.reset()
    for conv in (a, b, c, d):
        pkts += conv.pkts
        flows.append(conv.flow)
    noise = bytes(
        IP(src="192.168.1.10", dst="192.168.1.1", id=2)
        / UDP(sport=5353, dport=53)
        / Raw(b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00")
    )
    pkts.append(Pkt(T0 + 0.25, noise))
    arp = bytes(
        Ether(src="02:00:00:00:00:01", dst="ff:ff:ff:ff:ff:ff")
        / ARP(psrc="192.168.1.10", pdst="192.168.1.1", hwsrc="02:00:00:00:00:01")
    )
    pkts.append(Pkt(T0 + 0.75, arp, l2="arp"))
    pkts.sort(key=lambda p: p.ts)
    return pkts, flows


def basic(client: str = "10.1.0.1", server: str = "10.1.0.2") -> tuple[list[Pkt], list[Flow]]:
    c = simple((client, 40000), (server, 80), T0)
    return c.pkts, [c.flow]


def ipv4_options() -> tuple[list[Pkt], list[Flow]]:
    pkts, flows = basic()
    out = []
    for p in pkts:
        ip = IP(p.ip)
        ip.options = [b"\x01\x01\x01\x00"]  # NOP NOP NOP EOL: 4 bytes of options
        del ip.ihl, ip.len, ip.chksum
        out.append(Pkt(p.ts, bytes(ip)))
    return out, flows


def ipv6_ext() -> tuple[list[Pkt], list[Flow]]:
    pkts, flows = basic("2001:db8::1", "2001:db8::2")
    out = []
    for p in pkts:
        v6 = IPv6(p.ip)
        tcp = v6[TCP]
        new = IPv6(src=v6.src, dst=v6.dst) / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() / tcp
        out.append(Pkt(p.ts, bytes(new)))
    return out, flows


def fragmented_v4() -> tuple[list[Pkt], list[Flow]]:
    c = Conversation(("10.2.0.1", 40000), ("10.2.0.2", 80), T0).handshake()
    c.send(True, REQ)
    c.send(False, BIG, mss=1400)
    c.close()
    out = []
    for p in c.pkts:
        ip = IP(p.ip)
        if len(p.ip) > 600:
            ip.id = 4242
            frags = [bytes(f) for f in scapy_fragment(IP(bytes(ip)), fragsize=400)]
            frags = [frags[-1], *frags[:-1]]  # last fragment first: out of order
            for i, f in enumerate(frags):
                out.append(Pkt(round(p.ts + i * 1e-5, 6), f))
            _completed_at(c.flow, p.ts, out[-1].ts)
        else:
            out.append(p)
    return out, [c.flow]


def _completed_at(flow: Flow, ts: float, done: float) -> None:
    """A fragmented packet exists once its last fragment arrives (Wireshark shows the
    reassembled packet in that frame): that is the capture time of its bytes."""
    for m in flow.messages:
        if m[2] == ts:
            m[2] = done


def fragmented_v6() -> tuple[list[Pkt], list[Flow]]:
    c = Conversation(("2001:db8::1", 40000), ("2001:db8::2", 80), T0).handshake()
    c.send(True, REQ)
    c.send(False, BIG, mss=1400)
    c.close()
    out = []
    for p in c.pkts:
        if len(p.ip) > 600:
            v6 = IPv6(p.ip)
            pkt = IPv6(src=v6.src, dst=v6.dst) / IPv6ExtHdrFragmentDefault() / v6[TCP]
            for i, f in enumerate(scapy_fragment6(pkt, 500)):
                out.append(Pkt(round(p.ts + i * 1e-5, 6), bytes(f)))
            _completed_at(c.flow, p.ts, out[-1].ts)
        else:
            out.append(p)
    return out, [c.flow]


def IPv6ExtHdrFragmentDefault() -> Any:
    from scapy.layers.inet6 import IPv6ExtHdrFragment

    return IPv6ExtHdrFragment(id=0x1234)


def rule_out_of_order_retrans() -> tuple[list[Pkt], list[Flow]]:
    c = Conversation(("10.3.0.1", 40000), ("10.3.0.2", 80), T0).handshake()
    idx = c.send(True, b"A" * 2500, mss=500)
    p = c.pkts
    p[idx[1]].ip, p[idx[3]].ip = p[idx[3]].ip, p[idx[1]].ip  # reorder
    p.insert(idx[4] + 1, Pkt(c.step(), p[idx[2]].ip))  # exact retransmission
    c.send(False, b"ok")
    return c.close().pkts, [c.flow]


def rule_conflict() -> tuple[list[Pkt], list[Flow]]:
    c = Conversation(("10.4.0.1", 40000), ("10.4.0.2", 80), T0).handshake()
    c.send(True, b"first copy wins")
    seq = c.seq[True] - len(b"first copy wins")
    c.pkts.append(Pkt(c.step(), c._tcp(True, "PA", seq + 6, b"COPY")))
    c.flow.conflicts.append([True, 6, 4])
    c.send(False, b"ok")
    return c.close().pkts, [c.flow]


def rule_gap_acked() -> tuple[list[Pkt], list[Flow]]:
    c = Conversation(("10.5.0.1", 40000), ("10.5.0.2", 80), T0).handshake()
    data = b"0123456789" * 30
    idx = c.send(True, data, mss=100, record=False)
    del c.pkts[idx[1]]  # never captured; the server's ACK covers it
    c.flow.messages.append([True, data[:100].hex(), c.pkts[idx[0]].ts])
    c.flow.messages.append([True, data[200:].hex(), c.pkts[idx[1]].ts])
    c.flow.gaps.append([True, 100, 100])
    c.send(False, b"ok")
    return c.close().pkts, [c.flow]


def rule_snaplen() -> tuple[list[Pkt], list[Flow]]:
    c = Conversation(("10.6.0.1", 40000), ("10.6.0.2", 80), T0).handshake()
    data = bytes(range(256)) * 2
    idx = c.send(True, data, record=False)
    # Keep 14 (Ethernet) + 20 (IP) + 20 (TCP) + 100 payload bytes of the frame.
    c.pkts[idx[0]].snap = 14 + 40 + 100
    c.flow.messages.append([True, data[:100].hex(), c.pkts[idx[0]].ts])
    c.flow.gaps.append([True, 100, len(data) - 100])
    c.send(False, b"ok")
    return c.close().pkts, [c.flow]


def rule_wrap() -> tuple[list[Pkt], list[Flow]]:
    c = Conversation(("10.7.0.1", 40000), ("10.7.0.2", 80), T0, 2**32 - 10, 2**32 - 300)
    c.handshake()
    c.send(True, REQ, mss=30)
    c.send(False, RESP, mss=500)
    c.seq[True] &= 0xFFFFFFFF
    c.seq[False] &= 0xFFFFFFFF
    return c.close().pkts, [c.flow]


def rule_port_reuse() -> tuple[list[Pkt], list[Flow]]:
    a = simple(("10.8.0.1", 40000), ("10.8.0.2", 80), T0)
    b = simple(("10.8.0.1", 40000), ("10.8.0.2", 80), T0 + 1, isn_c=700_000, isn_s=900_000)
    retried = a.pkts[0]  # a retransmitted SYN (same ISN) is the same connection
    a.pkts.insert(1, Pkt(round(retried.ts + 0.001, 6), retried.ip))
    return a.pkts + b.pkts, [a.flow, b.flow]


def rule_midstream() -> tuple[list[Pkt], list[Flow]]:
    c = Conversation(("10.9.0.1", 40000), ("10.9.0.2", 443), T0).handshake()
    c.send(True, b"ping")
    c.send(False, b"pong")
    pkts = c.pkts[3:]  # the handshake was not captured
    c.flow.handshake = False
    c.flow.open_at_end = True
    c.flow.messages = [m for m in c.flow.messages]
    # The capture starts with the server speaking: drop the client's first message.
    pkts = pkts[2:]
    c.flow.messages = c.flow.messages[1:]
    return pkts, [c.flow]


def rule_rst() -> tuple[list[Pkt], list[Flow]]:
    c = Conversation(("10.10.0.1", 40000), ("10.10.0.2", 80), T0).handshake()
    c.send(True, REQ)
    return c.reset().pkts, [c.flow]


def rule_fast_open() -> tuple[list[Pkt], list[Flow]]:
    c = Conversation(("10.11.0.1", 40000), ("10.11.0.2", 80), T0)
    ts = c.step()
    c.pkts.append(Pkt(ts, c._tcp(True, "S", c.seq[True], b"early data")))
    c.seq[True] += 1 + len(b"early data")
    c.flow.messages.append([True, b"early data".hex(), ts])
    c.pkts.append(Pkt(c.step(), c._tcp(False, "SA", c.seq[False], b"")))
    c.seq[False] += 1
    c.send(False, b"response")
    fin_ts = c.step()
    c.pkts.append(Pkt(fin_ts, c._tcp(True, "FPA", c.seq[True], b"bye")))
    c.seq[True] += 4
    c.flow.messages.append([True, b"bye".hex(), fin_ts])
    c.pkts.append(Pkt(c.step(), c._tcp(False, "FA", c.seq[False], b"")))
    c.seq[False] += 1
    c.pkts.append(Pkt(c.step(), c._tcp(True, "A", c.seq[True], b"")))
    return c.pkts, [c.flow]


def main(outdir: Path) -> None:
    outdir.mkdir(parents=True, exist_ok=True)
    expected: dict[str, Any] = {}

    def record(name: str, flows: list[Flow]) -> None:
        expected[name] = [f.as_json() for f in flows]

    pkts, flows = demo()
    eth = frames(pkts, "ethernet")
    write_pcapng(outdir / "demo.pcapng", [(1, 6)], [(0, t, d, o) for t, d, o in eth])
    record("demo.pcapng", flows)

    pkts4, flows4 = basic()
    pkts6, flows6 = basic("2001:db8::1", "2001:db8::2")
    for link in LINK_HEADERS:
        linktype, _ = LINK_HEADERS[link]
        p, f = (pkts6, flows6) if link == "raw229" else (pkts4, flows4)
        write_pcap(outdir / f"link_{link}.pcap", frames(p, link), linktype)
        record(f"link_{link}.pcap", f)
        if link.startswith("null") or link in ("loop", "sll2", "raw101"):
            write_pcap(outdir / f"link_{link}_v6.pcap", frames(pkts6, link), linktype)
            record(f"link_{link}_v6.pcap", flows6)

    write_pcap(outdir / "format_nsec_be.pcap", frames(pkts4, "ethernet"), 1, ">", nano=True)
    record("format_nsec_be.pcap", flows4)
    mixed = [(0, t, d, o) for t, d, o in frames(pkts4[:5], "ethernet")]
    mixed += [(1, t, d, o) for t, d, o in frames(pkts4[5:], "raw101")]
    write_pcapng(outdir / "format_two_interfaces.pcapng", [(1, 9), (101, 0x80 | 20)], mixed)
    record("format_two_interfaces.pcapng", flows4)
    gz(outdir / "format_gzip.pcap.gz", (outdir / "link_ethernet.pcap").read_bytes())
    record("format_gzip.pcap.gz", flows4)
    gz(outdir / "format_gzip.pcapng.gz", (outdir / "demo.pcapng").read_bytes())
    record("format_gzip.pcapng.gz", flows)

    cases = {
        "ip_v4_options.pcap": ipv4_options,
        "ip_v6_ext_headers.pcap": ipv6_ext,
        "ip_v4_fragments.pcap": fragmented_v4,
        "ip_v6_fragments.pcap": fragmented_v6,
        "rule_out_of_order_retrans.pcap": rule_out_of_order_retrans,
        "rule_conflict.pcap": rule_conflict,
        "rule_gap_acked.pcap": rule_gap_acked,
        "rule_snaplen.pcap": rule_snaplen,
        "rule_wrap.pcap": rule_wrap,
        "rule_port_reuse.pcap": rule_port_reuse,
        "rule_midstream.pcap": rule_midstream,
        "rule_rst.pcap": rule_rst,
        "rule_fast_open.pcap": rule_fast_open,
    }
    for name, make in cases.items():
        p, f = make()
        write_pcap(outdir / name, frames(p, "ethernet"), 1)
        record(name, f)

    (outdir / "expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent)
