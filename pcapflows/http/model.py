"""``HTTPFlow``, ``Request``, ``Response``, ``WebSocketData``: mitmproxy's
``mitmproxy.http`` and ``mitmproxy.websocket`` model, without mitmproxy.

Same attributes (text properties over the bytes that were sent), same
``get_state()``/``set_state()``/``from_state()`` (flow format 21, mitmproxy 11, key for
key and type for type) and the same reprs, so that a flow file pcapflows writes is
what mitmproxy itself would have written for the same exchange. What only a live
proxy needs (streaming, intercepting, setters that rewrite the Host header) is left
out: these objects describe what was captured.
"""

from __future__ import annotations

import enum
import time
from typing import Any, cast

from pcapflows.http.encoding import decode, text_encoding
from pcapflows.http.headers import Headers
from pcapflows.http.headers import _native as _text
from pcapflows.model.connection import Client, Server
from pcapflows.model.flow import Flow


def _default_port(scheme: str) -> int | None:
    return {"http": 80, "https": 443}.get(scheme)


def _hostport(scheme: str, host: str, port: int) -> str:
    return host if _default_port(scheme) == port else f"{host}:{port}"


def pretty_size(size: int) -> str:
    """A byte count as mitmproxy shows it (``7b``, ``1.5k``, ``120k``, ``3.2m``)."""
    s: float = size
    if s < 1024:
        return f"{size}b"
    for suffix in "kmgt":
        s /= 1024
        if s < 99.95:
            return f"{s:.1f}{suffix}"
        if s < 1024 or suffix == "t":
            return f"{s:.0f}{suffix}"
    raise AssertionError  # pragma: no cover


class Message:
    """What requests and responses share: version, headers, body, trailers, times."""

    _STATE_HEAD = ("http_version", "headers", "content", "trailers")

    def __init__(
        self,
        http_version: bytes,
        headers: Headers,
        content: bytes | None,
        trailers: Headers | None,
        timestamp_start: float,
        timestamp_end: float | None,
    ) -> None:
        self.data_http_version = http_version
        self.headers = headers
        #: The body as sent (de-chunked, still content-encoded); None if not available.
        self.raw_content = content
        self.trailers = trailers
        self.timestamp_start = timestamp_start
        self.timestamp_end = timestamp_end

    @property
    def http_version(self) -> str:
        return _text(self.data_http_version)

    @property
    def is_http10(self) -> bool:
        return self.data_http_version == b"HTTP/1.0"

    @property
    def is_http11(self) -> bool:
        return self.data_http_version == b"HTTP/1.1"

    @property
    def is_http2(self) -> bool:
        return self.data_http_version == b"HTTP/2.0"

    @property
    def is_http3(self) -> bool:
        return self.data_http_version == b"HTTP/3"

    def get_content(self, strict: bool = True) -> bytes | None:
        """The body with its Content-Encoding undone. ``ValueError`` for a coding that
        does not decode, unless ``strict`` is False (then the raw body)."""
        if self.raw_content is None:
            return None
        ce = self.headers.get("content-encoding")
        if not ce:
            return self.raw_content
        try:
            return decode(self.raw_content, ce)
        except ValueError:
            if strict:
                raise
            return self.raw_content

    @property
    def content(self) -> bytes | None:
        """The decoded body (gzip, deflate; br and zstd when their module is there)."""
        return self.get_content()

    def get_text(self, strict: bool = True) -> str | None:
        """The decoded body as text, in the charset mitmproxy would pick."""
        content = self.get_content(strict)
        if content is None:
            return None
        try:
            enc = text_encoding(self.headers.get("content-type", ""), content)
            return content.decode(enc)
        except (ValueError, UnicodeDecodeError):
            if strict:
                raise
            return content.decode("utf8", "surrogateescape")

    @property
    def text(self) -> str | None:
        return self.get_text()

    def _head_state(self) -> dict[str, Any]:
        return {
            "http_version": self.data_http_version,
            "headers": self.headers.get_state(),
            "content": self.raw_content,
            "trailers": self.trailers.get_state() if self.trailers is not None else None,
            "timestamp_start": self.timestamp_start,
            "timestamp_end": self.timestamp_end,
        }

    def _set_head(self, state: dict[str, Any]) -> None:
        self.data_http_version = state.pop("http_version")
        self.headers = Headers.from_state(state.pop("headers"))
        self.raw_content = state.pop("content")
        t = state.pop("trailers")
        self.trailers = Headers.from_state(t) if t is not None else None
        self.timestamp_start = state.pop("timestamp_start")
        self.timestamp_end = state.pop("timestamp_end")

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Message):
            return type(self) is type(other) and self.get_state() == other.get_state()
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def get_state(self) -> dict[str, Any]:
        raise NotImplementedError

    def set_state(self, state: dict[str, Any]) -> None:
        raise NotImplementedError


