"""Reassembly of one direction of a TCP connection (one "half" in gopacket's terms).

A :class:`HalfStream` receives the segments one side sent, in capture order, and emits
events in stream order: :class:`Data` for bytes that are now contiguous, :class:`Gap` for
bytes that will never be seen, :class:`Conflict` for a retransmission whose bytes differ
from what was already there. It is sans-IO: no clock, no files, no logging, and it never
raises on any input.

The rules it implements, and why:

* Sequence numbers are turned into unbounded relative offsets (:mod:`pcapflows.reassembly.seqnum`),
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
* A segment far outside any window the receiver could have advertised is damage, not
  data: it is held back and counted, unless a later packet confirms the jump.
* Nothing at or beyond the FIN is the stream.
* Every captured payload byte is counted in exactly one bucket (:meth:`HalfStream.buckets`).
"""

from __future__ import annotations

import bisect
from typing import NamedTuple

from pcapflows.limits import DEFAULT_MAX_BUFFER
from pcapflows.reassembly.events import Conflict, Data, Event, Gap, GapRetracted
from pcapflows.reassembly.pending import Chunk, Pending
from pcapflows.reassembly.seqnum import MASK, seq_diff
from pcapflows.stats import PAYLOAD_BUCKETS

#: Delivered bytes kept per direction to detect conflicting retransmissions. Older
#: retransmissions can no longer be compared and are only counted. 64 KiB covers the
#: unscaled TCP window, i.e. everything a sender may legitimately retransmit without
#: window scaling.
DEFAULT_KEEP = 65536


#: How far below the lowest byte seen so far a connection picked up mid-stream may still
#: grow downwards: a late SYN, or segments captured after later ones (merged or
#: shuffled captures), extend the stream at its start instead of being dropped.
PREFIX_WINDOW = 1 << 20

#: Declared gaps remembered per direction so that a segment captured late (after the
#: peer's ACK made us give up on it) can still fill them. Bytes that arrive for a hole
#: forgotten beyond this are counted as dropped by a limit.
MAX_HOLES = 1024

#: The plausible window of a direction: a segment (or an acknowledgment) more than this
#: beyond the highest byte seen in its direction, or more than this below the next byte
#: to deliver, is not believed (see :meth:`HalfStream.bound`). The floor is 1 MiB, the
#: bound is twice the largest window the receiver advertised (scaled), the ceiling
#: 1 GiB (the largest window TCP can advertise, RFC 7323).
MIN_BOUND = 1 << 20
MAX_BOUND = 1 << 30
#: The window scale assumed when the handshake was not captured: 7, the scale Linux
#: and Windows pick for their default buffers. (Suricata assumes the largest, 14; that
#: would let any number within 1 GiB pass unchecked.) A larger jump is still believed
#: once a second packet confirms it (see :meth:`HalfStream.segment`).
UNKNOWN_SCALE = 7
#: A jump this close to half the sequence space is never believed, even confirmed: its
#: direction is ambiguous (serial arithmetic flips at 2**31), and believing it would
#: place every later retransmission of older bytes 4 GiB ahead.
MAX_JUMP = (1 << 31) - (1 << 26)

#: Delivered pieces shorter than this are joined with a short piece before them in the
#: list kept for conflict checks, so that the list stays short (a retransmission is
#: compared by walking it) even when the sender writes a byte at a time.
KEEP_JOIN = 512

#: What one buffered piece costs beyond its payload (the piece object, its bytes
#: object's header, its slot in the sorted structure, its numbers), charged to the
#: buffer limits so that a million one-byte pieces cost what they really cost.
CHUNK_COST = 208

#: A new piece is merged with the piece that follows it only while that one is at most
#: this long (prepending copies it); merging with the piece before it is always cheap.
MERGE_MAX = 1024
#: Merged pieces grow to at most this size: a bigger one would save nothing more in
#: overhead, and would cost its whole size again when it is copied out (and in the
#: slack of a growing bytearray) at delivery.
MERGED_MAX = 64 * 1024

#: What :meth:`HalfStream.segment` says of a segment.
NEW = 0
RETRANSMISSION = 1
#: Not placed: its sequence number is implausible (see :meth:`HalfStream.bound`).
REFUSED = 2

# What the decision (:meth:`HalfStream._classify`) makes of a segment, before anything
# is done with it; each has one action.
#: The next bytes of a started stream, nothing buffered: delivered at once.
IN_ORDER = 0
#: The first segment of the direction, or a SYN: it starts (or moves) the stream.
START = 1
#: A sequence number no receiver would have accepted: held back until confirmed.
IMPLAUSIBLE = 2
#: No payload and no FIN (an ACK, a RST): it only moves the unwrapping.
EMPTY = 3
#: Anything else (a FIN, bytes below the start, a retransmission, bytes ahead of a
#: hole): cut into parts, each placed by its own action (:meth:`HalfStream._place`).
PLACE = 4


class BufferPool:
    """Bytes held above holes by a set of half-streams together (an assembler's), kept
    up to date by the streams themselves so that bounding the total costs nothing on
    the common in-order path."""

    __slots__ = ("buffered",)

    def __init__(self) -> None:
        self.buffered = 0


def _diff_span(a: bytes | bytearray, b: bytes | bytearray) -> tuple[int, int]:
    """First and one-past-last index where equal-length ``a`` and ``b`` differ."""
    first = 0
    while a[first] == b[first]:
        first += 1
    last = len(a)
    while a[last - 1] == b[last - 1]:
        last -= 1
    return first, last


def _hole_start(hole: list[int]) -> int:
    return hole[0]


