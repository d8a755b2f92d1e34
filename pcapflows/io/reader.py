"""Streaming readers for classic pcap and pcapng, plain or gzip-compressed.

Only the file header can make reading fail (:class:`~pcapflows.errors.CaptureError`,
raised when the :class:`CaptureReader` is made). After that, damage never raises: a
truncated last record, an absurd length or a broken pcapng block is counted in the
:class:`~pcapflows.stats.ReadStats` and reading stops or skips, having yielded every
record before it. Memory is bounded by one record: the file is never read whole, and no
length field is trusted to size an allocation before it is checked against hard caps.

Formats are recognized by their magic bytes, never by the file name:

* pcap: ``a1b2c3d4`` (microseconds), ``a1b23c4d`` (nanoseconds), either byte order, and
  the "modified" ``a1b2cd34`` variant (8 extra bytes per record header).
* pcapng: every section (each may change byte order) and interface, with each
  interface's link type, ``if_tsresol`` and ``if_tsoffset``; Enhanced, Simple and the
  obsolete Packet Blocks. Other block types are skipped.
* gzip around either.

The source is a path, a binary file object or a capture already in memory (``bytes``,
``bytearray``, ``memoryview``). A file object that stops working mid-read (closed by its
owner, an I/O error) ends the read like a truncated file: counted, never raised.
"""

from __future__ import annotations

import gzip
import io
import os
import struct
import sys
import zlib
from collections.abc import Callable, Generator, Iterator
from functools import partial
from types import TracebackType
from typing import BinaryIO, TypeAlias, cast

from pcapflows.errors import CaptureError
from pcapflows.io.packet import Packet
from pcapflows.stats import ReadStats

#: What a capture can be read from: a path (``"-"`` is standard input), a binary file
#: object, or the capture's bytes themselves. ``bytes`` are content, never a file name.
Source: TypeAlias = str | os.PathLike[str] | BinaryIO | bytes | bytearray | memoryview

#: No record or block larger than this is believed, whatever its header says: it is
#: far above any real frame (256 KiB is tcpdump's largest snap length; jumbo and
#: TSO-coalesced frames stay well below 1 MiB) and small enough to allocate safely.
MAX_RECORD = 64 * 1024 * 1024
#: Reads are made in pieces of at most this size, so that a length field claiming more
#: than the file holds costs no more memory than the bytes really there: a buffered
#: file object allocates the whole size it is asked for before reading.
READ_CHUNK = 1024 * 1024
#: How far past a damaged record or block the reader looks for the next valid one
#: before giving up on the rest of the file. Real damage is a few stray or lost bytes
#: (the corpus has 3); the scan tests every offset in Python (about 2 us a byte on the
#: machine this was measured on), so 2 MiB bounds a hopeless file to a few seconds.
MAX_RESYNC_SCAN = 2 * 1024 * 1024
#: Block types a resynchronization may land on (they are what a capture is made of).
_RESYNC_BLOCKS = frozenset((0x1, 0x2, 0x3, 0x4, 0x5, 0x6))
#: pcapng block types that carry no packet and are skipped silently: name resolution,
#: interface statistics, IRIG timestamp, ARINC 429, systemd journal export, decryption
#: secrets, Sysdig event blocks, and the custom blocks (copyable and not). Any other
#: type is skipped too, but counted as an anomaly, since it may hide packets.
_KNOWN_BLOCKS = frozenset(
    (0x4, 0x5, 0x7, 0x8, 0x9, 0xA, 0x0BAD, 0x40000BAD, *range(0x80000001, 0x80000010))
)

_PCAP_MAGICS = {
    0xA1B2C3D4: (1_000_000, 0),
    0xA1B23C4D: (1_000_000_000, 0),
    0xA1B2CD34: (1_000_000, 8),
}

_KNOWN_UNSUPPORTED = [
    (b"\x28\xb5\x2f\xfd", "a zstd-compressed file"),
    (b"BZh", "a bzip2-compressed file"),
    (b"\xfd7zXZ\x00", "an xz-compressed file"),
    (b"\x04\x22\x4d\x18", "an lz4-compressed file"),
    (b"snoop\x00\x00\x00", "a Solaris snoop capture (not supported)"),
    (b"PK\x03\x04", "a zip archive"),
    (b"\x1f\x9d", "a compress(1) .Z file"),
    (b"XCP\x00", "a NetXRay/Sniffer capture (not supported)"),
    (b"\x00\x00\x01\x00\x00\x00", "an Endace ERF or unknown binary file"),
]

