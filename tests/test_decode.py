"""The decoder and the IP defragmenter, against frames built independently with scapy.

Every frame here is constructed by scapy from explicit field values, and every field of
the resulting :class:`Segment` is checked against those values: a mistake in the
decoder's offsets cannot be hidden by the same mistake in a test helper. Real captures
of the shared corpus are compared with tshark's own dissection at the end.
"""

from __future__ import annotations

import random
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_NOP, IPOption_RR, fragment
from scapy.layers.inet6 import (
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    IPv6ExtHdrSegmentRouting,
    PadN,
    fragment6,
)
from scapy.layers.ipsec import AH
from scapy.layers.l2 import (
    ARP,
    CookedLinux,
    CookedLinuxV2,
    Dot1AD,
    Dot1Q,
    Ether,
    Loopback,
    LoopbackOpenBSD,
)
from scapy.packet import Packet as ScapyPacket
from scapy.packet import Raw
from scapy.utils import RawPcapReader, wrpcap
from tcptable import CORPUS, require_tshark

import pcapflows
from pcapflows.decode.decoder import Decoder
from pcapflows.decode.ipfrag import MAX_DATAGRAM, Defragmenter
from pcapflows.decode.segment import ACK, CWR, ECE, FIN, PSH, RST, SYN, URG, Segment, TunnelHop
from pcapflows.io.packet import Packet
from pcapflows.stats import ReadStats

# The values every crafted segment carries, and what the decoder must give back.
SRC4, DST4 = "192.0.2.1", "198.51.100.7"
# Given to scapy uncompressed and in upper case; expected compressed and lower case.
SRC6, DST6 = "2001:0DB8:0000:0000:0000:0000:0000:0001", "2001:DB8:0:0:8:800:200C:417A"
SRC6_TEXT, DST6_TEXT = "2001:db8::1", "2001:db8::8:800:200c:417a"
SPORT, DPORT = 40123, 443
SEQ, ACKNO, WINDOW = 0xDEADBEEF, 0x01020304, 29200
PAYLOAD = b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"
TS, FRAME = 1_700_000_000.25, 42


def eth(**fields: object) -> ScapyPacket:
    """Ethernet with explicit addresses: without them scapy looks the destination up
    on the network (ARP / neighbour discovery), which costs a second per frame."""
    return Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02", **fields)


def tcp(payload: bytes = PAYLOAD, **fields: object) -> ScapyPacket:
    values: dict[str, object] = {
        "sport": SPORT,
        "dport": DPORT,
        "seq": SEQ,
        "ack": ACKNO,
        "flags": "PA",
        "window": WINDOW,
    }
    values.update(fields)
    return TCP(**values) / Raw(payload) if payload else TCP(**values)


def ip4(**fields: object) -> ScapyPacket:
    return IP(src=SRC4, dst=DST4, **fields)


def ip6(**fields: object) -> ScapyPacket:
    return IPv6(src=SRC6, dst=DST6, **fields)


def decode(
    linktype: int,
    data: bytes,
    orig_len: int | None = None,
    *,
    stats: ReadStats | None = None,
    decoder: Decoder | None = None,
    ts: float = TS,
    index: int = FRAME,
) -> tuple[Segment | None, ReadStats]:
    if decoder is None:
        stats = stats if stats is not None else ReadStats()
        decoder = Decoder(stats)
    pkt = Packet(ts, linktype, data, len(data) if orig_len is None else orig_len, index)
    # What the reader calls: every frame built here carries one packet at most.
    segs = decoder.decode_all(pkt)
    assert len(segs) <= 1, segs
    return (segs[0] if segs else None), decoder.stats


def check(
    seg: Segment | None,
    version: int,
    *,
    payload: bytes = PAYLOAD,
    flags: int = PSH | ACK,
    missing: int = 0,
    ts: float = TS,
    frame: int = FRAME,
    sport: int = SPORT,
    dport: int = DPORT,
    tunnel: tuple[TunnelHop, ...] = (),
) -> None:
    """Every field of ``seg`` against what was given to scapy."""
    assert seg is not None
    src, dst = (SRC4, DST4) if version == 4 else (SRC6_TEXT, DST6_TEXT)
    assert seg == Segment(
        timestamp=ts,
        src=src,
        sport=sport,
        dst=dst,
        dport=dport,
        seq=SEQ,
        ack=ACKNO,
        flags=flags,
        payload=payload,
        window=WINDOW,
        missing=missing,
        frame=frame,
        tunnel=tunnel,
    )


def nothing_lost(stats: ReadStats, segments: int = 1) -> None:
    assert stats.tcp_segments == segments
    assert not stats.anomalies, stats.anomaly_details
    assert not stats.skipped


# -- link types -------------------------------------------------------------------------

L3: dict[int, Callable[[], ScapyPacket]] = {4: lambda: ip4() / tcp(), 6: lambda: ip6() / tcp()}

#: (case name, link type, IP versions, how the frame wraps the IP packet)
LINKS: list[tuple[str, int, tuple[int, ...], Callable[[ScapyPacket], bytes]]] = [
    ("ethernet", 1, (4, 6), lambda p: bytes(eth() / p)),
    ("ethernet 802.1q", 1, (4, 6), lambda p: bytes(eth() / Dot1Q(vlan=10) / p)),
    ("ethernet qinq", 1, (4, 6), lambda p: bytes(eth() / Dot1AD(vlan=7) / Dot1Q(vlan=10) / p)),
    (
        "ethernet 0x9100 three tags",
        1,
        (4, 6),
        lambda p: bytes(eth(type=0x9100) / Dot1Q(vlan=1) / Dot1AD(vlan=2) / Dot1Q(vlan=3) / p),
    ),
    ("sll", 113, (4, 6), lambda p: bytes(CookedLinux() / p)),
    ("sll vlan", 113, (4, 6), lambda p: bytes(CookedLinux() / Dot1Q(vlan=5) / p)),
    ("sll2", 276, (4, 6), lambda p: bytes(CookedLinuxV2() / p)),
    ("sll2 vlan", 276, (4, 6), lambda p: bytes(CookedLinuxV2() / Dot1Q(vlan=5) / p)),
    ("null little-endian", 0, (4,), lambda p: bytes(Loopback(type=2) / p)),
    ("null big-endian", 0, (4,), lambda p: struct.pack(">I", 2) + bytes(p)),
    ("loop", 108, (4,), lambda p: bytes(LoopbackOpenBSD(type=2) / p)),
    ("raw 12", 12, (4, 6), bytes),
    ("raw 14", 14, (4, 6), bytes),
    ("raw 101", 101, (4, 6), bytes),
    ("ipv4 228", 228, (4,), bytes),
    ("ipv6 229", 229, (6,), bytes),
]


