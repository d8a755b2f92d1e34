"""A TCP flow's HTTP/1 exchanges as ``HTTPFlow``s: :func:`flows_from_tcp`.

Requests are read from the client's bytes and responses from the server's, in
order, so pipelined responses pair with their requests by position (HTTP/1 has no
other way to pair them). Both sides are read one exchange at a time because the
framing of each depends on the other: a response to HEAD has no body, a 2xx to
CONNECT or a 101 turns the rest of the connection into something else.

What cannot be read as HTTP stays TCP: a connection that does not start as HTTP is
returned unchanged; after a CONNECT, an upgrade other than WebSocket, or a place
where the framing is lost (a gap in a head, a gap past a body's end, a malformed
head), the rest of both sides becomes one more ``TCPFlow`` (the remainder), linked
through ``metadata["pcapflows"]["http"]``. No byte is dropped and none is invented.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from pcapflows.http.headers import Headers
from pcapflows.http.model import HTTPFlow, Request, Response, WebSocketData, WebSocketMessage
from pcapflows.http.parser import (
    MAX_LEADING_EMPTY,
    Body,
    Framing,
    Head,
    HeadResult,
    framing_fields,
    looks_like_request,
    looks_like_response,
    read_body,
    read_head,
)
from pcapflows.http.stream import Side, sides
from pcapflows.http.websocket import deflate_params, parse_side
from pcapflows.model.build import uuid5_text
from pcapflows.model.flow import Error, Flow
from pcapflows.model.tcp import TCPFlow, TCPMessage

_NS = uuid.UUID("6f0c7a52-3b1e-5c8e-9a57-0c6b1d1e7a11")


def is_http(flow: TCPFlow) -> bool:
    """Whether ``flow`` starts as HTTP/1: its client's first captured bytes are a
    request line, or its server's a status line (recognised by content, any port)."""
    client, server = sides(flow)
    mid = not flow.metadata.get("pcapflows", {}).get("handshake_seen", False)
    return (
        _starts_http(client, True, mid) is not None or _starts_http(server, False, mid) is not None
    )


def _starts_http(side: Side, request: bool, midstream: bool = True) -> int | None:
    """Where the side's first request (or status) line starts, None if it does not
    start as HTTP. A side with all its bytes (handshake captured, no gap at 0) must
    start with one. A side picked up mid-stream, or whose first bytes were lost, is
    read from its first such line that starts the side, follows a LF, or follows a
    NUL (the byte a TCP keep-alive probe carries), within its first 64 KiB."""
    if not side.runs:
        return None
    look = looks_like_request if request else looks_like_response
    run = side.runs[0]
    # What the two looks read: a start line's 8 KiB (after a few empty lines), and
    # for the search 64 KiB more.
    if look(side.prefix(run, 8192 + 2 * MAX_LEADING_EMPTY)):
        return run.offset
    if not midstream and run.offset == 0:
        return None
    data = side.prefix(run, 65536 + 8192)
    limit = min(len(data), 65536)
    # The next LF and the next NUL, each searched for once per occurrence.
    lf, nul = data.find(b"\n", 0, limit), data.find(b"\x00", 0, limit)
    while lf >= 0 or nul >= 0:
        if nul < 0 or 0 <= lf < nul:
            pos, lf = lf + 1, data.find(b"\n", lf + 1, limit)
        else:
            pos, nul = nul + 1, data.find(b"\x00", nul + 1, limit)
        if look(data, pos):
            return run.offset + pos
    return None


def flows_from_tcp(flow: TCPFlow) -> list[Flow]:
    """The HTTP exchanges of ``flow`` (one ``HTTPFlow`` each, in order), then a
    ``TCPFlow`` for what follows them that is not HTTP (a CONNECT tunnel, an upgraded
    protocol, bytes past a point where framing was lost), if any; or ``[flow]`` itself
    when it is not HTTP. Never raises for what the flow holds."""
    try:
        return _Converter(flow).run()
    except Exception as exc:  # a bug here must not lose the connection
        meta = flow.metadata.setdefault("pcapflows", {})
        meta["http"] = {"error": f"internal error, kept as TCP: {type(exc).__name__}: {exc}"}
        return [flow]


def _latin1(b: bytes) -> str:
    return b.decode("latin-1")


