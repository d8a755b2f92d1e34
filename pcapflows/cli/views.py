"""The text and hex views of one conversation, as Follow TCP Stream shows it: what
``pcapflows follow`` prints, and what its ``--http`` view falls back to for bytes that
are not HTTP (kept apart from both, which import it)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pcapflows.cli import colour
from pcapflows.cli.describe import ending, notes
from pcapflows.cli.jsonl import message_offsets
from pcapflows.model.tcp import TCPFlow
from pcapflows.output import endpoint, escape, is_text, utc

_CAUSES = {
    "ack": "acknowledged by the peer",
    "snaplen": "cut by the snap length",
    "limit": "too much buffered above the hole",
    "end": "never captured",
    "unseen": "never captured",
}


def hexdump(data: bytes, base: int) -> Iterator[str]:
    """Wireshark-style lines: offset in the direction's stream, 16 bytes, ASCII."""
    for off in range(0, len(data), 16):
        chunk = data[off : off + 16]
        hx = " ".join(f"{b:02x}" for b in chunk)
        asc = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        yield f"{base + off:08x}  {hx:<47}  {asc}"


def content_lines(data: bytes, hex_only: bool, base: int = 0, indent: str = "    ") -> list[str]:
    """``data`` as the lines of a view, each indented: its text (escaped) when it is
    text and hex was not asked for, else a hex dump counting from offset ``base``."""
    if not hex_only and is_text(data):
        return [indent + escape(line) for line in data.decode("utf-8").splitlines() or [""]]
    return [indent + line for line in hexdump(data, base)]


def _gap_note(g: dict[str, Any]) -> str:
    who = "client" if g["from_client"] else "server"
    why = _CAUSES.get(str(g.get("cause", "")), "")
    return (
        f"[gap: {g['length']} bytes from {who} missing in the capture at stream offset "
        f"{g['offset']}{': ' + why if why else ''}]"
    )


def _conflict_note(c: dict[str, Any]) -> str:
    who = "client" if c["from_client"] else "server"
    n = c["length"]
    return (
        f"[conflict: {who} bytes {c['offset']}-{c['offset'] + n - 1}: a later copy "
        f"({n} bytes, captured {utc(c['timestamp'], 6)}) differed from the first copy "
        f"({n} bytes), which is shown]"
    )


def header(flow: TCPFlow) -> Iterator[str]:
    """The two lines a conversation starts with: its endpoints, when it started and how
    it ended (the text, hex and HTTP views alike)."""
    meta = flow.metadata["pcapflows"]
    extra = notes(meta)
    yield (
        f"Stream {meta['stream']}: client {endpoint(flow.client_conn.peername)}  "
        f"server {endpoint(flow.server_conn.address)}"
    )
    yield (
        f"Started {utc(flow.client_conn.timestamp_start, 6)} UTC, ended: {ending(meta)}"
        + (f" ({extra})" if extra else "")
    )


def view(
    flow: TCPFlow,
    *,
    hex_only: bool = False,
    side: bool | None = None,
    max_bytes: int | None = None,
    colour_on: bool = False,
) -> Iterator[str]:
    """The lines of the text and hex formats."""
    meta = flow.metadata["pcapflows"]
    yield from header(flow)
    gaps: dict[bool, list[dict[str, Any]]] = {True: [], False: []}
    for g in sorted(meta["gaps"], key=lambda g: g["offset"]):
        gaps[bool(g["from_client"])].append(g)
    offsets = message_offsets(flow)
    conflicts: dict[int, list[dict[str, Any]]] = {}
    late: list[dict[str, Any]] = []
    for c in meta["conflicts"]:
        for i, (m, off) in enumerate(zip(flow.messages, offsets, strict=True)):
            if m.from_client == c["from_client"] and off <= c["offset"] < off + len(m.content):
                conflicts.setdefault(i, []).append(c)
                break
        else:
            late.append(c)
    note = colour.NOTE
    left = max_bytes
    total = sum(len(m.content) for m in flow.messages if side is None or m.from_client == side)
    shown = 0
    for i, (m, off) in enumerate(zip(flow.messages, offsets, strict=True)):
        pending = gaps[m.from_client]
        while pending and pending[0]["offset"] < off:
            g = pending.pop(0)
            if side is None or g["from_client"] == side:
                yield colour.paint(_gap_note(g), note, colour_on)
        if side is not None and m.from_client != side:
            continue
        if left is not None and left <= 0:
            break
        data = m.content if left is None else m.content[:left]
        if left is not None:
            left -= len(data)
        shown += len(data)
        paint = colour.CLIENT if m.from_client else colour.SERVER
        arrow = ">>> client" if m.from_client else "<<< server"
        yield colour.paint(
            f"{arrow}  {utc(m.timestamp, 6)} UTC  {len(m.content)} bytes at offset {off}",
            paint,
            colour_on,
        )
        for line in content_lines(data, hex_only, off):
            yield colour.paint(line, paint, colour_on)
        for c in conflicts.get(i, []):
            yield colour.paint(_conflict_note(c), note, colour_on)
    if left is not None and shown < total:
        yield colour.paint(
            f"[--max-bytes {max_bytes}: {total - shown} more bytes not shown]", note, colour_on
        )
        return
    for s in (True, False):
        for g in gaps[s]:
            if side is None or s == side:
                yield colour.paint(_gap_note(g), note, colour_on)
    for c in late:
        if side is None or c["from_client"] == side:
            yield colour.paint(_conflict_note(c), note, colour_on)
