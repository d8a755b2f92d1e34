#!/usr/bin/env python3
"""Benchmark: microseconds per packet of :meth:`pcapflows.decode.Decoder.decode`.

    python bench/bench_decode.py                  # 200000 Ethernet/IPv4/TCP frames
    python bench/bench_decode.py --packets 500000 --vlan
    python bench/bench_decode.py --ipv6

The frames are built here with :mod:`struct` (not with scapy, whose construction would
dominate the run) and decoded in a tight loop, so the figure is the decoder alone: the
cost every packet of a capture pays before reassembly. The best of several rounds is
printed, because the minimum is the least disturbed by whatever else the machine does.
Timings belong here, never in unit tests.
"""

from __future__ import annotations

import argparse
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pcapflows.decode.decoder import Decoder
from pcapflows.io.packet import Packet
from pcapflows.stats import ReadStats

MACS = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01"


def make_frames(count: int, vlan: bool, ipv6: bool = False) -> list[Packet]:
    """Frames of many connections with payloads of varied sizes, like a real capture."""
    out = []
    for i in range(count):
        payload = bytes(i % 1400)
        tcp = struct.pack(
            ">HHIIBBHHH", 1024 + i % 50000, 80, i * 7, i * 3, 5 << 4, 0x18, 65535, 0, 0
        )
        if ipv6:
            src6 = b"\x20\x01\x0d\xb8" + bytes(10) + (i % 1000).to_bytes(2, "big")
            dst6 = b"\x20\x01\x0d\xb8" + bytes(11) + b"\x64"
            ip = struct.pack(">IHBB", 6 << 28, len(tcp) + len(payload), 6, 64) + src6 + dst6
        else:
            total = 20 + len(tcp) + len(payload)
            src, dst = 0x0A000001 + i % 1000, 0x0A640001
            ip = struct.pack(">BBHHHBBHII", 0x45, 0, total, i & 0xFFFF, 0x4000, 64, 6, 0, src, dst)
        ethertype = b"\x86\xdd" if ipv6 else b"\x08\x00"
        link = MACS + (b"\x81\x00\x00\x07" if vlan else b"") + ethertype
        data = link + ip + tcp + payload
        out.append(Packet(float(i), 1, data, len(data), i + 1))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--vlan", action="store_true", help="add one 802.1Q tag to every frame")
    ap.add_argument("--ipv6", action="store_true", help="IPv6 instead of IPv4")
    args = ap.parse_args()
    packets = make_frames(args.packets, args.vlan, args.ipv6)
    best = float("inf")
    for _ in range(args.rounds):
        stats = ReadStats()
        decode = Decoder(stats).decode_all  # what the reader calls
        start = time.perf_counter()
        for pkt in packets:
            decode(pkt)
        best = min(best, time.perf_counter() - start)
        assert stats.tcp_segments == len(packets), stats
    cmd = " ".join(["python", *sys.argv])
    print(f"$ {cmd}")
    print(
        f"{len(packets)} frames, best of {args.rounds}: {best:.3f} s, "
        f"{best / len(packets) * 1e6:.2f} us/packet"
    )


if __name__ == "__main__":
    main()