def _ethertype_of(p: ScapyPacket) -> bytes:
    return b"\x86\xdd" if isinstance(p, IPv6) else b"\x08\x00"


def _pbb(p: ScapyPacket, c_tag: bool = False) -> bytes:
    """802.1ad backbone tag, 802.1ah I-TAG (I-SID 0x0a0b0c), customer addresses, an
    optional customer 802.1Q tag, then the customer's type."""
    itag = b"\x00\x0a\x0b\x0c" + bytes.fromhex("020000000c02020000000c01")
    tag = b"\x81\x00\x00\x21" if c_tag else b""
    return bytes(eth() / Dot1AD(vlan=30, type=0x88E7)) + itag + tag + _ethertype_of(p) + bytes(p)


def _fabricpath(p: ScapyPacket, vlan: bool = False) -> bytes:
    """Cisco FabricPath: outer switch addresses, type 0x8903, forwarding tag and TTL,
    then the whole original frame."""
    inner = eth() / Dot1Q(vlan=9) / p if vlan else eth() / p
    return bytes.fromhex("020000000f02020000000f01") + b"\x89\x03\x00\x3f" + bytes(inner)


def _arcnet_id(p: ScapyPacket, rfc1201: bool = True) -> bytes:
    if isinstance(p, IPv6):
        return b"\xc4"
    return b"\xd4" if rfc1201 else b"\xf0"


LINKS += [
    (
        "vn-tag",
        1,
        (4, 6),
        lambda p: bytes(eth(type=0x8926)) + b"\x80\x05\x40\x07" + _ethertype_of(p) + bytes(p),
    ),
    (
        "802.1q then vn-tag",
        1,
        (4, 6),
        lambda p: (
            bytes(eth() / Dot1Q(vlan=3, type=0x8926))
            + b"\x00\x01\x00\x02"
            + _ethertype_of(p)
            + bytes(p)
        ),
    ),
    ("pbb", 1, (4, 6), _pbb),
    ("pbb with a customer tag", 1, (4, 6), lambda p: _pbb(p, c_tag=True)),
    ("sll2 pbb", 276, (4, 6), lambda p: bytes(CookedLinuxV2(proto=0x88E7)) + _pbb(p)[18:]),
    ("fabricpath", 1, (4, 6), _fabricpath),
    ("fabricpath with a vlan tag", 1, (4, 6), lambda p: _fabricpath(p, vlan=True)),
    (
        "ppp mpls",
        9,
        (4, 6),
        lambda p: (
            b"\xff\x03\x02\x81"
            + struct.pack(">II", 16 << 12 | 64, 17 << 12 | 1 << 8 | 64)
            + bytes(p)
        ),
    ),
    (
        "fddi llc snap",
        10,
        (4, 6),
        lambda p: (
            b"\x50"
            + bytes.fromhex("020000000b02020000000b01")
            + b"\xaa\xaa\x03\x00\x00\x00"
            + _ethertype_of(p)
            + bytes(p)
        ),
    ),
    (
        "arcnet bsd rfc 1201",
        7,
        (4, 6),
        lambda p: b"\x01\x02" + _arcnet_id(p) + b"\x00\x00\x07" + bytes(p),
    ),
    ("arcnet bsd rfc 1051", 7, (4,), lambda p: b"\x01\x02\xf0" + bytes(p)),
    (
        "arcnet bsd exception frame",
        7,
        (4, 6),
        lambda p: (
            b"\x01\x02"
            + _arcnet_id(p)
            + b"\xff\xff\xff"
            + _arcnet_id(p)
            + b"\x00\x00\x07"
            + bytes(p)
        ),
    ),
    (
        "arcnet linux",
        129,
        (4, 6),
        lambda p: b"\x01\x02\x00\x00" + _arcnet_id(p) + b"\x00\x00\x07" + bytes(p),
    ),
    ("arcnet linux rfc 1051", 129, (4,), lambda p: b"\x01\x02\x00\x00\xf0" + bytes(p)),
]
# Every BSD AF_INET6 value (Linux, NetBSD/OpenBSD, FreeBSD, macOS), both byte orders.
for _af in (10, 24, 28, 30):
    LINKS.append((f"null le af {_af}", 0, (6,), lambda p, af=_af: bytes(Loopback(type=af) / p)))
    LINKS.append((f"null be af {_af}", 0, (6,), lambda p, af=_af: struct.pack(">I", af) + bytes(p)))
    LINKS.append(
        (f"loop af {_af}", 108, (6,), lambda p, af=_af: bytes(LoopbackOpenBSD(type=af) / p))
    )


@pytest.mark.parametrize(
    ("linktype", "version", "wrap"),
    [
        pytest.param(lt, v, wrap, id=f"{name} v{v}")
        for name, lt, versions, wrap in LINKS
        for v in versions
    ],
)
def test_link_types(linktype: int, version: int, wrap: Callable[[ScapyPacket], bytes]) -> None:
    seg, stats = decode(linktype, wrap(L3[version]()))
    check(seg, version)
    nothing_lost(stats)


def test_unknown_link_type_and_ethertypes_are_skipped_by_name() -> None:
    stats = ReadStats()
    assert decode(147, bytes(ip4() / tcp()), stats=stats)[0] is None
    assert decode(1, bytes(eth() / ARP()), stats=stats)[0] is None
    assert decode(1, bytes(eth() / Dot1Q() / ARP()), stats=stats)[0] is None
    assert decode(0, struct.pack("<I", 7) + bytes(ip4() / tcp()), stats=stats)[0] is None
    assert (
        decode(1, bytes(eth(type=0x88E7)) + b"\0" * 16 + bytes(eth() / ARP())[12:], stats=stats)[0]
        is None
    )
    assert decode(7, b"\x01\x02\xd5\x00\x00\x01" + bytes(ARP()), stats=stats)[0] is None
    assert decode(129, b"\x01\x02\x00\x00\xfa" + b"\0" * 40, stats=stats)[0] is None
    fddi_smt = b"\x41" + b"\x02" * 12 + b"\0" * 40
    assert decode(10, fddi_smt, stats=stats)[0] is None
    fddi_llc = b"\x50" + b"\x02" * 12 + b"\x42\x42\x03" + b"\0" * 40  # spanning tree
    assert decode(10, fddi_llc, stats=stats)[0] is None
    assert stats.skipped == {
        "linktype 147 unsupported": 1,
        "ethertype 0x0806": 3,
        "loopback address family 7": 1,
        "arcnet protocol 0xd5": 1,
        "arcnet protocol 0xfa": 1,
        "fddi frame without llc": 1,
        "fddi llc frame without snap": 1,
    }
    assert stats.tcp_segments == 0
    assert not stats.anomalies


