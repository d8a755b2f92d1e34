"""HTTP flows against the real mitmproxy: state shape, flow files, mitmdump's
listing, to_mitmproxy, and mitmproxy's own HTTP/1 head parser on the same bytes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from httptable import tcp_flow

import pcapflows
from pcapflows.http import HTTPFlow, flows_from_tcp
from pcapflows.http.output import http_lines

pytest.importorskip("mitmproxy")

from mitmproxy import io as mio
from mitmproxy.net.http.http1 import read as m_read
from mitmproxy.test import tflow

REQ = (
    b"POST /form?x=1 HTTP/1.1\r\nHost: example.com\r\nX-Dup: 1\r\nx-dup: 2\r\n"
    b"Content-Length: 3\r\n\r\nabc"
)
RESP = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"4\r\nbody\r\n0\r\nX-T: 1\r\n\r\n"
)


def _flows() -> list[Any]:
    ws = b"GET /ws HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\r\n"
    return flows_from_tcp(
        tcp_flow(
            [
                (True, REQ),
                (False, RESP),
                (True, b"GET /missing HTTP/1.0\r\n\r\n"),
                (False, b"HTTP/1.0 404\r\n\r\n"),
            ]
        )
    ) + flows_from_tcp(
        tcp_flow(
            [
                (True, ws),
                (
                    False,
                    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x02hi",
                ),
            ],
            flow_id="4d7e1d2c-0000-5000-8000-000000000002",
        )
    )


def _shape(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value).__name__
    if isinstance(value, float):
        return "number"
    if isinstance(value, int) and not isinstance(value, bool):
        return "int"
    return type(value).__name__


def test_state_keys_and_types_as_mitmproxys() -> None:
    theirs = tflow.tflow(resp=True, ws=True).get_state()
    ours = _flows()[-1].get_state()
    assert list(ours) == list(theirs)
    for part in ("request", "response"):
        assert list(ours[part]) == list(theirs[part])
        shape_o, shape_t = _shape(ours[part]), _shape(theirs[part])
        # mitmproxy's test flow has int timestamps and no trailers; a real one has floats.
        for k in ("timestamp_start", "timestamp_end", "trailers"):
            shape_o.pop(k), shape_t.pop(k)
        assert shape_o == shape_t
    assert list(ours["websocket"]) == list(theirs["websocket"])
    theirs_types = [type(x) for x in theirs["websocket"]["messages"][0]]
    assert [type(x) for x in ours["websocket"]["messages"][0]] == [
        *theirs_types[:3],
        float,
        bool,
        bool,
    ]


def test_to_mitmproxy_equal_state_and_repr() -> None:
    from mitmproxy import http

    for ours in _flows():
        if not isinstance(ours, HTTPFlow):
            continue
        theirs = pcapflows.to_mitmproxy(ours)
        assert isinstance(theirs, http.HTTPFlow)
        assert theirs.get_state() == ours.get_state()
        assert repr(theirs.request) == repr(ours.request)
        assert repr(theirs.response) == repr(ours.response)
        assert theirs.request.url == ours.request.url
        assert theirs.request.pretty_url == ours.request.pretty_url
        assert repr(theirs.request.headers) == repr(ours.request.headers)
        assert theirs.request.headers["x-dup"] if "x-dup" in ours.request.headers else True
        if ours.response is not None:
            assert theirs.response.content == ours.response.content
            assert theirs.response.text == ours.response.text
        assert repr(theirs.websocket) == repr(ours.websocket)


def test_heads_equal_mitmproxys_own_parser() -> None:
    """mitmproxy's HTTP/1 head reader on the same bytes gives the same fields (for
    well-formed heads; what we tolerate beyond it is tested in test_http_parser)."""
    (ours, *_) = _flows()
    lines = REQ.split(b"\r\n\r\n")[0].split(b"\r\n")
    theirs = m_read.read_request_head(lines)
    assert theirs.headers.fields == ours.request.headers.fields
    assert (theirs.method, theirs.path, theirs.http_version) == (
        ours.request.method,
        ours.request.path,
        ours.request.http_version,
    )
    rlines = RESP.split(b"\r\n\r\n")[0].split(b"\r\n")
    theirs_r = m_read.read_response_head(rlines)
    assert theirs_r.headers.fields == ours.response.headers.fields
    assert (theirs_r.status_code, theirs_r.reason) == (
        ours.response.status_code,
        ours.response.reason,
    )


def test_flow_file_loads_and_mitmdump_lists_it(tmp_path: Path) -> None:
    flows = _flows()
    out = tmp_path / "http.mitm"
    assert pcapflows.write_mitm(flows, out) == len(flows)
    with out.open("rb") as f:
        loaded = list(mio.FlowReader(f).stream())
    assert [f.get_state() for f in loaded] == [f.get_state() for f in flows]
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            "from mitmproxy.tools.main import mitmdump; mitmdump()",
            "-nr",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    lines = [line.strip() for line in run.stdout.splitlines() if line.strip()]
    requests = [line for line in lines if line.startswith("10.0.0.1:40000: ")]
    assert requests == [
        "10.0.0.1:40000: POST http://10.0.0.2:8080/form?x=1",
        "10.0.0.1:40000: GET http://10.0.0.2:8080/missing",
        "10.0.0.1:40000: GET http://10.0.0.2:8080/ws",
    ]
    assert "<< 200 OK 4b" in lines and "<< 404  0b" in lines
    # No close frame was captured: close code 1006, which mitmdump reports so.
    assert lines[-1].endswith("WebSocket Error: ABNORMAL_CLOSURE")
    ours = list(http_lines(flows))
    assert len(ours) == len(flows)
