"""Where a capture's bytes come from: a path, standard input, a file object, or memory.

All of them end up as one binary file object to read from, so the rest of the package
knows a single kind of input. What belongs to the caller stays theirs: a file object
given to us is never closed, a path or in-memory buffer we opened is (``owned``).
"""

from __future__ import annotations

import io
import os
import sys
from typing import BinaryIO, NamedTuple, TypeAlias, cast

from pcapflows.errors import CaptureError

#: What a capture can be read from: a path (``"-"`` is standard input), a binary file
#: object, or the capture's bytes themselves. ``bytes`` are content, never a file name.
Source: TypeAlias = str | os.PathLike[str] | BinaryIO | bytes | bytearray | memoryview

TEXT_MODE = "{name}: opened in text mode; pcapflows needs a binary file object (open it with 'rb')"


class Opened(NamedTuple):
    """A source made readable: the file object, its name for messages, and what we
    must close ourselves (None when the file object is the caller's)."""

    raw: BinaryIO
    name: str
    owned: BinaryIO | Memory | None
    in_memory: bool


def open_source(source: Source) -> Opened:
    """Turn any accepted ``source`` into a binary file object, or raise
    :class:`CaptureError` (cannot open, text mode, stdin closed) or :class:`TypeError`
    (not a source at all) with a message naming it."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        mem = Memory(source)
        return Opened(cast(BinaryIO, mem), f"<capture in memory, {len(mem)} bytes>", mem, True)
    if isinstance(source, (str, os.PathLike)) and os.fspath(source) == "-":
        name = "<stdin>"
        stdin = getattr(sys.stdin, "buffer", None)
        if stdin is None:  # ``<&-`` in a shell leaves sys.stdin None
            raise CaptureError(f"{name}: standard input is closed or not binary")
        return Opened(stdin, name, None, False)
    if isinstance(source, (str, os.PathLike)):
        name = os.fspath(source)
        try:
            raw = open(name, "rb")
        except OSError as exc:
            raise CaptureError(f"{name}: cannot open: {exc.strerror or exc}") from exc
        return Opened(raw, name, raw, False)
    if not callable(getattr(source, "read", None)):
        raise TypeError(
            f"source must be a path, a binary file object or bytes, not {type(source).__name__}"
        )
    name = str(getattr(source, "name", None) or repr(source))
    if isinstance(source, io.TextIOBase):
        raise CaptureError(TEXT_MODE.format(name=name))
    return Opened(source, name, None, False)


class Memory:
    """A read-only file over a capture already in memory, without copying it.

    Reads return ``bytes`` slices of a view of the caller's buffer; :meth:`close`
    releases the view (so a ``bytearray`` can be resized again).
    """

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        if not view.c_contiguous:
            view = memoryview(view.tobytes())
        self._view: memoryview | None = view.cast("B")
        self._pos = 0

    def __len__(self) -> int:
        return 0 if self._view is None else self._view.nbytes

    def read(self, n: int = -1) -> bytes:
        if self._view is None:
            raise ValueError("read of closed file")
        end = len(self._view) if n < 0 else min(self._pos + n, len(self._view))
        out = self._view[self._pos : end].tobytes()
        self._pos = max(self._pos, end)
        return out

    @property
    def closed(self) -> bool:
        return self._view is None

    def close(self) -> None:
        if self._view is not None:
            self._view.release()
            self._view = None
