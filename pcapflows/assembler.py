"""The connection table: segments in, reassembly events out (sans-IO).

:class:`Assembler` is the object to use when you have decoded segments from anywhere
(a capture, scapy, a test table). Feed it :class:`~pcapflows.segment.Segment` objects in
capture order; it returns :class:`~pcapflows.reassembly.Data`,
:class:`~pcapflows.reassembly.Gap`, :class:`~pcapflows.reassembly.Conflict` and
:class:`Closed` events. It has no clock of its own: time is the highest capture
timestamp fed so far, which drives idle timeouts and lingering, so the same capture
always gives the same result. It never raises on any sequence of segments.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from pcapflows.reassembly import (
    DEFAULT_KEEP,
    DEFAULT_MAX_BUFFER,
    BufferPool,
    Conflict,
    Data,
    Gap,
    GapRetracted,
)
from pcapflows.segment import ACK, SYN, Segment
from pcapflows.tcpconn import ConnectionSummary, TCPConnection

#: A connection with no packet for this long (capture time) is closed with reason
#: "idle". Zeek uses 5 minutes for established connections; we are more patient
#: because an offline reader loses nothing by waiting and long-lived quiet connections
#: (SSH, database pools) are common in captures. Memory stays bounded by the open
#: connections either way.
DEFAULT_IDLE_TIMEOUT = 3600.0

#: After both FINs or a RST, a connection stays in the table this long (capture time)
#: so that the final ACK, retransmitted FINs and trailing RSTs still belong to it,
#: instead of starting a bogus new connection. A new SYN on the same 4-tuple ends the
#: lingering at once (port reuse).
DEFAULT_LINGER = 5.0


#: A connection attempt reset before any data lingers longer: clients retry the same
#: SYN (same initial sequence number) for about two minutes (Linux: 1+2+4+...+64 s), and
#: those retries belong to the same connection, as Wireshark also counts them.
ATTEMPT_LINGER = 130.0


#: Connections open at once. When a new connection would exceed it, the connection
#: nearest to its timeout (a lingering closed one, else the one idle longest) is closed
#: early with ``closed_by="limit"``. Precedent: Suricata bounds its flow table the same
#: way (``flow.memcap``, 128 MB by default, evicting in "emergency mode"); Zeek and
#: gopacket have no bound. At a few kilobytes per quiet connection, the default costs
#: at most some hundreds of megabytes.
DEFAULT_MAX_CONNECTIONS = 100_000

#: Bytes held above holes in all connections together. Past it, the connection holding
#: the most gives up on its holes (gaps with cause ``"limit"``) and delivers what it
#: held. Precedent: Suricata's ``stream.reassembly.memcap`` (256 MB by default);
#: gopacket's ``MaxBufferedPagesTotal`` plays the same role.
DEFAULT_MAX_TOTAL_BUFFER = 256 * 1024 * 1024


@dataclass(slots=True, frozen=True)
class Closed:
    """Connection ``conn`` is finished; no further events will name it."""

    conn: int
    summary: ConnectionSummary


AssemblerEvent = Data | Gap | Conflict | GapRetracted | Closed

_Key = tuple[tuple[str, int], tuple[str, int]]


class Assembler:
    """Groups segments into connections and reassembles both directions of each."""

    def __init__(
        self,
        *,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        linger: float = DEFAULT_LINGER,
        keep: int = DEFAULT_KEEP,
        max_buffer: int = DEFAULT_MAX_BUFFER,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        max_total_buffer: int = DEFAULT_MAX_TOTAL_BUFFER,
    ) -> None:
        self.idle_timeout = idle_timeout
        self.linger = linger
        self.max_connections = max(1, max_connections)
        self.max_total_buffer = max_total_buffer
        #: Bytes held above holes in all open connections (kept by the streams).
        self._pool = BufferPool()
        #: Connections closed early by ``max_connections``, and buffers released early
        #: by ``max_total_buffer``: what the limits cost, for the statistics.
        self.evicted = 0
        self.released = 0
        self._keep = keep
        self._max_buffer = max_buffer
        self._table: dict[_Key, TCPConnection] = {}
        self._by_id: dict[int, TCPConnection] = {}
        self._timers: list[tuple[float, int]] = []
        self._next_conn = 0
        self._next_stream = 0
        self._order = 0
        self.now: float | None = None
        self._jump: float | None = None

    @property
    def buffered(self) -> int:
        """Bytes held above holes in all open connections."""
        return self._pool.buffered

    @property
    def open_connections(self) -> int:
        """Connections currently in the table (including lingering closed ones)."""
        return len(self._table)

    def feed(self, seg: Segment) -> list[AssemblerEvent]:
        """Take one segment (in capture order); return the events it causes."""
        self._order += 1
        events: list[AssemblerEvent] = []
        self._advance_clock(seg.timestamp)
        # Timeouts run on the clock, which never goes back: a packet stamped before it
        # counts as activity now, one stamped after it (an unconfirmed jump) at its own
        # time.
        clock = seg.timestamp
        if self.now is not None and self.now > clock:
            clock = self.now
        a = (seg.src, seg.sport)
        b = (seg.dst, seg.dport)
        key = (a, b) if a <= b else (b, a)
        conn = self._table.get(key)
        if (
            conn is not None
            and conn.closed_at is None
            and self.now is not None
            and seg.timestamp <= self.now
            and seg.timestamp - conn.last_timestamp > self.idle_timeout
        ):
            # Idle for longer than the timeout by this very packet's clock (unless this
            # packet's time is an unconfirmed jump, see _advance_clock).
            events.extend(self._finish(conn, "idle", False))
            conn = None
        if conn is not None and seg.flags & (SYN | ACK) == SYN:
            d = conn.direction_of(seg)
            if conn.is_new_connection(seg, d):
                events.extend(self._finish(conn, self._reason(conn, "reuse"), False))
                conn = None
        if conn is None:
            if len(self._table) >= self.max_connections:
                self._evict(events)
            conn = TCPConnection(
                self._next_conn,
                self._next_stream,
                seg,
                keep=self._keep,
                max_buffer=self._max_buffer,
                pool=self._pool,
            )
            self._next_conn += 1
            self._next_stream += 1
            self._table[key] = conn
            self._by_id[conn.conn] = conn
            heapq.heappush(self._timers, (clock + self.idle_timeout, conn.conn))
        if clock > conn.touched:
            conn.touched = clock
        was_closed = conn.closed_at is not None
        events.extend(conn.feed(seg, self._order))
        if self._pool.buffered > self.max_total_buffer:
            self._release(seg.timestamp, events)
        if not was_closed and conn.closed_at is not None:
            conn.closed_clock = clock
            heapq.heappush(self._timers, (clock + self.linger, conn.conn))
        if self._timers and self.now is not None and self._timers[0][0] <= self.now:
            self._expire(self.now, events)
        return events

    def _advance_clock(self, ts: float) -> None:
        """Move capture time forward, ignoring a lone timestamp far in the future.

        A single damaged timestamp (say a year 2106 value in the middle of a 2009
        capture) would otherwise close every open connection as idle. A forward jump
        larger than the idle timeout is believed only once a second packet confirms it.
        """
        if self.now is None:
            self.now = ts
            return
        if ts <= self.now:
            return
        if ts - self.now <= self.idle_timeout:
            self.now = ts
            self._jump = None
            return
        if self._jump is not None and abs(ts - self._jump) <= self.idle_timeout:
            self.now = ts
            self._jump = None
        else:
            self._jump = ts

    def advance(self, now: float) -> list[AssemblerEvent]:
        """Let capture time reach ``now`` without a packet (closes idle connections)."""
        events: list[AssemblerEvent] = []
        if self.now is None or now > self.now:
            self.now = now
        self._expire(self.now, events)
        return events

    def close_all(self) -> list[AssemblerEvent]:
        """End of input: finish every connection still in the table."""
        events: list[AssemblerEvent] = []
        for conn in sorted(self._table.values(), key=lambda c: c.conn):
            if conn.closed_at is not None:
                events.extend(self._finish(conn, self._reason(conn, "end"), False))
            else:
                events.extend(self._finish(conn, "end", True))
        self._timers.clear()
        return events

    @staticmethod
    def _reason(conn: TCPConnection, default: str) -> str:
        if conn.close_reason is not None:
            return conn.close_reason
        if conn.rst_from is not None:
            return "rst"
        if conn.fin_from[0] and conn.fin_from[1]:
            return "fin"
        return default

    def _deadline(self, conn: TCPConnection) -> float:
        if conn.closed_at is not None:
            attempt = conn.close_reason == "rst" and not conn.has_data
            linger = max(self.linger, ATTEMPT_LINGER) if attempt else self.linger
            return min(conn.closed_clock + linger, conn.touched + self.idle_timeout)
        return conn.touched + self.idle_timeout

    def _expire(self, now: float, events: list[AssemblerEvent]) -> None:
        timers = self._timers
        while timers and timers[0][0] <= now:
            _, cid = heapq.heappop(timers)
            conn = self._by_id.get(cid)
            if conn is None:
                continue
            deadline = self._deadline(conn)
            if deadline > now:
                heapq.heappush(timers, (deadline, cid))
                continue
            reason = self._reason(conn, "idle")
            events.extend(self._finish(conn, reason, False))

    def _evict(self, events: list[AssemblerEvent]) -> None:
        """Close the connection nearest to its timeout to make room for a new one."""
        timers = self._timers
        while timers:
            deadline, cid = timers[0]
            conn = self._by_id.get(cid)
            if conn is None:
                heapq.heappop(timers)
                continue
            actual = self._deadline(conn)
            if actual != deadline:
                heapq.heapreplace(timers, (actual, cid))
                continue
            heapq.heappop(timers)
            self.evicted += 1
            closed_by = self._reason(conn, "limit") if conn.closed_at is not None else "limit"
            events.extend(self._finish(conn, closed_by, False))
            return

    def _release(self, timestamp: float, events: list[AssemblerEvent]) -> None:
        """Over the total buffer limit: the connections holding the most give up on
        their holes until the total is back under half the limit (so that the scan over
        open connections is not repeated on every packet)."""
        by_size = sorted(self._by_id.values(), key=lambda c: c.buffered, reverse=True)
        for conn in by_size:
            if self._pool.buffered <= self.max_total_buffer // 2 or conn.buffered == 0:
                break
            events.extend(conn.release(timestamp))
            self.released += 1

    def _finish(
        self, conn: TCPConnection, closed_by: str, open_at_end: bool
    ) -> list[AssemblerEvent]:
        events: list[AssemblerEvent] = list(conn.finish(conn.last_timestamp))
        key = (conn.endpoints[0], conn.endpoints[1])
        if key[1] < key[0]:
            key = (key[1], key[0])
        if self._table.get(key) is conn:
            del self._table[key]
        self._by_id.pop(conn.conn, None)
        if len(self._timers) > 2 * len(self._by_id) + 64:
            # Timers of finished connections are dropped lazily; rebuild the heap now and
            # then so that it stays proportional to the open connections.
            self._timers = [(self._deadline(c), c.conn) for c in self._by_id.values()]
            heapq.heapify(self._timers)
        events.append(Closed(conn.conn, conn.summary(closed_by, open_at_end)))
        return events
