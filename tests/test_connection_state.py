"""The connection lifecycle as a transition table (``reassembly/connection.py``).

The table is an explicit form of rules that used to be flag tests; these tests check it
against the facts it is derived from (who sent a FIN, whether data was seen, the close),
written out by hand here, and walk the lifecycle of hand-made connections.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from synth import Talk

from pcapflows.decode.segment import Segment
from pcapflows.reassembly.connection import TCPConnection
from pcapflows.reassembly.state import CLOSED, CLOSING, ESTABLISHED, OPENING, TRANSITIONS


def feed_all(segments: list[Segment]) -> TCPConnection:
    conn = TCPConnection(0, 0, segments[0])
    for i, s in enumerate(segments):
        conn.feed(s, i)
    return conn


def from_facts(conn: TCPConnection) -> str:
    """The state the facts imply, independently of the table."""
    if conn.closed_at is not None:
        return CLOSED
    if conn.fin_from[0] or conn.fin_from[1]:
        return CLOSING
    if conn.has_data:
        return ESTABLISHED
    return OPENING


def test_every_state_has_a_row() -> None:
    assert set(TRANSITIONS) == {OPENING, ESTABLISHED, CLOSING, CLOSED}


def test_clean_lifecycle() -> None:
    t = Talk()
    segs = t.handshake(1.0)
    conn = feed_all(segs)
    assert conn.state == OPENING
    conn.feed(t.send(1.1, "c", "PA", b"GET / HTTP/1.0\r\n\r\n"), 3)
    assert conn.state == ESTABLISHED
    conn.feed(t.send(1.2, "s", "FA", b"HTTP/1.0 200 OK\r\n\r\n"), 4)
    assert conn.state == CLOSING and conn.closed_at is None
    conn.feed(t.send(1.3, "c", "FA"), 5)
    # The server's FIN is acknowledged, the client's not yet: still closing.
    assert conn.state == CLOSING
    conn.feed(t.send(1.4, "s", "A"), 6)
    assert conn.state == CLOSED
    assert conn.closed_at == 1.4 and conn.close_reason == "fin"
    assert not conn.closed_attempt


def test_refused_attempt_reopens_on_retried_syn() -> None:
    # SYN, RST-ACK, the same SYN again: the retry reopens the attempt, in the state
    # the reset interrupted.
    t = Talk()
    syn = t.send(1.0, "c", "S")
    rst = t.packet(1.1, "s", "RA", seq=0)
    conn = feed_all([syn, rst])
    assert conn.state == CLOSED and conn.close_reason == "rst" and conn.closed_attempt
    assert not conn.is_new_connection(syn, 0)
    conn.feed(t.packet(2.0, "c", "S", seq=syn.seq), 2)
    assert conn.state == OPENING and conn.closed_at is None and conn.rst_from is None
    conn.feed(t.packet(3.1, "s", "RA", seq=0), 3)
    assert conn.state == CLOSED and conn.closed_at == 3.1
    assert not conn.is_new_connection(syn, 0)
    # Another ISN is another attempt: a new connection on the same addresses.
    assert conn.is_new_connection(t.packet(4.0, "c", "S", seq=syn.seq + 99999), 0)


def test_data_after_reset_is_remembered_for_the_reopening() -> None:
    t = Talk()
    segs = t.handshake(1.0)
    segs.append(t.packet(1.1, "s", "RA"))
    segs.append(t.send(1.2, "c", "PA", b"late"))
    conn = feed_all(segs)
    assert conn.state == CLOSED and conn.resume == ESTABLISHED
    conn.feed(t.packet(1.3, "c", "S", seq=t.isn["c"]), len(segs))
    assert conn.state == ESTABLISHED


KINDS = ["S", "SA", "A", "PA", "FA", "RA", "R", "F"]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["c", "s"]),
            st.sampled_from(KINDS),
            st.integers(0, 3),
            st.booleans(),
        ),
        min_size=1,
        max_size=14,
    )
)
def test_state_always_agrees_with_the_facts(steps: list[tuple[str, str, int, bool]]) -> None:
    t = Talk()
    conn: TCPConnection | None = None
    for i, (who, fl, size, reuse_isn) in enumerate(steps):
        data = b"x" * size if "P" in fl or "F" in fl else b""
        if fl == "S" and reuse_isn:
            seg = t.packet(1.0 + i, who, fl, seq=t.isn[who])
        else:
            seg = t.send(1.0 + i, who, fl, data)
        if conn is None:
            conn = TCPConnection(0, 0, seg)
        conn.feed(seg, i)
        assert conn.state == from_facts(conn), steps[: i + 1]
