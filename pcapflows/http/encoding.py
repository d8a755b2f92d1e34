"""Content-Encoding decoding and charset guessing, as mitmproxy's ``Message.content``
and ``get_text()`` do them.

gzip and deflate come from the standard library. ``br`` needs the ``brotli`` (or
``brotlicffi``) module and ``zstd`` the ``zstandard`` module: they are used when
importable (mitmproxy depends on both, so they are there wherever mitmproxy is) and
otherwise a ``br``/``zstd`` body raises ``ValueError`` naming the missing module;
pcapflows does not depend on them (``raw_content`` is always there).
"""

from __future__ import annotations

import codecs
import gzip
import io
import re
import zlib
from collections.abc import Callable


def _gzip(data: bytes) -> bytes:
    if not data:
        return b""
    with gzip.GzipFile(fileobj=io.BytesIO(data)) as f:
        return f.read()


def _deflate(data: bytes) -> bytes:
    # Servers send both the zlib format RFC 9110 names and bare deflate data.
    if not data:
        return b""
    try:
        return zlib.decompress(data)
    except zlib.error:
        return zlib.decompress(data, -15)


def _brotli(data: bytes) -> bytes:
    if not data:
        return b""
    try:
        import brotli  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        try:
            import brotlicffi as brotli  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            raise ValueError("br content needs the brotli module (pip install brotli)") from None
    out: bytes = brotli.decompress(data)
    return out


def _zstd(data: bytes) -> bytes:
    if not data:
        return b""
    try:
        import zstandard  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        raise ValueError(
            "zstd content needs the zstandard module (pip install zstandard)"
        ) from None
    reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=True)
    out: bytes = reader.read()
    return out


_DECODERS: dict[str, Callable[[bytes], bytes]] = {
    "identity": lambda b: b,
    "none": lambda b: b,
    "gzip": _gzip,
    "x-gzip": _gzip,
    "deflate": _deflate,
    "br": _brotli,
    "zstd": _zstd,
}


def decode(data: bytes, content_encoding: str) -> bytes:
    """``data`` with ``content_encoding`` undone (a list is undone last first).

    ``ValueError`` for an unknown coding or data that does not decode.
    """
    codings = [c.strip().lower() for c in content_encoding.split(",") if c.strip()]
    for coding in reversed(codings):
        try:
            decoder = _DECODERS[coding]
        except KeyError:
            raise ValueError(f"Invalid Content-Encoding: {coding}") from None
        try:
            data = decoder(data)
        except ValueError:
            raise
        except Exception as exc:  # zlib.error, OSError (bad gzip), EOFError, ...
            raise ValueError(f"{type(exc).__name__} when decoding with {coding!r}: {exc}") from exc
    return data


_CHARSET = re.compile(r";\s*charset\s*=\s*\"?([^\";\s]+)", re.IGNORECASE)
_META = re.compile(rb"""<meta[^>]+charset=['"]?([^'">]+)""", re.IGNORECASE)
_CSS = re.compile(rb"""@charset "([^"]+)";""", re.IGNORECASE)


def text_encoding(content_type: str, content: bytes = b"") -> str:
    """The charset to decode a body with: the Content-Type's, else what JSON, an HTML
    ``<meta>`` or a CSS ``@charset`` say, else latin-1 (mitmproxy's rules)."""
    m = _CHARSET.search(content_type)
    enc = m.group(1) if m else None
    if not enc and "json" in content_type:
        enc = "utf8"
    if not enc and "html" in content_type:
        meta = _META.search(content)
        if meta:
            enc = meta.group(1).decode("ascii", "ignore")
    if not enc and "text/css" in content_type:
        css = _CSS.match(content)
        if css:
            enc = css.group(1).decode("ascii", "ignore")
    if not enc:
        enc = "latin-1"
    if enc.lower() in ("gb2312", "gbk"):
        enc = "gb18030"
    try:
        codecs.lookup(enc)
    except LookupError:
        raise ValueError(f"unknown charset {enc!r}") from None
    return enc
