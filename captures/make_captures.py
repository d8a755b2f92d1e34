#!/usr/bin/env python3
"""Craft pcapflows' sample captures and write their ground truth.

Run ``python captures/make_captures.py [OUTDIR]`` to (re)create every capture under
``captures/`` (or OUTDIR) and its ``expected.json``. The script is deterministic: fixed
timestamps, fixed initial sequence numbers, payloads from fixed text or from SHA-256 of
fixed seeds, capture files written byte by byte here (scapy only builds the IP and TCP
layers), gzip with a fixed header. Running it twice gives byte-identical files.

The ground truth in ``expected.json`` is written from what this script put on the wire,
never from pcapflows: every scenario states the messages, gaps and conflicts it
constructed, and :func:`check_truth` then verifies that statement against the packets
actually written (every byte of every message is carried first by a captured packet with
the stated content and time, every gap byte by no captured packet, later differing
copies only where a conflict is declared).

``--record-loopback`` additionally records ``loopback_http.pcap``: real traffic between
``python -m http.server`` and a socket client on 127.0.0.1, captured with tcpdump (root
needed). That capture is not reproducible byte for byte; its ground truth is what the
client socket sent and received, and a later run without the flag keeps it as it is.
See ``captures/README.md`` for what each capture checks.
"""

from __future__ import annotations

import argparse
import hashlib
import ipaddress
import json
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scapy.contrib.erspan import ERSPAN_II, ERSPAN_III, ERSPAN_PlatformSpecific
from scapy.contrib.geneve import GENEVE, GeneveOptions
from scapy.contrib.gtp import GTP_U_Header, GTPPDUSessionContainer
from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import IP, TCP, UDP, IPOption_EOL, IPOption_Router_Alert, IPOption_RR
from scapy.layers.inet6 import (
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    PadN,
    RouterAlert,
)
from scapy.layers.l2 import ARP, GRE, Ether
from scapy.layers.vxlan import VXLAN
from scapy.packet import Packet, Raw

HERE = Path(__file__).resolve().parent
EXPECTED = "expected.json"
LOOPBACK = "loopback_http.pcap"

#: Directions: True is the client's, False the server's (as in TCPMessage.from_client).
C = True
S = False

NS = 1_000_000_000
#: 2023-11-14 22:13:20 UTC: every capture's clock starts here.
T0 = 1_700_000_000 * NS

SEQ_MOD = 1 << 32


def us(n: int) -> int:
    """Microseconds as nanoseconds."""
    return n * 1000


def ms(n: int) -> int:
    """Milliseconds as nanoseconds."""
    return n * 1_000_000


def blob(seed: str, n: int) -> bytes:
    """``n`` pseudo-random bytes, the same for the same seed on every machine."""
    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.sha256(f"{seed}/{i}".encode()).digest()
        i += 1
    return bytes(out[:n])


def text(n: int, seed: str) -> bytes:
    """``n`` bytes of readable filler text (lines of lowercase words)."""
    words = [b"alpha", b"bravo", b"charlie", b"delta", b"echo", b"foxtrot", b"golf", b"hotel"]
    raw = blob(seed, n)
    out = bytearray()
    i = 0
    while len(out) < n:
        out += words[raw[i % n] % len(words)]
        out += b"\n" if i % 9 == 8 else b" "
        i += 1
    return bytes(out[:n])


# --------------------------------------------------------------------------------------
# Link layers
# --------------------------------------------------------------------------------------

#: ``encap(l3, src_mac, dst_mac, outgoing) -> frame``; ``outgoing`` is True for packets
#: the capturing host (the client) sent.
Encap = Callable[[bytes, bytes, bytes, bool], bytes]


def _ethertype(l3: bytes) -> int:
    """The EtherType of an IP packet, from its version nibble."""
    return 0x86DD if l3[0] >> 4 == 6 else 0x0800


def _eth(l3: bytes, src: bytes, dst: bytes, out: bool) -> bytes:
    """Ethernet II header."""
    return dst + src + struct.pack("!H", _ethertype(l3)) + l3


def _vlan(l3: bytes, src: bytes, dst: bytes, out: bool) -> bytes:
    """Ethernet with one 802.1Q tag (VLAN 100)."""
    return dst + src + struct.pack("!HHH", 0x8100, 100, _ethertype(l3)) + l3


def _qinq(l3: bytes, src: bytes, dst: bytes, out: bool) -> bytes:
    """Ethernet with an 802.1ad tag (VLAN 200) and an 802.1Q tag (VLAN 100)."""
    tags = struct.pack("!HHHH", 0x88A8, 200, 0x8100, 100)
    return dst + src + tags + struct.pack("!H", _ethertype(l3)) + l3


def _sll(l3: bytes, src: bytes, dst: bytes, out: bool) -> bytes:
    """Linux cooked capture v1 header (16 bytes)."""
    # packet type 4 = sent by us, 0 = to us; ARPHRD_ETHER; 6-byte address padded to 8.
    return struct.pack("!HHH8sH", 4 if out else 0, 1, 6, src, _ethertype(l3)) + l3


def _sll2(l3: bytes, src: bytes, dst: bytes, out: bool) -> bytes:
    """Linux cooked capture v2 header (20 bytes)."""
    # protocol, reserved, interface index, ARPHRD_ETHER, packet type, address length.
    hdr = struct.pack("!HHIHBB8s", _ethertype(l3), 0, 2, 1, 4 if out else 0, 6, src)
    return hdr + l3


def _raw(l3: bytes, src: bytes, dst: bytes, out: bool) -> bytes:
    """No link header: raw IP."""
    return l3


def _ppp_proto(l3: bytes) -> bytes:
    """The PPP protocol number of an IP packet (0x0021 IPv4, 0x0057 IPv6)."""
    return struct.pack("!H", 0x57 if l3[0] >> 4 == 6 else 0x21)


def _pppoe(vlan: bool) -> Encap:
    """Ethernet, optionally an 802.1Q tag (VLAN 7), then a PPPoE session (RFC 2516):
    version/type 0x11, code 0, session 0x1234, length of the PPP frame."""

    def encap(l3: bytes, src: bytes, dst: bytes, out: bool) -> bytes:
        tag = struct.pack("!HH", 0x8100, 7) if vlan else b""
        ppp = _ppp_proto(l3) + l3
        return dst + src + tag + struct.pack("!HBBHH", 0x8864, 0x11, 0, 0x1234, len(ppp)) + ppp

    return encap


def _mpls(l3: bytes, src: bytes, dst: bytes, out: bool) -> bytes:
    """Ethernet with an MPLS stack of two labels (100, then 200 with bottom of stack)."""
    labels = struct.pack("!II", 100 << 12 | 64, 200 << 12 | 1 << 8 | 64)
    return dst + src + struct.pack("!H", 0x8847) + labels + l3


def _ppp(l3: bytes, src: bytes, dst: bytes, out: bool) -> bytes:
    """PPP in HDLC-like framing (RFC 1662): address 0xFF, control 0x03, protocol."""
    return b"\xff\x03" + _ppp_proto(l3) + l3


def _chdlc(l3: bytes, src: bytes, dst: bytes, out: bool) -> bytes:
    """Cisco HDLC: address 0x0F (unicast), control 0, an ethertype."""
    return b"\x0f\x00" + struct.pack("!H", _ethertype(l3)) + l3


def _nflog(l3: bytes, src: bytes, dst: bytes, out: bool) -> bytes:
    """Linux NFLOG: family, version 0, resource id 5 (big-endian), then TLVs whose
    length and type are little-endian: a packet header, a prefix, the payload."""
    family = 10 if l3[0] >> 4 == 6 else 2

    def tlv(kind: int, value: bytes) -> bytes:
        body = struct.pack("<HH", 4 + len(value), kind) + value
        return body + b"\x00" * (-len(body) % 4)

    hdr = tlv(1, struct.pack("!HBB", _ethertype(l3), 3, 0))
    return struct.pack("!BBH", family, 0, 5) + hdr + tlv(10, b"pcapflows\x00") + tlv(9, l3)


def _wifi(l3: bytes, src: bytes, dst: bytes, out: bool) -> bytes:
    """An 802.11 data frame with LLC/SNAP: to the AP (ToDS) from the client, from the
    AP (FromDS) to it; addresses as a real infrastructure network orders them."""
    bssid = b"\x02\x00\x00\x00\xcc\x01"
    if out:
        flags, a1, a2, a3 = 0x01, bssid, src, dst
    else:
        flags, a1, a2, a3 = 0x02, dst, bssid, src
    header = struct.pack("<BBH", 0x08, flags, 0) + a1 + a2 + a3 + struct.pack("<H", 0)
    return header + b"\xaa\xaa\x03\x00\x00\x00" + struct.pack("!H", _ethertype(l3)) + l3


def _radiotap(l3: bytes, src: bytes, dst: bytes, out: bool) -> bytes:
    """A minimal radiotap header (version 0, length 8, no fields), then 802.11."""
    return struct.pack("<BBHI", 0, 0, 8, 0) + _wifi(l3, src, dst, out)


def _ipoib(l3: bytes, src: bytes, dst: bytes, out: bool) -> bytes:
    """IP over InfiniBand as libpcap writes it: 40 bytes of hardware addresses (20 each,
    here the MAC in the low bytes), an ethertype and two reserved bytes."""
    a, b = (src, dst) if out else (dst, src)
    return b"\x00" * 14 + b + b"\x00" * 14 + a + struct.pack("!HH", _ethertype(l3), 0) + l3


def _null(order: str, af6: int) -> Encap:
    """BSD NULL/LOOP header: a 32-bit AF value in byte order ``order``; IPv6 uses ``af6``."""

    def encap(l3: bytes, src: bytes, dst: bytes, out: bool) -> bytes:
        af = af6 if l3[0] >> 4 == 6 else 2
        return struct.pack(order + "I", af) + l3

    return encap


def _vntag(l3: bytes, src: bytes, dst: bytes, out: bool) -> bytes:
    """Ethernet with a Cisco VN-Tag (0x8926): virtual interfaces 5 (destination) and 7
    (source), direction and pointer bits clear."""
    return dst + src + struct.pack("!HIH", 0x8926, 5 << 16 | 7, _ethertype(l3)) + l3


def _pbb(l3: bytes, src: bytes, dst: bytes, out: bool) -> bytes:
    """IEEE 802.1ah provider backbone bridging: backbone addresses, a B-TAG (0x88A8, VLAN
    300), an I-TAG (0x88E7, I-SID 0x010203), then the customer frame's addresses and
    type."""
    b_src, b_dst = (b"\x02\x00\x00\x00\xbb\x01", b"\x02\x00\x00\x00\xbb\x02")
    if not out:
        b_src, b_dst = b_dst, b_src
    tags = struct.pack("!HHHI", 0x88A8, 300, 0x88E7, 0x010203)
    return b_dst + b_src + tags + dst + src + struct.pack("!H", _ethertype(l3)) + l3


def _fabricpath(l3: bytes, src: bytes, dst: bytes, out: bool) -> bytes:
    """Cisco FabricPath: outer switch addresses, type 0x8903, forwarding tag 1 and TTL
    63, then the original Ethernet frame, and the frame check sequence, which
    FabricPath ports capture (Wireshark expects it after the inner frame)."""
    sw_src, sw_dst = (b"\x02\x00\x01\x00\x00\x01", b"\x02\x00\x02\x00\x00\x01")
    if not out:
        sw_src, sw_dst = sw_dst, sw_src
    frame = sw_dst + sw_src + struct.pack("!HH", 0x8903, 1 << 6 | 63) + _eth(l3, src, dst, out)
    return frame + struct.pack("<I", zlib.crc32(frame))


def _ppp_mpls(l3: bytes, src: bytes, dst: bytes, out: bool) -> bytes:
    """PPP in HDLC-like framing carrying MPLS (protocol 0x0281): labels 16 and 17, the
    second at the bottom of the stack."""
    labels = struct.pack("!II", 16 << 12 | 64, 17 << 12 | 1 << 8 | 64)
    return b"\xff\x03\x02\x81" + labels + l3


def _fddi(l3: bytes, src: bytes, dst: bytes, out: bool) -> bytes:
    """FDDI: frame control 0x50 (asynchronous LLC), addresses, 802.2 LLC/SNAP with the
    ethertype (RFC 1390)."""
    snap = b"\xaa\xaa\x03\x00\x00\x00" + struct.pack("!H", _ethertype(l3))
    return b"\x50" + dst + src + snap + l3


def _arcnet(linux: bool) -> Encap:
    """ARCNET: 1-byte source and destination (0x10 the client, 0x20 the server), on
    Linux (link type 129) the 2-byte offset field, then the protocol id (RFC 1201 IPv4
    0xD4, RFC 2497 IPv6 0xC4), split flag 0 and a sequence number."""
    seq = [0x0100]

    def encap(l3: bytes, src: bytes, dst: bytes, out: bool) -> bytes:
        a, b = (0x10, 0x20) if out else (0x20, 0x10)
        proto = 0xC4 if l3[0] >> 4 == 6 else 0xD4
        seq[0] += 1
        offset = b"\x00\x00" if linux else b""
        return bytes([a, b]) + offset + struct.pack("!BBH", proto, 0, seq[0]) + l3

    return encap


def ayiya_header(l3: bytes) -> bytes:
    """AYIYA as SixXS clients send it: identity of 16 bytes (size code 4, type IPv6
    address), SHA-1 signature (5 words, hash method 2), authentication method 1,
    opcode 1 (forward), the inner packet's IP protocol, a fixed epoch time."""
    nxt = 41 if l3[0] >> 4 == 6 else 4
    identity = ipaddress.ip_address("2001:db8:ffff::1").packed
    signature = hashlib.sha1(l3).digest()
    return bytes([0x41, 0x52, 0x11, nxt]) + struct.pack("!I", 1_700_000_000) + identity + signature


def _wifi_qos_header(out: bool, amsdu: bool = False) -> bytes:
    """An 802.11 QoS data header (TID 0), no FCS: to the AP (ToDS) from the client, from
    the AP (FromDS) to it, as an Aruba AP tunnels them; ``amsdu`` sets the QoS control's
    A-MSDU-present bit (bit 7 of its first byte)."""
    bssid = b"\x02\x00\x00\x00\xcc\x01"
    src, dst = (MAC_A, MAC_B) if out else (MAC_B, MAC_A)
    if out:
        flags, a1, a2, a3 = 0x01, bssid, src, dst
    else:
        flags, a1, a2, a3 = 0x02, dst, bssid, src
    qos = 0x80 if amsdu else 0
    return struct.pack("<BBH", 0x88, flags, 0) + a1 + a2 + a3 + struct.pack("<HH", 0x10, qos)