class _Converter:
    def __init__(self, flow: TCPFlow) -> None:
        self.flow = flow
        self.client, self.server = sides(flow)
        self.meta: dict[str, Any] = flow.metadata.get("pcapflows", {})
        self.out: list[Flow] = []
        try:
            namespace = uuid.UUID(flow.id)
        except ValueError:
            namespace = uuid.uuid5(_NS, flow.id)
        self._ids = hashlib.sha1(namespace.bytes)
        # Containers in the TCP flow's metadata, copied for each flow made from it.
        self._nested = [k for k, v in self.meta.items() if isinstance(v, (dict, list))]
        address = flow.server_conn.address or flow.server_conn.peername
        self.host, self.port = (str(address[0]), int(address[1])) if address else ("", 0)

    # -- helpers ---------------------------------------------------------------------

    def _end_time(self) -> float:
        for t in (self.flow.server_conn.timestamp_end, self.flow.client_conn.timestamp_end):
            if t is not None:
                return t
        stamps = [m.timestamp for m in self.flow.messages[-1:]]
        return stamps[0] if stamps else self.flow.timestamp_created

    def _stamp(self, side: Side, offset: int, default: float) -> float:
        """Capture time for the byte at ``offset`` (or the last byte before it that was
        captured)."""
        t = side.timestamp_at(offset)
        if t is not None:
            return t
        for run in reversed(side.runs):
            if run.offset <= offset:
                t = side.timestamp_at(min(offset, run.end - 1))
                return default if t is None else t
        return default

    def _id(self, name: str) -> str:
        """``str(uuid.uuid5(namespace, name))`` for the TCP flow's namespace, from a
        SHA-1 already fed the namespace: once per HTTP flow."""
        h = self._ids.copy()
        h.update(name.encode())
        return uuid5_text(h.digest())

    def _meta(self, http: dict[str, Any]) -> dict[str, Any]:
        meta = self.meta.copy()
        for k in self._nested:
            meta[k] = _copied(meta[k])
        meta["http"] = http
        return {"pcapflows": meta}

    def _why_no_response(self) -> str:
        rst = self.meta.get("rst_from")
        if rst:
            return f"no response: connection reset by {rst}"
        if self.meta.get("open_at_end"):
            return "no response: the capture ended first"
        if self.server.end == 0 and not self.server.gaps:
            return "no response: the server sent nothing"
        return "no response: the server closed the connection"

    def _incomplete(
        self, what: str, from_client: bool, body: Body, notes: list[dict[str, Any]]
    ) -> tuple[str, float] | None:
        if body.broken:
            return f"{what} body: {body.broken}", self._end_time()
        if not body.incomplete:
            return None
        side = self.client if from_client else self.server
        first = body.incomplete[0]
        for item in body.incomplete:
            notes.append({"from_client": from_client, **item})
        if first["cause"] == "gap":
            g = side.gap_at(int(first["offset"]))
            t = g[2] if g is not None else self._end_time()
            msg = (
                f"{what} incomplete: {first['length']} bytes not captured"
                f" at offset {first['offset']}"
            )
            return msg, t
        return f"{what} incomplete: the connection ended first", self._end_time()

    # -- messages --------------------------------------------------------------------

    def _request(self, head: Head, body: Body | None) -> Request:
        method, target, version = head.start
        host, port = self.host, self.port
        scheme, authority, path = b"http", b"", target
        if method.upper() == b"CONNECT":
            parsed = _authority(target)
            if parsed:
                host, port = parsed
                scheme, authority, path = b"", target, b""
        elif b"://" in target and not target.startswith(b"/"):
            sch, _, rest = target.partition(b"://")
            auth, _slash, p = rest.partition(b"/")
            parsed = _authority(auth, {b"http": 80, b"https": 443}.get(sch.lower(), 0))
            if parsed and sch.isalpha():
                host, port = parsed
                scheme, authority, path = sch, auth, b"/" + p
        t0 = self._stamp(self.client, head.offset, self.flow.timestamp_created)
        last = body.last if body is not None else head.end - 1
        return Request(
            host,
            port,
            method,
            scheme,
            authority,
            path,
            version,
            Headers.from_parsed(head.fields),
            body.content if body is not None else b"",
            Headers.from_parsed(body.trailers) if body is not None and body.trailers else None,
            t0,
            self._stamp(self.client, max(last, head.offset), t0),
        )

    def _response(self, head: Head, body: Body) -> Response:
        version, code, reason = head.start
        t0 = self._stamp(self.server, head.offset, self.flow.timestamp_created)
        return Response(
            version,
            int(code),
            reason,
            Headers.from_parsed(head.fields),
            body.content,
            Headers.from_parsed(body.trailers) if body.trailers else None,
            t0,
            self._stamp(self.server, max(body.last, head.offset), t0),
        )

    def _framing(self, head: Head, what: str, absent: Framing) -> tuple[Framing, int, str | None]:
        """How a message's body is framed, its length for "length", and what is wrong
        with its framing (None: nothing). ``absent``: the framing of a message with
        neither field, "none" for a request, "close" for a response; only the end of
        the connection can delimit a body in a coding other than chunked, so that
        is a response's too and a request's error (RFC 9112 §6.3)."""
        chunked, cl = framing_fields(head.fields)
        if chunked:
            return "chunked", 0, None
        if chunked is False:
            if absent == "close":
                return "close", 0, None
            return "none", 0, f"{what} with a Transfer-Encoding other than chunked"
        if cl == "invalid":
            return "none", 0, f"{what} with conflicting or invalid Content-Length"
        if cl is not None:
            return "length", cl, None
        return absent, 0, None

    def _response_framing(self, method: bytes, head: Head) -> tuple[Framing, int, str | None]:
        code = int(head.start[1])
        if method.upper() == b"HEAD" or 100 <= code < 200 or code in (204, 304):
            return "none", 0, None
        if method.upper() == b"CONNECT" and 200 <= code < 300:
            return "none", 0, None
        return self._framing(head, "response", "close")

    # -- the exchange loop -----------------------------------------------------------

    def run(self) -> list[Flow]:
        client, server = self.client, self.server
        mid = not self.meta.get("handshake_seen", False)
        cstart = _starts_http(client, True, mid)
        sstart = _starts_http(server, False, mid)
        if cstart is None and sstart is None:
            return [self.flow]
        # Where each side is read next; None once it cannot be read further, and then
        # *_stop is where its remainder (bytes kept as TCP) begins.
        coff: int | None = cstart
        client_stop: int | None = None if cstart is not None else 0
        soff: int | None = sstart if sstart is not None else 0
        skipped = [
            {"from_client": fc, "offset": 0, "length": start}
            for fc, start in ((True, cstart), (False, sstart))
            if start
        ]
        server_stop: int | None = None
        why = ""
        # Why the server's side could not be read on (its framing was lost): the
        # client's requests are still read while their own framing holds, each
        # with no response and this reason in its error.
        server_lost = ""
        last: HTTPFlow | None = None
        index = 0
        while True:
            notes: list[dict[str, Any]] = []
            problems: list[tuple[str, float]] = []
            http: dict[str, Any] = {"exchange": index}
            if index == 0 and skipped:
                http["skipped"] = skipped
            req_head: Head | None = None
            req_body: Body | None = None
            if coff is not None and _more(client, coff):
                hr = read_head(client, coff, request=True)
                if hr.head is None:
                    client_stop, coff, why = coff, None, _head_problem("request", hr)
                    break
                req_head = hr.head
                framing, length, bad = self._framing(req_head, "request", "none")
                req_body = read_body(client, req_head.end, framing, length)
                if bad:
                    problems.append((bad, self._end_time()))
                    client_stop, coff, why = req_head.end, None, bad
                elif req_body.resumable:
                    coff = req_body.end
                else:
                    client_stop, coff = req_body.end, None
                    why = "request body framing lost"
                p = self._incomplete("request", True, req_body, notes)
                if p:
                    problems.append(p)
                http["request_offset"] = req_head.offset
                if req_head.ignored_lines:
                    http["ignored_request_lines"] = req_head.ignored_lines
            elif coff is None and client_stop is not None and client_stop > 0:
                break  # the client's framing was lost: no more pairing
            elif soff is None or not _more(server, soff):
                break
            method = req_head.start[0] if req_head else b"GET"
            # The response: interim 1xx first, then the final one.
            interim: list[dict[str, Any]] = []
            resp_head: Head | None = None
            resp_body: Body | None = None
            while soff is not None and _more(server, soff):
                hr = read_head(server, soff, request=False)
                if hr.head is None:
                    why = _head_problem("response", hr)
                    problems.append((why, self._end_time()))
                    server_stop = soff
                    break
                code = int(hr.head.start[1])
                if 100 <= code < 200 and code != 101:
                    interim.append(
                        {
                            "status_code": code,
                            "reason": _latin1(hr.head.start[2]),
                            "headers": [[_latin1(k), _latin1(v)] for k, v in hr.head.fields],
                            "timestamp": self._stamp(server, hr.head.offset, 0.0),
                        }
                    )
                    soff = hr.head.end
                    continue
                resp_head = hr.head
                break
            if resp_head is not None:
                framing, length, bad = self._response_framing(method, resp_head)
                resp_body = read_body(server, resp_head.end, framing, length)
                if bad:
                    problems.append((bad, self._end_time()))
                    server_stop, why = resp_head.end, bad
                elif resp_body.resumable or resp_body.end >= server.end:
                    soff = resp_body.end
                else:
                    server_stop, why = resp_body.end, "response body framing lost"
                p = self._incomplete("response", False, resp_body, notes)
                if p:
                    problems.append(p)
                http["response_offset"] = resp_head.offset
                if resp_head.ignored_lines:
                    http["ignored_response_lines"] = resp_head.ignored_lines
            elif req_head is None:
                break  # nothing to pair with: the server's bytes are not a response
            elif server_lost:
                problems.append((f"no response read: {server_lost}", self._end_time()))
            elif server_stop is None:
                problems.append((self._why_no_response(), self._end_time()))
            if interim:
                http["interim"] = interim
            if notes:
                http["incomplete"] = notes
            last = self._make_flow(index, req_head, req_body, resp_head, resp_body, http, problems)
            self.out.append(last)
            index += 1
            if server_stop is not None and not server_lost:
                soff, server_lost = None, why or "the server's bytes could not be framed"
                continue
            if resp_head is not None and req_head is not None and soff is not None:
                # What the response turns the connection into.
                code = int(resp_head.start[1])
                if method.upper() == b"CONNECT" and 200 <= code < 300:
                    self._remainder(last, coff, soff, "connect", "tunnel after CONNECT", "tunnel")
                    return self.out
                if code == 101:
                    upgrade = [
                        t.strip().lower()
                        for k, v in resp_head.fields
                        if k.lower() == b"upgrade"
                        for t in v.split(b",")
                    ]
                    if b"websocket" in upgrade:
                        self._websocket(last, coff, soff, resp_head)
                        return self.out
                    name = _latin1(b", ".join(upgrade)) or "unnamed protocol"
                    last.metadata["pcapflows"]["http"]["upgrade"] = name
                    self._remainder(last, coff, soff, "upgrade", f"upgraded to {name}, not parsed")
                    return self.out
        cstart = client_stop if coff is None else coff
        sstart = server_stop if soff is None else soff
        self._remainder(last, cstart, sstart, "unparsed", why or "not HTTP/1")
        return self.out

    def _make_flow(
        self,
        index: int,
        req_head: Head | None,
        req_body: Body | None,
        resp_head: Head | None,
        resp_body: Body | None,
        http: dict[str, Any],
        problems: list[tuple[str, float]],
    ) -> HTTPFlow:
        response = (
            self._response(resp_head, resp_body)
            if resp_head is not None and resp_body is not None
            else None
        )
        if req_head is not None:
            request = self._request(req_head, req_body)
        else:
            assert response is not None
            http["request_missing"] = True
            problems.insert(0, ("request not captured", response.timestamp_start))
            request = Request(
                self.host,
                self.port,
                b"",
                b"http",
                b"",
                b"",
                response.data_http_version,
                Headers(),
                None,
                None,
                response.timestamp_start,
                None,
            )
        hf = HTTPFlow(
            self.flow.client_conn,
            self.flow.server_conn,
            id=self._id(f"http/{index}"),
            timestamp_created=request.timestamp_start,
        )
        hf.request = request
        hf.response = response
        hf.metadata = self._meta(http)
        if problems:
            hf.error = Error("; ".join(p[0] for p in problems), problems[0][1])
        return hf

    def _remainder(
        self,
        after: HTTPFlow | None,
        coff: int | None,
        soff: int | None,
        kind: str,
        why: str,
        link: str = "rest",
    ) -> TCPFlow | None:
        """A TCPFlow of what each side sent from its offset on (None: nothing of that
        side); None if that is nothing at all."""
        messages: list[TCPMessage] = []
        # Where each TCP message starts in its side's stream, by index in the flow.
        starts = {
            side.from_client: dict(zip(side.indexes, side.offsets, strict=True))
            for side in (self.client, self.server)
        }
        for i, m in enumerate(self.flow.messages):
            stop = coff if m.from_client else soff
            off = starts[m.from_client].get(i)
            if stop is None or off is None or off + len(m.content) <= stop:
                continue
            cut = max(0, stop - off)
            messages.append(TCPMessage(m.from_client, m.content[cut:], m.timestamp))
        if not messages:
            return None
        rest = TCPFlow(
            self.flow.client_conn,
            self.flow.server_conn,
            id=self._id("tcp-rest"),
            timestamp_created=self.flow.timestamp_created,
        )
        rest.messages = messages
        rest.error = self.flow.error
        http: dict[str, Any] = {"kind": kind, "why": why}
        http["client_offset"] = coff
        http["server_offset"] = soff
        if after is not None:
            http["after"] = after.id
            after.metadata["pcapflows"]["http"][link] = rest.id
        rest.metadata = self._meta(http)
        self.out.append(rest)
        return rest

    def _websocket(self, hf: HTTPFlow, coff: int | None, soff: int, head: Head) -> None:
        ext = b", ".join(v for k, v in head.fields if k.lower() == b"sec-websocket-extensions")
        deflate = deflate_params(_latin1(ext))
        cside = parse_side(self.client, coff, deflate) if coff is not None else None
        sside = parse_side(self.server, soff, deflate)
        ws = WebSocketData()
        found: list[tuple[int, int, WebSocketMessage]] = []
        closes: list[tuple[int, bool, int, str, float]] = []
        for side, parsed in ((self.client, cside), (self.server, sside)):
            if parsed is None:
                continue
            for m in parsed.messages:
                t = self._stamp(side, m.last, hf.request.timestamp_start)
                found.append(
                    (
                        side.index_at(m.last),
                        m.last,
                        WebSocketMessage(m.opcode, side.from_client, m.content, t),
                    )
                )
            if parsed.close is not None:
                code, reason, last = parsed.close
                t = self._stamp(side, last, hf.request.timestamp_start)
                closes.append((side.index_at(last), side.from_client, code, reason, t))
        found.sort(key=lambda x: (x[0], x[1]))
        ws.messages = [m for _, _, m in found]
        if closes:
            closes.sort()
            _, ws.closed_by_client, ws.close_code, ws.close_reason, ws.timestamp_end = closes[0]
        else:
            ws.close_code = 1006  # closed without a close frame (RFC 6455 §7.1.5)
            ws.closed_by_client = _first_fin_by_client(self.meta.get("history", ""))
            ws.timestamp_end = self._end_time()
        hf.websocket = ws
        cstop = cside.stopped_at if cside is not None else None
        sstop = sside.stopped_at
        if cstop is not None or sstop is not None:
            why = (cside.why if cside is not None and cside.why else None) or sside.why or ""
            msg = f"WebSocket: {why}; the rest is kept as TCP"
            if hf.error is None:
                hf.error = Error(msg, self._end_time())
            else:
                hf.error.msg += "; " + msg
            self._remainder(hf, cstop, sstop, "websocket", why)


