"""The JSON form of a flow: ``export --format jsonl``, ``list --json``, ``follow --format json``.

One JSON object per flow, on one line. Its schema is versioned (``"version"``, now
:data:`VERSION`) and shipped with the package as a JSON Schema file
(:func:`schema_path`), so that a consumer can validate what it reads and notice a
change: a new optional key keeps the version, anything else raises it.

Payloads are base64 (JSON has no bytes); every message carries its offset in its
direction's stream, so the bytes can be put back in place around the gaps (which are
in ``metadata.pcapflows.gaps``: never filled with invented bytes).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from pcapflows.cli.describe import ending, flow_duration
from pcapflows.model.tcp import TCPFlow

#: The schema version written in every object (``"version": 1``).
VERSION = 1
#: ``"format"`` in every object: tells these lines apart from other JSON.
FORMAT = "pcapflows-flow"


def schema_path() -> Path:
    """The JSON Schema (draft 2020-12) of one line, shipped inside the package."""
    return Path(__file__).with_name(f"flow-{VERSION}.schema.json")


def message_offsets(flow: TCPFlow) -> list[int]:
    """The offset of each message in its direction's stream.

    A direction's messages follow one another except where a gap lies between them
    (bytes that were sent but not captured), so the offset is the running total of
    the direction's message lengths, moved past each gap it reaches.
    """
    meta = flow.metadata.get("pcapflows", {})
    gaps: dict[bool, list[tuple[int, int]]] = {True: [], False: []}
    for g in sorted(meta.get("gaps", []), key=lambda g: g["offset"]):
        gaps[bool(g["from_client"])].append((int(g["offset"]), int(g["length"])))
    pos = {True: 0, False: 0}
    out = []
    for m in flow.messages:
        side = m.from_client
        pending = gaps[side]
        while pending and pending[0][0] <= pos[side]:
            off, length = pending.pop(0)
            pos[side] = max(pos[side], off + length)
        out.append(pos[side])
        pos[side] += len(m.content)
    return out


def _endpoint(addr: Any) -> dict[str, Any] | None:
    if not addr:
        return None
    return {"ip": str(addr[0]), "port": int(addr[1])}


def flow_record(
    flow: TCPFlow,
    capture: str,
    *,
    messages: bool = True,
    max_bytes: int | None = None,
    side: bool | None = None,
) -> dict[str, Any]:
    """The JSON object of one flow.

    ``messages=False`` leaves the payload out (``list --json``); ``max_bytes`` keeps at
    most that many payload bytes in all (the last message kept is cut, and
    ``"truncated": true`` says so); ``side`` keeps only the client's (True) or the
    server's (False) messages.
    """
    meta = flow.metadata.get("pcapflows", {})
    start = flow.client_conn.timestamp_start
    record: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "capture": capture,
        "index": meta.get("stream"),
        "id": flow.id,
        "client": _endpoint(flow.client_conn.peername),
        "server": _endpoint(flow.server_conn.address),
        "start": start,
        "end": flow.client_conn.timestamp_end,
        "duration": flow_duration(flow),
        "ending": ending(meta),
        "error": None if flow.error is None else flow.error.msg,
        "message_count": len(flow.messages),
        "metadata": flow.metadata,
    }
    if messages:
        out = []
        left = max_bytes
        cut = False
        for m, off in zip(flow.messages, message_offsets(flow), strict=True):
            if side is not None and m.from_client != side:
                continue
            content = m.content
            if left is not None:
                if left <= 0:
                    cut = True
                    break
                if len(content) > left:
                    content = content[:left]
                    cut = True
                left -= len(content)
            out.append(
                {
                    "from_client": m.from_client,
                    "timestamp": m.timestamp,
                    "offset": off,
                    "length": len(content),
                    "content": base64.b64encode(content).decode("ascii"),
                }
            )
            if cut:
                break
        record["messages"] = out
        if cut:
            record["truncated"] = True
    return record


def dumps(record: dict[str, Any]) -> str:
    """One line of JSON, compact, keys in the order they were built."""
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False)
