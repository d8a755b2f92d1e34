"""The promises of the README's semantics, one crafted scenario each (issue 9, items 1, 2, 4).

Each scenario is a short exchange written with :class:`synth.Talk`; the expected result is
what was sent (the bytes each side put on the wire, once), written here by hand, never
taken from pcapflows' output:

* a segment whose sequence number is damaged far ahead of the stream is not placed:
  followed by an ordinary retransmission it must not make bytes come out twice, nor
  holes that never existed (item 1); the same for a damaged acknowledgment number;
* bytes past a direction's FIN are not the stream (item 2);
* a connection whose FIN was never acknowledged is not over: the sender's
  retransmissions, its keep-alives and its final RST belong to it, and bytes already
  delivered are never a new flow's data (item 4).
"""

from __future__ import annotations

from dataclasses import replace as dataclass_replace
from typing import Any

import pytest
from synth import Endpoint, Talk

import pcapflows
from pcapflows.decode.segment import Segment

A = bytes(range(100))
B = bytes(range(100, 200))
C = bytes((i * 7 + 3) % 256 for i in range(100))


def flows_of(segments: list[Segment]) -> list[pcapflows.TCPFlow]:
    return list(pcapflows.reassemble(segments, order="first_packet"))


def on_tuple(flows: list[pcapflows.TCPFlow], a: Endpoint, b: Endpoint) -> list[pcapflows.TCPFlow]:
    """The flows between ``a`` and ``b`` (either side the client)."""
    want = {a, b}
    return [f for f in flows if {f.client_conn.peername, f.server_conn.address} == want]


def sent_by(flow: pcapflows.TCPFlow, client: bool) -> bytes:
    return b"".join(m.content for m in flow.messages if m.from_client == client)


def summary(flows: list[pcapflows.TCPFlow]) -> list[dict[str, Any]]:
    """What an assertion message should show of each flow."""
    return [
        {
            "client": f.client_conn.peername,
            "messages": [(m.from_client, len(m.content), m.timestamp) for m in f.messages],
            "gaps": f.metadata["pcapflows"]["gaps"],
            "history": f.metadata["pcapflows"]["history"],
            "closed_by": f.metadata["pcapflows"]["closed_by"],
        }
        for f in flows
    ]


def unrelated_syn(t: float) -> Segment:
    """A connection attempt between two other hosts: it must change nothing in the
    flows of the scenario (issue 9 item 3), so each scenario of item 4 runs with and without it."""
    return Talk(("192.0.2.7", 51000), ("192.0.2.8", 443), isn_c=7).packet(t, "c", "S")


def three_segments(damage: list[Segment] | None = None) -> tuple[Talk, list[Segment]]:
    """A client sending A, B, C (300 bytes) after a handshake; ``damage`` goes right
    after C. The server acknowledges A only, the client retransmits B, the server
    acknowledges everything and both sides close with FINs."""
    t = Talk()
    segs = t.handshake(1.0)
    c0 = t.nxt["c"]
    segs += [t.send(2.0, "c", "PA", A), t.send(2.1, "c", "PA", B), t.send(2.2, "c", "PA", C)]
    segs += damage or []
    segs += [
        t.packet(2.4, "s", "A", ack=c0 + 100),
        t.packet(2.5, "c", "PA", B, seq=c0 + 100),  # ordinary retransmission of B
        t.packet(2.6, "s", "A"),
        t.send(3.0, "c", "FA"),
        t.send(3.1, "s", "FA"),
        t.send(3.2, "c", "A"),
    ]
    return t, segs


def assert_exactly_sent(flows: list[pcapflows.TCPFlow], client: bytes, server: bytes) -> None:
    """One flow, each side's bytes exactly what it sent, no gap of any cause and no
    conflict (a segment that is not placed cannot conflict with anything)."""
    assert len(flows) == 1, summary(flows)
    f = flows[0]
    assert sent_by(f, True) == client, summary(flows)
    assert sent_by(f, False) == server, summary(flows)
    assert f.metadata["pcapflows"]["gaps"] == [], summary(flows)
    assert f.metadata["pcapflows"]["conflicts"] == [], summary(flows)
    assert f.metadata["pcapflows"]["bytes"] == {"client": len(client), "server": len(server)}


# -- item 1: implausible sequence and acknowledgment numbers ----------------------------


def test_control_three_segments_without_damage() -> None:
    """The scenario below without the damaged segment: the baseline the others must match."""
    _, segs = three_segments()
    assert_exactly_sent(flows_of(segs), A + B + C, b"")


