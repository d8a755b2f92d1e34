"""IP and TCP header details: protocol names, IPv6 extension headers, option walks.

Pure functions over bytes; the :class:`~pcapflows.decode.decoder.Decoder` decides what
their answers mean for a packet (damage, a skip, a window scale).
"""

from __future__ import annotations

import socket

from pcapflows.decode.tunnels import _CARRIERS

_ntop = socket.inet_ntop
_AF6 = socket.AF_INET6

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


#: One option of a kind/length list: ``(kind, offset of its kind byte, its length)``.
Option = tuple[int, int, int]


def walk_options(buf: bytes, pos: int, end: int) -> tuple[list[Option], str]:
    """The options in ``buf[pos:end]`` laid out as RFC 791 lays out IPv4's and RFC 9293
    TCP's: end-of-list (0) and no-operation (1) are one byte, every other option is a
    kind byte, a length byte counting both, then its data. Returns the options up to
    the end of the list or the first one that cannot be walked over, with what is wrong
    with that one ("" when nothing is): no room for its length byte, a length below 2,
    or a length running past ``end``. One walk for both headers, so they cannot come to
    disagree about where an option ends."""
    opts: list[Option] = []
    while pos < end:
        kind = buf[pos]
        if kind == 0:  # end of option list: the rest is padding
            return opts, ""
        if kind == 1:  # no-operation
            pos += 1
            continue
        if pos + 1 >= end:
            return opts, f"option {kind} has no room for its length byte"
        size = buf[pos + 1]
        if size < 2:
            return opts, f"option {kind} of length {size}"
        if pos + size > end:
            return (
                opts,
                f"option {kind} of length {size} runs {pos + size - end} bytes past the header",
            )
        opts.append((kind, pos, size))
        pos += size
    return opts, ""


def _ipv4_options_problem(buf: bytes, pos: int, end: int) -> str:
    """What is wrong with the IPv4 options in ``buf[pos:end]``, or "" when nothing is.

    The header length already says where TCP starts, so a broken option does not make
    the payload's place uncertain: it makes the header untrustworthy. An option that
    runs past the header, or whose length cannot be (0 or 1, or not the length its
    RFC fixes), is what a corrupted or crafted header looks like, and the packet's
    other fields (ports, sequence numbers, payload) deserve no more trust than it.
    Pointers inside route and timestamp options are routing state, not layout, and
    are not judged. The first problem in header order is the one reported: a wrong
    length of an option that was walked over comes before what stopped the walk.
    """
    opts, broken = walk_options(buf, pos, end)
    for kind, _, size in opts:
        fixed = _V4_OPTION_LENGTH.get(kind)
        if fixed is not None and size != fixed:
            return f"option {kind} of length {size}, should be {fixed}"
        if size < _V4_OPTION_MIN_LENGTH.get(kind, 2):
            return f"option {kind} of length {size}, shorter than its fixed part"
    return broken


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
    14 as RFC 7323 requires; None when absent, or when the options are malformed before
    it (an option of kind 3 with another length than 3 is not one)."""
    for kind, at, size in walk_options(buf, pos, end)[0]:
        if kind == 3 and size == 3:
            return min(buf[at + 2], 14)
    return None
