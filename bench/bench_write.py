#!/usr/bin/env python3
"""Benchmark: writing a capture from flows (pcapflows.write_capture) against reading it back.

    python bench/bench_write.py                       # the large preset, 3 rounds
    python bench/bench_write.py --preset small --quick --rounds 1

The flows of a generated capture (``bench/gencap.py``, cached as ``bench_core.py``
caches it) are read once into memory; then, alternately in each round, the flows are
written to a pcapng file in memory (``write_capture``) and that file is read back
(``pcapflows.read``, ``len()`` of every message). Both figures are per packet of the
written file, the median over the rounds, in this one process (the same interpreter,
the same state of the machine), in CPU time (``time.process_time``), which other work
on a shared machine disturbs less than wall time. The written file is also checked: reading it back
gives the same flows (endpoints and message bytes) as the capture.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_core

import pcapflows
from pcapflows.pcapwrite import CaptureWriter


def _key(flow: pcapflows.TCPFlow) -> tuple[object, ...]:
    return (
        flow.client_conn.peername,
        flow.server_conn.address,
        tuple((m.from_client, m.content) for m in flow.messages),
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--preset", default="large")
    ap.add_argument("--quick", action="store_true", help="the preset at a tenth of its size")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=Path(__file__).parent / ".cache")
    args = ap.parse_args()
    capture = bench_core.ensure_capture(args.preset, args.quick, args.workdir)
    flows = list(pcapflows.read(capture, warn=False))
    write_s: list[float] = []
    read_s: list[float] = []
    data = b""
    packets = 0
    for _ in range(args.rounds):
        buf = io.BytesIO()
        t0 = time.process_time()
        with CaptureWriter(buf) as writer:
            for flow in flows:
                writer.add(flow)
        write_s.append(time.process_time() - t0)
        packets = writer.packets
        data = buf.getvalue()
        t0 = time.process_time()
        n = 0
        for flow in pcapflows.read(data, warn=False):
            for m in flow.messages:
                n += len(m.content)
        read_s.append(time.process_time() - t0)
    back = sorted(map(_key, pcapflows.read(data, warn=False)), key=repr)
    ok = back == sorted(map(_key, flows), key=repr)
    w, r = statistics.median(write_s), statistics.median(read_s)
    print(f"capture: {capture.name}, {len(flows)} flows -> {packets} packets, {len(data)} bytes")
    print(f"compiled core: {pcapflows.__compiled__}")
    print(f"write_capture: {w:.2f} s, {w / packets * 1e6:.2f} us/packet")
    print(f"read back:     {r:.2f} s, {r / packets * 1e6:.2f} us/packet")
    print(f"write / read:  {w / r:.2f}; read back gives the same flows: {ok}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
