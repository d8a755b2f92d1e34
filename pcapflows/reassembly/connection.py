"""One TCP connection: its two halves, its flags, its roles and its history.

The connection does not know who the client is until it ends: a capture may start
mid-stream, or show the SYN-ACK before the SYN, so roles are decided from everything
seen (see :func:`decide_client`). Internally the two directions are numbered by who sent
the first captured packet: direction 0 is "A to B", A being that first sender.
"""

from __future__ import annotations

from pcapflows.decode.segment import ACK, FIN, RST, SYN, Segment, TunnelHop
from pcapflows.limits import DEFAULT_MAX_BUFFER
from pcapflows.reassembly.events import Conflict, Data, Event, Gap, Opened
from pcapflows.reassembly.half import (
    DEFAULT_KEEP,
    NEW,
    PREFIX_WINDOW,
    REFUSED,
    RETRANSMISSION,
    BufferPool,
    HalfStream,
)
from pcapflows.reassembly.seqnum import seq_diff
from pcapflows.reassembly.state import (
    CLOSED,
    CLOSING,
    ESTABLISHED,
    FINS_ACKED,
    GOT_DATA,
    GOT_FIN,
    GOT_RST,
    OPENING,
    SYN_RETRIED,
    SYN_STARTS_NEW,
    TRANSITIONS,
    decide_client,
)
from pcapflows.reassembly.summary import ConnectionSummary as ConnectionSummary

#: Distinct tunnel paths remembered per connection: a connection normally has one per
#: direction (or two when mirrored traffic is seen both natively and tunnelled); a
#: bound keeps a hostile capture from growing the list.
MAX_TUNNEL_PATHS = 16

#: Zeek's history letters. A connection records which letters each side earned as bits
#: (bit ``2 * i + side`` for ``LETTERS[i]``, so that the check on every packet is one
#: integer test) and the order they came in as a short string, read only when the
#: summary is made.
LETTERS = "SHADFRWTGI"
_BIT = {letter: 1 << (2 * i) for i, letter in enumerate(LETTERS)}
_A_BIT = _BIT["A"]
_D_BIT = _BIT["D"]
_W_BIT = _BIT["W"]
_T_BIT = _BIT["T"]
#: The flags a segment on the short path of :meth:`TCPConnection.feed` has, of these.
_SHORT_FLAGS = SYN | FIN | RST | ACK


class Side:
    """What a connection knows of one of its two sides, as the sender of one direction:
    the reassembly of what it sent (``half``) and the flags of its packets.

    One object per side instead of a list per fact indexed by side: a side's facts are
    read together, and the two objects cost less than seven two-element lists.
    """

    __slots__ = (
        "fin",
        "first_ack",
        "half",
        "native",
        "packets",
        "syn",
        "syn_opts",
        "synack",
        "synack_ack",
        "wscale",
    )

    def __init__(self, half: HalfStream) -> None:
        self.half = half
        #: Packets this side sent.
        self.packets = 0
        #: Whether it sent a SYN without ACK, a SYN-ACK, a (believed) FIN.
        self.syn = False
        self.synack = False
        self.fin = False
        #: Raw acknowledgment number of its first SYN-ACK.
        self.synack_ack: int | None = None
        #: Raw acknowledgment number of its first ACK-carrying packet.
        self.first_ack: int | None = None
        #: Whether an untunnelled packet of this side was seen (the common case, then
        #: checked without building a key).
        self.native = False
        #: Whether its SYN's options were seen, and the window scale option they held.
        self.syn_opts = False
        self.wscale: int | None = None


