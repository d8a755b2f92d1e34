"""Typed netstrings ("tnetstrings"), the encoding of mitmproxy's flow files.

A value is ``LENGTH:DATA`` followed by one type character; ``LENGTH`` is the decimal
byte length of ``DATA``. The types:

- ``,`` bytes, as they are; ``;`` str, its UTF-8 encoding;
- ``#`` int, decimal digits with an optional ``-``; ``^`` float, its ``repr()``;
- ``!`` bool, ``true`` or ``false``; ``~`` None, no data;
- ``]`` list (tuples are written as lists): the items one after another;
- ``}`` dict: key, value, key, value... from the last entry to the first.

This is mitmproxy's dialect (``mitmproxy.io.tnetstring``), which adds ``;`` for text to
the original specification; since flow format 7 its dict keys are ``str``. mitmproxy's
encoder writes a dict's entries from the last to the first; so does this one, which
writes byte for byte what mitmproxy's writes (the tests compare the two). The decoder
puts the entries back in order, so that a dict read back iterates as it did when it
was written (mitmproxy's own decoder leaves it reversed), and it is stricter than
mitmproxy's: malformed input (a length with a sign or spaces, an integer ``+5``, text
that is not UTF-8, trailing bytes inside a container) is a
:class:`~pcapflows.errors.FlowFileError`, never a stray ``ValueError`` or
``IndexError``, and nesting deeper than ``max_depth`` is refused rather than left to
exhaust the interpreter's stack.

:func:`load` reads exactly one value from a binary file object, so a flow file is read
one flow at a time. A value's bytes are read in bounded chunks: a damaged length prefix
claiming a terabyte gives a "file ends early" error, not an attempt to allocate it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import BinaryIO, Union

from pcapflows.errors import FlowFileError

#: What a tnetstring holds. (``Union`` spelled out: the alias must work on Python 3.10.)
Value = Union[
    None, bool, int, float, bytes, str, "list[Value]", "tuple[Value, ...]", "dict[Value, Value]"
]

#: Nesting allowed by default. A flow state is about five levels deep; anything near
#: this limit is hostile input, and Python's own recursion limit is not far beyond.
MAX_DEPTH = 100
#: Digits allowed in a length prefix (mitmproxy allows 12: up to a terabyte).
MAX_LENGTH_DIGITS = 12
#: How much of a value's body is read at a time, so that a false length fails on the
#: file's end rather than on allocating memory for it.
_CHUNK = 1 << 20

_COLON = ord(":")


# --- encoding ---------------------------------------------------------------------


def dumps(value: object, *, max_depth: int = MAX_DEPTH) -> bytes:
    """Encode ``value`` as one tnetstring.

    Raises ``TypeError`` for a value of another type (a set, an object) and
    ``ValueError`` for text that cannot be UTF-8 (lone surrogates) or nesting deeper
    than ``max_depth`` (which also catches a list that contains itself).
    """
    return b"".join(chunks(value, max_depth=max_depth))


def dump(value: object, fp: BinaryIO, *, max_depth: int = MAX_DEPTH) -> int:
    """Write ``value`` as one tnetstring to ``fp``; return the number of bytes written.

    Nothing is written when the value cannot be encoded: the chunks are all made first.
    """
    parts = chunks(value, max_depth=max_depth)
    fp.writelines(parts)
    return sum(len(p) for p in parts)


def chunks(value: object, *, max_depth: int = MAX_DEPTH) -> list[bytes]:
    """The encoding of ``value`` as a list of pieces, in order.

    Large ``bytes`` (message contents) are pieces of their own, not copied into a
    bigger string at every level of nesting: ``fp.writelines(chunks(v))`` writes a flow
    with a single pass over its data.
    """
    out: list[bytes] = []
    _encode(value, out, max_depth)
    return out


def _encode(value: object, out: list[bytes], depth: int) -> int:
    """Append the encoding of ``value`` to ``out``; return its length in bytes.

    A container's length prefix is only known once its items are encoded, so a
    placeholder is kept in ``out`` and filled in afterwards.
    """
    # bool before int: True is an int too.
    if value is None:
        out.append(b"0:~")
        return 3
    if value is True:
        out.append(b"4:true!")
        return 7
    if value is False:
        out.append(b"5:false!")
        return 8
    if isinstance(value, int):
        return _atom(out, int.__repr__(value).encode("ascii"), b"#")
    if isinstance(value, float):
        # repr() is the shortest text that reads back as the same float.
        return _atom(out, float.__repr__(value).encode("ascii"), b"^")
    if isinstance(value, bytes):
        return _atom(out, value, b",")
    if isinstance(value, str):
        try:
            data = value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(f"text that is not valid Unicode cannot be encoded: {exc}") from None
        return _atom(out, data, b";")
    if isinstance(value, (list, tuple, dict)):
        if depth <= 0:
            raise ValueError("nesting too deep to encode (or a container that contains itself)")
        slot = len(out)
        out.append(b"")
        size = 0
        if isinstance(value, dict):
            # Last entry first, as mitmproxy writes them (the decoder puts them back).
            for key, item in reversed(value.items()):
                size += _encode(key, out, depth - 1)
                size += _encode(item, out, depth - 1)
            tag = b"}"
        else:
            for item in value:
                size += _encode(item, out, depth - 1)
            tag = b"]"
        prefix = b"%d:" % size
        out[slot] = prefix
        out.append(tag)
        return len(prefix) + size + 1
    raise TypeError(f"cannot encode a {type(value).__name__} as a tnetstring: {value!r:.80}")


def _atom(out: list[bytes], data: bytes, tag: bytes) -> int:
    prefix = b"%d:" % len(data)
    out.append(prefix)
    out.append(data)
    out.append(tag)
    return len(prefix) + len(data) + 1


# --- decoding ---------------------------------------------------------------------


class _EndOfFile(Exception):
    """The file ended cleanly before a value (internal: :func:`load` turns it into None)."""


def load(fp: BinaryIO, *, max_depth: int = MAX_DEPTH) -> tuple[Value, int] | None:
    """Read one tnetstring from ``fp``: ``(value, bytes read)``, or None at the file's end.

    Reads exactly the value's bytes and no more, so the next call reads the next value.
    A file that ends inside a value, or bytes that are not a tnetstring, raise
    :class:`~pcapflows.errors.FlowFileError` with the reason (the caller adds which
    file and where).
    """
    try:
        prefix = _read_prefix(fp)
    except _EndOfFile:
        return None
    length = int(prefix)
    body = _read_exactly(fp, length)
    tag = fp.read(1)
    if not tag:
        raise FlowFileError("the file ends inside a value (its type character is missing)")
    value = _parse(body, 0, length, tag[0], max_depth)
    return value, len(prefix) + 1 + length + 1


def iter_load(fp: BinaryIO, *, max_depth: int = MAX_DEPTH) -> Iterator[Value]:
    """Every tnetstring in ``fp``, one after another, until the file's end."""
    while (item := load(fp, max_depth=max_depth)) is not None:
        yield item[0]


