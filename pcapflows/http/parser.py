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


def looks_like_request(data: bytes, start: int = 0) -> bool:
    """Whether ``data[start:]`` starts with an HTTP/1 request line (after empty lines)."""
    pos = start
    while pos < len(data) and data[pos] in b"\r\n":
        pos += 1
        if pos - start > 2 * MAX_LEADING_EMPTY:
            return False
    return _REQUEST.match(data, pos, pos + 8192) is not None


def looks_like_response(data: bytes, start: int = 0) -> bool:
    """Whether ``data[start:]`` starts with an HTTP/1 status line."""
    return _STATUS.match(data, start) is not None


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


def _head_bounds(data: bytes, pos: int, end: int) -> tuple[int, int] | None:
    """Where the head starting at ``pos`` stops (the index of the newline that ends
    its last line) and where what follows it starts; None if no empty line comes
    before ``end``. A head made of an empty line alone stops before ``pos``.

    The empty line is found with two searches rather than line by line: this runs
    for every message of every connection. CRLF heads (nearly all of them) are
    looked for first, so that each search stops at the head's end instead of
    running on through the body to ``end``."""
    if data.startswith(b"\n", pos):
        return (pos - 1, pos + 1) if pos < end else None
    if data.startswith(b"\r\n", pos):
        return (pos - 1, pos + 2) if pos + 1 < end else None
    crlf = data.find(b"\n\r\n", pos, end)
    lf = data.find(b"\n\n", pos, end if crlf < 0 else crlf + 1)
    if crlf >= 0 and (lf < 0 or crlf < lf):
        return crlf, crlf + 3
    if lf >= 0:
        return lf, lf + 2
    return None


def _split_lines(text: bytes) -> list[bytes]:
    """Lines of ``text`` without their CRLF or bare LF."""
    return [line[:-1] if line.endswith(b"\r") else line for line in text.split(b"\n")]


def _lines(data: bytes, pos: int, end: int) -> tuple[list[bytes], int] | None:
    """The lines from ``pos`` up to an empty line, and the position after it; None if
    no empty line comes before ``end``. Lines lose their CRLF or bare LF."""
    got = _head_bounds(data, pos, end)
    if got is None:
        return None
    stop, after = got
    return (_split_lines(data[pos:stop]) if stop >= pos else []), after


#: One header line as nearly every sender writes it: a name without spaces or CR, a
#: colon, a value without CR, then CRLF or LF. :func:`_fields` takes a head's field
#: block in one search when every line is like this, and falls back to
#: :func:`parse_fields`, which has the final word on every other line, when one is
#: not (so the two always agree: the test suite checks it on generated heads).
_FIELD = re.compile(rb"(?m)^([^ \t:\r\n]+)[ \t]*:[ \t]*([^\r\n]*[^\r\n \t])?[ \t]*\r?\n")


def _fields(block: bytes) -> tuple[Fields, int]:
    """The fields of a head's field block (each line ending in its newline)."""
    found: Fields = _FIELD.findall(block)
    if len(found) == block.count(b"\n"):
        return found, 0
    return parse_fields(_split_lines(block[:-1]))


def parse_fields(lines: list[bytes]) -> tuple[Fields, int]:
    """Header (or trailer) lines as ``(name, value)`` pairs, and how many lines were
    skipped (no colon, empty name, continuation with nothing to continue)."""
    fields: Fields = []
    ignored = 0
    for line in lines:
        if line.startswith((b" ", b"\t")):
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


#: The request and status lines nearly everyone sends: single spaces, a target without
#: whitespace, a reason phrase without CR, LF or tab. Taken in one match; any other
#: line goes the general way, which gives the same result for these (tested).
_SIMPLE_REQUEST_LINE = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+) (\S+) (HTTP/\d\.\d)\Z")
_SIMPLE_STATUS_LINE = re.compile(rb"(HTTP/\d\.\d) (\d{3}) (\S[^\r\n\t]*\S|\S)\Z")


def _split_request_line(line: bytes) -> tuple[bytes, bytes, bytes] | None:
    simple = _SIMPLE_REQUEST_LINE.match(line)
    if simple is not None:
        return simple.group(1, 2, 3)  # type: ignore[return-value]
    return _general_request_line(line)


def _general_request_line(line: bytes) -> tuple[bytes, bytes, bytes] | None:
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
    simple = _SIMPLE_STATUS_LINE.match(line)
    if simple is not None:
        return simple.group(1, 2, 3)  # type: ignore[return-value]
    return _general_status_line(line)


def _general_status_line(line: bytes) -> tuple[bytes, bytes, bytes] | None:
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


