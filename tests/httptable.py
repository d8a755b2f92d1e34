"""Helpers for the HTTP tests: TCP flows built by hand from byte streams."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pcapflows.model.connection import Client, Server
from pcapflows.model.tcp import TCPFlow, TCPMessage

CLIENT = ("10.0.0.1", 40000)
SERVER = ("10.0.0.2", 8080)


def tcp_flow(
    messages: Sequence[tuple[bool, bytes] | tuple[bool, bytes, float]],
    *,
    gaps: Sequence[dict[str, Any]] = (),
    handshake: bool = True,
    flow_id: str = "4d7e1d2c-0000-5000-8000-000000000001",
    **meta: Any,
) -> TCPFlow:
    """A TCPFlow with these messages (``True`` = from the client); message i is
    stamped 100 + i unless a time is given. ``gaps``: dicts with from_client, offset,
    length (timestamp and cause filled in)."""
    client = Client(
        peername=CLIENT,
        sockname=SERVER,
        timestamp_start=99.0,
        timestamp_end=200.0,
        id="c0000000-0000-4000-8000-000000000001",
    )
    server = Server(
        address=SERVER,
        peername=SERVER,
        sockname=CLIENT,
        timestamp_start=99.0,
        timestamp_tcp_setup=99.5,
        timestamp_end=200.0,
        id="50000000-0000-4000-8000-000000000002",
    )
    flow = TCPFlow(client, server, id=flow_id, timestamp_created=99.0)
    for i, m in enumerate(messages):
        t = m[2] if len(m) == 3 else 100.0 + i  # type: ignore[misc]
        flow.messages.append(TCPMessage(m[0], m[1], t))
    flow.metadata["pcapflows"] = {
        "stream": 0,
        "handshake_seen": handshake,
        "history": "ShADadFf",
        "gaps": [{"timestamp": 150.0, "cause": "ack", **g} for g in gaps],
        "conflicts": [],
        "closed_by": "fin",
        "open_at_end": False,
        **meta,
    }
    return flow
