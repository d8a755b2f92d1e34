"""One line per flow for an HTTP listing (what ``pcapflows CAPTURE --http`` prints):
time, client, method, URL, status, content type, size and duration, as mitmdump
shows an exchange; a TCP flow (not HTTP, or a remainder) gets a short TCP line."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from pcapflows.http.model import HTTPFlow, pretty_size
from pcapflows.model.flow import Flow
from pcapflows.output import endpoint, utc


def _duration(start: float | None, end: float | None) -> str:
    if start is None or end is None:
        return "-"
    ms = (end - start) * 1000
    return f"{ms:.0f}ms" if ms < 1000 else f"{ms / 1000:.2f}s"


def http_line(flow: Flow) -> str:
    """The listing line of one flow."""
    client = endpoint(flow.client_conn.peername)
    if isinstance(flow, HTTPFlow):
        req, resp = flow.request, flow.response
        head = f"{utc(req.timestamp_start, 6)} {client} {req.method or '-'} {req.pretty_url}"
        if resp is None:
            tail = f"<< no response ({flow.error.msg})" if flow.error else "<< no response"
        else:
            ctype = resp.headers.get("content-type", "-").split(";")[0].strip() or "-"
            size = (
                "(content missing)"
                if resp.raw_content is None
                else pretty_size(len(resp.raw_content))
            )
            tail = (
                f"<< {resp.status_code} {resp.reason} {ctype} {size}"
                f" {_duration(req.timestamp_start, resp.timestamp_end)}"
            )
            if flow.websocket is not None:
                tail += f" websocket ({len(flow.websocket.messages)} messages)"
            if flow.error is not None:
                tail += f" [{flow.error.msg}]"
        return f"{head} {tail}"
    messages = getattr(flow, "messages", [])
    server = endpoint(flow.server_conn.address)
    start = utc(flow.client_conn.timestamp_start, 6)
    return f"{start} {client} -> tcp -> {server} ({len(messages)} messages)"


def http_lines(flows: Iterable[Flow]) -> Iterator[str]:
    """:func:`http_line` for each flow, in the order given (``read_http``'s order)."""
    for flow in flows:
        yield http_line(flow)
