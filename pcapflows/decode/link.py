"""Link layers: from a captured frame to the IP packet in it.

Link layers are a table, :data:`LINK_HANDLERS`, from link type to a function that
finds the IP header; adding an encapsulation means adding a function and a row. A
handler returns ``(network protocol, buffer, offset, end)`` (a
:data:`~pcapflows.decode.signals.LinkResult`) and signals everything else by raising
:class:`~pcapflows.decode.signals.Skip`, :class:`~pcapflows.decode.signals.Damage` or,
for a frame that carries several packets, :class:`~pcapflows.decode.signals.Aggregate`.

The common link layers (Ethernet with any number of tags, Linux cooked v1/v2, BSD and
OpenBSD loopback, raw IP) are read with precompiled :mod:`struct` formats and slicing.
This is the only module that imports dpkt, and only for link layers that are rare and
whose headers are intricate (802.11 with or without radiotap), where reusing a tested
parser is worth the slower path. dpkt is imported there, when such a frame first
comes: importing it costs more start-up time (about 40 ms) than reading a small capture.
"""

from __future__ import annotations

import struct

from pcapflows.decode.signals import (
    IPV4,
    IPV6,
    Aggregate,
    Damage,
    LinkHandler,
    LinkResult,
    Skip,
    Subframe,
)

ETH_IPV4 = 0x0800
ETH_IPV6 = 0x86DD
#: 802.1Q, 802.1ad, and the pre-standard QinQ types: each is followed by a 2-byte tag
#: control field and the next type, so any stack of them is walked the same way.
VLAN_TYPES = frozenset((0x8100, 0x88A8, 0x9100, 0x9200))
#: Cisco VN-Tag (802.1Qbh precursor): a 4-byte tag, then the next type.
ETH_VNTAG = 0x8926
#: IEEE 802.1ah provider backbone bridging: a 4-byte I-TAG (priority, flags, I-SID),
#: then the customer's destination and source addresses, then the customer's type.
ETH_PBB = 0x88E7
#: Link-layer tags that sit between an ethertype and the next one: ethertype -> bytes
#: from this ethertype field to the next. Walked in any number and order, since
#: provider networks stack them (an 802.1ad tag, PBB, a customer 802.1Q tag, ...).
LINK_TAGS: dict[int, int] = {
    **dict.fromkeys(VLAN_TYPES, 4),
    ETH_VNTAG: 6,
    ETH_PBB: 2 + 4 + 12,
}
#: Cisco FabricPath: a frame whose type is this carries a 16-byte outer header (outer
#: addresses, this type, forwarding tag and TTL) before the whole original frame.
ETH_FABRICPATH = 0x8903
ETH_PPPOE_SESSION = 0x8864
ETH_MPLS = frozenset((0x8847, 0x8848))

#: BSD loopback address families. AF_INET is 2 everywhere; AF_INET6 is 24 on
#: NetBSD/OpenBSD, 28 on FreeBSD/DragonFly, 30 on macOS, and 10 on Linux (some tools
#: write Linux's value). A capture may come from any of them.
AF_INET = 2
AF_INET6 = frozenset((10, 24, 28, 30))

_u16 = struct.Struct(">H")
_u32 = struct.Struct(">I")
_le32 = struct.Struct("<I")
_le16x2 = struct.Struct("<HH")


def _by_ethertype(et: int, buf: bytes, off: int) -> LinkResult:
    """What an ethertype ``et`` means for the payload at ``off`` (no VLAN tags here)."""
    if et == ETH_IPV4:
        return IPV4, buf, off, len(buf)
    if et == ETH_IPV6:
        return IPV6, buf, off, len(buf)
    if et == ETH_PPPOE_SESSION:
        return _pppoe(buf, off)
    if et in ETH_MPLS:
        return _mpls(buf, off)
    if et < 0x0600:
        # An 802.3 length rather than a type: LLC frames (spanning tree, NetBIOS, ...).
        raise Skip("802.3 llc frame")
    raise Skip(f"ethertype 0x{et:04x}")


