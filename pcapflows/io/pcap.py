"""Classic pcap: one file header, then records of a 16-byte header and the frame.

The file header fixes everything for the whole file (byte order, timestamp resolution,
snap length, link type), so a record loop is a tight read-check-yield. What needs care
is damage, because a pcap record has no marker or checksum: a length field that cannot
be true (larger than any snap length allows) means the record boundary was lost, and
the only way on is to scan for a position where two plausible record headers follow
each other (:func:`_pcap_ok`). Real damage of this kind is a few stray or lost bytes in
an otherwise good capture, so everything after it is still worth reading.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from functools import partial

from pcapflows.errors import CaptureError
from pcapflows.io.packet import Packet
from pcapflows.io.stream import MAX_RECORD, MAX_RESYNC_SCAN, ByteStream


def open_pcap(
    stream: ByteStream, endian: str, units: int, extra: int
) -> tuple[str, Iterator[Packet]]:
    """Read the rest of the file header (its magic was sniffed) and return the format
    name and the records; a header cut short is a :class:`CaptureError`."""
    rest = stream.read(20)
    if len(rest) < 20:
        raise CaptureError(f"{stream.name}: truncated pcap file header")
    fmt = "pcap-nsec" if units == 1_000_000_000 else "pcap"
    _, _, _, _, snaplen, network = struct.unpack(endian + "HHiIII", rest)
    return fmt, pcap_records(stream, endian, units, extra, snaplen, network & 0xFFFF)


def _pcap_ok(w: bytes, i: int, hdr: struct.Struct, limit: int, units: int, last: int | None) -> int:
    """Whether a pcap record starts at ``w[i]``: a plausible header (fraction below one
    second, captured length within the limit and not above the original length, time
    within a day of the last good record) followed by another plausible header or by
    the end of the data. Two in a row make a false match unlikely."""
    pos = i
    for _ in range(2):
        if pos == len(w) and pos > i:
            return 1  # the candidate record ends exactly where the data ends
        if pos + hdr.size > len(w):
            return -1
        sec, frac, incl, orig = hdr.unpack_from(w, pos)
        if frac >= units or incl > limit or incl > orig or orig > MAX_RECORD:
            return 0
        if incl > MAX_RESYNC_SCAN:
            return 0  # not believed: checking it would mean holding that much
        if last is not None and abs(sec - last) > 86400:
            return 0
        pos += hdr.size + incl
    return 1


def pcap_records(
    stream: ByteStream, endian: str, units: int, extra: int, snaplen: int, linktype: int
) -> Iterator[Packet]:
    """The records after the file header, as :class:`Packet`; damage is counted in
    ``stream.stats`` and ends or skips, never raises.

    Records are walked inside a block of the file (:meth:`ByteStream.block`) with
    ``struct.unpack_from``, one slice per frame. Whatever is not a whole record of a
    believable length inside the block (a record cut by the block's end, an absurd
    length, the end of the data) is given back to the stream and read by the record
    by record path below it, so damage is judged by one piece of code only.
    """
    hdr = struct.Struct(endian + "IIII")
    unpack = hdr.unpack_from
    hlen = 16 + extra
    limit = min(max(snaplen, 262144), MAX_RECORD)
    # A record longer than the snap length is counted; a snap length of 0 promises
    # nothing, and no record that gets this far is longer than ``limit``.
    over = snaplen if snaplen > 0 else limit
    index = 0
    last: int | None = None  # seconds of the last good record, for resynchronizing
    stats = stream.stats
    new = object.__new__
    buf = b""
    pos = end = 0
    while True:
        # Every whole record of a believable length inside the block.
        while pos + hlen <= end:
            sec, frac, incl, orig = unpack(buf, pos)
            nxt = pos + hlen + incl
            if nxt > end or incl > limit:
                break
            data = buf[pos + hlen : nxt]
            pos = nxt
            if sec != last and (last is None or -86400 <= sec - last <= 86400):
                # Only plausible times move the reference a resynchronization uses,
                # so that a garbage record read by mistake cannot mislead it.
                last = sec
            index += 1
            if incl > over:
                # The writer broke its own promise; the bytes are there, so they are used.
                stats.anomaly(
                    "record longer than snap length",
                    f"frame {index} has {incl} bytes, the file's snap length is {snaplen}",
                )
            if frac < units:
                ts = sec + frac / units
            else:
                # The fraction field must be below one second. tshark (4.0) keeps such a
                # record: it dissects it, flags "Fractional second N is invalid" as
                # expert info and its Follow TCP Stream includes the payload; so the
                # record is used here too. Only its seconds are believed: added as is,
                # the bad fraction could move the packet up to 71 minutes (2^32
                # microseconds), enough to reorder it or to trip a timer.
                stats.anomaly(
                    "timestamp fraction out of range",
                    f"frame {index}: sub-second field {frac} >= {units}, seconds kept",
                )
                ts = float(sec)
            stats.packets += 1
            stats.bytes += incl
            # Built without calling __init__ (a Python-level call per packet, the
            # largest single cost of this loop); every field is set here.
            pkt = new(Packet)
            pkt.timestamp = ts
            pkt.linktype = linktype
            pkt.data = data
            pkt.orig_len = orig if orig > incl else incl
            pkt.index = index
            pkt.interface = 0
            yield pkt
        if pos == end:
            buf, pos = stream.block()
            end = len(buf)
            if not end:
                return
            continue
        # What is left is a record cut by the block's end, or damage: read it record
        # by record, and hand a whole record back to the loop above as a block.
        stream.give_back(buf, pos)
        rec = stream.read(hlen)
        if len(rec) < hlen:
            stats.anomaly(
                "truncated record", f"record header of frame {index + 1} cut at end of file"
            )
            return
        sec, frac, incl, orig = unpack(rec)
        if incl > limit:
            buf = b""
            pos = end = 0
            if not stream.resume(
                "absurd record length",
                f"record header after frame {index} claims {incl} bytes (snaplen {snaplen})",
                "record",
                rec[1:],
                partial(_pcap_ok, hdr=hdr, limit=limit, units=units, last=last),
            ):
                return
            continue
        data = stream.read(incl)
        if len(data) < incl:
            stats.anomaly(
                "truncated record",
                f"frame {index + 1} has {len(data)} of {incl} bytes at end of file",
            )
            return
        buf = rec + data
        pos = 0
        end = len(buf)
