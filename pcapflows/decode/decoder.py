"""Frame bytes to :class:`~pcapflows.decode.segment.Segment`: link layer, IP, TCP.

Every captured packet goes through :meth:`Decoder.decode_all`, so its cost is paid a
million times on a million-packet capture. The common path (Ethernet with any number
of VLAN tags, Linux cooked v1/v2, BSD/OpenBSD loopback and raw IP, then IPv4/IPv6 and
TCP) therefore reads the frame with precompiled :mod:`struct` formats and slicing:
about 2 µs a packet, where building dpkt objects costs about 20 µs. This is the only
module that imports dpkt, and only for link layers that are rare and whose headers are
intricate (802.11 with or without radiotap), where reusing a tested parser is worth
the slower path.

Link layers are a table, :data:`LINK_HANDLERS`, from link type to a function that
finds the IP header; adding an encapsulation means adding a function and a row. A
handler returns ``(network protocol, buffer, offset, end)`` and signals everything
else by raising :class:`Skip` (a fine packet we do not use, e.g. ARP) or
:class:`Damage` (a packet that is broken), or :class:`Aggregate` for a frame that
carries several packets.

Nothing escapes :meth:`Decoder.decode_all`: every packet (every subframe of an 802.11
A-MSDU, which carries several) ends up counted exactly once in the
:class:`~pcapflows.stats.ReadStats`, as a TCP segment, a skip with its reason, or an
anomaly with its frame number, so that a damaged capture still yields every flow that
can be recovered and the user can see what was not.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable

import dpkt

from pcapflows.decode.ipfrag import DEFAULT_MAX_PENDING, Defragmenter
from pcapflows.decode.segment import Segment, TunnelHop
from pcapflows.io.packet import Packet
from pcapflows.stats import ReadStats

#: Network protocols a link handler can find (the IP version numbers).
IPV4 = 4
IPV6 = 6

#: ``(network protocol, buffer, offset of the IP header, end of the packet)``. ``buffer``
#: is the frame itself except for handlers that must build a new one (dpkt); ``end`` is
#: where the packet ends when the link layer knows better than the frame length (PPPoE
#: and NFLOG carry their own lengths), else ``len(buffer)``.
LinkResult = tuple[int, bytes, int, int]
LinkHandler = Callable[[bytes], LinkResult]
#: The tunnels around a packet, outermost first.
Path = tuple[TunnelHop, ...]


class Skip(Exception):
    """Raised by a layer for a packet that is fine but carries no TCP for us.

    The message is the reason counted with :meth:`ReadStats.skip`, so it should be
    short and stable (it is a counter key): ``"ethertype 0x0806"``, ``"not tcp: udp"``.
    """


class Damage(Exception):
    """Raised by a layer for a broken packet: ``kind`` is the counter key, ``detail``
    the human-readable specifics (the decoder prefixes the frame number)."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(kind, detail)
        self.kind = kind
        self.detail = detail


# -- link layers -------------------------------------------------------------------------

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
#: IPv4 header without options: version/IHL, TOS, total length, id, flags/fragment
#: offset, TTL, protocol, checksum, source, destination.
_ipv4_hdr = struct.Struct(">BBHHHBBH4s4s")
#: TCP header without options: ports, seq, ack, data offset, flags, window.
_tcp_hdr = struct.Struct(">HHIIBBH")
_ntoa = socket.inet_ntoa
_ntop = socket.inet_ntop
_AF6 = socket.AF_INET6


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
    if len(buf) < 4:
        raise Damage("truncated link header", f"{len(buf)} bytes")
    (af,) = _le32.unpack_from(buf)
    if af > 0xFFFF:
        (af,) = _u32.unpack_from(buf)
    return _loopback(buf, af)


def _loop(buf: bytes) -> LinkResult:
    """OpenBSD loopback: like NULL but specified in network byte order; a
    little-endian value is still accepted, as writers have been known to get it wrong."""
    if len(buf) < 4:
        raise Damage("truncated link header", f"{len(buf)} bytes")
    (af,) = _u32.unpack_from(buf)
    if af > 0xFFFF:
        (af,) = _le32.unpack_from(buf)
    return _loopback(buf, af)


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


#: One subframe of an aggregate: where its packet is (a :data:`LinkResult` within the
#: subframe, whose ``end`` is the subframe's end as far as it was captured) and how many
#: bytes its length field claims beyond that; or the Skip or Damage the subframe met.
Subframe = tuple[LinkResult, int] | Skip | Damage


class Aggregate(Exception):
    """Raised by a link layer for a frame that carries several packets (an 802.11
    A-MSDU), since a handler returns one :data:`LinkResult`: ``parts`` are its
    subframes in order, ``tail`` the bytes after the last one that were too few for a
    subframe header. The decoder decodes every part as a packet of its own, with the
    tunnel ``path`` and the snap-length cut (``missing`` bytes) of the frame around it,
    which a tunnel on the way up fills in. Raised rather than returned so that the one
    packet path every ordinary frame takes is left as it was."""

    def __init__(self, parts: list[Subframe], tail: int) -> None:
        super().__init__("aggregate")
        self.parts = parts
        self.tail = tail
        self.path: Path = ()
        self.missing = 0


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
    try:
        layer = dpkt.ieee80211.IEEE80211(buf)
    except (dpkt.UnpackError, ValueError, struct.error, IndexError) as exc:
        raise Damage("undecodable link layer", f"802.11: {exc}") from None
    return _ieee80211_body(layer)


