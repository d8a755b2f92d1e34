"""Table-driven tests of the reassembly rules: segments in, messages, gaps and events out.

Every expected value here is written by hand from the TCP rules, never taken from
pcapflows' own output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from tcptable import CLIENT, SERVER, seg

import pcapflows
from pcapflows import Assembler, Closed, Conflict, Data, Gap
from pcapflows.decode.segment import Segment

CI = 1000  # client ISN
SI = 5000  # server ISN


def handshake(ci: int = CI, si: int = SI) -> list[Segment]:
    return [
        seg(1.0, "c", ci, 0, "S"),
        seg(1.1, "s", si, ci + 1, "SA"),
        seg(1.2, "c", ci + 1, si + 1, "A"),
    ]


def flows_of(segments: list[Segment], **options: Any) -> list[pcapflows.TCPFlow]:
    return list(
        pcapflows.reassemble(segments, order="first_packet", limits=pcapflows.Limits(**options))
    )


def one_flow(segments: list[Segment], **options: Any) -> pcapflows.TCPFlow:
    flows = flows_of(segments, **options)
    assert len(flows) == 1, flows
    return flows[0]


def msgs(flow: pcapflows.TCPFlow) -> list[tuple[bool, bytes]]:
    return [(m.from_client, m.content) for m in flow.messages]


def meta(flow: pcapflows.TCPFlow) -> dict[str, Any]:
    m: dict[str, Any] = flow.metadata["pcapflows"]
    return m


def gaps(flow: pcapflows.TCPFlow) -> list[tuple[bool, int, int]]:
    return [(g["from_client"], g["offset"], g["length"]) for g in meta(flow)["gaps"]]


def conflicts(flow: pcapflows.TCPFlow) -> list[tuple[bool, int, int]]:
    return [(g["from_client"], g["offset"], g["length"]) for g in meta(flow)["conflicts"]]


@dataclass
class Case:
    name: str
    segments: list[Segment]
    messages: list[tuple[bool, bytes]]
    gaps: list[tuple[bool, int, int]] = field(default_factory=list)
    conflicts: list[tuple[bool, int, int]] = field(default_factory=list)


C1 = CI + 1
S1 = SI + 1

CASES = [
    Case(
        "in order, both directions, FIN close",
        [
            *handshake(),
            seg(2, "c", C1, S1, "PA", b"GET / HTTP/1.1\r\n\r\n"),
            seg(3, "s", S1, C1 + 18, "PA", b"HTTP/1.1 200 OK\r\n"),
            seg(3.1, "s", S1 + 17, C1 + 18, "PA", b"\r\nhi"),
            seg(4, "c", C1 + 18, S1 + 21, "FA"),
            seg(4.1, "s", S1 + 21, C1 + 19, "FA"),
            seg(4.2, "c", C1 + 19, S1 + 22, "A"),
        ],
        [(True, b"GET / HTTP/1.1\r\n\r\n"), (False, b"HTTP/1.1 200 OK\r\n\r\nhi")],
    ),
    Case(
        "out of order segments are delivered in sequence order",
        [
            *handshake(),
            seg(2, "c", C1 + 6, S1, "PA", b"world"),
            seg(2.1, "c", C1 + 11, S1, "PA", b"!"),
            seg(2.2, "c", C1, S1, "PA", b"hello "),
        ],
        [(True, b"hello world!")],
    ),
    Case(
        "exact retransmission is delivered once",
        [
            *handshake(),
            seg(2, "c", C1, S1, "PA", b"abc"),
            seg(2.5, "c", C1, S1, "PA", b"abc"),
            seg(3, "s", S1, C1 + 3, "PA", b"xyz"),
        ],
        [(True, b"abc"), (False, b"xyz")],
    ),
    Case(
        "partial retransmission overlapping old and new bytes",
        [
            *handshake(),
            seg(2, "c", C1, S1, "PA", b"abcd"),
            seg(2.5, "c", C1 + 2, S1, "PA", b"cdefgh"),
            seg(2.6, "c", C1 + 1, S1, "PA", b"bcdefghij"),
        ],
        [(True, b"abcdefghij")],
    ),
    Case(
        "overlap inside the out-of-order buffer, same bytes",
        [
            *handshake(),
            seg(2, "c", C1 + 4, S1, "PA", b"efgh"),
            seg(2.1, "c", C1 + 2, S1, "PA", b"cdef"),
            seg(2.2, "c", C1, S1, "PA", b"ab"),
        ],
        [(True, b"abcdefgh")],
    ),
    Case(
        "conflicting retransmission of delivered bytes: first copy wins",
        [
            *handshake(),
            seg(2, "c", C1, S1, "PA", b"abcdef"),
            seg(2.5, "c", C1 + 2, S1, "PA", b"cXYf"),
        ],
        [(True, b"abcdef")],
        conflicts=[(True, 3, 2)],
    ),
    Case(
        "conflicting overlap inside the out-of-order buffer: first copy wins",
        [
            *handshake(),
            seg(2, "c", C1 + 3, S1, "PA", b"defg"),
            seg(2.1, "c", C1, S1, "PA", b"abcDEF"),
        ],
        [(True, b"abcdefg")],
        conflicts=[(True, 3, 3)],
    ),
    Case(
        "SYN and FIN consume one sequence number; data in the FIN is payload",
        [
            *handshake(),
            seg(2, "c", C1, S1, "PA", b"req"),
            seg(3, "s", S1, C1 + 3, "FPA", b"resp"),
            seg(3.1, "c", C1 + 3, S1 + 5, "FA"),
        ],
        [(True, b"req"), (False, b"resp")],
    ),
    Case(
        "TCP Fast Open: data in the SYN and in the SYN-ACK is payload",
        [
            seg(1, "c", CI, 0, "S", b"early"),
            seg(1.1, "s", SI, CI + 6, "SA", b"hi"),
            seg(1.2, "c", CI + 6, SI + 3, "PA", b" more"),
        ],
        [(True, b"early"), (False, b"hi"), (True, b" more")],
    ),
    Case(
        "keep-alive probes (one garbage byte or none below next) change nothing",
        [
            *handshake(),
            seg(2, "c", C1, S1, "PA", b"data"),
            seg(3, "s", S1, C1 + 4, "A"),
            seg(50, "c", C1 + 3, S1, "A", b"\x00"),
            seg(50.1, "s", S1, C1 + 4, "A"),
            seg(90, "c", C1 + 3, S1, "A"),
            seg(91, "c", C1 + 4, S1, "PA", b"next"),
        ],
        [(True, b"datanext")],
    ),
    Case(
        "zero-window probe byte later re-sent inside a bigger segment",
        [
            *handshake(),
            seg(2, "c", C1, S1, "PA", b"abc"),
            seg(2.1, "s", S1, C1 + 3, "A", window=0),
            seg(3, "c", C1 + 3, S1, "A", b"d"),
            seg(4, "s", S1, C1 + 3, "A", window=0),
            seg(5, "c", C1 + 3, S1, "PA", b"defgh"),
        ],
        [(True, b"abcdefgh")],
    ),
    Case(
        "ACK-only and window updates never make messages",
        [
            *handshake(),
            seg(2, "s", S1, C1, "A", window=100),
            seg(2.1, "s", S1, C1, "A", window=200),
            seg(2.2, "c", C1, S1, "A"),
            seg(3, "c", C1, S1, "PA", b"x"),
            seg(3.1, "s", S1, C1 + 1, "A"),
            seg(3.2, "s", S1, C1 + 1, "A", window=1000),
            seg(3.3, "c", C1 + 1, S1, "PA", b"y"),
        ],
        [(True, b"xy")],
    ),
    Case(
        "a hole the peer acknowledges becomes a gap; the message ends there",
        [
            *handshake(),
            seg(2, "c", C1, S1, "PA", b"aaaa"),
            # C1+4 .. C1+8 never captured
            seg(2.2, "c", C1 + 8, S1, "PA", b"cccc"),
            seg(2.3, "s", S1, C1 + 12, "A"),
            seg(2.4, "s", S1, C1 + 12, "PA", b"ok"),
        ],
        [(True, b"aaaa"), (True, b"cccc"), (False, b"ok")],
        gaps=[(True, 4, 4)],
    ),
    Case(
        "an acknowledged hole at the end of the sent data",
        [
            *handshake(),
            seg(2, "c", C1, S1, "PA", b"aaaa"),
            seg(2.3, "s", S1, C1 + 10, "PA", b"ok"),
        ],
        [(True, b"aaaa"), (False, b"ok")],
        gaps=[(True, 4, 6)],
    ),
    Case(
        "a hole never acknowledged and open at the end: data after it is kept",
        [
            *handshake(),
            seg(2, "c", C1, S1, "PA", b"aaaa"),
            seg(2.2, "c", C1 + 8, S1, "PA", b"cccc"),
        ],
        [(True, b"aaaa"), (True, b"cccc")],
        gaps=[(True, 4, 4)],
    ),
    Case(
        "snap-length cut payload is a gap, never zeros",
        [
            *handshake(),
            seg(2, "c", C1, S1, "PA", b"abcd", missing=6),
            seg(2.1, "c", C1 + 10, S1, "PA", b"klm"),
            seg(2.2, "s", S1, C1 + 13, "PA", b"ok"),
        ],
        [(True, b"abcd"), (True, b"klm"), (False, b"ok")],
        gaps=[(True, 4, 6)],
    ),
    Case(
        "a retransmission fills a snap-length hole",
        [
            *handshake(),
            seg(2, "c", C1 + 5, S1, "PA", b"fg", missing=3),
            seg(2.1, "c", C1 + 5, S1, "PA", b"fghij"),
            seg(2.2, "c", C1, S1, "PA", b"abcde"),
        ],
        [(True, b"abcdefghij")],
    ),
    Case(
        "a FIN past missing data leaves a gap up to the FIN",
        [
            *handshake(),
            seg(2, "c", C1, S1, "PA", b"ab"),
            seg(3, "c", C1 + 5, S1, "FA"),
            seg(3.1, "s", S1, C1 + 6, "FA"),
        ],
        [(True, b"ab")],
        gaps=[(True, 2, 3)],
    ),
    Case(
        "data from the other side ends a message; runs resume afterwards",
        [
            *handshake(),
            seg(2, "c", C1, S1, "PA", b"a1"),
            seg(2.1, "c", C1 + 2, S1, "PA", b"a2"),
            seg(3, "s", S1, C1 + 4, "PA", b"b1"),
            seg(4, "c", C1 + 4, S1 + 2, "PA", b"a3"),
            seg(5, "s", S1 + 2, C1 + 6, "PA", b"b2"),
            seg(5.1, "s", S1 + 4, C1 + 6, "PA", b"b3"),
        ],
        [(True, b"a1a2"), (False, b"b1"), (True, b"a3"), (False, b"b2b3")],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_rules(case: Case) -> None:
    flow = one_flow(case.segments)
    assert msgs(flow) == case.messages
    assert gaps(flow) == case.gaps
    assert conflicts(flow) == case.conflicts
    m = meta(flow)
    sent_c = sum(len(c) for fc, c in case.messages if fc)
    sent_s = sum(len(c) for fc, c in case.messages if not fc)
    assert m["bytes"] == {"client": sent_c, "server": sent_s}
    assert flow.client_conn.peername == CLIENT
    assert flow.server_conn.address == SERVER


def test_message_timestamp_is_first_byte_packet() -> None:
    flow = one_flow(
        [
            *handshake(),
            seg(2.0, "c", C1 + 3, S1, "PA", b"def"),
            seg(2.5, "c", C1, S1, "PA", b"abc"),
            seg(3.0, "s", S1, C1 + 6, "PA", b"x"),
            seg(4.0, "c", C1 + 6, S1 + 1, "PA", b"g"),
            seg(4.5, "c", C1 + 6, S1 + 1, "PA", b"g"),
        ]
    )
    assert [(m.content, m.timestamp) for m in flow.messages] == [
        (b"abcdef", 2.5),
        (b"x", 3.0),
        (b"g", 4.0),
    ]


def test_timestamp_zero_is_kept() -> None:
    flow = one_flow(
        [
            seg(0, "c", CI, 0, "S"),
            seg(0, "s", SI, C1, "SA"),
            seg(0, "c", C1, S1, "PA", b"x"),
        ]
    )
    assert flow.messages[0].timestamp == 0.0
    assert flow.client_conn.timestamp_start == 0.0
    assert flow.timestamp_created == 0.0


def test_rst_sets_error() -> None:
    flow = one_flow(
        [
            *handshake(),
            seg(2, "c", C1, S1, "PA", b"req"),
            seg(3, "s", S1, C1 + 3, "RA"),
        ]
    )
    assert flow.error is not None
    assert "reset by server" in flow.error.msg
    assert flow.error.timestamp == 3.0
    assert meta(flow)["closed_by"] == "rst"
    assert meta(flow)["open_at_end"] is False
    assert msgs(flow) == [(True, b"req")]


def test_rst_payload_is_data() -> None:
    # tshark's Follow TCP Stream shows it too (diagnostic text some stacks put in a RST).
    flow = one_flow([*handshake(), seg(3, "s", S1, C1, "RA", b"Access Denied")])
    assert msgs(flow) == [(False, b"Access Denied")]


def test_fin_close_and_open_at_end() -> None:
    closed = one_flow(
        [
            *handshake(),
            seg(4, "c", C1, S1, "FA"),
            seg(4.1, "s", S1, C1 + 1, "FA"),
            seg(4.2, "c", C1 + 1, S1 + 1, "A"),
        ]
    )
    assert closed.error is None
    assert meta(closed)["closed_by"] == "fin"
    assert meta(closed)["open_at_end"] is False
    assert meta(closed)["history"] == "ShAFf"
    assert closed.client_conn.timestamp_end == 4.2
    assert closed.server_conn.timestamp_tcp_setup == 1.2

    still_open = one_flow([*handshake(), seg(2, "c", C1, S1, "PA", b"x")])
    assert meta(still_open)["closed_by"] == "end"
    assert meta(still_open)["open_at_end"] is True
    assert still_open.error is None


def test_handshake_metadata_and_counts() -> None:
    flow = one_flow([*handshake(), seg(2, "c", C1, S1, "PA", b"abc"), seg(3, "s", S1, C1 + 3)])
    m = meta(flow)
    assert m["handshake_seen"] is True
    assert m["packets"] == {"client": 3, "server": 2}
    assert m["bytes"] == {"client": 3, "server": 0}
    assert m["history"] == "ShADa"
    assert flow.client_conn.timestamp_start == 1.0
    assert flow.server_conn.timestamp_start == 1.0


# -- connections: 4-tuples, port reuse, roles ------------------------------------------


def test_port_reuse_starts_a_new_flow() -> None:
    first = [
        *handshake(),
        seg(2, "c", C1, S1, "PA", b"one"),
        seg(3, "c", C1 + 3, S1, "FA"),
        seg(3.1, "s", S1, C1 + 4, "FA"),
        seg(3.2, "c", C1 + 4, S1 + 1, "A"),
    ]
    second = [
        seg(4, "c", 777000, 0, "S"),
        seg(4.1, "s", 888000, 777001, "SA"),
        seg(4.2, "c", 777001, 888001, "PA", b"two"),
    ]
    flows = flows_of(first + second)
    assert [msgs(f) for f in flows] == [[(True, b"one")], [(True, b"two")]]
    assert [meta(f)["stream"] for f in flows] == [0, 1]
    assert flows[0].id != flows[1].id


def test_new_isn_syn_on_open_tuple_is_a_new_flow() -> None:
    flows = flows_of(
        [
            *handshake(),
            seg(2, "c", C1, S1, "PA", b"one"),
            seg(9, "c", 424242, 0, "S"),
            seg(9.1, "s", 99, 424243, "SA"),
            seg(9.2, "c", 424243, 100, "PA", b"two"),
        ]
    )
    assert [msgs(f) for f in flows] == [[(True, b"one")], [(True, b"two")]]


def test_retransmitted_syn_is_the_same_flow() -> None:
    flow = one_flow(
        [
            seg(1, "c", CI, 0, "S"),
            seg(2, "c", CI, 0, "S"),
            seg(4, "c", CI, 0, "S"),
            seg(4.1, "s", SI, C1, "SA"),
            seg(4.2, "s", SI, C1, "SA"),
            seg(4.3, "c", C1, S1, "PA", b"x"),
        ]
    )
    assert msgs(flow) == [(True, b"x")]
    assert meta(flow)["packets"] == {"client": 4, "server": 2}
    assert "T" not in meta(flow)["history"]


def test_synack_before_syn_in_capture() -> None:
    flow = one_flow(
        [
            seg(1.1, "s", SI, C1, "SA"),
            seg(1.0, "c", CI, 0, "S"),
            seg(1.2, "c", C1, S1, "PA", b"hi"),
        ]
    )
    assert flow.client_conn.peername == CLIENT
    assert meta(flow)["handshake_seen"] is True
    assert msgs(flow) == [(True, b"hi")]
    assert meta(flow)["history"].startswith("^")


def test_client_is_synack_receiver_when_syn_missing() -> None:
    flow = one_flow(
        [
            seg(1.1, "s", SI, C1, "SA", client=("10.0.0.1", 80), server=("10.0.0.2", 50000)),
            seg(1.2, "c", C1, S1, "PA", b"x", client=("10.0.0.1", 80), server=("10.0.0.2", 50000)),
        ]
    )
    # Port numbers would say otherwise; the SYN-ACK is stronger evidence.
    assert flow.client_conn.peername == ("10.0.0.1", 80)
    assert meta(flow)["handshake_seen"] is False


@pytest.mark.parametrize(
    ("first", "second", "server_port"),
    [
        ((("10.0.0.2", 80), ("10.0.0.1", 40000)), None, 80),  # server speaks first
        ((("10.0.0.1", 40000), ("10.0.0.2", 443)), None, 443),
        ((("10.0.0.1", 50000), ("10.0.0.2", 5432)), None, 5432),  # lower port
        ((("10.0.0.2", 5432), ("10.0.0.1", 50000)), None, 5432),
        ((("10.0.0.1", 1023), ("10.0.0.2", 8080)), None, 1023),  # well-known beats lower
    ],
)
def test_roles_mid_stream(
    first: tuple[tuple[str, int], tuple[str, int]], second: None, server_port: int
) -> None:
    (a, b) = first
    flow = one_flow(
        [
            seg(1, "c", 7000, 9000, "PA", b"first", client=a, server=b),
            seg(2, "s", 9000, 7005, "PA", b"second", client=a, server=b),
        ]
    )
    assert flow.server_conn.address is not None
    assert flow.server_conn.address[1] == server_port
    assert meta(flow)["handshake_seen"] is False
    first_from_client = a[1] != server_port
    assert msgs(flow) == [(first_from_client, b"first"), (not first_from_client, b"second")]


def test_roles_mid_stream_equal_ports_first_sender_is_client() -> None:
    a, b = ("10.0.0.9", 7000), ("10.0.0.1", 7000)
    flow = one_flow([seg(1, "c", 1, 1, "PA", b"x", client=a, server=b)])
    assert flow.client_conn.peername == a


def test_mid_stream_offsets_start_at_first_seen_sequence() -> None:
    flow = one_flow(
        [
            seg(1, "c", 50000, 90000, "PA", b"abc"),
            seg(2, "c", 50006, 90000, "PA", b"ghi"),
            seg(3, "s", 90000, 50009, "PA", b"ok"),
        ]
    )
    assert gaps(flow) == [(True, 3, 3)]
    assert msgs(flow) == [(True, b"abc"), (True, b"ghi"), (False, b"ok")]


def test_idle_timeout_in_capture_time() -> None:
    other = ("10.0.0.7", 40007)
    flows = flows_of(
        [
            *handshake(),
            seg(2, "c", C1, S1, "PA", b"a"),
            seg(5000, "c", 1, 1, "PA", b"z", client=other),
            seg(5001, "c", C1 + 1, S1, "PA", b"b"),
        ],
        idle_timeout=100,
    )
    assert [meta(f)["closed_by"] for f in flows] == ["idle", "end", "end"]
    assert [msgs(f) for f in flows] == [[(True, b"a")], [(True, b"z")], [(True, b"b")]]


def test_lone_future_timestamp_does_not_close_connections() -> None:
    # One damaged timestamp decades ahead, on another connection, must not make every
    # connection idle: the clock that reclaims memory ignores a lone jump.
    other = ("10.0.0.7", 40007)
    flows = flows_of(
        [
            *handshake(),
            seg(2, "c", C1, S1, "PA", b"a"),
            seg(4e9, "c", 1, 1, "PA", b"z", client=other),
            seg(3, "c", C1 + 1, S1, "PA", b"c"),
        ]
    )
    assert [msgs(f) for f in flows] == [[(True, b"ac")], [(True, b"z")]]


def test_own_future_timestamp_splits_without_repeating_bytes() -> None:
    # Whether a packet joins a connection is judged by that connection's own times
    # (so that other traffic can never change it): a packet stamped decades after the
    # connection's last one starts a new flow, which continues the sequence space of
    # the first, so no byte is lost or repeated.
    flows = flows_of(
        [
            *handshake(),
            seg(2, "c", C1, S1, "PA", b"a"),
            seg(4e9, "s", S1, C1 + 1, "PA", b"b"),
            seg(3, "c", C1 + 1, S1 + 1, "PA", b"c"),
            seg(3.1, "c", C1, S1 + 1, "PA", b"a"),  # a retransmission of the first flow's
        ]
    )
    assert [msgs(f) for f in flows] == [[(True, b"a")], [(False, b"b"), (True, b"c")]]
    assert meta(flows[1])["follows"] == meta(flows[0])["stream"]
    assert meta(flows[1])["gaps"] == []


def test_final_ack_and_late_rst_stay_with_closed_flow() -> None:
    flow = one_flow(
        [
            *handshake(),
            seg(2, "c", C1, S1, "FA"),
            seg(2.1, "s", S1, C1 + 1, "FA"),
            seg(2.2, "c", C1 + 1, S1 + 1, "A"),
            seg(2.3, "s", S1, C1 + 1, "FA"),  # retransmitted FIN
            seg(2.4, "c", C1 + 1, S1 + 1, "R"),
        ]
    )
    assert meta(flow)["packets"] == {"client": 5, "server": 3}
    # A RST after a clean close does not turn the flow into an error.
    assert meta(flow)["closed_by"] == "fin"
    assert flow.error is None
    assert meta(flow)["history"] == "ShAFfR"


def test_flows_finish_order_and_first_packet_order() -> None:
    other_c = ("10.0.0.3", 40001)
    long_lived = [seg(1, "c", 10, 0, "S"), seg(1.1, "s", 20, 11, "SA")]
    short = [
        seg(2, "c", 100, 0, "S", client=other_c),
        seg(2.1, "s", 200, 101, "SA", client=other_c),
        seg(2.2, "c", 101, 201, "FA", client=other_c),
        seg(2.3, "s", 201, 102, "FA", client=other_c),
        seg(2.4, "c", 102, 202, "A", client=other_c),
    ]
    segments = long_lived + short + [seg(20, "c", 11, 21, "PA", b"late")]
    finish = list(pcapflows.reassemble(segments))
    assert [meta(f)["stream"] for f in finish] == [1, 0]
    ordered = list(pcapflows.reassemble(segments, order="first_packet"))
    assert [meta(f)["stream"] for f in ordered] == [0, 1]


def test_ids_are_deterministic() -> None:
    segs = [*handshake(), seg(2, "c", C1, S1, "PA", b"x")]
    a, b = one_flow(segs), one_flow(segs)
    assert (a.id, a.client_conn.id, a.server_conn.id) == (b.id, b.client_conn.id, b.server_conn.id)
    assert len({a.id, a.client_conn.id, a.server_conn.id}) == 3


def test_buffer_limit_turns_hole_into_gap() -> None:
    segs = [*handshake()]
    for i in range(1, 11):
        segs.append(seg(2 + i, "c", C1 + 100 * i, S1, "PA", b"z" * 100))
    flow = one_flow(segs, max_buffer=500)
    assert gaps(flow)[0] == (True, 0, 100)
    assert sum(len(c) for _, c in msgs(flow)) == 1000


# -- the sans-IO assembler on its own ---------------------------------------------------


def test_assembler_events() -> None:
    asm = Assembler()
    events = []
    for s in [
        *handshake(),
        seg(2, "c", C1 + 3, S1, "PA", b"def"),
        seg(2.1, "c", C1, S1, "PA", b"abX"),
        seg(2.2, "c", C1, S1, "PA", b"abc"),
        seg(3, "s", S1, C1 + 10, "A"),
    ]:
        events.extend(asm.feed(s))
    events.extend(asm.close_all())
    data = [(e.offset, e.data) for e in events if isinstance(e, Data)]
    assert data == [(0, b"abX"), (3, b"def")]
    assert [(e.offset, e.length) for e in events if isinstance(e, Conflict)] == [(2, 1)]
    assert [(e.offset, e.length, e.timestamp) for e in events if isinstance(e, Gap)] == [
        (6, 4, 3.0)
    ]
    closed = [e for e in events if isinstance(e, Closed)]
    assert len(closed) == 1 and closed[0].summary.open_at_end
    assert asm.open_connections == 0


# -- capture order that is not sending order (merged or shuffled captures) -------------


def test_data_captured_after_its_ack_fills_the_gap() -> None:
    flow = one_flow(
        [
            *handshake(),
            seg(2.1, "s", S1, C1 + 6, "A"),  # acknowledges bytes not yet captured
            seg(2.0, "c", C1, S1, "PA", b"abcdef"),
        ]
    )
    assert msgs(flow) == [(True, b"abcdef")]
    assert gaps(flow) == []


def test_one_late_byte_in_a_gap_is_data_not_a_keepalive() -> None:
    flow = one_flow(
        [*handshake(), seg(2.1, "s", S1, C1 + 1, "A"), seg(2.0, "c", C1, S1, "PA", b"\0")]
    )
    assert msgs(flow) == [(True, b"\0")]
    assert gaps(flow) == []


def test_ack_of_a_fin_seen_before_the_fin_is_not_a_gap() -> None:
    flow = one_flow(
        [
            *handshake(),
            seg(2, "c", C1, S1, "PA", b"hi"),
            seg(3, "s", S1, C1 + 3, "FA"),  # acknowledges the client's FIN ...
            seg(2.9, "c", C1 + 2, S1, "FA"),  # ... captured only now
            seg(3.1, "c", C1 + 3, S1 + 1, "A"),
        ]
    )
    assert msgs(flow) == [(True, b"hi")]
    assert gaps(flow) == []
    assert meta(flow)["closed_by"] == "fin"


def test_syn_captured_after_the_peers_data_is_the_same_connection() -> None:
    flow = one_flow(
        [
            seg(1.2, "s", S1, C1, "PA", b"banner"),  # acknowledges the SYN below
            seg(1.0, "c", CI, 0, "S"),
            seg(1.1, "s", SI, C1, "SA"),
            seg(1.3, "c", C1, S1 + 6, "PA", b"hello"),
        ]
    )
    assert flow.client_conn.peername == CLIENT
    assert meta(flow)["handshake_seen"] is True
    assert msgs(flow) == [(False, b"banner"), (True, b"hello")]
