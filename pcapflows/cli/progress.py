"""A progress line on standard error for long reads: share of the file read, flows so
far, rate.

Drawn only when standard error is a terminal and ``--quiet`` was not given, so that
nothing of it ever lands in a log file or a pipe. Plain ANSI (carriage return and
"erase line"): one line redrawn at most five times a second, erased at the end.
"""

from __future__ import annotations

import time
from typing import TextIO

#: Seconds between redraws: often enough to look alive, rarely enough to cost nothing.
INTERVAL = 0.2
_WIDTH = 24


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover


class Progress:
    """One capture's progress line. ``total`` is the file's size (None for a pipe, when
    only the bytes read so far can be shown)."""

    def __init__(self, stream: TextIO, label: str, total: int | None) -> None:
        self.stream = stream
        self.label = label
        self.total = total
        self.started = time.monotonic()
        self._next = 0.0
        self._drawn = False

    def update(self, done: int, flows: int) -> None:
        """Redraw if the last drawing is old enough (the caller calls this often)."""
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + INTERVAL
        rate = done / max(now - self.started, 1e-6)
        if self.total:
            share = min(done / self.total, 1.0)
            filled = int(share * _WIDTH)
            bar = "[" + "#" * filled + "." * (_WIDTH - filled) + f"] {share * 100:3.0f}%"
        else:
            bar = f"{_size(done)} read"
        line = f"{bar}  {self.label}  {flows} flows  {_size(rate)}/s"
        try:
            self.stream.write("\r\x1b[K" + line)
            self.stream.flush()
        except (OSError, ValueError):
            return
        self._drawn = True

    def close(self) -> None:
        """Erase the line, so that what follows on the terminal starts clean."""
        if self._drawn:
            try:
                self.stream.write("\r\x1b[K")
                self.stream.flush()
            except (OSError, ValueError):
                pass
            self._drawn = False