def _radiotap(buf: bytes) -> LinkResult:
    """Radiotap then 802.11, through dpkt (radiotap fields vary in number and size)."""
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

# -- tunnels -------------------------------------------------------------------------------
#
# A tunnel parser reads the tunnel header at ``off`` (the packet ends at ``end``) and
# returns what follows it: ``(inner kind, offset of the inner frame, tunnel id or None,
# hop name)``. The decoder then decodes the inner frame as it would a captured one, so
# tunnels nest without limit other than :data:`MAX_TUNNEL_DEPTH`.

#: What a tunnel header says follows it.
INNER_ETHERNET = 1
INNER_IP = 2  # IPv4 or IPv6, by the version nibble
INNER_PPP = 3
INNER_MPLS = 4
INNER_80211 = 5  # an 802.11 frame without FCS

TunnelResult = tuple[int, int, int | None, str]
TunnelParser = Callable[[bytes, int, int], TunnelResult]

#: Encapsulations inside encapsulations beyond this are damage (or an attack): real
#: deployments nest two or three (ERSPAN in GRE carrying VXLAN, say).
MAX_TUNNEL_DEPTH = 8


def _need(buf_end: int, pos: int, what: str) -> None:
    if pos > buf_end:
        raise Damage("truncated tunnel header", what)


#: GRE protocol of WCCP's redirection (Cisco's web cache protocol).
GRE_WCCP = 0x883E
#: GRE protocols of Aruba access points tunnelling 802.11 frames to their controller:
#: 0x8200 to 0x8370 in steps of 0x10, and 0x9000 (the values Wireshark and Zeek know).
GRE_ARUBA = frozenset((*range(0x8200, 0x8380, 0x10), 0x9000))


def _gre(buf: bytes, off: int, end: int) -> TunnelResult:
    """GRE (RFC 2784/2890, RFC 1701 routing, RFC 2637 enhanced GRE for PPTP), including
    ERSPAN types I, II and III, which are GRE protocol types 0x88BE and 0x22EB."""
    _need(end, off + 4, "gre")
    flags = buf[off] << 8 | buf[off + 1]
    proto = buf[off + 2] << 8 | buf[off + 3]
    version = flags & 7
    pos = off + 4
    key: int | None = None
    has_seq = bool(flags & 0x1000)
    if version == 0:
        if flags & 0xC000:  # checksum present, or routing present (then offset too)
            pos += 4
        if flags & 0x2000:
            _need(end, pos + 4, "gre key")
            (key,) = _u32.unpack_from(buf, pos)
            pos += 4
        if has_seq:
            pos += 4
        if flags & 0x4000:
            # RFC 1701 source routes: entries until one with a zero length.
            while True:
                _need(end, pos + 4, "gre routing")
                sre_len = buf[pos + 3]
                pos += 4 + sre_len
                if sre_len == 0:
                    break
    elif version == 1:
        # Enhanced GRE: the key field (payload length, call id) is always there.
        _need(end, pos + 4, "enhanced gre")
        key = buf[pos + 2] << 8 | buf[pos + 3]
        pos += 4
        if has_seq:
            pos += 4
        if flags & 0x0080:  # acknowledgment number present
            pos += 4
    else:
        raise Skip(f"gre version {version}")
    _need(end, pos, "gre")
    if proto == 0x88BE:
        # ERSPAN type II carries a sequence number and an 8-byte header; type I has
        # neither and the mirrored frame follows GRE directly.
        if not has_seq:
            return INNER_ETHERNET, pos, None, "erspan1"
        _need(end, pos + 8, "erspan type ii")
        session = (buf[pos + 2] << 8 | buf[pos + 3]) & 0x3FF
        return INNER_ETHERNET, pos + 8, session, "erspan2"
    if proto == 0x22EB:
        # ERSPAN type III: 12-byte header, then an 8-byte platform-specific subheader
        # when the O flag (lowest bit of the last byte) is set.
        _need(end, pos + 12, "erspan type iii")
        session = (buf[pos + 2] << 8 | buf[pos + 3]) & 0x3FF
        pos += 20 if buf[pos + 11] & 1 else 12
        _need(end, pos, "erspan type iii subheader")
        return INNER_ETHERNET, pos, session, "erspan3"
    # Enhanced GRE is PPTP's: its key is the receiver's call id, one per direction.
    name = "gre" if version == 0 else "pptp"
    if proto == 0x6558:  # transparent Ethernet bridging
        return INNER_ETHERNET, pos, key, name
    if proto in (ETH_IPV4, ETH_IPV6):
        return INNER_IP, pos, key, name
    if proto == 0x880B:
        return INNER_PPP, pos, key, name
    if proto in ETH_MPLS:
        return INNER_MPLS, pos, key, name
    if proto == GRE_WCCP:
        # WCCP version 2 puts a 4-byte redirect header (service id, ...) before the
        # redirected packet, version 1 none: like Wireshark, a first byte that does not
        # start an IPv4 header is taken for the redirect header.
        _need(end, pos + 1, "wccp")
        if buf[pos] >> 4 != 4:
            pos += 4
        return INNER_IP, pos, key, "wccp"
    if proto in GRE_ARUBA:
        return INNER_80211, pos, key, "aruba"
    raise Skip(f"gre protocol 0x{proto:04x}")


