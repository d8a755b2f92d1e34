"""An aligned text table written as rows come, for listings of any length.

Column widths come from the header and the first :data:`MEASURE` rows (held back
until then), so a short listing is aligned exactly and a long one starts printing
after a bounded number of rows; a later cell wider than its column pushes the rest of
its line to the right rather than being cut (a value is never truncated).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TextIO

#: Rows measured before the widths are fixed.
MEASURE = 200
GUTTER = "  "


class Table:
    """``columns`` are the header cells; ``right`` says which are numbers (aligned to
    the right). The last column is never padded."""

    def __init__(self, out: TextIO, columns: Sequence[str], right: Sequence[bool]) -> None:
        self.out = out
        self.columns = list(columns)
        self.right = list(right)
        self._held: list[list[str]] = [self.columns]
        self._widths: list[int] | None = None

    def add(self, row: Sequence[str]) -> None:
        if self._widths is None:
            self._held.append(list(row))
            if len(self._held) > MEASURE:
                self._flush()
        else:
            self._write(row)

    def close(self) -> None:
        """Print what is held (a listing shorter than :data:`MEASURE` rows)."""
        if self._widths is None:
            self._flush()

    def _flush(self) -> None:
        self._widths = [max(len(r[i]) for r in self._held) for i in range(len(self.columns))]
        for row in self._held:
            self._write(row)
        self._held = []

    def _write(self, row: Sequence[str]) -> None:
        assert self._widths is not None
        last = len(row) - 1
        cells = []
        for i, cell in enumerate(row):
            if i == last:
                cells.append(cell)
            elif self.right[i]:
                cells.append(cell.rjust(self._widths[i]))
            else:
                cells.append(cell.ljust(self._widths[i]))
        print(GUTTER.join(cells).rstrip(), file=self.out)