def loads(data: bytes, *, max_depth: int = MAX_DEPTH) -> Value:
    """Decode ``data``, which must hold exactly one tnetstring."""
    value, end = _pop(data, 0, len(data), max_depth)
    if end != len(data):
        raise FlowFileError(f"{len(data) - end} byte(s) after the value")
    return value


def _read_prefix(fp: BinaryIO) -> bytes:
    """The digits before the ``:`` of a top-level value, read one byte at a time (the
    file must not be read past the value)."""
    first = fp.read(1)
    if not first:
        raise _EndOfFile
    digits = b""
    c = first
    while c.isdigit():
        digits += c
        if len(digits) > MAX_LENGTH_DIGITS:
            raise FlowFileError("absurdly long length prefix")
        c = fp.read(1)
    if not digits:
        raise FlowFileError(f"a value must start with its length, not {first!r}")
    if not c:
        raise FlowFileError("the file ends inside a length prefix")
    if c[0] != _COLON:
        raise FlowFileError(f"a length must be followed by ':', not {c!r}")
    return digits


def _read_exactly(fp: BinaryIO, length: int) -> bytes:
    if length <= _CHUNK:
        data = fp.read(length)
        if len(data) != length:
            raise FlowFileError(_short(length, len(data)))
        return data
    buf = bytearray()
    while len(buf) < length:
        part = fp.read(min(_CHUNK, length - len(buf)))
        if not part:
            raise FlowFileError(_short(length, len(buf)))
        buf += part
    return bytes(buf)


