"""Bytes of one direction waiting above a hole, sorted by stream offset.

A hostile or merely unlucky capture can leave a very large number of small pieces
waiting above a hole (a million one-byte segments sent out of order). A plain sorted
list makes every insertion and every delivery from its head cost time proportional to
its length, so such a capture takes quadratic time. :class:`Pending` keeps the pieces
in short sorted blocks instead (the layout of the ``sortedcontainers`` package, written
out here because it is the only part of it needed): finding, inserting and removing a
piece costs a bisection plus a move inside one block of at most ``2 * LOAD`` pieces.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator

#: Pieces per block before a block is split in two.
LOAD = 256


class Chunk:
    """A buffered, not yet deliverable piece ``[start, end)`` of the stream.

    ``data is None`` for bytes that the snap length cut off (known to exist, unknown).
    ``data`` becomes a ``bytearray`` once adjacent pieces are merged into it.
    ``timestamp`` and ``order`` are those of the packet that carried the first byte and
    the latest input position among the merged pieces (what the flow builder needs).
    """

    __slots__ = ("data", "end", "order", "start", "timestamp")

    def __init__(
        self, start: int, end: int, data: bytes | bytearray | None, timestamp: float, order: int
    ) -> None:
        self.start = start
        self.end = end
        self.data = data
        self.timestamp = timestamp
        self.order = order


def _start(c: Chunk) -> int:
    return c.start


class Pending:
    """Disjoint :class:`Chunk` objects sorted by ``start``."""

    __slots__ = ("_blocks", "_mins", "count")

    def __init__(self) -> None:
        self._blocks: list[list[Chunk]] = []
        #: ``_blocks[i][0].start`` for every block, to bisect over.
        self._mins: list[int] = []
        self.count = 0

    def __bool__(self) -> bool:
        return self.count > 0

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[Chunk]:
        for block in self._blocks:
            yield from block

    def first(self) -> Chunk:
        """The lowest piece (the structure must not be empty)."""
        return self._blocks[0][0]

    def last(self) -> Chunk:
        """The highest piece (the structure must not be empty)."""
        return self._blocks[-1][-1]

    def pop_first(self) -> Chunk:
        """Remove and return the lowest piece."""
        block = self._blocks[0]
        c = block.pop(0)
        if block:
            self._mins[0] = block[0].start
        else:
            del self._blocks[0]
            del self._mins[0]
        self.count -= 1
        return c

    def pop_last(self) -> Chunk:
        """Remove and return the highest piece."""
        block = self._blocks[-1]
        c = block.pop()
        if not block:
            del self._blocks[-1]
            del self._mins[-1]
        self.count -= 1
        return c

    def _locate(self, x: int) -> tuple[int, int]:
        """Block and index of the last piece starting at or before ``x`` (or of the
        first piece, when every piece starts after ``x``)."""
        bi = bisect_right(self._mins, x) - 1
        if bi < 0:
            return 0, 0
        i = bisect_right(self._blocks[bi], x, key=_start) - 1
        return bi, max(i, 0)

    def overlapping(self, start: int, end: int) -> list[Chunk]:
        """The pieces that share at least one offset with ``[start, end)``, in order."""
        out: list[Chunk] = []
        if not self.count:
            return out
        bi, i = self._locate(start)
        blocks = self._blocks
        while bi < len(blocks):
            block = blocks[bi]
            while i < len(block):
                c = block[i]
                if c.start >= end:
                    return out
                if c.end > start:
                    out.append(c)
                i += 1
            bi += 1
            i = 0
        return out

    def before(self, x: int) -> Chunk | None:
        """The piece that ends at or before ``x`` and is the last to do so, if it is
        also the last piece starting before ``x`` (the neighbour a piece at ``x`` may
        be merged with)."""
        if not self.count:
            return None
        bi, i = self._locate(x - 1)
        c = self._blocks[bi][i]
        return c if c.start < x and c.end <= x else None

    def starting_at(self, x: int) -> Chunk | None:
        """The piece that starts exactly at ``x``, if any."""
        if not self.count:
            return None
        bi, i = self._locate(x)
        c = self._blocks[bi][i]
        return c if c.start == x else None

    def add(self, c: Chunk) -> None:
        """Insert a piece that overlaps no other."""
        self.count += 1
        if not self._blocks:
            self._blocks.append([c])
            self._mins.append(c.start)
            return
        bi = max(bisect_right(self._mins, c.start) - 1, 0)
        block = self._blocks[bi]
        i = bisect_right(block, c.start, key=_start)
        block.insert(i, c)
        if i == 0:
            self._mins[bi] = c.start
        if len(block) > 2 * LOAD:
            half = block[LOAD:]
            del block[LOAD:]
            self._blocks.insert(bi + 1, half)
            self._mins.insert(bi + 1, half[0].start)

    def remove(self, c: Chunk) -> None:
        """Remove a piece that is in the structure."""
        bi, i = self._locate(c.start)
        block = self._blocks[bi]
        del block[i]
        self.count -= 1
        if not block:
            del self._blocks[bi]
            del self._mins[bi]
        elif i == 0:
            self._mins[bi] = block[0].start
