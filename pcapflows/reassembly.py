"""Reassembly of one direction of a TCP connection (one "half" in gopacket's terms).

A :class:`HalfStream` receives the segments one side sent, in capture order, and emits
events in stream order: :class:`Data` for bytes that are now contiguous, :class:`Gap` for
bytes that will never be seen, :class:`Conflict` for a retransmission whose bytes differ
from what was already there. It is sans-IO: no clock, no files, no logging, and it never
raises on any input.

The rules it implements, and why:

* Sequence numbers are turned into unbounded relative offsets (:mod:`pcapflows.seqnum`),
  offset 0 being the first byte after the SYN, or the first sequence number seen when
  the connection was picked up mid-stream (bytes before that are not part of what we
  can reconstruct and are only counted).
* Out-of-order bytes wait in a buffer until the bytes before them arrive.
* The first copy of a byte wins. That is what the receiving host already had when a
  later, different copy arrived, so overwriting it (as scapy does) would rewrite
  history. A differing later copy is reported as a conflict.
* A hole is never filled with invented bytes. It becomes a gap when the peer
  acknowledges past it (the receiver got bytes the capture missed), when the buffer
  above it grows past its limit, or when the stream is finished.
* Bytes the snap length cut off are known to exist but unknown: they are a gap.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from pcapflows.seqnum import Unwrapper

#: Delivered bytes kept per direction to detect conflicting retransmissions. Older
#: retransmissions can no longer be compared and are only counted. 64 KiB covers the
#: unscaled TCP window, i.e. everything a sender may legitimately retransmit without
#: window scaling.
DEFAULT_KEEP = 65536

#: Bytes buffered above a hole, per direction, before the hole is declared a gap.
#: Without a limit a capture that lost one segment early would make the whole rest of
#: the connection wait in memory. 8 MiB is above any real receive window we have met.
DEFAULT_MAX_BUFFER = 8 * 1024 * 1024

#: How far below the lowest byte seen so far a connection picked up mid-stream may still
#: grow downwards: a late SYN, or segments captured after later ones (merged or
#: shuffled captures), extend the stream at its start instead of being dropped.
PREFIX_WINDOW = 1 << 20

#: Declared gaps remembered per direction so that a segment captured late (after the
#: peer's ACK made us give up on it) can still fill them.
MAX_HOLES = 256

#: An acknowledgment further than this past the highest sequence number seen is taken
#: as bogus (damaged or forged) rather than as proof of a hole of that size.
MAX_ACK_JUMP = 1 << 24


class BufferPool:
    """Bytes held above holes by a set of half-streams together (an assembler's), kept
    up to date by the streams themselves so that bounding the total costs nothing on
    the common in-order path."""

    __slots__ = ("buffered",)

    def __init__(self) -> None:
        self.buffered = 0


@dataclass(slots=True, frozen=True)
class Data:
    """Contiguous bytes of one direction, at ``offset`` in that direction's stream.

    ``timestamp`` is the capture time of the packet that first carried them and
    ``order`` the position of that packet in the input (the assembler's packet counter).
    ``fill`` is set when the bytes fill (part of) an earlier :class:`Gap`: the capture
    held them after all, only later than the acknowledgment that made us give up.
    """

    conn: int
    direction: int
    offset: int
    data: bytes
    timestamp: float
    order: int
    fill: bool = False


@dataclass(slots=True, frozen=True)
class Gap:
    """``length`` bytes at ``offset`` were sent but are not in the capture.

    ``timestamp`` is the capture time at which the hole was given up on. ``cause`` says
    why: ``"ack"`` (the peer acknowledged bytes the capture lacks), ``"snaplen"`` (the
    snap length cut them off), ``"limit"`` (too much was buffered above the hole),
    ``"end"`` (the connection ended with the hole still open) or ``"unseen"`` (between
    bytes captured late and the first bytes seen of a mid-stream connection).
    """

    conn: int
    direction: int
    offset: int
    length: int
    timestamp: float
    cause: str = "end"


@dataclass(slots=True, frozen=True)
class Conflict:
    """A later copy of ``length`` bytes at ``offset`` differed from the first copy."""

    conn: int
    direction: int
    offset: int
    length: int
    timestamp: float


@dataclass(slots=True, frozen=True)
class GapRetracted:
    """``length`` bytes at ``offset`` reported in a :class:`Gap` were not data after all.

    An acknowledgment seen before the FIN it acknowledges makes the FIN's sequence
    number look like a missing byte; when the FIN turns up, the gap is withdrawn.
    """

    conn: int
    direction: int
    offset: int
    length: int


Event = Data | Gap | Conflict | GapRetracted


class _Chunk:
    """A buffered, not yet deliverable piece; ``data is None`` for snap-length holes."""

    __slots__ = ("data", "end", "order", "start", "timestamp")

    def __init__(
        self, start: int, end: int, data: bytes | None, timestamp: float, order: int
    ) -> None:
        self.start = start
        self.end = end
        self.data = data
        self.timestamp = timestamp
        self.order = order


def _diff_span(a: bytes, b: bytes) -> tuple[int, int]:
    """First and one-past-last index where equal-length ``a`` and ``b`` differ."""
    first = 0
    while a[first] == b[first]:
        first += 1
    last = len(a)
    while a[last - 1] == b[last - 1]:
        last -= 1
    return first, last


class HalfStream:
    """Reassembly state of one direction of one connection.

    ``conn`` and ``direction`` only label the events. Call :meth:`segment` for every
    segment sent in this direction, :meth:`acked` when the other direction acknowledges
    a sequence number, and :meth:`finish` when the connection ends.
    """

    def __init__(
        self,
        conn: int,
        direction: int,
        *,
        keep: int = DEFAULT_KEEP,
        max_buffer: int = DEFAULT_MAX_BUFFER,
        pool: BufferPool | None = None,
    ) -> None:
        self.conn = conn
        self.direction = direction
        #: Shared with the other streams of an assembler, to bound their total.
        self.pool = pool if pool is not None else BufferPool()
        self._keep = keep
        self._max_buffer = max_buffer
        self._seq: Unwrapper | None = None
        #: Offset of the next byte to deliver: everything below was delivered or gapped.
        self.next = 0
        #: Highest offset known to have been sent (end of the highest segment).
        self.high = 0
        self.syn_seen = False
        #: Raw sequence number of the first SYN, to tell retransmitted SYNs from new ones.
        self.isn: int | None = None
        self.fin_offset: int | None = None
        self._pending: list[_Chunk] = []
        self._pending_starts: list[int] = []
        self.buffered = 0
        # The last delivered bytes, covering [_tail_start, next), for conflict checks.
        self._tail = bytearray()
        self._tail_start = 0
        #: Lowest offset belonging to the stream; it moves down for data captured late
        #: below the first sequence number seen, unless a SYN fixed the start.
        self.low = 0
        self.anchored = False
        self._data_seen = False
        #: Declared gaps that late segments may still fill: sorted [start, end) pairs.
        self._holes: list[list[int]] = []
        #: Counters for the connection's metadata and history.
        self.delivered = 0
        self.gap_bytes = 0
        self.retransmitted = 0
        self.before_start = 0
        self.keepalives = 0

    @property
    def started(self) -> bool:
        """Whether any segment of this direction has been seen."""
        return self._seq is not None

    @property
    def has_pending(self) -> bool:
        """Whether bytes wait above a hole."""
        return bool(self._pending)

    def offset_of(self, raw: int) -> int | None:
        """Relative offset of a raw sequence number, or None before the first segment."""
        return None if self._seq is None else self._seq.offset(raw)

    # -- input -------------------------------------------------------------------------

    def segment(
        self,
        seq: int,
        payload: bytes,
        missing: int,
        syn: bool,
        fin: bool,
        timestamp: float,
        order: int,
    ) -> tuple[list[Event], bool]:
        """Take one segment; return the events it causes and whether it was a retransmission.

        ``missing`` payload bytes followed ``payload`` on the wire but were not captured.
        """
        events: list[Event] = []
        if self._seq is None:
            # SYN occupies one sequence number, so data starts one after it.
            self._seq = Unwrapper(seq, -1 if syn else 0)
            self.anchored = syn
        if syn and not self.syn_seen:
            self.syn_seen = True
            self.isn = seq
            if not self.anchored and self.delivered == 0 and not self._pending:
                # Only empty packets so far (say a stray ACK with its own numbering):
                # the SYN defines the stream.
                self._seq = Unwrapper(seq, -1)
                self.next = self.low = self.high = 0
                self._tail_start = 0
                self._holes = []
                self.anchored = True
            elif not self.anchored:
                # A SYN captured after other packets of this side: it fixes the start.
                s0 = self._seq.offset(seq) + 1
                if s0 <= self.low and self.low - s0 <= PREFIX_WINDOW:
                    if s0 < self.low:
                        self._hole(s0, self.low - s0, timestamp, events, "unseen")
                        self.low = s0
                    self.anchored = True
        off = self._seq.advance(seq)
        if syn:
            off += 1
        length = len(payload) + missing
        end = off + length
        if fin and self.fin_offset is None:
            self.fin_offset = end
            self._retract_from(end, events)
        if length == 0:
            return events, False
        if not self.anchored and not self._data_seen:
            # Mid-stream: the first bytes seen (not the first empty ACK, whose number
            # may be the FIN's or beyond) start the stream.
            self.low = self.next = self._tail_start = off
            self.high = end
        self._data_seen = True
        if end > self.high:
            self.high = end
        if off < self.low:
            cut = min(self.low - off, length)
            if not self.anchored and self.low - off <= PREFIX_WINDOW:
                # Earlier bytes of a stream picked up mid-stream: the stream grows down.
                top = off + cut
                if top < self.low:
                    self._hole(top, self.low - top, timestamp, events, "unseen")
                self._emit(
                    off,
                    payload[:cut],
                    max(0, cut - len(payload)),
                    timestamp,
                    order,
                    events,
                    fill=True,
                )
                self.low = off
            else:
                # Before the SYN, or too far below the start to believe.
                self.before_start += cut
            if cut == length:
                return events, True
            if cut < len(payload):
                payload = payload[cut:]
            else:
                missing -= cut - len(payload)
                payload = b""
            off += cut
        retrans = False
        if off < self.next:
            retrans = True
            overlap = min(end, self.next) - off
            if length <= 1 and off == self.next - 1 and not fin and not self._in_hole(off):
                # A keep-alive probe: one garbage byte (or none) below the next
                # expected byte. It is not data and not a conflict.
                self.keepalives += 1
                return events, True
            self._fill_holes(off, payload[:overlap], timestamp, order, events)
            self._check_delivered(off, payload[:overlap], timestamp, events)
            self.retransmitted += overlap
            if end <= self.next:
                return events, True
            cut = self.next - off
            if cut < len(payload):
                payload = payload[cut:]
            else:
                missing -= cut - len(payload)
                payload = b""
            off = self.next
        if payload:
            retrans |= self._insert(off, off + len(payload), payload, timestamp, order, events)
        if missing > 0:
            self._insert(off + len(payload), end, None, timestamp, order, events)
        self._deliver(events)
        if self.buffered > self._max_buffer:
            self._skip_to_pending(timestamp, events, "limit")
        return events, retrans

    def acked(self, ack: int, timestamp: float) -> list[Event]:
        """The peer acknowledged ``ack``: any hole below it will never be filled."""
        events: list[Event] = []
        if self._seq is None or not (self.anchored or self._data_seen):
            return events
        target = self._seq.offset(ack)
        if self.fin_offset is not None and target > self.fin_offset:
            target = self.fin_offset
        if target <= self.next or target > self.high + MAX_ACK_JUMP:
            return events
        self._gap_until(target, timestamp, events)
        return events

    def release(self, timestamp: float, cause: str = "limit") -> list[Event]:
        """Give up on every hole with buffered bytes above it (gaps with ``cause``) and
        deliver those bytes, leaving nothing buffered: memory is short, or (``"end"``)
        the connection is over."""
        events: list[Event] = []
        while self._pending:
            self._skip_to_pending(timestamp, events, cause)
        return events

    def finish(self, timestamp: float) -> list[Event]:
        """The connection is over: give up on every hole and deliver what is buffered."""
        events = self.release(timestamp, "end")
        if self.fin_offset is not None and self.fin_offset > self.next:
            self._gap(self.fin_offset - self.next, timestamp, events, "end")
        return events

    # -- internals ---------------------------------------------------------------------

    def _check_delivered(
        self, off: int, data: bytes, timestamp: float, events: list[Event]
    ) -> None:
        """Compare a retransmitted copy with the delivered bytes still remembered."""
        lo = max(off, self._tail_start)
        hi = off + len(data)
        if hi <= lo:
            return
        old = bytes(self._tail[lo - self._tail_start : hi - self._tail_start])
        new = data[lo - off : hi - off]
        if len(old) == len(new) and old != new:
            first, last = _diff_span(old, new)
            events.append(Conflict(self.conn, self.direction, lo + first, last - first, timestamp))

    def _insert(
        self,
        start: int,
        end: int,
        data: bytes | None,
        timestamp: float,
        order: int,
        events: list[Event],
    ) -> bool:
        """Buffer ``[start, end)`` keeping earlier copies; return whether it overlapped.

        A snap-length hole (``data is None``) never replaces bytes, and real bytes
        replace a snap-length hole (the capture simply got them the second time).
        """
        overlapped = False
        pieces: list[_Chunk] = []
        i = bisect.bisect_right(self._pending_starts, start) - 1
        if i < 0:
            i = 0
        cur = start
        while cur < end:
            # Find the first buffered chunk that ends after cur.
            while i < len(self._pending) and self._pending[i].end <= cur:
                i += 1
            nxt = self._pending[i] if i < len(self._pending) else None
            if nxt is None or nxt.start >= end:
                pieces.append(self._piece(start, cur, end, data, timestamp, order))
                break
            if nxt.start > cur:
                pieces.append(self._piece(start, cur, nxt.start, data, timestamp, order))
                cur = nxt.start
            # Overlap with nxt over [cur, ov_end).
            ov_end = min(end, nxt.end)
            overlapped = True
            if nxt.data is not None and data is not None:
                old = nxt.data[cur - nxt.start : ov_end - nxt.start]
                new = data[cur - start : ov_end - start]
                if old != new:
                    first, last = _diff_span(old, new)
                    events.append(
                        Conflict(self.conn, self.direction, cur + first, last - first, timestamp)
                    )
            elif nxt.data is None and data is not None:
                # Replace the unknown bytes of a snap-length hole with real ones.
                self._split_hole(
                    i, cur, ov_end, data[cur - start : ov_end - start], timestamp, order
                )
                i = bisect.bisect_right(self._pending_starts, cur) - 1
            cur = ov_end
        for p in pieces:
            j = bisect.bisect_left(self._pending_starts, p.start)
            self._pending.insert(j, p)
            self._pending_starts.insert(j, p.start)
            self.buffered += p.end - p.start
            self.pool.buffered += p.end - p.start
        return overlapped

    @staticmethod
    def _piece(
        start: int, lo: int, hi: int, data: bytes | None, timestamp: float, order: int
    ) -> _Chunk:
        part = None if data is None else data[lo - start : hi - start]
        return _Chunk(lo, hi, part, timestamp, order)

    def _split_hole(
        self, i: int, lo: int, hi: int, data: bytes, timestamp: float, order: int
    ) -> None:
        """Replace ``[lo, hi)`` of the snap-length hole chunk ``i`` with ``data``."""
        hole = self._pending.pop(i)
        self._pending_starts.pop(i)
        self.buffered -= hole.end - hole.start
        self.pool.buffered -= hole.end - hole.start
        new = []
        if hole.start < lo:
            new.append(_Chunk(hole.start, lo, None, hole.timestamp, hole.order))
        new.append(_Chunk(lo, hi, data, timestamp, order))
        if hi < hole.end:
            new.append(_Chunk(hi, hole.end, None, hole.timestamp, hole.order))
        for k, c in enumerate(new):
            self._pending.insert(i + k, c)
            self._pending_starts.insert(i + k, c.start)
            self.buffered += c.end - c.start
            self.pool.buffered += c.end - c.start

    def _deliver(self, events: list[Event]) -> None:
        """Emit every buffered chunk that now starts exactly at ``next``."""
        pending = self._pending
        while pending and pending[0].start <= self.next:
            c = pending.pop(0)
            self._pending_starts.pop(0)
            self.buffered -= c.end - c.start
            self.pool.buffered -= c.end - c.start
            if c.end <= self.next:
                continue
            if c.data is None:
                self._gap(c.end - self.next, c.timestamp, events, "snaplen")
                continue
            data = c.data[self.next - c.start :]
            events.append(Data(self.conn, self.direction, self.next, data, c.timestamp, c.order))
            self.delivered += len(data)
            self.next += len(data)
            self._tail += data
            if len(self._tail) > 2 * self._keep:
                drop = len(self._tail) - self._keep
                del self._tail[:drop]
                self._tail_start += drop

    def _hole(
        self, start: int, length: int, timestamp: float, events: list[Event], cause: str
    ) -> None:
        """Declare ``[start, start + length)`` missing, but remember it for late fills."""
        events.append(Gap(self.conn, self.direction, start, length, timestamp, cause))
        self.gap_bytes += length
        holes = self._holes
        i = bisect.bisect_left(holes, [start, start + length])
        holes.insert(i, [start, start + length])
        if len(holes) > MAX_HOLES:
            holes.pop(0)

    def _in_hole(self, offset: int) -> bool:
        return any(h0 <= offset < h1 for h0, h1 in self._holes)

    def _retract_from(self, fin_offset: int, events: list[Event]) -> None:
        """Nothing at or after the FIN is data: withdraw gaps declared there."""
        kept: list[list[int]] = []
        for h0, h1 in self._holes:
            if h1 <= fin_offset:
                kept.append([h0, h1])
                continue
            lo = max(h0, fin_offset)
            events.append(GapRetracted(self.conn, self.direction, lo, h1 - lo))
            self.gap_bytes -= h1 - lo
            if h0 < lo:
                kept.append([h0, lo])
        self._holes = kept

    def _emit(
        self,
        start: int,
        data: bytes,
        missing: int,
        timestamp: float,
        order: int,
        events: list[Event],
        *,
        fill: bool,
    ) -> None:
        """Deliver bytes outside the normal in-order path (prefix data)."""
        if data:
            events.append(Data(self.conn, self.direction, start, data, timestamp, order, fill))
            self.delivered += len(data)
        if missing > 0:
            self._hole(start + len(data), missing, timestamp, events, "snaplen")

    def _fill_holes(
        self, off: int, data: bytes, timestamp: float, order: int, events: list[Event]
    ) -> None:
        """Deliver the parts of a late segment that fall into declared gaps."""
        if not self._holes or not data:
            return
        end = off + len(data)
        new: list[list[int]] = []
        for h0, h1 in self._holes:
            lo, hi = max(off, h0), min(end, h1)
            if lo >= hi:
                new.append([h0, h1])
                continue
            events.append(
                Data(
                    self.conn, self.direction, lo, data[lo - off : hi - off], timestamp, order, True
                )
            )
            self.delivered += hi - lo
            self.gap_bytes -= hi - lo
            if h0 < lo:
                new.append([h0, lo])
            if hi < h1:
                new.append([hi, h1])
        self._holes = new

    def _gap(self, length: int, timestamp: float, events: list[Event], cause: str) -> None:
        self._hole(self.next, length, timestamp, events, cause)
        self.next += length
        if self.next > self.high:
            self.high = self.next
        self._tail.clear()
        self._tail_start = self.next

    def _gap_until(self, target: int, timestamp: float, events: list[Event]) -> None:
        """Give up on every hole below ``target``, delivering buffered bytes between."""
        while self.next < target:
            if self._pending and self._pending[0].start <= self.next:
                self._deliver(events)
                continue
            hole_end = target
            if self._pending and self._pending[0].start < target:
                hole_end = self._pending[0].start
            self._gap(hole_end - self.next, timestamp, events, "ack")
            self._deliver(events)

    def _skip_to_pending(self, timestamp: float, events: list[Event], cause: str) -> None:
        """Declare the hole before the first buffered chunk a gap and deliver on from it."""
        if not self._pending:
            return
        first = self._pending[0].start
        if first > self.next:
            self._gap(first - self.next, timestamp, events, cause)
        self._deliver(events)