def _short(want: int, got: int) -> str:
    return f"the file ends inside a value ({got} of its {want} bytes are there)"


def _pop(data: bytes, pos: int, end: int, depth: int) -> tuple[Value, int]:
    """Decode the value at ``data[pos:end]``; return it and the position after it."""
    colon = data.find(b":", pos, min(end, pos + MAX_LENGTH_DIGITS + 1))
    if colon < 0:
        raise FlowFileError(f"missing or invalid length prefix at {data[pos : pos + 16]!r}")
    digits = data[pos:colon]
    if not digits.isdigit():
        raise FlowFileError(f"invalid length prefix {digits!r}")
    start = colon + 1
    stop = start + int(digits)
    if stop >= end:
        raise FlowFileError(f"a length of {int(digits)} runs past the end of its container")
    return _parse(data, start, stop, data[stop], depth), stop + 1


def _parse(data: bytes, start: int, stop: int, tag: int, depth: int) -> Value:
    """The value of type ``tag`` whose body is ``data[start:stop]``."""
    if tag == 0x2C:  # ,
        return data[start:stop]
    if tag == 0x3B:  # ;
        try:
            return data[start:stop].decode("utf-8")
        except UnicodeDecodeError:
            raise FlowFileError("text that is not UTF-8") from None
    if tag in (0x5D, 0x7D):  # ] }
        if depth <= 0:
            raise FlowFileError("values nested too deep")
        items: list[Value] = []
        pos = start
        while pos < stop:
            item, pos = _pop(data, pos, stop, depth - 1)
            items.append(item)
        if tag == 0x5D:
            return items
        if len(items) % 2:
            raise FlowFileError("a dict with a key but no value")
        result: dict[Value, Value] = {}
        # Entries are stored last first (see _encode): reversed, the dict keeps its order.
        for i in range(len(items) - 2, -1, -2):
            key = items[i]
            if isinstance(key, (list, dict)):
                raise FlowFileError(f"a dict key that is a {type(key).__name__}")
            result[key] = items[i + 1]
        return result
    text = data[start:stop]
    if tag == 0x23:  # #
        body = text[1:] if text[:1] == b"-" else text
        if not body or not body.isdigit():
            raise FlowFileError(f"invalid integer {text[:40]!r}")
        return int(text)
    if tag == 0x5E:  # ^
        return _float(text)
    if tag == 0x21:  # !
        if text == b"true":
            return True
        if text == b"false":
            return False
        raise FlowFileError(f"invalid boolean {text[:40]!r}")
    if tag == 0x7E:  # ~
        if text:
            raise FlowFileError(f"a null with data {text[:40]!r}")
        return None
    raise FlowFileError(f"unknown type character {bytes([tag])!r}")


def _float(text: bytes) -> float:
    """A float as ``repr()`` writes it (``1.5``, ``1e+16``, ``nan``, ``-inf``); Python's
    laxer spellings (spaces, underscores) are refused."""
    ok = text.isascii() and text and all(c in b"0123456789.eE+-naifNAIF" for c in text)
    if ok:
        try:
            value = float(text)
        except ValueError:
            pass
        else:
            if math.isfinite(value) or text.lstrip(b"+-").lower() in (b"inf", b"nan"):
                return value
    raise FlowFileError(f"invalid float {text[:40]!r}")


__all__ = ["MAX_DEPTH", "Value", "chunks", "dump", "dumps", "iter_load", "load", "loads"]