class Request(Message):
    """An HTTP request as the client sent it.

    ``host``/``port`` are where it went: the server's address for the usual
    origin-form target (``GET /x``), the URL's host for an absolute-form one sent to
    a proxy (``GET http://h/x``), the authority of a ``CONNECT``; as mitmproxy sets
    them in transparent mode.
    """

    def __init__(
        self,
        host: str,
        port: int,
        method: bytes,
        scheme: bytes,
        authority: bytes,
        path: bytes,
        http_version: bytes,
        headers: Headers,
        content: bytes | None,
        trailers: Headers | None,
        timestamp_start: float,
        timestamp_end: float | None,
    ) -> None:
        super().__init__(http_version, headers, content, trailers, timestamp_start, timestamp_end)
        self.host = host
        self.port = port
        self.data_method = method
        self.data_scheme = scheme
        self.data_authority = authority
        self.data_path = path

    @property
    def method(self) -> str:
        return _text(self.data_method)

    @property
    def scheme(self) -> str:
        return _text(self.data_scheme)

    @property
    def authority(self) -> str:
        return _text(self.data_authority)

    @property
    def path(self) -> str:
        return _text(self.data_path)

    @property
    def first_line_format(self) -> str:
        """``authority`` (CONNECT), ``absolute`` (to a proxy) or ``relative``."""
        if self.method == "CONNECT":
            return "authority"
        return "absolute" if self.data_authority else "relative"

    @property
    def url(self) -> str:
        """``scheme://host[:port]path`` from ``host`` and ``port`` (mitmproxy's ``url``)."""
        if self.first_line_format == "authority":
            return f"{self.host}:{self.port}"
        path = "" if self.path == "*" else self.path
        return f"{self.scheme}://{_hostport(self.scheme, self.host, self.port)}{path}"

    @property
    def host_header(self) -> str | None:
        return self.headers.get("Host")

    @property
    def pretty_host(self) -> str:
        """The Host header's host if there is one, else ``host``."""
        h = self.host_header
        if not h:
            return self.host
        if h.startswith("["):
            return h[1 : h.find("]")] if "]" in h else h
        return h.rsplit(":", 1)[0] if h.count(":") == 1 else h

    @property
    def pretty_url(self) -> str:
        """``url`` with the Host header's name and port (mitmproxy's ``pretty_url``)."""
        if self.first_line_format == "authority":
            return self.authority
        h = self.host_header
        if not h:
            return self.url
        host, port = self.pretty_host, _default_port(self.scheme) or 443
        rest = h[len(host) + 2 :] if h.startswith("[") else h[len(host) :]
        if rest.startswith(":") and rest[1:].isdigit():
            port = int(rest[1:])
        path = "" if self.path == "*" else self.path
        shown = f"[{host}]" if ":" in host else host
        return f"{self.scheme}://{_hostport(self.scheme, shown, port)}{path}"

    def get_state(self) -> dict[str, Any]:
        return {
            **self._head_state(),
            "host": self.host,
            "port": self.port,
            "method": self.data_method,
            "scheme": self.data_scheme,
            "authority": self.data_authority,
            "path": self.data_path,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        state = dict(state)
        self._set_head(state)
        self.host = state.pop("host")
        self.port = state.pop("port")
        self.data_method = state.pop("method")
        self.data_scheme = state.pop("scheme")
        self.data_authority = state.pop("authority")
        self.data_path = state.pop("path")
        if state:
            raise ValueError(f"Unexpected fields in Request.set_state: {state}")

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Request:
        r = cls("", 0, b"", b"", b"", b"", b"", Headers(), None, None, 0.0, None)
        r.set_state(state)
        return r

    def copy(self) -> Request:
        return Request.from_state(self.get_state())

    def __repr__(self) -> str:
        hostport = f"{self.host}:{self.port}" if self.host and self.port else ""
        return f"Request({self.method} {hostport}{self.path})"


class Response(Message):
    """An HTTP response as the server sent it (the final one: 1xx interim responses
    are in ``metadata["pcapflows"]["http"]["interim"]``)."""

    def __init__(
        self,
        http_version: bytes,
        status_code: int,
        reason: bytes,
        headers: Headers,
        content: bytes | None,
        trailers: Headers | None,
        timestamp_start: float,
        timestamp_end: float | None,
    ) -> None:
        super().__init__(http_version, headers, content, trailers, timestamp_start, timestamp_end)
        self.status_code = status_code
        self.data_reason = reason

    @property
    def reason(self) -> str:
        return _text(self.data_reason)

    def get_state(self) -> dict[str, Any]:
        return {**self._head_state(), "status_code": self.status_code, "reason": self.data_reason}

    def set_state(self, state: dict[str, Any]) -> None:
        state = dict(state)
        self._set_head(state)
        self.status_code = state.pop("status_code")
        self.data_reason = state.pop("reason")
        if state:
            raise ValueError(f"Unexpected fields in Response.set_state: {state}")

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Response:
        r = cls(b"", 0, b"", Headers(), None, None, 0.0, None)
        r.set_state(state)
        return r

    def copy(self) -> Response:
        return Response.from_state(self.get_state())

    def __repr__(self) -> str:
        if self.raw_content:
            ct = self.headers.get("content-type", "unknown content type")
            details = f"{ct}, {pretty_size(len(self.raw_content))}"
        else:
            details = "no content"
        return f"Response({self.status_code}, {details})"


class Opcode(enum.IntEnum):
    """WebSocket frame opcodes (RFC 6455 §5.2), as wsproto names them for mitmproxy."""

    CONTINUATION = 0
    TEXT = 1
    BINARY = 2
    CLOSE = 8
    PING = 9
    PONG = 10


class WebSocketMessage:
    """One WebSocket message (fragments joined, unmasked), TEXT or BINARY."""

    def __init__(
        self,
        type: int,
        from_client: bool,
        content: bytes,
        timestamp: float | None = None,
        dropped: bool = False,
        injected: bool = False,
    ) -> None:
        self.type = Opcode(type)
        self.from_client = from_client
        self.content = content
        self.timestamp: float = time.time() if timestamp is None else timestamp
        self.dropped = dropped
        self.injected = injected

    @property
    def is_text(self) -> bool:
        return self.type == Opcode.TEXT

    @property
    def text(self) -> str:
        if self.type != Opcode.TEXT:
            raise AttributeError(
                f"{self.type.name.title()} WebSocket frames do not have a 'text' attribute."
            )
        return self.content.decode()

    def get_state(self) -> tuple[int, bool, bytes, float, bool, bool]:
        return (
            int(self.type),
            self.from_client,
            self.content,
            self.timestamp,
            self.dropped,
            self.injected,
        )

    @classmethod
    def from_state(cls, state: Any) -> WebSocketMessage:
        return cls(*state)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, WebSocketMessage):
            return self.get_state() == other.get_state()
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        if self.type == Opcode.TEXT:
            return repr(self.content.decode(errors="replace"))
        return repr(self.content)


