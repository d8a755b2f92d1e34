"""The limits of one read, in one value: :class:`Limits`.

Every bound pcapflows applies (time a quiet connection stays open, bytes held above a
hole, connections open at once, ...) is a field here with its default and the
precedent it follows, so that :func:`pcapflows.read`, :class:`~pcapflows.api.FlowReader`,
:func:`pcapflows.reassemble`, the :class:`~pcapflows.reassembly.assembler.Assembler` and
the command line take one ``limits`` argument instead of repeating the same options.
What a limit costs when it cuts in is always reported (``closed_by="limit"``, gaps with
cause ``"limit"``, ``ReadStats.limits``), never silent.
"""

from __future__ import annotations

from dataclasses import dataclass

#: A connection with no packet for this long (capture time) is closed with reason
#: "idle". Zeek uses 5 minutes for established connections; we are more patient
#: because an offline reader loses nothing by waiting and long-lived quiet connections
#: (SSH, database pools) are common in captures. Memory stays bounded by the open
#: connections either way.
DEFAULT_IDLE_TIMEOUT = 3600.0

#: After a RST, or once both FINs are acknowledged, a connection stays in the table
#: this long (capture time) so that the final ACK, retransmitted FINs and trailing RSTs
#: still belong to it, instead of starting a bogus new connection. A new SYN on the
#: same 4-tuple ends the lingering at once (port reuse).
DEFAULT_LINGER = 5.0


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

#: Bytes buffered above a hole, per direction, before the hole is declared a gap.
#: Without a limit a capture that lost one segment early would make the whole rest of
#: the connection wait in memory. 8 MiB is above any real receive window we have met.
DEFAULT_MAX_BUFFER = 8 * 1024 * 1024

#: Bytes of IP fragments waiting for the rest of their datagram (Linux's
#: ``ipfrag_high_thresh``, 4 MiB); see :mod:`pcapflows.decode.ipfrag`.
DEFAULT_MAX_FRAGMENT_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """The bounds of one read; every field defaults to the constant of the same name.

    ``idle_timeout`` and ``linger`` are seconds of capture time; ``max_buffer`` bytes
    held above holes per direction; ``max_total_buffer`` the same over all connections;
    ``max_connections`` connections open at once; ``max_fragment_bytes`` bytes of IP
    fragments waiting for their datagram. Change one with
    ``dataclasses.replace(limits, idle_timeout=60)`` or ``Limits(idle_timeout=60)``.
    """

    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    linger: float = DEFAULT_LINGER
    max_buffer: int = DEFAULT_MAX_BUFFER
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    max_total_buffer: int = DEFAULT_MAX_TOTAL_BUFFER
    max_fragment_bytes: int = DEFAULT_MAX_FRAGMENT_BYTES

    def __post_init__(self) -> None:
        for name in ("idle_timeout", "linger"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be a number of seconds >= 0")
        for name in ("max_buffer", "max_connections", "max_total_buffer", "max_fragment_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")


#: The limits of a read that names none.
DEFAULT_LIMITS = Limits()
