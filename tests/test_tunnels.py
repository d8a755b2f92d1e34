"""Tunnels: the inner TCP segment and the outer path, from frames built by scapy.

Every frame is built with scapy's own GRE, ERSPAN, VXLAN, GENEVE and GTP-U layers, so
the header layouts come from an implementation independent of the decoder. Each case
checks every field of the inner segment (as in test_decode.py) and every hop of the
tunnel path. Whole captures of each tunnel type, compared with tshark, are in
captures/ (test_captures.py); the corpus's real tunnel captures are compared with tshark
in test_conformance.py.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from scapy.contrib.erspan import ERSPAN_I, ERSPAN_II, ERSPAN_III, ERSPAN_PlatformSpecific
from scapy.contrib.geneve import GENEVE, GeneveOptions
from scapy.contrib.gtp import GTP_U_Header, GTPPDUSessionContainer
from scapy.layers.dot11 import Dot11, Dot11QoS
from scapy.layers.inet import IP, UDP, fragment
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import GRE, GRE_PPTP, LLC, SNAP, Dot1Q, Ether
from scapy.layers.ppp import PPP
from scapy.layers.vxlan import VXLAN
from scapy.packet import Packet as ScapyPacket
from scapy.packet import Raw
from test_decode import check, decode, eth, ip4, ip6, tcp

from pcapflows.decode import MAX_TUNNEL_DEPTH, Decoder
from pcapflows.segment import TunnelHop
from pcapflows.stats import ReadStats

A4, B4 = "203.0.113.1", "203.0.113.2"
A6, B6 = "2001:db8:ffff::1", "2001:db8:ffff::2"


def inner(version: int) -> ScapyPacket:
    return (ip4() if version == 4 else ip6()) / tcp()


def inner_eth(version: int) -> ScapyPacket:
    return Ether(src="02:00:00:00:00:0a", dst="02:00:00:00:00:0b") / inner(version)


def ethertype(version: int) -> int:
    return 0x0800 if version == 4 else 0x86DD


def ayiya(version: int, opcode: int = 1) -> bytes:
    """An AYIYA header as SixXS clients send it: a 16-byte identity (size code 4), a
    20-byte SHA-1 signature (5 words), hash method 2, authentication method 1."""
    nxt = 4 if version == 4 else 41
    identity = bytes.fromhex("20010db8000000000000000000000042")
    return bytes([0x41, 0x52, 0x10 | opcode, nxt]) + b"\x4d\x12\x34\x56" + identity + b"\x5a" * 20


def wifi_qos_data() -> ScapyPacket:
    """An 802.11 QoS data frame to the AP (ToDS), with LLC/SNAP: what an Aruba AP
    forwards to its controller."""
    return (
        Dot11(
            type=2,
            subtype=8,
            FCfield=1,
            addr1="02:00:00:00:cc:01",
            addr2="02:00:00:00:00:0a",
            addr3="02:00:00:00:00:0b",
        )
        / Dot11QoS(TID=3)
        / LLC()
    )


def outer4(**fields: object) -> ScapyPacket:
    return eth() / IP(src=A4, dst=B4, **fields)


def outer6(**fields: object) -> ScapyPacket:
    return eth() / IPv6(src=A6, dst=B6, **fields)


# name -> (frame for an inner IP version, expected path)
CASES: dict[str, tuple[Callable[[int], ScapyPacket], tuple[TunnelHop, ...]]] = {
    "gre": (
        lambda v: outer4() / GRE() / inner(v),
        (TunnelHop("gre", A4, B4),),
    ),
    "gre key, checksum, sequence": (
        lambda v: (
            outer4()
            / GRE(chksum_present=1, key_present=1, key=0xABCDEF01, seqnum_present=1)
            / inner(v)
        ),
        (TunnelHop("gre", A4, B4, ident=0xABCDEF01),),
    ),
    "gre over ipv6": (
        lambda v: outer6() / GRE(key_present=1, key=7) / inner(v),
        (TunnelHop("gre", A6, B6, ident=7),),
    ),
    "gre ethernet bridging": (
        lambda v: outer4() / GRE(proto=0x6558) / inner_eth(v),
        (TunnelHop("gre", A4, B4),),
    ),
    "gre ethernet with vlan": (
        lambda v: (
            outer4()
            / GRE(proto=0x6558)
            / Ether(src="02:00:00:00:00:0a", dst="02:00:00:00:00:0b")
            / Dot1Q(vlan=33)
            / inner(v)
        ),
        (TunnelHop("gre", A4, B4),),
    ),
    "pptp enhanced gre with ppp": (
        lambda v: (
            outer4()
            / GRE_PPTP(seqnum_present=1, call_id=0x4242, sequence_number=3)
            / PPP(proto=0x21 if v == 4 else 0x57)
            / inner(v)
        ),
        (TunnelHop("pptp", A4, B4, ident=0x4242),),
    ),
    "erspan type i": (
        lambda v: outer4() / GRE(proto=0x88BE) / ERSPAN_I() / inner_eth(v),
        (TunnelHop("erspan1", A4, B4),),
    ),
    "erspan type ii": (
        lambda v: (
            outer4()
            / GRE(proto=0x88BE, seqnum_present=1)
            / ERSPAN_II(session_id=1023, vlan=12)
            / inner_eth(v)
        ),
        (TunnelHop("erspan2", A4, B4, ident=1023),),
    ),
    "erspan type iii": (
        lambda v: (
            outer4() / GRE(proto=0x22EB, seqnum_present=1) / ERSPAN_III(session_id=5) / inner_eth(v)
        ),
        (TunnelHop("erspan3", A4, B4, ident=5),),
    ),
    "erspan type iii with platform subheader": (
        lambda v: (
            outer4()
            / GRE(proto=0x22EB, seqnum_present=1)
            / ERSPAN_III(session_id=6, o=1)
            / ERSPAN_PlatformSpecific(platf_id=3)
            / inner_eth(v)
        ),
        (TunnelHop("erspan3", A4, B4, ident=6),),
    ),
    "vxlan": (
        lambda v: outer4() / UDP(sport=51234, dport=4789) / VXLAN(vni=0xABCDE) / inner_eth(v),
        (TunnelHop("vxlan", A4, B4, 51234, 4789, 0xABCDE),),
    ),
    "vxlan over ipv6": (
        lambda v: outer6() / UDP(sport=51234, dport=4789) / VXLAN(vni=1) / inner_eth(v),
        (TunnelHop("vxlan", A6, B6, 51234, 4789, 1),),
    ),
    "geneve with options": (
        lambda v: (
            outer4()
            / UDP(sport=40000, dport=6081)
            / GENEVE(
                vni=4242,
                proto=0x6558,
                options=[
                    GeneveOptions(classid=0x0102, type=0x80, data=b"\x01" * 4),
                    GeneveOptions(classid=0xFFFF, type=0x7F, data=b"\x02" * 16),
                ],
            )
            / inner_eth(v)
        ),
        (TunnelHop("geneve", A4, B4, 40000, 6081, 4242),),
    ),
    "geneve carrying ip": (
        lambda v: (
            outer4()
            / UDP(sport=40000, dport=6081)
            / GENEVE(vni=3, proto=0x0800 if v == 4 else 0x86DD)
            / inner(v)
        ),
        (TunnelHop("geneve", A4, B4, 40000, 6081, 3),),
    ),
    "gtp-u": (
        lambda v: outer4() / UDP(sport=2152, dport=2152) / GTP_U_Header(teid=77) / inner(v),
        (TunnelHop("gtpu", A4, B4, 2152, 2152, 77),),
    ),
    "gtp-u with sequence and extension header": (
        lambda v: (
            outer4()
            / UDP(sport=2152, dport=2152)
            / GTP_U_Header(teid=0xFFFFFFFF, S=1, seq=9, E=1, next_ex=0x85)
            / GTPPDUSessionContainer(type=1, QFI=9)
            / inner(v)
        ),
        (TunnelHop("gtpu", A4, B4, 2152, 2152, 0xFFFFFFFF),),
    ),
    "ip in ip": (
        lambda v: outer4(proto=4 if v == 4 else 41) / inner(v),
        (TunnelHop("{v}in4", A4, B4),),
    ),
    "ip in ipv6": (
        lambda v: outer6(nh=4 if v == 4 else 41) / inner(v),
        (TunnelHop("{v}in6", A6, B6),),
    ),
    "gre in udp": (
        lambda v: outer4() / UDP(sport=50123, dport=4754) / GRE(proto=ethertype(v)) / inner(v),
        (TunnelHop("gre-udp", A4, B4, 50123, 4754),),
    ),
    "gre in udp with a key, over ipv6": (
        lambda v: outer6() / UDP(sport=50123, dport=4754) / GRE(key_present=1, key=9) / inner(v),
        (TunnelHop("gre-udp", A6, B6, 50123, 4754, 9),),
    ),
    "ayiya": (
        lambda v: outer4() / UDP(sport=5072, dport=5072) / Raw(ayiya(v)) / inner(v),
        (TunnelHop("ayiya", A4, B4, 5072, 5072),),
    ),
    "ayiya from a client port": (
        lambda v: outer6() / UDP(sport=40000, dport=5072) / Raw(ayiya(v)) / inner(v),
        (TunnelHop("ayiya", A6, B6, 40000, 5072),),
    ),
    "wccp redirect header": (
        lambda v: outer4() / GRE(proto=0x883E) / Raw(b"\x00\x00\x00\x00") / inner(v),
        (TunnelHop("wccp", A4, B4),),
    ),
    "wccp redirect header with a service id": (
        lambda v: outer4() / GRE(proto=0x883E) / Raw(b"\x01\x5a\x00\x00") / inner(v),
        (TunnelHop("wccp", A4, B4),),
    ),
    "aruba": (
        lambda v: (
            outer4() / GRE(proto=0x8210) / wifi_qos_data() / SNAP(code=ethertype(v)) / inner(v)
        ),
        (TunnelHop("aruba", A4, B4),),
    ),
    "aruba 0x9000": (
        lambda v: (
            outer4() / GRE(proto=0x9000) / wifi_qos_data() / SNAP(code=ethertype(v)) / inner(v)
        ),
        (TunnelHop("aruba", A4, B4),),
    ),
    "mpls in gre": (
        lambda v: outer4() / GRE(proto=0x8847) / Raw(b"\x00\x01\x01\x40") / inner(v),
        (TunnelHop("gre", A4, B4),),
    ),
}


@pytest.mark.parametrize("version", [4, 6])
@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_tunnel(case: str, version: int) -> None:
    build, path = CASES[case]
    seg, stats = decode(1, bytes(build(version)))
    expected = tuple(
        TunnelHop(h.kind.format(v=version), h.src, h.dst, h.sport, h.dport, h.ident) for h in path
    )
    check(seg, version, tunnel=expected)
    assert not stats.anomalies and not stats.skipped


def test_teredo() -> None:
    """IPv6 only; bare, after an origin indication, after an authentication indicator."""
    plain = bytes(inner(6))
    origin = b"\x00\x00\x0c\x38\xcb\x00\x71\x01"
    auth = b"\x00\x01\x02\x03" + b"id" + b"abc" + b"\x00" * 8 + b"\x00"
    for i, prefix in enumerate((b"", origin, auth + origin)):
        for ports in ((3544, 40000), (40000, 3544)):
            frame = bytes(outer4() / UDP(sport=ports[0], dport=ports[1]) / Raw(prefix + plain))
            seg, stats = decode(1, frame, index=i + 1)
            hop = TunnelHop("teredo", A4, B4, ports[0], ports[1])
            check(seg, 6, frame=i + 1, tunnel=(hop,))
    # A Teredo bubble (IPv6 with no next header) is skipped, not damage.
    bubble = bytes(outer4() / UDP(sport=3544, dport=3544) / IPv6(nh=59))
    seg, stats = decode(1, bubble)
    assert seg is None and stats.skipped == {"ipv6 no next header": 1}


def test_wccp_version_1_has_no_redirect_header() -> None:
    """WCCP version 1 redirects IPv4 right after GRE; a first byte that starts an IPv4
    header is taken for that, as Wireshark does."""
    seg, stats = decode(1, bytes(outer4() / GRE(proto=0x883E) / inner(4)))
    check(seg, 4, tunnel=(TunnelHop("wccp", A4, B4),))
    assert not stats.skipped and not stats.anomalies


def test_aruba_a_msdu_is_counted_not_decoded() -> None:
    """An A-MSDU (several packets in one 802.11 frame) is skipped by name: a frame
    yields at most one segment, and half an aggregate would be a silent loss."""
    frame = (
        outer4()
        / GRE(proto=0x8230)
        / Dot11(type=2, subtype=8, FCfield=1, addr1="02:00:00:00:cc:01")
        / Dot11QoS(A_MSDU_Present=1)
        / Raw(b"\x02" * 12 + b"\x00\x30" + bytes(LLC() / SNAP(code=0x0800) / inner(4)))
    )
    seg, stats = decode(1, bytes(frame))
    assert seg is None
    assert stats.skipped == {"802.11 a-msdu": 1} and not stats.anomalies


def test_ayiya_other_opcodes_and_protocols_are_skipped() -> None:
    stats = ReadStats()
    decoder = Decoder(stats)
    heartbeat = bytes(outer4() / UDP(sport=5072, dport=5072) / Raw(ayiya(6, opcode=0)))
    decode(1, heartbeat, decoder=decoder)
    other = bytearray(ayiya(4))
    other[3] = 17
    decode(1, bytes(outer4() / UDP(dport=5072) / Raw(bytes(other)) / inner(4)), decoder=decoder)
    assert stats.skipped == {"ayiya opcode 0": 1, "ayiya next header 17": 1}
    assert not stats.anomalies


# Teredo recognized by content (ports other than 3544), as Zeek does.
TEREDO_CLIENT = "2001:0:4136:e378:8000:63bf:3fff:fdd2"
NATIVE = "2001:db8:4860::68"
ORIGIN = b"\x00\x00\x0c\x38\xcb\x00\x71\x01"
AUTH = b"\x00\x01\x02\x03" + b"id" + b"abc" + b"\x00" * 8 + b"\x00"


def teredo_frame(payload: bytes, sport: int = 40001, dport: int = 50002) -> bytes:
    return bytes(outer4() / UDP(sport=sport, dport=dport) / Raw(payload))


def teredo_inner(src: str = TEREDO_CLIENT, dst: str = NATIVE) -> bytes:
    return bytes(IPv6(src=src, dst=dst) / tcp())


@pytest.mark.parametrize(
    "prefix", [b"", ORIGIN, AUTH, AUTH + ORIGIN], ids=["bare", "origin", "auth", "both"]
)
@pytest.mark.parametrize("teredo_end", ["src", "dst"])
def test_teredo_recognized_by_content_on_any_port(prefix: bytes, teredo_end: str) -> None:
    src, dst = (TEREDO_CLIENT, NATIVE) if teredo_end == "src" else (NATIVE, TEREDO_CLIENT)
    seg, stats = decode(1, teredo_frame(prefix + teredo_inner(src, dst)))
    assert seg is not None, stats
    assert (seg.src, seg.dst, seg.sport, seg.dport) == (src, dst, 40123, 443)
    assert seg.payload == tcp().load
    assert seg.tunnel == (TunnelHop("teredo", A4, B4, 40001, 50002),)


def test_udp_that_merely_resembles_teredo_is_skipped() -> None:
    """Conservative: a version-6 nibble is not enough. The IPv6 payload length must
    account for the datagram exactly, one address must be a Teredo address, and the
    whole datagram must have been captured."""
    good = teredo_inner()
    no_prefix = teredo_inner(src="2001:db8::1", dst=NATIVE)
    longer = bytearray(good)
    longer[5] += 1
    trailing = good + b"\x00"
    stats = ReadStats()
    decoder = Decoder(stats)
    for payload in (no_prefix, bytes(longer), trailing, good[:39], b"\x60" + b"\x00" * 60):
        assert decode(1, teredo_frame(payload), decoder=decoder)[0] is None
    cut = teredo_frame(good)
    assert decode(1, cut[:-5], len(cut), decoder=decoder)[0] is None
    assert stats.skipped == {"not tcp: udp": 6} and not stats.anomalies


def test_nested_gre_erspan_vxlan() -> None:
    """The arkime corpus case in miniature: ERSPAN in GRE mirrors a VXLAN packet."""
    vx = (
        Ether(src="02:00:00:00:00:0c", dst="02:00:00:00:00:0d")
        / IP(src="10.9.9.1", dst="10.9.9.2")
        / UDP(sport=1111, dport=4789)
        / VXLAN(vni=5)
        / inner_eth(4)
    )
    frame = outer4() / GRE(proto=0x88BE, seqnum_present=1) / ERSPAN_II(session_id=2) / vx
    seg, _ = decode(1, bytes(frame))
    path = (
        TunnelHop("erspan2", A4, B4, ident=2),
        TunnelHop("vxlan", "10.9.9.1", "10.9.9.2", 1111, 4789, 5),
    )
    check(seg, 4, tunnel=path)


def test_nesting_deeper_than_the_limit_is_damage() -> None:
    packet: ScapyPacket = inner(4)
    for _ in range(MAX_TUNNEL_DEPTH):
        packet = IP(src=A4, dst=B4, proto=4) / packet
    seg, stats = decode(1, bytes(eth() / packet))
    assert seg is not None and len(seg.tunnel) == MAX_TUNNEL_DEPTH
    seg, stats = decode(1, bytes(eth() / IP(src=A4, dst=B4, proto=4) / packet))
    assert seg is None
    assert stats.anomalies == {"too many nested tunnels": 1}


def test_outer_fragments_are_reassembled_before_the_tunnel() -> None:
    """GTP-U and VXLAN over a path with a small MTU: the outer UDP datagram arrives in
    IP fragments, and only the first one holds the UDP port."""
    payload = bytes(range(256)) * 8
    whole = IP(src=A4, dst=B4, id=9) / UDP(sport=5, dport=4789) / VXLAN(vni=1)
    whole = whole / Ether(src="02:00:00:00:00:0a", dst="02:00:00:00:00:0b") / ip4() / tcp(payload)
    frags = fragment(whole, fragsize=512)
    assert len(frags) >= 4
    stats = ReadStats()
    decoder = Decoder(stats)
    results = [
        decode(1, bytes(eth() / f), decoder=decoder, index=i)[0] for i, f in enumerate(frags)
    ]
    assert results[:-1] == [None] * (len(frags) - 1)
    hop = TunnelHop("vxlan", A4, B4, 5, 4789, 1)
    check(results[-1], 4, payload=payload, frame=len(frags) - 1, tunnel=(hop,))
    assert stats.skipped == {"ip fragment pending": len(frags) - 1}


def counted(stats: ReadStats) -> int:
    return stats.tcp_segments + sum(stats.skipped.values()) + sum(stats.anomalies.values())


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_every_truncation_of_a_tunnel_is_counted_never_raised(case: str) -> None:
    """Cut inside the tunnel header, as damage or a snap length would: the packet is
    counted (a skip or an anomaly), and never falls through to the catch-all."""
    frame = bytes(CASES[case][0](4))
    stats = ReadStats()
    decoder = Decoder(stats)
    for n in range(len(frame)):
        for orig_len in (n, len(frame)):
            before = (
                stats.tcp_segments + sum(stats.skipped.values()) + sum(stats.anomalies.values())
            )
            decode(1, frame[:n], orig_len, decoder=decoder, index=n + 1)
            after = stats.tcp_segments + sum(stats.skipped.values()) + sum(stats.anomalies.values())
            assert after > before, (n, orig_len)
    assert stats.anomalies["undecodable packet"] == 0


def test_unknown_udp_and_gre_payloads_are_skipped_by_name() -> None:
    stats = ReadStats()
    decoder = Decoder(stats)
    decode(1, bytes(outer4() / UDP(sport=53, dport=53) / Raw(b"x" * 20)), decoder=decoder)
    decode(1, bytes(outer4() / GRE(proto=0x88BB) / Raw(b"x" * 20)), decoder=decoder)
    decode(
        1,
        bytes(outer4() / UDP(sport=1, dport=2152) / Raw(b"\x30\x01" + b"\0" * 10)),
        decoder=decoder,
    )
    assert stats.skipped == {
        "not tcp: udp": 1,
        "gre protocol 0x88bb": 1,
        "gtp-u message type 1": 1,
    }
    assert not stats.anomalies
