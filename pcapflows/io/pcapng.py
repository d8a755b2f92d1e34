"""pcapng: a sequence of typed, length-framed blocks, in sections with interfaces.

Unlike classic pcap, nothing is fixed for the whole file: each Section Header Block
may change the byte order and starts a new list of interfaces, and each Interface
Description Block brings its own link type, snap length, timestamp resolution
(``if_tsresol``) and offset (``if_tsoffset``), which every packet then refers to by
interface id. So the reader keeps per-section state and turns each packet's 64-bit tick
count into seconds with its own interface's units.

Packets come from Enhanced, Simple and the obsolete Packet Blocks. Other block types
carry no packet and are skipped: silently when the type is a known one (name
resolution, statistics, ...), counted when it is not, since it might hide packets.
Every block repeats its length at its end, which is what makes damage detectable and
resynchronisation possible (:func:`_pcapng_ok`).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from functools import partial

from pcapflows.io.packet import Packet
from pcapflows.io.stream import MAX_RECORD, MAX_RESYNC_SCAN, ByteStream
from pcapflows.stats import ReadStats

#: Block types a resynchronization may land on (they are what a capture is made of).
_RESYNC_BLOCKS = frozenset((0x1, 0x2, 0x3, 0x4, 0x5, 0x6))
#: pcapng block types that carry no packet and are skipped silently: name resolution,
#: interface statistics, IRIG timestamp, ARINC 429, systemd journal export, decryption
#: secrets, Sysdig event blocks, and the custom blocks (copyable and not). Any other
#: type is skipped too, but counted as an anomaly, since it may hide packets.
_KNOWN_BLOCKS = frozenset(
    (0x4, 0x5, 0x7, 0x8, 0x9, 0xA, 0x0BAD, 0x40000BAD, *range(0x80000001, 0x80000010))
)

_SHB = 0x0A0D0D0A
_IDB = 0x00000001
_PB = 0x00000002
_SPB = 0x00000003
_EPB = 0x00000006
_BOM = 0x1A2B3C4D


def _pcapng_ok(w: bytes, i: int, endian: str) -> int:
    """Whether a pcapng block starts at ``w[i]``: a known type, a sane length, and the
    same length repeated at the block's end."""
    if i + 8 > len(w):
        return -1
    if w[i : i + 4] == b"\x0a\x0d\x0d\x0a":
        return (
            1
            if i + 12 <= len(w) and w[i + 8 : i + 12] in (b"\x1a\x2b\x3c\x4d", b"\x4d\x3c\x2b\x1a")
            else 0
        )
    btype, blen = struct.unpack_from(endian + "II", w, i)
    # A block longer than the scan itself is not believed: checking its trailer would
    # mean holding that much of the file to resynchronize.
    if btype not in _RESYNC_BLOCKS or blen < 12 or blen % 4 or blen > MAX_RESYNC_SCAN:
        return 0
    if i + blen > len(w):
        return -1
    (trailer,) = struct.unpack_from(endian + "I", w, i + blen - 4)
    return 1 if trailer == blen else 0


class _Interface:
    """What an Interface Description Block says about the packets that name it."""

    __slots__ = ("linktype", "offset", "snaplen", "units")

    def __init__(self, linktype: int, snaplen: int, units: int, offset: int) -> None:
        self.linktype = linktype
        self.snaplen = snaplen
        self.units = units
        self.offset = offset


#: Per byte order: an Enhanced Packet Block's header and fixed fields (type, length,
#: interface, timestamp high and low, captured and original length), and one 32-bit
#: word (the repeated length), for walking blocks inside a buffer.
_STRUCTS = {
    e: (struct.Struct(e + "IIIIIII").unpack_from, struct.Struct(e + "I").unpack_from) for e in "<>"
}


