"""One direction of a TCP flow as the HTTP parser sees it: the bytes it sent, by stream
offset, in runs of contiguous bytes separated by the gaps the reassembler reported.

A ``TCPFlow`` gives messages (a side's run of contiguous bytes, with the capture time
of the packet that carried its first byte) and ``metadata["pcapflows"]["gaps"]``
(offset and length of every hole). Laying the messages of one side end to end and
stepping over each gap at its offset gives every byte its stream offset; consecutive
messages of a side with no gap between them form one run (the other side spoke in
between), so a request split over several messages is still read as one.

The messages are not joined: each stays a *piece* of its run, and the parser reads
heads inside a piece, joining a small window of the next pieces only when a head or
a line goes on past a piece's end. A body is sliced out of the pieces once, into the
bytes the HTTP flow keeps (or is the TCP message's own bytes object when it is all
of one): bodies are never copied twice.
"""

from __future__ import annotations

import bisect
from typing import Any

from pcapflows.model.tcp import TCPFlow


class Run:
    """Contiguous bytes of one side from ``offset`` to ``end``: the pieces ``first``
    to ``stop - 1`` of its side (``datas``, the side's list of pieces; a run holds no
    reference to its side, so that the two make no cycle to wait for the collector)."""

    __slots__ = ("datas", "end", "first", "offset", "stop")

    def __init__(self, datas: list[bytes], offset: int, first: int) -> None:
        self.datas = datas
        self.offset = offset
        self.end = offset
        self.first = first
        self.stop = first

    @property
    def data(self) -> bytes:
        """The run's bytes, joined (a copy: the parser itself reads the pieces)."""
        return b"".join(self.datas[self.first : self.stop])


class Side:
    """The bytes one side sent, by stream offset (see the module docstring)."""

    def __init__(self, from_client: bool) -> None:
        self.from_client = from_client
        self.runs: list[Run] = []
        self._run_offsets: list[int] = []
        #: The pieces (the side's non-empty TCP messages), in stream order: where each
        #: starts, its bytes, its capture time, its position in ``flow.messages`` and
        #: the end of the run it belongs to.
        self.offsets: list[int] = []
        self.datas: list[bytes] = []
        self.stamps: list[float] = []
        self.indexes: list[int] = []
        self.run_ends: list[int] = []
        #: Gaps as the reassembler reported them: (offset, length, capture time).
        self.gaps: list[tuple[int, int, float]] = []

    @property
    def end(self) -> int:
        """The offset after the last byte captured (0 for a side that sent nothing)."""
        return self.runs[-1].end if self.runs else 0

    def _add(self, offset: int, data: bytes, stamp: float, index: int, new_run: bool) -> None:
        if new_run or not self.runs:
            self.runs.append(Run(self.datas, offset, len(self.datas)))
        run = self.runs[-1]
        self.offsets.append(offset)
        self.datas.append(data)
        self.stamps.append(stamp)
        self.indexes.append(index)
        run.end = offset + len(data)
        run.stop = len(self.datas)

    def _finish(self) -> None:
        self._run_offsets = [r.offset for r in self.runs]
        self.run_ends = [r.end for r in self.runs for _ in range(r.first, r.stop)]

    def next_run(self, offset: int) -> Run | None:
        """The first run starting after ``offset``."""
        i = bisect.bisect_right(self._run_offsets, offset)
        return self.runs[i] if i < len(self.runs) else None

    def gap_at(self, offset: int) -> tuple[int, int, float] | None:
        """The reported gap that covers ``offset`` (or starts there), if any."""
        for g in self.gaps:
            if g[0] <= offset < g[0] + g[1]:
                return g
        return None

    def piece_at(self, offset: int) -> int:
        """Index of the piece holding the byte at ``offset``; -1 if none does."""
        i = bisect.bisect_right(self.offsets, offset) - 1
        if i >= 0 and offset < self.offsets[i] + len(self.datas[i]):
            return i
        return -1

    def joined(self, offset: int, size: int) -> bytes:
        """Up to ``size`` contiguous bytes from ``offset`` (fewer where its run ends):
        a copy, for a head or a line that goes on past its piece."""
        i = self.piece_at(offset)
        if i < 0:
            return b""
        stop = min(offset + size, self.run_ends[i])
        parts: list[memoryview] = []
        while offset < stop:
            data, base = self.datas[i], self.offsets[i]
            end = min(stop, base + len(data))
            parts.append(memoryview(data)[offset - base : end - base])
            offset = end
            i += 1
        return b"".join(parts)

    def prefix(self, run: Run, size: int) -> bytes:
        """Bytes from the start of ``run``, at least ``size`` of them where the run has
        them: its first piece itself when that is enough (no copy), else joined."""
        data = self.datas[run.first]
        if len(data) >= size or run.stop == run.first + 1:
            return data
        return self.joined(run.offset, size)

    def timestamp_at(self, offset: int) -> float | None:
        """Capture time of the TCP message holding the byte at ``offset``: the time of
        the packet that carried that message's first byte (the finest time a TCPFlow
        keeps)."""
        i = self.piece_at(offset)
        return self.stamps[i] if i >= 0 else None

    def index_at(self, offset: int) -> int:
        """Position in ``flow.messages`` of the TCP message holding ``offset``."""
        i = self.piece_at(offset)
        return self.indexes[i] if i >= 0 else -1


def sides(flow: TCPFlow) -> tuple[Side, Side]:
    """The client's and the server's :class:`Side` of ``flow``."""
    meta: dict[str, Any] = flow.metadata.get("pcapflows", {})
    result = (Side(True), Side(False))
    pending: dict[bool, list[tuple[int, int, float]]] = {True: [], False: []}
    for g in meta.get("gaps", ()):
        try:
            entry = (int(g["offset"]), int(g["length"]), float(g["timestamp"]))
            pending[bool(g["from_client"])].append(entry)
        except (KeyError, TypeError, ValueError):
            continue
    for side in result:
        side.gaps = sorted(pending[side.from_client])
    cursors = {True: 0, False: 0}
    gap_pos = {True: 0, False: 0}
    after_gap = {True: False, False: False}
    for index, message in enumerate(flow.messages):
        fc = message.from_client
        side = result[0] if fc else result[1]
        cur = cursors[fc]
        gaps = side.gaps
        while gap_pos[fc] < len(gaps) and gaps[gap_pos[fc]][0] <= cur:
            g = gaps[gap_pos[fc]]
            if g[0] == cur and g[1] > 0:
                cur += g[1]
                after_gap[fc] = True
            gap_pos[fc] += 1
        content = message.content
        if content:
            side._add(cur, content, message.timestamp, index, after_gap[fc])
            after_gap[fc] = False
            cur += len(content)
        cursors[fc] = cur
    for side in result:
        side._finish()
    return result