def test_not_tcp_is_skipped_by_protocol() -> None:
    stats = ReadStats()
    frames = [
        eth() / ip4() / UDP(sport=53, dport=53) / Raw(b"x"),
        eth() / ip6() / UDP() / Raw(b"x"),
        eth() / ip4() / ICMP(),
        eth() / ip6() / IPv6ExtHdrHopByHop() / UDP(),
        eth() / ip6(nh=59),
        eth() / ip4(proto=200) / Raw(b"abcd"),
    ]
    for f in frames:
        assert decode(1, bytes(f), stats=stats)[0] is None
    assert stats.skipped == {
        "not tcp: udp": 3,
        "not tcp: icmp": 1,
        "ipv6 no next header": 1,
        "not tcp: ip protocol 200": 1,
    }
    assert not stats.anomalies


# -- IPv4 and TCP details -----------------------------------------------------------------


def test_ipv4_options_are_skipped() -> None:
    opts = [IPOption_RR(routers=["10.0.0.1", "10.0.0.2"]), IPOption_NOP(), IPOption_NOP()]
    frame = bytes(eth() / ip4(options=opts) / tcp())
    assert frame[14] & 0x0F > 5  # scapy did put the options in
    seg, stats = decode(1, frame)
    check(seg, 4)
    nothing_lost(stats)