_SHB = 0x0A0D0D0A
_IDB = 0x00000001
_PB = 0x00000002
_SPB = 0x00000003
_EPB = 0x00000006
_BOM = 0x1A2B3C4D


_TEXT_MODE = "{name}: opened in text mode; pcapflows needs a binary file object (open it with 'rb')"
_NOT_CAPTURE = "not a pcap or pcapng capture"


def _describe(head: bytes) -> str:
    """What a file that is not a capture looks like, for the error message."""
    if not head:
        return "an empty file"
    for magic, what in _KNOWN_UNSUPPORTED:
        if head.startswith(magic):
            return what
    sample = head[:64]
    if all(32 <= b < 127 or b in (9, 10, 13) for b in sample):
        text = sample.decode("ascii", "replace").strip().splitlines()
        first = text[0][:40] if text else ""
        return f"text, not a capture (starts with {first!r})"
    return f"an unknown format (first bytes: {head[:8].hex(' ')})"


#: Bytes a resynchronization keeps ahead of the position it tests, so that a candidate
#: record and the header after it are usually in the window at once.
RESYNC_LOOKAHEAD = 64 * 1024


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
    __slots__ = ("linktype", "offset", "snaplen", "units")

    def __init__(self, linktype: int, snaplen: int, units: int, offset: int) -> None:
        self.linktype = linktype
        self.snaplen = snaplen
        self.units = units
        self.offset = offset


#: What a read of the caller's file can raise: a closed file (ValueError), I/O errors,
#: and damaged gzip data. Each ends the data, counted (see ``CaptureReader._fail``).
_READ_ERRORS = (ValueError, OSError, EOFError, zlib.error)


