"""Records walked inside blocks: a record cut by a block's end reads like any other.

The reader takes the file a block at a time and walks the records inside each block.
These tests put record boundaries, damage and the end of the file at every offset
around a block's end, and feed the same bytes through file objects that return a few
bytes per read, so that every way a record can be split between reads is exercised.
The truth is the list of records each capture was built from, not pcapflows.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from pcapflows.io.packet import Packet
from pcapflows.io.reader import CaptureReader
from pcapflows.io.stream import BLOCK
from pcapflows.stats import ReadStats

#: (seconds, fraction, frame, original length) of one record.
Record = tuple[int, int, bytes, int]


def pcap_file(records: list[Record], endian: str = "<", nsec: bool = False) -> bytes:
    """A classic pcap (link type 1, snap length 65535) holding ``records``."""
    magic = 0xA1B23C4D if nsec else 0xA1B2C3D4
    out = [struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, 65535, 1)]
    for sec, frac, data, orig in records:
        out.append(struct.pack(endian + "IIII", sec, frac, len(data), orig) + data)
    return b"".join(out)


def pcapng_file(records: list[Record], endian: str = "<") -> bytes:
    """A pcapng of one section and one interface (link type 1, microseconds) holding
    ``records`` as Enhanced Packet Blocks (a fraction is in microseconds)."""

    def block(btype: int, body: bytes) -> bytes:
        body += b"\0" * (-len(body) % 4)
        n = len(body) + 12
        return struct.pack(endian + "II", btype, n) + body + struct.pack(endian + "I", n)

    out = [
        block(0x0A0D0D0A, struct.pack(endian + "IHHq", 0x1A2B3C4D, 1, 0, -1)),
        block(1, struct.pack(endian + "HHI", 1, 0, 65535)),
    ]
    for sec, frac, data, orig in records:
        ticks = sec * 1_000_000 + frac
        head = struct.pack(endian + "IIIII", 0, ticks >> 32, ticks & 0xFFFFFFFF, len(data), orig)
        out.append(block(6, head + data))
    return b"".join(out)


def make_records(sizes: list[int], start: int = 1_700_000_000) -> list[Record]:
    """Records with distinct contents (so a shifted or mixed-up frame shows) and
    distinct times."""
    out = []
    for i, n in enumerate(sizes):
        data = bytes((i * 7 + j) & 0xFF for j in range(n))
        out.append((start + i // 3, (i * 12345) % 1_000_000, data, n + (i % 3)))
    return out


def expected(records: list[Record], units: int = 1_000_000) -> list[tuple[float, bytes, int, int]]:
    return [
        (sec + frac / units, data, max(orig, len(data)), i + 1)
        for i, (sec, frac, data, orig) in enumerate(records)
    ]


def got(packets: list[Packet]) -> list[tuple[float, bytes, int, int]]:
    return [(p.timestamp, p.data, p.orig_len, p.index) for p in packets]


class Trickle(io.RawIOBase):
    """A file object that returns at most ``step`` bytes per read, like a slow pipe."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data = data
        self._pos = 0
        self._step = step

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        n = min(len(b), self._step, len(self._data) - self._pos)
        b[:n] = self._data[self._pos : self._pos + n]
        self._pos += n
        return n


def read_all(source: object) -> tuple[list[Packet], ReadStats]:
    stats = ReadStats()
    return list(CaptureReader(source, stats)), stats  # type: ignore[arg-type]


