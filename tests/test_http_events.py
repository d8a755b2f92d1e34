"""HTTP flows from the flows of :func:`pcapflows.events` (issue 12: the HTTP layer is
"also usable on flows or events the caller already has"): at a connection's ``end`` or
``error`` event its flow is finished, and ``flows_from_tcp`` of it gives the HTTP flows
``read_http`` gives for the same connection, on the HTTP captures of ``captures/`` and
of the corpus."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
from tcptable import CORPUS
from test_http_tshark import _http_captures

import pcapflows
from pcapflows.http import HTTPFlow, flows_from_tcp

HERE = Path(__file__).resolve().parent.parent / "captures"


def _states(flows: list[Any]) -> list[dict[str, Any]]:
    return [f.get_state() for f in flows]


@pytest.mark.parametrize(
    "path",
    [HERE / "loopback_http11.pcap", HERE / "demo.pcapng"]
    + [CORPUS / name for name in _http_captures()],
    ids=lambda p: p.name,
)
def test_events_flows_give_read_https_flows(path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        by_read = {tcp.id: tcp for tcp in pcapflows.read(path)}
        by_http = {tcp_id: _states(flows_from_tcp(tcp)) for tcp_id, tcp in by_read.items()}
        events = [e for e in pcapflows.events(path) if e.kind in ("end", "error")]
    assert sorted(e.flow.id for e in events) == sorted(by_read)
    http_flows = 0
    for e in events:
        made = flows_from_tcp(e.flow)
        assert _states(made) == by_http[e.flow.id], e.flow.id
        http_flows += sum(isinstance(f, HTTPFlow) for f in made)
    if path.parent == HERE:
        assert http_flows > 0