def pcapng_records(stream: ByteStream) -> Iterator[Packet]:
    """The packets of a pcapng file whose first four bytes (the first Section Header
    Block's type) were already consumed by sniffing; damage is counted in
    ``stream.stats`` and ends or skips, never raises.

    Enhanced Packet Blocks, nearly all of a capture, are walked inside a block of the
    file (:meth:`ByteStream.block`) with ``struct.unpack_from``. Every other block, an
    Enhanced Packet Block cut by the block's end, and anything unusual about one, are
    given back to the stream and read block by block by the general code below the
    walk, so every rule about damage lives in one place.
    """
    stats = stream.stats
    endian = "<"
    fixed, word = _STRUCTS[endian]
    interfaces: list[_Interface] = []
    index = 0
    first = True
    new = object.__new__
    buf = b""
    pos = end = 0
    # The second the last packet fell in, for its interface: packets with the same
    # interface, the same high timestamp word and a low word inside
    # [lo_start, lo_start + units) are in that second, ``lo - lo_start`` units into
    # it. This gives exactly the seconds and remainder of dividing the 64-bit count,
    # without the big-integer arithmetic per packet.
    c_iid = c_hi = c_lo0 = c_lo1 = c_units = c_linktype = -1
    c_base = 0
    while True:
        # The Enhanced Packet Blocks inside the block, while all is as it should be: a
        # sane length repeated at the end, a captured length that fits, a known
        # interface that was not damaged. (``nxt <= end`` also bounds the length: no
        # buffer comes near MAX_RECORD.)
        while pos + 28 <= end:
            btype, blen, iid, hi, lo, cap, orig = fixed(buf, pos)
            nxt = pos + blen
            if btype != _EPB or nxt > end or blen < 32 or blen & 3 or cap > blen - 32:
                break
            if word(buf, nxt - 4)[0] != blen:
                break
            if iid == c_iid and hi == c_hi and c_lo0 <= lo < c_lo1:
                ts = c_base + (lo - c_lo0) / c_units
            else:
                if iid >= len(interfaces):
                    break
                iface = interfaces[iid]
                if iface.linktype < 0:
                    break
                units = iface.units
                if units:
                    sec, rem = divmod((hi << 32) | lo, units)
                    ts = sec + iface.offset + rem / units
                    c_iid, c_hi, c_units, c_linktype = iid, hi, units, iface.linktype
                    c_lo0 = lo - rem
                    c_lo1 = c_lo0 + units
                    c_base = sec + iface.offset
                else:
                    ts = 0.0  # the interface's timestamp resolution is damaged (counted)
                    c_iid = -1
            index += 1
            # Built without calling __init__ (see pcap.py); every field is set here.
            pkt = new(Packet)
            pkt.timestamp = ts
            pkt.linktype = c_linktype if iid == c_iid else interfaces[iid].linktype
            pkt.data = buf[pos + 28 : pos + 28 + cap]
            pkt.orig_len = orig if orig > cap else cap
            pkt.index = index
            pkt.interface = iid
            pos = nxt
            stats.packets += 1
            stats.bytes += cap
            yield pkt
        if pos == end and not first:
            buf, pos = stream.block()
            end = len(buf)
            if not end:
                return
            continue
        # One block by the general rules (it may start a section or add an interface).
        c_iid = -1
        stream.give_back(buf, pos)
        buf = b""
        pos = end = 0
        if first:
            head = b"\x0a\x0d\x0d\x0a" + stream.read(4)
            first = False
        else:
            head = stream.read(8)
        if not head:
            return
        if len(head) < 8:
            stats.anomaly("truncated block", "pcapng block header cut at end of file")
            return
        btype_raw = head[:4]
        if btype_raw == b"\x0a\x0d\x0d\x0a":
            bom = stream.read(4)
            if len(bom) < 4:
                stats.anomaly("truncated block", "section header cut at end of file")
                return
            if struct.unpack("<I", bom)[0] == _BOM:
                endian = "<"
            elif struct.unpack(">I", bom)[0] == _BOM:
                endian = ">"
            else:
                stats.anomaly("bad section header", f"byte-order magic {bom.hex()}")
                return
            fixed, word = _STRUCTS[endian]
            (blen,) = struct.unpack(endian + "I", head[4:])
            if blen < 28 or blen % 4 or blen > MAX_RECORD:
                stats.anomaly("bad block length", f"section header block length {blen}")
                return
            body = stream.read(blen - 12)
            if len(body) < blen - 12:
                stats.anomaly("truncated block", "section header cut at end of file")
                return
            interfaces = []
            continue
        btype, blen = struct.unpack(endian + "II", head)
        if blen < 12 or blen % 4 or blen > MAX_RECORD:
            if not stream.resume(
                "bad block length",
                f"block type 0x{btype:x} length {blen} after frame {index}",
                "block",
                head[1:],
                partial(_pcapng_ok, endian=endian),
            ):
                return
            continue
        body = stream.read(blen - 8)
        if len(body) < blen - 8:
            stats.anomaly("truncated block", f"block after frame {index} cut at end of file")
            return
        (trailer,) = struct.unpack_from(endian + "I", body, len(body) - 4)
        if trailer != blen:
            if not stream.resume(
                "bad block length",
                f"block after frame {index}: trailing length {trailer} != {blen}",
                "block",
                (head + body)[1:],
                partial(_pcapng_ok, endian=endian),
            ):
                return
            continue
        body = body[:-4]
        if btype == _IDB:
            iface = _parse_idb(endian, body)
            if iface is None:
                stats.anomaly("bad interface block", f"after frame {index}")
                iface = _Interface(-1, 0, 1_000_000, 0)
            elif not iface.units:
                stats.anomaly(
                    "bad timestamp resolution",
                    f"interface {len(interfaces)}: if_tsresol too fine for a 64-bit "
                    "count; its packets are read with timestamp 0.0 (unknown)",
                )
            interfaces.append(iface)
        elif btype in (_EPB, _PB):
            index += 1
            parsed = _parse_epb(stats, endian, body, btype, interfaces, index)
            if parsed is not None:
                stats.packets += 1
                stats.bytes += len(parsed.data)
                yield parsed
        elif btype == _SPB:
            index += 1
            if not interfaces or len(body) < 4:
                stats.anomaly("bad packet block", f"frame {index}: simple packet block")
                continue
            iface = interfaces[0]
            (orig,) = struct.unpack_from(endian + "I", body)
            cap = min(orig, len(body) - 4)
            if iface.snaplen:
                cap = min(cap, iface.snaplen)
            data = bytes(body[4 : 4 + cap])
            stats.packets += 1
            stats.bytes += len(data)
            # A Simple Packet Block has no timestamp; 0.0 says "unknown" honestly.
            yield Packet(0.0, iface.linktype, data, max(orig, cap), index, 0)
        elif btype not in _KNOWN_BLOCKS:
            stats.anomaly(
                "unknown pcapng block", f"type 0x{btype:08x} after frame {index}, skipped"
            )