@pytest.mark.parametrize(
    "jump",
    [2**31 - 7, 2**31 - 1, 2**31 - 100_000, 2**31 + 7, 2**30, 2**24, 3 * 2**30],
    ids=["2^31-7", "2^31-1", "2^31-1e5", "2^31+7", "2^30", "2^24", "3*2^30"],
)
@pytest.mark.parametrize("payload", ["copy", "other"])
def test_damaged_sequence_number_then_retransmission(jump: int, payload: str) -> None:
    """Issue 9 item 1: one copy of C whose sequence number is damaged ``jump`` ahead of the
    stream (far beyond any window), then an ordinary retransmission of B: the client sent
    300 bytes, so 300 bytes come out, once, with no gap (in particular none of cause
    "ack": the peer acknowledged nothing the capture lacks)."""
    t = Talk()
    c_seq = t.isn["c"] + 1 + 200
    data = C if payload == "copy" else bytes(reversed(C))
    damaged = t.packet(2.3, "c", "PA", data, seq=c_seq + jump)
    _, segs = three_segments([damaged])
    assert_exactly_sent(flows_of(segs), A + B + C, b"")


@pytest.mark.parametrize(
    "jump", [2**31 - 7, 2**30, 2**24, 2**23, 2**21], ids=["2^31-7", "2^30", "2^24", "2^23", "2^21"]
)
@pytest.mark.parametrize("close", ["fin", "rst"])
def test_damaged_acknowledgment_number(jump: int, close: str) -> None:
    """The same rule for ACKs: a server ACK damaged ``jump`` past anything the client sent
    (and more than any window allows: the windows here are 64 KiB, unscaled) proves no
    hole; C, sent after it, is delivered and there is no gap, whether the connection
    then ends with FINs or with the client's RST (no FIN to bound the false hole)."""
    t = Talk()
    segs = t.handshake(1.0)
    c0 = t.nxt["c"]
    segs += [t.send(2.0, "c", "PA", A), t.send(2.1, "c", "PA", B)]
    segs.append(t.packet(2.15, "s", "A", ack=c0 + 200 + jump))
    segs += [t.send(2.2, "c", "PA", C), t.packet(2.6, "s", "A")]
    if close == "fin":
        segs += [t.send(3.0, "c", "FA"), t.send(3.1, "s", "FA"), t.send(3.2, "c", "A")]
    else:
        segs.append(t.packet(3.0, "c", "R", ack=0))
    assert_exactly_sent(flows_of(segs), A + B + C, b"")


# -- item 2: bytes past the FIN -----------------------------------------------------------


@pytest.mark.parametrize("past", [0, 1, 1000, 2**20, 2**30], ids=lambda n: f"fin+{n}")
def test_data_past_the_fin_is_not_delivered(past: int) -> None:
    """Issue 9 item 2: after the client's FIN (at sequence number ``fin``), a segment
    carrying bytes at ``fin + past`` is not part of the stream: not delivered, and no gap
    is made up to reach it. The FIN is acknowledged before it, so nothing is pending."""
    t = Talk()
    segs = t.handshake(1.0)
    segs += [t.send(2.0, "c", "PA", A)]
    fin = t.nxt["c"]
    segs += [
        t.send(2.1, "c", "FA"),
        t.send(2.2, "s", "FA"),
        t.send(2.3, "c", "A"),
        t.packet(2.4, "c", "PA", b"not the stream" * 5, seq=fin + past, ack=t.nxt["s"]),
    ]
    assert_exactly_sent(flows_of(segs), A, b"")


def test_fin_carrying_data_retransmitted_is_delivered_once() -> None:
    """The legitimate neighbour of item 2: a FIN that carries data, retransmitted with the
    same data, delivers it once."""
    t = Talk()
    segs = t.handshake(1.0)
    c = t.nxt["c"]
    segs += [
        t.send(2.0, "c", "FPA", B),
        t.packet(2.5, "c", "FPA", B, seq=c),
        t.send(2.6, "s", "FA"),
        t.send(2.7, "c", "A"),
    ]
    assert_exactly_sent(flows_of(segs), B, b"")


# -- item 4: a FIN never acknowledged does not end the connection -------------------------

REQUEST = bytes((i * 13 + 5) % 256 for i in range(409))
ALERT = bytes([0x15, 0x03, 0x03, 0x00, 0x1A]) + bytes(range(26))  # 31 bytes


