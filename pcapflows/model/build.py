"""From reassembly events to mitmproxy-style :class:`~pcapflows.model.tcp.TCPFlow` objects.

The builder keeps the delivered bytes of each open connection and, when the connection
is closed, turns them into messages:

* A message is a maximal run of contiguous bytes from one side, ended by data from the
  other side, by a gap, or by the end of the stream.
* The two directions are interleaved in the order in which their bytes became
  available in the capture: a chunk counts as available at the packet that completed it
  (the latest packet needed to make it contiguous with what came before in its
  direction). That is the order in which the receiving applications could have seen
  them, and unlike the order of reassembly events it does not depend on when a hole
  was given up on.
* A message's timestamp is the capture time of the packet that first carried its first
  byte.

Ids are derived from the connection itself (addresses, first frame and time, initial
sequence numbers, stream index), so the same capture gives the same ids on every run.
"""

from __future__ import annotations

import bisect
import hashlib
import uuid
from operator import itemgetter
from typing import Any, Literal, cast

from pcapflows.model.connection import Client, Server
from pcapflows.model.flow import Error
from pcapflows.model.info import FlowInfo
from pcapflows.model.tcp import TCPFlow, TCPMessage
from pcapflows.reassembly.connection import ConnectionSummary
from pcapflows.reassembly.events import (
    AssemblerEvent,
    Closed,
    ClosedBy,
    Conflict,
    Data,
    Gap,
    GapRetracted,
)

#: Namespace of the deterministic (uuid5) ids pcapflows gives flows and connections.
ID_NAMESPACE = uuid.UUID("0b6f3c2e-6d1a-5f63-9a54-70636170666c")

_NAMESPACE = ID_NAMESPACE.bytes


def stable_id(name: str) -> str:
    """``str(uuid.uuid5(ID_NAMESPACE, name))``, without building two ``UUID`` objects:
    three ids per flow made that a visible share of reading many small connections."""
    return uuid5_text(hashlib.sha1(_NAMESPACE + name.encode()).digest())


def uuid5_text(sha1_digest: bytes) -> str:
    """The text of the version 5 UUID whose name-based SHA-1 (of namespace bytes then
    name) is ``sha1_digest``: what ``str(uuid.uuid5(...))`` gives."""
    b = bytearray(sha1_digest[:16])
    b[6] = (b[6] & 0x0F) | 0x50  # version 5
    b[8] = (b[8] & 0x3F) | 0x80  # RFC 4122 variant
    x = b.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


def flow_seed(
    stream: int,
    first_frame: int,
    opened: float,
    endpoints: tuple[tuple[str, int], tuple[str, int]],
) -> str:
    """What a flow's ids are derived from: facts of the connection's first packet only
    (stream index, frame, time, sender and receiver), so that an id given when the
    connection starts (:func:`pcapflows.events`) is the id of the finished flow, and
    does not change with roles decided later."""
    return f"{stream}|{first_frame}|{opened!r}|{endpoints[0]}|{endpoints[1]}"


# A delivered chunk: (stream offset, input order of its packet, bytes, capture time).
_Chunk = tuple[int, int, bytes, float]


