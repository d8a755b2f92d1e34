"""The events reassembly produces, in one place: what a consumer of the sans-IO core
(the flow builder, or your own code) has to understand.

Per direction (:class:`~pcapflows.reassembly.half.HalfStream`): :class:`Data`,
:class:`Gap`, :class:`Conflict`, :class:`GapRetracted`; per connection
(:class:`~pcapflows.reassembly.assembler.Assembler`): :class:`Closed`, and
:class:`Opened` when the assembler is asked to announce new connections.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pcapflows.reassembly.summary import ConnectionSummary

#: How a connection ended: both FINs (``fin``), a reset (``rst``), no packet for the
#: idle timeout (``idle``), the capture ended (``end``), a new SYN on the same 4-tuple
#: (``reuse``), or the connection limit closed it early (``limit``).
ClosedBy = Literal["fin", "rst", "idle", "end", "reuse", "limit"]

#: Why bytes are missing: the peer acknowledged bytes the capture lacks (``ack``), the
#: snap length cut them (``snaplen``), too much waited above the hole (``limit``), the
#: connection ended with the hole open (``end``), or they lie between bytes captured
#: late and the first bytes seen of a mid-stream connection (``unseen``).
GapCause = Literal["ack", "snaplen", "limit", "end", "unseen"]


@dataclass(slots=True)
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


@dataclass(slots=True)
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


@dataclass(slots=True)
class Conflict:
    """A later copy of ``length`` bytes at ``offset`` differed from the first copy."""

    conn: int
    direction: int
    offset: int
    length: int
    timestamp: float


@dataclass(slots=True)
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


@dataclass(slots=True)
class Opened:
    """Connection ``conn`` began with the packet just fed (``frame``, at ``timestamp``).

    Only an :class:`~pcapflows.reassembly.assembler.Assembler` made with
    ``announce=True`` sends it, before any other event of the connection: a consumer
    that reports connections as they start (mitmproxy's ``tcp_start``) needs it, one
    that waits for :class:`Closed` does not. ``client`` is the side (0: the sender of
    this first packet) taken for the client from that packet alone; the summary at the
    end has the final word (it differs only when later packets show the roles the
    other way round, such as a SYN-ACK arriving after a mid-stream start).
    """

    conn: int
    stream: int
    endpoints: tuple[tuple[str, int], tuple[str, int]]
    client: int
    timestamp: float
    frame: int


@dataclass(slots=True)
class Closed:
    """Connection ``conn`` is finished; no further events will name it."""

    conn: int
    summary: ConnectionSummary


AssemblerEvent = Data | Gap | Conflict | GapRetracted | Opened | Closed
