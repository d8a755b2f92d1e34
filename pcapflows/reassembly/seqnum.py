"""TCP sequence-number arithmetic: 32-bit values on the wire, unbounded offsets inside.

Every comparison of raw sequence numbers has to be done modulo 2**32, which is where most
reassembly bugs hide. Following Zeek, pcapflows converts each raw value into a relative
offset in an unbounded integer space as soon as it arrives, so that everything downstream
(buffering, overlap checks, gaps) is plain integer arithmetic and wrap-around simply
cannot matter.
"""

from __future__ import annotations

MOD = 1 << 32
HALF = 1 << 31
MASK = MOD - 1


def seq_diff(a: int, b: int) -> int:
    """Signed distance ``a - b`` between two 32-bit sequence numbers.

    The result lies in ``[-2**31, 2**31)``: a value "just after" the wrap is a small
    positive distance from a value just before it, as RFC 793 serial arithmetic requires.
    """
    d = (a - b) & MASK
    return d - MOD if d >= HALF else d


class Unwrapper:
    """Maps raw 32-bit sequence numbers of one direction to relative offsets.

    The first raw value given to :meth:`start` becomes a chosen offset; every later
    value is placed at the offset closest to the highest offset seen so far, which is
    correct as long as the stream never jumps by 2 GiB or more between two segments
    (TCP's own windows guarantee that).
    """

    __slots__ = ("_ref_off", "_ref_raw")

    def __init__(self, raw: int, offset: int) -> None:
        self._ref_raw = raw & MASK
        self._ref_off = offset

    def offset(self, raw: int) -> int:
        """The relative offset of ``raw``, without moving the reference point."""
        return self._ref_off + seq_diff(raw, self._ref_raw)

    def advance(self, raw: int) -> int:
        """The relative offset of ``raw``; moves the reference forward if it is newer."""
        off = self._ref_off + seq_diff(raw, self._ref_raw)
        if off > self._ref_off:
            self._ref_off = off
            self._ref_raw = raw & MASK
        return off

    def reference(self) -> tuple[int, int]:
        """The reference point (raw value, offset): enough to make an unwrapper that
        resolves every value as this one does (for a connection continuing this one)."""
        return self._ref_raw, self._ref_off

    def raw(self, offset: int) -> int:
        """The raw 32-bit value of a relative offset (for reports)."""
        return (self._ref_raw + (offset - self._ref_off)) & MASK