class _Building:
    __slots__ = ("chunks", "conflicts", "gaps")

    def __init__(self) -> None:
        self.chunks: tuple[list[_Chunk], list[_Chunk]] = ([], [])
        # Per direction: [offset, length, timestamp, cause] of bytes given up on.
        self.gaps: tuple[list[list[Any]], list[list[Any]]] = ([], [])
        self.conflicts: list[tuple[int, int, int, float]] = []

    def gap(self, d: int, offset: int, length: int, timestamp: float, cause: str) -> None:
        """Record a gap, keeping each direction's gaps sorted by offset."""
        gaps = self.gaps[d]
        entry = [offset, length, timestamp, cause]
        if not gaps or gaps[-1][0] <= offset:
            gaps.append(entry)  # the common case: gaps are declared in stream order
        else:
            gaps.insert(bisect.bisect_right(gaps, offset, key=_offset), entry)

    def fill(self, d: int, lo: int, hi: int) -> None:
        """Bytes ``[lo, hi)`` of a gap arrived late after all: shrink the gap."""
        gaps = self.gaps[d]
        i = bisect.bisect_right(gaps, lo, key=_offset) - 1
        if i < 0 or gaps[i][0] + gaps[i][1] <= lo:
            i += 1
        j = i
        out: list[list[Any]] = []
        while j < len(gaps) and gaps[j][0] < hi:
            off, n, ts, cause = gaps[j]
            a, b = max(off, lo), min(off + n, hi)
            if off < a:
                out.append([off, a - off, ts, cause])
            if b < off + n:
                out.append([b, off + n - b, ts, cause])
            j += 1
        gaps[i:j] = out


def _offset(gap: list[Any]) -> int:
    offset: int = gap[0]
    return offset


def _joined(gaps: list[list[Any]]) -> list[list[Any]]:
    """Gaps in offset order, with touching gaps of the same cause joined into one.

    The reassembler declares a hole piece by piece (each acknowledgment past part of it,
    each flush), but for the reader a run of missing bytes with no data between is one
    hole, as Wireshark's ``[N bytes missing in capture file]`` shows it; the timestamp
    kept is that of the first piece.
    """
    out: list[list[Any]] = []
    for off, n, ts, cause in gaps:
        if out and out[-1][0] + out[-1][1] == off and out[-1][3] == cause:
            out[-1][1] += n
        else:
            out.append([off, n, ts, cause])
    return out


class FlowBuilder:
    """Collects events per connection and returns a finished flow on :class:`Closed`.

    With ``messages=False`` the delivered bytes are not kept: flows come with their
    connections and metadata but no messages, so that a caller who wants only
    summaries (a listing, statistics, flows re-ordered by first packet) holds no
    payload for a flow that waits.
    """

    def __init__(self, *, messages: bool = True) -> None:
        self._open: dict[int, _Building] = {}
        self._messages = messages

    def add(self, event: AssemblerEvent) -> TCPFlow | None:
        """Take one event; return the flow it completes, if any."""
        b = self._open.get(event.conn)
        if b is None:
            b = self._open[event.conn] = _Building()
        if isinstance(event, Data):
            d = event.direction
            if self._messages:
                b.chunks[d].append((event.offset, event.order, event.data, event.timestamp))
            if event.fill:
                b.fill(d, event.offset, event.offset + len(event.data))
        elif isinstance(event, Gap):
            b.gap(event.direction, event.offset, event.length, event.timestamp, event.cause)
        elif isinstance(event, GapRetracted):
            b.fill(event.direction, event.offset, event.offset + event.length)
        elif isinstance(event, Conflict):
            b.conflicts.append((event.direction, event.offset, event.length, event.timestamp))
        elif isinstance(event, Closed):
            del self._open[event.conn]
            return build_flow(event.summary, b)
        return None


#: Sort key: the first field (a chunk's offset; a merged entry's availability).
_first = itemgetter(0)


def _direction(chunks: list[_Chunk], d: int) -> list[tuple[int, int, bytes, float, bool]]:
    """One direction in stream order, keyed by when each chunk became available.

    A chunk is available once every earlier byte of its run has arrived, so its key is
    the latest input position among the chunks up to it (which also keeps the keys of
    one direction non-decreasing, as the merge needs).
    """
    out = []
    avail = -1
    prev_end: int | None = None
    for off, order, data, ts in sorted(chunks, key=_first):
        if order > avail:
            avail = order
        out.append((avail, d, data, ts, prev_end is not None and off != prev_end))
        prev_end = off + len(data)
    return out