class Position(NamedTuple):
    """The end state of a finished stream (see :meth:`HalfStream.position`): plain
    numbers only, so that the garbage collector need not track the thousands of them an
    assembler remembers. ``ref_raw``/``ref_off`` are the unwrapper's reference point."""

    ref_raw: int
    ref_off: int
    low: int
    end: int
    syn_seen: bool
    isn: int | None
    fin_offset: int | None
    acked_to: int | None
    peer_window: int
    peer_scale: int

    def holds(self, raw: int, slack: int) -> bool:
        """Whether raw sequence number ``raw`` lies in this stream's sequence space, or
        within ``slack`` of it."""
        off = self.ref_off + seq_diff(raw, self.ref_raw)
        return self.low - slack <= off <= self.end + slack


class _Suspect(NamedTuple):
    """A segment held back because its sequence number looked implausible, waiting for
    a second packet to confirm the jump."""

    off: int
    seq: int
    payload: bytes
    missing: int
    fin: bool
    timestamp: float
    order: int

    @property
    def end(self) -> int:
        return self.off + len(self.payload) + self.missing


#: Shared stand-ins for structures most streams never need (nothing buffered above a
#: hole, no gap remembered, no jump confirmed, nothing delivered yet): a stream gets
#: its own on first use, so that a quiet connection pays for none of them. They are
#: never modified: every method that adds to one replaces it first.
_NO_PENDING = Pending()
_NO_HOLES: list[list[int]] = []
_NO_SUSPECTS: list[_Suspect] = []
_NOTHING_KEPT: list[bytes] = []


