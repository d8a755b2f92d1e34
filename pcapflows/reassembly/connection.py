"""One TCP connection: its two halves, its flags, its roles and its history.

The connection does not know who the client is until it ends: a capture may start
mid-stream, or show the SYN-ACK before the SYN, so roles are decided from everything
seen (see :func:`decide_client`). Internally the two directions are numbered by who sent
the first captured packet: direction 0 is "A to B", A being that first sender.
"""

from __future__ import annotations

from pcapflows.decode.segment import ACK, FIN, RST, SYN, Segment, TunnelHop
from pcapflows.reassembly.events import Conflict, Event, Gap
from pcapflows.reassembly.half import (
    DEFAULT_KEEP,
    DEFAULT_MAX_BUFFER,
    PREFIX_WINDOW,
    REFUSED,
    RETRANSMISSION,
    BufferPool,
    HalfStream,
)
from pcapflows.reassembly.seqnum import seq_diff
from pcapflows.reassembly.summary import ConnectionSummary as ConnectionSummary

#: Ports below this are "well known" (IANA system ports): a side using one is taken as
#: the server when a connection is picked up without its handshake.
WELL_KNOWN = 1024
#: Distinct tunnel paths remembered per connection: a connection normally has one per
#: direction (or two when mirrored traffic is seen both natively and tunnelled); a
#: bound keeps a hostile capture from growing the list.
MAX_TUNNEL_PATHS = 16


def decide_client(
    syn_from: list[bool],
    synack_from: list[bool],
    first_syn: int | None,
    ports: tuple[int, int],
    known: int | None = None,
) -> int:
    """Which side (0 = first sender, 1 = the other) is the client.

    1. The sender of a SYN without ACK (the first one if both sides sent one).
    2. Else the receiver of a SYN-ACK.
    3. Else ``known``: the client of the finished connection this one continues.
    4. Else (picked up mid-stream) the side not on the likely server port: a well-known
       port (< 1024) against one that is not, else the lower port. Equal ports leave
       the first sender as the client.
    """
    if syn_from[0] or syn_from[1]:
        if syn_from[0] and syn_from[1]:
            return first_syn if first_syn is not None else 0
        return 0 if syn_from[0] else 1
    if synack_from[0] != synack_from[1]:
        return 1 if synack_from[0] else 0
    if known is not None:
        return known
    pa, pb = ports
    wa, wb = pa < WELL_KNOWN, pb < WELL_KNOWN
    if wa != wb:
        return 1 if wa else 0
    if pa != pb:
        return 1 if pa < pb else 0
    return 0