def boundary_records(shift: int) -> list[Record]:
    """Records of mixed sizes spanning a little more than one block, the first one
    ``shift`` bytes longer, so that the block's end falls ``shift`` bytes later in
    the record it cuts."""
    sizes = [60 + shift] + [1514, 60, 590, 66, 9000, 54, 1400] * (BLOCK // 12000 + 2)
    return make_records(sizes)


def sources(data: bytes, tmp_path: Path) -> Iterator[tuple[str, object]]:
    path = tmp_path / "c.pcap"
    path.write_bytes(data)
    yield "path", path
    yield "bytes", data
    yield "bytesio", io.BytesIO(data)
    yield "trickle", Trickle(data, 7)
    yield "buffered trickle", io.BufferedReader(Trickle(data, 1000))
    yield "gzip", io.BytesIO(gzip.compress(data, mtime=0))


# -- whole files ------------------------------------------------------------------------


@pytest.mark.parametrize("shift", [0, 1, 2, 7, 8, 15, 16, 17, 23, 24, 100, 1513, 1514])
@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_records_cut_by_a_block_end_read_whole(fmt: str, shift: int, tmp_path: Path) -> None:
    records = boundary_records(shift)
    data = pcap_file(records) if fmt == "pcap" else pcapng_file(records)
    assert len(data) > BLOCK
    want = expected(records)
    for kind, source in sources(data, tmp_path):
        packets, stats = read_all(source)
        assert got(packets) == want, kind
        assert not stats.anomalies, (kind, stats.anomaly_details)
        assert stats.packets == len(records)
        assert stats.bytes == sum(len(r[2]) for r in records)
        assert all(type(p.data) is bytes for p in packets)


@pytest.mark.parametrize("endian", ["<", ">"])
@pytest.mark.parametrize("nsec", [False, True])
def test_byte_order_and_resolution_across_blocks(endian: str, nsec: bool) -> None:
    records = boundary_records(5)
    if nsec:
        records = [(s, f * 1000 + 999, d, o) for s, f, d, o in records]
    packets, stats = read_all(pcap_file(records, endian, nsec))
    assert got(packets) == expected(records, 1_000_000_000 if nsec else 1_000_000)
    assert not stats.anomalies


def test_record_larger_than_a_block() -> None:
    """A record longer than a block (a 256 KiB snap length allows it) is put together
    from several reads."""
    records = make_records([100, BLOCK + 5000, 100, 3 * BLOCK, 60])
    data = pcap_file(records)
    data = data[:16] + struct.pack("<I", 4 * BLOCK) + data[20:]  # the snap length
    for source in (data, io.BytesIO(data), Trickle(data, 65536)):
        packets, stats = read_all(source)
        assert got(packets) == expected(records)
        assert not stats.anomalies


# -- the end of the data and damage, around a block's end -------------------------------


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_cut_at_every_offset_around_a_block_end(fmt: str) -> None:
    """Cut anywhere near the first block's end: every record wholly before the cut is
    read, the one cut is counted once as truncated, nothing else."""
    records = boundary_records(3)
    data = pcap_file(records) if fmt == "pcap" else pcapng_file(records)
    header = 24 if fmt == "pcap" else 28 + 20
    per = 16 if fmt == "pcap" else 32
    ends = []
    pos = header
    for _, _, frame, _ in records:
        pos += per + len(frame) + (0 if fmt == "pcap" else -len(frame) % 4)
        ends.append(pos)
    kind = "truncated record" if fmt == "pcap" else "truncated block"
    for cut in range(BLOCK - 40, BLOCK + 1600, 3):
        whole = sum(1 for e in ends if e <= cut)
        for source in (data[:cut], io.BytesIO(data[:cut])):
            packets, stats = read_all(source)
            assert got(packets) == expected(records)[:whole], cut
            assert stats.anomalies == ({} if cut in ends else {kind: 1}), cut


def test_absurd_length_across_a_block_end_is_skipped_to_the_next_record() -> None:
    """Three stray bytes before a record that straddles the block's end: the damage is
    found, the scan finds the next record, and everything after it is read."""
    records = boundary_records(0)
    data = pcap_file(records)
    pos = 24
    for _, _, frame, _ in records:
        if pos + 16 + len(frame) > BLOCK:
            break
        pos += 16 + len(frame)
    bad = data[:pos] + b"\xff\xff\xff" + data[pos:]
    for source in (bad, io.BytesIO(bad), Trickle(bad, 7)):
        packets, stats = read_all(source)
        assert stats.anomalies == {"absurd record length": 1}
        assert "skipped 3 bytes" in stats.anomaly_details[0]
        assert [p.data for p in packets] == [r[2] for r in records]
        assert [p.index for p in packets] == list(range(1, len(records) + 1))


def test_pcapng_timestamps_of_interleaved_interfaces() -> None:
    """Two interfaces with different resolutions and offsets, packets alternating
    between them, counts crossing a 2^32 boundary of the low timestamp word and
    seconds boundaries: each packet's time is its own interface's count divided by its
    own units (``if_tsresol``) plus its offset (``if_tsoffset``)."""

    def block(btype: int, body: bytes) -> bytes:
        body += b"\0" * (-len(body) % 4)
        return struct.pack("<II", btype, len(body) + 12) + body + struct.pack("<I", len(body) + 12)

    def idb(linktype: int, tsresol: int, offset: int) -> bytes:
        opts = struct.pack("<HHB3x", 9, 1, tsresol) + struct.pack("<HHq", 14, 8, offset)
        return block(1, struct.pack("<HHI", linktype, 0, 0) + opts + b"\0" * 4)

    ifaces = [(1, 6, 0, 10**6), (101, 9, 1_000_000, 10**9)]  # linktype, tsresol, offset, units
    out = [block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))]
    out += [idb(lt, r, off) for lt, r, off, _ in ifaces]
    want = []
    # Both counts start alike, so a packet of one interface can fall in the second
    # the last packet of the other fell in; now and then a count jumps by exactly
    # 2^32 (same low word, next high word).
    ticks = [(1 << 32) - 3000 * 997] * 2
    for i in range(6000):
        iid = i % 2 if i < 4000 else (i // 7) % 2
        lt, _, off, units = ifaces[iid]
        step = 997 if iid == 0 else 1_000_003
        t = ticks[iid] = ticks[iid] + (1 << 32 if i % 500 == 499 else step)
        data = bytes([i & 0xFF]) * (40 + i % 50)
        head = struct.pack("<IIIII", iid, t >> 32, t & 0xFFFFFFFF, len(data), len(data))
        out.append(block(6, head + data))
        want.append((t // units + off + (t % units) / units, lt, data, iid, i + 1))
    for source in (b"".join(out), Trickle(b"".join(out), 4099)):
        packets, stats = read_all(source)
        assert not stats.anomalies
        assert [(p.timestamp, p.linktype, p.data, p.interface, p.index) for p in packets] == want


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_every_packet_field_is_set(fmt: str) -> None:
    """The record loops build a Packet field by field: each field must be there, and
    a packet compares equal to one made with the constructor."""
    records = make_records([60, 1514])
    data = pcap_file(records) if fmt == "pcap" else pcapng_file(records)
    packets, _ = read_all(data)
    want = [Packet(t, 1, d, o, i) for t, d, o, i in expected(records)]
    assert packets == want
    for p in packets:
        assert {f.name for f in dataclasses.fields(Packet)} == {
            name for name in Packet.__slots__ if hasattr(p, name)
        }


class CountingReader(io.BufferedReader):
    """A buffered file (as ``open(path, "rb")`` gives) that counts the reads asked of it."""

    calls = 0

    def read(self, n: int | None = -1) -> bytes:
        self.calls += 1
        return super().read(n)

    def read1(self, n: int = -1) -> bytes:
        self.calls += 1
        return super().read1(n)


@pytest.mark.parametrize("make", [pcap_file, pcapng_file], ids=["pcap", "pcapng"])
def test_a_buffered_file_is_read_in_whole_blocks(tmp_path: Path, make: object) -> None:
    """Records straddle block ends all the time; reading the rest of one must not leave
    the file's own 8 KiB buffer half-used, or every later ``read1`` returns a few
    kilobytes instead of a block (it did: 20 times the reads, and slower)."""
    data = make([(1, i, bytes([i % 251]) * (700 + i % 600), 2000) for i in range(4000)])  # type: ignore[operator]
    path = tmp_path / "c"
    path.write_bytes(data)
    with CountingReader(io.FileIO(path, "rb")) as f:
        packets = list(CaptureReader(f, ReadStats()))
        assert len(packets) == 4000
        assert f.calls <= 3 * (len(data) // BLOCK + 1) + 4, (f.calls, len(data) // BLOCK)
