"""Text for flows shared by every output (the command line's views, the HTTP listing):
addresses, capture times, and whether bytes read as text.

Kept apart from the command line so that scripts can print the same forms.
"""

from __future__ import annotations

import datetime
from typing import Any


def endpoint(addr: Any) -> str:
    """``ip:port``, with IPv6 addresses in brackets so the port stays unambiguous."""
    if not addr:
        return "?"
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


def utc(ts: float | None, digits: int = 3) -> str:
    """A capture time as UTC date and time with ``digits`` decimals of the second
    (the caller says it is UTC: a column header, a suffix)."""
    if ts is None:
        return "-"
    try:
        dt = datetime.datetime.fromtimestamp(ts, tz=datetime.timezone.utc)
    except (OverflowError, OSError, ValueError):
        return f"{ts:.6f}"
    text = dt.strftime("%Y-%m-%d %H:%M:%S.%f")
    return text[: len(text) - (6 - digits)] if digits < 6 else text


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


def escape(line: str) -> str:
    """Keep printable characters (any script) and tabs; escape the rest visibly."""
    return "".join(
        ch if ch.isprintable() or ch == "\t" else ch.encode("unicode_escape").decode("ascii")
        for ch in line
    )