class TCPConnection:
    """State of one connection in the assembler's table."""

    __slots__ = (
        "_history",
        "_history_seen",
        "_native",
        "_syn_opts",
        "_wscale",
        "close_reason",
        "closed_at",
        "closed_attempt",
        "closed_clock",
        "conn",
        "endpoints",
        "fin_from",
        "first_ack",
        "first_frame",
        "first_syn",
        "first_timestamp",
        "follows",
        "halves",
        "has_data",
        "key",
        "known_client",
        "last_frame",
        "last_timestamp",
        "packets",
        "paths",
        "rst_from",
        "rst_timestamp",
        "setup_timestamp",
        "stream",
        "syn_from",
        "synack_ack",
        "synack_from",
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
        self.halves = (
            HalfStream(conn, 0, keep=keep, max_buffer=max_buffer, pool=pool),
            HalfStream(conn, 1, keep=keep, max_buffer=max_buffer, pool=pool),
        )
        self.syn_from = [False, False]
        self.synack_from = [False, False]
        #: Raw acknowledgment number of the first SYN-ACK each side sent.
        self.synack_ack: list[int | None] = [None, None]
        #: Raw acknowledgment number of the first ACK-carrying packet of each side.
        self.first_ack: list[int | None] = [None, None]
        self.first_syn: int | None = None
        self.fin_from = [False, False]
        self.rst_from: int | None = None
        self.rst_timestamp: float | None = None
        self.synack_seen_at: float | None = None
        self.setup_timestamp: float | None = None
        self.first_timestamp = seg.timestamp
        self.last_timestamp = seg.timestamp
        self.first_frame = seg.frame
        self.last_frame = seg.frame
        self.packets = [0, 0]
        self.has_data = False
        #: Tunnel paths seen per direction (a dict for its order); most connections
        #: only ever have ``(0, ())`` and ``(1, ())``.
        self.paths: dict[tuple[int, tuple[TunnelHop, ...]], None] = {}
        #: Whether an untunnelled packet was seen per direction (the common case, then
        #: checked without building a key).
        self._native = [False, False]
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
        #: Window scale option of each side's SYN, and whether that SYN was seen.
        self._wscale: list[int | None] = [None, None]
        self._syn_opts = [False, False]
        #: "fin" or "rst": how the connection closed. A RST after both FINs (common for
        #: a retransmitted FIN that meets a closed socket) does not make a clean close an
        #: error.
        self.close_reason: str | None = None
        self._history: list[tuple[int, str]] = []
        self._history_seen: set[tuple[int, str]] = set()

    def direction_of(self, seg: Segment) -> int:
        """0 if ``seg`` was sent by A (the first packet's sender), else 1."""
        return 0 if (seg.src, seg.sport) == self.endpoints[0] else 1

    def _mark(self, direction: int, letter: str) -> None:
        key = (direction, letter)
        if key not in self._history_seen:
            self._history_seen.add(key)
            self._history.append(key)

    def is_new_connection(self, seg: Segment, direction: int) -> bool:
        """Whether a SYN without ACK starts a new connection on this 4-tuple (port reuse).

        A retransmitted SYN carries the same initial sequence number; a SYN that arrives
        after a SYN-ACK acknowledging it (the capture saw them out of order) belongs here
        too. Anything else after a close, after data, or with another ISN is a new
        connection.
        """
        half = self.halves[direction]
        if self.synack_ack[1 - direction] == (seg.seq + 1) & 0xFFFFFFFF:
            # The peer's SYN-ACK acknowledges exactly this SYN: it belongs here, however
            # late the capture shows it.
            return False
        first_ack = self.first_ack[1 - direction]
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
        if self.closed_at is not None or self.fin_from[0] or self.fin_from[1]:
            return True
        other = self.halves[1 - direction]
        if self.synack_from[1 - direction] and other.started:
            return False
        return self.has_data

    def feed(self, seg: Segment, order: int) -> list[Event]:
        """Take one segment of this connection; return the reassembly events."""
        d = self.direction_of(seg)
        flags = seg.flags
        self.packets[d] += 1
        tunnel = seg.tunnel
        if tunnel or not self._native[d]:
            if not tunnel:
                self._native[d] = True
            path = (d, tunnel)
            if path not in self.paths and len(self.paths) < MAX_TUNNEL_PATHS:
                self.paths[path] = None
        if seg.timestamp < self.first_timestamp:
            self.first_timestamp = seg.timestamp
        if seg.timestamp > self.last_timestamp:
            self.last_timestamp = seg.timestamp
        self.last_frame = seg.frame
        syn = bool(flags & SYN)
        has_ack = bool(flags & ACK)
        if has_ack and self.first_ack[d] is None:
            self.first_ack[d] = seg.ack
        if syn:
            self._syn(seg, d, has_ack)
        elif (
            has_ack
            and self.setup_timestamp is None
            and self.syn_from[d]
            and self.synack_from[1 - d]
        ):
            # The client's first ACK after the SYN-ACK completes the handshake.
            self.setup_timestamp = seg.timestamp
        if not flags & (SYN | RST) and seg.window > self.halves[1 - d].peer_window:
            # The window this side advertises bounds what the other side may send
            # (a SYN's window is never scaled, a RST's means nothing).
            self.halves[1 - d].peer_window = seg.window
        events, status = self.halves[d].segment(
            seg.seq,
            seg.payload,
            seg.missing,
            syn,
            # A FIN on a SYN is not an end of stream: stacks drop such segments, and
            # Zeek reports them as a weird.
            bool(flags & FIN) and not syn,
            seg.timestamp,
            order,
        )
        if status != REFUSED:
            # A segment whose sequence number is not believed says nothing: its FIN,
            # RST and data are not this connection's (RFC 5961 ignores such RSTs too).
            self._flags(seg, d, has_ack, status)
        if has_ack and not (flags & RST):
            events.extend(self.halves[1 - d].acked(seg.ack, seg.timestamp))
        if self.halves[0].confirmed or self.halves[1].confirmed:
            self._confirmed()
        for e in events:
            if isinstance(e, Gap):
                self._mark(e.direction, "G")
            elif isinstance(e, Conflict):
                self._mark(e.direction, "I")
        if self.closed_at is None and (
            self.rst_from is not None
            or (
                self.fin_from[0]
                and self.fin_from[1]
                and self.halves[0].fin_acked
                and self.halves[1].fin_acked
            )
        ):
            self.closed_at = self.last_timestamp
            self.close_reason = "rst" if self.rst_from is not None else "fin"
            self.closed_attempt = self.rst_from is not None and not self.has_data
        return events

    def _confirmed(self) -> None:
        """Segments first refused as implausible, then confirmed by a later packet: the
        flags that were not recorded when they came."""
        for side in (0, 1):
            half = self.halves[side]
            for s in half.confirmed:
                if s.fin:
                    self.fin_from[side] = True
                    self._mark(side, "F")
                if s.payload or s.missing:
                    self.has_data = True
                    self._mark(side, "D")
            half.confirmed.clear()

    def _syn(self, seg: Segment, d: int, has_ack: bool) -> None:
        """Book-keeping of a SYN or SYN-ACK: roles, handshake, window scaling."""
        if not self._syn_opts[d]:
            self._syn_opts[d] = True
            self._wscale[d] = seg.wscale
            if self._syn_opts[1 - d]:
                # Scaling is in effect only when both SYNs carried the option
                # (RFC 7323); each side's windows are shifted by its own scale.
                both = self._wscale[0] is not None and self._wscale[1] is not None
                for side in (0, 1):
                    self.halves[1 - side].peer_scale = (self._wscale[side] or 0) if both else 0
        if has_ack:
            if not self.synack_from[d]:
                self.synack_ack[d] = seg.ack
            self.synack_from[d] = True
            self._mark(d, "H")
            if self.synack_seen_at is None:
                self.synack_seen_at = seg.timestamp
        else:
            if self.closed_at is not None and self.halves[d].isn == seg.seq:
                # A retried SYN reopens the attempt the RST had closed.
                self.closed_at = None
                self.close_reason = None
                self.rst_from = None
                self.rst_timestamp = None
            self.syn_from[d] = True
            if self.first_syn is None:
                self.first_syn = d
            self._mark(d, "S")

    def _flags(self, seg: Segment, d: int, has_ack: bool, status: int) -> None:
        """The history letters and close state of a segment that was believed."""
        flags = seg.flags
        if flags & FIN and not flags & SYN:
            self.fin_from[d] = True
            self._mark(d, "F")
        if flags & RST:
            if self.rst_from is None:
                self.rst_from = d
                self.rst_timestamp = seg.timestamp
            self._mark(d, "R")
        if seg.payload or seg.missing:
            self.has_data = True
            self._mark(d, "D")
        elif has_ack and not (flags & (SYN | FIN | RST)):
            self._mark(d, "A")
        if seg.window == 0 and not (flags & RST):
            self._mark(d, "W")
        if status == RETRANSMISSION:
            self._mark(d, "T")

    @property
    def buffered(self) -> int:
        """Bytes held above holes in both directions."""
        return self.halves[0].buffered + self.halves[1].buffered

    def release(self, timestamp: float) -> list[Event]:
        """Deliver everything buffered above holes, the holes becoming gaps (``limit``)."""
        return self._marked(self.halves[0].release(timestamp) + self.halves[1].release(timestamp))

    def finish(self, timestamp: float) -> list[Event]:
        """Flush both halves: every remaining hole becomes a gap."""
        return self._marked(self.halves[0].finish(timestamp) + self.halves[1].finish(timestamp))

    def _marked(self, events: list[Event]) -> list[Event]:
        """``events``, after recording their gaps in the history."""
        for e in events:
            if isinstance(e, Gap):
                self._mark(e.direction, "G")
        return events

    def client(self) -> int:
        """The client's side (0 or 1), decided from everything seen so far."""
        return decide_client(
            self.syn_from,
            self.synack_from,
            self.first_syn,
            (self.endpoints[0][1], self.endpoints[1][1]),
            self.known_client,
        )

    def history(self, client: int) -> str:
        """Zeek-style history: one letter per first occurrence, client's in upper case.

        A leading ``^`` says the client is not the side that sent the first captured
        packet (Zeek's "direction flipped").
        """
        out = ["^"] if client != 0 else []
        for d, letter in self._history:
            out.append(letter if d == client else letter.lower())
        return "".join(out)

    def summary(self, closed_by: str, open_at_end: bool) -> ConnectionSummary:
        """The finished connection, for the flow builder."""
        client = self.client()
        return ConnectionSummary(
            conn=self.conn,
            stream=self.stream,
            endpoints=self.endpoints,
            client=client,
            handshake_seen=self.syn_from[client] and self.synack_from[1 - client],
            # The earliest capture time of any of its packets, whatever their capture
            # order (a SYN captured late, frames merged from two interfaces), as tshark
            # and Zeek take it.
            first_timestamp=self.first_timestamp,
            last_timestamp=self.last_timestamp,
            setup_timestamp=self.setup_timestamp,
            first_frame=self.first_frame,
            last_frame=self.last_frame,
            packets=list(self.packets),
            bytes=[self.halves[0].delivered, self.halves[1].delivered],
            history=self.history(client),
            closed_by=closed_by,
            open_at_end=open_at_end,
            rst_from=self.rst_from,
            rst_timestamp=self.rst_timestamp,
            isn=[self.halves[0].isn, self.halves[1].isn],
            low=[self.halves[0].low, self.halves[1].low],
            tunnels=list(self.paths),
            follows=self.follows,
        )