def _llc_snap(l3: bytes) -> bytes:
    """RFC 1042 LLC/SNAP header and the IP packet."""
    return b"\xaa\xaa\x03\x00\x00\x00" + struct.pack("!H", _ethertype(l3)) + l3


def _wifi_qos(l3: bytes, out: bool) -> bytes:
    """An 802.11 QoS data frame with LLC/SNAP carrying one IP packet."""
    return _wifi_qos_header(out) + _llc_snap(l3)


def _wifi_amsdu(l3s: list[bytes], out: bool) -> bytes:
    """An 802.11 QoS data frame carrying an A-MSDU (802.11-2016 9.3.2.2.2): per packet a
    subframe of destination and source address, the big-endian length of the MSDU
    (LLC/SNAP and packet), the MSDU, then padding to a multiple of 4 bytes, except
    after the last subframe."""
    src, dst = (MAC_A, MAC_B) if out else (MAC_B, MAC_A)
    body = b""
    for i, l3 in enumerate(l3s):
        sub = dst + src + struct.pack("!H", len(_llc_snap(l3))) + _llc_snap(l3)
        body += sub + (b"" if i == len(l3s) - 1 else b"\x00" * (-len(sub) % 4))
    return _wifi_qos_header(out, amsdu=True) + body


# Tunnels: the inner packet wrapped by an outer Ethernet/IP path. The client's side of
# the tunnel is OUTER_A, so the outer addresses mirror the inner direction.
OUTER_A, OUTER_B = "198.18.0.1", "198.18.0.2"
OUTER6_A, OUTER6_B = "2001:db8:ffff::1", "2001:db8:ffff::2"
MAC_A, MAC_B = b"\x02\x00\x00\x00\xaa\x01", b"\x02\x00\x00\x00\xaa\x02"

#: ``wrap(inner l3, outgoing) -> the layers between the outer IP header and the inner
#: frame`` (scapy, independent of pcapflows' decoder).
Wrap = Callable[[bytes, bool], Packet]


def _inner_eth(l3: bytes, out: bool) -> Packet:
    """The inner Ethernet frame a bridging tunnel carries."""
    src, dst = (MAC_A, MAC_B) if out else (MAC_B, MAC_A)
    return Ether(bytes(dst + src + struct.pack("!H", _ethertype(l3)) + l3))


def _tunnel(wrap: Wrap, *, outer_v6: bool = False) -> Encap:
    """Ethernet, an outer IPv4 (or IPv6) path between the tunnel endpoints, then
    whatever ``wrap`` puts around the inner packet."""

    def encap(l3: bytes, src: bytes, dst: bytes, out: bool) -> bytes:
        if outer_v6:
            a, b = (OUTER6_A, OUTER6_B) if out else (OUTER6_B, OUTER6_A)
            outer: Packet = IPv6(src=a, dst=b, hlim=64) / wrap(l3, out)
        else:
            a, b = (OUTER_A, OUTER_B) if out else (OUTER_B, OUTER_A)
            outer = IP(src=a, dst=b, id=0, ttl=64) / wrap(l3, out)
        if isinstance(outer.payload, Raw):
            # IP directly in IP: the outer protocol says which version is inside.
            proto = 4 if l3[0] >> 4 == 4 else 41
            if outer_v6:
                outer.nh = proto
            else:
                outer.proto = proto
        body = bytes(outer)
        return dst + src + struct.pack("!H", _ethertype(body)) + body

    return encap


def tunnel_links() -> list[tuple[str, str, Encap, bool, bool, list[dict[str, Any]]]]:
    """``(file name, description, encapsulation, IPv4 inside, IPv6 inside, expected
    tunnel path of the client's packets)`` for every tunnel type pcapflows recognizes."""
    raw_ip = lambda l3, out: Raw(l3)  # noqa: E731 - one-line wraps read best inline

    def hop(kind: str, v6: bool = False, **extra: Any) -> dict[str, Any]:
        src, dst = (OUTER6_A, OUTER6_B) if v6 else (OUTER_A, OUTER_B)
        return {"type": kind, "src": src, "dst": dst, **extra}

    def nested(l3: bytes, out: bool) -> Packet:
        # ERSPAN type II in GRE, mirroring a frame that is itself VXLAN over IPv4.
        a, b = ("198.51.100.1", "198.51.100.2") if out else ("198.51.100.2", "198.51.100.1")
        vx = IP(src=a, dst=b, id=0) / UDP(sport=40000, dport=4789) / VXLAN(vni=99)
        mirrored = Ether(src="02:00:00:00:bb:01", dst="02:00:00:00:bb:02") / vx
        inner = bytes(mirrored / _inner_eth(l3, out))
        return (
            GRE(proto=0x88BE, seqnum_present=1, sequence_number=7)
            / ERSPAN_II(session_id=3)
            / Raw(inner)
        )

    return [
        (
            "tunnel_gre.pcap",
            "GRE with a key (RFC 2890) carrying IPv4 and IPv6.",
            _tunnel(lambda l3, out: GRE(proto=_ethertype(l3), key_present=1, key=42) / Raw(l3)),
            True,
            True,
            [hop("gre", id=42)],
        ),
        (
            "tunnel_gre_ipv6.pcap",
            "GRE with checksum and sequence number, over IPv6 (outer), IPv4 and IPv6 inside.",
            _tunnel(
                lambda l3, out: (
                    GRE(proto=_ethertype(l3), chksum_present=1, seqnum_present=1, sequence_number=5)
                    / Raw(l3)
                ),
                outer_v6=True,
            ),
            True,
            True,
            [hop("gre", v6=True)],
        ),
        (
            "tunnel_gre_teb.pcap",
            "GRE transparent Ethernet bridging (0x6558): a whole Ethernet frame inside.",
            _tunnel(lambda l3, out: GRE(proto=0x6558) / _inner_eth(l3, out)),
            True,
            True,
            [hop("gre")],
        ),
        (
            "tunnel_erspan1.pcap",
            "ERSPAN type I: GRE 0x88BE without a sequence number, the frame follows GRE.",
            _tunnel(lambda l3, out: GRE(proto=0x88BE) / _inner_eth(l3, out)),
            True,
            True,
            [hop("erspan1")],
        ),
        (
            "tunnel_erspan2.pcap",
            "ERSPAN type II (GRE 0x88BE with a sequence number), session 7.",
            _tunnel(
                lambda l3, out: (
                    GRE(proto=0x88BE, seqnum_present=1, sequence_number=1)
                    / ERSPAN_II(session_id=7)
                    / _inner_eth(l3, out)
                )
            ),
            True,
            True,
            [hop("erspan2", id=7)],
        ),
        (
            "tunnel_erspan3.pcap",
            "ERSPAN type III (GRE 0x22EB) with the optional platform-specific subheader.",
            _tunnel(
                lambda l3, out: (
                    GRE(proto=0x22EB, seqnum_present=1, sequence_number=1)
                    / ERSPAN_III(session_id=9, o=1)
                    / ERSPAN_PlatformSpecific()
                    / _inner_eth(l3, out)
                )
            ),
            True,
            True,
            [hop("erspan3", id=9)],
        ),
        (
            "tunnel_vxlan.pcap",
            "VXLAN (UDP 4789), VNI 5001, an Ethernet frame inside.",
            _tunnel(
                lambda l3, out: UDP(sport=49152, dport=4789) / VXLAN(vni=5001) / _inner_eth(l3, out)
            ),
            True,
            True,
            [hop("vxlan", sport=49152, dport=4789, id=5001)],
        ),
        (
            "tunnel_geneve.pcap",
            "GENEVE (UDP 6081), VNI 77, with two options before the Ethernet frame.",
            _tunnel(
                lambda l3, out: (
                    UDP(sport=49153, dport=6081)
                    / GENEVE(
                        vni=77,
                        proto=0x6558,
                        options=[
                            GeneveOptions(classid=0x0102, type=0x80, data=b"\x00" * 4),
                            GeneveOptions(classid=0x0103, type=0x01, data=b"\x11" * 8),
                        ],
                    )
                    / _inner_eth(l3, out)
                )
            ),
            True,
            True,
            [hop("geneve", sport=49153, dport=6081, id=77)],
        ),
        (
            "tunnel_gtpu.pcap",
            "GTP-U (UDP 2152), TEID 0x1234, with a PDU session container extension header.",
            _tunnel(
                lambda l3, out: (
                    UDP(sport=2152, dport=2152)
                    / GTP_U_Header(teid=0x1234, E=1, next_ex=0x85)
                    / GTPPDUSessionContainer(type=1 if out else 0, QFI=5)
                    / Raw(l3)
                )
            ),
            True,
            True,
            [hop("gtpu", sport=2152, dport=2152, id=0x1234)],
        ),
        (
            "tunnel_teredo.pcap",
            "Teredo (UDP 3544): IPv6 in UDP over IPv4, with an origin indication on the "
            "client's packets.",
            _tunnel(
                lambda l3, out: (
                    UDP(sport=3544, dport=3544)
                    / Raw((b"\x00\x00\x0c\x38" + b"\xcb\x00\x71\x01" if out else b"") + l3)
                )
            ),
            False,
            True,
            [hop("teredo", sport=3544, dport=3544)],
        ),
        (
            "tunnel_gre_udp.pcap",
            "GRE in UDP (RFC 8086, UDP 4754) carrying IPv4 and IPv6.",
            _tunnel(
                lambda l3, out: UDP(sport=49154, dport=4754) / GRE(proto=_ethertype(l3)) / Raw(l3)
            ),
            True,
            True,
            [hop("gre-udp", sport=49154, dport=4754)],
        ),
        (
            "tunnel_ayiya.pcap",
            "AYIYA (UDP 5072) carrying IPv4 and IPv6, with a 16-byte identity and a SHA-1 "
            "signature.",
            _tunnel(lambda l3, out: UDP(sport=5072, dport=5072) / Raw(ayiya_header(l3) + l3)),
            True,
            True,
            [hop("ayiya", sport=5072, dport=5072)],
        ),
        (
            "tunnel_wccp.pcap",
            "WCCP version 2 redirection: GRE protocol 0x883E, a 4-byte redirect header "
            "(dynamic service 90), then the redirected IPv4 or IPv6 packet.",
            _tunnel(lambda l3, out: GRE(proto=0x883E) / Raw(b"\x01\x5a\x00\x00" + l3)),
            True,
            True,
            [hop("wccp")],
        ),
        (
            "tunnel_aruba.pcap",
            "Aruba access point to controller: GRE protocol 0x8210 carrying 802.11 QoS data "
            "frames (ToDS from the client, FromDS to it) with LLC/SNAP.",
            _tunnel(lambda l3, out: GRE(proto=0x8210) / Raw(_wifi_qos(l3, out))),
            True,
            True,
            [hop("aruba")],
        ),
        (
            "tunnel_ipip.pcap",
            "IPv4 in IPv4 (IP-in-IP, protocol 4).",
            _tunnel(raw_ip),
            True,
            False,
            [hop("4in4")],
        ),
        (
            "tunnel_6in4.pcap",
            "IPv6 in IPv4 (6in4, protocol 41).",
            _tunnel(raw_ip),
            False,
            True,
            [hop("6in4")],
        ),
        (
            "tunnel_4in6.pcap",
            "IPv4 in IPv6 (4in6, next header 4).",
            _tunnel(raw_ip, outer_v6=True),
            True,
            False,
            [hop("4in6", v6=True)],
        ),
        (
            "tunnel_nested.pcap",
            "Nested: GRE/ERSPAN type II mirroring a VXLAN packet that carries the connection.",
            _tunnel(nested),
            True,
            True,
            [
                hop("erspan2", id=3),
                {
                    "type": "vxlan",
                    "src": "198.51.100.1",
                    "dst": "198.51.100.2",
                    "sport": 40000,
                    "dport": 4789,
                    "id": 99,
                },
            ],
        ),
    ]


@dataclass
class Link:
    """One capture interface: link type, how frames are built, timestamp resolution."""

    linktype: int
    encap: Encap
    name: str = "eth0"
    #: pcapng if_tsresol (power of ten); None writes no option (microseconds).
    tsresol: int | None = None


def ether() -> Link:
    """Ethernet II (linktype 1)."""
    return Link(1, _eth)


# --------------------------------------------------------------------------------------
# Capture files
# --------------------------------------------------------------------------------------


@dataclass
class Record:
    """One captured frame."""

    ts: int
    frame: bytes
    iface: int = 0
    caplen: int = 0
    number: int = 0


def pcap_bytes(
    records: list[Record],
    linktype: int,
    *,
    nanos: bool = False,
    big_endian: bool = False,
    snaplen: int = 262144,
) -> bytes:
    """A classic pcap file (micro- or nanosecond, either byte order)."""
    bo = ">" if big_endian else "<"
    magic = 0xA1B23C4D if nanos else 0xA1B2C3D4
    out = bytearray(struct.pack(bo + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype))
    for r in records:
        sec, frac = divmod(r.ts, NS)
        if not nanos:
            assert frac % 1000 == 0, "microsecond pcap with a sub-microsecond time"
            frac //= 1000
        out += struct.pack(bo + "IIII", sec, frac, r.caplen, len(r.frame))
        out += r.frame[: r.caplen]
    return bytes(out)


def _opt(code: int, value: bytes) -> bytes:
    """One pcapng option, padded to 32 bits."""
    pad = -len(value) % 4
    return struct.pack("<HH", code, len(value)) + value + b"\0" * pad


def _block(btype: int, body: bytes) -> bytes:
    """One pcapng block around ``body``."""
    total = 12 + len(body)
    return struct.pack("<II", btype, total) + body + struct.pack("<I", total)


def pcapng_bytes(records: list[Record], links: list[Link], snaplen: int = 262144) -> bytes:
    """A little-endian pcapng file: one section, one IDB per link, EPBs."""
    shb_opts = _opt(3, b"Linux") + _opt(4, b"pcapflows captures/make_captures.py") + _opt(0, b"")
    out = bytearray(_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + shb_opts))
    for link in links:
        opts = _opt(2, link.name.encode())
        if link.tsresol is not None:
            opts += _opt(9, bytes([link.tsresol]))
        opts += _opt(0, b"")
        out += _block(1, struct.pack("<HHI", link.linktype, 0, snaplen) + opts)
    for r in records:
        res = links[r.iface].tsresol
        exp = 6 if res is None else res
        assert r.ts % 10 ** (9 - exp) == 0, "timestamp finer than the interface resolution"
        units = r.ts // 10 ** (9 - exp)
        data = r.frame[: r.caplen]
        body = struct.pack(
            "<IIIII", r.iface, units >> 32, units & 0xFFFFFFFF, len(data), len(r.frame)
        )
        body += data + b"\0" * (-len(data) % 4)
        out += _block(6, body)
    return bytes(out)