def _ip_in_ip(buf: bytes, off: int, end: int) -> TunnelResult:
    """IPv4 or IPv6 directly inside IP (protocols 4 and 41): no header of its own.
    The hop is named after both versions by the decoder ("4in4", "6in4", "4in6")."""
    return INNER_IP, off, None, "ip"


def _vxlan(buf: bytes, off: int, end: int) -> TunnelResult:
    """VXLAN (RFC 7348): 8 bytes with a 24-bit VNI, then an Ethernet frame."""
    _need(end, off + 8, "vxlan")
    vni = buf[off + 4] << 16 | buf[off + 5] << 8 | buf[off + 6]
    return INNER_ETHERNET, off + 8, vni, "vxlan"


def _vxlan_gpe(buf: bytes, off: int, end: int) -> TunnelResult:
    """VXLAN-GPE: VXLAN with a next-protocol byte (1 IPv4, 2 IPv6, 3 Ethernet)."""
    _need(end, off + 8, "vxlan-gpe")
    vni = buf[off + 4] << 16 | buf[off + 5] << 8 | buf[off + 6]
    nxt = buf[off + 3]
    if nxt in (1, 2):
        return INNER_IP, off + 8, vni, "vxlan-gpe"
    if nxt == 3:
        return INNER_ETHERNET, off + 8, vni, "vxlan-gpe"
    raise Skip(f"vxlan-gpe next protocol {nxt}")


def _geneve(buf: bytes, off: int, end: int) -> TunnelResult:
    """GENEVE (RFC 8926): 8 bytes plus options (length in 4-byte units), then the
    protocol its ethertype field names."""
    _need(end, off + 8, "geneve")
    if buf[off] >> 6 != 0:
        raise Skip(f"geneve version {buf[off] >> 6}")
    pos = off + 8 + ((buf[off] & 0x3F) << 2)
    _need(end, pos, "geneve options")
    proto = buf[off + 2] << 8 | buf[off + 3]
    vni = buf[off + 4] << 16 | buf[off + 5] << 8 | buf[off + 6]
    if proto == 0x6558:
        return INNER_ETHERNET, pos, vni, "geneve"
    if proto in (ETH_IPV4, ETH_IPV6):
        return INNER_IP, pos, vni, "geneve"
    raise Skip(f"geneve protocol 0x{proto:04x}")


def _gtpu(buf: bytes, off: int, end: int) -> TunnelResult:
    """GTP-U version 1 (3GPP TS 29.281): user packets are message type 255 (G-PDU);
    optional fields follow when any of E, S, PN is set, then extension headers chained
    by their last byte, each sized in 4-byte units by its first."""
    _need(end, off + 8, "gtp-u")
    flags = buf[off]
    if flags >> 5 != 1:
        raise Skip(f"gtp version {flags >> 5}")
    if buf[off + 1] != 0xFF:
        raise Skip(f"gtp-u message type {buf[off + 1]}")
    (teid,) = _u32.unpack_from(buf, off + 4)
    pos = off + 8
    if flags & 0x07:
        _need(end, pos + 4, "gtp-u optional fields")
        nxt = buf[pos + 3] if flags & 0x04 else 0
        pos += 4
        while nxt:
            _need(end, pos + 1, "gtp-u extension header")
            size = buf[pos] << 2
            if size == 0:
                raise Damage("bad tunnel header", "gtp-u extension header of length 0")
            _need(end, pos + size, "gtp-u extension header")
            nxt = buf[pos + size - 1]
            pos += size
    return INNER_IP, pos, teid, "gtpu"


def _teredo(buf: bytes, off: int, end: int) -> TunnelResult:
    """Teredo (RFC 4380): IPv6 in UDP, optionally after an authentication indicator
    (starting 0x0001) and an origin indication (starting 0x0000, 8 bytes)."""
    pos = off
    if pos + 4 <= end and buf[pos] == 0 and buf[pos + 1] == 1:
        pos += 4 + buf[pos + 2] + buf[pos + 3] + 9  # ids, nonce, confirmation byte
    if pos + 2 <= end and buf[pos] == 0 and buf[pos + 1] == 0:
        pos += 8
    if pos >= end or buf[pos] >> 4 != 6:
        raise Skip("teredo without ipv6")
    return INNER_IP, pos, None, "teredo"


def _gre_udp(buf: bytes, off: int, end: int) -> TunnelResult:
    """GRE in UDP (RFC 8086): a GRE header as in IP, with a source port for entropy."""
    kind, pos, key, name = _gre(buf, off, end)
    return kind, pos, key, "gre-udp" if name == "gre" else name


def _ayiya(buf: bytes, off: int, end: int) -> TunnelResult:
    """AYIYA ("anything in anything", SixXS): 8 bytes (identity and signature sizes,
    hash and authentication methods, opcode, next header, epoch time), then the
    identity (2^n bytes) and the signature (4n bytes). Only opcode 1 (forward) carries
    a packet, of the IP protocol the next-header byte names."""
    _need(end, off + 8, "ayiya")
    pos = off + 8 + (1 << (buf[off] >> 4)) + (buf[off + 1] >> 4) * 4
    _need(end, pos, "ayiya identity and signature")
    opcode = buf[off + 2] & 0x0F
    if opcode != 1:
        raise Skip(f"ayiya opcode {opcode}")
    nxt = buf[off + 3]
    if nxt not in (4, 41):
        raise Skip(f"ayiya next header {nxt}")
    return INNER_IP, pos, None, "ayiya"