def _ethertype(buf: bytes, off: int) -> LinkResult:
    """Read the ethertype at ``off``, walking any stack of link-layer tags first."""
    n = len(buf)
    while True:
        if off + 2 > n:
            raise Damage("truncated link header", f"{n} bytes")
        et = buf[off] << 8 | buf[off + 1]
        if et == ETH_IPV4:  # the common case, before any lookup
            return IPV4, buf, off + 2, n
        skip = LINK_TAGS.get(et)
        if skip is None:
            return _by_ethertype(et, buf, off + 2)
        off += skip


def _ethernet(buf: bytes) -> LinkResult:
    """Ethernet II. A Cisco FabricPath frame is recognized by its type, as Zeek does,
    and the original frame inside it is read instead (its header is just a layer)."""
    if len(buf) >= 14 and buf[12] == 0x89 and buf[13] == 0x03:
        return _ethertype(buf, 28)
    return _ethertype(buf, 12)


def _sll(buf: bytes) -> LinkResult:
    """Linux cooked v1: 16-byte header with the protocol in its last two bytes.

    libpcap puts a VLAN tag the kernel had stripped back after the header, with
    protocol 0x8100, so tags are walked exactly as in Ethernet.
    """
    if len(buf) < 16:
        raise Damage("truncated link header", f"{len(buf)} bytes")
    return _ethertype(buf, 14)


def _sll2(buf: bytes) -> LinkResult:
    """Linux cooked v2: protocol at offset 0, then 18 more bytes of header.

    A tag protocol here means the rest of the tag and the inner type follow the
    20-byte header: for a VLAN, the tag control field, so the walk resumes at offset
    22 (as if the protocol field sat at 18, just before the header's end).
    """
    if len(buf) < 20:
        raise Damage("truncated link header", f"{len(buf)} bytes")
    et = buf[0] << 8 | buf[1]
    skip = LINK_TAGS.get(et)
    if skip is not None:
        return _ethertype(buf, 18 + skip)
    return _by_ethertype(et, buf, 20)


def _pppoe(buf: bytes, off: int) -> LinkResult:
    """PPPoE session: its own length field (not the IP header, which may lie) bounds
    the payload, and it excludes the Ethernet padding of short frames."""
    if off + 6 > len(buf):
        raise Damage("truncated link header", "pppoe")
    (plen,) = _u16.unpack_from(buf, off + 4)
    proto, buf, ip_off, end = _ppp_proto(buf, off + 6)
    return proto, buf, ip_off, min(end, off + 6 + plen)


def _mpls(buf: bytes, off: int) -> LinkResult:
    """MPLS: 4 bytes per label until the bottom-of-stack bit; the payload's version
    nibble then says IPv4 or IPv6 (no pseudowire control word is assumed)."""
    n = len(buf)
    while True:
        if off + 4 > n:
            raise Damage("truncated link header", "mpls")
        bottom = buf[off + 2] & 1
        off += 4
        if bottom:
            break
    return _raw_at(buf, off, "mpls payload not ip")


#: MPLS unicast and multicast over PPP (RFC 3032 section 4.3).
PPP_MPLS = frozenset((0x0281, 0x0283))


def _ppp_proto(buf: bytes, off: int) -> LinkResult:
    """A PPP protocol number (1 byte when compressed, which makes it odd) at ``off``."""
    n = len(buf)
    if off < n and buf[off] & 1:
        proto, off = buf[off], off + 1
    elif off + 2 <= n:
        proto, off = buf[off] << 8 | buf[off + 1], off + 2
    else:
        raise Damage("truncated link header", "ppp")
    if proto == 0x21:
        return IPV4, buf, off, n
    if proto == 0x57:
        return IPV6, buf, off, n
    if proto in PPP_MPLS:
        return _mpls(buf, off)
    raise Skip(f"ppp protocol 0x{proto:04x}")


