"""``pcapflows follow CAPTURE FLOW --http``: a connection's HTTP/1 exchanges.

Each exchange is shown as it went over the wire: the request's start line, its
header fields as sent (name case, order, duplicates) and its body, then the 1xx
interim responses and the response the same way, with the capture times. A body is
shown decoded (Content-Encoding undone, saying so) as text where it is text and as a
hex dump otherwise; ``--max-bytes`` caps each body, because one large download
should not hide the exchanges after it. What follows the exchanges and is not HTTP
(a CONNECT tunnel, an upgraded protocol, bytes after the framing was lost) is shown
as the TCP view shows messages; WebSocket messages one by one. A connection that is
not HTTP at all says so and is shown as TCP.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pcapflows.cli import colour
from pcapflows.cli.views import content_lines, header, view
from pcapflows.http.convert import flows_from_tcp
from pcapflows.http.model import HTTPFlow, Message, Request, Response
from pcapflows.model.tcp import TCPFlow
from pcapflows.output import escape, utc


def _body(
    message: Message, hex_only: bool, max_bytes: int | None, indent: str = "    "
) -> Iterator[str]:
    raw = message.raw_content
    if raw is None:
        yield f"{indent}[body not captured]"
        return
    if not raw:
        return
    yield ""  # the empty line that ends the head on the wire
    coding = message.headers.get("content-encoding", "")
    data = raw
    if coding:
        decoded = message.get_content(strict=False)
        if decoded is not raw and decoded is not None:
            data = decoded
            yield f"{indent}[body: {len(raw)} bytes {coding}, {len(data)} bytes decoded]"
        else:
            yield f"{indent}[body: {len(raw)} bytes {coding}, not decoded: shown as sent]"
    shown = data if max_bytes is None else data[:max_bytes]
    yield from content_lines(shown, hex_only, indent=indent)
    if len(shown) < len(data):
        yield f"{indent}[--max-bytes {max_bytes}: {len(data) - len(shown)} more bytes not shown]"


def _head(start: str, message: Message) -> Iterator[str]:
    yield "    " + escape(start)
    for name, value in message.headers.fields:
        yield "    " + escape(name.decode("latin-1") + ": " + value.decode("latin-1"))


def _request(r: Request) -> Iterator[str]:
    target = r.authority if r.first_line_format == "authority" else None
    if target is None:
        target = f"{r.scheme}://{r.authority}{r.path}" if r.data_authority else r.path
    yield from _head(f"{r.method} {target} {r.http_version}", r)


def _response(r: Response) -> Iterator[str]:
    yield from _head(f"{r.http_version} {r.status_code} {r.reason}".rstrip(), r)


def _exchange(f: HTTPFlow, hex_only: bool, max_bytes: int | None, on: bool) -> Iterator[str]:
    http: dict[str, Any] = f.metadata["pcapflows"]["http"]
    req = f.request
    yield colour.paint(
        f"--- exchange {http['exchange']}: {req.method or '(request not captured)'} "
        f"{req.pretty_url if req.method else ''}".rstrip(),
        colour.NOTE,
        on,
    )
    if not http.get("request_missing"):
        yield colour.paint(f">>> request  {utc(req.timestamp_start, 6)} UTC", colour.CLIENT, on)
        for line in [*_request(req), *_body(req, hex_only, max_bytes)]:
            yield colour.paint(line, colour.CLIENT, on)
    for i in http.get("interim", ()):
        yield colour.paint(
            f"<<< interim  {utc(i['timestamp'], 6)} UTC  {i['status_code']} {i['reason']}",
            colour.SERVER,
            on,
        )
    resp = f.response
    if resp is not None:
        took = ""
        if resp.timestamp_end is not None and not http.get("request_missing"):
            took = (
                f"  ({(resp.timestamp_end - req.timestamp_start) * 1000:.0f} ms after the request)"
            )
        yield colour.paint(
            f"<<< response {utc(resp.timestamp_start, 6)} UTC{took}", colour.SERVER, on
        )
        for line in [*_response(resp), *_body(resp, hex_only, max_bytes)]:
            yield colour.paint(line, colour.SERVER, on)
    if f.websocket is not None:
        ws = f.websocket
        yield colour.paint(f"[websocket: {len(ws.messages)} messages]", colour.NOTE, on)
        for m in ws.messages:
            paint = colour.CLIENT if m.from_client else colour.SERVER
            arrow = ">>> client" if m.from_client else "<<< server"
            kind = "text" if m.is_text else "binary"
            yield colour.paint(
                f"{arrow}  {utc(m.timestamp, 6)} UTC  {kind} {len(m.content)} bytes", paint, on
            )
            shown = m.content if max_bytes is None else m.content[:max_bytes]
            for line in content_lines(shown, hex_only):
                yield colour.paint(line, paint, on)
        by = {True: "client", False: "server", None: "unknown"}[ws.closed_by_client]
        reason = f" {ws.close_reason}" if ws.close_reason else ""
        yield colour.paint(f"[websocket closed by {by}: {ws.close_code}{reason}]", colour.NOTE, on)
    if f.error is not None:
        yield colour.paint(f"[error: {f.error.msg}]", colour.NOTE, on)


def _rest(flow: TCPFlow, hex_only: bool, max_bytes: int | None, on: bool) -> Iterator[str]:
    http = flow.metadata["pcapflows"]["http"]
    yield colour.paint(f"--- kept as TCP ({http['kind']}): {http['why']}", colour.NOTE, on)
    for m in flow.messages:
        paint = colour.CLIENT if m.from_client else colour.SERVER
        arrow = ">>> client" if m.from_client else "<<< server"
        yield colour.paint(f"{arrow}  {utc(m.timestamp, 6)} UTC  {len(m.content)} bytes", paint, on)
        data = m.content if max_bytes is None else m.content[:max_bytes]
        for line in content_lines(data, hex_only):
            yield colour.paint(line, paint, on)
        if len(data) < len(m.content):
            yield colour.paint(
                f"    [--max-bytes {max_bytes}: {len(m.content) - len(data)} more bytes not shown]",
                colour.NOTE,
                on,
            )


def http_view(
    flow: TCPFlow,
    *,
    hex_only: bool = False,
    max_bytes: int | None = None,
    colour_on: bool = False,
) -> Iterator[str]:
    """The lines of ``follow --http`` for one connection."""
    flows = flows_from_tcp(flow)
    if flows == [flow]:
        yield colour.paint(
            "[not HTTP/1: neither side starts with a request or status line; shown as TCP]",
            colour.NOTE,
            colour_on,
        )
        yield from view(flow, hex_only=hex_only, max_bytes=max_bytes, colour_on=colour_on)
        return
    yield from header(flow)
    for f in flows:
        if isinstance(f, HTTPFlow):
            yield from _exchange(f, hex_only, max_bytes, colour_on)
        elif isinstance(f, TCPFlow):
            yield from _rest(f, hex_only, max_bytes, colour_on)
