"""Tunnels: the inner TCP segment and the outer path, from frames built by scapy.

Every frame is built with scapy's own GRE, ERSPAN, VXLAN, GENEVE and GTP-U layers, so
the header layouts come from an implementation independent of the decoder. Each case
checks every field of the inner segment (as in test_decode.py) and every hop of the
tunnel path. Whole captures of each tunnel type, compared with tshark, are in
captures/ (test_captures.py); the corpus's real tunnel captures are compared with tshark
in test_conformance.py.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import pytest
from scapy.contrib.erspan import ERSPAN_I, ERSPAN_II, ERSPAN_III, ERSPAN_PlatformSpecific
from scapy.contrib.geneve import GENEVE, GeneveOptions
from scapy.contrib.gtp import GTP_U_Header, GTPPDUSessionContainer
from scapy.layers.dot11 import Dot11, Dot11QoS, RadioTap
from scapy.layers.inet import IP, UDP, fragment
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, GRE, GRE_PPTP, LLC, SNAP, Dot1Q, Dot3, Ether
from scapy.layers.ppp import PPP
from scapy.layers.vxlan import VXLAN
from scapy.packet import Packet as ScapyPacket
from scapy.packet import Raw
from test_decode import FRAME, PAYLOAD, TS, check, decode, eth, ip4, ip6, tcp

from pcapflows.decode.decoder import MAX_TUNNEL_DEPTH, Decoder
from pcapflows.decode.segment import Segment, TunnelHop
from pcapflows.io.packet import Packet
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


# -- 802.11 A-MSDU: several packets in one frame ------------------------------------------
#
# An A-MSDU subframe header is an 802.3 header (destination, source, length), so scapy's
# Dot3 builds it, with the length it computes itself; the padding to 4 bytes between
# subframes is added here, as 802.11-2016 9.3.2.2.2 describes it.

STA, AP, HOST = "02:00:00:00:00:0a", "02:00:00:00:cc:01", "02:00:00:00:00:0b"


def msdu(packet: ScapyPacket, ethertype: int) -> ScapyPacket:
    """One A-MSDU subframe without its padding: 802.3 header, LLC/SNAP, the packet."""
    return Dot3(dst=HOST, src=STA) / LLC() / SNAP(code=ethertype) / packet


def amsdu(*subframes: ScapyPacket | bytes, pad_last: bool = False) -> bytes:
    """Subframes laid end to end, each padded to a multiple of 4 bytes but the last."""
    out = b""
    for i, sub in enumerate(subframes):
        raw = bytes(sub)
        last = i == len(subframes) - 1
        out += raw + (b"" if last and not pad_last else b"\xee" * (-len(raw) % 4))
    return out


def wifi_amsdu(body: bytes, ds: int = 1) -> ScapyPacket:
    """A QoS data frame with the A-MSDU-present bit; ``ds`` 1 is ToDS, 2 FromDS, 3 a
    four-address (WDS / mesh) frame."""
    return (
        Dot11(type=2, subtype=8, FCfield=ds, addr1=AP, addr2=STA, addr3=HOST, addr4=STA)
        / Dot11QoS(A_MSDU_Present=1, TID=5)
        / Raw(body)
    )


#: Three packets, IPv4, IPv6 and IPv4 again with another payload, whose subframes take
#: every padding length between them (lengths 14 + 8 + packet, mod 4, differ).
PAYLOADS = (b"first", PAYLOAD, b"third subframe!")


def three() -> tuple[ScapyPacket, ScapyPacket, ScapyPacket]:
    return (
        msdu(ip4() / tcp(PAYLOADS[0]), 0x0800),
        msdu(ip6() / tcp(PAYLOADS[1]), 0x86DD),
        msdu(ip4() / tcp(PAYLOADS[2]), 0x0800),
    )


def check_three(segs: tuple[Segment, ...], tunnel: tuple[TunnelHop, ...] = ()) -> None:
    assert len(segs) == 3, segs
    for seg, version, payload in zip(segs, (4, 6, 4), PAYLOADS, strict=True):
        check(seg, version, payload=payload, tunnel=tunnel)


def decode_all(
    linktype: int, frame: bytes, orig_len: int | None = None
) -> tuple[tuple[Segment, ...], ReadStats]:
    stats = ReadStats()
    pkt = Packet(TS, linktype, frame, len(frame) if orig_len is None else orig_len, FRAME)
    return Decoder(stats).decode_all(pkt), stats


#: Where an A-MSDU is found: ``(linktype, frame around an 802.11 frame, tunnel path)``.
AMSDU_CARRIERS: dict[str, tuple[int, Callable[[ScapyPacket], bytes], tuple[TunnelHop, ...]]] = {
    "aruba gre 0x8230": (
        1,
        lambda w: bytes(outer4() / GRE(proto=0x8230) / w),
        (TunnelHop("aruba", A4, B4),),
    ),
    "aruba gre 0x9000 over ipv6, key": (
        1,
        lambda w: bytes(outer6() / GRE(proto=0x9000, key_present=1, key=3) / w),
        (TunnelHop("aruba", A6, B6, ident=3),),
    ),
    "linktype 105": (105, bytes, ()),
    "radiotap": (127, lambda w: bytes(RadioTap() / w), ()),
    "radiotap with fcs": (
        127,
        lambda w: bytes(RadioTap(present="Flags", Flags="FCS") / w) + b"\x12\x34\x56\x78",
        (),
    ),
}


@pytest.mark.parametrize("ds", [1, 2, 3], ids=["tods", "fromds", "wds"])
@pytest.mark.parametrize("carrier", list(AMSDU_CARRIERS), ids=list(AMSDU_CARRIERS))
def test_a_msdu_gives_every_subframe(carrier: str, ds: int) -> None:
    """Every subframe of an A-MSDU is a segment, in order, each with the tunnel the
    frame came by; nothing is skipped."""
    linktype, wrap, path = AMSDU_CARRIERS[carrier]
    segs, stats = decode_all(linktype, wrap(wifi_amsdu(amsdu(*three()), ds)))
    check_three(segs, path)
    assert stats.tcp_segments == 3 and not stats.skipped and not stats.anomalies


def test_a_msdu_one_subframe_and_padded_last_subframe() -> None:
    """An aggregate of one, and a sender that pads the last subframe too."""
    sub = msdu(ip6() / tcp(), 0x86DD)
    for body in (amsdu(sub), amsdu(sub, pad_last=True), amsdu(*three(), pad_last=True)):
        segs, stats = decode_all(105, bytes(wifi_amsdu(body)))
        assert segs and all(s.payload in PAYLOADS for s in segs)
        assert not stats.skipped and not stats.anomalies


def test_decode_returns_the_first_of_several() -> None:
    """decode() is for one-packet frames: of an aggregate it returns the first segment,
    while every subframe is decoded and counted (the reader uses decode_all)."""
    stats = ReadStats()
    frame = bytes(wifi_amsdu(amsdu(*three())))
    seg = Decoder(stats).decode(Packet(TS, 105, frame, len(frame), FRAME))
    check(seg, 4, payload=PAYLOADS[0])
    assert stats.tcp_segments == 3


def test_a_msdu_subframes_that_are_not_tcp_are_skipped_one_by_one() -> None:
    a, b, c = three()
    arp = Dot3(dst=HOST, src=STA) / LLC() / SNAP(code=0x0806) / ARP()
    udp = msdu(ip4() / UDP(sport=53, dport=53) / Raw(b"x" * 9), 0x0800)
    no_snap = Dot3(dst=HOST, src=STA) / LLC(dsap=0x42, ssap=0x42, ctrl=3) / Raw(b"stp" * 10)
    frame = bytes(outer4() / GRE(proto=0x8210) / wifi_amsdu(amsdu(arp, a, udp, b, no_snap, c)))
    segs, stats = decode_all(1, frame)
    check_three(segs, (TunnelHop("aruba", A4, B4),))
    assert stats.skipped == {
        "ethertype 0x0806": 1,
        "not tcp: udp": 1,
        "802.11 data without llc/snap": 1,
    }
    assert not stats.anomalies


def test_a_damaged_subframe_is_counted_and_the_others_kept() -> None:
    """A subframe whose packet is broken (an IPv4 header length of 8 bytes) costs only
    itself: its length still says where the next one starts."""
    a, b, c = three()
    broken = bytearray(bytes(msdu(ip4() / tcp(), 0x0800)))
    broken[14 + 8] = 0x42  # after the 802.3 and LLC/SNAP headers: version 4, IHL 2
    segs, stats = decode_all(105, bytes(wifi_amsdu(amsdu(a, bytes(broken), b, c))))
    check_three(segs)
    assert stats.anomalies == {"bad ipv4 header length": 1}
    assert stats.anomaly_details == [f"bad ipv4 header length: frame {FRAME}: 8 bytes"]


@pytest.mark.parametrize("carrier", ["aruba gre 0x8230", "linktype 105"])
def test_a_subframe_length_past_the_frame_is_damage(carrier: str) -> None:
    """A length running past the frame (not explained by a snap length) is damage; the
    subframes before it are kept, those after it cannot be found."""
    linktype, wrap, path = AMSDU_CARRIERS[carrier]
    a, b, c = three()
    body = bytearray(amsdu(a, b, c))
    second = len(bytes(a)) + (-len(bytes(a)) % 4)  # where the second subframe starts
    assert body[second + 12 : second + 14] == struct.pack(">H", len(bytes(b)) - 14)
    body[second + 12 : second + 14] = struct.pack(">H", 2000)
    segs, stats = decode_all(linktype, wrap(wifi_amsdu(bytes(body))))
    assert len(segs) == 1
    check(segs[0], 4, payload=PAYLOADS[0], tunnel=path)
    assert stats.anomalies == {"bad a-msdu subframe length": 1}


def test_an_empty_a_msdu_is_damage() -> None:
    segs, stats = decode_all(105, bytes(wifi_amsdu(b"")))
    assert segs == () and stats.anomalies == {"bad a-msdu subframe": 1}


@pytest.mark.parametrize("carrier", ["aruba gre 0x8230", "linktype 105", "radiotap"])
def test_a_msdu_cut_by_the_snap_length(carrier: str) -> None:
    """Cut inside the last subframe's payload: that segment keeps what was captured and
    counts the rest as missing. Cut inside a subframe header: counted as damage."""
    linktype, wrap, path = AMSDU_CARRIERS[carrier]
    frame = wrap(wifi_amsdu(amsdu(*three())))
    segs, stats = decode_all(linktype, frame[:-5], len(frame))
    assert len(segs) == 3 and not stats.anomalies
    check(segs[0], 4, payload=PAYLOADS[0], tunnel=path)
    check(segs[1], 6, payload=PAYLOADS[1], tunnel=path)
    check(segs[2], 4, payload=PAYLOADS[2][:-5], missing=5, tunnel=path)
    # The third subframe's header cut after 10 of its 14 bytes.
    cut = len(frame) - len(bytes(three()[2])) + 10
    segs, stats = decode_all(linktype, frame[:cut], len(frame))
    assert len(segs) == 2
    assert stats.anomalies == {"truncated link header": 1}


def test_a_msdu_in_a_tunnel_in_an_a_msdu() -> None:
    """A subframe that is itself an Aruba tunnel carrying an A-MSDU: both levels'
    subframes come out, each with its own path."""
    inner_frame = (
        IP(src="10.0.0.1", dst="10.0.0.2") / GRE(proto=0x8250) / wifi_amsdu(amsdu(*three()))
    )
    a, _, _ = three()
    outer = outer4() / GRE(proto=0x8210) / wifi_amsdu(amsdu(a, msdu(inner_frame, 0x0800)))
    segs, stats = decode_all(1, bytes(outer))
    hop = TunnelHop("aruba", A4, B4)
    check(segs[0], 4, payload=PAYLOADS[0], tunnel=(hop,))
    check_three(segs[1:], (hop, TunnelHop("aruba", "10.0.0.1", "10.0.0.2")))
    assert not stats.skipped and not stats.anomalies


@pytest.mark.parametrize("carrier", list(AMSDU_CARRIERS), ids=list(AMSDU_CARRIERS))
def test_every_truncation_of_an_a_msdu_is_counted_never_raised(carrier: str) -> None:
    linktype, wrap, _ = AMSDU_CARRIERS[carrier]
    frame = wrap(wifi_amsdu(amsdu(*three())))
    stats = ReadStats()
    decoder = Decoder(stats)
    for n in range(len(frame)):
        for orig_len in (n, len(frame)):
            before = counted(stats)
            got = decoder.decode_all(Packet(TS, linktype, frame[:n], orig_len, n + 1))
            assert counted(stats) > before, (n, orig_len)
            assert all(s.payload in PAYLOADS or s.missing for s in got)
    assert stats.anomalies["undecodable packet"] == 0


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
