"""A typed view of what pcapflows keeps in ``flow.metadata["pcapflows"]``.

The metadata stays a plain dict because that is what mitmproxy stores, writes to its
flow files and reads back (anything else would not survive a round trip through
mitmproxy). :func:`info` gives the same dict a type, so that a script gets completion
and a type checker catches ``meta["closed-by"]`` or a comparison with a cause that
does not exist. The Literal types (:data:`~pcapflows.reassembly.events.ClosedBy`,
:data:`~pcapflows.reassembly.events.GapCause`) are the whole vocabulary, defined
where the reassembler produces them; the README's semantics section says what each
means.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol, TypedDict, cast

from pcapflows.reassembly.events import ClosedBy, GapCause


class GapInfo(TypedDict):
    """Bytes sent but not in the capture; ``offset`` counts from the stream's start."""

    from_client: bool
    offset: int
    length: int
    timestamp: float
    cause: GapCause


class ConflictInfo(TypedDict):
    """A retransmission whose bytes differed from the first copy (which was kept)."""

    from_client: bool
    offset: int
    length: int
    timestamp: float


class PerSide(TypedDict):
    """A count for each side of the connection."""

    client: int
    server: int


class TunnelPath(TypedDict):
    """The encapsulations one direction arrived in, outermost first (see
    :meth:`~pcapflows.decode.segment.TunnelHop.to_dict` for each hop's keys)."""

    from_client: bool
    path: list[dict[str, object]]


class _Always(TypedDict):
    stream: int
    handshake_seen: bool
    history: str
    packets: PerSide
    bytes: PerSide
    gaps: list[GapInfo]
    conflicts: list[ConflictInfo]
    closed_by: ClosedBy
    open_at_end: bool
    first_frame: int
    last_frame: int


class FlowInfo(_Always, total=False):
    """Everything pcapflows records about a flow.

    ``rst_from`` (``"client"``/``"server"``) is present when a reset ended it,
    ``follows`` (a stream index) when it continues a connection that had already
    been closed, ``tunnels`` when it arrived encapsulated.
    """

    rst_from: Literal["client", "server"]
    follows: int
    tunnels: list[TunnelPath]


class HasMetadata(Protocol):
    """Any flow object: pcapflows' own or mitmproxy's."""

    metadata: dict[str, Any]


def info(flow: HasMetadata) -> FlowInfo:
    """The pcapflows metadata of ``flow``, typed.

    Works on any flow that carries it: one pcapflows made, one read back from a flow
    file, or a real mitmproxy flow with the same metadata. Raises :class:`KeyError`
    for a flow pcapflows never saw (no ``"pcapflows"`` entry).
    """
    return cast(FlowInfo, flow.metadata["pcapflows"])
