"""The connection table: segments in, reassembly events out (sans-IO).

:class:`Assembler` is the object to use when you have decoded segments from anywhere
(a capture, scapy, a test table). Feed it
:class:`~pcapflows.decode.segment.Segment` objects in capture order; it returns the
events of :mod:`pcapflows.reassembly.events` (data, gaps, conflicts, closes). It has
no clock of its own: whether a packet still belongs to a connection (its linger, its
idle timeout) is judged by the capture times of that connection's own packets, so
that other traffic never changes a flow; the highest timestamp fed so far only
decides when a connection whose own deadline has passed is reclaimed. The same
capture always gives the same result, and it never raises on any sequence of
segments.
"""

from __future__ import annotations

import heapq
from collections import Counter
from typing import NamedTuple

from pcapflows.decode.segment import ACK, SYN, Segment, TunnelHop
from pcapflows.limits import DEFAULT_LIMITS, Limits
from pcapflows.reassembly.connection import ConnectionSummary, TCPConnection
from pcapflows.reassembly.events import AssemblerEvent, Closed, Opened
from pcapflows.reassembly.half import (
    DEFAULT_KEEP,
    MIN_BOUND,
    BufferPool,
    Position,
)

#: A connection attempt reset before any data lingers longer: clients retry the same
#: SYN (same initial sequence number) for about two minutes (Linux: 1+2+4+...+64 s), and
#: those retries belong to the same connection, as Wireshark also counts them.
ATTEMPT_LINGER = 130.0

_Key = tuple[object, ...]

#: Tunnel types whose identifier is chosen by each receiver, so that the two directions
#: of one connection carry different ones (GTP-U TEIDs, PPTP call ids): with
#: ``key_tunnels`` their outer endpoints key the connection, not their identifiers.
PER_DIRECTION_IDS = frozenset({"gtpu", "pptp"})


def tunnel_identity(path: tuple[TunnelHop, ...]) -> tuple[object, ...]:
    """What tells apart overlays that reuse inner addresses: per hop, its type, its outer
    addresses (in either direction) and its identifier (VNI, GRE key, ERSPAN session)
    where both directions carry the same one. Outer UDP ports are left out: VXLAN,
    GENEVE and GRE-in-UDP senders pick the source port per flow for entropy (RFC 7348),
    so the two directions of one tunnel use different ones."""
    out: list[object] = []
    for hop in path:
        ends = (hop.src, hop.dst) if hop.src <= hop.dst else (hop.dst, hop.src)
        out.append((hop.kind, ends, None if hop.kind in PER_DIRECTION_IDS else hop.ident))
    return tuple(out)


class _Finished(NamedTuple):
    """What is remembered of a finished connection, so that a late packet on its
    addresses that falls inside its sequence space is taken as its retransmission
    rather than as a new connection's data (plain values only: the garbage collector
    untracks such tuples)."""

    endpoints: tuple[tuple[str, int], tuple[str, int]]
    client: tuple[str, int]
    stream: int
    ends: tuple[Position | None, Position | None]

    def continued_by(self, seg: Segment) -> bool:
        """Whether ``seg`` (not a SYN) lies in this connection's sequence space: its
        sequence number in its direction's, or its acknowledgment in the other's (a
        new connection on the same addresses has numbers of its own, which fall in
        either window with a chance of one in a thousand)."""
        d = 0 if (seg.src, seg.sport) == self.endpoints[0] else 1
        mine, theirs = self.ends[d], self.ends[1 - d]
        if mine is not None and mine.holds(seg.seq, MIN_BOUND):
            return True
        return bool(seg.flags & ACK) and theirs is not None and theirs.holds(seg.ack, MIN_BOUND)