class CaptureReader:
    """Iterate over the packets of one capture, lazily.

    ``source`` is a path, a path-like object, a binary file object (read from its
    current position and not closed by us) or ``"-"`` for standard input. Streams that
    cannot seek (pipes) are fine: the reader never seeks.
    """

    def __init__(self, source: Source, stats: ReadStats) -> None:
        self.stats = stats
        self._owned: BinaryIO | _Memory | None = None
        #: Set once a read failed or the reader was closed: the data ends there.
        self._stopped = False
        in_memory = isinstance(source, (bytes, bytearray, memoryview))
        raw: BinaryIO
        if isinstance(source, (bytes, bytearray, memoryview)):
            mem = _Memory(source)
            raw = cast(BinaryIO, mem)
            self._owned = mem
            self.name = f"<capture in memory, {len(mem)} bytes>"
        elif isinstance(source, (str, os.PathLike)) and os.fspath(source) == "-":
            self.name = "<stdin>"
            stdin = getattr(sys.stdin, "buffer", None)
            if stdin is None:  # ``<&-`` in a shell leaves sys.stdin None
                raise CaptureError(f"{self.name}: standard input is closed or not binary")
            raw = stdin
        elif isinstance(source, (str, os.PathLike)):
            self.name = os.fspath(source)
            try:
                raw = open(self.name, "rb")
            except OSError as exc:
                raise CaptureError(f"{self.name}: cannot open: {exc.strerror or exc}") from exc
            self._owned = raw
        else:
            if not callable(getattr(source, "read", None)):
                raise TypeError(
                    "source must be a path, a binary file object or bytes, "
                    f"not {type(source).__name__}"
                )
            raw = source
            self.name = str(getattr(source, "name", None) or repr(source))
            if isinstance(source, io.TextIOBase):
                raise CaptureError(_TEXT_MODE.format(name=self.name))
        self.compression: str | None = None
        self.format = ""
        try:
            head = raw.read(4)
        except UnicodeDecodeError as exc:
            # A text stream that is not an io.TextIOBase (codecs.StreamReader, ...).
            raise CaptureError(_TEXT_MODE.format(name=self.name)) from exc
        except ValueError as exc:
            # What io raises for a file object that is already closed.
            raise CaptureError(f"{self.name}: cannot read: {exc}") from exc
        except OSError as exc:
            self.close()
            raise CaptureError(f"{self.name}: cannot read: {exc}") from exc
        if isinstance(head, str):
            raise CaptureError(_TEXT_MODE.format(name=self.name))
        if not isinstance(head, bytes):
            # bytearray from some wrappers is fine; None (non-blocking, no data) is not.
            if head is None:
                raise CaptureError(f"{self.name}: no data (non-blocking file object?)")
            head = bytes(head)
        self._f: BinaryIO = raw
        self._raw = raw
        self._pre = head
        #: Bytes read ahead by a resynchronization and not yet consumed.
        self._back = b""
        if head[:2] == b"\x1f\x8b":
            self.compression = "gzip"
            self._f = cast(
                BinaryIO, gzip.GzipFile(fileobj=cast(BinaryIO, _Prefixed(head, raw)), mode="rb")
            )
            try:
                head = self._f.read(4)
            except (OSError, EOFError, zlib.error) as exc:
                self.close()
                raise CaptureError(f"{self.name}: damaged gzip data: {exc}") from exc
            self._pre = head
        self._records: Iterator[Packet]
        try:
            self._records = self._open(head)
        except CaptureError as exc:
            self.close()
            if in_memory and str(exc).endswith(_NOT_CAPTURE) and "text" in str(exc):
                raise CaptureError(
                    f"{exc} (bytes are read as the capture itself; pass a str or Path "
                    "for a file name)"
                ) from None
            raise

    # -- public ------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Packet]:
        return self._records

    def close(self) -> None:
        """Stop reading (iteration ends cleanly) and release the file if we opened it.

        File objects given to us stay open: they are the caller's.
        """
        self._stopped = True
        if hasattr(self, "_records"):
            cast(Generator[Packet, None, None], self._records).close()
        if self._owned is not None:
            self._owned.close()
            self._owned = None

    def __enter__(self) -> CaptureReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- reading -----------------------------------------------------------------------

    def _read(self, n: int) -> bytes:
        """Up to ``n`` bytes (fewer only at the end); a failing read ends the data.

        Never asks the file for more than :data:`READ_CHUNK` at once, so memory follows
        the bytes the file really has, whatever a length field claimed.
        """
        if self._back:
            data, self._back = self._back[:n], self._back[n:]
            if len(data) == n:
                return data
            return data + self._read(n - len(data))
        parts = []
        got = 0
        if n <= READ_CHUNK and not self._stopped:
            # The common case, one read (a record header or a record's data).
            try:
                data = self._f.read(n)
            except _READ_ERRORS as exc:
                self._fail(exc)
                return b""
            if len(data) == n or not data:
                return data
            parts.append(data)
            got = len(data)
        # Non-blocking reads and pipes can return short: keep reading until EOF.
        while got < n:
            more = self._chunk(min(n - got, READ_CHUNK))
            if not more:
                break
            parts.append(more)
            got += len(more)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _chunk(self, n: int) -> bytes:
        """One read from the file; b"" at its end, or once reading has failed.

        A failure is counted once and ends the data, so the caller handles it exactly
        like a file cut short: every record before it has been yielded, and the flows
        then open are still finished and returned.
        """
        if self._stopped:
            return b""
        try:
            return self._f.read(n)
        except _READ_ERRORS as exc:
            self._fail(exc)
        return b""

    def _fail(self, exc: BaseException) -> None:
        """A read failed: count it once and end the data."""
        self._stopped = True
        if isinstance(exc, ValueError):
            # io raises ValueError for a read on a closed file: the caller closed the
            # file object they gave us while we were reading it.
            if getattr(self._raw, "closed", False):
                self.stats.anomaly(
                    "input closed during read",
                    f"{self.name}: the file object was closed by its owner; reading stopped",
                )
            else:
                self.stats.anomaly("read error", f"{self.name}: {exc}")
        elif isinstance(exc, (EOFError, zlib.error, gzip.BadGzipFile)):
            self.stats.anomaly("truncated compressed data", f"{self.name}: {exc}")
        else:
            self.stats.anomaly("read error", f"{self.name}: {exc}")

    def _open(self, head: bytes) -> Iterator[Packet]:
        if len(head) < 4:
            raise CaptureError(f"{self.name}: {_describe(head)}, {_NOT_CAPTURE}")
        for endian in ("<", ">"):
            (magic,) = struct.unpack(endian + "I", head)
            if magic in _PCAP_MAGICS:
                rest = self._read(20)
                if len(rest) < 20:
                    raise CaptureError(f"{self.name}: truncated pcap file header")
                units, extra = _PCAP_MAGICS[magic]
                self.format = "pcap-nsec" if units == 1_000_000_000 else "pcap"
                _, _, _, _, snaplen, network = struct.unpack(endian + "HHiIII", rest)
                return self._pcap(endian, units, extra, snaplen, network & 0xFFFF)
        if head == b"\x0a\x0d\x0d\x0a":
            self.format = "pcapng"
            return self._pcapng()
        more = self._read(60)
        raise CaptureError(f"{self.name}: {_describe(head + more)}, {_NOT_CAPTURE}")

    def _pcap(
        self, endian: str, units: int, extra: int, snaplen: int, linktype: int
    ) -> Iterator[Packet]:
        hdr = struct.Struct(endian + "IIII")
        hlen = 16 + extra
        limit = min(max(snaplen, 262144), MAX_RECORD)
        index = 0
        last: int | None = None  # seconds of the last good record, for resynchronizing
        stats = self.stats
        while True:
            rec = self._read(hlen)
            if not rec:
                return
            if len(rec) < hlen:
                stats.anomaly(
                    "truncated record", f"record header of frame {index + 1} cut at end of file"
                )
                return
            sec, frac, incl, orig = hdr.unpack_from(rec)
            if incl > limit:
                if not self._resume(
                    "absurd record length",
                    f"record header after frame {index} claims {incl} bytes (snaplen {snaplen})",
                    "record",
                    rec[1:],
                    partial(_pcap_ok, hdr=hdr, limit=limit, units=units, last=last),
                ):
                    return
                continue
            if last is None or abs(sec - last) <= 86400:
                # Only plausible times move the reference a resynchronization uses,
                # so that a garbage record read by mistake cannot mislead it.
                last = sec
            data = self._read(incl)
            index += 1
            if len(data) < incl:
                stats.anomaly(
                    "truncated record",
                    f"frame {index} has {len(data)} of {incl} bytes at end of file",
                )
                return
            if incl > snaplen > 0:
                # The writer broke its own promise; the bytes are there, so they are used.
                stats.anomaly(
                    "record longer than snap length",
                    f"frame {index} has {incl} bytes, the file's snap length is {snaplen}",
                )
            ts = sec + frac / units
            if frac >= units:
                # The fraction field must be below one second. tshark (4.0) keeps such a
                # record: it dissects it, flags "Fractional second N is invalid" as expert
                # info and its Follow TCP Stream includes the payload; so the record is
                # used here too. Only its seconds are believed: added as is, the bad
                # fraction could move the packet up to 71 minutes (2^32 microseconds),
                # enough to reorder it or to trip a timer.
                stats.anomaly(
                    "timestamp fraction out of range",
                    f"frame {index}: sub-second field {frac} >= {units}, seconds kept",
                )
                ts = float(sec)
            stats.packets += 1
            stats.bytes += incl
            yield Packet(ts, linktype, data, max(orig, incl), index)

    def _pcapng(self) -> Iterator[Packet]:
        stats = self.stats
        endian = "<"
        interfaces: list[_Interface] = []
        index = 0
        first = True
        while True:
            if first:
                head = b"\x0a\x0d\x0d\x0a" + self._read(4)
                first = False
            else:
                head = self._read(8)
            if not head:
                return
            if len(head) < 8:
                stats.anomaly("truncated block", "pcapng block header cut at end of file")
                return
            btype_raw = head[:4]
            if btype_raw == b"\x0a\x0d\x0d\x0a":
                bom = self._read(4)
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
                body = self._read(blen - 12)
                if len(body) < blen - 12:
                    stats.anomaly("truncated block", "section header cut at end of file")
                    return
                interfaces = []
                continue
            btype, blen = struct.unpack(endian + "II", head)
            if blen < 12 or blen % 4 or blen > MAX_RECORD:
                if not self._resume(
                    "bad block length",
                    f"block type 0x{btype:x} length {blen} after frame {index}",
                    "block",
                    head[1:],
                    partial(_pcapng_ok, endian=endian),
                ):
                    return
                continue
            body = self._read(blen - 8)
            if len(body) < blen - 8:
                stats.anomaly("truncated block", f"block after frame {index} cut at end of file")
                return
            (trailer,) = struct.unpack_from(endian + "I", body, len(body) - 4)
            if trailer != blen:
                if not self._resume(
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
                iface = self._parse_idb(endian, body)
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
                pkt = self._parse_epb(endian, body, btype, interfaces, index)
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

    def _resume(
        self, kind: str, what: str, unit: str, window: bytes, ok: Callable[[bytes, int], int]
    ) -> bool:
        """After a record or block whose header is impossible: find the next valid
        ``unit`` (``window`` is what was read of the damage, less its first byte) and
        report the damage as ``kind``; False if reading must stop."""
        skipped = self._resync(window, ok)
        if skipped is None:
            self.stats.anomaly(kind, f"{what}; no valid {unit} found after it, reading stopped")
            return False
        self.stats.anomaly(kind, f"{what}; skipped {skipped + 1} bytes to the next valid {unit}")
        return True

    def _resync(self, window: bytes, ok: Callable[[bytes, int], int]) -> int | None:
        """Scan forward from ``window`` (bytes already read past the damage start) for a
        position where ``ok`` finds a valid record; push the bytes from there back for
        the reader and return how many were skipped, or None if none is found within
        :data:`MAX_RESYNC_SCAN` bytes.

        ``ok(window, i)`` returns 1 if a record valid beyond doubt starts at ``i``, 0 if
        not, and -1 if ``window`` is too short to tell (more is then read). Memory stays
        bounded: the window never holds much more than one record's worth plus a chunk.
        """
        base = 0  # bytes of the damage dropped from the front of ``window``
        i = 0
        eof = False

        def grow() -> bool:
            """Read another chunk onto the window, dropping what was already tested."""
            nonlocal window, base, i
            more = self._read(READ_CHUNK)
            if not more:
                return False
            base += i
            window = window[i:] + more
            i = 0
            return True

        while base + i < MAX_RESYNC_SCAN:
            if not eof and len(window) - i < RESYNC_LOOKAHEAD:
                eof = not grow()
            if i >= len(window):
                return None
            verdict = ok(window, i)
            if verdict == 1:
                self._back = window[i:] + self._back
                return base + i
            if verdict < 0 and not eof:
                if grow():
                    continue
                eof = True
            i += 1
        return None

    @staticmethod
    def _parse_idb(endian: str, body: bytes) -> _Interface | None:
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
        self, endian: str, body: bytes, btype: int, interfaces: list[_Interface], index: int
    ) -> Packet | None:
        stats = self.stats
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


