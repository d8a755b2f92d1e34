"""A tolerant HTTP/1.0 and 1.1 message parser: bytes in, message heads and bodies out.

Sans-IO and over bytes already captured: nothing here reads a file or a clock. It
accepts what browsers and servers accept, because a capture shows what was actually
sent, not what should have been: bare LF line ends, obs-fold continuation lines
(joined with one space, as RFC 9112 §5.2 tells a recipient to), spaces or tabs
before a field's colon (dropped from the name), lines with no colon (skipped,
counted), a status line with no reason phrase, runs of spaces in the start line,
empty lines before a message, several ``Content-Length`` fields or a list with equal
values. What it cannot frame (two different lengths, a chunk size that is not hex)
ends HTTP parsing on that side instead of guessing.

Bodies are read over a :class:`~pcapflows.http.stream.Side`: a gap inside a body
never becomes bytes. The body keeps what came before the first gap and the gaps are
reported; parsing goes on after the body when its length is known and its end
was captured.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from pcapflows.http.stream import Side

#: A head (start line and fields) longer than this is not HTTP, or not worth guessing.
MAX_HEAD = 256 * 1024
#: Empty lines tolerated before a start line (RFC 9112 §2.2 says to ignore at least one).
MAX_LEADING_EMPTY = 8

_TCHAR = frozenset(b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_VERSION = re.compile(rb"HTTP/\d\.\d\Z")
_STATUS = re.compile(rb"HTTP/\d\.\d[ \t]+\d{3}(?:[ \t\r\n]|\Z)")
_REQUEST = re.compile(
    rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+[ \t]+[^\r\n]*[^\s][ \t]+HTTP/\d\.\d[ \t]*\r?\n"
)


def looks_like_request(data: bytes) -> bool:
    """Whether ``data`` starts with an HTTP/1 request line (after empty lines)."""
    stripped = data.lstrip(b"\r\n")
    return len(data) - len(stripped) <= 2 * MAX_LEADING_EMPTY and bool(
        _REQUEST.match(stripped[:8192])
    )


def looks_like_response(data: bytes) -> bool:
    """Whether ``data`` starts with an HTTP/1 status line."""
    return bool(_STATUS.match(data))


Fields = list[tuple[bytes, bytes]]


@dataclass
class Head:
    """A start line split in three (method/target/version or version/status/reason),
    the header fields as sent, and where the head lies in the stream."""

    start: tuple[bytes, bytes, bytes]
    fields: Fields
    offset: int
    end: int
    ignored_lines: int = 0


HeadError = Literal["gap", "end", "invalid", "too long"]


@dataclass
class HeadResult:
    head: Head | None
    error: HeadError | None = None
    #: For "gap": the gap's (offset, length).
    gap: tuple[int, int] | None = None


def _lines(data: bytes, pos: int, end: int) -> tuple[list[bytes], int] | None:
    """The lines from ``pos`` up to an empty line, and the position after it; None if
    no empty line comes before ``end``. Lines lose their CRLF or bare LF.

    The empty line is found with two searches and the head split once, rather than
    line by line: this runs for every message of every connection."""
    if data.startswith(b"\n", pos):
        return ([], pos + 1) if pos < end else None
    if data.startswith(b"\r\n", pos):
        return ([], pos + 2) if pos + 1 < end else None
    lf = data.find(b"\n\n", pos, end)
    crlf = data.find(b"\n\r\n", pos, end if lf < 0 else lf + 3)
    if crlf >= 0 and (lf < 0 or crlf < lf):
        stop, after = crlf, crlf + 3
    elif lf >= 0:
        stop, after = lf, lf + 2
    else:
        return None
    lines = data[pos:stop].split(b"\n")
    return [line[:-1] if line.endswith(b"\r") else line for line in lines], after


def parse_fields(lines: list[bytes]) -> tuple[Fields, int]:
    """Header (or trailer) lines as ``(name, value)`` pairs, and how many lines were
    skipped (no colon, empty name, continuation with nothing to continue)."""
    fields: Fields = []
    ignored = 0
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            if fields:
                name, value = fields[-1]
                more = line.strip(b" \t")
                fields[-1] = (name, value + b" " + more if value else more)
            else:
                ignored += 1
            continue
        name, colon, value = line.partition(b":")
        name = name.rstrip(b" \t")
        if not colon or not name or b" " in name or b"\t" in name:
            ignored += 1
            continue
        fields.append((name, value.strip(b" \t")))
    return fields, ignored


def _split_request_line(line: bytes) -> tuple[bytes, bytes, bytes] | None:
    # A target with spaces in it (``GET /a b HTTP/1.0``) is taken whole, as servers
    # and tshark take it: the method is the first word, the version the last.
    parts = line.split()
    if len(parts) < 3:
        return None
    method, version = parts[0], parts[-1]
    target = line.strip()[len(method) : -len(version)].strip()
    if not all(c in _TCHAR for c in method) or not _VERSION.match(version):
        return None
    return method, target, version


def _split_status_line(line: bytes) -> tuple[bytes, bytes, bytes] | None:
    parts = line.split(None, 2)
    if len(parts) == 2:
        parts.append(b"")
    if len(parts) != 3:
        return None
    version, code, reason = parts
    if not _VERSION.match(version) or len(code) != 3 or not code.isdigit():
        return None
    return version, code, reason.strip()


def _could_start(prefix: bytes, request: bool) -> bool:
    """Whether an unfinished first line could still become a start line."""
    if request:
        word = prefix.split(b" ", 1)[0]
        return all(c in _TCHAR for c in word)
    n = min(len(prefix), 5)
    return prefix[:n] == b"HTTP/"[:n]


def read_head(side: Side, offset: int, request: bool) -> HeadResult:
    """Parse the head of a request (``request=True``) or response at ``offset``."""
    run = side.run_at(offset)
    if run is None:
        g = side.gap_at(offset)
        if g is not None:
            return HeadResult(None, "gap", (g[0], g[1]))
        nxt = side.next_run(offset)
        if nxt is not None:
            return HeadResult(None, "gap", (offset, nxt.offset - offset))
        return HeadResult(None, "end")
    data = run.data
    pos = offset - run.offset
    limit = min(len(data), pos + MAX_HEAD)
    skipped = 0
    while skipped < MAX_LEADING_EMPTY and data.startswith((b"\r\n", b"\n"), pos):
        pos += 2 if data[pos] == 0x0D else 1
        skipped += 1
    got = _lines(data, pos, limit)
    if got is None:
        nl = data.find(b"\n", pos, limit)
        first = data[pos:nl].rstrip(b"\r") if nl >= 0 else None
        split = _split_request_line if request else _split_status_line
        if first is not None and split(first) is None:
            return HeadResult(None, "invalid")
        if first is None and not _could_start(data[pos : pos + 16], request):
            return HeadResult(None, "invalid")
        if limit - pos >= MAX_HEAD:
            return HeadResult(None, "too long")
        if run.end >= side.end:
            g = side.gap_at(run.end)
            if g is not None:
                return HeadResult(None, "gap", (g[0], g[1]))
            return HeadResult(None, "end")
        nxt = side.next_run(run.end)
        assert nxt is not None
        return HeadResult(None, "gap", (run.end, nxt.offset - run.end))
    lines, after = got
    if not lines:
        return HeadResult(None, "invalid")
    start = _split_request_line(lines[0]) if request else _split_status_line(lines[0])
    if start is None:
        return HeadResult(None, "invalid")
    fields, ignored = parse_fields(lines[1:])
    return HeadResult(Head(start, fields, offset, run.offset + after, ignored))


# --- framing ------------------------------------------------------------------------

Framing = Literal["length", "chunked", "close", "none"]


def _values(fields: Fields, name: bytes) -> list[bytes]:
    return [v for k, v in fields if k.lower() == name]


def content_length(fields: Fields) -> int | Literal["invalid"] | None:
    """The body length the Content-Length fields give: None without one, "invalid"
    when they disagree or are not numbers (equal duplicates and lists are fine)."""
    values = [p.strip() for v in _values(fields, b"content-length") for p in v.split(b",")]
    if not values:
        return None
    if any(not v.isdigit() for v in values) or len(set(map(int, values))) != 1:
        return "invalid"
    return int(values[0])


def is_chunked(fields: Fields) -> bool | None:
    """True when chunked is the last transfer coding, False for another coding, None
    without Transfer-Encoding."""
    codings = [
        c.strip().lower()
        for v in _values(fields, b"transfer-encoding")
        for c in v.split(b",")
        if c.strip()
    ]
    if not codings:
        return None
    return codings[-1] == b"chunked"


def has_token(fields: Fields, name: bytes, token: bytes) -> bool:
    """Whether a comma-separated field (Connection, Upgrade) holds ``token``."""
    return any(t.strip().lower() == token for v in _values(fields, name) for t in v.split(b","))


@dataclass
class Body:
    """A body read from a side.

    ``content``: the bytes up to the first gap (all of them when complete).
    ``end``: where the next message starts (meaningful when ``resumable``).
    ``incomplete``: what is missing, each ``{"offset", "length", "cause"}`` with cause
    ``gap`` (bytes not captured) or ``end`` (the side's stream ended first; length
    -1 when unknown); ``broken`` names a framing error.
    """

    content: bytes
    end: int
    last: int
    resumable: bool = True
    incomplete: list[dict[str, int | str]] = field(default_factory=list)
    trailers: Fields | None = None
    broken: str | None = None


class _Collector:
    """Collects body bytes, keeping only those before the first gap."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.cut = False
        self.incomplete: list[dict[str, int | str]] = []

    def add(self, data: bytes) -> None:
        if not self.cut and data:
            self.parts.append(data)

    def gap(self, offset: int, length: int) -> None:
        self.cut = True
        self.incomplete.append({"offset": offset, "length": length, "cause": "gap"})

    def ended(self, side: Side, offset: int, missing: int) -> None:
        g = side.gap_at(offset)
        if g is not None and g[0] + g[1] > offset:
            self.gap(offset, g[0] + g[1] - offset)
        else:
            self.cut = True
            self.incomplete.append({"offset": offset, "length": missing, "cause": "end"})

    def content(self) -> bytes:
        return self.parts[0] if len(self.parts) == 1 else b"".join(self.parts)