def _skip_empty(data: bytes, pos: int) -> int:
    """Past the empty lines (up to :data:`MAX_LEADING_EMPTY`) at ``pos``."""
    skipped = 0
    while skipped < MAX_LEADING_EMPTY and data.startswith((b"\r\n", b"\n"), pos):
        pos += 2 if data[pos] == 0x0D else 1
        skipped += 1
    return pos


def read_head(side: Side, offset: int, request: bool) -> HeadResult:
    """Parse the head of a request (``request=True``) or response at ``offset``."""
    split = _split_request_line if request else _split_status_line
    i = side.piece_at(offset)
    if i < 0:
        g = side.gap_at(offset)
        if g is not None:
            return HeadResult(None, "gap", (g[0], g[1]))
        nxt = side.next_run(offset)
        if nxt is not None:
            return HeadResult(None, "gap", (offset, nxt.offset - offset))
        return HeadResult(None, "end")
    data, base, run_end = side.datas[i], side.offsets[i], side.run_ends[i]
    limit = min(len(data), offset - base + MAX_HEAD)
    pos = _skip_empty(data, offset - base)
    got = _head_bounds(data, pos, limit)
    if got is None and base + len(data) < min(run_end, offset + MAX_HEAD):
        # The head goes on into the run's next piece: read a window of the run.
        data, base = side.joined(offset, MAX_HEAD), offset
        limit = len(data)
        pos = _skip_empty(data, 0)
        got = _head_bounds(data, pos, limit)
    if got is None:
        nl = data.find(b"\n", pos, limit)
        first = data[pos:nl].rstrip(b"\r") if nl >= 0 else None
        if first is not None and split(first) is None:
            return HeadResult(None, "invalid")
        if first is None and not _could_start(data[pos : pos + 16], request):
            return HeadResult(None, "invalid")
        if limit - pos >= MAX_HEAD:
            return HeadResult(None, "too long")
        if run_end >= side.end:
            g = side.gap_at(run_end)
            if g is not None:
                return HeadResult(None, "gap", (g[0], g[1]))
            return HeadResult(None, "end")
        nxt = side.next_run(run_end)
        assert nxt is not None
        return HeadResult(None, "gap", (run_end, nxt.offset - run_end))
    stop, after = got
    if stop < pos:
        return HeadResult(None, "invalid")
    nl = data.find(b"\n", pos, stop)
    line = data[pos:stop] if nl < 0 else data[pos:nl]
    if line.endswith(b"\r"):
        line = line[:-1]
    start = split(line)
    if start is None:
        return HeadResult(None, "invalid")
    fields, ignored = _fields(data[nl + 1 : stop + 1]) if nl >= 0 else ([], 0)
    return HeadResult(Head(start, fields, offset, base + after, ignored))


# --- framing ------------------------------------------------------------------------

Framing = Literal["length", "chunked", "close", "none"]


def framing_fields(fields: Fields) -> tuple[bool | None, int | Literal["invalid"] | None]:
    """What the fields say of the body's framing, in one pass over them: whether
    chunked is the last transfer coding (None without Transfer-Encoding, False for
    another coding) and :func:`content_length`. Every message asks this, so names
    are compared only when their length is that of the two fields it looks for."""
    codings: list[bytes] = []
    lengths: list[bytes] = []
    for k, v in fields:
        n = len(k)
        if n == 14 and k.lower() == b"content-length":
            lengths.extend(p.strip() for p in v.split(b","))
        elif n == 17 and k.lower() == b"transfer-encoding":
            codings.extend(c for c in (c.strip().lower() for c in v.split(b",")) if c)
    chunked = codings[-1] == b"chunked" if codings else None
    if not lengths:
        return chunked, None
    if any(not v.isdigit() for v in lengths) or len(set(map(int, lengths))) != 1:
        return chunked, "invalid"
    return chunked, int(lengths[0])


def content_length(fields: Fields) -> int | Literal["invalid"] | None:
    """The body length the Content-Length fields give: None without one, "invalid"
    when they disagree or are not numbers (equal duplicates and lists are fine)."""
    return framing_fields(fields)[1]


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
    resumable: bool = True
    incomplete: list[dict[str, int | str]] = field(default_factory=list)
    trailers: Fields | None = None
    broken: str | None = None

    @property
    def last(self) -> int:
        """The offset of the body's last byte (``end - 1``; before the body's start
        for an empty one)."""
        return self.end - 1


