#!/usr/bin/env python3
"""Benchmark: one connection of N one-byte segments in a hostile order.

    python bench/bench_hostile.py                       # 1,000,000 bytes, every order
    python bench/bench_hostile.py -n 100000 --order alternate

Orders: ``reverse`` (each byte just below the waiting ones), ``random``, and
``alternate`` (every odd byte from the top down, then the even ones from the bottom
up: the most separate pieces at once). Prints, per order, the seconds spent feeding the
segments through ``pcapflows.reassemble`` (segments are made on the fly, flows built),
whether the stream came out exactly, the gaps a limit caused, and the peak RSS of the
process. A reassembler whose buffer costs grow with the number of waiting pieces shows
here as time growing with the square of N. Timings belong here, never in unit tests.
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pcapflows
from pcapflows import Segment

C = ("10.0.0.1", 40000)
S = ("10.0.0.2", 80)
ISN = 1000
ORDERS = ("reverse", "random", "alternate")


def order_of(kind: str, n: int) -> list[int]:
    if kind == "reverse":
        return list(range(n - 1, -1, -1))
    if kind == "random":
        out = list(range(n))
        random.Random(1).shuffle(out)
        return out
    return list(range(1, n, 2))[::-1] + list(range(0, n, 2))


def segments(order: list[int]) -> Iterator[Segment]:
    yield Segment(0.0, C[0], C[1], S[0], S[1], ISN - 1, 0, 0x02)
    yield Segment(0.0, S[0], S[1], C[0], C[1], 4999, ISN, 0x12)
    for k, i in enumerate(order):
        payload = bytes([65 + i % 26])
        yield Segment(1.0 + k * 1e-6, C[0], C[1], S[0], S[1], ISN + i, 5000, 0x18, payload)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=1_000_000, help="one-byte segments")
    ap.add_argument("--order", choices=ORDERS, action="append", help="default: all")
    a = ap.parse_args()
    n = a.n
    truth = bytes(65 + i % 26 for i in range(n))
    for kind in a.order or ORDERS:
        order = order_of(kind, n)
        t0 = time.perf_counter()
        (flow,) = pcapflows.reassemble(segments(order))
        seconds = time.perf_counter() - t0
        got = b"".join(m.content for m in flow.messages)
        gaps = flow.metadata["pcapflows"]["gaps"]
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"{kind:9} n={n}: {seconds:7.2f} s  {seconds / n * 1e6:6.2f} us/segment  "
            f"{'exact' if got == truth else f'{len(got)} bytes'}  "
            f"{len(gaps)} gaps ({sum(g['length'] for g in gaps)} bytes)  "
            f"peak RSS {peak:.0f} MiB"
        )


if __name__ == "__main__":
    main()