def _messages(b: _Building, client: int) -> list[TCPMessage]:
    """The two directions merged by availability (a stable sort of two sorted runs:
    the keys of the two directions are input positions of different packets, never
    equal), each run of one direction without a gap joined into one message."""
    messages: list[TCPMessage] = []
    first, second = b.chunks
    if not first and not second:
        return messages
    if not second:
        merged = _direction(first, 0)
    elif not first:
        merged = _direction(second, 1)
    else:
        merged = sorted(_direction(first, 0) + _direction(second, 1), key=_first)
    cur_dir = -1
    parts: list[bytes] = []
    ts = 0.0
    for _, d, data, t, gap_before in merged:
        if d != cur_dir or gap_before:
            if parts:
                messages.append(TCPMessage(cur_dir == client, b"".join(parts), ts))
            parts = []
            cur_dir = d
            ts = t
        parts.append(data)
    if parts:
        messages.append(TCPMessage(cur_dir == client, b"".join(parts), ts))
    return messages


def new_flow(
    seed: str,
    client_addr: tuple[str, int],
    server_addr: tuple[str, int],
    start: float,
    end: float | None,
    setup: float | None,
) -> TCPFlow:
    """A flow without messages and its two connections, with the ids ``seed`` gives
    (see :func:`flow_seed`); ``end`` is None while the connection is still open."""
    client = Client(
        id=stable_id(seed + "|client"),
        peername=client_addr,
        sockname=server_addr,
        timestamp_start=start,
        timestamp_end=end,
    )
    server = Server(
        id=stable_id(seed + "|server"),
        address=server_addr,
        peername=server_addr,
        sockname=client_addr,
        timestamp_start=start,
        timestamp_end=end,
        timestamp_tcp_setup=setup,
    )
    return TCPFlow(client, server, id=stable_id(seed + "|flow"), timestamp_created=start)


def build_flow(s: ConnectionSummary, b: _Building) -> TCPFlow:
    """Synthesize the client, server and flow objects of one finished connection."""
    ci = s.client
    si = 1 - ci
    client_addr = s.endpoints[ci]
    server_addr = s.endpoints[si]
    seed = flow_seed(s.stream, s.first_frame, s.opened_timestamp, s.endpoints)

    flow = new_flow(
        seed, client_addr, server_addr, s.first_timestamp, s.last_timestamp, s.setup_timestamp
    )
    flow.messages = _messages(b, ci)
    if s.closed_by == "rst" and s.rst_from is not None and s.rst_timestamp is not None:
        who = "client" if s.rst_from == ci else "server"
        flow.error = Error(f"connection reset by {who}", s.rst_timestamp)

    def side(d: int) -> Literal["client", "server"]:
        return "client" if d == ci else "server"

    meta: FlowInfo = {
        "stream": s.stream,
        "handshake_seen": s.handshake_seen,
        "history": s.history,
        "packets": {"client": s.packets[ci], "server": s.packets[si]},
        "bytes": {"client": s.bytes[ci], "server": s.bytes[si]},
        "gaps": [
            {
                "from_client": d == ci,
                "offset": o - s.low[d],
                "length": n,
                "timestamp": t,
                "cause": cause,
            }
            for d in (ci, si)
            for o, n, t, cause in _joined(b.gaps[d])
        ],
        "conflicts": [
            {"from_client": d == ci, "offset": o - s.low[d], "length": n, "timestamp": t}
            for d, o, n, t in b.conflicts
        ],
        "closed_by": cast(ClosedBy, s.closed_by),
        "open_at_end": s.open_at_end,
        "first_frame": s.first_frame,
        "last_frame": s.last_frame,
    }
    if s.rst_from is not None:
        meta["rst_from"] = side(s.rst_from)
    if s.follows is not None:
        meta["follows"] = s.follows
    if any(path for _, path in s.tunnels):
        meta["tunnels"] = [
            {"from_client": d == ci, "path": [hop.to_dict() for hop in path]}
            for d, path in s.tunnels
        ]
    flow.metadata["pcapflows"] = meta
    return flow
