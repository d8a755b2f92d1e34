"""HTTP flows of mitmproxy files as the bytes of an HTTP/1.1 connection.

mitmproxy keeps what it decrypted as HTTP flows (request, response, WebSocket messages),
not as TCP bytes. To show them in Wireshark, each HTTP flow becomes a TCP connection of
its own from the client's address to the server's (no proxy in between: the traffic as
the two ends meant it), carrying:

* the request: ``METHOD TARGET HTTP/1.1``, its headers as mitmproxy recorded them (names
  and values as they were, in their order), then its body as it went over the wire
  (``content`` is the raw, still content-encoded body); the head at the request's
  ``timestamp_start``, the body at its ``timestamp_end``;
* the response likewise (``HTTP/1.1 CODE REASON``), at the response's timestamps;
* WebSocket messages (after a ``101`` response) as single frames at their timestamps,
  the client's masked with a zero key (a valid mask that leaves the bytes readable),
  then a Close frame from the side that closed, with its code and reason.

An HTTP/2 or HTTP/3 flow is written as HTTP/1.1 with the same headers (mitmproxy keeps
no pseudo-headers among them; any would be dropped), a ``Host`` header from the
authority when it has none, and a ``Content-Length`` when neither it nor
``Transfer-Encoding`` says where the body ends (HTTP/2 frames said it). A body sent
chunked is chunked again (mitmproxy stores it de-chunked), trailers after the last
chunk; an HTTP/2 body with trailers is sent chunked so the trailers have a place.

The connection has a handshake when the server connection has a TCP setup time,
starts with the request and ends with FINs (client first) after the last message, or
with a RST from the client at the error's time when mitmproxy recorded an error.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from pcapflows.flowspec import FlowSpec

_HOP = frozenset({b"content-length", b"transfer-encoding"})


def _headers(fields: Any) -> list[tuple[bytes, bytes]]:
    return [(bytes(k), bytes(v)) for k, v in (fields or ()) if not bytes(k).startswith(b":")]


def _has(headers: list[tuple[bytes, bytes]], name: bytes) -> bool:
    return any(k.lower() == name for k, _ in headers)


def _chunked(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(k.lower() == b"transfer-encoding" and b"chunked" in v.lower() for k, v in headers)


def _message(
    start_line: bytes,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    trailers: list[tuple[bytes, bytes]],
    http1: bool,
    bodiless: bool,
) -> tuple[bytes, bytes]:
    """The head and the body of one HTTP/1.1 message, framed so a reader finds its end."""
    if not http1:
        if trailers:
            headers = [h for h in headers if h[0].lower() not in _HOP]
            headers.append((b"transfer-encoding", b"chunked"))
        elif not bodiless and not _has(headers, b"content-length") and not _chunked(headers):
            if body or start_line.startswith(b"HTTP/"):
                headers.append((b"content-length", str(len(body)).encode()))
    head = start_line + b"\r\n" + b"".join(k + b": " + v + b"\r\n" for k, v in headers) + b"\r\n"
    if _chunked(headers) and not bodiless:
        tail = b"".join(k + b": " + v + b"\r\n" for k, v in trailers)
        chunk = b"%x\r\n%s\r\n" % (len(body), body) if body else b""
        body = chunk + b"0\r\n" + tail + b"\r\n"
    return head, body


def _ws_frame(opcode: int, payload: bytes, masked: bool) -> bytes:
    n = len(payload)
    first = bytes([0x80 | (opcode & 0x0F)])
    bit = 0x80 if masked else 0
    if n < 126:
        length = bytes([bit | n])
    elif n < 1 << 16:
        length = bytes([bit | 126]) + n.to_bytes(2, "big")
    else:
        length = bytes([bit | 127]) + n.to_bytes(8, "big")
    return first + length + (b"\0\0\0\0" if masked else b"") + payload


def _ts(value: Any, default: float) -> float:
    return float(value) if isinstance(value, (int, float)) else default


def spec_of_http(state: dict[str, Any]) -> FlowSpec:
    """The connection an HTTP flow state (format 21) is written as.

    ``ValueError`` for a state without the parts it needs (a request, addresses).
    """
    try:
        return _spec(state)
    except (KeyError, TypeError, AttributeError, IndexError) as exc:
        raise ValueError(f"HTTP flow {state.get('id')!r} cannot be written: {exc!r}") from None


def _spec(state: dict[str, Any]) -> FlowSpec:
    req = state["request"]
    resp = state.get("response")
    ws = state.get("websocket")
    cc, sc = state["client_conn"], state["server_conn"]
    client = cc["peername"]
    server = sc.get("peername") or sc.get("address") or (req["host"], req["port"])
    t_req = _ts(req.get("timestamp_start"), _ts(cc.get("timestamp_start"), 0.0))
    runs: list[tuple[bool, list[tuple[bytes, float]]]] = []
    version = bytes(req.get("http_version") or b"HTTP/1.1")
    http1 = version.upper().startswith(b"HTTP/1")
    method = bytes(req["method"])
    target = bytes(req.get("path") or b"")
    if not target:
        target = bytes(req.get("authority") or b"") or b"/"
    headers = _headers(req.get("headers"))
    authority = bytes(req.get("authority") or b"")
    if not http1 and authority and not _has(headers, b"host"):
        headers.insert(0, (b"host", authority))
    body = bytes(req.get("content") or b"")
    head, body = _message(
        method + b" " + target + b" HTTP/1.1",
        headers,
        body,
        _headers(req.get("trailers")),
        http1,
        bodiless=False,
    )
    last = _ts(req.get("timestamp_end"), t_req)
    runs.append((True, [(head, t_req), (body, last)]))
    if resp is not None:
        code = int(resp["status_code"])
        reason = bytes(resp.get("reason") or b"")
        if not reason:
            try:
                reason = HTTPStatus(code).phrase.encode()
            except ValueError:
                reason = b""
        t_resp = _ts(resp.get("timestamp_start"), last)
        bodiless = method.upper() == b"HEAD" or code in (204, 304) or 100 <= code < 200
        head, rbody = _message(
            b"HTTP/1.1 %d %s" % (code, reason),
            _headers(resp.get("headers")),
            bytes(resp.get("content") or b""),
            _headers(resp.get("trailers")),
            http1,
            bodiless=bodiless,
        )
        t_end = _ts(resp.get("timestamp_end"), t_resp)
        runs.append((False, [(head, t_resp), (rbody, t_end)]))
        last = max(last, t_resp, t_end)
    if ws is not None and resp is not None:
        for m in ws.get("messages") or ():
            opcode, from_client, content, ts = int(m[0]), bool(m[1]), bytes(m[2]), float(m[3])
            runs.append((from_client, [(_ws_frame(opcode, content, from_client), ts)]))
            last = max(last, ts)
        code = ws.get("close_code")
        if code is not None:
            by_client = bool(ws.get("closed_by_client"))
            reason = str(ws.get("close_reason") or "").encode("utf-8")
            payload = int(code).to_bytes(2, "big") + reason
            t = _ts(ws.get("timestamp_end"), last)
            runs.append((by_client, [(_ws_frame(8, payload, by_client), t)]))
            last = max(last, t)
    error = state.get("error")
    rst = None
    fins: list[bool] = [True, False]
    if error:
        rst = (True, _ts(error.get("timestamp"), last))
        fins = []
    return FlowSpec(
        str(state["id"]),
        (str(client[0]), int(client[1])),
        (str(server[0]), int(server[1])),
        handshake=sc.get("timestamp_tcp_setup") is not None,
        start=t_req,
        setup=t_req,
        end=last,
        runs=runs,
        fins=fins,
        rst=rst,
    )
