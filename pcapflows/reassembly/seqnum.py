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