@pytest.mark.parametrize("unrelated", [False, True], ids=["alone", "unrelated-syn"])
def test_request_and_fin_resent_for_19_seconds_then_reset(unrelated: bool) -> None:
    """Issue 9 item 4, first capture: the client sends a 409-byte request with its FIN;
    the server closes too (its FIN acknowledges neither), so the client resends the
    request and FIN for 19 s (the last copy only the final 383 bytes) and gives up with a
    RST. One connection: one flow, the 409 bytes once, the RST in it."""
    t = Talk()
    segs = t.handshake(0.0)
    c = t.nxt["c"]
    s_ack = t.nxt["s"]
    segs.append(t.send(0.1, "c", "FPA", REQUEST))
    segs.append(t.packet(0.15, "s", "FA", ack=c))  # server FIN, acknowledging nothing new
    t.nxt["s"] += 1
    for when in (0.5, 1.3, 2.9, 6.1, 12.5):
        segs.append(t.packet(when, "c", "FPA", REQUEST, seq=c, ack=s_ack + 1))
    segs.append(t.packet(18.0, "c", "FPA", REQUEST[26:], seq=c + 26, ack=s_ack + 1))
    segs.append(t.packet(19.1, "c", "R", seq=c + 410, ack=0))
    if unrelated:
        segs = sorted([*segs, unrelated_syn(9.0)], key=lambda s: s.timestamp)
    flows = on_tuple(flows_of(segs), t.ends["c"], t.ends["s"])
    assert len(flows) == 1, summary(flows)
    assert sent_by(flows[0], True) == REQUEST, summary(flows)
    assert sent_by(flows[0], False) == b""
    assert "R" in flows[0].metadata["pcapflows"]["history"], summary(flows)


@pytest.mark.parametrize("unrelated", [False, True], ids=["alone", "unrelated-syn"])
def test_alert_and_fin_resent_nine_times_over_57_seconds(unrelated: bool) -> None:
    """Issue 9 item 4, second capture: a TLS server answers a 50-byte hello with a 31-byte
    alert and its FIN; the client's FIN acknowledges the hello but never the alert, so the
    server resends alert + FIN 9 times over 57 s. One flow, the alert once."""
    hello = bytes([0x16, 0x03, 0x01]) + bytes(range(47))
    t = Talk(server=("10.0.0.2", 443))
    segs = t.handshake(0.0)
    segs.append(t.send(0.01, "c", "PA", hello))
    s = t.nxt["s"]
    segs.append(t.send(0.02, "s", "FPA", ALERT))
    segs.append(t.packet(0.03, "c", "FA", ack=s))  # the client never saw the alert
    t.nxt["c"] += 1
    for when in (0.23, 0.45, 0.9, 1.8, 3.6, 7.2, 14.4, 28.8, 57.0):
        segs.append(t.packet(when, "s", "FPA", ALERT, seq=s, ack=t.nxt["c"]))
    if unrelated:
        segs = sorted([*segs, unrelated_syn(20.0)], key=lambda s: s.timestamp)
    flows = on_tuple(flows_of(segs), t.ends["c"], t.ends["s"])
    assert len(flows) == 1, summary(flows)
    assert sent_by(flows[0], True) == hello
    assert sent_by(flows[0], False) == ALERT, summary(flows)


@pytest.mark.parametrize("unrelated", [False, True], ids=["alone", "unrelated-syn"])
def test_keepalive_after_unacknowledged_fin_is_not_a_new_flow(unrelated: bool) -> None:
    """Issue 9 item 4, third capture: after both FINs, the server's FIN never
    acknowledged, the client probes with a keep-alive (one garbage byte just below its
    next sequence number) 30 s later. It is not a new flow's payload: one flow, whose
    client bytes are the request alone."""
    t = Talk()
    segs = t.handshake(0.0)
    segs.append(t.send(0.1, "c", "PA", A))
    segs.append(t.send(0.2, "s", "PA", B))
    segs.append(t.send(0.3, "c", "FA"))
    segs.append(t.send(0.4, "s", "FA", b""))  # acknowledges the client's FIN
    # The client acknowledges the server's data but not its FIN: it never got it.
    keepalive_seq = t.nxt["c"] - 2  # one below the FIN, the last data byte
    if unrelated:
        segs.append(unrelated_syn(10.0))
    segs.append(t.packet(30.4, "c", "A", b"\x00", seq=keepalive_seq, ack=t.nxt["s"] - 1))
    flows = on_tuple(flows_of(segs), t.ends["c"], t.ends["s"])
    assert len(flows) == 1, summary(flows)
    assert sent_by(flows[0], True) == A, summary(flows)
    assert sent_by(flows[0], False) == B


