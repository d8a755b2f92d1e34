"""Hypothesis: how the same HTTP bytes are cut into TCP messages does not change the
HTTP flows (only which message a byte came in, hence its timestamp: all messages of
a side carry the same time here, so the flows must be equal state for state)."""

from __future__ import annotations

import itertools

from httptable import tcp_flow
from hypothesis import given, settings
from hypothesis import strategies as st

from pcapflows.http import flows_from_tcp
from pcapflows.http.parser import (
    _fields,
    _general_request_line,
    _general_status_line,
    _split_request_line,
    _split_status_line,
    parse_fields,
)

CLIENT_BYTES = (
    b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
    b"POST /p HTTP/1.1\nContent-Length: 5\n\nhello"
    b"PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nT: 1\r\n\r\n"
    b"HEAD /h HTTP/1.1\r\n\r\n"
    b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n"
    b"\x81\x83\x01\x02\x03\x04ikm"
)
SERVER_BYTES = (
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"
    b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n"
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"
    b"\x82\x03xyz"
)


def _cut(data: bytes, points: list[int]) -> list[bytes]:
    edges = sorted({0, len(data), *(p % (len(data) + 1) for p in points)})
    return [data[a:b] for a, b in itertools.pairwise(edges) if b > a]


def _flows(client: list[bytes], server: list[bytes], order: list[bool]) -> list[dict[str, object]]:
    messages: list[tuple[bool, bytes, float]] = []
    ci = si = 0
    for take_client in order + [True] * len(client) + [False] * len(server):
        if take_client and ci < len(client):
            messages.append((True, client[ci], 100.0))
            ci += 1
        elif not take_client and si < len(server):
            messages.append((False, server[si], 200.0))
            si += 1
    states = []
    for f in flows_from_tcp(tcp_flow(messages)):
        state = f.get_state()
        if f.type == "http":
            if state["websocket"]:
                # Which side's message completes first depends on the interleaving.
                state["websocket"]["messages"].sort(key=lambda m: m[1])
        states.append(state)
    return states


WHOLE = _flows([CLIENT_BYTES], [SERVER_BYTES], [True, False])


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.integers(0, 10_000), max_size=12),
    st.lists(st.integers(0, 10_000), max_size=12),
    st.lists(st.booleans(), max_size=30),
)
def test_any_split_same_flows(cpoints: list[int], spoints: list[int], order: list[bool]) -> None:
    got = _flows(_cut(CLIENT_BYTES, cpoints), _cut(SERVER_BYTES, spoints), order)
    assert got == WHOLE


def test_whole_is_what_we_expect() -> None:
    # The reference itself, against hand-written truth.
    summary = [
        (s["request"]["method"], s["request"]["path"], s["response"]["status_code"])  # type: ignore[index]
        for s in WHOLE
    ]
    assert summary == [
        (b"GET", b"/a", 200),
        (b"POST", b"/p", 201),
        (b"PUT", b"/c", 200),
        (b"HEAD", b"/h", 200),
        (b"GET", b"/ws", 101),
    ]
    ws = WHOLE[-1]["websocket"]
    assert [m[:3] for m in ws["messages"]] == [(2, False, b"xyz"), (1, True, b"hin")]  # type: ignore[index]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.binary(max_size=300), st.booleans())
def test_random_bytes_never_raise(client: bytes, server: bytes, prefix: bool) -> None:
    if prefix:
        client = b"GET / HTTP/1.1\r\n" + client
        server = b"HTTP/1.1 200 OK\r\n" + server
    flows = flows_from_tcp(tcp_flow([(True, client), (False, server)]))
    for f in flows:
        assert "error" not in f.metadata.get("pcapflows", {}).get("http", {})
        f.get_state()


# A field line from the characters that decide how it is read: names, colons, spaces,
# tabs, CRs, obs-fold's leading whitespace.
_LINE = st.lists(st.sampled_from([b"a", b"B", b"-", b":", b" ", b"\t", b"\r", b"x:y", b"\xff"]))


@settings(max_examples=400, deadline=None)
@given(st.lists(_LINE.map(b"".join), max_size=8), st.booleans())
def test_field_block_fast_path_agrees(lines: list[bytes], crlf: bool) -> None:
    """The one-search reading of a head's field block (``_fields``) gives what the
    line-by-line reading (``parse_fields``) gives, on any lines: fields and the count
    of lines skipped."""
    end = b"\r\n" if crlf else b"\n"
    block = b"".join(line + end for line in lines)
    # Each line as the line-by-line reading sees it: its newline and one CR before it
    # gone (a line that itself ends in CR loses that CR to a bare LF too).
    expected = parse_fields([(line + end)[:-1].removesuffix(b"\r") for line in lines])
    assert _fields(block) == expected


def test_start_line_fast_path_agrees() -> None:
    """A request or status line taken in one match gives what the general reading
    (split on whitespace, checked word by word) gives: on every line made of these
    words and separators (150,000 start lines and near misses)."""
    firsts = (b"HTTP/1.1", b"GET", b"HTTP/1", b"x@")
    seconds = (b"200", b"/a", b"1234", b"/a b", b"")
    thirds = (b"OK", b"Not Found", b"HTTP/1.1", b"a\rb", b"a\tb", b"")
    fourths = (b"", b" HTTP/1.0")
    seps = (b"", b" ", b"  ", b"\t", b"\x0b")
    checked = 0
    for w1, w2, w3, w4 in itertools.product(firsts, seconds, thirds, fourths):
        for s0, s1, s2, s3 in itertools.product(seps, repeat=4):
            line = s0 + w1 + s1 + w2 + s2 + w3 + w4 + s3
            assert _split_request_line(line) == _general_request_line(line), line
            assert _split_status_line(line) == _general_status_line(line), line
            checked += 1
    assert checked == 150_000