def _ppp(buf: bytes) -> LinkResult:
    # Address and control bytes (ff 03) may be omitted (RFC 1661 compression).
    return _ppp_proto(buf, 2 if buf[:2] == b"\xff\x03" else 0)


def _chdlc(buf: bytes) -> LinkResult:
    # Cisco HDLC: address, control, then an ethertype.
    return _ethertype(buf, 2)


def _nflog(buf: bytes) -> LinkResult:
    """Linux NFLOG: a 4-byte header, then TLVs; type 9 (NFULA_PAYLOAD) is the packet."""
    n = len(buf)
    if n < 4:
        raise Damage("truncated link header", f"{n} bytes")
    family = buf[0]
    off = 4
    while off + 4 <= n:
        # TLV lengths and types are in the host byte order (little-endian in practice).
        length, tlv_type = _le16x2.unpack_from(buf, off)
        if length < 4:
            raise Damage("bad nflog tlv length", f"{length}")
        if tlv_type & 0x7FFF == 9:
            end = min(off + length, n)
            if family == AF_INET:
                return IPV4, buf, off + 4, end
            if family == 10:
                return IPV6, buf, off + 4, end
            raise Skip(f"nflog family {family}")
        off += (length + 3) & ~3
    raise Skip("nflog without payload")


def _ipoib(buf: bytes) -> LinkResult:
    """IP over InfiniBand (RFC 4391) as libpcap records it: a 40-byte pseudo-header of
    hardware addresses, then the 4-byte encapsulation header (an ethertype and two
    reserved bytes)."""
    if len(buf) < 44:
        raise Damage("truncated link header", f"{len(buf)} bytes")
    return _by_ethertype(buf[40] << 8 | buf[41], buf, 44)


def _loopback(buf: bytes, af: int) -> LinkResult:
    if af == AF_INET:
        return IPV4, buf, 4, len(buf)
    if af in AF_INET6:
        return IPV6, buf, 4, len(buf)
    raise Skip(f"loopback address family {af}")


def _null(buf: bytes) -> LinkResult:
    """BSD loopback: a 4-byte address family in the capturing host's byte order.

    The file does not say which order that was, but every family is small, so a value
    above 0xFFFF read one way means it was written the other way.
    """
    return _loopback(buf, _family(buf, _le32, _u32))


def _loop(buf: bytes) -> LinkResult:
    """OpenBSD loopback: like NULL but specified in network byte order; a
    little-endian value is still accepted, as writers have been known to get it wrong."""
    return _loopback(buf, _family(buf, _u32, _le32))


def _family(buf: bytes, usual: struct.Struct, other: struct.Struct) -> int:
    """The 4-byte address family of a loopback header, read in the ``usual`` byte
    order unless the value only makes sense in the ``other`` (every family is small)."""
    if len(buf) < 4:
        raise Damage("truncated link header", f"{len(buf)} bytes")
    (af,) = usual.unpack_from(buf)
    if af > 0xFFFF:
        (af,) = other.unpack_from(buf)
    return int(af)


def _raw_at(buf: bytes, off: int, what: str) -> LinkResult:
    """IP with no link header at ``off``: the version nibble says which."""
    if off >= len(buf):
        raise Damage("truncated link header", f"no {what} byte")
    version = buf[off] >> 4
    if version == 4:
        return IPV4, buf, off, len(buf)
    if version == 6:
        return IPV6, buf, off, len(buf)
    raise Damage("bad ip version", f"{what}: version {version}")


def _raw(buf: bytes) -> LinkResult:
    return _raw_at(buf, 0, "raw ip")


def _raw4(buf: bytes) -> LinkResult:
    return IPV4, buf, 0, len(buf)


def _raw6(buf: bytes) -> LinkResult:
    return IPV6, buf, 0, len(buf)


