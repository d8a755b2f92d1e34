"""The decoder's fast path gives exactly what its general path gives.

:meth:`Decoder.decode_all` decodes the common frames (Ethernet, VLAN, Linux cooked,
loopback, raw IP; IPv4 or IPv6; TCP) on a fast path of its own and hands everything
else to :meth:`Decoder._decode_general`, the layer-by-layer decoder that the rest of
the test suite checks against scapy and tshark. Two implementations of one decision
can drift apart, so here both run over every capture we have and over generated
frames full of edge cases, and must agree on every segment and every count. The table
at the end also pins the outcome of each edge case to a value known independently
(the field values the frame was built from), so that agreement on a wrong answer does
not pass.
"""

from __future__ import annotations

import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tcptable import CAPTURES, corpus_params

import pcapflows
from pcapflows.decode.decoder import Decoder
from pcapflows.decode.segment import Segment
from pcapflows.io.packet import Packet
from pcapflows.io.reader import CaptureReader
from pcapflows.stats import ReadStats


@dataclass
class Outcome:
    """Everything a decoder produced for a sequence of frames."""

    segments: list[tuple[Segment, ...]]
    stats: ReadStats


def run(packets: list[Packet], general: bool) -> Outcome:
    """Decode ``packets`` with a fresh decoder, by ``decode_all`` (the fast path first)
    or by the general path alone."""
    stats = ReadStats()
    decoder = Decoder(stats)
    decode = decoder._decode_general if general else decoder.decode_all
    segments = [decode(pkt) for pkt in packets]
    decoder.finish()
    return Outcome(segments, stats)


def assert_same(packets: list[Packet]) -> Outcome:
    fast, slow = run(packets, general=False), run(packets, general=True)
    for pkt, a, b in zip(packets, fast.segments, slow.segments, strict=True):
        assert a == b, f"frame {pkt.index}: {pkt.data.hex()}"
    assert fast.stats == slow.stats
    return fast


# -- every capture -------------------------------------------------------------------------

OURS = sorted(p for p in CAPTURES.iterdir() if ".pcap" in p.name)


@pytest.mark.parametrize("path", [*corpus_params(), *OURS], ids=str)
def test_every_capture_decodes_the_same_on_both_paths(path: Path | None) -> None:
    assert path is not None
    try:
        packets = list(CaptureReader(path, ReadStats()))
    except pcapflows.CaptureError as exc:
        # Formats pcapflows does not read (snoop, zstd) are refused at once, whole.
        assert "not a pcap or pcapng capture" in str(exc)
        return
    assert_same(packets)


# -- generated frames --------------------------------------------------------------------

MACS = bytes.fromhex("020000000002020000000001")
VLAN = b"\x81\x00\x00\x07"
QINQ = b"\x88\xa8\x00\x05"


def link(kind: str, version: int, tags: int) -> tuple[int, bytes]:
    """A link type and the header before an IP packet of ``version``."""
    et = b"\x08\x00" if version == 4 else b"\x86\xdd"
    stack = (QINQ + VLAN + VLAN)[: 4 * tags]
    if kind == "ethernet":
        return 1, MACS + stack + et
    if kind == "sll":
        return 113, b"\x00\x00\x00\x01\x00\x06" + MACS[:6] + b"\x00\x00" + stack + et
    if kind == "sll2":
        if tags:
            return 276, b"\x81\x00\x00\x00" + bytes(16) + b"\x00\x07" + et
        return 276, et + bytes(18)
    if kind in ("null", "loop"):
        af = 2 if version == 4 else (24, 28, 30, 10)[tags % 4]
        order = "little" if tags % 2 else "big"
        return (0 if kind == "null" else 108), af.to_bytes(4, order)  # type: ignore[arg-type]
    if kind == "raw":
        return (12, 14, 101)[tags % 3], b""
    assert kind == "rawv"
    return (228 if version == 4 else 229), b""


def tcp_header(sport: int, dport: int, doff: int, flags: int, options: bytes) -> bytes:
    head = struct.pack(
        ">HHIIBBHHH", sport, dport, 0x01020304, 0xA0B0C0D0, doff << 4, flags, 512, 0, 0
    )
    return head + options


