"""Resource limits on hostile captures: memory stays under the limits, and every limit
that cuts in shows up in the flows and the statistics (nothing is dropped silently).

The captures are built here with struct (tests/synth.py's frame builder), so the bytes
each connection sent are known independently of pcapflows. Peak memory is measured, never
inferred from timings: each measured read runs in a fresh Python process, which reports
its own peak resident memory (``VmHWM``); what the read costs is that peak minus the
peak of the same process that imports everything and reads nothing. Every limit is
checked twice: the limited read stays within its bound, and the same read without the
limit goes well past it (so the measurement does see the memory the limit saves).
"""

from __future__ import annotations

import functools
import io
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from synth import frame

import pcapflows
from pcapflows.decode.segment import ACK, PSH, SYN, Segment
from pcapflows.reassembly.assembler import Assembler
from pcapflows.reassembly.events import Data

MiB = 1024 * 1024
SERVER = 0x0A640001
ROOT = Path(__file__).resolve().parents[1]


def write_pcap(packets: list[tuple[float, bytes]]) -> bytes:
    out = io.BytesIO()
    out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    for ts, f in packets:
        sec = int(ts)
        out.write(struct.pack("<IIII", sec, round((ts - sec) * 1e6), len(f), len(f)))
        out.write(f)
    return out.getvalue()


def handshake(c: int, sport: int, t: float) -> list[tuple[float, bytes]]:
    return [
        (t, frame(c, SERVER, sport, 80, 1000, 0, SYN)),
        (t + 0.001, frame(SERVER, c, 80, sport, 5000, 1001, SYN | ACK)),
    ]


def opened(i: int, t: float, payload: bytes) -> list[tuple[float, bytes]]:
    """Handshake and one request, never closed: the connection stays open."""
    c, sport = 0x0A000000 + i + 1, 1024 + i
    return [
        *handshake(c, sport, t),
        (t + 0.002, frame(c, SERVER, sport, 80, 1001, 5001, PSH | ACK, payload)),
    ]


class Seen:
    """What a test needs of each flow, kept small so that holding it for thousands of
    flows does not weigh on the memory being measured."""

    def __init__(self, flow: pcapflows.TCPFlow) -> None:
        meta = flow.metadata["pcapflows"]
        client = flow.client_conn.peername
        assert client is not None
        self.port = client[1]
        self.closed_by: str = meta["closed_by"]
        self.gaps = [g for g in meta["gaps"] if g["from_client"]]
        sent = [m.content for m in flow.messages if m.from_client]
        self.first = sent[0] if sent else b""
        self.sent = sum(len(c) for c in sent)
        self.messages = len(flow.messages)


def read_all(data: bytes, **options: object) -> tuple[list[Seen], pcapflows.ReadStats]:
    """Read ``data``; return a summary of each flow and the statistics."""
    reader = pcapflows.read(io.BytesIO(data), warn=False, limits=pcapflows.Limits(**options))  # type: ignore[arg-type]
    return [Seen(f) for f in reader], reader.stats


#: The measured process: reads a capture file with one layer of pcapflows, drops what it
#: gets (flows, or the core's events), then prints its peak resident memory in bytes.
#: ``read`` is what a user runs; ``core`` is the reader, decoder and Assembler without
#: flows, so that bytes the limits release (delivered to flows that stay open) do not
#: hide the bytes held above holes; ``none`` imports the same and reads nothing.
_MEASURED = """
import json, sys
import pcapflows
from pcapflows.reassembly.assembler import Assembler
from pcapflows.io.reader import CaptureReader
from pcapflows.decode.decoder import Decoder
from pcapflows.stats import ReadStats

path, layer, options = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
limits = pcapflows.Limits(**options)
if layer == "read":
    for flow in pcapflows.read(path, warn=False, limits=limits):
        del flow
elif layer == "core":
    stats = ReadStats()
    decoder, assembler = Decoder(stats), Assembler(limits)
    for packet in CaptureReader(path, stats):
        for segment in decoder.decode_all(packet):
            assembler.feed(segment)
    decoder.finish()
    assembler.close_all()
with open("/proc/self/status") as status:
    print(next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:")))
"""