class Assembler:
    """Groups segments into connections and reassembles both directions of each."""

    def __init__(
        self,
        limits: Limits = DEFAULT_LIMITS,
        *,
        key_tunnels: bool = False,
        keep: int = DEFAULT_KEEP,
        announce: bool = False,
    ) -> None:
        #: Key connections by their tunnel as well as their 4-tuple (see
        #: :func:`tunnel_identity`), for overlays whose tenants reuse inner addresses.
        self.key_tunnels = key_tunnels
        #: Send an :class:`~pcapflows.reassembly.events.Opened` event for every new
        #: connection (off by default: a consumer of whole flows has no use for it).
        self.announce = announce
        self.limits = limits
        self.idle_timeout = limits.idle_timeout
        self.linger = limits.linger
        self.max_connections = limits.max_connections
        self.max_total_buffer = limits.max_total_buffer
        #: Bytes held above holes in all open connections (kept by the streams).
        self._pool = BufferPool()
        #: Connections closed early by ``max_connections``, and buffers released early
        #: by ``max_total_buffer``: what the limits cost, for the statistics.
        self.evicted = 0
        self.released = 0
        self._keep = keep
        self._max_buffer = limits.max_buffer
        self._table: dict[_Key, TCPConnection] = {}
        self._by_id: dict[int, TCPConnection] = {}
        #: The last finished connection of each recent 4-tuple, oldest first, at most
        #: ``max_connections`` of them (a few hundred bytes each).
        self._finished: dict[_Key, _Finished] = {}
        #: Per 4-tuple, a packet held back until the next one tells whether it starts a
        #: new connection or was damaged (see :meth:`feed`): (segment, order, clock).
        self._held: dict[_Key, tuple[Segment, int, float]] = {}
        #: Captured payload bytes fed, and where the bytes of finished connections went
        #: (``HalfStream.buckets``), with the segments and acknowledgments not believed.
        self.captured = 0
        self.payload: Counter[str] = Counter()
        self.implausible: Counter[str] = Counter()
        self._timers: list[tuple[float, int]] = []
        self._next_conn = 0
        self._next_stream = 0
        self._order = 0
        self.now: float | None = None
        self._jump: float | None = None
        #: The latest capture time fed, believed or not (see :meth:`close_all`).
        self._latest: float | None = None

    @property
    def buffered(self) -> int:
        """Bytes held above holes in all open connections."""
        return self._pool.buffered

    @property
    def latest(self) -> float | None:
        """The latest capture time fed so far (None before the first segment)."""
        return self._latest

    @property
    def open_connections(self) -> int:
        """Connections currently in the table (including lingering closed ones)."""
        return len(self._table)

    def feed(self, seg: Segment) -> list[AssemblerEvent]:
        """Take one segment (in capture order); return the events it causes.

        The steps, each its own method: move the clock (:meth:`_advance_clock`); find
        the segment's connection and end it first if the segment no longer belongs to
        it (:meth:`_still_open`: idle, or a new SYN on a finished 4-tuple); otherwise
        start one, continuing a finished connection or holding the packet until the
        next tells (:meth:`_start`); feed it (:meth:`_feed_into`); reclaim connections
        whose time is up (:meth:`_expire_due`).
        """
        self._order += 1
        self.captured += len(seg.payload)
        ts = seg.timestamp
        if self._latest is None or ts > self._latest:
            self._latest = ts
        now = self.now
        if now is None or ts > now:
            if now is not None and ts - now <= self.idle_timeout:
                self.now = now = ts  # the common step forward (see _advance_clock)
                self._jump = None
            else:
                self._advance_clock(ts)
                now = self.now
        # Memory is reclaimed on the clock, which never goes back: a packet stamped
        # before it counts as activity now, one stamped after it (an unconfirmed jump)
        # at its own time.
        clock = now if now is not None and now > ts else ts
        key = self._key(seg)
        events: list[AssemblerEvent] = []
        conn = self._table.get(key)
        if conn is not None and (
            ts > conn.last_timestamp + self.idle_timeout
            or conn.closed_at is not None
            or seg.flags & (SYN | ACK) == SYN
        ):
            conn = self._still_open(conn, seg, events)
        if conn is None:
            conn = self._start(key, seg, clock, events)
            if conn is None:
                return events
        events = self._feed_into(conn, seg, self._order, clock, events)
        if self._timers and self._timers[0][0] < clock:
            self._expire_due(events)
        return events

    def _key(self, seg: Segment) -> _Key:
        """The connection table's key of ``seg``: its 4-tuple in either direction, and
        its tunnel's identity with ``key_tunnels``."""
        a = (seg.src, seg.sport)
        b = (seg.dst, seg.dport)
        key: _Key = (a, b) if a <= b else (b, a)
        if self.key_tunnels and seg.tunnel:
            key = (*key, tunnel_identity(seg.tunnel))
        return key

    def finished_direction(self, seg: Segment) -> tuple[int, int] | None:
        """``(conn, direction)`` if the direction ``seg`` was sent in has delivered every
        byte up to its FIN (just fed): nothing more can come in it. For a consumer that
        hands messages over as soon as they are complete (:mod:`pcapflows.model.live`);
        a question, not an event, so that whole-flow readers pay nothing for it."""
        conn = self._table.get(self._key(seg))
        if conn is None:
            return None
        d = conn.direction_of(seg)
        half = conn.halves[d]
        if half.fin_offset is not None and half.next >= half.fin_offset:
            return conn.conn, d
        return None

    def _still_open(
        self, conn: TCPConnection, seg: Segment, events: list[AssemblerEvent]
    ) -> TCPConnection | None:
        """``conn`` if ``seg`` still belongs to it; else finish it and return None.

        Whether a packet still belongs to a connection is judged by the times of that
        connection's own packets only, never by other connections' traffic; a SYN that
        :meth:`TCPConnection.is_new_connection` says starts over ends it too (port reuse).
        """
        ts = seg.timestamp
        if ts > conn.last_timestamp + self.idle_timeout or (
            conn.closed_at is not None and ts > self._own_deadline(conn)
        ):
            events.extend(self._finish(conn, self._reason(conn, "idle"), False))
            return None
        if seg.flags & (SYN | ACK) == SYN and conn.is_new_connection(seg, conn.direction_of(seg)):
            events.extend(self._finish(conn, self._reason(conn, "reuse"), False))
            return None
        return conn

    def _start(
        self, key: _Key, seg: Segment, clock: float, events: list[AssemblerEvent]
    ) -> TCPConnection | None:
        """The connection ``seg`` starts on ``key``, or None when it is held back.

        The first packet on a 4-tuple since its last connection ended that falls outside
        that connection's sequence space is either a new connection that did not show
        its SYN, or a damaged number: it waits (in ``_held``) until the next packet
        tells, which then either starts a new connection with it or shows it damaged.
        """
        prev = self._finished.get(key)
        held = self._held.pop(key, None)
        if prev is not None and not seg.flags & SYN and not prev.continued_by(seg):
            if held is None:
                self._held[key] = (seg, self._order, clock)
                if len(self._held) > self.max_connections:
                    self._release_held(events)
                self._expire_due(events)
                return None
            # Two packets outside the old sequence space: a new connection.
            del self._finished[key]
        elif held is not None:
            # The packet held back was damaged: this one continues the old space.
            self._refuse(held[0])
            held = None
        if held is not None:
            return self._open_held(key, held, events)
        return self._open(key, seg, clock, events)

    def _feed_into(
        self,
        conn: TCPConnection,
        seg: Segment,
        order: int,
        clock: float,
        events: list[AssemblerEvent],
    ) -> list[AssemblerEvent]:
        """Feed ``seg`` to ``conn``; return ``events`` with what that caused added (the
        connection's own list when ``events`` was empty, the common case: no copy)."""
        if clock > conn.touched:
            conn.touched = clock
        was_closed = conn.closed_at is not None
        # The connection's events are assembler events (list invariance aside).
        caused: list[AssemblerEvent] = conn.feed(seg, order)  # type: ignore[assignment]
        opened = conn.opened
        if opened is not None:
            # The roles as the first packet shows them (its flags, the ports).
            opened.client = conn.client()
            conn.opened = None
        if events:
            events.extend(caused)
        else:
            events = caused
        if self._pool.buffered > self.max_total_buffer:
            self._release(seg.timestamp, events)
        if not was_closed and conn.closed_at is not None:
            conn.closed_clock = clock
            heapq.heappush(self._timers, (self._deadline(conn), conn.conn))
        return events

    def _expire_due(self, events: list[AssemblerEvent]) -> None:
        if self._timers and self.now is not None and self._timers[0][0] < self.now:
            self._expire(self.now, events)

    def _release_held(self, events: list[AssemblerEvent]) -> None:
        """Too many packets held: the oldest one starts its connection without waiting
        for the packet that would have told (a limit, counted with max_connections)."""
        key = next(iter(self._held))
        self._finished.pop(key, None)
        self.evicted += 1
        self._open_held(key, self._held.pop(key), events)

    def _open_held(
        self, key: _Key, held: tuple[Segment, int, float], events: list[AssemblerEvent]
    ) -> TCPConnection:
        """The connection a held-back packet starts, with that packet fed to it."""
        seg, order, clock = held
        conn = self._open(key, seg, clock, events)
        caused = self._feed_into(conn, seg, order, clock, events)
        if caused is not events:
            events.extend(caused)
        return conn

    def _refuse(self, seg: Segment) -> None:
        """Count a held-back packet that turned out to be damaged."""
        self.payload["implausible"] += len(seg.payload)
        self.implausible["segments"] += 1

    def _open(
        self, key: _Key, seg: Segment, clock: float, events: list[AssemblerEvent]
    ) -> TCPConnection:
        """A new connection for ``seg``; it continues the last finished connection on
        the same addresses when ``seg`` falls inside that one's sequence space."""
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
        prev = self._finished.pop(key, None)
        # A SYN without ACK opens a new connection (port reuse); a SYN-ACK that answers
        # the finished connection's SYN (its SYN was stamped long before) continues it.
        if prev is not None and seg.flags & (SYN | ACK) != SYN and prev.continued_by(seg):
            swap = conn.endpoints[0] != prev.endpoints[0]
            for d in (0, 1):
                pos = prev.ends[1 - d if swap else d]
                if pos is not None:
                    conn.halves[d].seed(pos)
            conn.known_client = 0 if conn.endpoints[0] == prev.client else 1
            conn.follows = prev.stream
        self._next_conn += 1
        self._next_stream += 1
        if self.announce:
            opened = Opened(conn.conn, conn.stream, conn.endpoints, 0, seg.timestamp, seg.frame)
            conn.opened = opened
            events.append(opened)
        conn.key = key
        self._table[key] = conn
        self._by_id[conn.conn] = conn
        heapq.heappush(self._timers, (clock + self.idle_timeout, conn.conn))
        return conn

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
        for key, held in list(self._held.items()):
            # Nothing came after it: it was a connection of its own.
            self._finished.pop(key, None)
            self._open_held(key, held, events)
        self._held.clear()
        latest = self._latest
        for conn in sorted(self._table.values(), key=lambda c: c.conn):
            if latest is not None and latest > self._own_deadline(conn):
                # The capture went on past this connection's deadline: it ended by its
                # own timer, whether or not later packets moved the clock that far.
                events.extend(self._finish(conn, self._reason(conn, "idle"), False))
            elif conn.closed_at is not None:
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

    def _linger(self, conn: TCPConnection) -> float:
        return max(self.linger, ATTEMPT_LINGER) if conn.closed_attempt else self.linger

    def _own_deadline(self, conn: TCPConnection) -> float:
        """The latest capture time at which a packet still joins ``conn``, judged by
        the times of its own packets."""
        idle = conn.last_timestamp + self.idle_timeout
        if conn.closed_at is None:
            return idle
        return min(conn.closed_at + self._linger(conn), idle)

    def _deadline(self, conn: TCPConnection) -> float:
        """When ``conn`` may be reclaimed: its own deadline, and as long again on the
        clock (which differs from its own times only in captures whose timestamps go
        back, such as merged files), whichever is later."""
        if conn.closed_at is not None:
            clock = min(conn.closed_clock + self._linger(conn), conn.touched + self.idle_timeout)
        else:
            clock = conn.touched + self.idle_timeout
        own = self._own_deadline(conn)
        return own if own > clock else clock

    def _expire(self, now: float, events: list[AssemblerEvent]) -> None:
        timers = self._timers
        while timers and timers[0][0] < now:
            _, cid = heapq.heappop(timers)
            conn = self._by_id.get(cid)
            if conn is None:
                continue
            deadline = self._deadline(conn)
            if deadline >= now:
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
        key = conn.key
        if self._table.get(key) is conn:
            del self._table[key]
        self._by_id.pop(conn.conn, None)
        summary = conn.summary(closed_by, open_at_end)
        self._remember(key, conn, summary)
        if len(self._timers) > 2 * len(self._by_id) + 64:
            # Timers of finished connections are dropped lazily; rebuild the heap now and
            # then so that it stays proportional to the open connections.
            self._timers = [(self._deadline(c), c.conn) for c in self._by_id.values()]
            heapq.heapify(self._timers)
        events.append(Closed(conn.conn, summary))
        return events

    def _remember(self, key: _Key, conn: TCPConnection, summary: ConnectionSummary) -> None:
        """Count where the connection's bytes went and keep its end for successors."""
        payload = self.payload
        for half in conn.halves:
            for k, v in half.buckets().items():
                if v:
                    payload[k] += v
        h0, h1 = conn.halves
        if h0.implausible_segments or h1.implausible_segments:
            self.implausible["segments"] += h0.implausible_segments + h1.implausible_segments
        if h0.implausible_acks or h1.implausible_acks:
            self.implausible["acks"] += h0.implausible_acks + h1.implausible_acks
        finished = self._finished
        finished.pop(key, None)
        finished[key] = _Finished(
            conn.endpoints,
            conn.endpoints[summary.client],
            conn.stream,
            (conn.halves[0].position(), conn.halves[1].position()),
        )
        if len(finished) > self.max_connections:
            del finished[next(iter(finished))]
