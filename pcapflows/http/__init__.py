"""HTTP/1.x over pcapflows' TCP flows, as mitmproxy ``HTTPFlow``s (see the README's
HTTP section). Importing this package registers the ``"http"`` flow type."""

from __future__ import annotations

from pcapflows.http.convert import flows_from_tcp, is_http
from pcapflows.http.headers import Headers
from pcapflows.http.model import (
    HTTPFlow,
    Message,
    Request,
    Response,
    WebSocketData,
    WebSocketMessage,
)

__all__ = [
    "HTTPFlow",
    "Headers",
    "Message",
    "Request",
    "Response",
    "WebSocketData",
    "WebSocketMessage",
    "flows_from_tcp",
    "is_http",
]