#: The A-MSDU subframe header: destination and source addresses, then the length of
#: the MSDU that follows (big-endian, as an 802.3 length field).
_AMSDU_HEADER = 14


def _llc_snap(sub: bytes, short: int) -> Subframe:
    """One A-MSDU subframe ``sub`` (its header, then the captured part of the MSDU):
    an MSDU with an LLC/SNAP header, read like a non-aggregated frame's body."""
    try:
        if sub[_AMSDU_HEADER : _AMSDU_HEADER + 3] != b"\xaa\xaa\x03":
            if short and len(sub) < _AMSDU_HEADER + 3:
                raise Damage("truncated link header", "a-msdu subframe cut by snap length")
            raise Skip("802.11 data without llc/snap")
        return _ethertype(sub, _AMSDU_HEADER + 6), short
    except (Skip, Damage) as exc:
        return exc


def _amsdu(body: bytes) -> Aggregate:
    """The subframes of an A-MSDU (802.11-2016 9.3.2.2.2): each is a 14-byte header
    whose last two bytes give the MSDU's length, the MSDU, then padding to a multiple
    of 4 bytes, which the last subframe may leave out. The lengths are the only map of
    the frame: a subframe whose length runs past the bytes there is the last one that
    can be found (the decoder decides whether the snap length explains it or it is
    damage). Fewer bytes than a header at the end are the last padding, or a frame
    check sequence the link layer did not announce, or a header the snap length cut."""
    parts: list[Subframe] = []
    n = len(body)
    pos = 0
    while n - pos >= _AMSDU_HEADER:
        start = pos + _AMSDU_HEADER
        stop = start + (body[start - 2] << 8 | body[start - 1])
        if stop > n:
            parts.append(_llc_snap(body[pos:n], stop - n))
            return Aggregate(parts, 0)
        parts.append(_llc_snap(body[pos:stop], 0))
        pos = stop + (-(stop - pos) & 3)
    if not parts:
        parts.append(Damage("bad a-msdu subframe", f"no subframe in {n} bytes"))
    return Aggregate(parts, max(n - pos, 0))


def _ieee80211_body(layer: object) -> LinkResult:
    """The IP packet in a dpkt 802.11 frame: data frames with an LLC/SNAP header, or
    several of them in an A-MSDU (raised as :class:`Aggregate`)."""
    import dpkt

    if not isinstance(layer, dpkt.ieee80211.IEEE80211) or layer.type != 2:
        raise Skip("802.11 frame without data")
    if layer.wep:
        raise Skip("802.11 encrypted data")
    body = layer.data
    if not isinstance(body, bytes):
        raise Skip("802.11 data without llc/snap")
    qos = getattr(layer, "qos_data", None)
    if qos is not None and qos.control & 0x8000:
        # A-MSDU present. dpkt reads the little-endian QoS control field big-endian,
        # so bit 7 of its first byte is 0x8000.
        raise _amsdu(body)
    if body[:3] != b"\xaa\xaa\x03":
        raise Skip("802.11 data without llc/snap")
    return _ethertype(body, 6)


def _ieee80211(buf: bytes) -> LinkResult:
    """802.11 through dpkt: header length depends on frame type, QoS, address count."""
    import dpkt

    try:
        layer = dpkt.ieee80211.IEEE80211(buf)
    except (dpkt.UnpackError, ValueError, struct.error, IndexError) as exc:
        raise Damage("undecodable link layer", f"802.11: {exc}") from None
    return _ieee80211_body(layer)


def _radiotap(buf: bytes) -> LinkResult:
    """Radiotap then 802.11, through dpkt (radiotap fields vary in number and size)."""
    import dpkt

    try:
        layer = dpkt.radiotap.Radiotap(buf).data
    except (dpkt.UnpackError, ValueError, struct.error, IndexError) as exc:
        raise Damage("undecodable link layer", f"radiotap: {exc}") from None
    return _ieee80211_body(layer)