#: The Teredo prefix (RFC 4380): 2001:0000::/32.
_TEREDO_PREFIX = b"\x20\x01\x00\x00"


def _teredo_inner(buf: bytes, off: int, end: int) -> int:
    """Where the IPv6 packet of a Teredo datagram ``buf[off:end]`` starts, past an
    authentication indicator and an origin indication, or -1 when the datagram is not
    one: this recognizes Teredo by content on any port (as Zeek does), so it is strict.
    The packet must be an IPv6 header whose payload length accounts for the datagram
    exactly, from or to a Teredo address (every Teredo packet has a Teredo client at
    one end). A DNS or QUIC datagram matching all of that by chance would need about
    ten specific bytes in the right places."""
    pos = off
    if pos + 4 <= end and buf[pos] == 0 and buf[pos + 1] == 1:
        pos += 13 + buf[pos + 2] + buf[pos + 3]  # ids, nonce, confirmation byte
    if pos + 8 <= end and buf[pos] == 0 and buf[pos + 1] == 0:
        pos += 8
    if pos + 40 > end or buf[pos] >> 4 != 6:
        return -1
    if pos + 40 + (buf[pos + 4] << 8 | buf[pos + 5]) != end:
        return -1
    if buf[pos + 8 : pos + 12] != _TEREDO_PREFIX and buf[pos + 24 : pos + 28] != _TEREDO_PREFIX:
        return -1
    return pos


def _teredo_by_content(buf: bytes, off: int, end: int) -> TunnelResult:
    """Teredo on a port other than 3544 (a relay or a client behind a NAT), when the
    datagram's content says so (see :func:`_teredo_inner`)."""
    return INNER_IP, _teredo_inner(buf, off, end), None, "teredo"


#: IP protocol number -> tunnel parser.
IP_TUNNELS: dict[int, TunnelParser] = {
    4: _ip_in_ip,  # IPv4 encapsulation (IP-in-IP, 4in6)
    41: _ip_in_ip,  # IPv6 encapsulation (6in4, 6in6)
    47: _gre,  # GRE, ERSPAN
}

#: UDP port -> tunnel parser. A datagram is a tunnel when its destination port is
#: listed, else when its source port is (replies to a tunnel endpoint).
UDP_TUNNELS: dict[int, TunnelParser] = {
    2152: _gtpu,  # GTP-U
    3544: _teredo,  # Teredo
    4754: _gre_udp,  # GRE in UDP
    4789: _vxlan,  # VXLAN (IANA)
    4790: _vxlan_gpe,  # VXLAN-GPE
    5072: _ayiya,  # AYIYA
    6081: _geneve,  # GENEVE
}

#: IP protocols worth decoding beyond the IP header (and worth reassembling fragments
#: of): TCP itself, and everything that may carry it.
_CARRIERS = frozenset((6, 17, *IP_TUNNELS))

#: Inner kinds other than IP -> the link handler that finds IP in them.
_INNER_LINKS: dict[int, LinkHandler] = {
    INNER_ETHERNET: _ethernet,
    INNER_PPP: lambda b: _ppp_proto(b, 0),
    INNER_MPLS: lambda b: _mpls(b, 0),
    INNER_80211: _ieee80211,
}


# -- IP and TCP ----------------------------------------------------------------------------

#: Names for the skip counter of the IP protocols most often found beside TCP.
_PROTOCOL_NAMES = {
    1: "icmp",
    2: "igmp",
    4: "ipip",
    17: "udp",
    41: "ipv6",
    47: "gre",
    50: "esp",
    51: "ah",
    58: "icmpv6",
    89: "ospf",
    103: "pim",
    112: "vrrp",
    132: "sctp",
    136: "udplite",
}
#: The skip reason for every protocol number, built once so the hot path formats nothing.
_NOT_TCP = [f"not tcp: {_PROTOCOL_NAMES.get(p, f'ip protocol {p}')}" for p in range(256)]

#: IPv6 extension headers that are walked over: hop-by-hop options, routing,
#: destination options (length in 8-byte units, not counting the first 8) and AH
#: (length in 4-byte units, not counting the first 2 units, RFC 4302).
_V6_HOP, _V6_ROUTING, _V6_FRAGMENT, _V6_ESP, _V6_AH, _V6_NONE, _V6_DSTOPTS = (
    0,
    43,
    44,
    50,
    51,
    59,
    60,
)
_V6_SKIPPABLE = frozenset((_V6_HOP, _V6_ROUTING, _V6_DSTOPTS, _V6_AH))
#: What may start the fragmentable part of an IPv6 packet and still lead to TCP; other
#: next-header values in a fragment header are skipped without holding the fragment.
_V6_FRAGMENT_MAY_BE_TCP = frozenset((*_CARRIERS, *_V6_SKIPPABLE))
#: More extension headers than any real packet has: the walk stops there (damage)
#: rather than follow a crafted chain through a jumbogram.
_V6_MAX_HEADERS = 16