def splice_ipv4_options(frame: bytes, options: bytes) -> bytes:
    """An Ethernet/IPv4 ``frame`` (no options) given exactly ``options`` (padded with
    zeros to 4 bytes), spliced in by hand: scapy would repair a broken option."""
    opts = options + b"\0" * (-len(options) % 4)
    ip = bytearray(frame[14:34])
    ip[0] = 0x40 | (5 + len(opts) // 4)
    struct.pack_into(">H", ip, 2, len(frame) - 14 + len(opts))
    struct.pack_into(">H", ip, 10, 0)
    struct.pack_into(">H", ip, 10, ip_checksum(bytes(ip) + opts))
    return frame[:14] + bytes(ip) + opts + frame[34:]


def with_ipv4_options(options: bytes, **fields: object) -> bytes:
    """The usual crafted segment (``tcp(**fields)``) with ``options`` in its IPv4 header."""
    return splice_ipv4_options(bytes(eth() / ip4() / tcp(**fields)), options)


def ip_checksum(header: bytes) -> int:
    total = sum(struct.unpack(f">{len(header) // 2}H", header))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


#: IPv4 options that make a header untrustworthy (option bytes, before padding).
BAD_IPV4_OPTIONS = {
    "record route runs past the header": b"\x07\x20\x04" + b"\0" * 5,
    "unknown option runs past the header": b"\x9e\x10\x00\x00",
    "length 0": b"\x88\x00\x00\x00",
    "length 1": b"\x94\x01\x00\x00",
    "no room for the length byte": b"\x01\x01\x01\x07",
    "router alert of length 6": b"\x94\x06" + b"\0" * 4,
    "traceroute of length 8": b"\x52\x08" + b"\0" * 6,
    "quick-start of length 6": b"\x19\x06" + b"\0" * 4,
    "record route without a pointer": b"\x07\x02\x00\x00",
    "timestamp without its flags": b"\x44\x03\x05\x00",
}
#: Unusual but well-formed IPv4 options.
GOOD_IPV4_OPTIONS = {
    "record route": b"\x07\x07\x04" + b"\0" * 4,
    "nops then router alert": b"\x01\x01\x94\x04\x00\x00",
    "loose source route, empty": b"\x83\x03\x04",
    "basic security, shortest": b"\x82\x03\x01",
    "timestamp, no room for entries": b"\x44\x04\x05\x00",
    "unknown option of length 2": b"\x9e\x02",
    "end of list then non-zero padding": b"\x00\x07\x03",
    "stream id": b"\x88\x04\x00\x01",
}


@pytest.mark.parametrize("case", list(BAD_IPV4_OPTIONS), ids=list(BAD_IPV4_OPTIONS))
def test_malformed_ipv4_options_are_damage(case: str) -> None:
    """Suricata drops such a packet and tshark flags it (test below); its payload must
    never be delivered as data of the connection."""
    seg, stats = decode(1, with_ipv4_options(BAD_IPV4_OPTIONS[case]))
    assert seg is None
    assert stats.anomalies == {"bad ipv4 options": 1}
    assert stats.anomaly_details[0].startswith(f"bad ipv4 options: frame {FRAME}: option ")
    assert stats.tcp_segments == 0 and not stats.skipped


@pytest.mark.parametrize("case", list(GOOD_IPV4_OPTIONS), ids=list(GOOD_IPV4_OPTIONS))
def test_wellformed_ipv4_options_are_walked_over(case: str) -> None:
    seg, stats = decode(1, with_ipv4_options(GOOD_IPV4_OPTIONS[case]))
    check(seg, 4)
    nothing_lost(stats)


def _tshark_expert(frames: list[bytes], tmp_path: Path) -> list[set[str]]:
    """The expert-info groups tshark reports on each of ``frames`` (Ethernet)."""
    path = tmp_path / "frames.pcap"
    wrpcap(str(path), [Ether(f) for f in frames])
    out = subprocess.run(
        [require_tshark(), "-r", str(path), "-T", "fields", "-e", "frame.number"]
        + [f"-e_ws.expert.{field}" for field in ("group", "severity")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    groups: list[set[str]] = []
    for line in out.splitlines():
        _, group, severity = [*line.split("\t"), "", ""][:3]
        found = set()
        for g, sev in zip(group.split(","), severity.split(","), strict=False):
            # 0x09000000 protocol, 0x07000000 malformed; severity 0x00600000 warning
            # and above (a note, like "TCP keep-alive segment", is not a complaint).
            if g and int(g) in (0x09000000, 0x07000000) and int(sev) >= 0x00600000:
                found.add(g)
        groups.append(found)
    return groups


def test_tshark_agrees_which_ipv4_options_are_malformed(tmp_path: Path) -> None:
    """tshark 4.0 warns about every option the decoder calls damage ("option goes past
    end of options", "too-short option length", "should be 4"), or calls the packet
    malformed; and about none of the options it accepts."""
    bad = [with_ipv4_options(o, seq=SEQ + i) for i, o in enumerate(BAD_IPV4_OPTIONS.values())]
    good = [with_ipv4_options(o, seq=SEQ - i) for i, o in enumerate(GOOD_IPV4_OPTIONS.values())]
    verdicts = _tshark_expert(bad + good, tmp_path)
    assert len(verdicts) == len(bad) + len(good)
    for case, verdict in zip(BAD_IPV4_OPTIONS, verdicts[: len(bad)], strict=True):
        assert verdict, f"tshark accepts {case}"
    for case, verdict in zip(GOOD_IPV4_OPTIONS, verdicts[len(bad) :], strict=True):
        assert not verdict, f"tshark complains about {case}"


def test_payload_behind_malformed_ipv4_options_is_never_delivered(tmp_path: Path) -> None:
    """End to end: the middle segment of three has an option running past its header.
    It is damage, counted, and its bytes are not data (on the code before the check,
    they were delivered between the other two)."""
    frames = []
    for seq, payload, options in ((100, b"GOOD1", b""), (105, b"EVIL!", b"\x07\x20\x04")):
        base = eth() / ip4() / TCP(sport=40000, dport=80, seq=seq, ack=1, flags="PA")
        frames.append(splice_ipv4_options(bytes(base / Raw(payload)), options))
    frames.append(bytes(eth() / ip4() / TCP(sport=40000, dport=80, seq=105, ack=1) / "GOOD2"))
    path = tmp_path / "evil.pcap"
    wrpcap(str(path), [Ether(f) for f in frames])
    reader = pcapflows.read(path)
    with pytest.warns(pcapflows.PcapflowsWarning, match="1 x bad ipv4 options"):
        data = b"".join(m.content for f in reader for m in f.messages)
    assert data == b"GOOD1GOOD2"
    assert reader.stats.anomalies == {"bad ipv4 options": 1}


#: Hop-by-hop or destination options (the bytes after the next-header and length
#: bytes of an 8-byte header) that run past their header or contradict their RFC.
BAD_IPV6_OPTIONS = {
    "padn runs past the header": b"\x01\x09" + b"\0" * 4,
    "padn of length 1 in a 1-byte space": b"\x05\x02\0\0\x01\x01",
    "no room for the length byte": b"\0" * 5 + b"\x05",
    "router alert of length 4": b"\x05\x04" + b"\0" * 4,
    "jumbo payload of length 2": b"\xc2\x02\0\0\x01\x00",
}
GOOD_IPV6_OPTIONS = {
    "padn": b"\x01\x04" + b"\0" * 4,
    "router alert and padn 0": b"\x05\x02\0\0\x01\x00",
    "pad1 only": b"\0" * 6,
    "unknown skippable option": b"\x1e\x04abcd",
}


@pytest.mark.parametrize("header", [0, 60], ids=["hop-by-hop", "destination"])
@pytest.mark.parametrize("case", list(BAD_IPV6_OPTIONS), ids=list(BAD_IPV6_OPTIONS))
def test_malformed_ipv6_options_are_damage(case: str, header: int) -> None:
    ext = b"\x06\x00" + BAD_IPV6_OPTIONS[case]
    seg, stats = decode(1, bytes(eth() / ip6(nh=header) / Raw(ext) / tcp()))
    assert seg is None
    assert stats.anomalies == {"bad ipv6 options": 1}
    assert stats.tcp_segments == 0 and not stats.skipped


@pytest.mark.parametrize("header", [0, 60], ids=["hop-by-hop", "destination"])
@pytest.mark.parametrize("case", list(GOOD_IPV6_OPTIONS), ids=list(GOOD_IPV6_OPTIONS))
def test_wellformed_ipv6_options_are_walked_over(case: str, header: int) -> None:
    ext = b"\x06\x00" + GOOD_IPV6_OPTIONS[case]
    seg, stats = decode(1, bytes(eth() / ip6(nh=header) / Raw(ext) / tcp()))
    check(seg, 6)
    nothing_lost(stats)


def test_ipv6_extension_header_past_the_packet_is_damage() -> None:
    """A destination options header claiming 88 bytes in a packet of 66 (8 of them
    before TCP): counted, not walked into the TCP header and beyond."""
    frame = bytes(eth() / ip6(nh=60) / Raw(b"\x06\x0a" + b"\x01\x04" + b"\0" * 4) / tcp())
    seg, stats = decode(1, frame)
    assert seg is None
    assert stats.anomalies == {"truncated ipv6 extension header": 1}


def test_tcp_options_are_not_payload() -> None:
    opts = [("MSS", 1460), ("NOP", None), ("WScale", 7), ("SAckOK", b""), ("Timestamp", (1, 2))]
    seg, stats = decode(1, bytes(eth() / ip4() / tcp(options=opts)))
    check(seg, 4)
    nothing_lost(stats)


def test_every_flag_and_only_the_low_eight_bits() -> None:
    # 0x1FF also sets NS (the ninth bit, in the data offset byte): not part of ``flags``.
    seg, _ = decode(1, bytes(eth() / ip4() / tcp(b"", flags=0x1FF)))
    check(seg, 4, payload=b"", flags=FIN | SYN | RST | PSH | ACK | URG | ECE | CWR)
    for name, value in (("F", FIN), ("S", SYN), ("R", RST), ("U", URG), ("E", ECE), ("C", CWR)):
        seg, _ = decode(1, bytes(eth() / ip6() / tcp(b"", flags=name)))
        check(seg, 6, payload=b"", flags=value)


def test_ethernet_padding_is_not_payload() -> None:
    frame = bytes(eth() / ip4() / tcp(b"x"))
    assert len(frame) < 60
    padded = frame + b"\xaa" * (60 - len(frame))
    seg, stats = decode(1, padded)
    check(seg, 4, payload=b"x")
    nothing_lost(stats)
    # A trailer after an IPv6 packet (an FCS, say) is not payload either.
    seg, stats = decode(1, bytes(eth() / ip6() / tcp()) + b"\x01\x02\x03\x04")
    check(seg, 6)
    nothing_lost(stats)


# -- IPv6 extension headers ---------------------------------------------------------------

EXTENSION_CHAINS: dict[str, Callable[[], ScapyPacket]] = {
    "hop-by-hop": lambda: IPv6ExtHdrHopByHop(),
    "hop routing dest": lambda: (
        IPv6ExtHdrHopByHop()
        / IPv6ExtHdrRouting(addresses=["2001:db8::99"], segleft=0)
        / IPv6ExtHdrDestOpt()
    ),
    "padded hop, dest, routing, dest": lambda: (
        IPv6ExtHdrHopByHop(options=[PadN(optdata=b"\0" * 12)])
        / IPv6ExtHdrDestOpt()
        / IPv6ExtHdrRouting(addresses=["2001:db8::98", "2001:db8::99"], segleft=0)
        / IPv6ExtHdrDestOpt(options=[PadN(optdata=b"\0" * 4)])
    ),
    # AH's length is in 4-byte units minus 2: 12-byte ICV -> 24 bytes -> payloadlen 4.
    "ah": lambda: AH(nh=6, payloadlen=4, spi=1, seq=1, icv=b"\x11" * 12),
    "hop ah dest": lambda: (
        IPv6ExtHdrHopByHop()
        / AH(nh=60, payloadlen=4, spi=1, seq=1, icv=b"\x11" * 12)
        / IPv6ExtHdrDestOpt()
    ),
    # An atomic fragment (offset 0, M clear, RFC 6946) is a whole packet.
    "atomic fragment": lambda: IPv6ExtHdrFragment(offset=0, m=0, id=99),
}


@pytest.mark.parametrize("chain", list(EXTENSION_CHAINS), ids=list(EXTENSION_CHAINS))
@pytest.mark.parametrize("linktype", [1, 101])
def test_ipv6_extension_chains(chain: str, linktype: int) -> None:
    packet = ip6() / EXTENSION_CHAINS[chain]() / tcp()
    frame = bytes(eth() / packet) if linktype == 1 else bytes(packet)
    seg, stats = decode(linktype, frame)
    check(seg, 6)
    nothing_lost(stats)


@pytest.mark.parametrize("segleft", [1, 2])
def test_routed_ipv6_belongs_to_its_final_destination(segleft: int) -> None:
    """With segments left in a type 0 routing header, the IPv6 destination is only the
    next hop: the connection's address is the last one listed (scapy computes the TCP
    checksum with it too, as RFC 8200 requires)."""
    final = "2001:db8::99"
    route = IPv6ExtHdrRouting(addresses=["2001:db8::98", final], segleft=segleft)
    packet = IPv6(src=SRC6, dst="2001:db8::97") / route / tcp()
    seg, stats = decode(101, bytes(packet))
    assert seg is not None and seg.dst == final
    assert seg.src == SRC6_TEXT and seg.payload == PAYLOAD
    # The TCP checksum is computed over the final address: the same segment sent
    # straight to it carries the same checksum.
    direct = IPv6(bytes(IPv6(src=SRC6, dst=final) / tcp()))
    assert IPv6(bytes(packet))[TCP].chksum == direct[TCP].chksum
    nothing_lost(stats)


def test_segment_routing_header_lists_the_final_destination_first() -> None:
    final, next_hop = "2001:db8::99", "2001:db8::97"
    srh = IPv6ExtHdrSegmentRouting(addresses=[final, "2001:db8::98", next_hop], segleft=2)
    seg, stats = decode(101, bytes(IPv6(src=SRC6, dst=next_hop) / srh / tcp()))
    assert seg is not None and seg.dst == final
    nothing_lost(stats)


# -- fragments ----------------------------------------------------------------------------

BIG = bytes(range(256)) * 12


def v4_fragments(size: int = 400, ident: int = 0x1234) -> list[bytes]:
    whole = ip4(id=ident) / tcp(BIG)
    return [bytes(eth() / f) for f in fragment(whole, fragsize=size)]


def v6_fragments(size: int = 500, ident: int = 0xABCDEF) -> list[bytes]:
    whole = ip6() / IPv6ExtHdrFragment(id=ident) / tcp(BIG)
    return [bytes(eth() / f) for f in fragment6(whole, size)]


def feed(
    frames: list[tuple[int, bytes]], decoder: Decoder, t0: float = 100.0
) -> list[Segment | None]:
    """Decode (frame number, bytes) pairs in the given order; frame i is at t0 + i."""
    return [decode(1, data, decoder=decoder, ts=t0 + i, index=i)[0] for i, data in frames]


ORDERS: dict[str, Callable[[list[int]], list[int]]] = {
    "in order": lambda ix: ix,
    "reversed": lambda ix: ix[::-1],
    "last first": lambda ix: ix[-1:] + ix[:-1],
    "shuffled": lambda ix: random.Random(4).sample(ix, len(ix)),
}


@pytest.mark.parametrize("order", list(ORDERS), ids=list(ORDERS))
@pytest.mark.parametrize("version", [4, 6])
def test_fragments_reassembled_in_any_order(version: int, order: str) -> None:
    frags = v4_fragments() if version == 4 else v6_fragments()
    assert len(frags) >= 4
    numbered = list(enumerate(frags, start=1))
    sequence = [numbered[i] for i in ORDERS[order](list(range(len(numbered))))]
    stats = ReadStats()
    results = feed(sequence, Decoder(stats))
    assert results[:-1] == [None] * (len(frags) - 1)
    # Timestamp and frame number are those of the fragment that completed the datagram.
    last_index = sequence[-1][0]
    check(results[-1], version, payload=BIG, ts=100.0 + last_index, frame=last_index)
    assert stats.skipped == {"ip fragment pending": len(frags) - 1}
    assert stats.tcp_segments == 1
    assert not stats.anomalies


def test_fragments_not_reassembled_when_disabled() -> None:
    stats = ReadStats()
    decoder = Decoder(stats, defragment=False)
    frags = v4_fragments() + v6_fragments()
    assert len(frags) >= 8
    assert feed(list(enumerate(frags, 1)), decoder) == [None] * len(frags)
    assert stats.skipped == {"ip fragment": len(frags)}


def test_udp_fragments_are_reassembled_then_skipped() -> None:
    """UDP may carry a tunnel (VXLAN, GTP-U, ...) whose port is only in the first
    fragment, so UDP fragments are held like TCP ones; a datagram that turns out not
    to be a tunnel is skipped once whole, and nothing stays pending."""
    stats = ReadStats()
    decoder = Decoder(stats)
    whole = ip4(id=5) / UDP() / Raw(BIG)
    frags = fragment(whole, fragsize=400)
    assert len(frags) >= 3
    for i, f in enumerate(frags, 1):
        assert decode(1, bytes(eth() / f), decoder=decoder, index=i)[0] is None
    assert stats.skipped == {"ip fragment pending": len(frags) - 1, "not tcp: udp": 1}
    assert decoder.defrag.pending == 0


def test_icmp_fragments_are_not_held() -> None:
    stats = ReadStats()
    decoder = Decoder(stats)
    frags = fragment(ip4(id=6) / ICMP() / Raw(BIG), fragsize=400)
    for i, f in enumerate(frags, 1):
        assert decode(1, bytes(eth() / f), decoder=decoder, index=i)[0] is None
    assert stats.skipped == {"not tcp: icmp": len(frags)}
    assert decoder.defrag.pending == 0


def _tcp_bytes(version: int, payload: bytes, **fields: object) -> bytes:
    """The TCP header and payload as scapy serializes them (checksum included)."""
    packet = (ip4() if version == 4 else ip6()) / tcp(payload, **fields)
    return bytes(packet[TCP])


def _v4_frag(offset: int, more: bool, data: bytes, ident: int = 77) -> bytes:
    return bytes(
        eth() / ip4(id=ident, proto=6, frag=offset // 8, flags="MF" if more else 0) / Raw(data)
    )


def _v6_frag(offset: int, more: bool, data: bytes, ident: int = 77) -> bytes:
    return bytes(
        eth()
        / ip6()
        / IPv6ExtHdrFragment(nh=6, offset=offset // 8, m=int(more), id=ident)
        / Raw(data)
    )


@pytest.mark.parametrize("version", [4, 6])
def test_overlapping_fragments_first_copy_wins(version: int) -> None:
    make = _v4_frag if version == 4 else _v6_frag
    body = _tcp_bytes(version, b"A" * 64)  # 20-byte header + 64 bytes = 84
    frames = [
        (1, make(0, True, body[:48])),
        # Overlaps bytes 40-48 (different) and brings 48-64 first.
        (2, make(40, True, b"Z" * 24)),
        # Overlaps 40-64 (different from what is held) and ends the datagram.
        (3, make(40, False, body[40:])),
    ]
    stats = ReadStats()
    results = feed(frames, Decoder(stats))
    expected = body[:48] + b"Z" * 16 + body[64:]
    check(results[-1], version, payload=expected[20:], ts=103.0, frame=3)
    assert stats.anomalies["conflicting ip fragments"] == 2
    assert any("frame 2" in d for d in stats.anomaly_details)


@pytest.mark.parametrize("version", [4, 6])
def test_fragment_rewriting_the_tcp_header_is_ignored(version: int) -> None:
    """The overlapping-fragment evasion: a later offset-0 fragment with other ports."""
    make = _v4_frag if version == 4 else _v6_frag
    body = _tcp_bytes(version, b"B" * 40)
    evil = _tcp_bytes(version, b"", sport=1, dport=22)[:8]
    frames = [
        (1, make(0, True, body[:24])),
        (2, make(0, True, evil)),
        (3, make(24, False, body[24:])),
    ]
    stats = ReadStats()
    results = feed(frames, Decoder(stats))
    check(results[-1], version, payload=b"B" * 40, ts=103.0, frame=3)
    assert stats.anomalies["conflicting ip fragments"] == 1


@pytest.mark.parametrize("version", [4, 6])
def test_identical_duplicate_fragments_are_not_conflicts(version: int) -> None:
    frags = v4_fragments() if version == 4 else v6_fragments()
    stats = ReadStats()
    sequence = [(1, frags[0]), (2, frags[0]), (3, frags[1]), (4, frags[1])]
    sequence += [(i, f) for i, f in enumerate(frags[2:], start=5)]
    results = feed(sequence, Decoder(stats))
    check(results[-1], version, payload=BIG, ts=100.0 + sequence[-1][0], frame=sequence[-1][0])
    assert not stats.anomalies


@pytest.mark.parametrize("version", [4, 6])
def test_incomplete_fragments_expire_in_capture_time(version: int) -> None:
    make = v4_fragments if version == 4 else v6_fragments
    first = make(ident=1)
    other = make(ident=2)
    stats = ReadStats()
    decoder = Decoder(stats)
    # Two fragments of datagram 1 at t=100 and 101, then datagram 2 starts 29 s after
    # the first: not expired yet.
    feed([(1, first[0]), (2, first[1])], decoder, t0=99.0)
    decode(1, other[0], decoder=decoder, ts=129.0, index=3)
    assert not stats.anomalies
    # 31 s after the first fragment of datagram 1, it has expired.
    decode(1, other[1], decoder=decoder, ts=131.0, index=4)
    assert stats.anomalies == {"ip fragments incomplete": 1}
    assert "expired" in stats.anomaly_details[0]
    assert "frames 1, 2" in stats.anomaly_details[0]
    # A late fragment of datagram 1 cannot complete it any more.
    assert decode(1, first[-1], decoder=decoder, ts=132.0, index=5)[0] is None
    # The end of input reports what is still pending (datagrams 2 and the new 1).
    decoder.finish()
    assert stats.anomalies == {"ip fragments incomplete": 3}
    assert decoder.defrag.pending == 0 == decoder.defrag.pending_bytes


def test_truncated_fragment_is_damage() -> None:
    frag = v4_fragments()[0]
    seg, stats = decode(1, frag[:-10], len(frag))
    assert seg is None
    assert stats.anomalies == {"truncated ip fragment": 1}


# -- the defragmenter alone -----------------------------------------------------------------

KEY = (4, SRC4, DST4, 6, 1)


def test_defragmenter_many_tiny_fragments_in_reverse() -> None:
    """8-byte fragments of the largest datagram: exact, and fast enough to be unnoticed."""
    data = bytes(random.Random(1).randbytes(MAX_DATAGRAM - 7))
    d = Defragmenter()
    offsets = list(range(0, len(data), 8))
    for off in reversed(offsets[1:]):
        assert d.add(KEY, off, off + 8 < len(data), data[off : off + 8], 1.0) is None
    assert d.add(KEY, 0, True, data[:8], 1.0) == data
    assert d.pending == 0 and not d.problems


def test_defragmenter_bounds_pending_bytes_by_evicting_the_oldest() -> None:
    seen: list[tuple[str, str]] = []
    d = Defragmenter(max_pending=1000, report=lambda kind, detail: seen.append((kind, detail)))
    for ident in range(3):
        d.add((4, SRC4, DST4, 6, ident), 0, True, b"x" * 400, float(ident), frame=ident + 1)
    assert d.pending == 2 and d.pending_bytes == 800
    assert seen == [("ip fragments incomplete", seen[0][1])]
    assert "id 0" in seen[0][1] and "evicted" in seen[0][1] and "frames 1" in seen[0][1]


def test_defragmenter_rejects_impossible_fragments() -> None:
    d = Defragmenter()
    # Offset 65528 (the largest the 13-bit field can say) plus 16 bytes: past 65535.
    assert d.add(KEY, 65528, False, b"y" * 16, 0.0, frame=9) is None
    assert d.add(KEY, 8, True, b"", 0.0, frame=10) is None
    assert [k for k, _ in d.problems] == ["bad ip fragment", "bad ip fragment"]
    assert "frame 9" in d.problems[0][1]
    assert d.pending == 0


def test_defragmenter_second_last_fragment_that_disagrees() -> None:
    d = Defragmenter()
    assert d.add(KEY, 8, False, b"b" * 8, 0.0) is None
    assert d.add(KEY, 8, False, b"b" * 16, 0.0) is None  # claims a later end
    assert d.add(KEY, 0, True, b"a" * 8, 0.0) == b"a" * 8 + b"b" * 8
    assert [k for k, _ in d.problems] == ["conflicting ip fragments"] * 2


# -- snap length and lengths that lie --------------------------------------------------------


@pytest.mark.parametrize("version", [4, 6])
@pytest.mark.parametrize("cut", [1, 10, len(PAYLOAD) - 1, len(PAYLOAD)])
def test_snaplen_truncation_counts_missing_bytes(version: int, cut: int) -> None:
    frame = bytes(eth() / L3[version]())
    seg, stats = decode(1, frame[:-cut], len(frame))
    check(seg, version, payload=PAYLOAD[:-cut], missing=cut)
    nothing_lost(stats)


def test_snaplen_truncation_of_a_padded_frame_loses_nothing() -> None:
    frame = bytes(eth() / ip4() / tcp(b"x"))
    padded = frame + b"\0" * (60 - len(frame))
    seg, stats = decode(1, padded[: len(frame) + 1], len(padded))
    check(seg, 4, payload=b"x", missing=0)
    nothing_lost(stats)


@pytest.mark.parametrize("version", [4, 6])
def test_snaplen_cut_in_tcp_fixed_header_is_an_anomaly(version: int) -> None:
    frame = bytes(eth() / (ip4() if version == 4 else ip6()) / tcp(options=[("MSS", 1460)]))
    header_end = 14 + (20 if version == 4 else 40)
    seg, stats = decode(1, frame[: header_end + 10], len(frame))
    assert seg is None
    assert stats.anomalies == {"truncated tcp header": 1}
    assert f"frame {FRAME}" in stats.anomaly_details[0]


@pytest.mark.parametrize("version", [4, 6])
def test_snaplen_cut_in_tcp_options_keeps_the_segment(version: int) -> None:
    """Ports, sequence numbers and flags are in the first 20 bytes: with only options
    cut, the segment counts (a SYN stays a SYN), its whole payload missing."""
    frame = bytes(eth() / (ip4() if version == 4 else ip6()) / tcp(options=[("MSS", 1460)]))
    header_end = 14 + (20 if version == 4 else 40)
    seg, stats = decode(1, frame[: header_end + 22], len(frame))
    check(seg, version, payload=b"", missing=len(PAYLOAD))
    nothing_lost(stats)


def test_ip_length_beyond_the_wire_is_damage_with_only_the_cut_bytes_missing() -> None:
    # Claims 1000 bytes; 100 were on the wire; 70 captured.
    frame = bytes(eth() / ip4(len=1000) / tcp(bytes(range(60))))
    seg, stats = decode(1, frame[:70], 100)
    assert seg is not None
    assert stats.anomalies == {"ipv4 length exceeds frame": 1}
    assert (seg.payload, seg.missing) == (frame[54:70], 100 - 70)


@pytest.mark.parametrize("version", [4, 6])
def test_ip_length_beyond_a_complete_frame_is_damage_and_nothing_is_missing(version: int) -> None:
    """The frame was not cut by the snap length, yet its IP header claims more.

    The bytes present are used and the anomaly counted, but ``missing`` stays 0: nothing
    says the claimed bytes ever existed (real captures show this with the next segment
    starting right after the bytes present), so they are not reported as a hole.
    """
    layer = ip4(len=1500) if version == 4 else ip6(plen=1500)
    frame = bytes(eth() / layer / tcp())
    seg, stats = decode(1, frame)
    check(seg, version, missing=0)
    assert stats.anomalies == {f"ipv{version} length exceeds frame": 1}
    assert stats.tcp_segments == 1


# -- damage ---------------------------------------------------------------------------------

DAMAGED: dict[str, tuple[int, Callable[[], bytes], str]] = {
    "ihl 4": (1, lambda: bytes(eth() / ip4(ihl=4) / tcp()), "bad ipv4 header length"),
    "ihl past end": (
        1,
        lambda: bytes(eth() / ip4(ihl=15) / Raw(b"x" * 20)),
        "truncated ipv4 header",
    ),
    "total < ihl": (1, lambda: bytes(eth() / ip4(len=19) / tcp()), "bad ipv4 total length"),
    "tcp offset 4": (1, lambda: bytes(eth() / ip4() / tcp(dataofs=4)), "bad tcp data offset"),
    "tcp offset past end": (
        1,
        lambda: bytes(eth() / ip4() / tcp(b"", dataofs=15)),
        "tcp data offset past end",
    ),
    "tcp header short": (
        1,
        lambda: bytes(eth() / ip4(proto=6) / Raw(b"x" * 12)),
        "truncated tcp header",
    ),
    "v6 in 228": (228, lambda: bytes(ip6() / tcp()), "bad ip version"),
    "raw version 5": (101, lambda: b"\x50" + bytes(ip4() / tcp())[1:], "bad ip version"),
    "short ethernet": (1, lambda: bytes(eth())[:10], "truncated link header"),
    "short ipv6": (1, lambda: bytes(eth() / ip6())[:40], "truncated ipv6 header"),
    "ext header past end": (
        101,
        lambda: bytes(ip6() / IPv6ExtHdrDestOpt(len=30) / tcp()),
        "truncated ipv6 extension header",
    ),
}


@pytest.mark.parametrize("case", list(DAMAGED), ids=list(DAMAGED))
def test_damage_is_counted_with_its_frame(case: str) -> None:
    linktype, build, kind = DAMAGED[case]
    seg, stats = decode(linktype, build())
    assert seg is None
    assert stats.anomalies == {kind: 1}
    assert stats.anomaly_details[0].startswith(f"{kind}: frame {FRAME}")
    assert stats.tcp_segments == 0


def _valid_frames() -> list[tuple[int, bytes]]:
    opts = [IPOption_RR(routers=["10.0.0.1"])]
    return [
        (1, bytes(eth() / Dot1AD() / Dot1Q() / ip4(options=opts) / tcp(options=[("MSS", 1)]))),
        (1, bytes(eth() / ip6() / EXTENSION_CHAINS["hop routing dest"]() / tcp())),
        (1, v4_fragments(size=64)[1]),
        (1, v6_fragments(size=120)[0]),
        (
            276,
            bytes(
                CookedLinuxV2() / Dot1Q() / ip6() / AH(nh=6, payloadlen=4, icv=b"\0" * 12) / tcp()
            ),
        ),
        (113, bytes(CookedLinux() / ip4() / tcp())),
        (0, struct.pack(">I", 30) + bytes(ip6() / tcp())),
        (108, bytes(LoopbackOpenBSD(type=2) / ip4() / tcp())),
        (101, bytes(ip6() / IPv6ExtHdrFragment(m=0, offset=0) / tcp())),
        (228, bytes(ip4() / tcp())),
        # Every link layer and tag of LINKS, with IPv6 where it has it.
        *((lt, wrap(L3[versions[-1]]())) for _, lt, versions, wrap in LINKS),
        (1, with_ipv4_options(b"\x07\x07\x04" + b"\0" * 4)),
    ]


def test_every_prefix_of_valid_frames_never_raises() -> None:
    """Cut at every length, as a snap length would and as damage would."""
    stats = ReadStats()
    decoder = Decoder(stats)
    counted = 0
    for linktype, frame in _valid_frames():
        for n in range(len(frame) + 1):
            for orig_len in (len(frame), n):
                decoder.decode(Packet(1.0, linktype, frame[:n], orig_len, n + 1))
                total = stats.tcp_segments + sum(stats.skipped.values())
                total += sum(stats.anomalies.values())
                assert total > counted, (linktype, n, orig_len)  # every packet is counted
                counted = total
    # Each layer caught its own damage: nothing fell through to the catch-all.
    assert stats.anomalies["undecodable packet"] == 0


LINKTYPES = [0, 1, 7, 9, 10, 12, 14, 50, 101, 104, 105, 108, 113, 127, 129, 228, 229, 239, 276]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(LINKTYPES), st.binary(max_size=160), st.integers(0, 64))
def test_random_bytes_never_raise(linktype: int, data: bytes, extra: int) -> None:
    stats = ReadStats()
    decoder = Decoder(stats)
    decoder.decode(Packet(0.0, linktype, data, len(data) + extra, 1))
    # Behind valid Ethernet + IPv4 / IPv6 headers too, so the deeper layers are reached.
    for head in (bytes(eth() / ip4() / tcp(b""))[:34], bytes(eth() / ip6(nh=0))):
        frame = head + data
        decoder.decode(Packet(0.0, 1, frame, len(frame) + extra, 2))
    decoder.finish()
    assert stats.anomalies["undecodable packet"] == 0


# -- real captures against tshark ---------------------------------------------------------

#: One or two captures per link type and IP feature in scope (every file of the corpus
#: is compared end to end with tshark in test_conformance.py; this is the decoder's own
#: field-by-field check, kept small so the file runs in seconds).
CORPUS_FILES = [
    "linktypes/pcapplusplus__sll.pcap",
    "linktypes/suricata__decode-sll2-01__input.pcap",
    "linktypes/tcpflow__local.pcap",
    "linktypes/pcapplusplus__raw_ip.pcap",
    "linktypes/pcapplusplus__four_ipv6_http_streams.pcap",
    "linktypes/suricata__dcerpc-dcepayload-15__input.pcap",
    "linktypes/suricata__bug-6887-defrag-ipv6-tcp__frag-ip-tcp.pcap",
    "linktypes/zeek__http-qinq-0.pcap",
    "ip/zeek__ipv6-http-atomic-frag.pcap",
    "ip/pcapplusplus__frag_http_req.pcap",
    "ip/suricata__bug-6887-defrag-eth-vlan-ipv6-tcp__frag-eth-vlan-ipv6-tcp.pcap",
    "ip/zeek__tcp-http-with-padding.pcap",
]
FIELDS = [
    "frame.number",
    "ip.src",
    "ipv6.src",
    "tcp.srcport",
    "ip.dst",
    "ipv6.dst",
    "tcp.dstport",
    "tcp.seq_raw",
    "tcp.ack_raw",
    "tcp.flags",
    "tcp.window_size_value",
    "tcp.len",
]
Row = tuple[int, str, int, str, int, int, int, int, int, int]


def tshark_rows(name: str) -> list[Row]:
    """tshark's TCP segments of a capture. tshark reassembles IP fragments by default,
    so a fragmented segment appears once, in the frame that completed it: as ours.
    One tshark run per file (each test asks for its own file, so test workers share
    nothing and nothing is run twice)."""
    tshark = require_tshark()
    args = [tshark, "-r", str(CORPUS / name), "-Y", "tcp && !icmp && !icmpv6", "-T", "fields"]
    for f in FIELDS:
        args += ["-e", f]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    rows = []
    for line in out.splitlines():
        fr, s4, s6, sp, d4, d6, dp, seq, ack, flags, win, length = line.split("\t")
        rows.append(
            (
                int(fr),
                s4 or s6,
                int(sp),
                d4 or d6,
                int(dp),
                int(seq),
                int(ack),
                int(flags, 16) & 0xFF,
                int(win),
                int(length),
            )
        )
    return rows


@pytest.mark.corpus
@pytest.mark.parametrize("name", CORPUS_FILES)
def test_corpus_segments_match_tshark(name: str) -> None:
    stats = ReadStats()
    decoder = Decoder(stats)
    ours: list[Row] = []
    reader = RawPcapReader(str(CORPUS / name))
    try:
        for index, (data, meta) in enumerate(reader, start=1):
            pkt = Packet(meta.sec + meta.usec / 1e6, reader.linktype, data, meta.wirelen, index)
            seg = decoder.decode(pkt)
            if seg is not None:
                assert (seg.frame, seg.timestamp) == (index, pkt.timestamp)
                # tcp.len is what the IP header says, snap-cut bytes included.
                length = len(seg.payload) + seg.missing
                ours.append(
                    (
                        index,
                        seg.src,
                        seg.sport,
                        seg.dst,
                        seg.dport,
                        seg.seq,
                        seg.ack,
                        seg.flags,
                        seg.window,
                        length,
                    )
                )
    finally:
        reader.close()
    decoder.finish()
    assert ours == tshark_rows(name)
    assert stats.anomalies["undecodable packet"] == 0
