"""What a finished connection hands to the flow builder: :class:`ConnectionSummary`.

It lives apart from :mod:`~pcapflows.reassembly.connection` because the
:class:`~pcapflows.reassembly.events.Closed` event carries one, and the events module is
imported by the connection module: with the summary here, the events module imports it
at run time instead of only for type checking. A compiled (mypyc) build needs that: a
compiled dataclass whose field names a compiled class imported only under
``TYPE_CHECKING`` crashes the interpreter on import (mypyc issue 1209).
:mod:`~pcapflows.reassembly.connection` re-exports the name, so older imports work.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pcapflows.decode.segment import TunnelHop


@dataclass(slots=True)
class ConnectionSummary:
    """Everything the flow builder needs about a finished connection.

    Endpoints are ``(address, port)``; index 0 is A (the first packet's sender), 1 is B.
    Per-direction lists are indexed by sender.
    """

    conn: int
    stream: int
    endpoints: tuple[tuple[str, int], tuple[str, int]]
    client: int
    handshake_seen: bool
    first_timestamp: float
    last_timestamp: float
    setup_timestamp: float | None
    first_frame: int
    last_frame: int
    packets: list[int]
    bytes: list[int]
    history: str
    closed_by: str
    open_at_end: bool
    rst_from: int | None
    rst_timestamp: float | None
    #: The capture time of the packet that opened the connection (``first_timestamp``
    #: is the earliest of all, which a packet captured late can lower): with
    #: ``first_frame``, what the flow's ids are derived from, known from the start.
    opened_timestamp: float
    isn: list[int | None] = field(default_factory=lambda: [None, None])
    #: Lowest stream offset per direction (negative when a mid-stream connection grew
    #: downwards); reported offsets are shifted so that the stream starts at 0.
    low: list[int] = field(default_factory=lambda: [0, 0])
    #: Distinct ``(direction, tunnel path)`` pairs the segments came with, in order of
    #: first appearance (at most
    #: :data:`~pcapflows.reassembly.connection.MAX_TUNNEL_PATHS`).
    tunnels: list[tuple[int, tuple[TunnelHop, ...]]] = field(default_factory=list)
    #: Stream index of the finished connection whose sequence space this one continues.
    follows: int | None = None