def gzip_bytes(data: bytes) -> bytes:
    """gzip with a fixed header (no name, mtime 0, OS unknown), level 9."""
    comp = zlib.compressobj(9, zlib.DEFLATED, -15, 9)
    body = comp.compress(data) + comp.flush()
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    trailer = struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF)
    return header + body + trailer


# --------------------------------------------------------------------------------------
# Ground truth
# --------------------------------------------------------------------------------------


@dataclass
class Endpoint:
    """An address, a port and the MAC address frames to or from it carry."""

    ip: str
    port: int
    mac: bytes = b"\x02\x00\x00\x00\x00\x01"

    @property
    def pair(self) -> list[Any]:
        """``[ip, port]`` with the IP in compressed form."""
        return [ipaddress.ip_address(self.ip).compressed, self.port]


@dataclass
class Message:
    """A message of the ground truth."""

    from_client: bool
    content: bytearray
    ts: int


@dataclass
class FlowTruth:
    """What one connection should reassemble to, stated by its scenario."""

    client: Endpoint
    server: Endpoint
    handshake_seen: bool = True
    messages: list[Message] = field(default_factory=list)
    gaps: list[tuple[bool, int, int]] = field(default_factory=list)
    conflicts: list[tuple[bool, int, int]] = field(default_factory=list)
    rst_from: str | None = None
    open_at_end: bool = False
    closed_by: str = "fin"
    #: Whether the packet counts are certain (not when segments travel as fragments).
    count_packets: bool = True
    _broken: dict[bool, bool] = field(default_factory=lambda: {C: False, S: False})

    def write(self, frm: bool, data: bytes, ts: int) -> None:
        """Bytes that follow, in ``frm``'s stream, what was written before.

        Consecutive writes of one direction merge into one message unless a gap was
        declared between them: that is the definition of a message.
        """
        last = self.messages[-1] if self.messages else None
        if last is not None and last.from_client == frm and not self._broken[frm]:
            last.content += data
        else:
            self.messages.append(Message(frm, bytearray(data), ts))
        self._broken[frm] = False

    def gap(self, frm: bool, offset: int, length: int) -> None:
        """``length`` bytes at ``offset`` of ``frm``'s stream are not in the capture."""
        self.gaps.append((frm, offset, length))
        self._broken[frm] = True

    def conflict(self, frm: bool, offset: int, length: int) -> None:
        """A later copy of these bytes differed from the first one (which stays)."""
        self.conflicts.append((frm, offset, length))

    def total(self, frm: bool) -> int:
        """Reassembled (captured) payload bytes of one direction."""
        return sum(len(m.content) for m in self.messages if m.from_client == frm)


@dataclass
class Sent:
    """One TCP segment the script sent, captured or not."""

    frm: bool
    seq: int
    syn: bool
    fin: bool
    payload: bytes
    ts: int
    records: list[Record]
    captured_len: int
    probe: bool


def ts_float(ts: int) -> float:
    """Capture time as seconds (float), the way a reader computes it."""
    return ts / NS


def content_json(data: bytes) -> str | dict[str, str]:
    """Printable ASCII (with CR, LF, TAB) as text, anything else as ``{"hex": ...}``."""
    if all(32 <= b < 127 or b in (9, 10, 13) for b in data):
        return data.decode("ascii")
    return {"hex": data.hex()}


# --------------------------------------------------------------------------------------
# Connections
# --------------------------------------------------------------------------------------

SYN_OPTS: list[tuple[str, Any]] = [
    ("MSS", 1460),
    ("SAckOK", b""),
    ("NOP", None),
    ("NOP", None),
    ("NOP", None),
    ("WScale", 7),
]


class Conn:
    """One TCP connection being written into a capture, with its ground truth.

    Sequence numbers are kept unbounded (ISN + bytes consumed) and reduced modulo 2**32
    only on the wire. ``ack`` defaults to everything the peer sent so far.
    """

    def __init__(
        self,
        cap: Capture,
        client: Endpoint,
        server: Endpoint,
        c_isn: int,
        s_isn: int,
        *,
        iface: int = 0,
        tcp_ts: bool = False,
        win: tuple[int, int] = (502, 509),
        ip_options: list[Packet] | None = None,
        v6_ext: Callable[[], Packet] | None = None,
    ) -> None:
        self.cap = cap
        self.ep = {C: client, S: server}
        self.nxt = {C: c_isn, S: s_isn}
        self.ipid = {C: 0x3A10 + 0x40 * len(cap.conns), S: 0x0000}
        self.iface = iface
        self.tcp_ts = tcp_ts
        self.tsval = {C: 0x5E2A0000 + 977 * len(cap.conns), S: 0x11B30000}
        self.last_tsval = {C: 0, S: 0}
        self.win = {C: win[0], S: win[1]}
        self.ip_options = ip_options
        self.v6_ext = v6_ext
        self.truth = FlowTruth(client, server)
        self.log: list[Sent] = []
        self.packets = {C: 0, S: 0}
        cap.conns.append(self)

    # -- packets ---------------------------------------------------------------------

    def _tcp_options(self, frm: bool, ts: int, options: list[Any] | None) -> list[Any]:
        opts = list(options) if options is not None else []
        if self.tcp_ts:
            tsval = self.tsval[frm] + (ts - T0) // ms(1)
            self.last_tsval[frm] = tsval
            tsecr = self.last_tsval[not frm]
            if opts:
                # In a SYN: MSS, SACK permitted, timestamps, NOP, window scale (Linux).
                opts = [
                    ("MSS", 1460),
                    ("SAckOK", b""),
                    ("Timestamp", (tsval, tsecr)),
                    ("NOP", None),
                    ("WScale", 7),
                ]
            else:
                opts = [("NOP", None), ("NOP", None), ("Timestamp", (tsval, tsecr))]
        return opts

    def l3(
        self,
        frm: bool,
        flags: str,
        payload: bytes,
        seq: int,
        ack: int,
        win: int,
        options: list[Any],
        *,
        df: bool = True,
    ) -> bytes:
        """The IP packet (bytes) of one segment."""
        src, dst = self.ep[frm], self.ep[not frm]
        tcp = TCP(
            sport=src.port,
            dport=dst.port,
            seq=seq % SEQ_MOD,
            ack=ack % SEQ_MOD if "A" in flags else 0,
            flags=flags,
            window=win,
            options=options,
        )
        if ":" in src.ip:
            ip6: Packet = IPv6(src=src.ip, dst=dst.ip, hlim=64)
            if self.v6_ext is not None:
                ip6 = ip6 / self.v6_ext()
            pkt = ip6 / tcp
        else:
            self.ipid[frm] += 1
            ip = IP(src=src.ip, dst=dst.ip, id=self.ipid[frm], ttl=64, flags="DF" if df else 0)
            if self.ip_options is not None:
                ip.options = self.ip_options
            pkt = ip / tcp
        if payload:
            pkt = pkt / Raw(payload)
        return bytes(pkt)

    def send(
        self,
        t: int,
        frm: bool,
        flags: str,
        payload: bytes = b"",
        *,
        seq: int | None = None,
        ack: int | None = None,
        win: int | None = None,
        options: list[Any] | None = None,
        captured: bool = True,
        probe: bool = False,
        pad: bytes = b"",
        frags: list[int] | None = None,
        frag_order: list[int] | None = None,
        held: list[tuple[Sent, bytes]] | None = None,
    ) -> Sent:
        """Put one segment on the wire at time ``t`` (and in the capture if ``captured``).

        ``seq=None`` sends the next new bytes and advances the sender; an explicit
        ``seq`` (a retransmission, a probe, out-of-order sending) advances the sender
        only as far as the segment reaches. ``frags`` splits the IP payload into
        fragments of these sizes, written in ``frag_order``, all at time ``t``.
        ``held`` collects the IP packet instead of writing a frame, for
        :func:`aggregate` to put several packets in one frame.
        """
        syn, fin = "S" in flags, "F" in flags
        if seq is None:
            seq = self.nxt[frm]
        end = seq + len(payload) + syn + fin
        if end > self.nxt[frm] and not probe:
            self.nxt[frm] = end
        if ack is None:
            ack = self.nxt[not frm]
        if win is None:
            win = self.win[frm]
        opts = self._tcp_options(frm, t, options)
        records: list[Record] = []
        captured_len = 0
        if captured:
            self.packets[frm] += 1
            src, dst = self.ep[frm], self.ep[not frm]
            if held is not None:
                l3 = self.l3(frm, flags, payload, seq, ack, win, opts)
                captured_len = len(payload)
            elif frags is None:
                l3 = self.l3(frm, flags, payload, seq, ack, win, opts)
                frame = self.cap.links[self.iface].encap(l3, src.mac, dst.mac, frm) + pad
                rec = self.cap.add(t, frame, self.iface)
                records.append(rec)
                header = len(frame) - len(pad) - len(payload)
                captured_len = max(0, min(len(payload), rec.caplen - header))
            else:
                l3 = self.l3(frm, flags, payload, seq, ack, win, opts, df=False)
                pieces = fragment(l3, frags)
                for i in frag_order or range(len(pieces)):
                    frame = self.cap.links[self.iface].encap(pieces[i], src.mac, dst.mac, frm)
                    records.append(self.cap.add(t, frame, self.iface))
                captured_len = len(payload)
        sent = Sent(frm, seq, syn, fin, payload, t, records, captured_len, probe)
        self.log.append(sent)
        if held is not None and captured:
            held.append((sent, l3))
        return sent

    def data(self, t: int, frm: bool, payload: bytes, flags: str = "PA", **kw: Any) -> Sent:
        """Send new bytes, captured in order: they extend ``frm``'s current message."""
        sent = self.send(t, frm, flags, payload, **kw)
        self.truth.write(frm, payload, t)
        return sent

    def offset(self, frm: bool) -> int:
        """Stream offset of ``frm``'s next new byte (handshake connections only)."""
        return self.nxt[frm] - self.log_isn(frm) - 1

    def log_isn(self, frm: bool) -> int:
        """The ISN of ``frm``, from its SYN."""
        for s in self.log:
            if s.frm == frm and s.syn:
                return s.seq
        raise ValueError("no SYN sent")

    # -- common sequences ---------------------------------------------------------------

    def handshake(self, t: int, rtt: int, *, syn_opts: list[Any] | None = None) -> int:
        """SYN, SYN-ACK after ``rtt``, ACK 60 us later; returns the time of the ACK."""
        opts = SYN_OPTS if syn_opts is None else syn_opts
        self.send(t, C, "S", win=64240, options=opts)
        t += rtt
        self.send(t, S, "SA", win=65160, options=opts)
        t += us(60)
        self.send(t, C, "A")
        return t

    def close(self, t: int, first: bool, rtt: int) -> int:
        """FIN from ``first``, FIN-ACK back after ``rtt``, last ACK; returns its time."""
        self.send(t, first, "FA")
        t += rtt
        self.send(t, not first, "FA")
        t += us(45)
        self.send(t, first, "A")
        return t