def _fddi(buf: bytes) -> LinkResult:
    """FDDI: frame control, destination and source (13 bytes), then 802.2 LLC. IP
    travels in SNAP (RFC 1390), whose last two bytes are an ethertype. Frames of the
    station management and MAC classes carry no LLC."""
    if len(buf) < 21:
        raise Damage("truncated link header", f"fddi: {len(buf)} bytes")
    if buf[0] & 0x70 != 0x50:  # LLC frames, asynchronous (0x5X) or synchronous (0xDX)
        raise Skip("fddi frame without llc")
    if buf[13:16] != b"\xaa\xaa\x03":
        raise Skip("fddi llc frame without snap")
    return _ethertype(buf, 19)


#: ARCNET protocol ids that carry IP: RFC 1051's IPv4, RFC 1201's IPv4, RFC 2497's IPv6.
_ARCNET_IP1051, _ARCNET_IP1201, _ARCNET_IPV6 = 0xF0, 0xD4, 0xC4
#: Ids whose header has no RFC 1201 fragmentation fields (split flag and sequence):
#: RFC 1051 IP and ARP, diagnostics, BACnet.
_ARCNET_UNSPLIT = frozenset((0xF0, 0xF1, 0x80, 0xCD))


def _arcnet_at(buf: bytes, off: int, exception: bool) -> LinkResult:
    """ARCNET from its protocol id at ``off``. RFC 1201 ids are followed by a split
    flag and a 2-byte sequence number; in a BSD capture (``exception``) a split flag of
    0xFF marks an exception frame, whose flag is followed by 2 bytes of padding, the
    protocol id again and the real split flag. Linux hands over reassembled packets,
    never exception frames."""
    n = len(buf)
    if off + 1 > n:
        raise Damage("truncated link header", f"arcnet: {n} bytes")
    proto = buf[off]
    off += 1
    if proto not in _ARCNET_UNSPLIT:
        if exception and off < n and buf[off] == 0xFF:
            off += 4
        off += 3
        if off > n:
            raise Damage("truncated link header", f"arcnet: {n} bytes")
    if proto in (_ARCNET_IP1051, _ARCNET_IP1201):
        return IPV4, buf, off, n
    if proto == _ARCNET_IPV6:
        return IPV6, buf, off, n
    raise Skip(f"arcnet protocol 0x{proto:02x}")


def _arcnet(buf: bytes) -> LinkResult:
    """ARCNET as BSD captures it (link type 7): source, destination, protocol id."""
    return _arcnet_at(buf, 2, True)


def _arcnet_linux(buf: bytes) -> LinkResult:
    """ARCNET as Linux captures it (link type 129): source, destination, the 2-byte
    offset field of the hardware packet, protocol id."""
    return _arcnet_at(buf, 4, False)


#: Link type (tcpdump.org numbering) -> handler.
LINK_HANDLERS: dict[int, LinkHandler] = {
    0: _null,  # NULL: BSD loopback, host byte order
    1: _ethernet,  # ETHERNET
    7: _arcnet,  # ARCNET (BSD)
    9: _ppp,  # PPP
    10: _fddi,  # FDDI
    12: _raw,  # DLT_RAW as most BSDs number it
    14: _raw,  # DLT_RAW as OpenBSD numbers it
    50: _ppp,  # PPP_HDLC
    101: _raw,  # RAW
    104: _chdlc,  # C_HDLC
    105: _ieee80211,  # IEEE802_11 (dpkt)
    108: _loop,  # LOOP: OpenBSD loopback, network byte order
    113: _sll,  # LINUX_SLL
    127: _radiotap,  # IEEE802_11_RADIOTAP (dpkt)
    129: _arcnet_linux,  # ARCNET_LINUX
    228: _raw4,  # IPV4
    229: _raw6,  # IPV6
    239: _nflog,  # NFLOG
    242: _ipoib,  # IPOIB
    276: _sll2,  # LINUX_SLL2
}
