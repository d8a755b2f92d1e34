"""Frame bytes to :class:`~pcapflows.segment.Segment`: link layer, IP, TCP.

This is the only module that imports dpkt. The common path (Ethernet with any VLAN
tags, Linux cooked captures, loopback and raw IP, then IPv4/IPv6 and TCP) slices the
frame with :mod:`struct`: building dpkt objects costs about ten times more per packet,
which on a million-packet capture is the difference between seconds and tens of seconds.
dpkt handles what the fast path does not know (for now 802.11, with or without
radiotap), so new encapsulations can start there and move to the fast path when they
matter.

Link layers are a table (:data:`LINK_HANDLERS`) from link type to a function that
returns ``(kind, offset)``; adding a link type means adding a row.

Nothing here raises: every problem is counted in the :class:`~pcapflows.stats.ReadStats`
(``skip`` for packets that are fine but not TCP, ``anomaly`` for damage) and the packet
is dropped.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from typing import Any

import dpkt

from pcapflows.ipfrag import Defragmenter
from pcapflows.packet import Packet
from pcapflows.segment import Segment
from pcapflows.stats import ReadStats

# What a link-layer handler found: the network protocol and where it starts.
V4 = 4
V6 = 6
UNKNOWN = 0

_VLAN_TYPES = frozenset((0x8100, 0x88A8, 0x9100, 0x9200))
_ETH_V4 = 0x0800
_ETH_V6 = 0x86DD
#: BSD loopback address families meaning IPv6 (NetBSD/OpenBSD 24, FreeBSD 28, macOS 30,
#: and Linux's 10 as written by some tools).
_AF_INET6 = frozenset((10, 24, 28, 30))

_u16 = struct.Struct(">H")
_u32 = struct.Struct(">I")
_tcp_hdr = struct.Struct(">HHIIBBH")
_ntoa = socket.inet_ntoa


def _ntop6(b: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET6, b)


LinkResult = tuple[int, int, str]
LinkHandler = Callable[[bytes], LinkResult]


def _ethertype(buf: bytes, off: int) -> LinkResult:
    """Follow VLAN tags from the ethertype at ``off``; payload starts after the type."""
    n = len(buf)
    while True:
        if off + 2 > n:
            return UNKNOWN, off, "truncated link header"
        (et,) = _u16.unpack_from(buf, off)
        if et in _VLAN_TYPES:
            off += 4
            continue
        if et == _ETH_V4:
            return V4, off + 2, ""
        if et == _ETH_V6:
            return V6, off + 2, ""
        if et == 0x8864:
            # PPPoE session: 6-byte header whose length field (not the IP header, which
            # may lie) bounds the payload; then a PPP protocol number.
            if off + 10 > n:
                return UNKNOWN, off, "truncated link header"
            (plen,) = _u16.unpack_from(buf, off + 6)
            end = off + 8 + plen
            kind, poff, why = _ppp_proto(buf, off + 8)
            return kind, poff, why or f"end={end}"
        if et in (0x8847, 0x8848):
            # MPLS label stack: 4 bytes per label until the bottom-of-stack bit; the
            # payload's version nibble says IPv4 or IPv6 (no pseudowire control word).
            off += 2
            while True:
                if off + 4 > n:
                    return UNKNOWN, off, "truncated link header"
                bottom = buf[off + 2] & 1
                off += 4
                if bottom:
                    break
            if off < n and buf[off] >> 4 == 4:
                return V4, off, ""
            if off < n and buf[off] >> 4 == 6:
                return V6, off, ""
            return UNKNOWN, off, "skip:mpls payload not ip"
        if et < 0x0600:
            return UNKNOWN, off, "skip:802.3 llc frame"
        return UNKNOWN, off, f"skip:ethertype 0x{et:04x}"


def _ppp_proto(buf: bytes, off: int) -> LinkResult:
    """A PPP protocol field (1 byte when compressed, i.e. odd) and what follows it."""
    if off >= len(buf):
        return UNKNOWN, off, "truncated link header"
    if buf[off] & 1:
        proto, off = buf[off], off + 1
    elif off + 2 <= len(buf):
        (proto,) = _u16.unpack_from(buf, off)
        off += 2
    else:
        return UNKNOWN, off, "truncated link header"
    if proto == 0x21:
        return V4, off, ""
    if proto == 0x57:
        return V6, off, ""
    return UNKNOWN, off, f"skip:ppp protocol 0x{proto:04x}"


def _ppp(buf: bytes) -> LinkResult:
    # Address and control bytes (ff 03) may be omitted (RFC 1661 compression).
    return _ppp_proto(buf, 2 if buf[:2] == b"\xff\x03" else 0)


def _chdlc(buf: bytes) -> LinkResult:
    # Cisco HDLC: address, control, then an ethertype.
    return _ethertype(buf, 2)


def _nflog(buf: bytes) -> LinkResult:
    """Linux NFLOG: a 4-byte header, then TLVs; type 9 (NFULA_PAYLOAD) is the packet."""
    if len(buf) < 4:
        return UNKNOWN, 0, "truncated link header"
    family = buf[0]
    off = 4
    while off + 4 <= len(buf):
        # TLV lengths and types are in host byte order (little-endian in practice).
        length, tlv_type = struct.unpack_from("<HH", buf, off)
        if length < 4:
            return UNKNOWN, off, "bad nflog tlv length"
        if tlv_type & 0x7FFF == 9:
            end = off + length
            if family == 2:
                return V4, off + 4, f"end={end}"
            if family == 10:
                return V6, off + 4, f"end={end}"
            return UNKNOWN, off, f"skip:nflog family {family}"
        off += (length + 3) & ~3
    return UNKNOWN, off, "skip:nflog without payload"


def _ethernet(buf: bytes) -> LinkResult:
    return _ethertype(buf, 12)


def _sll(buf: bytes) -> LinkResult:
    return _ethertype(buf, 14)


def _sll2(buf: bytes) -> LinkResult:
    if len(buf) < 20:
        return UNKNOWN, 0, "truncated link header"
    kind, off, why = _ethertype(buf, 0)
    if kind == UNKNOWN:
        return kind, off, why
    # The SLL2 protocol field is at offset 0 but the header is 20 bytes long.
    return kind, off + 18, ""


def _af(af: int) -> LinkResult:
    if af == 2:
        return V4, 4, ""
    if af in _AF_INET6:
        return V6, 4, ""
    return UNKNOWN, 4, f"skip:loopback address family {af}"


def _null(buf: bytes) -> LinkResult:
    if len(buf) < 4:
        return UNKNOWN, 0, "truncated link header"
    # Written in the capturing host's byte order: a big value means the other order.
    (af,) = struct.unpack_from("<I", buf)
    if af > 0xFFFF:
        (af,) = _u32.unpack_from(buf)
    return _af(af)


def _loop(buf: bytes) -> LinkResult:
    if len(buf) < 4:
        return UNKNOWN, 0, "truncated link header"
    return _af(_u32.unpack_from(buf)[0])


def _raw(buf: bytes) -> LinkResult:
    if not buf:
        return UNKNOWN, 0, "empty frame"
    v = buf[0] >> 4
    if v == 4:
        return V4, 0, ""
    if v == 6:
        return V6, 0, ""
    return UNKNOWN, 0, f"raw ip version {v}"


def _raw4(buf: bytes) -> LinkResult:
    return V4, 0, ""


def _raw6(buf: bytes) -> LinkResult:
    return V6, 0, ""


#: Link type -> handler. Names from the tcpdump.org link-type list.
LINK_HANDLERS: dict[int, LinkHandler] = {
    0: _null,  # DLT_NULL (BSD loopback, host byte order)
    1: _ethernet,  # EN10MB
    12: _raw,  # DLT_RAW on most platforms
    14: _raw,  # DLT_RAW on OpenBSD
    9: _ppp,  # PPP
    50: _ppp,  # PPP in HDLC-like framing
    101: _raw,  # LINKTYPE_RAW
    104: _chdlc,  # Cisco HDLC
    108: _loop,  # OpenBSD loopback (network byte order)
    113: _sll,  # Linux cooked v1
    228: _raw4,  # IPV4
    239: _nflog,  # Linux NFLOG
    229: _raw6,  # IPV6
    276: _sll2,  # Linux cooked v2
}


#: Link types handled by dpkt on the slow path: 802.11 headers vary in length (radiotap
#: fields, QoS, four addresses) and dpkt already knows them; wireless captures are rare
#: enough that the slower parse does not matter.
_DPKT_LINKS: dict[int, Any] = {
    105: dpkt.ieee80211.IEEE80211,
    127: dpkt.radiotap.Radiotap,
}


class Decoder:
    """Decodes captured frames into TCP segments, counting everything it drops."""

    def __init__(self, stats: ReadStats, *, defragment: bool = True) -> None:
        self.stats = stats
        self.defragment = defragment
        self.defrag = Defragmenter()

    def decode(self, pkt: Packet) -> Segment | None:
        """The TCP segment in ``pkt``, or None (with the reason counted)."""
        try:
            return self._decode(pkt)
        except Exception as exc:
            self.stats.anomaly("undecodable packet", f"frame {pkt.index}: {exc!r}")
            return None

    def finish(self) -> None:
        """End of input: report fragments that never completed."""
        self.defrag.finish()
        self._report_fragments()

    def _report_fragments(self) -> None:
        for kind, detail in self.defrag.problems:
            self.stats.anomaly(kind, detail)
        self.defrag.problems.clear()

    def _decode(self, pkt: Packet) -> Segment | None:
        handler = LINK_HANDLERS.get(pkt.linktype)
        if handler is None:
            if pkt.linktype in _DPKT_LINKS:
                return self._via_dpkt(pkt.data, pkt)
            self.stats.skip(f"linktype {pkt.linktype} unsupported")
            return None
        buf = pkt.data
        kind, off, why = handler(buf)
        truncated = pkt.orig_len > len(buf)
        if why.startswith("end="):
            # The link layer says where the packet ends (before any padding).
            end = int(why[4:])
            if end < len(buf):
                buf = buf[:end]
        if kind == V4:
            return self._ipv4(buf, off, pkt, truncated)
        if kind == V6:
            return self._ipv6(buf, off, pkt, truncated)
        if why.startswith("skip:"):
            self.stats.skip(why[5:])
        else:
            self.stats.anomaly(why or "undecodable link layer", f"frame {pkt.index}")
        return None

    def _via_dpkt(self, buf: bytes, pkt: Packet) -> Segment | None:
        """Slow path: dpkt peels the 802.11 headers, then the fast path takes over."""
        try:
            layer = _DPKT_LINKS[pkt.linktype](buf)
            if isinstance(layer, dpkt.radiotap.Radiotap):
                layer = layer.data
        except (dpkt.UnpackError, ValueError, struct.error, IndexError) as exc:
            self.stats.anomaly("undecodable link layer", f"frame {pkt.index}: {exc}")
            return None
        if not isinstance(layer, dpkt.ieee80211.IEEE80211) or layer.type != 2:
            self.stats.skip("802.11 frame without data")
            return None
        if layer.wep:
            self.stats.skip("802.11 encrypted data")
            return None
        payload = layer.data
        if not isinstance(payload, bytes) or payload[:3] != b"\xaa\xaa\x03":
            self.stats.skip("802.11 data without llc/snap")
            return None
        kind, off, why = _ethertype(payload, 6)
        truncated = pkt.orig_len > len(buf)
        if kind == V4:
            return self._ipv4(payload, off, pkt, truncated)
        if kind == V6:
            return self._ipv6(payload, off, pkt, truncated)
        self.stats.skip(why[5:] if why.startswith("skip:") else "802.11 payload not ip")
        return None

    def _clip(
        self, end: int, n: int, truncated: bool, pkt: Packet, version: str
    ) -> tuple[int, int]:
        """Bound an IP payload by the frame; return its end and the bytes missing.

        Only bytes cut off by the snap length are known to have existed. A header that
        claims more than a complete frame holds is damage: it is counted, and what is
        really missing shows up as an ordinary hole in the sequence space.
        """
        if end <= n:
            return end, 0
        if truncated:
            return n, end - n
        self.stats.anomaly(
            f"{version} length exceeds frame",
            f"frame {pkt.index}: header says {end} bytes, the frame has {n}",
        )
        return n, 0

    # -- IPv4 --------------------------------------------------------------------------

    def _ipv4(
        self, buf: bytes, off: int, pkt: Packet, truncated: bool | None = None
    ) -> Segment | None:
        n = len(buf)
        if truncated is None:
            truncated = pkt.orig_len > n
        if off + 20 > n:
            self.stats.anomaly("truncated ipv4 header", f"frame {pkt.index}")
            return None
        vihl = buf[off]
        ihl = (vihl & 0x0F) * 4
        if vihl >> 4 != 4 or ihl < 20:
            self.stats.anomaly("bad ipv4 header", f"frame {pkt.index}: version/ihl 0x{vihl:02x}")
            return None
        if off + ihl > n:
            self.stats.anomaly("truncated ipv4 header", f"frame {pkt.index}")
            return None
        (total,) = _u16.unpack_from(buf, off + 2)
        wire_avail = n - off + (pkt.orig_len - len(pkt.data) if truncated else 0)
        if total == 0:
            # TCP segmentation offload captures carry 0 here: the frame is the datagram.
            total = wire_avail
        if total < ihl:
            self.stats.anomaly("bad ipv4 total length", f"frame {pkt.index}: {total} < {ihl}")
            return None
        end, missing = self._clip(off + total, n, truncated, pkt, "ipv4")
        (frag,) = _u16.unpack_from(buf, off + 6)
        proto = buf[off + 9]
        if proto != 6:
            self.stats.skip(f"not tcp: ip protocol {proto}")
            return None
        src = _ntoa(buf[off + 12 : off + 16])
        dst = _ntoa(buf[off + 16 : off + 20])
        payload = buf[off + ihl : end]
        if frag & 0x3FFF:
            if not self.defragment:
                self.stats.skip("ip fragment")
                return None
            if missing:
                self.stats.anomaly("truncated ip fragment", f"frame {pkt.index}")
                return None
            (ident,) = _u16.unpack_from(buf, off + 4)
            whole = self.defrag.add(
                (4, src, dst, proto, ident),
                (frag & 0x1FFF) * 8,
                bool(frag & 0x2000),
                payload,
                pkt.timestamp,
            )
            if self.defrag.problems:
                self._report_fragments()
            if whole is None:
                self.stats.skip("ip fragment (reassembly pending)")
                return None
            payload = whole
        return self._tcp(payload, missing, src, dst, pkt)

    # -- IPv6 --------------------------------------------------------------------------

    def _ipv6(
        self, buf: bytes, off: int, pkt: Packet, truncated: bool | None = None
    ) -> Segment | None:
        n = len(buf)
        if truncated is None:
            truncated = pkt.orig_len > n
        if off + 40 > n:
            self.stats.anomaly("truncated ipv6 header", f"frame {pkt.index}")
            return None
        if buf[off] >> 4 != 6:
            self.stats.anomaly("bad ipv6 header", f"frame {pkt.index}: version {buf[off] >> 4}")
            return None
        (plen,) = _u16.unpack_from(buf, off + 4)
        nh = buf[off + 6]
        src = _ntop6(buf[off + 8 : off + 24])
        dst = _ntop6(buf[off + 24 : off + 40])
        start = off + 40
        if plen == 0:
            # A jumbogram (hop-by-hop Jumbo Payload) or a big-TCP capture: the payload
            # runs to the end of the frame as it was on the wire.
            plen = n - start + (pkt.orig_len - len(pkt.data) if truncated else 0)
        end, missing = self._clip(start + plen, n, truncated, pkt, "ipv6")
        data = buf[start:end]
        pos = 0
        for _ in range(16):
            if nh == 6:
                return self._tcp(data[pos:], missing, src, dst, pkt)
            if nh in (0, 43, 60, 51):
                if pos + 2 > len(data):
                    self.stats.anomaly("truncated ipv6 extension header", f"frame {pkt.index}")
                    return None
                hlen = (data[pos + 1] + 2) * 4 if nh == 51 else (data[pos + 1] + 1) * 8
                nh = data[pos]
                pos += hlen
                if pos > len(data):
                    self.stats.anomaly("truncated ipv6 extension header", f"frame {pkt.index}")
                    return None
                continue
            if nh == 44:
                if pos + 8 > len(data):
                    self.stats.anomaly("truncated ipv6 fragment header", f"frame {pkt.index}")
                    return None
                nxt = data[pos]
                (fo,) = _u16.unpack_from(data, pos + 2)
                (ident,) = _u32.unpack_from(data, pos + 4)
                pos += 8
                if fo & 0xFFF9 == 0:
                    # An atomic fragment (offset 0, no more fragments): not fragmented.
                    nh = nxt
                    continue
                if not self.defragment:
                    self.stats.skip("ip fragment")
                    return None
                if missing:
                    self.stats.anomaly("truncated ip fragment", f"frame {pkt.index}")
                    return None
                whole = self.defrag.add(
                    (6, src, dst, nxt, ident), fo & 0xFFF8, bool(fo & 1), data[pos:], pkt.timestamp
                )
                if self.defrag.problems:
                    self._report_fragments()
                if whole is None:
                    self.stats.skip("ip fragment (reassembly pending)")
                    return None
                data, pos, nh = whole, 0, nxt
                continue
            if nh == 59:
                self.stats.skip("ipv6 no next header")
                return None
            self.stats.skip(f"not tcp: ip protocol {nh}")
            return None
        self.stats.anomaly("too many ipv6 extension headers", f"frame {pkt.index}")
        return None

    # -- TCP ---------------------------------------------------------------------------

    def _tcp(self, tcp: bytes, missing: int, src: str, dst: str, pkt: Packet) -> Segment | None:
        if len(tcp) < 20:
            self.stats.anomaly("truncated tcp header", f"frame {pkt.index}")
            return None
        sport, dport, seq, ack, offx, flags, win = _tcp_hdr.unpack_from(tcp)
        doff = (offx >> 4) * 4
        if doff < 20:
            self.stats.anomaly("bad tcp data offset", f"frame {pkt.index}: {doff}")
            return None
        if doff > len(tcp):
            kind = "truncated tcp header" if missing else "tcp data offset past end"
            self.stats.anomaly(kind, f"frame {pkt.index}: data offset {doff}, {len(tcp)} bytes")
            return None
        self.stats.tcp_segments += 1
        return Segment(
            pkt.timestamp,
            src,
            sport,
            dst,
            dport,
            seq,
            ack,
            flags,
            tcp[doff:],
            win,
            missing,
            pkt.index,
        )
