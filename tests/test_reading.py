"""What a read can be given and how it ends: no exception escapes after the header.

The captures are built here with struct (``synth``), so what each flow must hold comes
from the bytes written, not from pcapflows.
"""

from __future__ import annotations

import array
import gzip
import io
import struct
import warnings
from pathlib import Path

import pytest
from synth import connection, pcap

import pcapflows
from pcapflows.io.reader import CaptureReader
from pcapflows.io.stream import BLOCK
from pcapflows.stats import ReadStats

#: synth's connections: the response every one of them sends.
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 64\r\n\r\n" + b"x" * 64


def request(i: int) -> bytes:
    return b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % i


def expected_contents(n: int) -> dict[int, list[bytes]]:
    """Client port -> message contents, for ``synth.pcap(n)``."""
    return {1024 + i: [request(i), RESPONSE] for i in range(n)}


def contents(flows: list[pcapflows.TCPFlow]) -> dict[int, list[bytes]]:
    return {f.client_conn.peername[1]: [m.content for m in f.messages] for f in flows}


def records(data: bytes) -> list[tuple[int, int, bytes]]:
    """(end offset, client port, frame) of each record of a little-endian pcap."""
    out = []
    pos = 24
    while pos + 16 <= len(data):
        incl = struct.unpack_from("<I", data, pos + 8)[0]
        frame = data[pos + 16 : pos + 16 + incl]
        pos += 16 + incl
        sport, dport = struct.unpack_from(">HH", frame, 14 + 20)
        out.append((pos, sport if dport == 80 else dport, frame))
    return out


# -- close() ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Large enough (2.5 MB) that one flow comes out long before the file is read."""
    path = tmp_path_factory.mktemp("reading") / "big.pcap"
    path.write_bytes(pcap(3000, spacing=1.0))
    return path


def test_close_ends_iteration_of_a_path(big_file: Path) -> None:
    reader = pcapflows.read(big_file)
    first = next(reader)
    assert first.messages[0].content == request(0)
    reader.close()
    with pytest.raises(StopIteration):
        next(reader)
    assert list(reader) == []
    reader.close()  # twice is harmless
    assert list(reader) == []


@pytest.mark.parametrize("kind", ["file object", "bytes"])
def test_close_ends_iteration_of_a_file_object_or_bytes(big_file: Path, kind: str) -> None:
    data = big_file.read_bytes()
    f = io.BytesIO(data)
    reader = pcapflows.read(f if kind == "file object" else data)
    next(reader)
    reader.close()
    assert list(reader) == []
    if kind == "file object":
        assert not f.closed  # the caller's file stays theirs


def test_with_block_closes_and_iteration_ends(big_file: Path) -> None:
    with pcapflows.read(big_file) as reader:
        next(reader)
    assert list(reader) == []


# -- the caller closing their own file mid-read ----------------------------------------


@pytest.mark.parametrize("compressed", [False, True])
def test_caller_closing_the_file_mid_read_keeps_the_flows_read(compressed: bool) -> None:
    """The file object is closed after the first flow: reading stops at the end of what
    the reader had taken from it (it reads ahead a block at a time), counted, and every
    connection whose packets had been read still comes out, with what had been read of
    it (those not finished marked open at the end), exactly as if the file had been cut
    there."""
    # A connection every 0.7 s, each 7 ms long: with a 5 s linger the first flow comes
    # out when a later connection's first packets have been read. The file is larger
    # than the reader's block, so the first flow comes out before the file was all read.
    n = 600
    data = pcap(n, spacing=0.7)
    assert len(data) > 1.5 * BLOCK
    f = io.BytesIO(gzip.compress(data) if compressed else data)
    reader = pcapflows.read(f)
    flows = [next(reader)]
    consumed = f.tell()  # BytesIO has no read-ahead of its own: what the reader took
    f.close()
    with pytest.warns(pcapflows.PcapflowsWarning, match="input closed during read"):
        flows += list(reader)
    anomalies = dict(reader.stats.anomalies)
    # A record cut by the end of what was taken is counted like one cut by the end of
    # a file; no other damage is.
    cut_records = anomalies.pop("truncated record", 0)
    assert anomalies == {"input closed during read": 1}
    got = contents(flows)
    assert len(got) == len(flows)  # one flow per connection
    assert 1 < len(got) < n
    want = expected_contents(n)
    ended = {f.client_conn.peername[1]: f.metadata["pcapflows"]["closed_by"] for f in flows}
    if compressed:
        # What went through gzip is not visible from outside: check what was read is
        # a prefix of what was sent.
        assert cut_records <= 1
        for port, messages in got.items():
            assert want[port][: len(messages)] == messages
        assert ended[flows[0].client_conn.peername[1]] == "fin"
        return
    frames: dict[int, int] = {}
    ends = {24}
    for end, port, _ in records(data):
        ends.add(end)
        if end <= consumed:
            frames[port] = frames.get(port, 0) + 1
    assert cut_records == (0 if consumed in ends else 1)
    assert set(got) == set(frames)
    assert any(n < 8 for n in frames.values())  # the cut is inside a connection
    for port, k in frames.items():
        # synth's frames: SYN, SYN-ACK, ACK, request, response, FIN, FIN, ACK.
        assert got[port] == want[port][: max(0, min(k, 5) - 3)], port
        assert ended[port] == ("fin" if k >= 7 else "end"), port