#: IPv4 options whose length RFCs fix (MTU probe and reply, RFC 1063; Quick-Start,
#: RFC 4782; traceroute, RFC 1393; stream id, RFC 791; router alert, RFC 2113) and the
#: least length of the variable ones that have a fixed part (record route and the source
#: routes: a pointer; timestamp: a pointer and the overflow/flag byte; basic security,
#: RFC 1108: a classification byte). Wireshark warns about any other length (or calls
#: the packet malformed) and Suricata marks such a packet invalid.
_V4_OPTION_LENGTH = {11: 4, 12: 4, 25: 8, 82: 12, 136: 4, 148: 4}
_V4_OPTION_MIN_LENGTH = {7: 3, 68: 4, 130: 3, 131: 3, 137: 3}
#: The same for IPv6 hop-by-hop and destination options: router alert (RFC 2711) and
#: jumbo payload (RFC 2675).
_V6_OPTION_LENGTH = {5: 2, 0xC2: 4}


def _ipv4_options_problem(buf: bytes, pos: int, end: int) -> str:
    """What is wrong with the IPv4 options in ``buf[pos:end]``, or "" when nothing is.

    The header length already says where TCP starts, so a broken option does not make
    the payload's place uncertain: it makes the header untrustworthy. An option that
    runs past the header, or whose length cannot be (0 or 1, or not the length its
    RFC fixes), is what a corrupted or crafted header looks like, and the packet's
    other fields (ports, sequence numbers, payload) deserve no more trust than it.
    Pointers inside route and timestamp options are routing state, not layout, and
    are not judged.
    """
    while pos < end:
        kind = buf[pos]
        if kind == 0:  # end of option list: the rest is padding
            return ""
        if kind == 1:  # no-operation
            pos += 1
            continue
        if pos + 1 >= end:
            return f"option {kind} has no room for its length byte"
        size = buf[pos + 1]
        if size < 2:
            return f"option {kind} of length {size}"
        if pos + size > end:
            return f"option {kind} of length {size} runs {pos + size - end} bytes past the header"
        fixed = _V4_OPTION_LENGTH.get(kind)
        if fixed is not None and size != fixed:
            return f"option {kind} of length {size}, should be {fixed}"
        if size < _V4_OPTION_MIN_LENGTH.get(kind, 2):
            return f"option {kind} of length {size}, shorter than its fixed part"
        pos += size
    return ""


def _ipv6_options_problem(buf: bytes, pos: int, end: int) -> str:
    """What is wrong with the options of a hop-by-hop or destination options header
    (``buf[pos:end]``, after its next-header and length bytes), or "" when nothing is:
    an option running past its header, or a router alert or jumbo payload option of
    another length than its RFC's. Pad1 is the one option without a length byte."""
    while pos < end:
        kind = buf[pos]
        if kind == 0:
            pos += 1
            continue
        if pos + 2 > end:
            return f"option {kind} has no room for its length byte"
        size = buf[pos + 1]
        if pos + 2 + size > end:
            over = pos + 2 + size - end
            return f"option {kind} of length {size} runs {over} bytes past its header"
        fixed = _V6_OPTION_LENGTH.get(kind)
        if fixed is not None and size != fixed:
            return f"option {kind} of length {size}, should be {fixed}"
        pos += 2 + size
    return ""


