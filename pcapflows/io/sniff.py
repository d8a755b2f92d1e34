"""Recognizing a capture by its first bytes, never by its file name.

A file name says nothing reliable (captures are renamed, piped, held in memory), the
magic number does: it also tells the byte order and, for classic pcap, the timestamp
resolution. What is accepted:

* pcap: ``a1b2c3d4`` (microseconds), ``a1b23c4d`` (nanoseconds), either byte order, and
  the "modified" ``a1b2cd34`` variant (8 extra bytes per record header);
* pcapng: the Section Header Block type ``0a0d0d0a`` (a palindrome, so byte order is
  learnt later from the section's byte-order magic);
* gzip around either, because that is how captures are commonly stored and the standard
  library reads it in a stream.

Everything else is refused with :class:`~pcapflows.errors.CaptureError`, and the message
says what the file looks like instead: other compressions (zstd, bzip2, xz, lz4, zip,
compress) and other capture formats (snoop, NetXRay, ERF) are named so the user knows to
decompress or convert, and text is quoted so a wrong file is obvious at a glance.
"""

from __future__ import annotations

import gzip
import struct
from typing import BinaryIO, cast

#: pcap magic -> (timestamp units per second, extra bytes per record header).
PCAP_MAGICS = {
    0xA1B2C3D4: (1_000_000, 0),
    0xA1B23C4D: (1_000_000_000, 0),
    0xA1B2CD34: (1_000_000, 8),
}

PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
GZIP_MAGIC = b"\x1f\x8b"

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

NOT_CAPTURE = "not a pcap or pcapng capture"


def pcap_magic(head: bytes) -> tuple[str, int, int] | None:
    """``(byte order, units per second, extra header bytes)`` if ``head`` (4 bytes) is
    a classic pcap magic in either byte order, else None."""
    for endian in ("<", ">"):
        (magic,) = struct.unpack(endian + "I", head)
        if magic in PCAP_MAGICS:
            units, extra = PCAP_MAGICS[magic]
            return endian, units, extra
    return None


def describe(head: bytes) -> str:
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


def gunzip(head: bytes, raw: BinaryIO) -> BinaryIO:
    """A decompressing reader over ``raw``, whose first bytes ``head`` were already
    consumed by sniffing (a pipe cannot be rewound, so they are handed back)."""
    return cast(BinaryIO, gzip.GzipFile(fileobj=cast(BinaryIO, _Prefixed(head, raw)), mode="rb"))


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
