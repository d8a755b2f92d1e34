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


def pcapng_records(stream: ByteStream) -> Iterator[Packet]:
    """The packets of a pcapng file whose first four bytes (the first Section Header
    Block's type) were already consumed by sniffing; damage is counted in
    ``stream.stats`` and ends or skips, never raises."""
    stats = stream.stats
    endian = "<"
    interfaces: list[_Interface] = []
    index = 0
    first = True
    while True:
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
            pkt = _parse_epb(stats, endian, body, btype, interfaces, index)
            if pkt is not None:
                stats.packets += 1
                stats.bytes += len(pkt.data)
                yield pkt
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
