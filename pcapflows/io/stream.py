"""The byte stream under both format readers: reads that never raise, and pushback.

A capture is read from a file object that can fail at any moment (closed by its owner,
an I/O error, damaged gzip data). Both format loops need the same three things from it,
so they live here once instead of in each loop:

* reads of ``n`` bytes that return fewer only at the end of the data, and turn a
  failing read into the end of the data, counted once in the :class:`ReadStats`;
* bounded memory whatever a length field claims: the file is asked for at most
  :data:`READ_CHUNK` at a time, so a record claiming gigabytes costs only the bytes the
  file really has;
* resynchronisation after a damaged record or block header: a forward scan for the next
  position where a format-specific test finds a valid record, the bytes from there
  pushed back so the format loop simply reads on;
* blocks (:meth:`ByteStream.block`): the common case, a whole record inside what one
  read returned, is walked in place by the format loops, two Python-level reads per
  record being most of what reading cost; what they cannot finish they give back
  (:meth:`ByteStream.give_back`, no copy) and read with :meth:`ByteStream.read`.
  At most one block (:data:`BLOCK`) plus one record is held at a time.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Callable
from typing import BinaryIO

from pcapflows.stats import ReadStats

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
#: Bytes a resynchronization keeps ahead of the position it tests, so that a candidate
#: record and the header after it are usually in the window at once.
RESYNC_LOOKAHEAD = 64 * 1024

#: How much a format loop asks the file for at once. Records are walked inside a block
#: with ``struct.unpack_from`` (one read per block instead of two per record); a quarter
#: of a megabyte holds a few hundred records, so the cost per block vanishes, while the
#: memory held stays small and flows still come out early in a streamed read.
BLOCK = 256 * 1024

#: What a read of the caller's file can raise: a closed file (ValueError), I/O errors,
#: and damaged gzip data. Each ends the data, counted (see ``ByteStream._fail``).
_READ_ERRORS = (ValueError, OSError, EOFError, zlib.error)


def _block_reader(f: BinaryIO) -> tuple[Callable[[int], bytes], int]:
    """How to read one block of ``f``: the method and the size to ask for.

    A buffered file (a path we opened, standard input, a file the caller opened) is
    read with ``read1``, which returns what is there instead of waiting for a whole
    block: on a pipe fed by a live capture, packets come out as they arrive. A gzip
    reader is read 8 KiB at a time, the size its own buffer decompresses in, so damaged
    compressed data ends the read at the same packet as reading record by record did
    (a failing decompression loses the output of that one call). Any other file object
    is asked with plain ``read``, which is all its owner promised.
    """
    if isinstance(f, gzip.GzipFile):
        return f.read1, io.DEFAULT_BUFFER_SIZE
    if isinstance(f, (io.BufferedReader, io.BufferedRandom)):
        return f.read1, BLOCK
    return f.read, BLOCK


class ByteStream:
    """The capture's bytes after any decompression, as the format loops read them.

    ``f`` is what is read (the caller's file, or a gzip reader around it); ``raw`` is
    the caller's own file object, asked whether it was closed when a read fails, so the
    anomaly can say "closed by its owner" rather than a bare I/O error.
    """

    def __init__(self, f: BinaryIO, raw: BinaryIO, name: str, stats: ReadStats) -> None:
        self.f = f
        self.raw = raw
        self.name = name
        self.stats = stats
        #: Set once a read failed or the reader was closed: the data ends there.
        self.stopped = False
        #: Bytes read ahead and not yet consumed (from ``_back[_at]`` on): given back
        #: by a format loop (:meth:`give_back`) or left by a resynchronization.
        self._back = b""
        self._at = 0
        self._read_block, self._block_size = _block_reader(f)

    def read(self, n: int) -> bytes:
        """Up to ``n`` bytes (fewer only at the end); a failing read ends the data.

        Never asks the file for more than :data:`READ_CHUNK` at once, so memory follows
        the bytes the file really has, whatever a length field claimed.
        """
        back = self._back
        if back:
            at = self._at
            data = back[at : at + n]
            if len(data) == n:
                self._at = at + n
                return data
            self._back = b""
            self._at = 0
            return data + self.read(n - len(data))
        parts = []
        got = 0
        # Non-blocking reads and pipes can return short: keep reading until EOF.
        while got < n:
            more = self._chunk(min(n - got, READ_CHUNK))
            if not more:
                break
            parts.append(more)
            got += len(more)
        if not parts:
            return b""
        return parts[0] if len(parts) == 1 else b"".join(parts)

    # -- blocks, for the format loops' fast paths --------------------------------------

    def block(self) -> tuple[bytes, int]:
        """The next piece of the data as ``(buffer, start)``: what was given back or
        pushed back first, else one read of the file; ``(b"", 0)`` at the end.

        The format loops walk the records inside it with ``struct.unpack_from`` and
        hand whatever they cannot finish (a record cut by the block's end, anything
        unusual) back with :meth:`give_back`, to read it with :meth:`read` as before.
        """
        back = self._back
        if back:
            at = self._at
            self._back = b""
            self._at = 0
            if at < len(back):
                return back, at
        if self.stopped:
            return b"", 0
        try:
            data = self._read_block(self._block_size)
        except _READ_ERRORS as exc:
            self._fail(exc)
            return b"", 0
        if type(data) is not bytes:
            data = bytes(data or b"")  # a bytearray from a wrapper; None (no data)
        return data, 0

    def give_back(self, buf: bytes, at: int) -> None:
        """Make ``buf[at:]`` the next bytes read, without copying them."""
        if at < len(buf):
            if self._back:
                self._back = buf[at:] + self._back[self._at :]
                self._at = 0
            else:
                self._back = buf
                self._at = at

    def _chunk(self, n: int) -> bytes:
        """Up to ``n`` bytes from one block read; b"" at the end, or once reading has
        failed (see :meth:`block`).

        Taken from a whole block, the rest given back, never by a small read of the
        file: a small read of a buffered file leaves the rest of its 8 KiB buffer
        behind, and the next ``read1`` returns only that rest, so every block after a
        record cut by a block's end would shrink to a few kilobytes.
        """
        data, at = self.block()
        piece = data[at : at + n]
        self.give_back(data, at + len(piece))
        return piece

    def _fail(self, exc: BaseException) -> None:
        """A read failed: count it once and end the data."""
        self.stopped = True
        if isinstance(exc, ValueError):
            # io raises ValueError for a read on a closed file: the caller closed the
            # file object they gave us while we were reading it.
            if getattr(self.raw, "closed", False):
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

    # -- resynchronisation -----------------------------------------------------------

    def resume(
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
            more = self.read(READ_CHUNK)
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
                self._back = window[i:] + self._back[self._at :]
                self._at = 0
                return base + i
            if verdict < 0 and not eof:
                if grow():
                    continue
                eof = True
            i += 1
        return None
