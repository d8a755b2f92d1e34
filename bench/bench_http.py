#!/usr/bin/env python3
"""Benchmark: what the HTTP layer costs on top of reading, ``read_http()`` against
``read()`` of the same capture (issue 12's target: at most 1.3x).

    python bench/bench_http.py                         # bench/gencap.py --preset large
    python bench/bench_http.py --quick                 # the preset at a tenth
    python bench/bench_http.py CAPTURE                 # a capture of your own
    python bench/bench_http.py --quick --profile       # where read_http's time goes
    python bench/bench_http.py --memory                # and each one's peak memory

The capture is generated once (deterministic) into ``--cache`` and reused. Each
reader runs ``--repeat`` times, the best run is kept (a shared machine adds noise,
never removes it); the order alternates so that a warm page cache favours neither.
Prints packets, flows, HTTP flows, seconds and the ratio; with ``--memory``, also
the peak resident memory (``VmHWM``) of each reader run once in a fresh process.
Timings belong here, never in unit tests. Whether the compiled core ran is printed
too: the ratio is smaller with the interpreted core (the same HTTP work over a slower read).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import subprocess
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_core

import pcapflows
from pcapflows import _accel
from pcapflows.http import HTTPFlow


def plain(path: Path) -> tuple[int, int]:
    n = 0
    reader = pcapflows.read(path)
    for _ in reader:
        n += 1
    return reader.stats.packets, n


def http(path: Path) -> int:
    n = 0
    for f in pcapflows.read_http(path):
        n += isinstance(f, HTTPFlow)
    return n


def peak_memory(path: Path, which: str) -> int:
    """Peak resident memory (bytes) of one run of ``which`` over ``path`` in a fresh
    Python process: its ``VmHWM``, which starts again at ``exec``."""
    code = (
        "import sys, warnings; warnings.simplefilter('ignore');"
        f"sys.path[:0] = [{str(Path(__file__).resolve().parent.parent)!r}];"
        "import pcapflows;"
        f"reader = pcapflows.{which}(sys.argv[1])\n"
        "for _ in reader: pass\n"
        "print([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)], check=True, capture_output=True, text=True
    )
    return int(out.stdout.split()[-1]) * 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("capture", nargs="?", help="a capture (default: a generated one)")
    ap.add_argument("--preset", default="large", help="bench/gencap.py preset")
    ap.add_argument("--quick", action="store_true", help="the preset at a tenth of its size")
    ap.add_argument("--cache", default="/tmp/pcapflows-bench", help="where generated captures go")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--profile", action="store_true", help="profile one read_http() instead")
    ap.add_argument(
        "--memory", action="store_true", help="also each reader's peak memory, in a fresh process"
    )
    args = ap.parse_args()
    if args.capture:
        path = Path(args.capture)
    else:
        path = bench_core.ensure_capture(args.preset, args.quick, Path(args.cache))
    warnings.simplefilter("ignore")
    if args.profile:
        prof = cProfile.Profile()
        prof.runcall(http, path)
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
        return 0
    best = {"read": float("inf"), "read_http": float("inf")}
    packets = flows = http_flows = 0
    for i in range(args.repeat):
        for which in ("read", "read_http") if i % 2 == 0 else ("read_http", "read"):
            t0 = time.perf_counter()
            if which == "read":
                packets, flows = plain(path)
            else:
                http_flows = http(path)
            best[which] = min(best[which], time.perf_counter() - t0)
    core = "compiled" if _accel.compiled_in_use() else "interpreted"
    print(f"capture {path}: {packets} packets, {flows} TCP flows, {http_flows} HTTP flows")
    print(f"core: {core}; best of {args.repeat}")
    for which, t in best.items():
        print(f"{which:<10} {t:8.2f} s  {t * 1e6 / max(packets, 1):6.2f} us/packet")
    print(f"ratio read_http/read: {best['read_http'] / best['read']:.2f}")
    if args.memory:
        for which in best:
            print(f"{which:<10} peak memory {peak_memory(path, which) / 2**20:7.1f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
