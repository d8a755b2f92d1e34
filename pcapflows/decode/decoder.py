"""The decoding policy: frame bytes to :class:`~pcapflows.decode.segment.Segment`.

The parsers (:mod:`~pcapflows.decode.link`, :mod:`~pcapflows.decode.tunnels`,
:mod:`~pcapflows.decode.ip`) say where each layer starts and what it holds; this module
decides what that means: which lengths are damage, what the snap length explains,
which fragments are held, what is counted where.

Every captured packet goes through :meth:`Decoder.decode_all`, so its cost is paid a
million times on a million-packet capture.

Nothing escapes :meth:`Decoder.decode_all`: every packet (every subframe of an 802.11
A-MSDU, which carries several) ends up counted exactly once in the
:class:`~pcapflows.stats.ReadStats`, as a TCP segment, a skip with its reason, or an
anomaly with its frame number, so that a damaged capture still yields every flow that
can be recovered and the user can see what was not.
"""

from __future__ import annotations

import socket
import struct

from pcapflows.decode.ip import (
    _NOT_TCP,
    _V6_AH,
    _V6_DSTOPTS,
    _V6_FRAGMENT,
    _V6_FRAGMENT_MAY_BE_TCP,
    _V6_HOP,
    _V6_MAX_HEADERS,
    _V6_NONE,
    _V6_ROUTING,
    _V6_SKIPPABLE,
    _final_destination,
    _ipv4_options_problem,
    _ipv6_options_problem,
    _window_scale,
)
from pcapflows.decode.ipfrag import DEFAULT_MAX_PENDING, Defragmenter
from pcapflows.decode.link import (
    AF_INET,
    AF_INET6,
    LINK_HANDLERS,
    VLAN_TYPES,
    _ethernet,
    _ieee80211,
    _mpls,
    _ppp_proto,
    _u32,
)
from pcapflows.decode.segment import Segment, TunnelHop
from pcapflows.decode.signals import (
    IPV4,
    IPV6,
    Aggregate,
    Damage,
    LinkHandler,
    Path,
    Skip,
)
from pcapflows.decode.tunnels import (
    _CARRIERS,
    INNER_80211,
    INNER_ETHERNET,
    INNER_IP,
    INNER_MPLS,
    INNER_PPP,
    IP_TUNNELS,
    MAX_TUNNEL_DEPTH,
    UDP_TUNNELS,
    _teredo_by_content,
    _teredo_inner,
)
from pcapflows.io.packet import Packet
from pcapflows.stats import ReadStats

#: IPv4 header without options: version/IHL, TOS, total length, id, flags/fragment
#: offset, TTL, protocol, checksum, source, destination.
_ipv4_hdr = struct.Struct(">BBHHHBBH4s4s")
#: TCP header without options: ports, seq, ack, data offset, flags, window.
_tcp_hdr = struct.Struct(">HHIIBBH")
#: UDP header up to its length: ports and length.
_udp_hdr = struct.Struct(">HHH")
_ntoa = socket.inet_ntoa
_ntop = socket.inet_ntop
_AF6 = socket.AF_INET6

# -- the fast path's formats and tables ---------------------------------------------------

#: An IPv4 header without options and the TCP header after it, in one read: version/IHL,
#: total length, flags/fragment offset, protocol, source, destination; ports, seq, ack,
#: data offset, flags, window (the fields no decision of the fast path needs are padding).
#: The two addresses are read as one string of bytes: the key of the address cache.
_v4_tcp = struct.Struct(">BxH2xHxB2x8sHHIIBBH")
#: An IPv6 header and the TCP header after it: version/class, payload length, next
#: header, source, destination; then TCP as above.
_v6_tcp = struct.Struct(">B3xHBx32sHHIIBBH")
#: IPv4 and IPv6 ethertypes, and the ethertypes of a VLAN tag (see LINK_TAGS).
_ETH_IPV4, _ETH_IPV6 = 0x0800, 0x86DD
_VLAN_TYPES = VLAN_TYPES
#: The first four bytes of a BSD (NULL) or OpenBSD (LOOP) loopback frame -> the IP version
#: after them: the address family in either byte order, as both handlers accept it.
_LOOPBACK_FAMILIES: dict[bytes, int] = {
    **{af.to_bytes(4, order): IPV4 for af in (AF_INET,) for order in ("little", "big")},
    **{af.to_bytes(4, order): IPV6 for af in AF_INET6 for order in ("little", "big")},
}
#: Link types of raw IP: by the version nibble, or fixed to one version.
_RAW_BY_NIBBLE = frozenset((12, 14, 101))
#: The text form of addresses is cached by their raw bytes; past this many entries the
#: cache is emptied (a scan of many hosts costs a re-fill, never unbounded memory).
MAX_CACHED_ADDRESSES = 65536

