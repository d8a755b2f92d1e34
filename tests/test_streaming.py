"""Reading is streaming: flows come out while the file is still being read, and the
connection table holds only the connections open at the time."""

from __future__ import annotations

import io

from synth import pcap

import pcapflows
from pcapflows.io.stream import BLOCK


class Tracking(io.BytesIO):
    """A file object that remembers how far it has been read."""

    high = 0

    def read(self, n: int | None = -1) -> bytes:
        data = super().read(n)
        self.high = max(self.high, self.tell())
        return data


def test_flows_come_out_before_the_end_of_the_file() -> None:
    n = 8000
    data = pcap(n, spacing=0.01)  # each connection lasts 7 ms: about one open at a time
    f = Tracking(data)
    reader = pcapflows.read(f)
    open_max = timers_max = 0
    positions = []
    for flow in reader:
        positions.append(f.high)
        open_max = max(open_max, reader._assembler.open_connections)
        timers_max = max(timers_max, len(reader._assembler._timers))
        assert flow.metadata["pcapflows"]["closed_by"] == "fin"
    assert len(positions) == n
    # A closed connection lingers 5 s of capture time (500 connections here) before it
    # is yielded: flow k comes out once the reader has passed connection k + 500 (plus
    # a margin), the reader being at most one block (read at once) ahead of that.
    per_connection = len(data) / n
    for k in (0, n // 4, n // 2, n - 600):
        assert positions[k] < (k + 600) * per_connection + BLOCK, k
    assert BLOCK < len(data) / 16  # the allowance is small next to the file
    assert positions == sorted(positions)
    # Lingering (5 s of capture time = 500 connections here) bounds the table.
    assert open_max <= 520
    # Timers of finished connections do not pile up either.
    assert timers_max <= 2 * 520 + 64 + 2


def test_first_packet_order_gives_the_same_flows() -> None:
    data = pcap(300, spacing=0.001)  # overlapping connections
    a = list(pcapflows.read(io.BytesIO(data)))
    b = list(pcapflows.read(io.BytesIO(data), order="first_packet"))
    assert sorted(f.id for f in a) == [f.id for f in sorted(b, key=lambda f: f.id)]
    assert [f.metadata["pcapflows"]["stream"] for f in b] == list(range(300))
    assert {f.id: [m.content for m in f.messages] for f in a} == {
        f.id: [m.content for m in f.messages] for f in b
    }
