"""One direction of a TCP flow as the HTTP parser sees it: runs of contiguous bytes
at known stream offsets, separated by the gaps the reassembler reported.

A ``TCPFlow`` gives messages (a side's run of contiguous bytes, with the capture time
of the packet that carried its first byte) and ``metadata["pcapflows"]["gaps"]``
(offset and length of every hole). Laying the messages of one side end to end and
stepping over each gap at its offset gives every byte its stream offset; consecutive
messages of a side with no gap between them are one run (the other side spoke in
between), so a request split over several messages is parsed as one piece of bytes.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

from pcapflows.model.tcp import TCPFlow


@dataclass
class Run:
    """Contiguous bytes of one side from ``offset`` on.

    ``starts``/``stamps``/``indexes``: for each TCP message that makes up the run, where
    it starts in ``data``, its capture time and its position in ``flow.messages``.
    """

    offset: int
    parts: list[bytes] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)
    stamps: list[float] = field(default_factory=list)
    indexes: list[int] = field(default_factory=list)
    data: bytes = b""
    length: int = 0

    @property
    def end(self) -> int:
        return self.offset + self.length


class Side:
    """The bytes one side sent, by stream offset (see the module docstring)."""

    def __init__(self, from_client: bool) -> None:
        self.from_client = from_client
        self.runs: list[Run] = []
        self._run_offsets: list[int] = []
        #: Gaps as the reassembler reported them: (offset, length, capture time).
        self.gaps: list[tuple[int, int, float]] = []
        #: Stream offset of each of the side's TCP messages, by index in the flow.
        self.message_offsets: dict[int, int] = {}

    @property
    def end(self) -> int:
        """The offset after the last byte captured (0 for a side that sent nothing)."""
        return self.runs[-1].end if self.runs else 0

    def finish(self) -> None:
        for run in self.runs:
            run.data = b"".join(run.parts) if len(run.parts) != 1 else run.parts[0]
            run.parts = []
        self._run_offsets = [r.offset for r in self.runs]

    def run_at(self, offset: int) -> Run | None:
        """The run holding the byte at ``offset`` (None: a gap, or past the end)."""
        i = bisect.bisect_right(self._run_offsets, offset) - 1
        if i >= 0 and offset < self.runs[i].end:
            return self.runs[i]
        return None

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

    def timestamp_at(self, offset: int) -> float | None:
        """Capture time of the TCP message holding the byte at ``offset``: the time of
        the packet that carried that message's first byte (the finest time a TCPFlow
        keeps)."""
        run = self.run_at(offset)
        if run is None:
            return None
        i = bisect.bisect_right(run.starts, offset - run.offset) - 1
        return run.stamps[max(i, 0)]

    def index_at(self, offset: int) -> int:
        """Position in ``flow.messages`` of the TCP message holding ``offset``."""
        run = self.run_at(offset)
        if run is None:
            return -1
        i = bisect.bisect_right(run.starts, offset - run.offset) - 1
        return run.indexes[max(i, 0)]


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
    for index, message in enumerate(flow.messages):
        fc = message.from_client
        side = result[0] if fc else result[1]
        cur = cursors[fc]
        new_run = not side.runs
        gaps = side.gaps
        while gap_pos[fc] < len(gaps) and gaps[gap_pos[fc]][0] <= cur:
            g = gaps[gap_pos[fc]]
            if g[0] == cur and g[1] > 0:
                cur += g[1]
                new_run = True
            gap_pos[fc] += 1
        if not message.content:
            continue
        if new_run:
            side.runs.append(Run(cur))
        run = side.runs[-1]
        run.starts.append(run.length)
        run.stamps.append(message.timestamp)
        run.indexes.append(index)
        run.parts.append(message.content)
        run.length += len(message.content)
        side.message_offsets[index] = cur
        cursors[fc] = cur + len(message.content)
    for side in result:
        side.finish()
    return result