def test_file_closed_before_the_read_is_a_capture_error() -> None:
    f = io.BytesIO(pcap(1))
    f.close()
    with pytest.raises(pcapflows.CaptureError, match="closed"):
        pcapflows.read(f)


# -- text mode --------------------------------------------------------------------------


def test_text_mode_file_is_a_capture_error(tmp_path: Path) -> None:
    path = tmp_path / "c.pcap"
    path.write_bytes(pcap(2))
    with (
        open(path, encoding="utf-8") as f,
        pytest.raises(pcapflows.CaptureError, match=r"text mode.*binary"),
    ):
        pcapflows.read(f)
    with pytest.raises(pcapflows.CaptureError, match=r"text mode.*binary"):
        pcapflows.read(io.StringIO("\ufffd\u00b2\u00c3\u00d4"))


def test_text_stream_that_is_not_textiobase_is_a_capture_error(tmp_path: Path) -> None:
    """codecs' readers decode on read() without being io.TextIOBase."""
    import codecs

    path = tmp_path / "c.pcap"
    path.write_bytes(pcap(2))
    with open(path, "rb") as raw:
        text = codecs.getreader("utf-8")(raw)
        with pytest.raises(pcapflows.CaptureError, match=r"text mode.*binary"):
            pcapflows.read(text)  # type: ignore[arg-type]


def test_wrong_source_type_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="path, a binary file object or bytes"):
        pcapflows.read(42)  # type: ignore[arg-type]


# -- captures in memory -----------------------------------------------------------------


def _as(kind: str, data: bytes) -> bytes | bytearray | memoryview:
    if kind == "bytes":
        return data
    if kind == "bytearray":
        return bytearray(data)
    if kind == "memoryview slice":
        return memoryview(b"junk" + data + b"tail")[4:-4]
    if kind == "non-contiguous memoryview":
        doubled = bytes(b for c in data for b in (c, 0))
        return memoryview(doubled)[::2]
    assert kind == "memoryview of int array"
    pad = data + b"\0" * (-len(data) % 4)
    return memoryview(array.array("I", pad))


@pytest.mark.parametrize(
    "kind",
    [
        "bytes",
        "bytearray",
        "memoryview slice",
        "non-contiguous memoryview",
        "memoryview of int array",
    ],
)
@pytest.mark.parametrize("compressed", [False, True])
def test_capture_in_memory(kind: str, compressed: bool) -> None:
    data = pcap(20, spacing=0.5)
    if compressed:
        data = gzip.compress(data)
    reader = pcapflows.read(_as(kind, data), warn=False)
    flows = list(reader)
    assert contents(flows) == expected_contents(20)
    # Padding of the int array: at most 3 zero bytes after the last record.
    assert reader.stats.anomalies.total() <= (1 if kind == "memoryview of int array" else 0)
    assert reader.stats.packets == 20 * 8


def test_bytearray_is_released_after_the_read() -> None:
    """The reader holds a view of a bytearray (no copy) only while reading."""
    buf = bytearray(pcap(3))
    assert len(list(pcapflows.read(buf))) == 3
    buf += b"more"  # BufferError if a view were still exported


def test_bytes_that_look_like_a_file_name() -> None:
    with pytest.raises(pcapflows.CaptureError, match=r"capture itself.*str or Path"):
        pcapflows.read(b"/tmp/capture.pcap")