class _Collector:
    """Collects body bytes, keeping only those before the first gap.

    Parts are views of the TCP messages' bytes, joined once at the end; a body that
    is a whole TCP message is that message's bytes object, not copied at all."""

    def __init__(self) -> None:
        self.parts: list[bytes | memoryview] = []
        self.cut = False
        self.incomplete: list[dict[str, int | str]] = []

    def add(self, data: bytes, start: int, stop: int) -> None:
        if not self.cut and stop > start:
            self.parts.append(
                data if start == 0 and stop == len(data) else memoryview(data)[start:stop]
            )

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
        parts = self.parts
        if len(parts) == 1 and isinstance(parts[0], bytes):
            return parts[0]
        return b"".join(parts)

    def body(self, end: int, resumable: bool, trailers: Fields | None = None) -> Body:
        """The body collected, the next message starting at ``end``."""
        return Body(self.content(), end, resumable, self.incomplete, trailers)


def _fixed(side: Side, offset: int, n: int, out: _Collector) -> tuple[int, bool]:
    """Read ``n`` bytes from ``offset`` into ``out``; return the end offset and whether
    the stream goes on right after them (False: it ended, or a gap runs past them)."""
    target = offset + n
    cur = offset
    offsets, datas = side.offsets, side.datas
    while cur < target:
        i = side.piece_at(cur)
        if i < 0:
            nxt = side.next_run(cur)
            if nxt is None:
                out.ended(side, cur, target - cur)
                return cur, False
            out.gap(cur, nxt.offset - cur)
            if nxt.offset > target:
                return target, False
            cur = nxt.offset
            continue
        # The pieces of the run, one after the other.
        while True:
            data, base = datas[i], offsets[i]
            stop = min(target, base + len(data))
            out.add(data, cur - base, stop - base)
            cur = stop
            i += 1
            if cur >= target or i >= len(datas) or offsets[i] != cur:
                break
    return target, True


def _line(side: Side, offset: int) -> tuple[bytes, int] | None:
    """The line at ``offset`` (without its line end) and the offset after it; None if
    it is not all captured in one run."""
    i = side.piece_at(offset)
    if i < 0:
        return None
    data, base = side.datas[i], side.offsets[i]
    pos = offset - base
    nl = data.find(b"\n", pos, pos + 4096)
    if nl < 0 and base + len(data) < min(side.run_ends[i], offset + 4096):
        data, base, pos = side.joined(offset, 4096), offset, 0
        nl = data.find(b"\n")
    if nl < 0:
        return None
    line = data[pos:nl]
    return (line[:-1] if line.endswith(b"\r") else line), base + nl + 1


def _chunked(side: Side, offset: int, out: _Collector) -> Body:
    cur = offset
    while True:
        got = _line(side, cur)
        if got is None:
            out.ended(side, cur, -1)
            return out.body(cur, False)
        line, after = got
        size_text = line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            size = -1
        if size < 0 or not size_text or size_text[:1] in b"+-_":
            body = out.body(cur, False)
            body.broken = f"invalid chunk size {size_text[:20]!r}"
            return body
        if size == 0:
            i = side.piece_at(after)
            if i < 0:
                if side.next_run(after) is None and side.gap_at(after) is None:
                    # The stream ends right after the last chunk: no trailers, no CRLF.
                    return out.body(after, True)
                out.ended(side, after, -1)
                return out.body(after, False)
            data, base, run_end = side.datas[i], side.offsets[i], side.run_ends[i]
            got_lines = _lines(data, after - base, len(data))
            if got_lines is None and base + len(data) < run_end:
                data, base = side.joined(after, MAX_HEAD), after
                got_lines = _lines(data, 0, len(data))
            if got_lines is None:
                out.ended(side, run_end, -1)
                return out.body(run_end, False)
            lines, end = got_lines
            trailers, _ = parse_fields(lines)
            end += base
            return out.body(end, True, trailers or None)
        cur, ok = _fixed(side, after, size, out)
        if not ok:
            return out.body(cur, False)
        after_data = side.joined(cur, 2)  # the chunk's line end, which can straddle pieces
        if after_data == b"\r\n":
            cur += 2
        elif after_data.startswith(b"\n"):
            cur += 1


def read_body(side: Side, offset: int, framing: Framing, length: int = 0) -> Body:
    """The body at ``offset`` framed as ``framing`` (``length`` bytes for "length")."""
    out = _Collector()
    if framing == "none" or (framing == "length" and length == 0):
        return Body(b"", offset)
    if framing == "length":
        end, ok = _fixed(side, offset, length, out)
        return out.body(end, ok)
    if framing == "chunked":
        return _chunked(side, offset, out)
    # Delimited by the end of the stream: everything left, gaps stepped over.
    end = max(side.end, offset)
    _fixed(side, offset, end - offset, out)
    g = side.gap_at(end)
    if g is not None:
        out.gap(end, g[0] + g[1] - end)
    return out.body(end, False)