@functools.cache
def _peak(path: Path, layer: str, options: str) -> int:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    out = subprocess.run(
        [sys.executable, "-c", _MEASURED, str(path), layer, options],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return int(out.stdout)


def read_cost(path: Path, layer: str, **options: int) -> int:
    """Peak resident memory that reading ``path`` adds to a fresh process (bytes)."""
    if not Path("/proc/self/status").is_file():
        pytest.skip("peak memory is read from /proc (Linux)")
    # The process that reads nothing costs the same for every file: measured once.
    return _peak(path, layer, json.dumps(options)) - _peak(Path(os.devnull), "none", "{}")


def test_connections_left_open_are_bounded_and_closed_early_with_a_reason(
    tmp_path: Path,
) -> None:
    n, limit = 10_000, 200
    packets = []
    for i in range(n):
        packets += opened(i, 1_700_000_000 + i * 0.01, b"request %d" % i)
    data = write_pcap(packets)
    flows, stats = read_all(data, max_connections=limit)
    assert len(flows) == n
    assert stats.limits["max_connections"] == n - limit
    by_reason: dict[str, int] = {}
    for f in flows:
        by_reason[f.closed_by] = by_reason.get(f.closed_by, 0) + 1
        # Closed early, but nothing lost: each request is in its flow.
        assert (f.first, f.messages) == (b"request %d" % (f.port - 1024), 1)
    assert by_reason == {"limit": n - limit, "end": limit}
    # The oldest go first: the evicted are exactly the first n - limit connections.
    evicted = sorted(f.port - 1024 for f in flows if f.closed_by == "limit")
    assert evicted == list(range(n - limit))
    # Memory follows the limit: the same file without it holds all 10,000 at once (about
    # 5 KiB each), with it at most 200 (the rest is the fixed cost of reading).
    path = tmp_path / "open.pcap"
    path.write_bytes(data)
    small = read_cost(path, "read", max_connections=limit)
    big = read_cost(path, "read")
    assert big > n * 2048, big
    assert small * 4 < big, (small, big)


def test_table_never_exceeds_max_connections() -> None:
    assembler = Assembler(pcapflows.Limits(max_connections=50))
    for i in range(500):
        seg = Segment(float(i), f"10.0.{i // 250}.{i % 250}", 1000, "10.1.0.1", 80, 1, 0, SYN)
        assembler.feed(seg)
        assert assembler.open_connections <= 50
    assert assembler.evicted == 450


def above_a_hole(i: int, t: float, size: int, chunk: int = 1400) -> list[tuple[float, bytes]]:
    """A connection whose first data segment is missing: ``size`` bytes arrive above the
    hole (and no ACK from the server ever tells that the hole is real)."""
    c, sport = 0x0B000000 + i + 1, 2000 + i
    pk = handshake(c, sport, t)
    seq = 1001 + chunk  # the segment [1001, 1001 + chunk) is never captured
    k = 0
    while seq < 1001 + chunk + size:
        part = bytes([65 + (i + k) % 26]) * min(chunk, 1001 + chunk + size - seq)
        pk.append((t + 0.01 + k * 1e-4, frame(c, SERVER, sport, 80, seq, 5001, ACK, part)))
        seq += len(part)
        k += 1
    return pk


def test_huge_holes_in_many_connections_stay_under_the_total_buffer_limit(
    tmp_path: Path,
) -> None:
    # Each connection holds a little less than half the total limit (a piece held
    # costs its bytes plus a fixed overhead), so that the last ones still fit.
    conns, size = 12, 2 * MiB - 64 * 1024
    packets = []
    for i in range(conns):
        packets += above_a_hole(i, 1_700_000_000 + i, size)
    data = write_pcap(packets)
    total = 4 * MiB
    flows, stats = read_all(data, max_total_buffer=total, max_buffer=3 * MiB)
    # Everything held above the holes came out, after a gap with its cause.
    assert len(flows) == conns
    causes = set()
    for f in flows:
        assert f.sent == size
        assert (f.gaps[0]["offset"], f.gaps[0]["length"]) == (0, 1400)
        causes.add(f.gaps[0]["cause"])
    # The last connections still fit when the file ends; the others were released.
    assert causes == {"limit", "end"}
    assert stats.limits["max_total_buffer"] >= 1
    # Memory: the 24 MiB above the holes never sit in memory at once. Measured below the
    # flows (open flows keep what was delivered to them, limit or not): the core holds
    # at most the limit, plus a fixed cost of reading (1 MiB read pieces, the 64 KiB
    # kept per direction to compare retransmissions with, the allocator's slack).
    path = tmp_path / "holes.pcap"
    path.write_bytes(data)
    limited = read_cost(path, "core", max_total_buffer=total, max_buffer=3 * MiB)
    assert limited < total + 3 * MiB, limited / MiB
    unlimited = read_cost(path, "core", max_buffer=3 * MiB)
    assert unlimited > conns * size, unlimited / MiB


def test_one_direction_over_max_buffer_is_flushed_with_a_limit_gap() -> None:
    packets = above_a_hole(0, 1_700_000_000, 3 * MiB)
    flows, _ = read_all(write_pcap(packets), max_buffer=1 * MiB)
    (flow,) = flows
    gaps = flow.gaps
    assert gaps[0] == {
        "from_client": True,
        "offset": 0,
        "length": 1400,
        "timestamp": gaps[0]["timestamp"],
        "cause": "limit",
    }
    assert flow.sent == 3 * MiB


def test_release_delivers_buffered_bytes_as_data_events() -> None:
    """The sans-IO layer: going over the total limit turns held bytes into Data events
    at once (after a Gap), rather than keeping them."""
    assembler = Assembler(pcapflows.Limits(max_total_buffer=10_000, max_buffer=1 << 30))
    events = assembler.feed(Segment(0.0, "10.0.0.1", 1000, "10.1.0.1", 80, 100, 0, SYN))
    delivered = 0
    for k in range(20):
        # Bytes from offset 1000 on, the first 1000 never captured.
        events = assembler.feed(
            Segment(1.0 + k, "10.0.0.1", 1000, "10.1.0.1", 80, 1101 + k * 1000, 0, ACK, b"x" * 1000)
        )
        delivered += sum(len(e.data) for e in events if isinstance(e, Data))
        assert assembler.buffered <= 10_000
    assert delivered >= 10_000
    assert assembler.released >= 1