def _parse_idb(endian: str, body: bytes) -> _Interface | None:
    """The interface an IDB body describes, or None if the body is too short."""
    if len(body) < 8:
        return None
    linktype, _, snaplen = struct.unpack_from(endian + "HHI", body)
    units = 1_000_000
    offset = 0
    pos = 8
    while pos + 4 <= len(body):
        code, length = struct.unpack_from(endian + "HH", body, pos)
        pos += 4
        value = body[pos : pos + length]
        pos += (length + 3) & ~3
        if code == 0:
            break
        if code == 9 and length >= 1:
            # A pcapng timestamp is one 64-bit count of these units, so it has no
            # sub-second field that could be out of range; what can be is the unit
            # itself. 10^19 and 2^63 are the finest that a 64-bit count can hold a
            # second of; beyond them the resolution is damage (units 0, counted by
            # the caller). tshark (4.0) then reads the interface's packets with
            # timestamp 0, and so do we: there is no right time to give them.
            r = value[0]
            exp = r & 0x7F
            if r & 0x80:
                units = 1 << exp if exp <= 63 else 0
            else:
                units = 10**exp if exp <= 19 else 0
        elif code == 14 and length >= 8:
            (offset,) = struct.unpack_from(endian + "q", value)
    return _Interface(linktype, snaplen, units, offset)


def _parse_epb(
    stats: ReadStats,
    endian: str,
    body: bytes,
    btype: int,
    interfaces: list[_Interface],
    index: int,
) -> Packet | None:
    """The packet of an Enhanced (or obsolete) Packet Block body, or None if the block
    cannot be believed (counted)."""
    if len(body) < 20:
        stats.anomaly("bad packet block", f"frame {index}: block too short")
        return None
    if btype == _EPB:
        iid, hi, lo, cap, orig = struct.unpack_from(endian + "IIIII", body)
    else:
        iid, _, hi, lo, cap, orig = struct.unpack_from(endian + "HHIIII", body)
    if iid >= len(interfaces):
        stats.anomaly("bad packet block", f"frame {index}: undefined interface {iid}")
        return None
    if cap > len(body) - 20:
        stats.anomaly(
            "bad packet block",
            f"frame {index}: captured length {cap} exceeds the block",
        )
        return None
    iface = interfaces[iid]
    if iface.linktype < 0:
        stats.anomaly("bad packet block", f"frame {index}: damaged interface {iid}")
        return None
    ticks = (hi << 32) | lo
    if iface.units:
        sec, rem = divmod(ticks, iface.units)
        ts = sec + iface.offset + rem / iface.units
    else:
        ts = 0.0  # the interface's timestamp resolution is damaged (counted)
    data = bytes(body[20 : 20 + cap])
    return Packet(ts, iface.linktype, data, max(orig, cap), index, iid)