def ipv4(ihl: int, total: int, frag: int, proto: int, options: bytes, body: bytes) -> bytes:
    head = struct.pack(
        ">BBHHHBBH4s4s", 0x40 | ihl, 0, total, 7, frag, 64, proto, 0, b"\x0a\x00\x00\x01",
        b"\xc0\xa8\x01\x02",
    )  # fmt: skip
    return head + options + body


def ipv6(plen: int, nh: int, body: bytes, vfc: int = 0x60) -> bytes:
    return (
        struct.pack(">BBHHBB", vfc, 0, 0, plen, nh, 64)
        + bytes.fromhex("20010db8000000000000000000000001")
        + bytes.fromhex("fe800000000000000000000000000abc")
        + body
    )


TCP_OPTIONS = [
    b"",
    b"\x02\x04\x05\xb4",  # MSS
    b"\x01\x03\x03\x07",  # NOP, window scale 7
    b"\x03\x03\x0e\x00",  # window scale 14
    b"\x03\x03\x0f\x00",  # window scale 15: capped
    b"\x02\x04\x05\xb4\x01\x03\x03\x09\x04\x02\x00\x00",
    b"\x08\x0a\x00\x00\x00\x01\x00\x00\x00\x02\x00\x00",  # timestamps
    b"\x03\x04\x07\x00",  # window scale of a wrong length
    b"\x01\x01\x05\x00",  # a length of 0
    b"\x02\x10\x05\xb4",  # a length running past the options
]
IP_OPTIONS = [
    b"",
    b"\x01\x01\x01\x00",  # NOPs, end of list
    b"\x94\x04\x00\x00",  # router alert
    b"\x07\x07\x04\x00\x00\x00\x00\x00",  # record route
    b"\x94\x05\x00\x00",  # router alert of a wrong length
    b"\x07\x00\x00\x00",  # a length of 0
    b"\x07\x0c\x04\x00",  # runs past the header
    b"\x01\x01\x01\x07",  # no room for a length byte
]


