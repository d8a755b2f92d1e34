"""Resource limits on hostile captures: memory stays under the limits, and every limit
that cuts in shows up in the flows and the statistics (nothing is dropped silently).

The captures are built here with struct (tests/synth.py's frame builder), so the bytes
each connection sent are known independently of pcapflows. Peak memory is measured with
tracemalloc (Python allocations: what pcapflows holds), never with timings.
"""

from __future__ import annotations

import io
import struct
import tracemalloc

from synth import frame

import pcapflows
from pcapflows.assembler import Assembler
from pcapflows.reassembly import Data
from pcapflows.segment import ACK, PSH, SYN, Segment

MiB = 1024 * 1024
SERVER = 0x0A640001


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


def peak_of(data: bytes, **options: object) -> tuple[list[Seen], int, pcapflows.ReadStats]:
    """Read ``data``; return a summary of each flow, the peak of Python allocations
    during the read (flows are let go as they come, as a streaming user would), and
    the statistics."""
    tracemalloc.start()
    try:
        reader = pcapflows.read(io.BytesIO(data), warn=False, **options)  # type: ignore[arg-type]
        seen = [Seen(f) for f in reader]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return seen, peak, reader.stats


def test_connections_left_open_are_bounded_and_closed_early_with_a_reason() -> None:
    n, limit = 3000, 200
    packets = []
    for i in range(n):
        packets += opened(i, 1_700_000_000 + i * 0.01, b"request %d" % i)
    data = write_pcap(packets)
    flows, small_peak, stats = peak_of(data, max_connections=limit)
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
    # Memory follows the limit: the same file without it holds all 3000 at once.
    _, big_peak, _ = peak_of(data)
    assert small_peak * 4 < big_peak


def test_table_never_exceeds_max_connections() -> None:
    assembler = Assembler(max_connections=50)
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


def test_huge_holes_in_many_connections_stay_under_the_total_buffer_limit() -> None:
    # Each connection holds a little less than half the total limit (a piece held
    # costs its bytes plus a fixed overhead), so that the last ones still fit.
    conns, size = 12, 2 * MiB - 64 * 1024
    packets = []
    for i in range(conns):
        packets += above_a_hole(i, 1_700_000_000 + i, size)
    data = write_pcap(packets)
    total = 4 * MiB
    flows, peak, stats = peak_of(data, max_total_buffer=total, max_buffer=3 * MiB)
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
    # The file itself is ~25 MiB in memory here (BytesIO); what reading adds on top of
    # it must stay near the limit, not near the 24 MiB held above holes in all.
    assert peak - len(data) < total + 3 * MiB, peak - len(data)


def test_one_direction_over_max_buffer_is_flushed_with_a_limit_gap() -> None:
    packets = above_a_hole(0, 1_700_000_000, 3 * MiB)
    flows, _, _ = peak_of(write_pcap(packets), max_buffer=1 * MiB)
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
    assembler = Assembler(max_total_buffer=10_000, max_buffer=1 << 30)
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