class HalfStream:
    """Reassembly state of one direction of one connection.

    ``conn`` and ``direction`` only label the events. Call :meth:`segment` for every
    segment sent in this direction, :meth:`acked` when the other direction acknowledges
    a sequence number, and :meth:`finish` when the connection ends.

    Every captured payload byte given to :meth:`segment` ends in exactly one of the
    counters :attr:`delivered`, :attr:`duplicate`, :attr:`conflict`,
    :attr:`implausible`, :attr:`before_start` and :attr:`after_fin` once the stream is
    finished (:meth:`buckets`), so that nothing is ever lost without a count.
    """

    __slots__ = (
        "_data_seen",
        "_forgotten",
        "_holes",
        "_keep",
        "_kept",
        "_kept_start",
        "_max_buffer",
        "_pending",
        "_ref_off",
        "_ref_raw",
        "_suspect",
        "_suspect_ack",
        "_tail_start",
        "acked_to",
        "after_fin",
        "anchored",
        "before_start",
        "buffered",
        "confirmed",
        "conflict",
        "conn",
        "delivered",
        "direction",
        "duplicate",
        "fin_offset",
        "gap_bytes",
        "high",
        "implausible",
        "implausible_acks",
        "implausible_segments",
        "isn",
        "keepalives",
        "limit",
        "low",
        "next",
        "peer_scale",
        "peer_window",
        "pool",
        "successor",
        "syn_seen",
    )

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
        # The unwrapping of raw sequence numbers (:meth:`_offset`): the newest segment
        # start seen, raw and as an offset; every other raw value is placed at the
        # offset closest to it. ``_ref_raw`` is -1 until the first segment.
        self._ref_raw = -1
        self._ref_off = 0
        #: Offset of the next byte to deliver: everything below was delivered or gapped.
        self.next = 0
        #: Highest offset known to have been sent (end of the highest segment).
        self.high = 0
        self.syn_seen = False
        #: Raw sequence number of the first SYN, to tell retransmitted SYNs from new ones.
        self.isn: int | None = None
        self.fin_offset: int | None = None
        #: Highest offset the peer acknowledged (plausible acknowledgments only).
        self.acked_to: int | None = None
        self._pending = _NO_PENDING
        #: Bytes held above holes, plus :data:`CHUNK_COST` per piece.
        self.buffered = 0
        # Delivered bytes [_tail_start, next) are remembered for conflict checks: by
        # reference to the delivered payloads themselves (the bytes the consumer holds
        # anyway), ``_kept``, which cover [_kept_start, next), the first one possibly
        # reaching below ``_tail_start``. Between DEFAULT_KEEP and twice that is kept.
        self._tail_start = 0
        self._kept = _NOTHING_KEPT
        self._kept_start = 0
        #: Lowest offset belonging to the stream; it moves down for data captured late
        #: below the first sequence number seen, unless a SYN fixed the start.
        self.low = 0
        self.anchored = False
        self._data_seen = False
        #: Set on a stream that continues the sequence space of a connection already
        #: finished on the same addresses: bytes below its start are that connection's
        #: retransmissions.
        self.successor = False
        #: Declared gaps that late segments may still fill: sorted [start, end) pairs,
        #: at most :data:`MAX_HOLES`; holes below ``_forgotten`` may have been dropped.
        self._holes = _NO_HOLES
        self._forgotten = -(1 << 62)
        #: Largest window the peer advertised (as on the wire) and the scale it applies.
        self.peer_window = 0
        self.peer_scale = UNKNOWN_SCALE
        self._suspect: _Suspect | None = None
        #: An implausible acknowledgment (offset, time), waiting for confirmation.
        self._suspect_ack: tuple[int, float] | None = None
        #: Segments first refused, then placed when a later packet confirmed them; the
        #: connection drains this to record their flags.
        self.confirmed = _NO_SUSPECTS
        #: Where the captured payload bytes went (see :meth:`buckets`).
        self.delivered = 0
        self.duplicate = 0
        self.conflict = 0
        self.implausible = 0
        self.before_start = 0
        self.after_fin = 0
        self.limit = 0
        #: Bytes declared missing (gaps), segments and acknowledgments not believed.
        self.gap_bytes = 0
        self.implausible_segments = 0
        self.implausible_acks = 0
        self.keepalives = 0

    @property
    def started(self) -> bool:
        """Whether any segment of this direction has been seen."""
        return self._ref_raw >= 0

    @property
    def has_pending(self) -> bool:
        """Whether bytes wait above a hole."""
        return bool(self._pending)

    @property
    def fin_acked(self) -> bool:
        """Whether the peer acknowledged this direction's FIN."""
        return (
            self.fin_offset is not None
            and self.acked_to is not None
            and self.acked_to > self.fin_offset
        )

    def offset_of(self, raw: int) -> int | None:
        """Relative offset of a raw sequence number, or None before the first segment."""
        return None if self._ref_raw < 0 else self._offset(raw)

    def _offset(self, raw: int) -> int:
        """The offset of raw sequence number ``raw`` (a started stream), without moving
        the reference point: the one closest to it, as serial arithmetic says."""
        return self._ref_off + seq_diff(raw, self._ref_raw)

    def _advance(self, raw: int) -> int:
        """:meth:`_offset`, moving the reference forward if ``raw`` is newer."""
        off = self._offset(raw)
        self._newer(raw, off)
        return off

    def _newer(self, raw: int, off: int) -> None:
        """Make ``raw``, at ``off`` (its :meth:`_offset`), the reference if it is newer."""
        if off > self._ref_off:
            self._ref_off = off
            self._ref_raw = raw & MASK

    def _start(self, raw: int, offset: int) -> None:
        """Let raw sequence number ``raw`` be at ``offset``."""
        self._ref_raw = raw & MASK
        self._ref_off = offset

    def bound(self) -> int:
        """How far beyond the highest byte seen a segment may plausibly start.

        A receiver never accepts bytes beyond the window it advertised, so a segment
        much further ahead is damage or forgery, not data: Suricata drops segments
        outside the receiver's window ("packet out of window") and Zeek refuses
        sequence numbers it cannot place. pcapflows allows twice the largest window
        the peer advertised, scaled (window updates race with data), at least 1 MiB
        and at most 1 GiB.
        """
        b = 2 * (self.peer_window << self.peer_scale)
        return MIN_BOUND if b < MIN_BOUND else (MAX_BOUND if b > MAX_BOUND else b)

    def buckets(self) -> dict[str, int]:
        """Where the captured payload bytes of this direction went."""
        return {k: getattr(self, k) for k in PAYLOAD_BUCKETS}

    def position(self) -> Position | None:
        """Where this (finished) stream ended, for a connection that may continue it;
        None if this direction sent nothing."""
        if self._ref_raw < 0:
            return None
        return Position(
            self._ref_raw,
            self._ref_off,
            self.low,
            max(self.next, self.high),
            self.syn_seen,
            self.isn,
            self.fin_offset,
            self.acked_to,
            self.peer_window,
            self.peer_scale,
        )

    def seed(self, pos: Position) -> None:
        """Continue the sequence space of a finished stream of the same direction and
        addresses: its bytes are never delivered again (they are retransmissions)."""
        self._start(pos.ref_raw, pos.ref_off)
        self.next = self.low = self.high = self._tail_start = self._kept_start = pos.end
        self.anchored = self._data_seen = self.successor = True
        self.syn_seen = pos.syn_seen
        self.isn = pos.isn
        self.fin_offset = pos.fin_offset
        self.acked_to = pos.acked_to
        self.peer_window = pos.peer_window
        self.peer_scale = pos.peer_scale

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
    ) -> tuple[list[Event], int]:
        """Take one segment; return its events and :data:`NEW`, :data:`RETRANSMISSION`
        or :data:`REFUSED` (an implausible sequence number: nothing was placed).

        ``missing`` payload bytes followed ``payload`` on the wire but were not captured.
        """
        events: list[Event] = []
        return events, self.take(seq, payload, missing, syn, fin, timestamp, order, events)

    def take(
        self,
        seq: int,
        payload: bytes,
        missing: int,
        syn: bool,
        fin: bool,
        timestamp: float,
        order: int,
        events: list[Event],
    ) -> int:
        """:meth:`segment`, appending the events to ``events`` (one list for a whole
        packet, instead of one per level that the caller then copies).

        First the decision (:meth:`_classify`), then one action for what was decided, as
        gopacket's assembler does: nothing is changed before it is known where the
        segment goes.
        """
        kind, off = self._classify(seq, payload, missing, syn, fin)
        if kind == IN_ORDER:
            self._append(seq, off, payload, timestamp, order, events)
            return NEW
        if kind == IMPLAUSIBLE:
            s = _Suspect(off, seq, payload, missing, fin, timestamp, order)
            return self._suspicious(s, events)
        if kind == START:
            return self._place(seq, payload, missing, syn, fin, timestamp, order, events)
        # A plausible segment: an implausible one held back is not confirmed by it.
        if self._suspect is not None:
            self._drop_suspect()
        if kind == EMPTY:
            self._advance(seq)
            return NEW
        return self._place(seq, payload, missing, syn, fin, timestamp, order, events)

    def _classify(
        self, seq: int, payload: bytes, missing: int, syn: bool, fin: bool
    ) -> tuple[int, int]:
        """What a segment is (:data:`IN_ORDER`, :data:`START`, :data:`IMPLAUSIBLE`,
        :data:`EMPTY` or :data:`PLACE`), and its offset (0 for :data:`START`).

        :data:`IN_ORDER` is tested first because nearly every data segment of a healthy
        capture is one: the next bytes, nothing buffered that they could overlap or that
        would have to come first, no FIN to clip at, nothing held back as implausible.
        """
        if self._ref_raw < 0 or syn:
            # The first segment, or a SYN: it fixes (or moves) the stream's start and is
            # never judged against a window it defines itself.
            return START, 0
        off = self._offset(seq)
        if (
            off == self.next
            and payload
            and not missing
            and not fin
            and not self._pending
            and self._suspect is None
            and self.fin_offset is None
            and off >= self.low
            and (self.anchored or self._data_seen)
        ):
            return IN_ORDER, off
        if not self._plausible(off, len(payload) + missing):
            return IMPLAUSIBLE, off
        if not payload and not missing and not fin:
            return EMPTY, off
        return PLACE, off

    def _append(
        self, seq: int, off: int, payload: bytes, timestamp: float, order: int, events: list[Event]
    ) -> None:
        """Action for :data:`IN_ORDER`: the bytes are delivered as they are, without being
        buffered first (gopacket delivers in-order bytes at once too)."""
        self._advance(seq)
        self._data_seen = True
        end = off + len(payload)
        if end > self.high:
            self.high = end
        events.append(Data(self.conn, self.direction, off, payload, timestamp, order))
        self._delivered(payload)

    def deliver_next(
        self, seq: int, payload: bytes, timestamp: float, order: int, events: list[Event]
    ) -> bool:
        """The short path of :meth:`take` for a segment without SYN or FIN whose
        payload (all captured) may be the next bytes: if it is (the :data:`IN_ORDER`
        case), deliver it and return True; otherwise change nothing and return False
        (the caller then goes the whole way). No chunk, no buffer, no copy: the event
        carries the segment's own bytes."""
        if (
            self._pending.count
            or self._suspect is not None
            or self.fin_offset is not None
            or not (self.anchored or self._data_seen)
        ):
            return False
        if self._ref_raw < 0:
            return False
        off = self._offset(seq)
        if off != self.next or off < self.low:
            return False
        self._newer(seq, off)
        end = off + len(payload)
        if end >= self.high:
            self.high = end
        self._data_seen = True
        events.append(Data(self.conn, self.direction, off, payload, timestamp, order))
        self._delivered(payload)
        return True

    def skip_empty(self, seq: int) -> bool:
        """The short path of :meth:`take` for an empty segment (no payload, SYN or FIN)
        within the stream as seen so far: it only moves the unwrapping. Return False,
        changing nothing, for any other case."""
        if self._ref_raw < 0 or self._suspect is not None:
            return False
        off = self._offset(seq)
        nxt = self.next
        high = self.high
        if not nxt <= off <= (high if high > nxt else nxt):
            return False
        self._newer(seq, off)
        return True

    def _plausible(self, off: int, length: int) -> bool:
        top = self.high if self.high > self.next else self.next
        if off <= top and off + length >= self.next:
            return True  # the common case, without computing the bound
        b = self.bound()
        return off <= top + b and off + length >= min(self.next, self.low) - b

    def _suspicious(self, s: _Suspect, events: list[Event]) -> int:
        """Action for :data:`IMPLAUSIBLE`: the segment is held back, unless a second
        packet confirms the jump.

        A later segment of this direction that goes on from it (starts after it, within
        the window of its end), or the peer acknowledging exactly its start or at least
        its end, means that the capture lost that much (a capture cut down to a few
        packets of a huge transfer), not that a number was damaged. A duplicate of the
        same segment confirms nothing, nor does a jump near half the sequence space.
        """
        ack = self._suspect_ack
        if ack is not None and ack[0] == s.off and self._believable(s.off):
            self._suspect_ack = None
            self._drop_suspect()
            status = self._confirm(s, events)
            self._ack_offset(ack[0], ack[1], events)
            return status
        prev = self._suspect
        if (
            prev is not None
            and prev.off < s.off <= prev.end + self.bound()
            and self._believable(prev.off)
        ):
            self._suspect = None
            self._confirm(prev, events)
            return self._confirm(s, events)
        self._drop_suspect()
        self._suspect = s
        return REFUSED

    def _believable(self, off: int) -> bool:
        """Whether a jump to ``off`` may be believed once confirmed."""
        top = self.high if self.high > self.next else self.next
        return off - top <= MAX_JUMP and min(self.next, self.low) - off <= MAX_JUMP

    def _confirm(self, s: _Suspect, events: list[Event]) -> int:
        """Place a segment whose jump was confirmed; remember it for the connection's
        flags (it was reported as refused when it arrived)."""
        if self.confirmed is _NO_SUSPECTS:
            self.confirmed = []
        self.confirmed.append(s)
        return self._place(s.seq, s.payload, s.missing, False, s.fin, s.timestamp, s.order, events)

    def _drop_suspect(self) -> None:
        s = self._suspect
        if s is not None:
            self.implausible += len(s.payload)
            self.implausible_segments += 1
            self._suspect = None

    def _drop_suspect_ack(self) -> None:
        ack = self._suspect_ack
        if ack is not None:
            self._suspect_ack = None
            top = self.high if self.high > self.next else self.next
            if not self.next <= ack[0] <= top:
                # (One that a confirmed jump has since made ordinary was not damaged.)
                self.implausible_acks += 1

    def _place(
        self,
        seq: int,
        payload: bytes,
        missing: int,
        syn: bool,
        fin: bool,
        timestamp: float,
        order: int,
        events: list[Event],
    ) -> int:
        """Action for :data:`START` and :data:`PLACE` (and a confirmed jump).

        The segment is cut into parts, in stream order, and each part gets its own
        action: what lies at or beyond the FIN is not the stream (:meth:`_clip_at_fin`);
        what lies below the stream's start grows it downwards or is only counted
        (:meth:`_below_start`); what lies below the next byte was delivered already and
        is compared with it (:meth:`_below_next`); the rest is new, delivered at once
        when it is next in order and queued above the hole otherwise (:meth:`_new`).
        """
        off = self._locate(seq, syn, timestamp, events)
        length = len(payload) + missing
        end = off + length
        if fin and self.fin_offset is None and (end >= self.low or not self.syn_seen):
            # The first FIN ends the stream, unless it lies below the SYN (a FIN sent
            # before the SYN-ACK is an evasion trick, not this stream's end).
            self._end_at(end, events)
        elif self.fin_offset is not None and end > self.fin_offset:
            payload, missing = self._clip_at_fin(off, payload, missing, self.fin_offset)
            length = len(payload) + missing
            end = off + length
        if length == 0:
            return NEW
        self._see_data(off, end)
        if off < self.low:
            cut = self._below_start(off, payload, missing, length, timestamp, order, events)
            if cut == length:
                return RETRANSMISSION
            payload, missing = _trim(payload, missing, cut)
            off += cut
        status = NEW
        if off < self.next:
            status = RETRANSMISSION
            if self._below_next(off, end, payload, length, fin, timestamp, order, events):
                return RETRANSMISSION
            payload, missing = _trim(payload, missing, self.next - off)
            off = self.next
        if self._new(off, end, payload, missing, timestamp, order, events):
            status = RETRANSMISSION
        self._deliver(events)
        if self.buffered > self._max_buffer:
            self._skip_to_pending(timestamp, events, "limit")
        return status

    def _locate(self, seq: int, syn: bool, timestamp: float, events: list[Event]) -> int:
        """The offset of a segment's first byte of data; the first segment starts the
        sequence space, and a first SYN fixes where the stream starts."""
        if self._ref_raw < 0:
            # SYN occupies one sequence number, so data starts one after it.
            self._start(seq, -1 if syn else 0)
            self.anchored = syn
        if syn and not self.syn_seen:
            self._first_syn(seq, timestamp, events)
        off = self._advance(seq)
        return off + 1 if syn else off

    def _first_syn(self, seq: int, timestamp: float, events: list[Event]) -> None:
        """The first SYN of this direction: it defines offset 0."""
        self.syn_seen = True
        self.isn = seq
        if not self.anchored and self.delivered == 0 and not self._pending:
            # Only empty packets so far (say a stray ACK with its own numbering):
            # the SYN defines the stream; what was learnt moves with it.
            # A FIN or an acknowledgment below the SYN was not about this stream.
            shift = -1 - self._offset(seq)
            if self.fin_offset is not None:
                self.fin_offset += shift
                if self.fin_offset < 0:
                    self.fin_offset = None
            if self.acked_to is not None:
                self.acked_to += shift
                if self.acked_to < 0:
                    self.acked_to = None
            self._start(seq, -1)
            self.next = self.low = self.high = 0
            self._tail_start = self._kept_start = 0
            self._holes = _NO_HOLES
            self.anchored = True
        elif not self.anchored:
            # A SYN captured after other packets of this side: it fixes the start.
            s0 = self._offset(seq) + 1
            if s0 <= self.low and self.low - s0 <= PREFIX_WINDOW:
                if s0 < self.low:
                    self._hole(s0, self.low - s0, timestamp, events, "unseen")
                    self.low = s0
                self.anchored = True

    def _end_at(self, fin_offset: int, events: list[Event]) -> None:
        """The first FIN: the stream ends at ``fin_offset``; gaps declared and bytes
        buffered at or beyond it were not the stream."""
        self.fin_offset = fin_offset
        self._retract_from(fin_offset, events)
        self._drop_after(fin_offset)

    def _clip_at_fin(
        self, off: int, payload: bytes, missing: int, fin_offset: int
    ) -> tuple[bytes, int]:
        """The part of a segment below the FIN; the captured bytes beyond it are
        counted (``after_fin``)."""
        keep = max(fin_offset - off, 0)
        self.after_fin += max(len(payload) - keep, 0)
        if keep < len(payload):
            return payload[:keep], 0
        return payload, keep - len(payload)

    def _see_data(self, off: int, end: int) -> None:
        """A segment with data (after clipping): the first one of a stream picked up
        mid-stream starts it (not the first empty ACK, whose number may be the FIN's or
        beyond)."""
        if not self.anchored and not self._data_seen:
            self.low = self.next = self._tail_start = self._kept_start = off
            self.high = end
        self._data_seen = True
        if end > self.high:
            self.high = end

    def _below_start(
        self,
        off: int,
        payload: bytes,
        missing: int,
        length: int,
        timestamp: float,
        order: int,
        events: list[Event],
    ) -> int:
        """The part below the stream's lowest offset; return its length."""
        cut = min(self.low - off, length)
        captured = min(cut, len(payload))
        if not self.anchored and self.low - off <= PREFIX_WINDOW:
            # Earlier bytes of a stream picked up mid-stream: the stream grows down.
            top = off + cut
            if top < self.low:
                self._hole(top, self.low - top, timestamp, events, "unseen")
            self._emit(off, payload[:cut], max(0, cut - len(payload)), timestamp, order, events)
            self.low = off
        elif self.successor:
            # Bytes the finished connection before this one already had.
            self.duplicate += captured
        else:
            # Before the SYN, or too far below the start to believe.
            self.before_start += captured
        return cut

    def _below_next(
        self,
        off: int,
        end: int,
        payload: bytes,
        length: int,
        fin: bool,
        timestamp: float,
        order: int,
        events: list[Event],
    ) -> bool:
        """The part below the next byte to deliver (a retransmission): it fills declared
        gaps, or is compared with what was delivered. Return whether the whole segment
        was such a part (``length`` is the segment's before its part below the start
        was cut off)."""
        overlap = min(end, self.next) - off
        if length <= 1 and off == self.next - 1 and not fin and not self._in_hole(off):
            # A keep-alive probe: one garbage byte (or none) below the next
            # expected byte. It is not data and not a conflict.
            self.keepalives += 1
            self.duplicate += len(payload)
            return True
        old = payload[:overlap]
        filled = self._fill_holes(off, old, timestamp, order, events)
        differ = self._check_delivered(off, old, timestamp, events)
        rest = len(old) - filled - differ
        # Below holes forgotten for want of room, a byte may have been a late fill:
        # what it was cannot be told, because a limit discarded what would tell.
        lost = min(max(0, min(off + len(old), self._tail_start, self._forgotten) - off), rest)
        self.limit += lost
        self.duplicate += rest - lost
        self.conflict += differ
        return end <= self.next

    def _new(
        self,
        off: int,
        end: int,
        payload: bytes,
        missing: int,
        timestamp: float,
        order: int,
        events: list[Event],
    ) -> bool:
        """The part at or beyond the next byte: delivered at once when it is next and
        overlaps nothing buffered, otherwise buffered (overlapping pieces keep their
        first copy). Return whether it overlapped buffered bytes."""
        overlapped = False
        if payload:
            top = off + len(payload)
            pend = self._pending
            if off == self.next and (not pend or top <= pend.first().start):
                events.append(Data(self.conn, self.direction, off, payload, timestamp, order))
                self._delivered(payload)
            else:
                overlapped = self._insert(off, top, payload, timestamp, order, events)
        if missing > 0:
            self._insert(end - missing, end, None, timestamp, order, events)
        return overlapped

    def acked(self, ack: int, timestamp: float) -> list[Event]:
        """The peer acknowledged ``ack``: any hole below it will never be filled."""
        events: list[Event] = []
        self.ack(ack, timestamp, events)
        return events

    def ack(self, ack: int, timestamp: float, events: list[Event]) -> None:
        """:meth:`acked`, appending the events to ``events``."""
        if self._ref_raw < 0:
            return
        target = self._offset(ack)
        if target == self.next and self._suspect_ack is None:
            # The common case: everything delivered so far is acknowledged.
            if self.acked_to is None or target > self.acked_to:
                self.acked_to = self.next  # (the same number object)
            return
        self._ack_offset(target, timestamp, events)

    def ack_next(self, ack: int) -> bool:
        """The short path of :meth:`ack`: if ``ack`` acknowledges exactly everything
        delivered (and no implausible acknowledgment waits), record it and return True;
        otherwise change nothing and return False."""
        if self._ref_raw < 0 or self._suspect_ack is not None:
            return False
        nxt = self.next
        if self._offset(ack) != nxt:
            return False
        acked = self.acked_to
        if acked is None or nxt > acked:
            self.acked_to = nxt
        return True

    def _ack_offset(self, target: int, timestamp: float, events: list[Event]) -> None:
        """:meth:`ack`, with the acknowledgment already turned into an offset."""
        if not self._plausible(target, 0):
            # Not an acknowledgment any receiver could send, unless a segment held back
            # as implausible (or a second acknowledgment) agrees.
            b = self.bound()
            s = self._suspect
            if s is not None and self._believable(s.off):
                if target == s.off or s.end <= target <= s.end + b:
                    self._suspect = None
                    self._confirm(s, events)
                    self._ack_offset(target, timestamp, events)
                    return
            prev = self._suspect_ack
            if not (
                prev is not None and prev[0] < target <= prev[0] + b and self._believable(prev[0])
            ):
                self._drop_suspect_ack()
                self._suspect_ack = (target, timestamp)
                return
            self._suspect_ack = None
        elif self._suspect_ack is not None:
            self._drop_suspect_ack()
        if self.acked_to is None or target > self.acked_to:
            self.acked_to = target
        if not (self.anchored or self._data_seen):
            return
        if self.fin_offset is not None and target > self.fin_offset:
            target = self.fin_offset
        if target <= self.next:
            return
        self._gap_until(target, timestamp, events)

    def release(self, timestamp: float, cause: str = "limit") -> list[Event]:
        """Give up on every hole with buffered bytes above it (gaps with ``cause``) and
        deliver those bytes, leaving nothing buffered: memory is short, or (``"end"``)
        the connection is over."""
        events: list[Event] = []
        while self._pending:
            self._skip_to_pending(timestamp, events, cause)
        return events

    def finish(self, timestamp: float) -> list[Event]:
        """The connection is over: give up on every hole and deliver what is buffered.

        A segment or acknowledgment still held back as implausible is counted as such."""
        self._drop_suspect()
        self._drop_suspect_ack()
        events = self.release(timestamp, "end")
        if self.fin_offset is not None and self.fin_offset > self.next:
            self._gap(self.fin_offset - self.next, timestamp, events, "end")
        return events

    # -- internals ---------------------------------------------------------------------

    def _check_delivered(self, off: int, data: bytes, timestamp: float, events: list[Event]) -> int:
        """Compare a retransmitted copy with the delivered bytes still remembered;
        return how many bytes the reported conflict spans."""
        lo = max(off, self._tail_start)
        hi = min(off + len(data), self.next)
        if hi <= lo:
            return 0
        old = self._kept_bytes(lo, hi)
        new = data[lo - off : hi - off]
        if old == new:
            return 0
        first, last = _diff_span(old, new)
        events.append(Conflict(self.conn, self.direction, lo + first, last - first, timestamp))
        return last - first

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
        cur = start
        fresh: list[tuple[int, int]] = []
        holes: list[tuple[Chunk, int, int]] = []
        overlapping = self._pending.overlapping(start, end)
        for c in overlapping:
            lo = c.start if c.start > cur else cur
            hi = c.end if c.end < end else end
            if lo > cur:
                fresh.append((cur, lo))
            if data is not None:
                if c.data is None:
                    holes.append((c, lo, hi))
                else:
                    old = c.data[lo - c.start : hi - c.start]
                    new = data[lo - start : hi - start]
                    differ = 0
                    if old != new:
                        first, last = _diff_span(old, new)
                        differ = last - first
                        events.append(
                            Conflict(self.conn, self.direction, lo + first, differ, timestamp)
                        )
                    self.conflict += differ
                    self.duplicate += hi - lo - differ
            cur = hi
        if cur < end:
            fresh.append((cur, end))
        if holes:
            assert data is not None  # only real bytes replace a snap-length hole
            for c, lo, hi in holes:
                self._split_hole(c, lo, hi, data[lo - start : hi - start], timestamp, order)
        for lo, hi in fresh:
            part = None if data is None else data[lo - start : hi - start]
            self._add(Chunk(lo, hi, part, timestamp, order))
        return bool(overlapping)

    def _charge(self, amount: int) -> None:
        self.buffered += amount
        self.pool.buffered += amount

    def _add(self, c: Chunk) -> None:
        """Buffer a piece that overlaps none, merged with data pieces it touches."""
        pend = self._pending
        if pend is _NO_PENDING:
            pend = self._pending = Pending()
        cost = c.end - c.start + CHUNK_COST
        data = c.data
        if data is None or c.start <= self.next:
            # A piece that is delivered at once is left alone.
            pend.add(c)
            self._charge(cost)
            return
        # Pieces that wait are merged: one event, with the first byte's time, for a run
        # that is delivered at once, and one overhead instead of many.
        prev = pend.before(c.start)
        if (
            prev is not None
            and prev.end == c.start
            and prev.data is not None
            and len(prev.data) + len(data) <= MERGED_MAX
        ):
            grown = prev.data if isinstance(prev.data, bytearray) else bytearray(prev.data)
            grown += data
            prev.data = data = grown
            prev.end = c.end
            if c.order > prev.order:
                prev.order = c.order
            cost -= CHUNK_COST
            c = prev
        nxt = pend.starting_at(c.end)
        # Appending copies the next piece: only when it is short, or no longer than this
        # one (so that each byte is copied a logarithmic number of times at most).
        if (
            nxt is not None
            and nxt.data is not None
            and len(nxt.data) <= max(MERGE_MAX, len(data))
            and len(nxt.data) + len(data) <= MERGED_MAX
        ):
            pend.remove(nxt)
            grown = data if isinstance(data, bytearray) else bytearray(data)
            grown += nxt.data
            c.data = grown
            c.end = nxt.end
            if nxt.order > c.order:
                c.order = nxt.order
            cost -= CHUNK_COST
        if c is not prev:
            pend.add(c)
        self._charge(cost)

    def _split_hole(
        self, hole: Chunk, lo: int, hi: int, data: bytes, timestamp: float, order: int
    ) -> None:
        """Replace ``[lo, hi)`` of the snap-length hole ``hole`` with ``data``."""
        self._pending.remove(hole)
        self._charge(-(hole.end - hole.start + CHUNK_COST))
        if hole.start < lo:
            self._add(Chunk(hole.start, lo, None, hole.timestamp, hole.order))
        if hi < hole.end:
            self._add(Chunk(hi, hole.end, None, hole.timestamp, hole.order))
        self._add(Chunk(lo, hi, data, timestamp, order))

    def _drop_after(self, fin_offset: int) -> None:
        """The FIN is at ``fin_offset``: buffered bytes beyond it are not the stream."""
        pend = self._pending
        while pend and pend.last().end > fin_offset:
            c = pend.pop_last()
            self._charge(-(c.end - c.start + CHUNK_COST))
            if c.start < fin_offset:
                keep = fin_offset - c.start
                if c.data is not None:
                    self.after_fin += len(c.data) - keep
                    c.data = c.data[:keep]
                c.end = fin_offset
                self._add(c)
                break
            if c.data is not None:
                self.after_fin += len(c.data)

    def _deliver(self, events: list[Event]) -> None:
        """Emit every buffered piece that now starts exactly at ``next``."""
        pend = self._pending
        while pend and pend.first().start <= self.next:
            c = pend.pop_first()
            self._charge(-(c.end - c.start + CHUNK_COST))
            if c.end <= self.next:
                if c.data is not None:
                    self.duplicate += len(c.data)
                continue
            if c.data is None:
                self._gap(c.end - self.next, c.timestamp, events, "snaplen")
                continue
            skip = self.next - c.start
            if skip:
                self.duplicate += skip
            raw = c.data
            data = bytes(raw[skip:]) if skip or isinstance(raw, bytearray) else raw
            events.append(Data(self.conn, self.direction, self.next, data, c.timestamp, c.order))
            self._delivered(data)

    def _delivered(self, data: bytes) -> None:
        """``data`` was delivered at ``next``: move on, and remember it (by reference)
        for comparisons."""
        n = len(data)
        self.delivered += n
        nxt = self.next = self.next + n
        if self.high == nxt:
            self.high = nxt  # one number object for both (a quiet stream holds many)
        kept = self._kept
        if kept is _NOTHING_KEPT:
            self._kept = [data]
        elif n < KEEP_JOIN and len(kept[-1]) < KEEP_JOIN:
            # Short pieces are joined (a copy of at most twice KEEP_JOIN bytes), so that
            # a sender writing single bytes does not make the list long.
            kept[-1] += data
        else:
            kept.append(data)
        if self.next - self._tail_start > 2 * self._keep:
            self._forget_kept()

    def _forget_kept(self) -> None:
        """Keep the last DEFAULT_KEEP delivered bytes: the pieces wholly below them are
        let go."""
        tail_start = self._tail_start = self.next - self._keep
        kept = self._kept
        start = self._kept_start
        i = 0
        while start + len(kept[i]) <= tail_start:
            start += len(kept[i])
            i += 1
        del kept[:i]
        self._kept_start = start

    def _kept_bytes(self, lo: int, hi: int) -> bytes:
        """The delivered bytes ``[lo, hi)`` (remembered: ``_tail_start <= lo < hi <=
        next``), walking the kept pieces from the newest (retransmissions are usually of
        recent bytes)."""
        parts: list[bytes] = []
        kept = self._kept
        end = self.next
        i = len(kept) - 1
        while end > lo:
            piece = kept[i]
            start = end - len(piece)
            if start < hi:
                parts.append(piece[max(lo, start) - start : min(hi, end) - start])
            end = start
            i -= 1
        parts.reverse()
        return b"".join(parts)

    def _hole(
        self, start: int, length: int, timestamp: float, events: list[Event], cause: str
    ) -> None:
        """Declare ``[start, start + length)`` missing, but remember it for late fills."""
        events.append(Gap(self.conn, self.direction, start, length, timestamp, cause))
        self.gap_bytes += length
        holes = self._holes
        if holes is _NO_HOLES:
            holes = self._holes = []
        i = bisect.bisect_left(holes, [start, start + length])
        holes.insert(i, [start, start + length])
        if len(holes) > MAX_HOLES:
            self._forget(len(holes) - MAX_HOLES)

    def _forget(self, n: int) -> None:
        """Forget the ``n`` lowest remembered holes (memory is bounded)."""
        holes = self._holes
        end = max(h1 for _, h1 in holes[:n])
        if end > self._forgotten:
            self._forgotten = end
        del holes[:n]

    def _first_hole(self, offset: int) -> int:
        """Index of the first remembered hole that ends after ``offset``."""
        holes = self._holes
        i = bisect.bisect_right(holes, offset, key=_hole_start) - 1
        if i < 0 or holes[i][1] <= offset:
            i += 1
        return i

    def _in_hole(self, offset: int) -> bool:
        i = self._first_hole(offset)
        return i < len(self._holes) and self._holes[i][0] <= offset

    def _retract_from(self, fin_offset: int, events: list[Event]) -> None:
        """Nothing at or after the FIN is data: withdraw gaps declared there."""
        holes = self._holes
        if not holes:
            return
        i = self._first_hole(fin_offset)
        kept: list[list[int]] = []
        for h0, h1 in holes[i:]:
            lo = max(h0, fin_offset)
            events.append(GapRetracted(self.conn, self.direction, lo, h1 - lo))
            self.gap_bytes -= h1 - lo
            if h0 < lo:
                kept.append([h0, lo])
        holes[i:] = kept

    def _emit(
        self,
        start: int,
        data: bytes,
        missing: int,
        timestamp: float,
        order: int,
        events: list[Event],
    ) -> None:
        """Deliver bytes outside the normal in-order path (prefix data)."""
        if data:
            events.append(Data(self.conn, self.direction, start, data, timestamp, order, True))
            self.delivered += len(data)
        if missing > 0:
            self._hole(start + len(data), missing, timestamp, events, "snaplen")

    def _fill_holes(
        self, off: int, data: bytes, timestamp: float, order: int, events: list[Event]
    ) -> int:
        """Deliver the parts of a late segment that fall into declared gaps; return how
        many bytes that was."""
        holes = self._holes
        if not holes or not data:
            return 0
        end = off + len(data)
        i = self._first_hole(off)
        j = i
        filled = 0
        new: list[list[int]] = []
        while j < len(holes) and holes[j][0] < end:
            h0, h1 = holes[j]
            lo, hi = max(off, h0), min(end, h1)
            events.append(
                Data(
                    self.conn, self.direction, lo, data[lo - off : hi - off], timestamp, order, True
                )
            )
            filled += hi - lo
            self.gap_bytes -= hi - lo
            if h0 < lo:
                new.append([h0, lo])
            if hi < h1:
                new.append([hi, h1])
            j += 1
        holes[i:j] = new
        if len(holes) > MAX_HOLES:
            self._forget(len(holes) - MAX_HOLES)
        self.delivered += filled
        return filled

    def _gap(self, length: int, timestamp: float, events: list[Event], cause: str) -> None:
        self._hole(self.next, length, timestamp, events, cause)
        self.next += length
        if self.next > self.high:
            self.high = self.next
        self._kept = _NOTHING_KEPT
        self._tail_start = self._kept_start = self.next

    def _gap_until(self, target: int, timestamp: float, events: list[Event]) -> None:
        """Give up on every hole below ``target``, delivering buffered bytes between."""
        pend = self._pending
        while self.next < target:
            if pend and pend.first().start <= self.next:
                self._deliver(events)
                continue
            hole_end = target
            if pend and pend.first().start < target:
                hole_end = pend.first().start
            self._gap(hole_end - self.next, timestamp, events, "ack")
            self._deliver(events)

    def _skip_to_pending(self, timestamp: float, events: list[Event], cause: str) -> None:
        """Declare the hole before the first buffered piece a gap and deliver on from it."""
        if not self._pending:
            return
        first = self._pending.first().start
        if first > self.next:
            self._gap(first - self.next, timestamp, events, cause)
        self._deliver(events)


def _trim(payload: bytes, missing: int, cut: int) -> tuple[bytes, int]:
    """A segment's ``payload`` and ``missing`` bytes without their first ``cut`` bytes."""
    if cut < len(payload):
        return payload[cut:], missing
    return b"", missing - (cut - len(payload))
