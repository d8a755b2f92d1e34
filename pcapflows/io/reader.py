"""The capture reader: one object that turns any accepted source into packets.

Only the file header can make reading fail (:class:`~pcapflows.errors.CaptureError`,
raised when the :class:`CaptureReader` is made). After that, damage never raises: a
truncated last record, an absurd length or a broken pcapng block is counted in the
:class:`~pcapflows.stats.ReadStats` and reading stops or skips, having yielded every
record before it. Memory is bounded: the file is read a block at a time, never whole,
and no length field is trusted to size an allocation before it is checked against hard
caps.

This module only wires the pieces together, each in a module of its own (as pcapgo
keeps its ``Reader`` and ``NgReader`` apart):

* :mod:`~pcapflows.io.source`: paths, standard input, file objects, bytes in memory;
* :mod:`~pcapflows.io.sniff`: the format from the magic bytes, gzip, what is refused;
* :mod:`~pcapflows.io.stream`: reads that end the data instead of raising, pushback and
  resynchronisation after damage;
* :mod:`~pcapflows.io.pcap` and :mod:`~pcapflows.io.pcapng`: the two record loops.

A file object that stops working mid-read (closed by its owner, an I/O error) ends the
read like a truncated file: counted, never raised.
"""

from __future__ import annotations

import zlib
from collections.abc import Generator, Iterator
from typing import BinaryIO, cast

from pcapflows.closing import Closing
from pcapflows.errors import CaptureError
from pcapflows.io.packet import Packet
from pcapflows.io.pcap import open_pcap
from pcapflows.io.pcapng import pcapng_records
from pcapflows.io.sniff import GZIP_MAGIC, NOT_CAPTURE, PCAPNG_MAGIC, describe, gunzip, pcap_magic
from pcapflows.io.source import TEXT_MODE, Memory, Source, open_source
from pcapflows.io.stream import ByteStream
from pcapflows.stats import ReadStats

__all__ = ["CaptureReader", "Source"]


class CaptureReader(Closing):
    """Iterate over the packets of one capture, lazily.

    ``source`` is a path, a path-like object, a binary file object (read from its
    current position and not closed by us) or ``"-"`` for standard input. Streams that
    cannot seek (pipes) are fine: the reader never seeks.
    """

    def __init__(self, source: Source, stats: ReadStats) -> None:
        self.stats = stats
        self._owned: BinaryIO | Memory | None = None
        opened = open_source(source)
        raw = opened.raw
        self.name = opened.name
        self._owned = opened.owned
        self.compression: str | None = None
        self.format = ""
        try:
            head = raw.read(4)
        except UnicodeDecodeError as exc:
            # A text stream that is not an io.TextIOBase (codecs.StreamReader, ...).
            raise CaptureError(TEXT_MODE.format(name=self.name)) from exc
        except ValueError as exc:
            # What io raises for a file object that is already closed.
            raise CaptureError(f"{self.name}: cannot read: {exc}") from exc
        except OSError as exc:
            self.close()
            raise CaptureError(f"{self.name}: cannot read: {exc}") from exc
        if isinstance(head, str):
            raise CaptureError(TEXT_MODE.format(name=self.name))
        if not isinstance(head, bytes):
            # bytearray from some wrappers is fine; None (non-blocking, no data) is not.
            if head is None:
                raise CaptureError(f"{self.name}: no data (non-blocking file object?)")
            head = bytes(head)
        f = raw
        if head[:2] == GZIP_MAGIC:
            self.compression = "gzip"
            f = gunzip(head, raw)
            try:
                head = f.read(4)
            except (OSError, EOFError, zlib.error) as exc:
                self.close()
                raise CaptureError(f"{self.name}: damaged gzip data: {exc}") from exc
        self._stream = ByteStream(f, raw, self.name, stats)
        self._records: Iterator[Packet]
        try:
            self._records = self._open(head)
        except CaptureError as exc:
            self.close()
            if opened.in_memory and str(exc).endswith(NOT_CAPTURE) and "text" in str(exc):
                raise CaptureError(
                    f"{exc} (bytes are read as the capture itself; pass a str or Path "
                    "for a file name)"
                ) from None
            raise

    def _open(self, head: bytes) -> Iterator[Packet]:
        """The record loop for the format ``head`` (the first 4 bytes) announces."""
        if len(head) < 4:
            raise CaptureError(f"{self.name}: {describe(head)}, {NOT_CAPTURE}")
        pcap = pcap_magic(head)
        if pcap is not None:
            self.format, records = open_pcap(self._stream, *pcap)
            return records
        if head == PCAPNG_MAGIC:
            self.format = "pcapng"
            return pcapng_records(self._stream)
        more = self._stream.read(60)
        raise CaptureError(f"{self.name}: {describe(head + more)}, {NOT_CAPTURE}")

    # -- public ------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Packet]:
        return self._records

    def close(self) -> None:
        """Stop reading (iteration ends cleanly) and release the file if we opened it.

        File objects given to us stay open: they are the caller's.
        """
        if hasattr(self, "_stream"):
            self._stream.stopped = True
        if hasattr(self, "_records"):
            cast(Generator[Packet, None, None], self._records).close()
        if self._owned is not None:
            self._owned.close()
            self._owned = None