class _Memory:
    """A read-only file over a capture already in memory, without copying it.

    Reads return ``bytes`` slices of a view of the caller's buffer; :meth:`close`
    releases the view (so a ``bytearray`` can be resized again).
    """

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        if not view.c_contiguous:
            view = memoryview(view.tobytes())
        self._view: memoryview | None = view.cast("B")
        self._pos = 0

    def __len__(self) -> int:
        return 0 if self._view is None else self._view.nbytes

    def read(self, n: int = -1) -> bytes:
        if self._view is None:
            raise ValueError("read of closed file")
        end = len(self._view) if n < 0 else min(self._pos + n, len(self._view))
        out = self._view[self._pos : end].tobytes()
        self._pos = max(self._pos, end)
        return out

    @property
    def closed(self) -> bool:
        return self._view is None

    def close(self) -> None:
        if self._view is not None:
            self._view.release()
            self._view = None


class _Prefixed:
    """A read-only stream that first returns already-consumed bytes, then the rest.

    Lets us sniff the magic of a non-seekable stream (stdin) and still hand the whole
    stream to gzip.
    """

    def __init__(self, prefix: bytes, raw: BinaryIO) -> None:
        self._prefix = prefix
        self._raw = raw

    def read(self, n: int = -1) -> bytes:
        if self._prefix:
            if n < 0:
                out = self._prefix + self._raw.read()
                self._prefix = b""
                return out
            out = self._prefix[:n]
            self._prefix = self._prefix[n:]
            if len(out) < n:
                out += self._raw.read(n - len(out))
            return out
        return self._raw.read(n)

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        pass

    @property
    def closed(self) -> bool:
        return False