def _final_destination(buf: bytes, pos: int, size: int, dst: str) -> str:
    """The address a routed IPv6 packet is finally for, when its routing header still
    has segments left: the transport header (and its checksum, RFC 8200 section 8.1)
    belongs to that address, not to the next hop in the IPv6 header. Type 0 (deprecated
    but in captures) and type 2 (Mobile IPv6) list it last; a segment routing header
    (type 4, RFC 8754) lists it first. Other types keep the header's destination."""
    kind = buf[pos + 2]
    if kind in (0, 2) and size >= 24:
        last = pos + 8 + ((size - 8) // 16 - 1) * 16
        return _ntop(_AF6, buf[last : last + 16])
    if kind == 4 and size >= 24:
        return _ntop(_AF6, buf[pos + 8 : pos + 24])
    return dst


def _window_scale(buf: bytes, pos: int, end: int) -> int | None:
    """The window scale option (kind 3) among TCP options ``buf[pos:end]``, capped at
    14 as RFC 7323 requires; None when absent or when the options are malformed."""
    while pos < end:
        kind = buf[pos]
        if kind == 0:
            return None
        if kind == 1:
            pos += 1
            continue
        if pos + 1 >= end:
            return None
        n = buf[pos + 1]
        if n < 2 or pos + n > end:
            return None
        if kind == 3 and n == 3:
            return min(buf[pos + 2], 14)
        pos += n
    return None


class Decoder:
    """Decodes captured frames into TCP segments, counting everything it drops.

    One decoder is used for one capture: it holds the IP fragments still waiting for
    their datagram, so call :meth:`finish` at the end to have those reported. With
    ``defragment=False`` fragments are skipped (counted as ``"ip fragment"``).
    """

    def __init__(
        self,
        stats: ReadStats,
        *,
        defragment: bool = True,
        max_fragment_bytes: int = DEFAULT_MAX_PENDING,
    ) -> None:
        self.stats = stats
        self.defragment = defragment
        self.defrag = Defragmenter(report=stats.anomaly, max_pending=max_fragment_bytes)

    def finish(self) -> None:
        """End of input: report the IP datagrams that never completed."""
        self.defrag.finish()

    def decode_all(self, pkt: Packet) -> tuple[Segment, ...]:
        """Every TCP segment in ``pkt``, with whatever was not one counted in the stats.

        A frame carries one packet, except an 802.11 A-MSDU (bare, behind radiotap, or
        in an Aruba tunnel), which carries several: each subframe is then decoded and
        counted on its own (a segment, a skip or an anomaly), so one damaged subframe
        costs only itself and what follows it when its length is the broken part.
        Never raises, whatever the bytes: anything unexpected becomes an
        ``"undecodable packet"`` anomaly naming the frame.
        """
        try:
            handler = LINK_HANDLERS.get(pkt.linktype)
            if handler is None:
                self.stats.skip(f"linktype {pkt.linktype} unsupported")
                return ()
            data = pkt.data
            try:
                proto, buf, off, end = handler(data)
            except Aggregate as agg:
                agg.missing = pkt.orig_len - len(data)
                raise
            # Where the packet ended on the wire, in ``buf`` coordinates: past ``end``
            # only if the snap length cut it, and only if ``end`` is the frame's end
            # (a PPPoE length that stops earlier is the packet's true end).
            wire_end = end
            cut = pkt.orig_len - len(data)
            if cut > 0 and end == len(buf):
                wire_end += cut
            seg = self._network(proto, buf, off, end, wire_end, pkt, ())
            return () if seg is None else (seg,)
        except Aggregate as agg:
            return tuple(self._aggregate(agg, pkt))
        except Skip as skip:
            self.stats.skip(str(skip))
        except Exception as exc:
            self._count(exc, pkt)
        return ()

    def decode(self, pkt: Packet) -> Segment | None:
        """The TCP segment in ``pkt``, or None with the reason counted in the stats: for
        callers that know their frames carry one packet at most. Of a frame that
        carries several (see :meth:`decode_all`, which the reader uses) only the first
        segment is returned, although all are decoded and counted."""
        segs = self.decode_all(pkt)
        return segs[0] if segs else None

    def _count(self, exc: Exception, pkt: Packet) -> None:
        """Count a packet (or subframe) that gave no segment, by what stopped it."""
        if isinstance(exc, Skip):
            self.stats.skip(str(exc))
        elif isinstance(exc, Damage):
            where = f"frame {pkt.index}"
            self.stats.anomaly(exc.kind, f"{where}: {exc.detail}" if exc.detail else where)
        else:
            # A bug or a case no layer anticipated: one packet lost, counted and named,
            # rather than a whole read aborted.
            self.stats.anomaly("undecodable packet", f"frame {pkt.index}: {exc!r}")

    def _aggregate(self, agg: Aggregate, pkt: Packet) -> list[Segment]:
        """The segments of every subframe of an aggregate, each decoded and counted as
        a packet of its own. A subframe that claims more bytes than the frame has is
        damage unless the snap length cut the frame there: then, like a cut packet,
        it keeps its captured bytes and the rest are missing."""
        out: list[Segment] = []
        for part in agg.parts:
            if isinstance(part, Exception):
                self._count(part, pkt)
                continue
            try:
                (proto, buf, off, end), short = part
                wire_end = end
                if short:
                    if short > agg.missing:
                        raise Damage(
                            "bad a-msdu subframe length",
                            f"a subframe claims {short} bytes more than the frame had on the wire",
                        )
                    if end == len(buf):
                        wire_end += short
                seg = self._network(proto, buf, off, end, wire_end, pkt, agg.path)
                if seg is not None:
                    out.append(seg)
            except Aggregate as inner:  # an aggregate tunnelled inside a subframe
                out += self._aggregate(inner, pkt)
            except Exception as exc:
                self._count(exc, pkt)
        if agg.tail and agg.missing:
            self._count(
                Damage("truncated link header", "a-msdu subframe header cut by snap length"),
                pkt,
            )
        return out

    def _bound(self, end: int, n: int, wire_end: int, pkt: Packet, version: str) -> tuple[int, int]:
        """Bound an IP packet whose header says it ends at ``end``, beyond the ``n``
        bytes captured; return the end of the captured part and the bytes missing.

        Bytes that the snap length cut off were on the wire: they are ``missing``. A
        length claiming more than the packet had on the wire is damage, counted; the
        bytes it claims are not counted as missing, because nothing says they ever
        existed. This happens in real captures (frames trimmed by capture hardware, in
        the corpus's ``zeek__reassembly.pcap``), where the next segment starts right
        after the bytes that are there: counting the claimed bytes as missing would
        invent a hole that tshark and the peer's ACKs do not see. Anything past ``end``
        (Ethernet padding, a trailer) is never payload: callers only come here when
        ``end > n``.
        """
        if end > wire_end:
            self.stats.anomaly(
                f"{version} length exceeds frame",
                f"frame {pkt.index}: header says the packet ends at byte {end}, "
                f"the frame had {wire_end} on the wire",
            )
            return n, wire_end - n
        return n, end - n

    def _ipv4(
        self, buf: bytes, off: int, n: int, wire_end: int, pkt: Packet, path: Path = ()
    ) -> Segment | None:
        if n - off < 20:
            raise Damage("truncated ipv4 header", f"{max(n - off, 0)} bytes")
        vihl, _tos, total, ident, frag, _ttl, proto, _csum, src_b, dst_b = _ipv4_hdr.unpack_from(
            buf, off
        )
        ihl = (vihl & 0x0F) << 2
        if vihl >> 4 != 4:
            raise Damage("bad ip version", f"ipv4 header says version {vihl >> 4}")
        if ihl < 20:
            raise Damage("bad ipv4 header length", f"{ihl} bytes")
        if off + ihl > n:
            raise Damage("truncated ipv4 header", f"options: {n - off} of {ihl} bytes")
        if ihl > 20:
            problem = _ipv4_options_problem(buf, off + 20, off + ihl)
            if problem:
                raise Damage("bad ipv4 options", problem)
        if total == 0:
            # TCP segmentation offload (and BIG TCP) captures carry 0 here: the packet
            # is the whole rest of the frame as it was on the wire.
            total = wire_end - off
        if total < ihl:
            raise Damage("bad ipv4 total length", f"{total} < header length {ihl}")
        end = off + total
        missing = 0
        if end > n:
            end, missing = self._bound(end, n, wire_end, pkt, "ipv4")
        if proto not in _CARRIERS:
            raise Skip(_NOT_TCP[proto])
        src = _ntoa(src_b)
        dst = _ntoa(dst_b)
        start = off + ihl
        if frag & 0x3FFF:  # more fragments, or a non-zero offset (DF does not matter)
            if not self.defragment:
                raise Skip("ip fragment")
            if missing:
                raise Damage("truncated ip fragment", f"{missing} bytes cut by snap length")
            whole = self.defrag.add(
                (4, src, dst, proto, ident),
                (frag & 0x1FFF) << 3,
                bool(frag & 0x2000),
                buf[start:end],
                pkt.timestamp,
                pkt.index,
            )
            if whole is None:
                raise Skip("ip fragment pending")
            return self._carried(proto, whole, 0, len(whole), 0, src, dst, pkt, path, 4)
        if proto == 6:
            return self._tcp(buf, start, end, missing, src, dst, pkt, path)
        return self._carried(proto, buf, start, end, missing, src, dst, pkt, path, 4)

    def _ipv6(
        self, buf: bytes, off: int, n: int, wire_end: int, pkt: Packet, path: Path = ()
    ) -> Segment | None:
        if n - off < 40:
            raise Damage("truncated ipv6 header", f"{max(n - off, 0)} bytes")
        if buf[off] >> 4 != 6:
            raise Damage("bad ip version", f"ipv6 header says version {buf[off] >> 4}")
        plen = buf[off + 4] << 8 | buf[off + 5]
        nh = buf[off + 6]
        src = _ntop(_AF6, buf[off + 8 : off + 24])
        dst = _ntop(_AF6, buf[off + 24 : off + 40])
        pos = off + 40
        if plen == 0:
            # A jumbogram (hop-by-hop Jumbo Payload) or a BIG TCP capture: the payload
            # runs to the end of the packet as it was on the wire.
            plen = wire_end - pos
        end = pos + plen
        missing = 0
        if end > n:
            end, missing = self._bound(end, n, wire_end, pkt, "ipv6")
        for _ in range(_V6_MAX_HEADERS):
            if nh == 6:
                return self._tcp(buf, pos, end, missing, src, dst, pkt, path)
            if nh in _CARRIERS:
                return self._carried(nh, buf, pos, end, missing, src, dst, pkt, path, 6)
            if nh in _V6_SKIPPABLE:
                if pos + 2 > end:
                    raise Damage("truncated ipv6 extension header", f"next header {nh}")
                size = (buf[pos + 1] + 2) << 2 if nh == _V6_AH else (buf[pos + 1] + 1) << 3
                if pos + size > end:
                    raise Damage("truncated ipv6 extension header", f"{size} bytes")
                if nh == _V6_HOP or nh == _V6_DSTOPTS:
                    problem = _ipv6_options_problem(buf, pos + 2, pos + size)
                    if problem:
                        raise Damage("bad ipv6 options", problem)
                if nh == _V6_ROUTING and pos + 4 <= end and buf[pos + 3]:
                    dst = _final_destination(buf, pos, size, dst)
                nh = buf[pos]
                pos += size
                continue
            if nh == _V6_FRAGMENT:
                if pos + 8 > end:
                    raise Damage("truncated ipv6 extension header", "fragment header")
                nxt = buf[pos]
                offset_flags = buf[pos + 2] << 8 | buf[pos + 3]
                (ident,) = _u32.unpack_from(buf, pos + 4)
                pos += 8
                if offset_flags & 0xFFF9 == 0:
                    # An atomic fragment (offset 0, no more fragments, RFC 6946): the
                    # whole packet, to be processed as if unfragmented.
                    nh = nxt
                    continue
                if nxt not in _V6_FRAGMENT_MAY_BE_TCP:
                    raise Skip(_NOT_TCP[nxt])
                if not self.defragment:
                    raise Skip("ip fragment")
                if missing:
                    raise Damage("truncated ip fragment", f"{missing} bytes cut by snap length")
                whole = self.defrag.add(
                    (6, src, dst, nxt, ident),
                    offset_flags & 0xFFF8,
                    bool(offset_flags & 1),
                    buf[pos:end],
                    pkt.timestamp,
                    pkt.index,
                )
                if whole is None:
                    raise Skip("ip fragment pending")
                buf, pos, end, nh = whole, 0, len(whole), nxt
                continue
            if nh == _V6_NONE:
                raise Skip("ipv6 no next header")
            raise Skip(_NOT_TCP[nh])
        raise Damage("too many ipv6 extension headers", f"more than {_V6_MAX_HEADERS}")

    def _carried(
        self,
        proto: int,
        buf: bytes,
        off: int,
        end: int,
        missing: int,
        src: str,
        dst: str,
        pkt: Packet,
        path: Path,
        version: int,
    ) -> Segment | None:
        """The IP payload ``buf[off:end]`` of protocol ``proto`` (``missing`` bytes of it
        cut by the snap length): TCP, or a tunnel whose inner packet is decoded like a
        captured frame, with one more hop on its ``path``."""
        if proto == 6:
            return self._tcp(buf, off, end, missing, src, dst, pkt, path)
        if len(path) >= MAX_TUNNEL_DEPTH:
            raise Damage("too many nested tunnels", f"more than {MAX_TUNNEL_DEPTH}")
        sport = dport = 0
        if proto == 17:
            if end - off < 8:
                raise Skip(_NOT_TCP[17])
            sport, dport, ulen = struct.unpack_from(">HHH", buf, off)
            if 8 <= ulen < end - off:
                # The UDP length excludes any trailer; a larger one was cut (missing).
                end, missing = off + ulen, 0
            off += 8
            parser = UDP_TUNNELS.get(dport) or UDP_TUNNELS.get(sport)
            if parser is None:
                # Only a whole datagram can show that it is Teredo.
                if missing or _teredo_inner(buf, off, end) < 0:
                    raise Skip(_NOT_TCP[17])
                parser = _teredo_by_content
        else:
            parser = IP_TUNNELS[proto]
        kind, pos, ident, name = parser(buf, off, end)
        if kind == INNER_IP:
            if pos >= end:
                raise Damage("truncated tunnel header", f"{name}: no inner packet")
            inner = buf[pos] >> 4
            if inner not in (IPV4, IPV6):
                raise Damage("bad ip version", f"inside {name}: version {inner}")
            if name == "ip":
                name = f"{inner}in{version}"
            ibuf, ioff, iend = buf, pos, end
        else:
            try:
                inner, ibuf, ioff, iend = _INNER_LINKS[kind](buf[pos:end])
            except Aggregate as agg:
                # Several packets in the tunnelled frame: the decoder reads them all,
                # as packets that came by this tunnel, cut where the outer one was.
                agg.path = (*path, TunnelHop(name, src, dst, sport, dport, ident))
                agg.missing = missing
                raise
        # The inner packet's snap-length cut is the outer one's, unless the inner link
        # layer says where the packet ends (PPPoE) before the end of what was captured.
        wire_end = iend + missing if iend == len(ibuf) or kind == INNER_IP else iend
        hop = TunnelHop(name, src, dst, sport, dport, ident)
        return self._network(inner, ibuf, ioff, iend, wire_end, pkt, (*path, hop))

    def _network(
        self, proto: int, buf: bytes, off: int, end: int, wire_end: int, pkt: Packet, path: Path
    ) -> Segment | None:
        """The IPv4 or IPv6 packet at ``off``, whatever brought us to it."""
        if proto == IPV4:
            return self._ipv4(buf, off, end, wire_end, pkt, path)
        return self._ipv6(buf, off, end, wire_end, pkt, path)

    def _tcp(
        self,
        buf: bytes,
        off: int,
        end: int,
        missing: int,
        src: str,
        dst: str,
        pkt: Packet,
        path: Path = (),
    ) -> Segment:
        """The TCP segment in ``buf[off:end]``; ``missing`` payload bytes were not captured."""
        if end - off < 20:
            why = "cut by snap length" if missing else "shorter than the minimum"
            raise Damage("truncated tcp header", f"{end - off} bytes, {why}")
        sport, dport, seq, ack, offx, flags, window = _tcp_hdr.unpack_from(buf, off)
        doff = (offx >> 4) << 2
        if doff < 20:
            raise Damage("bad tcp data offset", f"{doff} bytes")
        opt_end = min(off + doff, end)  # options past the snap length are unknown
        if off + doff > end:
            wire = end + missing - (off + doff)  # payload bytes on the wire
            if not missing or wire < 0:
                raise Damage("tcp data offset past end", f"data offset {doff}, {end - off} bytes")
            # The snap length cut the options: ports, sequence numbers and flags are
            # all there, so the segment counts (a SYN stays a SYN); none of its payload
            # was captured.
            end, missing = off + doff, wire
        self.stats.tcp_segments += 1
        wscale = _window_scale(buf, off + 20, opt_end) if flags & 0x02 and doff > 20 else None
        return Segment(
            pkt.timestamp,
            src,
            sport,
            dst,
            dport,
            seq,
            ack,
            flags,
            buf[off + doff : end],
            window,
            missing,
            pkt.index,
            path,
            wscale,
        )