class WebSocketData:
    """A WebSocket connection's messages and how it closed (``HTTPFlow.websocket``)."""

    def __init__(
        self,
        messages: list[WebSocketMessage] | None = None,
        closed_by_client: bool | None = None,
        close_code: int | None = None,
        close_reason: str | None = None,
        timestamp_end: float | None = None,
    ) -> None:
        self.messages: list[WebSocketMessage] = messages if messages is not None else []
        self.closed_by_client = closed_by_client
        self.close_code = close_code
        self.close_reason = close_reason
        self.timestamp_end = timestamp_end

    def get_state(self) -> dict[str, Any]:
        return {
            "messages": [m.get_state() for m in self.messages],
            "closed_by_client": self.closed_by_client,
            "close_code": self.close_code,
            "close_reason": self.close_reason,
            "timestamp_end": self.timestamp_end,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> WebSocketData:
        return cls(
            [WebSocketMessage.from_state(m) for m in state["messages"]],
            state["closed_by_client"],
            state["close_code"],
            state["close_reason"],
            state["timestamp_end"],
        )

    def __eq__(self, other: object) -> bool:
        if isinstance(other, WebSocketData):
            return self.get_state() == other.get_state()
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<WebSocketData ({len(self.messages)} messages)>"


class HTTPFlow(Flow):
    """One HTTP request/response exchange (and the WebSocket it upgraded to, if any).

    Flows of one connection share its ``client_conn``/``server_conn`` (the same ids),
    as in mitmproxy. ``response`` is None when none was captured; ``error`` then says
    why.
    """

    type = "http"

    request: Request
    response: Response | None
    websocket: WebSocketData | None

    def __init__(
        self,
        client_conn: Client,
        server_conn: Server,
        live: bool = False,
        *,
        id: str | None = None,
        timestamp_created: float | None = None,
    ) -> None:
        super().__init__(client_conn, server_conn, live, id=id, timestamp_created=timestamp_created)
        self.response = None
        self.websocket = None

    def get_state(self) -> dict[str, Any]:
        return {
            **super().get_state(),
            "request": self.request.get_state(),
            "response": self.response.get_state() if self.response else None,
            "websocket": self.websocket.get_state() if self.websocket else None,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        state = dict(state)
        missing = {"request", "response", "websocket"} - set(state)
        if missing:
            raise ValueError(f"Invalid state for HTTPFlow: missing {sorted(missing)}")
        self.request = Request.from_state(state.pop("request"))
        r = state.pop("response")
        self.response = Response.from_state(r) if r else None
        w = state.pop("websocket")
        self.websocket = WebSocketData.from_state(w) if w else None
        super().set_state(state)

    @property
    def timestamp_start(self) -> float:
        """When the request's first byte was captured (mitmproxy's definition)."""
        return self.request.timestamp_start

    def copy(self) -> HTTPFlow:
        return cast(HTTPFlow, super().copy())

    def __repr__(self) -> str:
        s = "<HTTPFlow"
        for a in ("request", "response", "websocket", "error", "client_conn", "server_conn"):
            value = getattr(self, a, None)
            if value:
                s += f"\r\n  {a} = {value}"
        return s + ">"