# -- timestamps out of range ------------------------------------------------------------


def _pcap_with_fractions(units: int, bad: dict[int, int]) -> bytes:
    """One synth connection with the sub-second field of frames ``bad`` replaced."""
    magic = 0xA1B2C3D4 if units == 10**6 else 0xA1B23C4D
    out = bytearray(struct.pack("<IHHiIII", magic, 2, 4, 0, 0, 65535, 1))
    for k, (ts, f) in enumerate(connection(0, 1_700_000_000)):
        frac = bad.get(k, round((ts % 1) * units))
        out += struct.pack("<IIII", int(ts), frac, len(f), len(f)) + f
    return bytes(out)


@pytest.mark.parametrize("units", [10**6, 10**9])
def test_timestamp_fraction_out_of_range_is_counted_and_the_record_used(
    units: int, tmp_path: Path
) -> None:
    """Frames 4 and 5 (request and response) have a sub-second field of one second and
    of 2^32 - 1. tshark keeps both records (it flags the arrival time as invalid) and
    follows their payload; so does pcapflows, timing them by their seconds only."""
    data = _pcap_with_fractions(units, {3: units, 4: 0xFFFFFFFF})
    reader = pcapflows.read(io.BytesIO(data), warn=False)
    (flow,) = list(reader)
    assert reader.stats.anomalies == {"timestamp fraction out of range": 2}
    assert [m.content for m in flow.messages] == [request(0), RESPONSE]
    assert [m.timestamp for m in flow.messages] == [1_700_000_000.0, 1_700_000_000.0]
    assert flow.metadata["pcapflows"]["closed_by"] == "fin"

    from conformance import run_tshark

    path = tmp_path / "frac.pcap"
    path.write_bytes(data)
    (stream,) = run_tshark(path, guess=1).streams.values()
    assert stream.sent == [request(0), RESPONSE]


def _pcapng_with_tsresol(tsresol: int, ticks: int) -> bytes:
    def block(btype: int, body: bytes) -> bytes:
        body += b"\0" * (-len(body) % 4)
        return struct.pack("<II", btype, len(body) + 12) + body + struct.pack("<I", len(body) + 12)

    out = bytearray(block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)))
    option = struct.pack("<HHB3x", 9, 1, tsresol) + struct.pack("<HH", 0, 0)
    out += block(1, struct.pack("<HHI", 1, 0, 0) + option)
    for _, f in connection(0, 0)[:1]:
        epb = struct.pack("<IIIII", 0, ticks >> 32, ticks & 0xFFFFFFFF, len(f), len(f))
        out += block(6, epb + f)
    return bytes(out)


@pytest.mark.parametrize(
    ("tsresol", "ticks", "when"),
    [
        (6, 1_700_000_000_250_000, 1_700_000_000.25),
        (19, 17 * 10**18, 1.7),  # 10^19 per second still fits a 64-bit count
        (0x80 | 63, 3 << 62, 1.5),  # as does 2^63
    ],
)
def test_pcapng_timestamp_resolution(tsresol: int, ticks: int, when: float) -> None:
    stats = ReadStats()
    (pkt,) = list(CaptureReader(io.BytesIO(_pcapng_with_tsresol(tsresol, ticks)), stats))
    assert pkt.timestamp == pytest.approx(when, abs=1e-6)
    assert not stats.anomalies


@pytest.mark.parametrize("tsresol", [20, 127, 0x80 | 64, 0xFF])
def test_pcapng_timestamp_resolution_out_of_range_is_counted(tsresol: int) -> None:
    """A pcapng timestamp is one 64-bit count: no sub-second field to be out of range,
    but the unit can be. tshark keeps such an interface's packets with time 0."""
    stats = ReadStats()
    data = _pcapng_with_tsresol(tsresol, 1_700_000_000_000_000)
    (pkt,) = list(CaptureReader(io.BytesIO(data), stats))
    assert pkt.timestamp == 0.0
    assert stats.anomalies == {"bad timestamp resolution": 1}


def test_nothing_escapes_with_warnings_as_errors(big_file: Path) -> None:
    """Closing a reader mid-way never warns (it is not damage)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reader = pcapflows.read(big_file)
        next(reader)
        reader.close()
        assert list(reader) == []