class TCPConnection:
    """State of one connection in the assembler's table."""

    __slots__ = (
        "_history",
        "_seen",
        "close_reason",
        "closed_at",
        "closed_attempt",
        "closed_clock",
        "conn",
        "endpoints",
        "first_frame",
        "first_syn",
        "first_timestamp",
        "follows",
        "has_data",
        "key",
        "known_client",
        "last_frame",
        "last_timestamp",
        "opened",
        "opened_timestamp",
        "paths",
        "resume",
        "rst_from",
        "rst_timestamp",
        "setup_timestamp",
        "sides",
        "state",
        "stream",
        "synack_seen_at",
        "touched",
    )

    def __init__(
        self,
        conn: int,
        stream: int,
        seg: Segment,
        *,
        keep: int = DEFAULT_KEEP,
        max_buffer: int = DEFAULT_MAX_BUFFER,
        pool: BufferPool | None = None,
    ) -> None:
        self.conn = conn
        self.stream = stream
        self.endpoints = ((seg.src, seg.sport), (seg.dst, seg.dport))
        #: The assembler's table key (the 4-tuple, and the tunnel when keyed by it).
        self.key: tuple[object, ...] = ()
        #: Side 0 is A (the first packet's sender), side 1 is B.
        self.sides = (
            Side(HalfStream(conn, 0, keep=keep, max_buffer=max_buffer, pool=pool)),
            Side(HalfStream(conn, 1, keep=keep, max_buffer=max_buffer, pool=pool)),
        )
        self.first_syn: int | None = None
        self.rst_from: int | None = None
        self.rst_timestamp: float | None = None
        self.synack_seen_at: float | None = None
        self.setup_timestamp: float | None = None
        self.first_timestamp = seg.timestamp
        self.opened_timestamp = seg.timestamp
        self.last_timestamp = seg.timestamp
        self.first_frame = seg.frame
        self.last_frame = seg.frame
        self.has_data = False
        #: Where the connection is in its lifecycle (see :data:`TRANSITIONS`).
        self.state = OPENING
        #: While closed, the state a retried SYN reopens the connection in: the events
        #: seen after the close still move it.
        self.resume = OPENING
        #: Tunnel paths seen per direction (a dict for its order), made at the first
        #: tunnelled packet: until then the untunnelled paths, ``(0, ())`` then
        #: ``(1, ())``, are told by the sides' ``native`` flags (see :meth:`tunnels`).
        self.paths: dict[tuple[int, tuple[TunnelHop, ...]], None] | None = None
        #: The connection's own time (its latest packet's timestamp) when a RST was seen
        #: or both FINs were acknowledged; it then lingers briefly so that the last ACK
        #: and retransmitted FINs still belong to it. Until both FINs are acknowledged
        #: the sender may still retransmit, so a FIN alone does not start the linger.
        self.closed_at: float | None = None
        #: Whether the close was a reset before any data (a connection attempt, whose
        #: SYN retries linger longer); fixed at the close so that later packets do not
        #: change the deadline after the fact.
        self.closed_attempt = False
        #: The assembler's clock at this connection's last packet and at its close.
        #: Memory is reclaimed on this clock as well as on the connection's own time, so
        #: that packets whose timestamps lie far behind the clock (a capture merged from
        #: files of different years) are not expired as soon as they are seen.
        self.touched = seg.timestamp
        self.closed_clock = seg.timestamp
        #: The client side of the connection this one continues, and its stream index.
        self.known_client: int | None = None
        self.follows: int | None = None
        #: The :class:`Opened` event announcing this connection, until its first packet
        #: has been fed and the event's ``client`` filled in (see the assembler).
        self.opened: Opened | None = None
        #: "fin" or "rst": how the connection closed. A RST after both FINs (common for
        #: a retransmitted FIN that meets a closed socket) does not make a clean close an
        #: error.
        self.close_reason: str | None = None
        #: History letters in order, side 0's in upper case (see :data:`LETTERS`).
        self._history = ""
        self._seen = 0

    @property
    def halves(self) -> tuple[HalfStream, HalfStream]:
        """The reassembly of each direction, indexed by sender."""
        return self.sides[0].half, self.sides[1].half

    @property
    def fin_from(self) -> tuple[bool, bool]:
        """Whether each side sent a (believed) FIN."""
        return self.sides[0].fin, self.sides[1].fin

    def direction_of(self, seg: Segment) -> int:
        """0 if ``seg`` was sent by A (the first packet's sender), else 1."""
        return 0 if (seg.src, seg.sport) == self.endpoints[0] else 1

    def _mark(self, direction: int, letter: str) -> None:
        bit = _BIT[letter] << direction
        if not self._seen & bit:
            self._seen |= bit
            self._history += letter if direction == 0 else letter.lower()

    def _marks(self, direction: int, bits: int) -> None:
        """:meth:`_mark` for several letters at once (``bits`` of one side), in the
        order of :data:`LETTERS`."""
        for i, letter in enumerate(LETTERS):
            if bits >> (2 * i + direction) & 1:
                self._mark(direction, letter)

    def _path(self, d: int, side: Side, tunnel: tuple[TunnelHop, ...]) -> None:
        """Record the tunnel path of a packet of side ``d``."""
        paths = self.paths
        if not tunnel:
            side.native = True
            if paths is None:
                return
        if paths is None:
            # The first tunnelled packet: the untunnelled paths seen so far came first.
            paths = self.paths = {}
            for dd in (0, 1):
                if self.sides[dd].native:
                    paths[(dd, ())] = None
        path = (d, tunnel)
        if path not in paths and len(paths) < MAX_TUNNEL_PATHS:
            paths[path] = None

    def tunnels(self) -> list[tuple[int, tuple[TunnelHop, ...]]]:
        """The distinct ``(direction, tunnel path)`` pairs seen, in order of first
        appearance."""
        if self.paths is not None:
            return list(self.paths)
        return [(d, ()) for d in (0, 1) if self.sides[d].native]

    def is_new_connection(self, seg: Segment, direction: int) -> bool:
        """Whether a SYN without ACK starts a new connection on this 4-tuple (port reuse).

        A retransmitted SYN carries the same initial sequence number; a SYN that arrives
        after a SYN-ACK acknowledging it (the capture saw them out of order) belongs here
        too. Anything else after a close, after data, or with another ISN is a new
        connection.
        """
        side = self.sides[direction]
        peer = self.sides[1 - direction]
        half = side.half
        if peer.synack_ack == (seg.seq + 1) & 0xFFFFFFFF:
            # The peer's SYN-ACK acknowledges exactly this SYN: it belongs here, however
            # late the capture shows it.
            return False
        first_ack = peer.first_ack
        if not half.started and first_ack is not None:
            # Only the peer was seen so far: if it acknowledged this SYN's sequence
            # space, the SYN was merely captured late.
            if 0 <= seq_diff(first_ack, seg.seq + 1) <= PREFIX_WINDOW:
                return False
        if half.syn_seen:
            # The same ISN is the same connection attempt, even after a RST (a client
            # that retries its SYN after a confused exchange); another ISN is a new one.
            return half.isn != seg.seq
        if half.started:
            # A SYN just below the data already seen from this side is this connection's
            # own SYN, captured late (shuffled or merged captures).
            s0 = half.offset_of(seg.seq)
            if s0 is not None and 0 <= half.low - (s0 + 1) <= PREFIX_WINDOW:
                return False
        if self.state == ESTABLISHED and peer.synack and peer.half.started:
            return False
        return SYN_STARTS_NEW[self.state]

    def _on(self, event: str) -> None:
        """Move the lifecycle by ``event`` (see :data:`TRANSITIONS`)."""
        state = self.state
        if state == CLOSED:
            if event == SYN_RETRIED:
                # A retried SYN reopens the attempt the close had ended.
                self.state = self.resume
                self.closed_at = None
                self.close_reason = None
                self.rst_from = None
                self.rst_timestamp = None
            else:
                self.resume = TRANSITIONS[self.resume].get(event, self.resume)
            return
        new = TRANSITIONS[state].get(event, state)
        if new == CLOSED:
            self.resume = state
            self.closed_at = self.last_timestamp
            self.close_reason = "rst" if event == GOT_RST else "fin"
            self.closed_attempt = event == GOT_RST and not self.has_data
        self.state = new

    def feed(self, seg: Segment, order: int) -> list[Event]:
        """Take one segment of this connection; return the reassembly events.

        An ACK (with or without data) on an established connection takes a short path
        (:meth:`_established`); everything else the whole way (:meth:`_general`)."""
        ep = self.endpoints[0]
        if seg.sport == ep[1] and seg.src == ep[0]:
            d = 0
            side, peer = self.sides
        else:
            d = 1
            peer, side = self.sides
        side.packets += 1
        tunnel = seg.tunnel
        if tunnel or not side.native:
            self._path(d, side, tunnel)
        ts = seg.timestamp
        if ts < self.first_timestamp:
            self.first_timestamp = ts
        if ts > self.last_timestamp:
            self.last_timestamp = ts
        self.last_frame = seg.frame
        events: list[Event] = []
        if (
            seg.flags & _SHORT_FLAGS == ACK
            and self.state == ESTABLISHED
            and side.first_ack is not None
            and (self.setup_timestamp is not None or not (side.syn and peer.synack))
        ):
            self._established(seg, d, side, peer, order, events)
        else:
            self._general(seg, d, side, peer, order, events)
        return events

    def _established(
        self, seg: Segment, d: int, side: Side, peer: Side, order: int, events: list[Event]
    ) -> None:
        """:meth:`_general` for an ACK without SYN, FIN or RST on an established
        connection past its handshake bookkeeping: in-order data is delivered at once,
        an empty ACK only moves numbers, and a history letter is one bit test.
        Anything unusual in the segment's numbers falls back to the half's whole path."""
        window = seg.window
        ph = peer.half
        if window > ph.peer_window:
            ph.peer_window = window
        half = side.half
        payload = seg.payload
        missing = seg.missing
        ts = seg.timestamp
        if payload and not missing and half.deliver_next(seg.seq, payload, ts, order, events):
            status = NEW
        elif payload or missing or not half.skip_empty(seg.seq):
            status = half.take(seg.seq, payload, missing, False, False, ts, order, events)
        else:
            status = NEW
        if status != REFUSED:
            bits = _D_BIT if payload or missing else _A_BIT
            if window == 0:
                bits |= _W_BIT
            if status == RETRANSMISSION:
                bits |= _T_BIT
            if ~self._seen & (bits << d):
                self._marks(d, bits << d)
        if not ph.ack_next(seg.ack):
            ph.ack(seg.ack, ts, events)
        if half.confirmed or ph.confirmed:
            self._confirmed()
            self._settle()
        for e in events:
            if type(e) is not Data:
                self._mark_event(e)

    def _mark_event(self, e: Event) -> None:
        if isinstance(e, Gap):
            self._mark(e.direction, "G")
        elif isinstance(e, Conflict):
            self._mark(e.direction, "I")

    def _general(
        self, seg: Segment, d: int, side: Side, peer: Side, order: int, events: list[Event]
    ) -> None:
        """Take any segment the whole way: handshake, flags, closing."""
        flags = seg.flags
        syn = bool(flags & SYN)
        has_ack = bool(flags & ACK)
        if has_ack and side.first_ack is None:
            side.first_ack = seg.ack
        if syn:
            self._syn(seg, d, has_ack)
        elif has_ack and self.setup_timestamp is None and side.syn and peer.synack:
            # The client's first ACK after the SYN-ACK completes the handshake.
            self.setup_timestamp = seg.timestamp
        if not flags & (SYN | RST) and seg.window > peer.half.peer_window:
            # The window this side advertises bounds what the other side may send
            # (a SYN's window is never scaled, a RST's means nothing).
            peer.half.peer_window = seg.window
        status = side.half.take(
            seg.seq,
            seg.payload,
            seg.missing,
            syn,
            # A FIN on a SYN is not an end of stream: stacks drop such segments, and
            # Zeek reports them as a weird.
            bool(flags & FIN) and not syn,
            seg.timestamp,
            order,
            events,
        )
        if status != REFUSED:
            # A segment whose sequence number is not believed says nothing: its FIN,
            # RST and data are not this connection's (RFC 5961 ignores such RSTs too).
            self._flags(seg, d, has_ack, status)
        if has_ack and not (flags & RST):
            peer.half.ack(seg.ack, seg.timestamp, events)
        if side.half.confirmed or peer.half.confirmed:
            self._confirmed()
        for e in events:
            if type(e) is not Data:
                self._mark_event(e)
        self._settle()

    def _settle(self) -> None:
        """Close the connection if the packet just taken closed it. The close is decided
        once the whole packet is taken (its data counts for whether a reset ended a mere
        attempt)."""
        state = self.state
        if state != CLOSED:
            if self.rst_from is not None:
                self._on(GOT_RST)
            elif state == CLOSING:
                a, b = self.sides
                if a.fin and b.fin and a.half.fin_acked and b.half.fin_acked:
                    self._on(FINS_ACKED)

    def _confirmed(self) -> None:
        """Segments first refused as implausible, then confirmed by a later packet: the
        flags that were not recorded when they came."""
        for d in (0, 1):
            side = self.sides[d]
            for s in side.half.confirmed:
                if s.fin:
                    side.fin = True
                    self._mark(d, "F")
                    self._on(GOT_FIN)
                if s.payload or s.missing:
                    self.has_data = True
                    self._mark(d, "D")
                    self._on(GOT_DATA)
            side.half.confirmed.clear()

    def _syn(self, seg: Segment, d: int, has_ack: bool) -> None:
        """Book-keeping of a SYN or SYN-ACK: roles, handshake, window scaling."""
        side = self.sides[d]
        if not side.syn_opts:
            side.syn_opts = True
            side.wscale = seg.wscale
            a, b = self.sides
            if a.syn_opts and b.syn_opts:
                # Scaling is in effect only when both SYNs carried the option
                # (RFC 7323); each side's windows are shifted by its own scale.
                both = a.wscale is not None and b.wscale is not None
                a.half.peer_scale = (b.wscale or 0) if both else 0
                b.half.peer_scale = (a.wscale or 0) if both else 0
        if has_ack:
            if not side.synack:
                side.synack_ack = seg.ack
            side.synack = True
            self._mark(d, "H")
            if self.synack_seen_at is None:
                self.synack_seen_at = seg.timestamp
        else:
            if self.state == CLOSED and side.half.isn == seg.seq:
                self._on(SYN_RETRIED)
            side.syn = True
            if self.first_syn is None:
                self.first_syn = d
            self._mark(d, "S")

    def _flags(self, seg: Segment, d: int, has_ack: bool, status: int) -> None:
        """The history letters and close state of a segment that was believed."""
        flags = seg.flags
        if flags & FIN and not flags & SYN:
            self.sides[d].fin = True
            self._mark(d, "F")
            self._on(GOT_FIN)
        if flags & RST:
            if self.rst_from is None:
                self.rst_from = d
                self.rst_timestamp = seg.timestamp
            self._mark(d, "R")
        if seg.payload or seg.missing:
            self.has_data = True
            self._mark(d, "D")
            self._on(GOT_DATA)
        elif has_ack and not (flags & (SYN | FIN | RST)):
            self._mark(d, "A")
        if seg.window == 0 and not (flags & RST):
            self._mark(d, "W")
        if status == RETRANSMISSION:
            self._mark(d, "T")

    @property
    def buffered(self) -> int:
        """Bytes held above holes in both directions."""
        a, b = self.sides
        return a.half.buffered + b.half.buffered

    def release(self, timestamp: float) -> list[Event]:
        """Deliver everything buffered above holes, the holes becoming gaps (``limit``)."""
        a, b = self.sides
        return self._marked(a.half.release(timestamp) + b.half.release(timestamp))

    def finish(self, timestamp: float) -> list[Event]:
        """Flush both halves: every remaining hole becomes a gap."""
        a, b = self.sides
        return self._marked(a.half.finish(timestamp) + b.half.finish(timestamp))

    def _marked(self, events: list[Event]) -> list[Event]:
        """``events``, after recording their gaps in the history."""
        for e in events:
            if isinstance(e, Gap):
                self._mark(e.direction, "G")
        return events

    def client(self) -> int:
        """The client's side (0 or 1), decided from everything seen so far."""
        a, b = self.sides
        return decide_client(
            [a.syn, b.syn],
            [a.synack, b.synack],
            self.first_syn,
            (self.endpoints[0][1], self.endpoints[1][1]),
            self.known_client,
        )

    def history(self, client: int) -> str:
        """Zeek-style history: one letter per first occurrence, client's in upper case.

        A leading ``^`` says the client is not the side that sent the first captured
        packet (Zeek's "direction flipped").
        """
        if client != 0:
            return "^" + self._history.swapcase()
        return self._history

    def summary(self, closed_by: str, open_at_end: bool) -> ConnectionSummary:
        """The finished connection, for the flow builder."""
        client = self.client()
        a, b = self.sides
        return ConnectionSummary(
            conn=self.conn,
            stream=self.stream,
            endpoints=self.endpoints,
            client=client,
            handshake_seen=self.sides[client].syn and self.sides[1 - client].synack,
            # The earliest capture time of any of its packets, whatever their capture
            # order (a SYN captured late, frames merged from two interfaces), as tshark
            # and Zeek take it.
            first_timestamp=self.first_timestamp,
            last_timestamp=self.last_timestamp,
            setup_timestamp=self.setup_timestamp,
            first_frame=self.first_frame,
            last_frame=self.last_frame,
            packets=[a.packets, b.packets],
            bytes=[a.half.delivered, b.half.delivered],
            history=self.history(client),
            closed_by=closed_by,
            open_at_end=open_at_end,
            rst_from=self.rst_from,
            rst_timestamp=self.rst_timestamp,
            opened_timestamp=self.opened_timestamp,
            isn=[a.half.isn, b.half.isn],
            low=[a.half.low, b.half.low],
            tunnels=self.tunnels(),
            follows=self.follows,
        )