def _fixed(side: Side, offset: int, n: int, out: _Collector) -> tuple[int, bool]:
    """Read ``n`` bytes from ``offset`` into ``out``; return the end offset and whether
    the stream goes on right after them (False: it ended, or a gap runs past them)."""
    target = offset + n
    cur = offset
    while cur < target:
        run = side.run_at(cur)
        if run is None:
            nxt = side.next_run(cur)
            if nxt is None:
                out.ended(side, cur, target - cur)
                return cur, False
            out.gap(cur, nxt.offset - cur)
            if nxt.offset > target:
                return target, False
            cur = nxt.offset
            continue
        stop = min(target, run.end)
        out.add(run.data[cur - run.offset : stop - run.offset])
        cur = stop
    return target, True


def _line(side: Side, offset: int) -> tuple[bytes, int] | None:
    """The line at ``offset`` (without its line end) and the offset after it; None if
    it is not all captured in one run."""
    run = side.run_at(offset)
    if run is None:
        return None
    pos = offset - run.offset
    nl = run.data.find(b"\n", pos, pos + 4096)
    if nl < 0:
        return None
    line = run.data[pos:nl]
    return (line[:-1] if line.endswith(b"\r") else line), run.offset + nl + 1


def _chunked(side: Side, offset: int, out: _Collector) -> Body:
    cur = offset
    while True:
        got = _line(side, cur)
        if got is None:
            out.ended(side, cur, -1)
            return Body(out.content(), cur, cur - 1, False, out.incomplete)
        line, after = got
        size_text = line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            size = -1
        if size < 0 or not size_text or size_text[:1] in b"+-_":
            body = Body(out.content(), cur, cur - 1, False, out.incomplete)
            body.broken = f"invalid chunk size {size_text[:20]!r}"
            return body
        if size == 0:
            run = side.run_at(after)
            if run is None:
                if side.next_run(after) is None and side.gap_at(after) is None:
                    # The stream ends right after the last chunk: no trailers, no CRLF.
                    return Body(out.content(), after, after - 1, True, out.incomplete)
                out.ended(side, after, -1)
                return Body(out.content(), after, after - 1, False, out.incomplete)
            got_lines = _lines(run.data, after - run.offset, len(run.data))
            if got_lines is None:
                out.ended(side, run.end, -1)
                return Body(out.content(), run.end, run.end - 1, False, out.incomplete)
            lines, end = got_lines
            trailers, _ = parse_fields(lines)
            end += run.offset
            return Body(out.content(), end, end - 1, True, out.incomplete, trailers or None)
        cur, ok = _fixed(side, after, size, out)
        if not ok:
            return Body(out.content(), cur, cur - 1, False, out.incomplete)
        run = side.run_at(cur)
        if run is not None:
            data, pos = run.data, cur - run.offset
            if data.startswith(b"\r\n", pos):
                cur += 2
            elif data.startswith(b"\n", pos):
                cur += 1


def read_body(side: Side, offset: int, framing: Framing, length: int = 0) -> Body:
    """The body at ``offset`` framed as ``framing`` (``length`` bytes for "length")."""
    out = _Collector()
    if framing == "none" or (framing == "length" and length == 0):
        return Body(b"", offset, offset - 1)
    if framing == "length":
        end, ok = _fixed(side, offset, length, out)
        return Body(out.content(), end, end - 1, ok, out.incomplete)
    if framing == "chunked":
        return _chunked(side, offset, out)
    # Delimited by the end of the stream: everything left, gaps stepped over.
    end = max(side.end, offset)
    _fixed(side, offset, end - offset, out)
    g = side.gap_at(end)
    if g is not None:
        out.gap(end, g[0] + g[1] - end)
    return Body(out.content(), end, end - 1, False, out.incomplete)