def _copied(value: Any) -> Any:
    """A copy of JSON-like metadata (lists and dicts copied, scalars shared): what
    ``copy.deepcopy`` gives for it, at a fraction of the cost (scalars, most of the
    values, are taken without a call)."""
    if isinstance(value, dict):
        return {k: _copied(v) if isinstance(v, (dict, list)) else v for k, v in value.items()}
    if isinstance(value, list):
        return [_copied(v) if isinstance(v, (dict, list)) else v for v in value]
    return value


def _more(side: Side, offset: int) -> bool:
    """Whether ``side`` has bytes (or a gap) at or after ``offset``."""
    return offset < side.end or side.gap_at(offset) is not None


def _first_fin_by_client(history: str) -> bool | None:
    for c in history:
        if c in "Ff":
            return c == "F"
    return None


def _authority(auth: bytes, default_port: int = 0) -> tuple[str, int] | None:
    """``host[:port]`` (IPv6 in brackets) as (host, port); None if malformed."""
    try:
        text = auth.decode("ascii")
    except UnicodeDecodeError:
        return None
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            return None
        host, rest = text[1:close], text[close + 1 :]
    else:
        host, _, port_text = text.rpartition(":")
        if not host:
            host, rest = text, ""
        else:
            rest = ":" + port_text
    if not host or any(c.isspace() for c in host):
        return None
    if rest:
        if not rest.startswith(":") or not rest[1:].isdigit():
            return None
        port = int(rest[1:])
    else:
        port = default_port
    if not 0 < port < 65536:
        return None
    return host.lower(), port


def _head_problem(what: str, hr: HeadResult) -> str:
    if hr.error == "gap" and hr.gap is not None:
        return f"{what} head not readable: {hr.gap[1]} bytes not captured at offset {hr.gap[0]}"
    if hr.error == "end":
        return f"{what} head incomplete: the connection ended first"
    if hr.error == "too long":
        return f"{what} head too long"
    return f"{what} is not HTTP/1"
