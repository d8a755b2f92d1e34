"""Tunnels: the encapsulations whose inner packet is decoded like a captured frame.

A tunnel parser reads the tunnel header at ``off`` (the packet ends at ``end``) and
returns what follows it: ``(inner kind, offset of the inner frame, tunnel id or None,
hop name)``. The decoder then decodes the inner frame as it would a captured one, so
tunnels nest without limit other than :data:`MAX_TUNNEL_DEPTH`.
"""

from __future__ import annotations

from collections.abc import Callable

from pcapflows.decode.link import ETH_IPV4, ETH_IPV6, ETH_MPLS, _u32
from pcapflows.decode.signals import Damage, Skip

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