@st.composite
def frames(draw: st.DrawFn) -> Packet:
    """One frame of the shapes the fast path takes, with any of its fields drawn
    inconsistent, padded, cut by a snap length or with one byte overwritten."""
    kind = draw(
        st.sampled_from(["ethernet", "ethernet", "sll", "sll2", "null", "loop", "raw", "rawv"])
    )
    version = draw(st.sampled_from([4, 6]))
    linktype, head = link(kind, version, draw(st.integers(0, 3)))
    payload = draw(st.binary(max_size=60))
    options = draw(st.sampled_from(TCP_OPTIONS))
    doff = draw(st.one_of(st.just(5 + len(options) // 4), st.integers(0, 15)))
    flags = draw(st.sampled_from([0x02, 0x12, 0x10, 0x18, 0x11, 0x04, 0xFF]))
    segment = tcp_header(1234, 80, doff, flags, options) + payload
    if version == 4:
        ip_options = draw(st.sampled_from(IP_OPTIONS))
        ihl = draw(st.one_of(st.just(5 + len(ip_options) // 4), st.integers(0, 15)))
        right = 4 * ihl + len(segment) if ihl >= 5 else 20 + len(ip_options) + len(segment)
        total = draw(st.one_of(st.just(right), st.integers(0, right + 30), st.just(0)))
        frag = draw(st.one_of(st.just(0x4000), st.just(0), st.integers(0, 0xFFFF)))
        proto = draw(st.one_of(st.just(6), st.sampled_from([17, 1, 4, 41, 47, 0, 255])))
        packet = ipv4(ihl, total, frag, proto, ip_options, segment)
    else:
        right = len(segment)
        plen = draw(st.one_of(st.just(right), st.integers(0, right + 30), st.just(0)))
        nh = draw(st.one_of(st.just(6), st.sampled_from([0, 17, 43, 44, 59, 60, 4, 41])))
        vfc = draw(st.sampled_from([0x60, 0x60, 0x6F, 0x40, 0x00]))
        packet = ipv6(plen, nh, segment, vfc)
    frame = head + packet + draw(st.sampled_from([b"", bytes(6), b"\xff" * 20]))  # padding
    if draw(st.booleans()):
        at = draw(st.integers(0, len(frame) - 1))
        frame = frame[:at] + bytes([draw(st.integers(0, 255))]) + frame[at + 1 :]
    cut = draw(st.one_of(st.just(0), st.integers(0, len(frame))))
    wire = len(frame) + draw(st.sampled_from([0, 0, 4, 100]))
    return Packet(1.5, linktype, frame[: len(frame) - cut], wire, 3)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(frames(), min_size=1, max_size=3))
def test_generated_frames_decode_the_same_on_both_paths(packets: list[Packet]) -> None:
    assert_same(packets)


# -- edge cases, each with its outcome known from how the frame was built ------------------

PAY = b"0123456789abcdef"
SYN_WSCALE = tcp_header(1234, 80, 8, 0x02, b"\x02\x04\x05\xb4\x01\x03\x03\x06\x00\x00\x00\x00")
PLAIN = tcp_header(1234, 80, 5, 0x18, b"") + PAY


def eth4(packet: bytes, tags: int = 0) -> bytes:
    return link("ethernet", 4, tags)[1] + packet


def v4(segment: bytes, total_delta: int = 0, options: bytes = b"") -> bytes:
    ihl = 5 + len(options) // 4
    return ipv4(ihl, 4 * ihl + len(segment) + total_delta, 0x4000, 6, options, segment)


#: ``(name, link type, frame, bytes on the wire or 0 for the frame's, expected)``, where
#: expected is ``(payload, missing, wscale)`` of the one segment, or the anomaly kind.
EDGES: list[tuple[str, int, bytes, int, tuple[bytes, int, int | None] | str]] = [
    ("plain", 1, eth4(v4(PLAIN)), 0, (PAY, 0, None)),
    ("one vlan tag", 1, eth4(v4(PLAIN), 1), 0, (PAY, 0, None)),
    ("two vlan tags", 1, eth4(v4(PLAIN), 2), 0, (PAY, 0, None)),
    ("three vlan tags", 1, eth4(v4(PLAIN), 3), 0, (PAY, 0, None)),
    ("ihl 6, router alert", 1, eth4(v4(PLAIN, options=b"\x94\x04\x00\x00")), 0, (PAY, 0, None)),
    ("ihl 7, nops", 1, eth4(v4(PLAIN, options=b"\x01" * 8)), 0, (PAY, 0, None)),
    ("ihl 4", 1, eth4(ipv4(4, 20 + len(PLAIN), 0, 6, b"", PLAIN)), 0, "bad ipv4 header length"),
    ("ihl 15 past frame", 1, eth4(ipv4(15, 20 + len(PLAIN), 0, 6, b"", PLAIN)), 0,
     "truncated ipv4 header"),
    ("ihl 6, bad option", 1, eth4(v4(PLAIN, options=b"\x94\x05\x00\x00")), 0, "bad ipv4 options"),
    ("total shorter than frame", 1, eth4(v4(PLAIN, -6)), 0, (PAY[:-6], 0, None)),
    ("total longer than frame", 1, eth4(v4(PLAIN, 6)), 0, "ipv4 length exceeds frame"),
    ("ethernet padding", 1, eth4(v4(tcp_header(1, 2, 5, 0x10, b""))) + bytes(6), 0, (b"", 0, None)),
    ("data offset 4", 1, eth4(v4(tcp_header(1, 2, 4, 0x10, b"") + PAY)), 0, "bad tcp data offset"),
    ("data offset past end", 1, eth4(v4(tcp_header(1, 2, 15, 0x10, b""))), 0,
     "tcp data offset past end"),
    ("syn with window scale", 1, eth4(v4(SYN_WSCALE)), 0, (b"", 0, 6)),
    ("snap length cut payload", 1, eth4(v4(PLAIN))[:-10], 60 + 10, (PAY[:-10], 10, None)),
    ("snap length cut options", 1, eth4(v4(SYN_WSCALE))[:-8], 66, (b"", 0, None)),
    ("fragment", 1, eth4(ipv4(5, 20 + len(PLAIN), 0x2000, 6, b"", PLAIN)), 0, None),
    ("ipv6", 1, link("ethernet", 6, 0)[1] + ipv6(len(PLAIN), 6, PLAIN), 0, (PAY, 0, None)),
    ("ipv6 padding", 1, link("ethernet", 6, 1)[1] + ipv6(len(PLAIN) - 4, 6, PLAIN), 0,
     (PAY[:-4], 0, None)),
    ("ipv6 plen past frame", 1, link("ethernet", 6, 0)[1] + ipv6(len(PLAIN) + 4, 6, PLAIN), 0,
     "ipv6 length exceeds frame"),
    ("sll", 113, link("sll", 4, 0)[1] + v4(PLAIN), 0, (PAY, 0, None)),
    ("sll2 vlan", 276, link("sll2", 6, 1)[1] + ipv6(len(PLAIN), 6, PLAIN), 0, (PAY, 0, None)),
    ("null big-endian", 0, link("null", 4, 0)[1] + v4(PLAIN), 0, (PAY, 0, None)),
    ("loop little-endian ipv6", 108, link("loop", 6, 1)[1] + ipv6(len(PLAIN), 6, PLAIN), 0,
     (PAY, 0, None)),
    ("raw", 101, v4(PLAIN), 0, (PAY, 0, None)),
    ("raw ipv6 as ipv4", 228, ipv6(len(PLAIN), 6, PLAIN), 0, "bad ip version"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("linktype", "frame", "wire", "expected"),
    [pytest.param(*row[1:], id=row[0]) for row in EDGES],
)
def test_edge_cases(linktype: int, frame: bytes, wire: int, expected: object) -> None:
    pkt = Packet(2.0, linktype, frame, wire or len(frame), 9)
    out = assert_same([pkt])
    segs, stats = out.segments[0], out.stats
    if isinstance(expected, tuple):
        payload, missing, wscale = expected
        assert len(segs) == 1, stats
        seg = segs[0]
        assert (seg.payload, seg.missing, seg.wscale) == (payload, missing, wscale)
        assert (seg.timestamp, seg.seq, seg.ack, seg.window, seg.frame) == (
            2.0, 0x01020304, 0xA0B0C0D0, 512, 9,
        )  # fmt: skip
        assert seg.src in ("10.0.0.1", "2001:db8::1") and seg.dst in ("192.168.1.2", "fe80::abc")
    elif isinstance(expected, str):
        assert stats.anomalies[expected] == 1, stats
    else:  # a fragment waiting for the rest: held, then reported at the end
        assert segs == () and stats.anomalies["ip fragments incomplete"] == 1


def test_the_fast_path_takes_the_common_frames(monkeypatch: pytest.MonkeyPatch) -> None:
    """The frames the fast path is for never reach the general path (else the
    equivalence above would hold trivially)."""
    decoder = Decoder(ReadStats())

    def general(pkt: Packet) -> tuple[Segment, ...]:
        raise AssertionError(f"general path for {pkt.data.hex()}")

    monkeypatch.setattr(decoder, "_decode_general", general)
    for name, linktype, frame, wire, expected in EDGES:
        if isinstance(expected, tuple) and "cut" not in name and "three" not in name:
            assert len(decoder.decode_all(Packet(2.0, linktype, frame, wire or len(frame), 9))) == 1


def test_common_link_layers_do_not_import_dpkt() -> None:
    """dpkt is imported only when a frame needs it (802.11): reading an Ethernet capture
    starts faster (about 40 ms less) without it."""
    code = (
        "import sys, pcapflows\n"
        f"flows = list(pcapflows.read({str(CAPTURES / 'demo.pcapng')!r}))\n"
        "assert flows\n"
        "print('dpkt' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out
    code = (
        "import sys, pcapflows\n"
        f"list(pcapflows.read({str(CAPTURES / 'link_80211_105.pcap')!r}))\n"
        "print('dpkt' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True", out
