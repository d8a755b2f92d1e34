"""Conflict detection against the delivered bytes themselves (``HalfStream._kept``).

A retransmission is compared with the payload objects already delivered (kept by
reference, short ones joined), never with a second copy. Expected conflicts are worked
out by hand from the bytes sent.
"""

from __future__ import annotations

from pcapflows.reassembly.events import Conflict, Data
from pcapflows.reassembly.half import HalfStream

ISN = 1000


def started(keep: int = 65536) -> HalfStream:
    half = HalfStream(0, 0, keep=keep)
    half.segment(ISN, b"", 0, True, False, 0.0, 0)
    return half


def send(half: HalfStream, off: int, data: bytes, t: float = 1.0) -> list[object]:
    events, _ = half.segment(ISN + 1 + off, data, 0, False, False, t, 0)
    return list(events)


def test_delivered_payload_is_kept_by_reference() -> None:
    half = started()
    big = bytes(range(256)) * 8  # 2048 bytes: above the joining threshold
    (ev,) = send(half, 0, big)
    assert isinstance(ev, Data) and ev.data is big
    assert half._kept[0] is big


def test_conflict_spanning_pieces_of_every_size() -> None:
    half = started()
    sizes = [700, 10, 10, 3, 600, 3000, 1]
    stream = b""
    for i, n in enumerate(sizes):
        piece = bytes([65 + i]) * n
        send(half, len(stream), piece)
        stream += piece
    # Retransmit bytes 650..4000 with two bytes changed, at 705 and 1320.
    lo, hi = 650, 4000
    copy = bytearray(stream[lo:hi])
    copy[705 - lo] ^= 1
    copy[1320 - lo] ^= 1
    events = send(half, lo, bytes(copy), 2.0)
    assert events == [Conflict(0, 0, 705, 1320 - 705 + 1, 2.0)]
    assert half.conflict == 1320 - 705 + 1
    assert half.duplicate == (hi - lo) - (1320 - 705 + 1)
    # An identical copy is a duplicate only.
    assert send(half, lo, stream[lo:hi], 3.0) == []


def test_single_byte_writer_is_compared_exactly() -> None:
    half = started()
    stream = bytes((i * 7) % 251 for i in range(3000))
    for i in range(len(stream)):
        send(half, i, stream[i : i + 1])
    assert len(half._kept) < 20  # joined, not one entry per byte
    copy = bytearray(stream[100:2900])
    copy[2000 - 100] ^= 0xFF
    assert send(half, 100, bytes(copy), 2.0) == [Conflict(0, 0, 2000, 1, 2.0)]


def test_bytes_older_than_the_window_are_not_compared() -> None:
    keep = 100
    half = started(keep)
    stream = bytes(range(50)) * 20  # 1000 bytes in 50-byte pieces
    for i in range(0, 1000, 50):
        send(half, i, stream[i : i + 50])
    # The last `keep` bytes are always remembered; byte 0 is long forgotten.
    recent = bytearray(stream[960:1000])
    recent[5] ^= 1
    assert send(half, 960, bytes(recent), 2.0) == [Conflict(0, 0, 965, 1, 2.0)]
    old = bytearray(stream[0:40])
    old[5] ^= 1
    assert send(half, 0, bytes(old), 3.0) == []
    assert half.conflict == 1