@pytest.mark.parametrize("unrelated", [False, True], ids=["alone", "unrelated-syn"])
@pytest.mark.parametrize("late", [6.0, 20.0, 300.0])
def test_retransmission_after_close_repeats_no_bytes(late: float, unrelated: bool) -> None:
    """The rule behind item 4 on its own: once a flow delivered bytes, a later segment on
    the same 4-tuple inside that sequence space is its retransmission, however long after
    the close (here both FINs were acknowledged, the connection lingered and went): the
    bytes are in the output once, whatever the number of flows."""
    t = Talk()
    segs = t.handshake(0.0)
    c = t.nxt["c"]
    segs.append(t.send(0.1, "c", "PA", A))
    segs += [t.send(0.2, "s", "FA"), t.send(0.3, "c", "FA"), t.send(0.4, "s", "A")]
    if unrelated:
        segs.append(unrelated_syn(0.4 + late / 2))
    segs.append(t.packet(0.4 + late, "c", "PA", A, seq=c))
    flows = on_tuple(flows_of(segs), t.ends["c"], t.ends["s"])
    assert b"".join(sent_by(f, True) for f in flows) == A, summary(flows)
    assert b"".join(sent_by(f, False) for f in flows) == b"", summary(flows)


# -- after a connection has ended: a damaged number, or a new connection without SYN ---


def reset_connection() -> tuple[Talk, list[Segment]]:
    """Request and reply, then the client resets (the flow ends 5 s after the RST)."""
    t = Talk()
    segs = t.handshake(1.0)
    segs += [t.send(1.1, "c", "PA", A), t.send(1.2, "s", "PA", B)]
    segs.append(t.packet(1.3, "c", "R", ack=0))
    return t, segs


def test_damaged_number_first_after_the_end_is_refused() -> None:
    """20 s after the RST, a copy of the request whose sequence number is damaged far
    away, then the ordinary retransmission: the damaged one is not a new connection's
    data, the retransmission repeats nothing."""
    t, segs = reset_connection()
    c = t.isn["c"] + 1
    segs.append(t.packet(21.0, "c", "PA", A, seq=c + 2**31 - 5))
    segs.append(t.packet(21.1, "c", "PA", A, seq=c))
    flows = flows_of(segs)
    assert [sent_by(f, True) for f in flows] == [A, b""], summary(flows)
    assert [sent_by(f, False) for f in flows] == [B, b""], summary(flows)
    assert flows[1].metadata["pcapflows"]["follows"] == flows[0].metadata["pcapflows"]["stream"]


def test_new_connection_without_its_syn_after_the_end() -> None:
    """20 s after the RST, two segments of a new connection on the same addresses, with
    numbers of their own (its SYN was not captured): they are a new flow, both."""
    _, segs = reset_connection()
    other = Talk(isn_c=3_000_000_000, isn_s=123_456_789)
    other.nxt = {"c": other.isn["c"] + 1, "s": other.isn["s"] + 1}
    segs += [other.send(21.0, "c", "PA", C), other.send(21.1, "c", "PA", B)]
    flows = flows_of(segs)
    assert [sent_by(f, True) for f in flows] == [A, C + B], summary(flows)
    assert "follows" not in flows[1].metadata["pcapflows"]


def test_first_frame_stamped_zero_repeats_no_bytes() -> None:
    """The first frame of a capture stamped 0.0 (the rest in 2024): the connection's own
    times say it was silent for decades, so the first flow ends there; the next one
    continues its sequence space, and the request's retransmission in it is not data."""
    t = Talk()
    segs = t.handshake(1_700_000_000.0)
    first = t.send(1_700_000_000.1, "c", "PA", A)
    segs = [dataclass_replace(first, timestamp=0.0), *segs[1:]]
    segs.insert(0, t.packet(0.0, "c", "S", seq=t.isn["c"]))
    segs += [
        t.packet(1_700_000_000.2, "c", "PA", A, seq=t.isn["c"] + 1),  # retransmission
        t.send(1_700_000_000.3, "s", "PA", B),
        t.send(1_700_000_000.4, "c", "PA", C),
    ]
    flows = flows_of(segs)
    assert b"".join(sent_by(f, True) for f in flows) == A + C, summary(flows)
    assert b"".join(sent_by(f, False) for f in flows) == B, summary(flows)
    stream = {f.metadata["pcapflows"]["stream"] for f in flows}
    assert all(f.metadata["pcapflows"].get("follows", min(stream)) in stream for f in flows)
