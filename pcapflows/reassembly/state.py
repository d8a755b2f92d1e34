"""A connection's lifecycle and its roles: the rules, apart from the bookkeeping.

The states and the events that move them are one table (:data:`TRANSITIONS`), in the
manner of h11's ``_state.py``, so that the rules for opening, closing and port reuse
are read in one place; :func:`decide_client` says which side is the client from what
the connection showed. :mod:`pcapflows.reassembly.connection` keeps the facts (who sent
a FIN, whether data was seen) and feeds the events.
"""

from __future__ import annotations

#: Ports below this are "well known" (IANA system ports): a side using one is taken as
#: the server when a connection is picked up without its handshake.
WELL_KNOWN = 1024

#: SYNs, SYN-ACKs and empty ACKs only.
OPENING = "opening"
#: Data was seen (believed), no FIN yet.
ESTABLISHED = "established"
#: A side sent a FIN; the connection is not closed until both FINs are acknowledged.
CLOSING = "closing"
#: A RST, or both FINs acknowledged: the connection lingers briefly, so that the last
#: ACK and retransmitted FINs still belong to it (see the assembler's linger).
CLOSED = "closed"

#: A segment with data was believed.
GOT_DATA = "data"
#: A FIN was believed.
GOT_FIN = "fin"
#: A RST was believed (applied once the packet is taken, see
#: :meth:`~pcapflows.reassembly.connection.TCPConnection.feed`).
GOT_RST = "rst"
#: Both sides' FINs are acknowledged.
FINS_ACKED = "fins acked"
#: A closed connection's client retried its SYN with the same ISN.
SYN_RETRIED = "syn retried"

#: ``TRANSITIONS[state][event]``: the next state; an event not listed leaves the state
#: as it is (data after a FIN, a RST after both FINs were acknowledged). A retried SYN
#: reopens a closed connection in the state it would have reached had the close not
#: happened (see :attr:`~pcapflows.reassembly.connection.TCPConnection.resume`).
TRANSITIONS: dict[str, dict[str, str]] = {
    OPENING: {GOT_DATA: ESTABLISHED, GOT_FIN: CLOSING, GOT_RST: CLOSED},
    ESTABLISHED: {GOT_FIN: CLOSING, GOT_RST: CLOSED},
    CLOSING: {GOT_RST: CLOSED, FINS_ACKED: CLOSED},
    CLOSED: {},
}

#: Whether a SYN (without ACK, and not recognisable as this connection's own: another
#: ISN, see :meth:`~pcapflows.reassembly.connection.TCPConnection.is_new_connection`)
#: starts a new connection on the same addresses, by state: during the handshake it is a
#: crossed or retried SYN; after data, a FIN or a close, it is port reuse (unless, after
#: data, the peer had answered a SYN of this side with a SYN-ACK).
SYN_STARTS_NEW: dict[str, bool] = {
    OPENING: False,
    ESTABLISHED: True,
    CLOSING: True,
    CLOSED: True,
}


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
