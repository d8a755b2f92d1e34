"""Hostile arrival orders: a million one-byte segments out of order (issue 9, item 6).

What a waiting piece costs is measured here (tracemalloc, started before the pieces are
made), so that the per-piece charge against the buffer limits is honest; the limits
then bound what such a capture holds. How long these orders take is measured by
``bench/bench_hostile.py``, not here (no timed unit tests).
"""

from __future__ import annotations

import random
import tracemalloc
from collections.abc import Iterator

import pcapflows
from pcapflows import Assembler, Data, Segment
from pcapflows.decode.segment import ACK, PSH, SYN
from pcapflows.limits import DEFAULT_MAX_BUFFER
from pcapflows.reassembly.half import CHUNK_COST, HalfStream

C = ("10.0.0.1", 40000)
S = ("10.0.0.2", 80)
ISN = 1000


def one_byte_segments(order: list[int]) -> Iterator[Segment]:
    """A handshake, then byte ``i`` of the stream (``chr(65 + i % 26)``) for each ``i``
    of ``order``, one segment each, in that order."""
    yield Segment(0.0, C[0], C[1], S[0], S[1], ISN, 0, SYN)
    yield Segment(0.0, S[0], S[1], C[0], C[1], 4999, ISN + 1, SYN | ACK)
    for k, i in enumerate(order):
        t = 1.0 + k * 1e-6
        payload = bytes([65 + i % 26])
        yield Segment(t, C[0], C[1], S[0], S[1], ISN + 1 + i, 5000, PSH | ACK, payload)


def stream(n: int) -> bytes:
    return bytes(65 + i % 26 for i in range(n))


def test_what_a_waiting_piece_costs_is_what_the_limits_charge() -> None:
    n = 20_000
    half = HalfStream(0, 0)
    half.segment(ISN, b"", 0, True, False, 0.0, 0)
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for i in range(n):
            # Every other byte: nothing adjacent, so nothing can be merged.
            half.segment(ISN + 2 + 2 * i, b"x", 0, False, False, 1.0, i)
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    measured = (after - before) / n
    assert half.buffered == n * (1 + CHUNK_COST)
    # The charge covers what a piece really costs (bytes object, piece, slot, numbers).
    assert measured <= 1 + CHUNK_COST, measured
    # ... and is not a made-up number either. Compiled (mypyc), a piece stores its
    # numbers inline and costs less (89 bytes measured): the charge then over-counts,
    # which keeps the limits safe.
    assert measured > CHUNK_COST / (4 if pcapflows.__compiled__ else 2), measured


def test_a_million_one_byte_segments_in_reverse_order() -> None:
    """Each new byte sits just below the waiting ones: they merge into one piece, and
    the whole stream comes out when byte 0 arrives last."""
    n = 1_000_000
    (flow,) = pcapflows.reassemble(one_byte_segments(list(range(n - 1, -1, -1))))
    assert b"".join(m.content for m in flow.messages) == stream(n)
    assert flow.metadata["pcapflows"]["gaps"] == []


def test_a_million_one_byte_segments_in_random_order_stay_within_the_limit() -> None:
    """Random order: what waits above the holes never exceeds ``max_buffer`` (plus the
    piece being added), whatever the order; when it would, the lowest hole becomes a gap
    of cause ``limit``. Every byte is accounted for: delivered once, or in the bucket of
    bytes that came for a hole forgotten for want of room."""
    n = 1_000_000
    order = list(range(n))
    random.Random(9).shuffle(order)
    asm = Assembler()
    data: dict[int, bytes] = {}
    most = 0
    for seg in one_byte_segments(order):
        for e in asm.feed(seg):
            if isinstance(e, Data) and e.direction == 0:
                for k, b in enumerate(e.data):
                    assert e.offset + k not in data  # never delivered twice
                    data[e.offset + k] = bytes([b])
        most = max(most, asm.buffered)
    for e in asm.close_all():
        if isinstance(e, Data) and e.direction == 0:
            for k, b in enumerate(e.data):
                assert e.offset + k not in data
                data[e.offset + k] = bytes([b])
    assert most <= DEFAULT_MAX_BUFFER + 1 + CHUNK_COST
    truth = stream(n)
    assert all(truth[i : i + 1] == b for i, b in data.items())  # never a wrong byte
    kept = asm.payload
    assert kept["delivered"] == len(data)
    assert kept["delivered"] + kept["limit"] + kept["duplicate"] == n
    assert asm.captured == n