def fragment(l3: bytes, sizes: list[int]) -> list[bytes]:
    """Split an IPv4 or IPv6 packet's payload into fragments of ``sizes`` bytes."""
    if l3[0] >> 4 == 4:
        ihl = (l3[0] & 0x0F) * 4
        hdr = IP(l3[:ihl])
        body = l3[ihl:]
        assert sum(sizes) == len(body)
        out = []
        off = 0
        for i, n in enumerate(sizes):
            last = i == len(sizes) - 1
            assert last or n % 8 == 0
            ip = IP(
                src=hdr.src,
                dst=hdr.dst,
                id=hdr.id,
                ttl=hdr.ttl,
                proto=6,
                flags=0 if last else "MF",
                frag=off // 8,
            )
            out.append(bytes(ip / Raw(body[off : off + n])))
            off += n
        return out
    v6 = IPv6(l3[:40])
    body = l3[40:]
    assert sum(sizes) == len(body)
    out = []
    off = 0
    for i, n in enumerate(sizes):
        last = i == len(sizes) - 1
        assert last or n % 8 == 0
        pkt = (
            IPv6(src=v6.src, dst=v6.dst, hlim=v6.hlim)
            / IPv6ExtHdrFragment(nh=v6.nh, offset=off // 8, m=0 if last else 1, id=0x2C7F0A91)
            / Raw(body[off : off + n])
        )
        out.append(bytes(pkt))
        off += n
    return out


# --------------------------------------------------------------------------------------
# A capture being built
# --------------------------------------------------------------------------------------


class Capture:
    """One capture file: its records, its connections, and how it is written."""

    def __init__(
        self,
        name: str,
        description: str,
        links: list[Link] | Link | None = None,
        *,
        snaplen: int = 262144,
        nanos: bool = False,
        big_endian: bool = False,
        sort: bool = False,
    ) -> None:
        self.name = name
        self.description = description
        self.links = links if isinstance(links, list) else [links or ether()]
        self.snaplen = snaplen
        self.nanos = nanos
        self.big_endian = big_endian
        self.sort = sort
        self.records: list[Record] = []
        self.conns: list[Conn] = []
        self.non_tcp = 0
        #: The tunnel path (outermost first) of the client's packets, for tunnel
        #: captures: the server's packets take the mirror path (outer addresses
        #: swapped), unless ``tunnel_server`` states their path.
        self.tunnel: list[dict[str, Any]] | None = None
        self.tunnel_server: list[dict[str, Any]] | None = None

    def add(self, ts: int, frame: bytes, iface: int = 0) -> Record:
        """Append one frame (truncated to the snap length when written)."""
        rec = Record(ts, frame, iface, min(len(frame), self.snaplen))
        self.records.append(rec)
        return rec

    def noise(self, ts: int, pkt: Packet) -> None:
        """A frame that is not TCP."""
        self.add(ts, bytes(pkt))
        self.non_tcp += 1

    def conn(self, client: Endpoint, server: Endpoint, c_isn: int, s_isn: int, **kw: Any) -> Conn:
        """A new connection in this capture (connections are listed as created)."""
        return Conn(self, client, server, c_isn, s_isn, **kw)

    def finish(self) -> None:
        """Put records in capture order and number them."""
        if self.sort:
            self.records.sort(key=lambda r: r.ts)
        for i, r in enumerate(self.records, 1):
            r.number = i

    def file_bytes(self) -> bytes:
        """The capture file's content (gzip-compressed if the name ends in .gz)."""
        name = self.name.removesuffix(".gz")
        if name.endswith(".pcapng"):
            data = pcapng_bytes(self.records, self.links, self.snaplen)
        else:
            data = pcap_bytes(
                self.records,
                self.links[0].linktype,
                nanos=self.nanos,
                big_endian=self.big_endian,
                snaplen=self.snaplen,
            )
        return gzip_bytes(data) if self.name.endswith(".gz") else data

    def expected(self) -> dict[str, Any]:
        """This capture's entry in expected.json."""
        flows = []
        for c in self.conns:
            t = c.truth
            first = min(r.number for s in c.log for r in s.records)
            last = max(r.number for s in c.log for r in s.records)
            flows.append(
                {
                    "client": t.client.pair,
                    "server": t.server.pair,
                    "handshake_seen": t.handshake_seen,
                    "messages": [
                        [m.from_client, content_json(bytes(m.content)), ts_float(m.ts)]
                        for m in t.messages
                    ],
                    "bytes": {"client": t.total(C), "server": t.total(S)},
                    "packets": (
                        {"client": c.packets[C], "server": c.packets[S]}
                        if t.count_packets
                        else None
                    ),
                    "gaps": [list(g) for g in t.gaps],
                    "conflicts": [list(x) for x in t.conflicts],
                    "error": t.rst_from is not None,
                    "rst_from": t.rst_from,
                    "closed_by": t.closed_by,
                    "open_at_end": t.open_at_end,
                    "first_frame": first,
                    "last_frame": last,
                    **({"tunnel": self.tunnel} if self.tunnel is not None else {}),
                    **(
                        {"tunnel_server": self.tunnel_server}
                        if self.tunnel_server is not None
                        else {}
                    ),
                }
            )
        return {
            "description": self.description,
            "records": len(self.records),
            "non_tcp_records": self.non_tcp,
            "flows": flows,
        }


# --------------------------------------------------------------------------------------
# Checking the stated ground truth against the packets written
# --------------------------------------------------------------------------------------


def check_truth(cap: Capture) -> None:
    """Verify each connection's stated truth against the segments actually captured.

    Per direction: the messages and gaps, laid end to end, must tile the stream from
    offset 0; the first captured copy of every message byte must equal it and come from
    a packet at the message's time (for its first byte); no captured packet may carry a
    gap byte; later copies may differ only inside declared conflicts (keep-alive probes
    excepted); every declared conflict must have a differing later copy. Connections
    must be listed in order of first packet, which is also the order pcapflows numbers
    streams.
    """
    firsts = [min(r.number for s in c.log for r in s.records) for c in cap.conns]
    assert firsts == sorted(firsts), f"{cap.name}: connections not in first-packet order"
    for idx, c in enumerate(cap.conns):
        where = f"{cap.name} flow {idx}"
        t = c.truth
        captured = sorted(
            (s for s in c.log if s.records), key=lambda s: min(r.number for r in s.records)
        )
        for frm in (C, S):
            mine = [s for s in captured if s.frm == frm]
            syns = [s for s in mine if s.syn]
            if syns:
                base = syns[0].seq + 1
            elif mine:
                base = mine[0].seq
            else:
                base = 0
            # The stated stream: offset -> byte (None in gaps), and message start times.
            stream: dict[int, int | None] = {}
            starts: dict[int, int] = {}
            gaps = sorted((o, n) for f, o, n in t.gaps if f == frm)
            cur = 0

            for m in [*(m for m in t.messages if m.from_client == frm), None]:
                while gaps and gaps[0][0] == cur:
                    o, n = gaps.pop(0)
                    for k in range(o, o + n):
                        stream[k] = None
                    cur += n
                if m is None:
                    break
                starts[cur] = m.ts
                for k, b in enumerate(m.content):
                    stream[cur + k] = b
                cur += len(m.content)
            assert not gaps, f"{where}: gap not adjacent to the messages: {gaps}"
            conflicts = {k for f, o, n in t.conflicts if f == frm for k in range(o, o + n)}
            first: dict[int, tuple[int, int]] = {}
            differed: set[int] = set()
            for s in mine:
                off = s.seq + (1 if s.syn else 0) - base
                for k in range(s.captured_len):
                    o = off + k
                    b = s.payload[k]
                    if o < 0 or o not in stream:
                        raise AssertionError(f"{where}: captured byte outside stream at {o}")
                    if stream[o] is None:
                        raise AssertionError(f"{where}: captured byte inside a gap at {o}")
                    if o not in first:
                        first[o] = (b, s.ts)
                        assert b == stream[o], f"{where}: first copy differs at {o}"
                    elif b != first[o][0] and not s.probe:
                        assert o in conflicts, f"{where}: undeclared conflict at {o}"
                        differed.add(o)
            for o, byte in stream.items():
                if byte is not None:
                    assert o in first, f"{where}: byte {o} of {frm} never captured"
            for o, ts in starts.items():
                assert first[o][1] == ts, f"{where}: message at {o} has the wrong time"
            assert differed == conflicts, f"{where}: declared conflicts not all seen"


# --------------------------------------------------------------------------------------
# Scenarios
# --------------------------------------------------------------------------------------

CLIENT4 = Endpoint("192.0.2.10", 49152, b"\x02\x00\x00\x00\x00\x10")
SERVER4 = Endpoint("198.51.100.20", 80, b"\x02\x00\x00\x00\x00\x20")
CLIENT6 = Endpoint("2001:db8::10", 49152, b"\x02\x00\x00\x00\x00\x10")
SERVER6 = Endpoint("2001:db8::20", 80, b"\x02\x00\x00\x00\x00\x20")

ISN_C = 0x1A2B3C4D
ISN_S = 0x5E6F7081

REQ = (
    b"GET /hello.txt HTTP/1.1\r\n"
    b"Host: example.test\r\n"
    b"User-Agent: pcapflows-test/1.0\r\n"
    b"Accept: */*\r\n"
    b"\r\n"
)
RESP = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n\r\nHello, world!\n"


def ep(base: Endpoint, port: int | None = None, ip: str | None = None) -> Endpoint:
    """A copy of ``base`` with another port or address."""
    return Endpoint(ip or base.ip, port if port is not None else base.port, base.mac)


def short_conversation(
    cap: Capture,
    v6: bool = False,
    t: int = T0,
    *,
    client: Endpoint | None = None,
    server: Endpoint | None = None,
    **kw: Any,
) -> Conn:
    """The conversation every encapsulation carries: handshake, GET, 200, FIN close."""
    client = client or (CLIENT6 if v6 else CLIENT4)
    server = server or (SERVER6 if v6 else SERVER4)
    c = cap.conn(client, server, ISN_C, ISN_S, **kw)
    t = c.handshake(t, us(150))
    t += us(40)
    c.data(t, C, REQ)
    t += us(120)
    c.send(t, S, "A")
    t += us(900)
    c.data(t, S, RESP)
    t += us(50)
    c.send(t, C, "A")
    t += ms(1)
    c.close(t, C, us(120))
    return c


def encapsulations() -> list[Capture]:
    """The same short conversation in every supported link type and container."""
    caps: list[Capture] = []

    def simple(
        name: str, desc: str, link: Link, *, v4: bool = True, v6: bool = False, **kw: Any
    ) -> Capture:
        cap = Capture(name, desc, link, **kw)
        if v4:
            short_conversation(cap)
        if v6:
            short_conversation(cap, v6=True, t=T0 + ms(100))
        caps.append(cap)
        return cap

    simple("link_ethernet.pcap", "Ethernet II, IPv4.", ether())
    simple(
        "link_vlan.pcap",
        "Ethernet with an 802.1Q tag (VLAN 100), IPv4 and IPv6.",
        Link(1, _vlan),
        v6=True,
    )
    simple(
        "link_qinq.pcap",
        "QinQ: 802.1ad outer tag (VLAN 200) and 802.1Q inner tag (VLAN 100), IPv4 and IPv6.",
        Link(1, _qinq),
        v6=True,
    )
    simple(
        "link_sll.pcap",
        "Linux cooked capture v1 (linktype 113), IPv4 and IPv6.",
        Link(113, _sll, "any"),
        v6=True,
    )
    simple(
        "link_sll2.pcap",
        "Linux cooked capture v2 (linktype 276), IPv4 and IPv6.",
        Link(276, _sll2, "any"),
        v6=True,
    )
    for order, tag in (("<", "le"), (">", "be")):
        endian = "little-endian" if tag == "le" else "big-endian"
        simple(
            f"link_null_{tag}_ipv4.pcap",
            f"BSD loopback/NULL (linktype 0), AF_INET 2 as a {endian} value.",
            Link(0, _null(order, 24), "lo0"),
        )
        for af in (24, 28, 30):
            simple(
                f"link_null_{tag}_af{af}.pcap",
                f"BSD loopback/NULL (linktype 0), IPv6 with AF_INET6 = {af} as a {endian} value.",
                Link(0, _null(order, af), "lo0"),
                v4=False,
                v6=True,
            )
    simple(
        "link_loop.pcap",
        "OpenBSD loopback (linktype 108): AF in network byte order, AF_INET 2 and AF_INET6 24.",
        Link(108, _null(">", 24), "lo0"),
        v6=True,
    )
    for lt in (12, 14, 101):
        simple(
            f"link_raw_{lt}.pcap",
            f"Raw IP with linktype {lt}, IPv4 and IPv6.",
            Link(lt, _raw, "tun0"),
            v6=True,
        )
    simple("link_ipv4_228.pcap", "Raw IPv4 (linktype 228).", Link(228, _raw, "tun0"))
    simple(
        "link_ipv6_229.pcap", "Raw IPv6 (linktype 229).", Link(229, _raw, "tun0"), v4=False, v6=True
    )
    simple(
        "pcap_nanosecond.pcap",
        "Nanosecond-resolution pcap (magic a1b23c4d); timestamps with sub-microsecond digits.",
        ether(),
        nanos=True,
    )
    simple(
        "pcap_big_endian.pcap",
        "Big-endian classic pcap (magic a1b2c3d4 written big-endian).",
        ether(),
        big_endian=True,
    )
    simple(
        "link_pppoe.pcap",
        "PPPoE session over Ethernet (PPP protocols 0x0021, 0x0057), IPv4 and IPv6.",
        Link(1, _pppoe(vlan=False)),
        v6=True,
    )
    simple(
        "link_pppoe_vlan.pcap",
        "PPPoE session behind an 802.1Q tag (VLAN 7), IPv4 and IPv6.",
        Link(1, _pppoe(vlan=True)),
        v6=True,
    )
    simple(
        "link_mpls.pcap",
        "Ethernet with a two-label MPLS stack (0x8847), IPv4 and IPv6.",
        Link(1, _mpls),
        v6=True,
    )
    for lt in (9, 50):
        simple(
            f"link_ppp_{lt}.pcap",
            f"PPP with HDLC-like framing (linktype {lt}), IPv4 and IPv6.",
            Link(lt, _ppp, "ppp0"),
            v6=True,
        )
    simple(
        "link_chdlc_104.pcap",
        "Cisco HDLC (linktype 104), IPv4 and IPv6.",
        Link(104, _chdlc, "serial0"),
        v6=True,
    )
    simple(
        "link_nflog_239.pcap",
        "Linux NFLOG (linktype 239): header, prefix and payload TLVs, IPv4 and IPv6.",
        Link(239, _nflog, "nflog"),
        v6=True,
    )
    simple(
        "link_80211_105.pcap",
        "802.11 data frames with LLC/SNAP, ToDS and FromDS (linktype 105), IPv4 and IPv6.",
        Link(105, _wifi, "wlan0"),
        v6=True,
    )
    simple(
        "link_radiotap_127.pcap",
        "Radiotap then 802.11 data frames (linktype 127), IPv4 and IPv6.",
        Link(127, _radiotap, "mon0"),
        v6=True,
    )
    simple(
        "link_ipoib_242.pcap",
        "IP over InfiniBand (linktype 242), IPv4 and IPv6.",
        Link(242, _ipoib, "ib0"),
        v6=True,
    )
    simple(
        "link_vntag.pcap",
        "Ethernet with a Cisco VN-Tag (0x8926), IPv4 and IPv6.",
        Link(1, _vntag),
        v6=True,
    )
    simple(
        "link_pbb.pcap",
        "IEEE 802.1ah provider backbone bridging: B-TAG, I-TAG (0x88E7), customer "
        "addresses, IPv4 and IPv6.",
        Link(1, _pbb),
        v6=True,
    )
    simple(
        "link_fabricpath.pcap",
        "Cisco FabricPath (0x8903) around the original Ethernet frame, with the frame "
        "check sequence; IPv4 and IPv6.",
        Link(1, _fabricpath),
        v6=True,
    )
    simple(
        "link_ppp_mpls.pcap",
        "PPP (linktype 9) carrying MPLS (protocol 0x0281, two labels), IPv4 and IPv6.",
        Link(9, _ppp_mpls, "ppp0"),
        v6=True,
    )
    simple(
        "link_fddi_10.pcap",
        "FDDI (linktype 10): frame control, addresses, LLC/SNAP; IPv4 and IPv6.",
        Link(10, _fddi, "fddi0"),
        v6=True,
    )
    simple(
        "link_arcnet_7.pcap",
        "ARCNET as BSD captures it (linktype 7): RFC 1201 IPv4 and RFC 2497 IPv6.",
        Link(7, _arcnet(linux=False), "arc0"),
        v6=True,
    )
    simple(
        "link_arcnet_129.pcap",
        "ARCNET as Linux captures it (linktype 129, with the offset field), IPv4 and IPv6.",
        Link(129, _arcnet(linux=True), "arc0"),
        v6=True,
    )
    simple("gzip_pcap.pcap.gz", "gzip-compressed classic pcap (Ethernet, IPv4).", ether())
    simple(
        "gzip_pcapng.pcapng.gz",
        "gzip-compressed pcapng (Ethernet, IPv4 and IPv6).",
        ether(),
        v6=True,
    )

    # Nanosecond pcap: move every record by a sub-microsecond amount.
    nano = next(c for c in caps if c.name == "pcap_nanosecond.pcap")
    _shift_nanos(nano)

    cap = Capture(
        "ip_options.pcap",
        "IPv4 with options on every packet (Router Alert, "
        "Record Route with two slots, EOL: IHL 9).",
    )
    short_conversation(
        cap,
        ip_options=[
            IPOption_Router_Alert(),
            IPOption_RR(routers=["0.0.0.0", "0.0.0.0"]),
            IPOption_EOL(),
        ],
    )
    caps.append(cap)

    cap = Capture(
        "ipv6_ext_headers.pcap",
        "IPv6 with a hop-by-hop options header "
        "(Router Alert) and a destination options header (PadN) before TCP.",
    )
    short_conversation(
        cap,
        v6=True,
        v6_ext=lambda: (
            IPv6ExtHdrHopByHop(options=[RouterAlert()])
            / IPv6ExtHdrDestOpt(options=[PadN(optdata=b"\x00\x00\x00\x00")])
        ),
    )
    caps.append(cap)

    for name, desc, encap, v4, v6, path in tunnel_links():
        simple(name, desc, Link(1, encap), v4=v4, v6=v6).tunnel = path

    amsdu = aruba_amsdu()
    amsdu.tunnel = [{"type": "aruba", "src": OUTER_A, "dst": OUTER_B}]
    caps.append(amsdu)
    caps.append(teredo_any_port())
    caps.append(fragments(v6=False))
    caps.append(fragments(v6=True))
    caps.append(eth_padding())
    caps.append(two_interfaces())
    return caps


def teredo_any_port() -> Capture:
    """Teredo between a client behind a NAT (UDP 3797) and a relay (UDP 32900), as in
    Zeek's Teredo trace: no 3544 anywhere, so only the content says Teredo. Around it,
    UDP that must stay UDP: a DNS query, a datagram starting like IPv6 whose length
    does not match, and IPv6 between two non-Teredo addresses; and a Teredo bubble
    (IPv6 without a next header) on the tunnel's ports, which is skipped."""
    host, relay = "192.0.2.16", "203.0.113.38"
    client = Endpoint("2001:0:4136:e378:8000:63bf:3fff:fdd2", 49153, MAC_A)
    server = Endpoint("2001:db8:4860::68", 80, MAC_B)

    def encap(l3: bytes, src: bytes, dst: bytes, out: bool) -> bytes:
        a, b, sport, dport = (host, relay, 3797, 32900) if out else (relay, host, 32900, 3797)
        outer = IP(src=a, dst=b, id=0, ttl=64) / UDP(sport=sport, dport=dport) / Raw(l3)
        return _eth(bytes(outer), src, dst, out)

    cap = Capture(
        "tunnel_teredo_anyport.pcap",
        "Teredo on ports 3797 and 32900 (no 3544): recognized by content. Three UDP "
        "datagrams that are not Teredo, and a Teredo bubble, are skipped.",
        Link(1, encap),
    )
    mac_a, mac_b = b"\x02\x00\x00\x00\x00\xa1", b"\x02\x00\x00\x00\x00\xa2"

    def udp(t: int, sport: int, dport: int, payload: bytes) -> None:
        frame = (
            Ether(src=mac_a, dst=mac_b)
            / IP(src=host, dst=relay, id=0)
            / UDP(sport=sport, dport=dport)
        )
        cap.noise(t, frame / Raw(payload))

    dns = DNS(id=0x1234, rd=1, qd=DNSQR(qname="ipv6.example.test", qtype="AAAA"))
    udp(T0 - ms(40), 53000, 53, bytes(dns))
    six = bytes(IPv6(src=client.ip, dst=server.ip, nh=59))
    udp(T0 - ms(30), 3797, 32900, six)  # a bubble: Teredo, but nothing for TCP
    udp(T0 - ms(20), 40000, 40001, six + b"\x00" * 8)  # longer than its IPv6 length
    udp(T0 - ms(10), 40000, 40001, bytes(IPv6(src="2001:db8::1", dst=server.ip, nh=59)))
    short_conversation(cap, v6=True, client=client, server=server)
    cap.tunnel = [{"type": "teredo", "src": host, "dst": relay, "sport": 3797, "dport": 32900}]
    cap.tunnel_server = [
        {"type": "teredo", "src": relay, "dst": host, "sport": 32900, "dport": 3797}
    ]
    return cap


#: ``build(IP packets, outgoing) -> frame``: one frame carrying several packets.
Aggregator = Callable[[list[bytes], bool], bytes]


def aggregate(cap: Capture, t: int, held: list[tuple[Sent, bytes]], build: Aggregator) -> Record:
    """One frame at time ``t`` carrying every packet ``held`` (segments of one
    direction, held by :meth:`Conn.send`), built by ``build(packets, outgoing)``."""
    out = held[0][0].frm
    assert all(s.frm == out for s, _ in held), "an aggregate goes one way"
    frame = build([l3 for _, l3 in held], out)
    rec = cap.add(t, frame)
    assert rec.caplen == len(frame)
    for s, _ in held:
        s.records.append(rec)
    return rec


def aruba_amsdu() -> Capture:
    """Two connections through an Aruba tunnel whose AP aggregates: each direction has
    one A-MSDU with two segments of one connection and one of the other."""
    gre = lambda body, out: GRE(proto=0x8210) / Raw(body)  # noqa: E731
    single = _tunnel(lambda l3, out: gre(_wifi_qos(l3, out), out))

    def build(l3s: list[bytes], out: bool) -> bytes:
        # The outer Ethernet addresses of every other frame (the endpoints' own).
        a, b = (CLIENT4.mac, SERVER4.mac) if out else (SERVER4.mac, CLIENT4.mac)
        return _tunnel(gre)(_wifi_amsdu(l3s, out), a, b, out)

    cap = Capture(
        "tunnel_aruba_amsdu.pcap",
        "Aruba access point to controller (GRE 0x8210) with A-MSDUs: two connections; "
        "the client's frame 7 carries the first connection's request in two segments and "
        "the second's request, the AP's frame 9 the first connection's response in two "
        "segments and the second's response; every other frame carries one packet.",
        Link(1, single),
    )
    c1 = cap.conn(ep(CLIENT4, 50100), SERVER4, ISN_C, ISN_S)
    c2 = cap.conn(ep(CLIENT4, 50101), SERVER4, ISN_C + 0x10000, ISN_S + 0x20000)
    req1 = post(text(900, "amsdu-req-1"), "/upload/one")
    req2 = http_get("/two.txt", "example.test")
    resp1 = http_resp(text(1500, "amsdu-resp-1"), "text/plain")
    resp2 = RESP
    t = c1.handshake(T0, us(150))
    t = c2.handshake(t + us(80), us(150))
    t += us(200)
    up: list[tuple[Sent, bytes]] = []
    c1.data(t, C, req1[:600], held=up)
    c1.data(t, C, req1[600:], held=up)
    c2.data(t, C, req2, held=up)
    aggregate(cap, t, up, build)
    t += us(150)
    c1.send(t, S, "A")
    t += ms(2)
    down: list[tuple[Sent, bytes]] = []
    c1.data(t, S, resp1[:1000], held=down)
    c1.data(t, S, resp1[1000:], held=down)
    c2.data(t, S, resp2, held=down)
    aggregate(cap, t, down, build)
    t += us(60)
    c1.send(t, C, "A")
    c2.send(t + us(10), C, "A")
    t += ms(1)
    t = c1.close(t, C, us(150))
    c2.close(t + us(100), C, us(150))
    return cap


def _shift_nanos(cap: Capture) -> None:
    """Add a distinct sub-microsecond part to every timestamp of ``cap`` (ns pcap)."""
    new = {r.ts: r.ts + 1 + (i * 137) % 999 for i, r in enumerate(cap.records)}
    assert len(new) == len(cap.records), "timestamps must be distinct to shift them"
    for r in cap.records:
        r.ts = new[r.ts]
    for c in cap.conns:
        for s in c.log:
            s.ts = new[s.ts]
        for m in c.truth.messages:
            m.ts = new[m.ts]


def fragments(v6: bool) -> Capture:
    """A POST whose request and response segments travel as IP fragments."""
    name = "ipv6_fragments.pcap" if v6 else "ipv4_fragments.pcap"
    cap = Capture(
        name,
        f"{'IPv6' if v6 else 'IPv4'} fragmented TCP segments: the request in 3 fragments "
        "in order, the response in 4 fragments written out of order (4, 1, 3, 2). All "
        "fragments of one datagram share one timestamp, so the message times do not "
        "depend on which fragment is taken as the segment's time.",
    )
    c = cap.conn(CLIENT6 if v6 else CLIENT4, SERVER6 if v6 else SERVER4, ISN_C, ISN_S)
    # Whether a segment sent as 3 fragments counts as 1 packet or 3 is a matter of
    # definition: not stated. Frame numbers are certain (handshake and close are whole).
    c.truth.count_packets = False
    body = text(380, "frag-body")
    req = (
        b"POST /upload HTTP/1.1\r\nHost: example.test\r\nContent-Type: text/plain\r\n"
        b"Content-Length: 380\r\n\r\n" + body
    )
    resp_body = text(560, "frag-resp")
    resp = b"HTTP/1.1 200 OK\r\nContent-Length: 560\r\n\r\n" + resp_body
    t = c.handshake(T0, us(300))
    t += us(50)
    tcp_len = 20 + len(req)
    c.data(t, C, req, frags=[160, 160, tcp_len - 320])
    t += us(300)
    c.send(t, S, "A")
    t += ms(2)
    tcp_len = 20 + len(resp)
    c.data(t, S, resp, frags=[176, 176, 176, tcp_len - 528], frag_order=[3, 0, 2, 1])
    t += us(60)
    c.send(t, C, "A")
    t += ms(5)
    c.close(t, C, us(300))
    return cap


def eth_padding() -> Capture:
    """Tiny segments in Ethernet frames padded to 60 bytes with non-zero bytes."""
    cap = Capture(
        "eth_padding.pcap",
        "Ethernet frames shorter than 60 bytes padded to 60 with 0xa5 bytes (as some "
        "NICs do): SYNs, pure ACKs and 1-3 byte payloads. The padding is after the IP "
        "total length and must never become payload.",
    )
    c = cap.conn(ep(CLIENT4, 50007), ep(SERVER4, 7), ISN_C, ISN_S)

    def pad(n_payload: int, header: int = 54) -> bytes:
        return b"\xa5" * max(0, 60 - header - n_payload)

    t = T0
    mss = [("MSS", 1460)]
    c.send(t, C, "S", win=64240, options=mss, pad=pad(0, 58))
    t += us(200)
    c.send(t, S, "SA", win=65160, options=mss, pad=pad(0, 58))
    t += us(50)
    c.send(t, C, "A", pad=pad(0))
    for line in (b"hi\n", b"x", b"ok\n"):
        t += ms(10)
        c.data(t, C, line, pad=pad(len(line)))
        t += us(200)
        c.data(t, S, line, pad=pad(len(line)))
        t += us(40)
        c.send(t, C, "A", pad=pad(0))
    t += ms(10)
    c.send(t, C, "FA", pad=pad(0))
    t += us(200)
    c.send(t, S, "FA", pad=pad(0))
    t += us(40)
    c.send(t, C, "A", pad=pad(0))
    return cap


def two_interfaces() -> Capture:
    """pcapng with an Ethernet interface (us) and a raw IP interface (ns)."""
    cap = Capture(
        "pcapng_two_interfaces.pcapng",
        "pcapng with two interfaces: 0 is Ethernet with the default resolution "
        "(microseconds, no if_tsresol), 1 is raw IPv4 (linktype 101) with if_tsresol 9 "
        "(nanoseconds). One connection on each, their packets interleaved.",
        [Link(1, _eth, "eth0"), Link(101, _raw, "tun0", tsresol=9)],
        sort=True,
    )
    a = cap.conn(CLIENT4, SERVER4, ISN_C, ISN_S, iface=0)
    b = cap.conn(
        Endpoint("10.8.0.2", 40404),
        Endpoint("10.8.0.1", 8000),
        0x0BADCAFE,
        0x7FEEDBEE,
        iface=1,
    )
    ta = T0
    tb = T0 + us(100) + 123
    for c, t, rtt in ((a, ta, us(400)), (b, tb, us(250) + 7)):
        t = c.handshake(t, rtt)
        t += us(40) + (c is b) * 311
        c.data(t, C, REQ)
        t += rtt + (c is b) * 5
        c.data(t, S, RESP)
        t += us(50) + (c is b) * 1
        c.send(t, C, "A")
        t += ms(1)
        c.close(t, C, rtt)
    return cap


# -- demo --------------------------------------------------------------------------------

HTML = (
    b"<!DOCTYPE html>\n<html>\n<head>\n<title>pcapflows demo</title>\n"
    b'<link rel="stylesheet" href="/style.css">\n<script src="/app.js"></script>\n'
    b'</head>\n<body>\n<h1>pcapflows demo</h1>\n<img src="/logo.png">\n<pre>\n'
    + text(1700, "demo-html")
    + b"\n</pre>\n</body>\n</html>\n"
)
CSS = b"/* style.css */\n" + b"".join(
    b"p.c%03d { margin: %dpx; color: #%06x; }\n" % (i, i % 17, (i * 7919) % 0xFFFFFF)
    for i in range(80)
)
JS = b"// app.js\n" + b"".join(
    b"function f%02d(x) { return x * %d + %d; }\n" % (i, i, i * 3) for i in range(14)
)


def png(width: int, height: int, seed: str) -> bytes:
    """A valid RGB PNG with noise pixels, its zlib stream made of stored blocks.

    Stored (uncompressed) deflate blocks are written here rather than by zlib, whose
    output may differ between zlib builds: the captures must be byte-identical anywhere.
    """
    pixels = blob(seed, width * height * 3)
    raw = b"".join(b"\0" + pixels[y * width * 3 : (y + 1) * width * 3] for y in range(height))
    stream = bytearray(b"\x78\x01")
    for i in range(0, len(raw), 65535):
        block = raw[i : i + 65535]
        final = 1 if i + 65535 >= len(raw) else 0
        stream += struct.pack("<BHH", final, len(block), len(block) ^ 0xFFFF) + block
    stream += struct.pack("!I", zlib.adler32(raw))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack("!I", len(data)) + kind + data + struct.pack("!I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack("!IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", bytes(stream))
        + chunk(b"IEND", b"")
    )


PNG = png(24, 24, "demo-png")


def http_resp(body: bytes, ctype: str, *, status: str = "200 OK", close: bool = False) -> bytes:
    """An HTTP/1.1 response with a fixed Date and Server."""
    head = (
        f"HTTP/1.1 {status}\r\n"
        "Date: Tue, 14 Nov 2023 22:13:20 GMT\r\n"
        "Server: demo/1.0\r\n"
        f"Content-Type: {ctype}\r\n"
        f"Content-Length: {len(body)}\r\n"
        + ("Connection: close\r\n" if close else "Connection: keep-alive\r\n")
        + "\r\n"
    )
    return head.encode() + body


def sized_resp(total: int, seed: str, ctype: str = "text/plain") -> bytes:
    """An HTTP response of exactly ``total`` bytes with a text body."""
    n = total - len(http_resp(b"", ctype))
    while len(resp := http_resp(text(n, seed), ctype)) != total:
        n -= len(resp) - total
    return resp


def http_get(path: str, host: str = "www.example.test") -> bytes:
    """A browser-like HTTP/1.1 GET."""
    return (
        f"GET {path} HTTP/1.1\r\n"
        f"Host: {host}\r\n"
        "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0\r\n"
        "Accept: */*\r\n"
        "Accept-Encoding: identity\r\n"
        "Connection: keep-alive\r\n"
        "\r\n"
    ).encode()


def chunks(data: bytes, size: int) -> list[bytes]:
    """``data`` cut into pieces of at most ``size`` bytes."""
    return [data[i : i + size] for i in range(0, len(data), size)]


def demo() -> Capture:
    """A realistic browser session: ARP, DNS, four HTTP connections over IPv4 and IPv6."""
    cap = Capture(
        "demo.pcapng",
        "A browser loading a page: ARP and DNS (A and AAAA) noise, then four HTTP/1.1 "
        "connections, three over IPv4 and one over IPv6, partly overlapping in time, with "
        "TCP timestamps on every segment. Flow 0: GET / whose request is retransmitted "
        "(RTO), response with Connection: close, server closes first. Flow 1 (IPv6): "
        "GET /style.css whose response segments arrive out of order (1, 3, 2). Flow 2: "
        "keep-alive with two requests (/app.js, then /logo.png with a binary body). "
        "Flow 3: a download the client aborts with a RST.",
        sort=True,
    )
    me = Endpoint("192.168.1.23", 0, b"\x02\x42\xc0\xa8\x01\x17")
    gw_mac = b"\x02\x42\xc0\xa8\x01\x01"
    bcast = "ff:ff:ff:ff:ff:ff"

    def mac(b: bytes) -> str:
        return ":".join(f"{x:02x}" for x in b)

    # Non-TCP noise: ARP for the gateway, DNS A and AAAA for the web server.
    cap.noise(
        T0,
        Ether(src=mac(me.mac), dst=bcast)
        / ARP(op=1, hwsrc=mac(me.mac), psrc=me.ip, hwdst="00:00:00:00:00:00", pdst="192.168.1.1"),
    )
    cap.noise(
        T0 + us(391),
        Ether(src=mac(gw_mac), dst=mac(me.mac))
        / ARP(op=2, hwsrc=mac(gw_mac), psrc="192.168.1.1", hwdst=mac(me.mac), pdst=me.ip)
        / Raw(b"\x00" * 18),
    )
    for i, (qtype, t_q, t_r, rdata) in enumerate(
        (("A", us(702), us(12640), "203.0.113.80"), ("AAAA", us(915), us(13104), "2001:db8:2::80"))
    ):
        q = DNSQR(qname="www.example.test", qtype=qtype)
        cap.noise(
            T0 + t_q,
            Ether(src=mac(me.mac), dst=mac(gw_mac))
            / IP(src=me.ip, dst="192.168.1.1", id=0x71A0 + i)
            / UDP(sport=53124 + i, dport=53)
            / DNS(id=0x4B1D + i, rd=1, qd=[q]),
        )
        cap.noise(
            T0 + t_r,
            Ether(src=mac(gw_mac), dst=mac(me.mac))
            / IP(src="192.168.1.1", dst=me.ip, id=0x0C00 + i)
            / UDP(sport=53, dport=53124 + i)
            / DNS(
                id=0x4B1D + i,
                qr=1,
                rd=1,
                ra=1,
                qd=[q],
                an=[DNSRR(rrname="www.example.test", type=qtype, ttl=300, rdata=rdata)],
            ),
        )

    web4 = Endpoint("203.0.113.80", 80, gw_mac)
    web6 = Endpoint("2001:db8:2::80", 80, gw_mac)
    me6 = "2001:db8:1::23"
    mss4 = 1448  # 1460 minus 12 bytes of TCP timestamps
    mss6 = 1428

    # Flow 0: GET / with a retransmitted request; server closes (Connection: close).
    f0 = cap.conn(ep(me, 52114), web4, 0x8C1F02B7, 0x3D5E99A1, tcp_ts=True)
    t = T0 + us(20100)
    t = f0.handshake(t, us(20250))  # SYN-ACK at +20.25 ms
    t += us(190)
    req = http_get("/")
    first = f0.data(t, C, req)
    t += ms(210)  # RTO: the first copy was lost after the capture point
    f0.send(t, C, "PA", req, seq=first.seq)
    t += us(20330)
    f0.send(t, S, "A")
    t += us(2640)
    page = http_resp(HTML, "text/html", close=True)
    parts = chunks(page, mss4)
    for k, part in enumerate(parts):
        f0.data(t + us(35) * k, S, part)
    t += us(35) * len(parts) + us(40)
    f0.send(t, C, "A")
    t += us(80)
    f0.send(t, S, "FA")
    t += us(2600)
    f0.send(t, C, "FA")
    t += us(20200)
    f0.send(t, S, "A")

    # Flow 1 (IPv6): GET /style.css, response segments captured 1, 3, 2.
    f1 = cap.conn(ep(me, 52116, me6), web6, 0xA0C3E151, 0x6B22F0D4, tcp_ts=True)
    t = T0 + us(300200)
    t = f1.handshake(t, us(25200))
    t += us(130)
    f1.data(t, C, http_get("/style.css"))
    t += us(25300)
    f1.send(t, S, "A")
    t += us(1200)
    css = http_resp(CSS, "text/css")
    s1, s2, s3 = css[:mss6], css[mss6 : 2 * mss6], css[2 * mss6 :]
    assert s3 and len(s3) < mss6
    base = f1.nxt[S]
    f1.data(t, S, s1)
    f1.send(t + us(30), S, "PA", s3, seq=base + 2 * mss6)
    f1.send(t + us(80), C, "A", ack=base + mss6)  # duplicate ACK: 2 is missing
    f1.send(t + us(130), S, "A", s2, seq=base + mss6)
    f1.truth.write(S, s2 + s3, t)
    f1.send(t + us(200), C, "A")
    t = T0 + ms(410)
    f1.close(t, C, us(25200))

    # Flow 2: keep-alive, GET /app.js then GET /logo.png (binary body).
    f2 = cap.conn(ep(me, 52118), web4, 0x4F0B6E29, 0xC7A81203, tcp_ts=True)
    t = T0 + us(300500)
    t = f2.handshake(t, us(20200))
    t += us(140)
    f2.data(t, C, http_get("/app.js"))
    t += us(21600)
    f2.data(t, S, http_resp(JS, "application/javascript"))
    t += us(70)
    f2.send(t, C, "A")
    t = T0 + ms(842)
    f2.data(t, C, http_get("/logo.png"))
    t += us(20300)
    for k, part in enumerate(chunks(http_resp(PNG, "image/png"), mss4)):
        f2.data(t + us(30) * k, S, part)
    t += us(130)
    f2.send(t, C, "A")
    t = T0 + ms(1500)
    f2.close(t, C, us(20100))

    # Flow 3: GET /download/big.bin, two segments of the answer, then the client resets.
    f3 = cap.conn(ep(me, 52120), web4, 0x12E4D8F0, 0x9A01BC37, tcp_ts=True)
    t = T0 + us(300800)
    t = f3.handshake(t, us(20200))
    t += us(140)
    f3.data(t, C, http_get("/download/big.bin"))
    t += us(20100)
    f3.send(t, S, "A")
    t += us(700)
    big = http_resp(blob("demo-big", 100000), "application/octet-stream")
    f3.data(t, S, big[:mss4])
    f3.data(t + us(40), S, big[mss4 : 2 * mss4])
    t += us(100)
    f3.send(t, C, "A")
    t = T0 + ms(600)
    f3.send(t, C, "RA")
    f3.truth.rst_from = "client"
    f3.truth.closed_by = "rst"
    return cap


# -- reassembly rules -------------------------------------------------------------------


def rule(name: str, desc: str, **kw: Any) -> Capture:
    """An Ethernet/IPv4 capture for one reassembly rule."""
    return Capture(name, desc, ether(), **kw)


def post(body: bytes, path: str = "/submit") -> bytes:
    """An HTTP POST carrying ``body``."""
    return (
        f"POST {path} HTTP/1.1\r\nHost: example.test\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def rule_out_of_order() -> Capture:
    """Request captured 1, 3, 2; response captured 2, 3, 1."""
    cap = rule(
        "rule_out_of_order.pcap",
        "Out-of-order segments: the request's three segments are captured 1, 3, 2 and "
        "the response's 2, 3, 1 (so the response message's time is that of its first "
        "segment, captured last). Receivers send duplicate ACKs, never past a hole.",
    )
    c = cap.conn(ep(CLIENT4, 50001), SERVER4, ISN_C, ISN_S)
    t = c.handshake(T0, us(500))
    req = post(text(1000, "ooo-req"))
    r1, r2, r3 = req[:500], req[500:1000], req[1000:]
    base = c.nxt[C]
    t += us(50)
    c.send(t, C, "PA", r1)
    c.send(t + us(20), C, "PA", r3, seq=base + 1000)
    c.send(t + us(260), S, "A", ack=base + 500)
    c.send(t + us(300), S, "A", ack=base + 500)
    c.send(t + us(400), C, "PA", r2, seq=base + 500)
    c.truth.write(C, req, t)
    t += us(900)
    c.send(t, S, "A")
    t += ms(3)
    resp = http_resp(text(2300, "ooo-resp"), "text/plain")
    s1, s2, s3 = resp[:1000], resp[1000:2000], resp[2000:]
    sbase = c.nxt[S]
    c.send(t, S, "PA", s2, seq=sbase + 1000)
    c.send(t + us(30), S, "PA", s3, seq=sbase + 2000)
    c.send(t + us(300), C, "A", ack=sbase)
    c.send(t + us(320), C, "A", ack=sbase)
    c.send(t + us(800), S, "PA", s1, seq=sbase)
    c.truth.write(S, resp, t + us(800))
    t += us(850)
    c.send(t, C, "A")
    t += ms(2)
    c.close(t, C, us(500))
    return cap


def rule_retransmission() -> Capture:
    """Exact and partial retransmissions in both directions."""
    cap = rule(
        "rule_retransmission.pcap",
        "Retransmissions: the request's second segment is retransmitted identically "
        "(RTO); the response's segments 2-3 are retransmitted as one coalesced segment, "
        "and a final segment overlaps 300 already-sent bytes and carries 600 new ones "
        "(partial retransmission). Every byte is delivered once; no conflicts.",
    )
    c = cap.conn(ep(CLIENT4, 50002), SERVER4, ISN_C, ISN_S)
    t = c.handshake(T0, us(500))
    req = post(text(300, "rt-req"))
    t += us(50)
    c.data(t, C, req[:200])
    r2 = c.data(t + us(20), C, req[200:])
    c.send(t + us(520), S, "A", ack=r2.seq)
    t += ms(200)
    c.send(t, C, "PA", req[200:], seq=r2.seq)
    t += us(500)
    c.send(t, S, "A")
    t += ms(2)
    resp = sized_resp(3200, "rt-resp")
    sbase = c.nxt[S]
    c.data(t, S, resp[:1000])
    c.data(t + us(20), S, resp[1000:2000])
    c.data(t + us(40), S, resp[2000:2600])
    c.send(t + us(540), C, "A", ack=sbase + 1000)
    c.send(t + us(560), C, "A", ack=sbase + 1000)
    t += ms(201)
    c.send(t, S, "PA", resp[1000:2600], seq=sbase + 1000)
    t += us(30)
    c.send(t, S, "PA", resp[2300:3200], seq=sbase + 2300)
    c.truth.write(S, resp[2600:], t)
    t += us(500)
    c.send(t, C, "A")
    t += ms(2)
    c.close(t, C, us(500))
    return cap


def rule_conflict() -> Capture:
    """Retransmissions whose bytes differ from the first copy."""
    cap = rule(
        "rule_conflict.pcap",
        "Conflicting overlaps: the request is retransmitted with bytes 5-9 different "
        "('/alpha' became '/bravo'); the response's bytes 50-149 are retransmitted with "
        "bytes 60-69 different. The first copy wins; each differing span (every byte in "
        "it differs) is a conflict.",
    )
    c = cap.conn(ep(CLIENT4, 50003), SERVER4, ISN_C, ISN_S)
    t = c.handshake(T0, us(500))
    req = b"GET /alpha.html HTTP/1.1\r\nHost: example.test\r\n\r\n"
    bad = b"GET /bravo.html HTTP/1.1\r\nHost: example.test\r\n\r\n"
    t += us(50)
    first = c.data(t, C, req)
    t += ms(200)
    c.send(t, C, "PA", bad, seq=first.seq)
    c.truth.conflict(C, 5, 5)
    t += us(500)
    c.send(t, S, "A")
    t += ms(1)
    resp = sized_resp(200, "cf-resp", "text/html")
    sbase = c.nxt[S]
    c.data(t, S, resp[:100])
    c.data(t + us(20), S, resp[100:])
    altered = bytearray(resp[50:150])
    for k in range(10, 20):
        altered[k] ^= 0x20 if 65 <= altered[k] <= 122 else 0x55
    assert all(altered[k] != resp[50 + k] for k in range(10, 20))
    t += ms(200)
    c.send(t, S, "PA", bytes(altered), seq=sbase + 50)
    c.truth.conflict(S, 60, 10)
    t += us(500)
    c.send(t, C, "A")
    t += ms(2)
    c.close(t, C, us(500))
    return cap


def seq_conversation(name: str, desc: str, isn: int) -> Capture:
    """A conversation whose data crosses sequence number ``isn + 40`` and more."""
    cap = rule(name, desc)
    c = cap.conn(ep(CLIENT4, 50004), SERVER4, isn, isn)
    t = c.handshake(T0, us(500))
    t += us(50)
    c.data(t, C, post(text(60, "wrap-req")))
    t += us(500)
    c.send(t, S, "A")
    resp = http_resp(text(2000, "wrap-resp"), "text/plain")
    t += ms(1)
    for k, part in enumerate(chunks(resp, 700)):
        c.data(t + us(20) * k, S, part)
    t += us(600)
    c.send(t, C, "A")
    t += ms(1)
    c.data(t, C, b"GET /next HTTP/1.1\r\nHost: example.test\r\n\r\n")
    t += us(500)
    c.data(t, S, http_resp(b"next\n", "text/plain"))
    t += us(50)
    c.send(t, C, "A")
    t += ms(1)
    c.close(t, C, us(500))
    return cap


def rule_port_reuse() -> Capture:
    """Two complete connections on one 4-tuple, 10 s apart, different ISNs."""
    cap = rule(
        "rule_port_reuse.pcap",
        "Port reuse: two complete connections on the same 4-tuple 10 s apart (more "
        "than the 5 s linger), with different ISNs. The server closes first each time, "
        "so the client may reuse its port. Two flows.",
    )
    for k, (ci, si) in enumerate(((0x10000000, 0x20000000), (0x30000000, 0x40000000))):
        c = cap.conn(ep(CLIENT4, 50005), SERVER4, ci, si)
        t = T0 + ms(10_000) * k
        t = c.handshake(t, us(500))
        t += us(50)
        c.data(t, C, http_get(f"/round{k}", "example.test"))
        t += us(700)
        c.data(t, S, http_resp(f"round {k}\n".encode(), "text/plain", close=True))
        t += us(30)
        c.send(t, S, "FA")
        t += us(200)
        c.send(t, C, "A")
        t += us(100)
        c.send(t, C, "FA")
        t += us(500)
        c.send(t, S, "A")
    return cap


def rule_syn_retransmit() -> Capture:
    """A SYN sent twice (same ISN) before the SYN-ACK."""
    cap = rule(
        "rule_syn_retransmit.pcap",
        "A retransmitted SYN (same ISN, 1 s later) before the SYN-ACK: one flow.",
    )
    c = cap.conn(ep(CLIENT4, 50006), SERVER4, ISN_C, ISN_S)
    c.send(T0, C, "S", win=64240, options=SYN_OPTS)
    t = T0 + ms(1000)
    c.send(t, C, "S", win=64240, options=SYN_OPTS, seq=c.log[0].seq)
    t += us(500)
    c.send(t, S, "SA", win=65160, options=SYN_OPTS)
    t += us(60)
    c.send(t, C, "A")
    t += us(40)
    c.data(t, C, REQ)
    t += us(600)
    c.data(t, S, RESP)
    t += us(50)
    c.send(t, C, "A")
    t += ms(1)
    c.close(t, C, us(500))
    return cap


def rule_synack_first() -> Capture:
    """The SYN-ACK is written before the SYN (capture-order reordering)."""
    cap = rule(
        "rule_synack_first.pcap",
        "SYN-ACK written before the SYN, with an earlier timestamp on the SYN (as "
        "multi-queue capture produces): one flow, client is the SYN's sender, handshake "
        "seen, stream offsets still start after each SYN.",
    )
    c = cap.conn(ep(CLIENT4, 50008), SERVER4, ISN_C, ISN_S)
    syn_ack = c.l3(S, "SA", b"", ISN_S, ISN_C + 1, 65160, SYN_OPTS)
    # Write the SYN-ACK record first, then the SYN, by building the SYN-ACK by hand.
    rec = cap.add(T0 + us(150), _eth(syn_ack, SERVER4.mac, CLIENT4.mac, False))
    c.send(T0, C, "S", win=64240, options=SYN_OPTS)
    c.nxt[S] = ISN_S + 1
    c.packets[S] += 1
    c.log.insert(0, Sent(S, ISN_S, True, False, b"", T0 + us(150), [rec], 0, False))
    t = T0 + us(210)
    c.send(t, C, "A")
    t += us(40)
    c.data(t, C, REQ)
    t += us(600)
    c.data(t, S, RESP)
    t += us(50)
    c.send(t, C, "A")
    t += ms(1)
    c.close(t, C, us(150))
    return cap


def tls_record(seed: str, n: int) -> bytes:
    """A TLS 1.2/1.3 application data record with ``n`` bytes of ciphertext."""
    return b"\x17\x03\x03" + struct.pack("!H", n) + blob(seed, n)


def rule_midstream_server_first() -> Capture:
    """TLS on port 443 picked up mid-stream, the server's data captured first."""
    cap = rule(
        "rule_midstream_server_first.pcap",
        "Connection picked up mid-stream (no handshake): the first packet is the server "
        "(port 443) sending TLS application data to the client's port 50312. The client "
        "is the high port; offsets start at each side's first captured sequence number.",
    )
    c = cap.conn(ep(CLIENT4, 50312), ep(SERVER4, 443), 0x8A3B1C27, 0x3FD10E9A)
    c.truth.handshake_seen = False
    t = T0
    rec = tls_record("ms-s1", 1943)
    c.data(t, S, rec[:1448], win=501)
    c.data(t + us(25), S, rec[1448:], win=501)
    t += us(90)
    c.send(t, C, "A")
    t += ms(40)
    c.data(t, C, tls_record("ms-c1", 115))
    t += ms(30)
    c.data(t, S, tls_record("ms-s2", 295))
    t += us(60)
    c.send(t, C, "A")
    t += ms(500)
    c.data(t, C, tls_record("ms-c2", 26))
    t += us(30)
    c.send(t, C, "FA")
    t += ms(30)
    c.send(t, S, "FA")
    t += us(40)
    c.send(t, C, "A")
    return cap


def rule_midstream_high_ports() -> Capture:
    """Mid-stream between two high ports; the server (8080, the lower) sends first."""
    cap = rule(
        "rule_midstream_high_ports.pcap",
        "Connection picked up mid-stream between two high ports: server 8080, client "
        "51515. The first captured packet is the server's (the middle of a response), so "
        "the client must come from the port rule (the lower port is the server), not "
        "from who sent first.",
    )
    c = cap.conn(ep(CLIENT4, 51515), ep(SERVER4, 8080), 0x00C0FFEE, 0x7A0B0C0D)
    c.truth.handshake_seen = False
    t = T0
    c.data(t, S, b'"value": 42}, {"id": 7, "value": 43}]}\n')
    t += us(80)
    c.send(t, C, "A")
    t += ms(15)
    c.data(t, C, b"GET /api/items?page=2 HTTP/1.1\r\nHost: api.example.test:8080\r\n\r\n")
    t += us(700)
    c.data(t, S, http_resp(b'{"items": []}\n', "application/json"))
    t += us(60)
    c.send(t, C, "A")
    t += ms(5)
    c.close(t, C, us(700))
    return cap


def rule_tfo() -> list[Capture]:
    """TCP Fast Open: data in the SYN; data in the SYN and in the SYN-ACK."""
    tfo = ("TFO", (0x5A17C3E1, 0x9D04B286))
    opts = [("MSS", 1460), ("SAckOK", b""), ("NOP", None), ("WScale", 7), tfo]
    out = []
    cap = rule(
        "rule_tfo_syn_data.pcap",
        "TCP Fast Open: the client's SYN (with a TFO cookie) carries the request; the "
        "SYN-ACK acknowledges it; the response follows normally.",
    )
    c = cap.conn(ep(CLIENT4, 50009), SERVER4, ISN_C, ISN_S)
    t = T0
    c.data(t, C, REQ, flags="S", win=64240, options=opts)
    t += us(500)
    c.send(t, S, "SA", win=65160, options=SYN_OPTS)
    t += us(60)
    c.send(t, C, "A")
    t += us(300)
    c.data(t, S, RESP)
    t += us(50)
    c.send(t, C, "A")
    t += ms(1)
    c.close(t, C, us(500))
    out.append(cap)

    cap = rule(
        "rule_tfo_synack_data.pcap",
        "TCP Fast Open with data both ways in the handshake: the SYN carries the "
        "request, the SYN-ACK acknowledges it and carries the whole response.",
    )
    c = cap.conn(ep(CLIENT4, 50010), SERVER4, ISN_C, ISN_S)
    t = T0
    c.data(t, C, REQ, flags="S", win=64240, options=opts)
    t += us(500)
    c.data(t, S, RESP, flags="SA", win=65160, options=SYN_OPTS)
    t += us(60)
    c.send(t, C, "A")
    t += ms(1)
    c.close(t, C, us(500))
    out.append(cap)
    return out


def rule_fin_data() -> Capture:
    """Data carried in FIN segments, both ways."""
    cap = rule(
        "rule_fin_data.pcap",
        "Data in FIN segments: the client sends its request with FIN set (half-close "
        "after the request) and the server's last response segment carries FIN.",
    )
    c = cap.conn(ep(CLIENT4, 50011), SERVER4, ISN_C, ISN_S)
    t = c.handshake(T0, us(500))
    t += us(40)
    c.data(t, C, b"GET /fin HTTP/1.0\r\nHost: example.test\r\n\r\n", flags="FPA")
    t += us(500)
    c.send(t, S, "A")
    t += us(800)
    resp = http_resp(text(900, "fin-resp"), "text/plain", close=True)
    c.data(t, S, resp[:600])
    t += us(20)
    c.data(t, S, resp[600:], flags="FPA")
    t += us(60)
    c.send(t, C, "A")
    return cap


def rule_keepalive() -> Capture:
    """Keep-alive probes between two request/response exchanges."""
    cap = rule(
        "rule_keepalive.pcap",
        "Keep-alive probes in an idle connection: the client sends seq = next-1 with one "
        "garbage byte 0x00, later with no byte; the server sends one with a 0x00 byte. "
        "Each is ACKed. None of them is data or a conflict; the second request and "
        "response follow.",
    )
    c = cap.conn(ep(CLIENT4, 50012), SERVER4, ISN_C, ISN_S)
    t = c.handshake(T0, us(500))
    t += us(40)
    c.data(t, C, http_get("/one", "example.test"))
    t += us(600)
    c.data(t, S, http_resp(b"one\n", "text/plain"))
    t += us(50)
    c.send(t, C, "A")
    t += ms(45_000)
    c.send(t, C, "A", b"\x00", seq=c.nxt[C] - 1, probe=True)
    t += us(500)
    c.send(t, S, "A")
    t += ms(45_000)
    c.send(t, C, "A", seq=c.nxt[C] - 1, probe=True)
    t += us(500)
    c.send(t, S, "A")
    t += ms(5_000)
    c.send(t, S, "A", b"\x00", seq=c.nxt[S] - 1, probe=True)
    t += us(500)
    c.send(t, C, "A")
    t += ms(3_000)
    c.data(t, C, http_get("/two", "example.test"))
    t += us(600)
    c.data(t, S, http_resp(b"two\n", "text/plain"))
    t += us(50)
    c.send(t, C, "A")
    t += ms(1)
    c.close(t, C, us(500))
    return cap


def rule_zero_window() -> Capture:
    """An upload stalls on a zero window; 1-byte probes; the byte is re-sent later."""
    cap = rule(
        "rule_zero_window.pcap",
        "Zero-window probes: the server's window closes during an upload; the client "
        "probes twice with the next byte alone (refused, ACK unchanged, window 0), the "
        "window opens, and the client sends a full segment starting with that same byte.",
    )
    c = cap.conn(ep(CLIENT4, 50013), SERVER4, ISN_C, ISN_S)
    opts = [("MSS", 1460), ("SAckOK", b"")]
    c.send(T0, C, "S", win=64240, options=opts)
    t = T0 + us(500)
    c.send(t, S, "SA", win=2920, options=opts)
    t += us(60)
    c.send(t, C, "A", win=64240)
    c.win = {C: 64240, S: 2920}
    req = post(text(5000, "zw-body"), "/upload")
    parts = chunks(req, 1460)
    t += us(40)
    c.data(t, C, parts[0])
    c.data(t + us(10), C, parts[1])
    t += us(600)
    c.send(t, S, "A", win=0)
    probe_seq = c.nxt[C]
    t += ms(200)
    c.send(t, C, "A", parts[2][:1], seq=probe_seq, probe=True)
    t += us(500)
    c.send(t, S, "A", win=0)
    t += ms(400)
    c.send(t, C, "A", parts[2][:1], seq=probe_seq, probe=True)
    t += us(500)
    c.send(t, S, "A", win=0)
    t += ms(100)
    c.send(t, S, "A", win=2920)  # window update
    t += us(500)
    c.data(t, C, parts[2])
    c.data(t + us(10), C, parts[3])
    for p in parts[4:]:
        t += ms(1)
        c.send(t, S, "A", win=2920)
        t += us(500)
        c.data(t, C, p)
    t += us(600)
    c.send(t, S, "A")
    t += ms(2)
    c.data(t, S, http_resp(b"stored\n", "text/plain", status="201 Created"))
    t += us(50)
    c.send(t, C, "A")
    t += ms(1)
    c.close(t, C, us(500))
    return cap


def rule_ack_only() -> Capture:
    """ACK-only and window-update packets between data segments."""
    cap = rule(
        "rule_ack_only.pcap",
        "ACK-only, duplicate-ACK and window-update packets (same ACK, new window) in both "
        "directions, between the segments of one request and of one response: they "
        "create no messages and do not split the messages they fall between.",
    )
    c = cap.conn(ep(CLIENT4, 50014), SERVER4, ISN_C, ISN_S)
    t = c.handshake(T0, us(500))
    req = post(text(900, "ack-req"))
    t += us(40)
    c.data(t, C, req[:500])
    t += us(500)
    c.send(t, S, "A")
    t += us(100)
    c.send(t, S, "A", win=1000)
    t += us(100)
    c.send(t, S, "A", win=1200)
    t += us(100)
    c.data(t, C, req[500:])
    t += us(500)
    c.send(t, S, "A")
    t += us(900)
    resp = http_resp(text(1500, "ack-resp"), "text/plain")
    c.data(t, S, resp[:800])
    t += us(50)
    c.send(t, C, "A")
    t += us(50)
    c.send(t, C, "A")
    t += us(50)
    c.send(t, C, "A", win=300)
    t += us(50)
    c.send(t, C, "A", win=600)
    t += us(200)
    c.data(t, S, resp[800:])
    t += us(50)
    c.send(t, C, "A")
    t += ms(1)
    c.close(t, C, us(500))
    return cap


def gap_request(c: Conn, t: int) -> tuple[int, int, int]:
    """POST in three segments, the middle one not captured; returns (t, len1, len2)."""
    req = post(text(1200, "gap-body"))
    p1, p2, p3 = req[:400], req[400:900], req[900:]
    c.data(t, C, p1)
    c.send(t + us(10), C, "PA", p2, captured=False)
    c.send(t + us(20), C, "PA", p3)
    c.truth.gap(C, len(p1), len(p2))
    c.truth.write(C, p3, t + us(20))
    return t + us(20), len(p1), len(p2)


def rule_gap_acked() -> Capture:
    """A segment missing from the capture that the receiver acknowledged."""
    cap = rule(
        "rule_gap_acked.pcap",
        "A hole the receiver ACKs past: the request's middle segment (500 bytes) is not "
        "in the capture, but the server ACKs the whole request and answers. The request "
        "is two messages around a gap.",
    )
    c = cap.conn(ep(CLIENT4, 50015), SERVER4, ISN_C, ISN_S)
    t = c.handshake(T0, us(500))
    t, _, _ = gap_request(c, t + us(40))
    t += us(500)
    c.send(t, S, "A")
    t += ms(1)
    c.data(t, S, http_resp(b"received\n", "text/plain"))
    t += us(50)
    c.send(t, C, "A")
    t += ms(1)
    c.close(t, C, us(500))
    return cap


def rule_gap_unacked_open() -> Capture:
    """A hole never acknowledged, the connection still open when the capture ends."""
    cap = rule(
        "rule_gap_unacked_open.pcap",
        "A hole that is never acknowledged: the request's middle segment is missing "
        "(lost before the server), the server only sends duplicate ACKs for the first "
        "segment, and the capture ends with the connection open. The hole is a gap at the "
        "end; the bytes after it are kept as their own message.",
    )
    c = cap.conn(ep(CLIENT4, 50016), SERVER4, ISN_C, ISN_S)
    t = c.handshake(T0, us(500))
    p1_end = c.nxt[C] + 400
    t, _, _ = gap_request(c, t + us(40))
    t += us(500)
    c.send(t - us(20), S, "A", ack=p1_end)
    c.send(t, S, "A", ack=p1_end)
    c.truth.closed_by = "end"
    c.truth.open_at_end = True
    return cap


def rule_snaplen() -> Capture:
    """Written with snap length 128: response payloads cut after 74 bytes."""
    cap = rule(
        "rule_snaplen.pcap",
        "Snap length 128: every frame is cut to 128 bytes, i.e. 74 payload bytes after "
        "54 bytes of headers. The request fits; the first two response "
        "segments (500 bytes) lose 426 bytes each, which are gaps (never zeros); the last "
        "(40 bytes) fits.",
        snaplen=128,
    )
    c = cap.conn(ep(CLIENT4, 50017), SERVER4, ISN_C, ISN_S)
    opts = [("MSS", 1460), ("SAckOK", b""), ("NOP", None), ("WScale", 7)]
    t = c.handshake(T0, us(500), syn_opts=opts)
    req = b"GET /big HTTP/1.1\r\nHost: example.test\r\nUser-Agent: snap/1.0\r\n\r\n"
    assert len(req) <= 74
    t += us(40)
    c.data(t, C, req)
    t += us(500)
    c.send(t, S, "A")
    t += ms(1)
    resp = sized_resp(1040, "snap")
    for k, (lo, hi) in enumerate(((0, 500), (500, 1000), (1000, 1040))):
        ts = t + us(20) * k
        c.send(ts, S, "PA", resp[lo:hi])
        kept = min(hi - lo, 74)
        c.truth.write(S, resp[lo : lo + kept], ts)
        if kept < hi - lo:
            c.truth.gap(S, lo + kept, hi - lo - kept)
    t += us(100)
    c.send(t, C, "A")
    t += ms(1)
    c.close(t, C, us(500))
    return cap


def rule_rst_midway() -> Capture:
    """The client resets the connection in the middle of a download."""
    cap = rule(
        "rule_rst_midway.pcap",
        "RST mid-conversation: after two segments of a large response the client sends "
        "RST+ACK. The flow has an error (reset by the client).",
    )
    c = cap.conn(ep(CLIENT4, 50018), SERVER4, ISN_C, ISN_S)
    t = c.handshake(T0, us(500))
    t += us(40)
    c.data(t, C, http_get("/large.bin", "example.test"))
    t += us(500)
    c.send(t, S, "A")
    t += us(300)
    resp = http_resp(blob("rst-body", 50000), "application/octet-stream")
    c.data(t, S, resp[:1460])
    c.data(t + us(15), S, resp[1460:2920])
    t += us(80)
    c.send(t, C, "A")
    t += ms(50)
    c.send(t, C, "RA")
    c.truth.rst_from = "client"
    c.truth.closed_by = "rst"
    return cap


def rule_open_at_end() -> Capture:
    """A connection still open when the capture ends."""
    cap = rule(
        "rule_open_at_end.pcap",
        "A connection still open at the end of the capture: handshake, request, "
        "response, ACK, then nothing.",
    )
    c = cap.conn(ep(CLIENT4, 50019), SERVER4, ISN_C, ISN_S)
    t = c.handshake(T0, us(500))
    t += us(40)
    c.data(t, C, REQ)
    t += us(600)
    c.data(t, S, RESP)
    t += us(50)
    c.send(t, C, "A")
    c.truth.closed_by = "end"
    c.truth.open_at_end = True
    return cap


def rule_alternating() -> Capture:
    """An SMTP dialogue: many messages alternating, some split over two segments."""
    cap = rule(
        "rule_alternating.pcap",
        "Several messages alternating directions (an SMTP session, the server speaking "
        "first). Pipelined MAIL FROM and RCPT TO travel in two client segments and the two "
        "replies in two server segments: each pair is one message.",
    )
    c = cap.conn(ep(CLIENT4, 50020), ep(SERVER4, 25), ISN_C, ISN_S)
    t = c.handshake(T0, us(500))
    steps: list[tuple[bool, list[bytes]]] = [
        (S, [b"220 mail.example.test ESMTP ready\r\n"]),
        (C, [b"EHLO client.example.test\r\n"]),
        (S, [b"250-mail.example.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n"]),
        (C, [b"MAIL FROM:<alice@example.test>\r\n", b"RCPT TO:<bob@example.test>\r\n"]),
        (S, [b"250 2.1.0 Ok\r\n", b"250 2.1.5 Ok\r\n"]),
        (C, [b"DATA\r\n"]),
        (S, [b"354 End data with <CR><LF>.<CR><LF>\r\n"]),
        (C, [b"Subject: hi\r\n\r\n" + text(600, "smtp") + b"\r\n", b".\r\n"]),
        (S, [b"250 2.0.0 Ok: queued as 4F2A1\r\n"]),
        (C, [b"QUIT\r\n"]),
        (S, [b"221 2.0.0 Bye\r\n"]),
    ]
    for frm, parts in steps:
        t += ms(2)
        for k, part in enumerate(parts):
            c.data(t + us(15) * k, frm, part)
        t += us(15) * len(parts) + us(300)
        c.send(t, not frm, "A")
    t += us(50)
    c.close(t, S, us(300))
    return cap


def rule_syn_only() -> Capture:
    """An unanswered SYN, retransmitted twice."""
    cap = rule(
        "rule_syn_only.pcap",
        "Only a SYN (sent three times, same ISN, at 0, 1 and 3 s), never answered: one "
        "flow without messages, open at the end.",
    )
    c = cap.conn(ep(CLIENT4, 50021), SERVER4, ISN_C, ISN_S)
    for delay in (0, 1000, 3000):
        c.send(T0 + ms(delay), C, "S", win=64240, options=SYN_OPTS, seq=ISN_C)
    c.truth.handshake_seen = False
    c.truth.closed_by = "end"
    c.truth.open_at_end = True
    return cap


def rules() -> list[Capture]:
    """One capture per reassembly rule."""
    return [
        rule_out_of_order(),
        rule_retransmission(),
        rule_conflict(),
        seq_conversation(
            "rule_seq_wrap.pcap",
            "Sequence wrap-around: ISN 2**32-10 in both directions, so both streams cross "
            "2**32 within their first segment. Same packets as rule_seq_1000.pcap apart "
            "from the sequence numbers.",
            SEQ_MOD - 10,
        ),
        seq_conversation(
            "rule_seq_1000.pcap",
            "The conversation of rule_seq_wrap.pcap with ISN 1000 in both directions: "
            "same messages, same times.",
            1000,
        ),
        rule_port_reuse(),
        rule_syn_retransmit(),
        rule_synack_first(),
        rule_midstream_server_first(),
        rule_midstream_high_ports(),
        *rule_tfo(),
        rule_fin_data(),
        rule_keepalive(),
        rule_zero_window(),
        rule_ack_only(),
        rule_gap_acked(),
        rule_gap_unacked_open(),
        rule_snaplen(),
        rule_rst_midway(),
        rule_open_at_end(),
        rule_alternating(),
        rule_syn_only(),
    ]


def all_captures() -> list[Capture]:
    """Every deterministic capture, in the order expected.json lists them."""
    return [demo(), *encapsulations(), *rules()]


# --------------------------------------------------------------------------------------
# The real loopback recording (optional, not deterministic)
# --------------------------------------------------------------------------------------


def record_loopback(out: Path) -> dict[str, Any]:
    """Record two real HTTP fetches on 127.0.0.1 with tcpdump; return their truth.

    ``python -m http.server`` serves two files from a temporary directory; a socket
    client fetches each over its own connection (HTTP/1.0, so the server closes). The
    ground truth is what the client socket sent and received; message times are not
    known at the socket level and are left out (null). tcpdump runs in immediate mode
    (packets still in a kernel buffer block are lost when it is stopped otherwise), and
    the recording is checked (both SYNs and both FINs present) and retried with a longer
    pause if it missed anything.
    """
    for settle in (1.0, 2.0, 4.0):
        data, truth = _record_once(settle)
        records, syns, fins = _scan_pcap(data)
        ports = {f["client"][1] for f in truth}
        if ports <= syns and ports <= fins:
            (out / LOOPBACK).write_bytes(data)
            return {
                "description": "A real recording: tcpdump on the loopback interface while a "
                "socket client fetched /index.html and /logo.png from python -m "
                "http.server on 127.0.0.1 (HTTP/1.0, one connection each, closed by the "
                "server). Ground truth is what the client socket sent and received; times "
                "and packet counts are not known (null). Not reproducible byte for byte; "
                "regenerate with --record-loopback.",
                "records": records,
                "non_tcp_records": 0,
                "flows": truth,
            }
    raise SystemExit("tcpdump missed packets of the loopback conversations")


def _record_once(settle: float) -> tuple[bytes, list[dict[str, Any]]]:
    """One recording attempt: the pcap bytes and the flows' ground truth."""
    tcpdump = shutil.which("tcpdump")
    if tcpdump is None:
        raise SystemExit("tcpdump not found")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as root:
        Path(root, "index.html").write_bytes(HTML)
        Path(root, "logo.png").write_bytes(PNG)
        # tcpdump may drop privileges (to user tcpdump) before it captures.
        Path(root).chmod(0o755)
        pcap = Path(root, "dump", LOOPBACK)
        pcap.parent.mkdir()
        pcap.parent.chmod(0o777)
        server = subprocess.Popen(
            [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
            cwd=root,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_port(port)  # before tcpdump runs, so this probe is not in the capture
            dump = subprocess.Popen(
                [
                    tcpdump,
                    *"-i lo --immediate-mode -U -n -s 0 -w".split(),
                    pcap,
                    f"tcp port {port}",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            try:
                _wait_listening(dump)
                time.sleep(settle)
                flows = []
                for path in ("/index.html", "/logo.png"):
                    flows.append(_fetch(port, path))
                    time.sleep(0.2)
                time.sleep(1.5)  # longer than libpcap's buffer timeout, to be safe
            finally:
                dump.send_signal(signal.SIGINT)
                dump.wait(10)
        finally:
            server.terminate()
            server.wait(10)
        return pcap.read_bytes(), flows


def _scan_pcap(data: bytes) -> tuple[int, set[int], set[int]]:
    """Records of a little-endian Ethernet/IPv4 pcap, the source ports of its SYNs
    (without ACK) and the source ports of its FINs."""
    records = 0
    syns: set[int] = set()
    fins: set[int] = set()
    off = 24
    while off + 16 <= len(data):
        caplen = struct.unpack_from("<I", data, off + 8)[0]
        frame = data[off + 16 : off + 16 + caplen]
        off += 16 + caplen
        records += 1
        ip = frame[14:]
        tcp = ip[(ip[0] & 0x0F) * 4 :]
        sport = struct.unpack_from("!H", tcp)[0]
        flags = tcp[13]
        if flags & 0x02 and not flags & 0x10:
            syns.add(sport)
        if flags & 0x01:
            fins.add(sport)
    return records, syns, fins


def _wait_listening(dump: subprocess.Popen[bytes]) -> None:
    """Wait for tcpdump's "listening on" line, then drain its stderr in the background."""
    assert dump.stderr is not None
    deadline = time.monotonic() + 10
    line = b""
    while time.monotonic() < deadline:
        line = dump.stderr.readline()
        if b"listening on" in line:
            threading.Thread(target=dump.stderr.read, daemon=True).start()
            return
    raise SystemExit(f"tcpdump did not start: {line!r}")


def _wait_port(port: int) -> None:
    """Wait until http.server accepts connections."""
    for _ in range(100):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as probe:
                probe.close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("http.server did not start")


def _fetch(port: int, path: str) -> dict[str, Any]:
    """Fetch ``path`` over a new connection; return that flow's ground truth."""
    request = f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    with socket.create_connection(("127.0.0.1", port)) as s:
        client = s.getsockname()
        s.sendall(request)
        received = bytearray()
        while chunk := s.recv(65536):
            received += chunk
    return {
        "client": [client[0], client[1]],
        "server": ["127.0.0.1", port],
        "handshake_seen": True,
        "messages": [
            [True, content_json(request), None],
            [False, content_json(bytes(received)), None],
        ],
        "bytes": {"client": len(request), "server": len(received)},
        "packets": None,
        "gaps": [],
        "conflicts": [],
        "error": False,
        "rst_from": None,
        "closed_by": "fin",
        "open_at_end": False,
        "first_frame": None,
        "last_frame": None,
    }


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------


def write_all(out: Path, record: bool = False) -> dict[str, Any]:
    """Write every capture and expected.json into ``out``; return the expected data."""
    out.mkdir(parents=True, exist_ok=True)
    expected: dict[str, Any] = {}
    for cap in all_captures():
        cap.finish()
        check_truth(cap)
        (out / cap.name).write_bytes(cap.file_bytes())
        expected[cap.name] = cap.expected()
    old = out / EXPECTED
    if record:
        expected[LOOPBACK] = record_loopback(out)
    elif (out / LOOPBACK).exists() and old.exists():
        kept = json.loads(old.read_text())["captures"].get(LOOPBACK)
        if kept is not None:
            expected[LOOPBACK] = kept
    doc = {
        "comment": (
            "Ground truth for the captures in this directory, written by make_captures.py "
            "from what it put on the wire. Per capture: flows in order of first packet. "
            "messages: [from_client, content, capture time]; content is text, or "
            '{"hex": ...} when not printable ASCII. bytes: reassembled (captured) payload '
            "bytes per direction, gaps excluded. gaps and conflicts: [from_client, stream "
            "offset, length]. null means not stated (not certain)."
        ),
        "captures": expected,
    }
    old.write_text(json.dumps(doc, indent=1) + "\n")
    return doc


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", type=Path, nargs="?", help="output directory (default: here)")
    parser.add_argument("--out", type=Path, help="output directory (same as OUTDIR)")
    parser.add_argument(
        "--record-loopback",
        action="store_true",
        help=f"also record {LOOPBACK} with tcpdump on lo (root; not deterministic)",
    )
    args = parser.parse_args(argv)
    out = args.outdir or args.out or HERE
    doc = write_all(out, args.record_loopback)
    print(f"wrote {len(doc['captures'])} captures and {EXPECTED} to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
