"""The model against the real mitmproxy (the test extra installs mitmproxy 11).

pcapflows' classes must produce exactly the state mitmproxy produces for the same
objects, accept mitmproxy's state, and survive mitmproxy's own flow file writer and
reader unchanged.
"""

from __future__ import annotations

import copy
import io
import warnings
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tcptable import CAPTURES

import pcapflows
from pcapflows import Client, Error, Server, TCPFlow, TCPMessage

try:
    from mitmproxy import connection as m_connection
    from mitmproxy import flow as m_flow
    from mitmproxy import io as m_io
    from mitmproxy import tcp as m_tcp
    from mitmproxy import version as m_version
except ImportError:  # pragma: no cover - the test extra is required
    pytest.fail("mitmproxy>=11,<12 is required: pip install -e '.[test]'", pytrace=False)

CLIENT_ID = "11111111-1111-4111-8111-111111111111"
SERVER_ID = "22222222-2222-4222-8222-222222222222"
FLOW_ID = "33333333-3333-4333-8333-333333333333"


def both(
    client: tuple[str, int] = ("10.0.0.1", 40000),
    server: tuple[str, int] = ("10.0.0.2", 80),
    messages: list[tuple[bool, bytes, float]] | None = None,
    error: tuple[str, float] | None = None,
) -> tuple[TCPFlow, Any]:
    """The same flow built with pcapflows' classes and with mitmproxy's."""
    messages = messages if messages is not None else [(True, b"hi", 2.0), (False, b"yo", 2.5)]
    flows = []
    for conn_mod, tcp_mod, err_cls in (
        (pcapflows, pcapflows, Error),
        (m_connection, m_tcp, m_flow.Error),
    ):
        c = conn_mod.Client(peername=client, sockname=server, timestamp_start=1.0)
        c.id = CLIENT_ID
        c.timestamp_end = 3.0
        s = conn_mod.Server(
            address=server,
            peername=server,
            sockname=client,
            timestamp_start=1.0,
            timestamp_tcp_setup=1.2,
        )
        s.id = SERVER_ID
        s.timestamp_end = 3.0
        f = tcp_mod.TCPFlow(c, s)
        f.id = FLOW_ID
        f.timestamp_created = 1.0
        f.messages = [tcp_mod.TCPMessage(*m) for m in messages]
        if error:
            f.error = err_cls(*error)
        f.metadata["pcapflows"] = {"stream": 0, "history": "ShADadFf"}
        flows.append(f)
    return flows[0], flows[1]


def test_flow_format_version_is_mitmproxys() -> None:
    assert m_version.FLOW_FORMAT_VERSION == 21
    ours, _ = both()
    assert ours.get_state()["version"] == m_version.FLOW_FORMAT_VERSION


def test_state_is_identical() -> None:
    ours, theirs = both(error=("connection reset by server", 3.0))
    a, b = ours.get_state(), theirs.get_state()
    assert a == b
    assert list(a) == list(b)
    for key in ("client_conn", "server_conn"):
        assert list(a[key]) == list(b[key])
        for k in a[key]:
            assert type(a[key][k]) is type(b[key][k]), (key, k)
    assert [type(m) for m in a["messages"]] == [type(m) for m in b["messages"]]


def test_reprs_are_identical() -> None:
    ours, theirs = both(error=("boom", 3.0))
    assert repr(ours) == repr(theirs) == "<TCPFlow (2 messages)>"
    assert [repr(m) for m in ours.messages] == [repr(m) for m in theirs.messages]
    assert repr(ours.client_conn) == repr(theirs.client_conn)
    assert repr(ours.server_conn) == repr(theirs.server_conn)
    assert repr(ours.error) == repr(theirs.error) == "boom"
    assert str(ours.server_conn) == str(theirs.server_conn)


def test_round_trips_both_ways() -> None:
    ours, theirs = both(error=("x", 4.0))
    mine = ours.get_state()
    # mitmproxy's from_state consumes the dict it is given: hand it a copy.
    assert m_flow.Flow.from_state(copy.deepcopy(mine)).get_state() == mine
    back = pcapflows.Flow.from_state(theirs.get_state())
    assert isinstance(back, TCPFlow)
    assert back.get_state() == theirs.get_state()


def test_mitmproxy_file_writer_and_reader_accept_our_flows() -> None:
    # Real flows from a capture, written by mitmproxy's own writer, read back by its
    # own reader: the states must come back unchanged.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        flows = list(pcapflows.read(CAPTURES / "demo.pcapng", order="first_packet"))
    assert flows
    buf = io.BytesIO()
    writer = m_io.FlowWriter(buf)
    for f in flows:
        writer.add(m_flow.Flow.from_state(f.get_state()))
    buf.seek(0)
    read_back = list(m_io.FlowReader(buf).stream())
    assert [f.get_state() for f in read_back] == [f.get_state() for f in flows]
    assert all(isinstance(f, m_tcp.TCPFlow) for f in read_back)


def test_copy_semantics_match() -> None:
    ours, theirs = both()
    ours.live = theirs.live = True
    a, b = ours.copy(), theirs.copy()
    assert a.id != ours.id and b.id != theirs.id
    assert a.live is False and b.live is False
    a_state, b_state = a.get_state(), b.get_state()
    a_state["id"] = b_state["id"] = "x"
    assert a_state == b_state
    a.metadata["pcapflows"]["stream"] = 9
    assert ours.metadata["pcapflows"]["stream"] == 0


def test_set_state_rejects_other_versions_and_types() -> None:
    ours, _ = both()
    state = ours.get_state()
    with pytest.raises(ValueError):
        ours.set_state({**state, "version": 20})
    with pytest.raises(ValueError):
        ours.set_state({**state, "type": "http"})
    with pytest.raises(ValueError):
        pcapflows.Flow.from_state({**state, "type": "http"})


def test_timestamp_zero_is_kept_unlike_mitmproxy() -> None:
    # The one deliberate difference: mitmproxy turns 0.0 into "now".
    assert TCPMessage(True, b"x", 0.0).timestamp == 0.0
    assert m_tcp.TCPMessage(True, b"x", 0.0).timestamp != 0.0
    assert Error("x", 0.0).timestamp == 0.0


def test_connections_compare_by_id() -> None:
    a = Client(peername=("1.1.1.1", 1), sockname=("2.2.2.2", 2))
    b = Client(peername=("3.3.3.3", 3), sockname=("4.4.4.4", 4))
    b.id = a.id
    assert a == b and hash(a) == hash(b)
    assert Server(address=None) != Server(address=None)


addresses = st.one_of(
    st.tuples(st.ip_addresses(v=4).map(str), st.integers(0, 65535)),
    st.tuples(st.ip_addresses(v=6).map(str), st.integers(0, 65535)),
)
message_lists = st.lists(
    st.tuples(st.booleans(), st.binary(max_size=50), st.floats(0, 2e9)), max_size=5
)


@settings(max_examples=50, deadline=None)
@given(addresses, addresses, message_lists)
def test_random_flows_have_mitmproxys_state(
    client: tuple[str, int], server: tuple[str, int], messages: list[tuple[bool, bytes, float]]
) -> None:
    # mitmproxy replaces a 0.0 timestamp by "now": leave that difference to its own test.
    messages = [(fc, c, ts or 1.0) for fc, c, ts in messages]
    ours, theirs = both(client, server, messages)
    assert ours.get_state() == theirs.get_state()
    assert repr(ours.client_conn) == repr(theirs.client_conn)
