"""read_http() on a real recording (captures/loopback_http11.pcap, made by
captures/record_http.py: http.server and a socket client on loopback, keep-alive,
pipelining, chunked with a trailer, gzip, 100-continue, a WebSocket echo and a
CONNECT tunnel) against the endpoints' own record of what they sent and received
(captures/loopback_http11.truth.json), not against a parse of the capture."""

from __future__ import annotations

import json
import warnings
from typing import Any

import pytest
from tcptable import CAPTURES

import pcapflows
from pcapflows.http import HTTPFlow
from pcapflows.model.flow import Flow
from pcapflows.model.tcp import TCPFlow

CAPTURE = CAPTURES / "loopback_http11.pcap"
TRUTH: dict[str, Any] = json.loads((CAPTURES / "loopback_http11.truth.json").read_text())
CONNS: list[dict[str, Any]] = TRUTH["connections"]


@pytest.fixture(scope="module")
def by_port() -> dict[int, list[Flow]]:
    out: dict[int, list[Flow]] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean recording: no damage warning
        for f in pcapflows.read_http(CAPTURE):
            out.setdefault(f.client_conn.peername[1], []).append(f)  # type: ignore[index]
    return out


def test_tcp_bytes_are_what_the_sockets_sent() -> None:
    """The layer below first: each connection's bytes each way, as the client's
    socket sent and received them."""
    flows = {f.client_conn.peername[1]: f for f in pcapflows.read(CAPTURE)}  # type: ignore[index]
    for conn in CONNS:
        f = flows[conn["client_port"]]
        assert b"".join(m.content for m in f.messages if m.from_client).hex() == conn["sent_hex"]
        assert (
            b"".join(m.content for m in f.messages if not m.from_client).hex()
            == conn["received_hex"]
        )


def _check_exchanges(flows: list[Flow], conn: dict[str, Any]) -> list[HTTPFlow]:
    http = [f for f in flows if isinstance(f, HTTPFlow)]
    served = conn["served"]["responses"]
    assert len(http) == len(conn["requests"]) == len(served)
    for f, req, resp in zip(http, conn["requests"], served, strict=True):
        assert f.error is None
        assert f.request.method == req["method"]
        want_target = req["target"]
        got_target = f.request.authority if req["method"] == "CONNECT" else f.request.path
        assert got_target == want_target
        assert [list(kv) for kv in f.request.headers.fields] == [
            [k.encode(), v.encode()] for k, v in req["headers"]
        ]
        assert f.request.raw_content == bytes.fromhex(req["body_hex"])
        assert f.response is not None
        assert f.response.status_code == resp["status"]
        assert f.response.raw_content == bytes.fromhex(resp["raw_hex"])
        assert f.response.content == bytes.fromhex(resp["content_hex"])
        if "trailers" in resp:
            assert f.response.trailers is not None
            assert [[k.decode(), v.decode()] for k, v in f.response.trailers.fields] == resp[
                "trailers"
            ]
        interim = f.metadata["pcapflows"]["http"].get("interim", [])
        assert [i["status_code"] for i in interim] == resp.get("interim", [])
        assert f.request.timestamp_start <= f.response.timestamp_start
    return http


def test_keepalive_pipelining_chunked_gzip(by_port: dict[int, list[Flow]]) -> None:
    conn = CONNS[0]
    flows = by_port[conn["client_port"]]
    assert len(_check_exchanges(flows, conn)) == len(flows) == 4


def test_100_continue(by_port: dict[int, list[Flow]]) -> None:
    conn = CONNS[1]
    (f,) = _check_exchanges(by_port[conn["client_port"]], conn)
    # The body went after the 100: the request ends after the interim response.
    interim = f.metadata["pcapflows"]["http"]["interim"][0]
    assert f.request.timestamp_end is not None and interim["timestamp"] <= f.request.timestamp_end


def _messages(frames: list[list[Any]], from_client: bool) -> list[tuple[bool, int, bytes]]:
    """Data messages (fragments joined) of frames as an endpoint recorded them:
    (opcode, hex, fin) from the client, (first byte, hex) from the server."""
    out: list[tuple[bool, int, bytes]] = []
    parts: list[bytes] = []
    first = 0
    for frame in frames:
        op, data = (frame[0], frame[1]) if from_client else (frame[0] & 0x0F, frame[1])
        fin = frame[2] if from_client else bool(frame[0] & 0x80)
        if op >= 8:
            continue
        if op:
            first = op
        parts.append(bytes.fromhex(data))
        if fin:
            out.append((from_client, first, b"".join(parts)))
            parts = []
    return out


def test_websocket_echo(by_port: dict[int, list[Flow]]) -> None:
    conn = CONNS[2]
    flows = by_port[conn["client_port"]]
    (f,) = _check_exchanges(flows, conn)
    assert f.websocket is not None
    sent = _messages(conn["ws_sent"], True)
    echoed = _messages(conn["served"]["ws_echoed"], False)
    want = [m for pair in zip(sent, echoed, strict=True) for m in pair]
    got = [(m.from_client, int(m.type), m.content) for m in f.websocket.messages]
    assert got == want
    assert f.websocket.close_code == 1000 and f.websocket.close_reason == "bye"
    assert f.websocket.closed_by_client is True


def test_connect_tunnel(by_port: dict[int, list[Flow]]) -> None:
    conn = CONNS[3]
    flows = by_port[conn["client_port"]]
    (f,) = _check_exchanges(flows, conn)
    (tunnel,) = [t for t in flows if isinstance(t, TCPFlow)]
    assert f.metadata["pcapflows"]["http"]["tunnel"] == tunnel.id
    assert tunnel.metadata["pcapflows"]["http"]["kind"] == "connect"
    client = b"".join(m.content for m in tunnel.messages if m.from_client)
    server = b"".join(m.content for m in tunnel.messages if not m.from_client)
    assert client == bytes.fromhex(conn["tunnel_hex"])
    assert server == bytes.fromhex(conn["served"]["tunnel"]) == client  # an echo
    # The relay's own connection to the echo server is not HTTP: one plain TCPFlow.
    echo_port = TRUTH["echo_server"][1]
    (upstream,) = [
        g
        for fl in by_port.values()
        for g in fl
        if g.server_conn.address[1] == echo_port  # type: ignore[index]
    ]
    assert isinstance(upstream, TCPFlow) and "http" not in upstream.metadata["pcapflows"]