#: Inner kinds other than IP -> the link handler that finds IP in them.
_INNER_LINKS: dict[int, LinkHandler] = {
    INNER_ETHERNET: _ethernet,
    INNER_PPP: lambda b: _ppp_proto(b, 0),
    INNER_MPLS: lambda b: _mpls(b, 0),
    INNER_80211: _ieee80211,
}


class Cursor:
    """Where decoding stands in one packet, and what the outer layers tell the inner.

    The link layer starts it (``buf``, the packet ``buf[off:end]``, where it ended on
    the wire, the captured ``pkt`` whose time and frame number every segment carries,
    the tunnel ``path`` so far); the IP layer moves ``off``/``end`` to its payload and
    fills in the addresses, the version and the ``missing`` bytes the snap length cut;
    a tunnel starts a new cursor for its inner packet with one more hop on the path.
    One object handed down instead of ten positional arguments at every layer.
    """

    __slots__ = ("buf", "dst", "end", "missing", "off", "path", "pkt", "src", "version", "wire_end")

    def __init__(
        self, buf: bytes, off: int, end: int, wire_end: int, pkt: Packet, path: Path = ()
    ) -> None:
        self.buf = buf
        self.off = off
        #: End of the captured part of the current layer's bytes.
        self.end = end
        #: Where the packet ended on the wire, in ``buf`` coordinates.
        self.wire_end = wire_end
        self.pkt = pkt
        self.path = path
        #: Bytes of ``buf[off:end]``'s protocol unit that the snap length cut off.
        self.missing = 0
        self.src = ""
        self.dst = ""
        self.version = 0


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
        #: Raw address bytes -> text forms, for the fast path (see :meth:`_pair`).
        self._hosts: dict[bytes, str] = {}
        self._pairs: dict[bytes, tuple[str, str]] = {}

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

        The common case is decoded here, on a fast path: Ethernet with up to two VLAN
        tags, Linux cooked v1/v2, loopback or raw IP, then IPv4 (options allowed, not
        a fragment) or IPv6 without extension headers, then TCP, with every length
        consistent and inside the captured bytes. It reads the headers with one
        :mod:`struct` call, raises nothing and builds no object but the segment; the
        only copy of the payload is the slice the segment holds. Anything else, down
        to a single length the general path would have to judge, goes to the general
        path (:meth:`_decode_general`) from the start, so both give the same segments
        and the same counts (tests/test_fastpath.py holds them to it).
        """
        lt = pkt.linktype
        data = pkt.data
        n = len(data)
        # -- the link layer: ``off`` is where IP starts, ``version`` which IP it is.
        if lt == 1 and n >= 54 and data[12] == 8 and data[13] == 0:  # Ethernet, IPv4
            off = 14
            version = 4
        elif lt == 1 or lt == 113:  # Ethernet, Linux cooked v1 (type at 12, at 14)
            i = 12 if lt == 1 else 14
            if n < i + 42:
                return self._decode_general(pkt)
            et = data[i] << 8 | data[i + 1]
            if et in _VLAN_TYPES:
                i += 4
                if n < i + 42:
                    return self._decode_general(pkt)
                et = data[i] << 8 | data[i + 1]
                if et in _VLAN_TYPES:
                    i += 4
                    if n < i + 42:
                        return self._decode_general(pkt)
                    et = data[i] << 8 | data[i + 1]
            off = i + 2
            if et == _ETH_IPV4:
                version = 4
            elif et == _ETH_IPV6:
                version = 6
            else:
                return self._decode_general(pkt)
        elif lt == 276:  # Linux cooked v2: type at 0, header of 20 bytes, then a tag
            if n < 64:
                return self._decode_general(pkt)
            et = data[0] << 8 | data[1]
            off = 20
            if et in _VLAN_TYPES:
                et = data[22] << 8 | data[23]
                off = 24
            if et == _ETH_IPV4:
                version = 4
            elif et == _ETH_IPV6:
                version = 6
            else:
                return self._decode_general(pkt)
        elif lt == 0 or lt == 108:  # BSD and OpenBSD loopback
            version = _LOOPBACK_FAMILIES.get(data[:4], 0)
            off = 4
        elif lt in _RAW_BY_NIBBLE:
            version = data[0] >> 4 if n else 0
            off = 0
        elif lt == 228 or lt == 229:
            version = 4 if lt == 228 else 6
            off = 0
        else:
            return self._decode_general(pkt)
        # -- IP and TCP: any check failing leaves the packet to the general path.
        if version == 4:
            if n - off < 40:
                return self._decode_general(pkt)
            vihl, total, frag, proto, addrs, sport, dport, seq, ack, offx, flags, window = (
                _v4_tcp.unpack_from(data, off)
            )
            if proto != 6 or frag & 0x3FFF:
                return self._decode_general(pkt)
            if vihl == 0x45:
                ihl = 20
            else:
                ihl = (vihl & 0x0F) << 2
                if (
                    vihl >> 4 != 4
                    or ihl < 20
                    or n - off < ihl + 20
                    or _ipv4_options_problem(data, off + 20, off + ihl)
                ):
                    return self._decode_general(pkt)
                sport, dport, seq, ack, offx, flags, window = _tcp_hdr.unpack_from(data, off + ihl)
            end = off + total
            doff = (offx >> 4) << 2
            if end > n or doff < 20 or ihl + doff > total:
                return self._decode_general(pkt)
        elif version == 6:
            if n - off < 60:
                return self._decode_general(pkt)
            vfc, plen, nh, addrs, sport, dport, seq, ack, offx, flags, window = _v6_tcp.unpack_from(
                data, off
            )
            ihl = 40
            end = off + 40 + plen
            doff = (offx >> 4) << 2
            if vfc >> 4 != 6 or nh != 6 or end > n or doff < 20 or doff > plen:
                return self._decode_general(pkt)
        else:
            return self._decode_general(pkt)
        pair = self._pairs.get(addrs)
        if pair is None:
            pair = self._pair(addrs)
        src, dst = pair
        start = off + ihl
        self.stats.tcp_segments += 1
        return (
            Segment(
                pkt.timestamp,
                src,
                sport,
                dst,
                dport,
                seq,
                ack,
                flags,
                data[start + doff : end],
                window,
                0,
                pkt.index,
                (),
                _window_scale(data, start + 20, start + doff)
                if flags & 0x02 and doff > 20
                else None,
            ),
        )

    def _pair(self, addrs: bytes) -> tuple[str, str]:
        """The text forms of a source and destination address, from their raw bytes
        side by side (8 for IPv4, 32 for IPv6), cached per pair and, below that, per
        host, so each host's text is built about once, not twice per packet. Either
        cache is emptied when it reaches :data:`MAX_CACHED_ADDRESSES` entries."""
        half = len(addrs) >> 1
        hosts = self._hosts
        if len(hosts) >= MAX_CACHED_ADDRESSES:
            hosts.clear()
        names = []
        for raw in (addrs[:half], addrs[half:]):
            text = hosts.get(raw)
            if text is None:
                text = hosts[raw] = _ntoa(raw) if half == 4 else _ntop(_AF6, raw)
            names.append(text)
        if len(self._pairs) >= MAX_CACHED_ADDRESSES:
            self._pairs.clear()
        pair = self._pairs[addrs] = (names[0], names[1])
        return pair

    def _decode_general(self, pkt: Packet) -> tuple[Segment, ...]:
        """:meth:`decode_all` for every frame, through the layer parsers: link types,
        tunnels, fragments, extension headers, damage. The fast path only ever hands
        frames here, unchanged."""
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
            seg = self._network(proto, Cursor(buf, off, end, wire_end, pkt))
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
                seg = self._network(proto, Cursor(buf, off, end, wire_end, pkt, agg.path))
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

    def _bound(self, cur: Cursor, end: int, version: str) -> tuple[int, int]:
        """Bound an IP packet whose header says it ends at ``end``, beyond the
        ``cur.end`` bytes captured; return the end of the captured part and the bytes
        missing.

        Bytes that the snap length cut off were on the wire: they are ``missing``. A
        length claiming more than the packet had on the wire is damage, counted; the
        bytes it claims are not counted as missing, because nothing says they ever
        existed. This happens in real captures (frames trimmed by capture hardware, in
        the corpus's ``zeek__reassembly.pcap``), where the next segment starts right
        after the bytes that are there: counting the claimed bytes as missing would
        invent a hole that tshark and the peer's ACKs do not see. Anything past ``end``
        (Ethernet padding, a trailer) is never payload: callers only come here when
        ``end > cur.end``.
        """
        n, wire_end = cur.end, cur.wire_end
        if end > wire_end:
            self.stats.anomaly(
                f"{version} length exceeds frame",
                f"frame {cur.pkt.index}: header says the packet ends at byte {end}, "
                f"the frame had {wire_end} on the wire",
            )
            return n, wire_end - n
        return n, end - n

    def _ipv4(self, cur: Cursor) -> Segment | None:
        buf, off, n = cur.buf, cur.off, cur.end
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
            total = cur.wire_end - off
        if total < ihl:
            raise Damage("bad ipv4 total length", f"{total} < header length {ihl}")
        end = off + total
        missing = 0
        if end > n:
            end, missing = self._bound(cur, end, "ipv4")
        if proto not in _CARRIERS:
            raise Skip(_NOT_TCP[proto])
        cur.src = src = _ntoa(src_b)
        cur.dst = dst = _ntoa(dst_b)
        cur.version = 4
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
                cur.pkt.timestamp,
                cur.pkt.index,
            )
            if whole is None:
                raise Skip("ip fragment pending")
            cur.buf, cur.off, cur.end, cur.missing = whole, 0, len(whole), 0
            return self._carried(proto, cur)
        cur.off, cur.end, cur.missing = start, end, missing
        if proto == 6:
            return self._tcp(cur)
        return self._carried(proto, cur)

    def _ipv6(self, cur: Cursor) -> Segment | None:
        buf, off, n = cur.buf, cur.off, cur.end
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
            plen = cur.wire_end - pos
        end = pos + plen
        missing = 0
        if end > n:
            end, missing = self._bound(cur, end, "ipv6")
        for _ in range(_V6_MAX_HEADERS):
            if nh == 6 or nh in _CARRIERS:
                cur.buf, cur.off, cur.end, cur.missing = buf, pos, end, missing
                cur.src, cur.dst, cur.version = src, dst, 6
                if nh == 6:
                    return self._tcp(cur)
                return self._carried(nh, cur)
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
                    cur.pkt.timestamp,
                    cur.pkt.index,
                )
                if whole is None:
                    raise Skip("ip fragment pending")
                buf, pos, end, nh = whole, 0, len(whole), nxt
                continue
            if nh == _V6_NONE:
                raise Skip("ipv6 no next header")
            raise Skip(_NOT_TCP[nh])
        raise Damage("too many ipv6 extension headers", f"more than {_V6_MAX_HEADERS}")

    def _carried(self, proto: int, cur: Cursor) -> Segment | None:
        """The IP payload ``cur.buf[cur.off:cur.end]`` of protocol ``proto``
        (``cur.missing`` bytes of it cut by the snap length): TCP, or a tunnel whose
        inner packet is decoded like a captured frame, with one more hop on its path."""
        if proto == 6:
            return self._tcp(cur)
        path = cur.path
        if len(path) >= MAX_TUNNEL_DEPTH:
            raise Damage("too many nested tunnels", f"more than {MAX_TUNNEL_DEPTH}")
        buf, off, end, missing = cur.buf, cur.off, cur.end, cur.missing
        sport = dport = 0
        if proto == 17:
            if end - off < 8:
                raise Skip(_NOT_TCP[17])
            sport, dport, ulen = _udp_hdr.unpack_from(buf, off)
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
        hop = TunnelHop(name, cur.src, cur.dst, sport, dport, ident)
        if kind == INNER_IP:
            if pos >= end:
                raise Damage("truncated tunnel header", f"{name}: no inner packet")
            inner = buf[pos] >> 4
            if inner not in (IPV4, IPV6):
                raise Damage("bad ip version", f"inside {name}: version {inner}")
            if name == "ip":
                hop = TunnelHop(f"{inner}in{cur.version}", cur.src, cur.dst, sport, dport, ident)
            ibuf, ioff, iend = buf, pos, end
        else:
            try:
                inner, ibuf, ioff, iend = _INNER_LINKS[kind](buf[pos:end])
            except Aggregate as agg:
                # Several packets in the tunnelled frame: the decoder reads them all,
                # as packets that came by this tunnel, cut where the outer one was.
                agg.path = (*path, hop)
                agg.missing = missing
                raise
        # The inner packet's snap-length cut is the outer one's, unless the inner link
        # layer says where the packet ends (PPPoE) before the end of what was captured.
        wire_end = iend + missing if iend == len(ibuf) or kind == INNER_IP else iend
        return self._network(inner, Cursor(ibuf, ioff, iend, wire_end, cur.pkt, (*path, hop)))

    def _network(self, proto: int, cur: Cursor) -> Segment | None:
        """The IPv4 or IPv6 packet at ``cur.off``, whatever brought us to it."""
        if proto == IPV4:
            return self._ipv4(cur)
        return self._ipv6(cur)

    def _tcp(self, cur: Cursor) -> Segment:
        """The TCP segment in ``cur.buf[cur.off:cur.end]``; ``cur.missing`` payload
        bytes were not captured."""
        buf, off, end, missing = cur.buf, cur.off, cur.end, cur.missing
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
        pkt = cur.pkt
        return Segment(
            pkt.timestamp,
            cur.src,
            sport,
            cur.dst,
            dport,
            seq,
            ack,
            flags,
            buf[off + doff : end],
            window,
            missing,
            pkt.index,
            cur.path,
            wscale,
        )
