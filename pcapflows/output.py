"""Human-readable text for flows: the one-line summary and the Follow-TCP-Stream view.

Kept apart from the command line so that scripts can print the same views.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Any

from pcapflows.model.tcp import TCPFlow

#: Bytes shown per line in hex dumps (as Wireshark's hex view).
HEX_WIDTH = 16


_CAUSES = {
    "ack": ": acknowledged by the peer",
    "snaplen": ": cut by the snap length",
    "limit": ": too much buffered above the hole",
    "end": ": never captured",
    "unseen": ": never captured",
}


def endpoint(addr: Any) -> str:
    """``ip:port``, with IPv6 addresses in brackets so the port stays unambiguous."""
    if not addr:
        return "?"
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


def when(ts: float | None) -> str:
    """A capture timestamp as UTC date and time with microseconds."""
    if ts is None:
        return "-"
    try:
        dt = datetime.datetime.fromtimestamp(ts, tz=datetime.timezone.utc)
    except (OverflowError, OSError, ValueError):
        return f"{ts:.6f}"
    return dt.strftime("%Y-%m-%d %H:%M:%S.%f")


def ending(flow: TCPFlow) -> str:
    """How the connection ended, in a word or two."""
    meta = flow.metadata.get("pcapflows", {})
    closed_by = meta.get("closed_by", "?")
    if closed_by == "rst":
        text = f"rst by {meta.get('rst_from', '?')}"
    elif closed_by == "end":
        text = "open at end"
    elif closed_by == "limit":
        text = "closed early (connection limit)"
    else:
        text = str(closed_by)
    if meta.get("gaps"):
        text += f", {len(meta['gaps'])} gap(s)"
    if meta.get("conflicts"):
        text += f", {len(meta['conflicts'])} conflict(s)"
    tunnels = [t["path"] for t in meta.get("tunnels", []) if t["path"]]
    if tunnels:
        text += ", via " + "/".join(hop["type"] for hop in tunnels[0])
    return text


def summary_line(flow: TCPFlow) -> str:
    """Index, client -> server, start, duration, bytes each way, messages, ending."""
    meta = flow.metadata.get("pcapflows", {})
    start = flow.client_conn.timestamp_start
    end = flow.client_conn.timestamp_end
    duration = f"{end - start:.3f}s" if end is not None and start is not None else "-"
    sent = meta.get("bytes", {})
    return (
        f"{meta.get('stream', '?'):>5}  "
        f"{endpoint(flow.client_conn.peername)} -> {endpoint(flow.server_conn.address)}  "
        f"{when(start)}  {duration:>9}  "
        f"c>s {sent.get('client', 0)} B  s>c {sent.get('server', 0)} B  "
        f"{len(flow.messages)} msg  {ending(flow)}"
    )


def is_text(data: bytes) -> bool:
    """Whether bytes read sensibly as text (printable ASCII/UTF-8 and common whitespace)."""
    if not data:
        return True
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    bad = sum(1 for ch in text if not ch.isprintable() and ch not in "\r\n\t")
    return bad * 20 <= len(text)


def _escape(line: str) -> str:
    """Keep printable characters (any script) and tabs; escape the rest visibly."""
    return "".join(
        ch if ch.isprintable() or ch == "\t" else ch.encode("unicode_escape").decode("ascii")
        for ch in line
    )


def hexdump(data: bytes) -> Iterator[str]:
    """Wireshark-style hex dump lines: offset, 16 hex bytes, printable ASCII."""
    for off in range(0, len(data), HEX_WIDTH):
        chunk = data[off : off + HEX_WIDTH]
        hx = " ".join(f"{b:02x}" for b in chunk)
        asc = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        yield f"{off:08x}  {hx:<{HEX_WIDTH * 3 - 1}}  {asc}"


def follow_lines(flow: TCPFlow, *, force_hex: bool = False) -> Iterator[str]:
    """The flow's messages in order, like Wireshark's Follow TCP Stream.

    Each message gets a header line with its direction, capture time and size, then its
    content as text (non-printable characters escaped) or as a hex dump. Gaps are shown
    where they are, as markers: no byte is invented for them.
    """
    meta = flow.metadata.get("pcapflows", {})
    client = endpoint(flow.client_conn.peername)
    server = endpoint(flow.server_conn.address)
    yield f"Stream {meta.get('stream', '?')}: client {client}  server {server}"
    yield f"Ended: {ending(flow)}"
    gaps = {True: [], False: []}  # type: dict[bool, list[dict[str, Any]]]
    for g in sorted(meta.get("gaps", []), key=lambda g: g["offset"]):
        gaps[g["from_client"]].append(g)
    pos = {True: 0, False: 0}

    def markers(side: bool, upto: int | None) -> Iterator[str]:
        pending = gaps[side]
        while pending and (upto is None or pending[0]["offset"] <= upto):
            g = pending.pop(0)
            who = "client" if side else "server"
            why = _CAUSES.get(g.get("cause", ""), "")
            yield (
                f"[{g['length']} bytes from {who} missing in capture at stream offset "
                f"{g['offset']}{why}]"
            )
            pos[side] = g["offset"] + g["length"]

    for m in flow.messages:
        yield from markers(m.from_client, pos[m.from_client])
        arrow = ">>> client" if m.from_client else "<<< server"
        yield f"{arrow}  {when(m.timestamp)}  {len(m.content)} bytes"
        if not force_hex and is_text(m.content):
            text = m.content.decode("utf-8")
            for line in text.splitlines() or [""]:
                yield "    " + _escape(line)
        else:
            for line in hexdump(m.content):
                yield "    " + line
        pos[m.from_client] += len(m.content)
    yield from markers(True, None)
    yield from markers(False, None)
