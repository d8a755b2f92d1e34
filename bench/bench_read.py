#!/usr/bin/env python3
"""Benchmark: how fast ``pcapflows.read`` goes through a capture, and at what memory.

    python bench/bench_read.py                 # synthetic capture, 20000 connections
    python bench/bench_read.py --connections 50000
    python bench/bench_read.py CAPTURE ...     # real captures

Prints packets, flows, seconds, microseconds per packet and the peak of Python
allocations (tracemalloc, in a second run so that tracing does not slow the timed one).
Timings belong here, never in unit tests.

Wall-clock figures on a shared machine vary by tens of percent between runs. To compare
two versions, count instructions instead (repeatable), and take the difference between
two sizes so that start-up costs cancel:

    PY=$(python -c 'import sys; print(sys.executable)')
    for n in 300 900; do valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        $PY bench/bench_read.py --connections $n --no-peak; done
    # instructions per packet = (I_900 - I_300) / (8 * 600)
"""

from __future__ import annotations

import argparse
import io
import sys
import time
import tracemalloc
import warnings
from pathlib import Path
from typing import BinaryIO

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from synth import pcap

import pcapflows


def run(src: BinaryIO | str) -> tuple[int, int, float]:
    if isinstance(src, io.BytesIO):
        src.seek(0)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reader = pcapflows.read(src)
        flows = sum(1 for _ in reader)
    return reader.stats.packets, flows, time.perf_counter() - start


def peak(src: BinaryIO | str) -> int:
    if isinstance(src, io.BytesIO):
        src.seek(0)
    tracemalloc.start()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in pcapflows.read(src):
            pass
    _, top = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return top


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("captures", nargs="*")
    ap.add_argument("--connections", type=int, default=20000)
    ap.add_argument("--no-peak", action="store_true", help="skip the tracemalloc run")
    args = ap.parse_args()
    sources: list[tuple[str, BinaryIO | str]] = [(c, c) for c in args.captures]
    if not sources:
        data = pcap(args.connections, spacing=0.01)
        sources = [
            (
                f"synthetic ({args.connections} connections, {len(data) / 1e6:.1f} MB)",
                io.BytesIO(data),
            )
        ]
    print(f"python {sys.version.split()[0]}, pcapflows {pcapflows.__version__}")
    for name, src in sources:
        packets, flows, secs = run(src)
        top = 0 if args.no_peak else peak(src)
        print(
            f"{name}: {packets} packets, {flows} flows, {secs:.2f} s, "
            f"{secs / max(packets, 1) * 1e6:.1f} us/packet, "
            f"{packets / secs:,.0f} packets/s, peak allocations {top / 1e6:.1f} MB"
        )


if __name__ == "__main__":
    main()
