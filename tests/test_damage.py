"""Bad input gets a clear error or is skipped and counted; it never breaks a read.

Captures are written here by hand with struct, so the expectations (how many records,
which ones are whole) come from the bytes we wrote, not from pcapflows.
"""

from __future__ import annotations

import gzip
import io
import struct
import tracemalloc
import warnings
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from synth import connection, frame

import pcapflows
from pcapflows.decode.decoder import Decoder
from pcapflows.io.packet import Packet
from pcapflows.io.reader import CaptureReader
from pcapflows.stats import ReadStats

PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)


def pcap_records(n_conns: int = 3) -> tuple[bytes, list[int]]:
    """A pcap and the byte offset at which each record ends."""
    out = bytearray(PCAP_HEADER)
    ends = []
    for i in range(n_conns):
        for ts, f in connection(i, 1_700_000_000 + i):
            out += struct.pack("<IIII", int(ts), round((ts % 1) * 1e6), len(f), len(f)) + f
            ends.append(len(out))
    return bytes(out), ends


def pcapng_blocks() -> tuple[bytes, list[int]]:
    def block(btype: int, body: bytes) -> bytes:
        body += b"\0" * (-len(body) % 4)
        return struct.pack("<II", btype, len(body) + 12) + body + struct.pack("<I", len(body) + 12)

    out = bytearray(block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)))
    out += block(1, struct.pack("<HHI", 1, 0, 0))
    ends = []
    for ts, f in connection(0, 1_700_000_000):
        us = round(ts * 1e6)
        out += block(6, struct.pack("<IIIII", 0, us >> 32, us & 0xFFFFFFFF, len(f), len(f)) + f)
        ends.append(len(out))
    return bytes(out), ends


def read_all(data: bytes) -> tuple[list[Packet], ReadStats]:
    stats = ReadStats()
    return list(CaptureReader(io.BytesIO(data), stats)), stats


@pytest.mark.parametrize("make", [pcap_records, pcapng_blocks])
def test_cut_anywhere_yields_every_whole_record(make: object) -> None:
    data, ends = make()  # type: ignore[operator]
    first = ends[0] - (ends[1] - ends[0])  # where records start
    for cut in range(first, len(data) + 1):
        pkts, stats = read_all(data[:cut])
        whole = sum(1 for e in ends if e <= cut)
        assert len(pkts) == whole, cut
        at_boundary = cut in ends or cut == ends[0] - (ends[1] - ends[0])
        assert (sum(stats.anomalies.values()) == 0) == (at_boundary or cut == len(data)), cut


def test_truncated_file_still_gives_its_flows() -> None:
    data, ends = pcap_records(3)
    cut = ends[-3] + 7  # inside the 6th packet of the last connection
    with pytest.warns(pcapflows.PcapflowsWarning, match="truncated record"):
        reader = pcapflows.read(io.BytesIO(data[:cut]), order="first_packet")
        flows = list(reader)
    assert len(flows) == 3
    assert [f.metadata["pcapflows"]["closed_by"] for f in flows] == ["fin", "fin", "end"]
    assert reader.stats.anomalies["truncated record"] == 1


@pytest.mark.parametrize("claimed", [0xFFFFFFF0, 0x7FFFFFFF, 300_000])
def test_absurd_record_length_allocates_nothing(claimed: int) -> None:
    data, ends = pcap_records(1)
    bad = data[: ends[2]] + struct.pack("<IIII", 1, 0, claimed, claimed) + b"x" * 100
    tracemalloc.start()
    pkts, stats = read_all(bad)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(pkts) == 3
    assert stats.anomalies["absurd record length"] == 1
    assert peak < 2_000_000


def test_absurd_pcapng_block_length() -> None:
    data, ends = pcapng_blocks()
    bad = data[: ends[1]] + struct.pack("<II", 6, 0xFFFFFFF0) + b"\0" * 64
    pkts, stats = read_all(bad)
    assert len(pkts) == 2
    assert stats.anomalies["bad block length"] == 1


@pytest.mark.parametrize(
    ("content", "found"),
    [
        (b"", "empty file"),
        (b"snoop\0\0\0\0\0\0\2\0\0\0\4", "snoop"),
        (b"\x28\xb5\x2f\xfd" + b"\0" * 20, "zstd"),
        (b"<html><body>not a capture</body></html>\n", "text"),
        (b"\x00\x01\x02\x03\x04\x05\x06\x07" * 4, "unknown format"),
        (gzip.compress(b"just some text in a gzip file\n", mtime=0), "text"),
    ],
)
def test_not_a_capture(tmp_path: Path, content: bytes, found: str) -> None:
    path = tmp_path / "input.bin"
    path.write_bytes(content)
    with pytest.raises(pcapflows.CaptureError) as err:
        pcapflows.read(path)
    assert str(path) in str(err.value)
    assert found in str(err.value)


def test_missing_file_is_a_capture_error(tmp_path: Path) -> None:
    with pytest.raises(pcapflows.CaptureError, match="cannot open"):
        pcapflows.read(tmp_path / "nope.pcap")


def test_truncated_gzip_keeps_what_was_there() -> None:
    data, ends = pcap_records(2)
    packed = gzip.compress(data, mtime=0)
    pkts, stats = read_all(packed[: len(packed) * 2 // 3])
    assert 0 < len(pkts) < len(ends)
    assert sum(stats.anomalies.values()) >= 1


def test_every_prefix_of_every_frame_decodes_without_raising() -> None:
    frames = [f for _, f in connection(7, 1.0)]
    stats = ReadStats()
    dec = Decoder(stats)
    for linktype in (0, 1, 12, 101, 108, 113, 228, 229, 276, 9, 104, 239, 127, 105):
        for f in frames:
            for n in range(len(f) + 1):
                dec.decode(Packet(1.0, linktype, f[:n], len(f), 1))
                dec.decode(Packet(1.0, linktype, f[:n], n, 1))


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from([0, 1, 9, 12, 101, 104, 105, 108, 113, 127, 228, 229, 239, 276]),
    st.binary(max_size=200),
)
def test_random_frames_never_raise(linktype: int, data: bytes) -> None:
    dec = Decoder(ReadStats())
    dec.decode(Packet(0.0, linktype, data, len(data), 1))
    # And with an Ethernet/IPv4/TCP start, so the deeper layers are reached too.
    base = frame(1, 2, 3, 4, 5, 6, 0x18, b"payload")
    dec.decode(Packet(0.0, 1, base[:34] + data, len(base) + len(data), 2))


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_damaged_capture_bytes_never_raise_after_the_header(data: st.DataObject) -> None:
    raw, _ = pcap_records(1)
    body = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 8))):
        i = data.draw(st.integers(len(PCAP_HEADER), len(body) - 1))
        body[i] = data.draw(st.integers(0, 255))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for flow in pcapflows.read(io.BytesIO(bytes(body))):
            assert flow.metadata["pcapflows"]["stream"] >= 0


@pytest.mark.parametrize("garbage", [16, 17, 19, 100, 5000])
def test_reading_resumes_after_garbage_between_pcap_records(garbage: int) -> None:
    """Bytes that belong to no record (a writer bug, a disk error) make a record header
    absurd; the reader finds the next valid record and goes on, counting the damage."""
    data, ends = pcap_records(3)
    bad = data[: ends[10]] + b"\xff" * garbage + data[ends[10] :]
    pkts, stats = read_all(bad)
    clean, _ = read_all(data)
    assert [(p.timestamp, p.data) for p in pkts] == [(p.timestamp, p.data) for p in clean]
    assert stats.anomalies == {"absurd record length": 1}
    assert f"skipped {garbage} bytes" in stats.anomaly_details[0]


@pytest.mark.parametrize("garbage", [4, 8, 12, 13, 64])
def test_reading_resumes_after_garbage_between_pcapng_blocks(garbage: int) -> None:
    data, ends = pcapng_blocks()
    bad = data[: ends[3]] + b"\xff" * garbage + data[ends[3] :]
    pkts, stats = read_all(bad)
    clean, _ = read_all(data)
    assert [(p.timestamp, p.data) for p in pkts] == [(p.timestamp, p.data) for p in clean]
    assert stats.anomalies == {"bad block length": 1}
    assert f"skipped {garbage} bytes" in stats.anomaly_details[0]


def test_garbage_at_the_end_stops_reading_with_a_report() -> None:
    data, ends = pcap_records(1)
    pkts, stats = read_all(data + b"\xff" * 1000)
    assert len(pkts) == len(ends)
    assert stats.anomalies == {"absurd record length": 1}
    assert "reading stopped" in stats.anomaly_details[0]


@pytest.mark.corpus
def test_real_capture_damaged_mid_file_is_read_past_the_damage(tmp_path: Path) -> None:
    """The corpus's smtp-to-comma capture has 3 stray bytes after its 18th record:
    tshark stops there. pcapflows skips them and reads on; the result must be what
    tshark reassembles from the same file with those 3 bytes removed."""
    from conformance import run_tshark
    from tcptable import CORPUS

    name = "robustness/suricata__smtp-to-comma__10.7.29.101_49898-178.63.41.150_25.pcap"
    damaged = (CORPUS / name).read_bytes()
    reader = pcapflows.read(CORPUS / name, warn=False)
    (flow,) = list(reader)
    assert reader.stats.anomalies == {"absurd record length": 1}
    assert "after frame 18" in reader.stats.anomaly_details[0]
    assert "skipped 3 bytes" in reader.stats.anomaly_details[0]
    # Repair independently: walk the 18 good records, drop 3 bytes, check the rest.
    pos = 24
    for _ in range(18):
        (incl,) = struct.unpack_from("<I", damaged, pos + 8)
        pos += 16 + incl
    repaired = tmp_path / "repaired.pcap"
    repaired.write_bytes(damaged[:pos] + damaged[pos + 3 :])
    assert reader.stats.packets == sum(1 for _ in CaptureReader(str(repaired), ReadStats()))
    (stream,) = run_tshark(repaired, guess=1).streams.values()
    for from_client in (True, False):
        ours = b"".join(m.content for m in flow.messages if m.from_client == from_client)
        addr = flow.client_conn.peername if from_client else flow.server_conn.address
        assert addr is not None
        assert ours == stream.sent[stream.node((addr[0], addr[1]))]
    assert sum(len(m.content) for m in flow.messages) > 10_000


def test_resynchronizing_never_holds_a_claimed_block_in_memory() -> None:
    """Garbage that looks like the start of an Enhanced Packet Block claiming 60 MiB,
    followed by 6 MiB of real blocks: the scan does not read ahead to check the fake
    block's trailer (that would hold the 6 MiB), and finds the real blocks after it."""
    data, ends = pcapng_blocks()
    packets = data[ends[0] - (ends[1] - ends[0]) :]  # the EPBs after the headers
    head = data[: len(data) - len(packets)]
    copies = 6 * 1024 * 1024 // len(packets) + 1
    fake = b"\xff" * 4 + struct.pack("<II", 6, 60 * 1024 * 1024) + b"\xee" * 40
    bad = head + fake + packets * copies
    source = io.BytesIO(bad)
    stats = ReadStats()
    tracemalloc.start()
    count = sum(1 for _ in CaptureReader(source, stats))  # packets not kept
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count == len(ends) * copies
    assert stats.anomalies == {"bad block length": 1}
    assert peak < 4_000_000, peak


def test_resynchronizing_a_pcap_never_holds_a_claimed_record() -> None:
    """The same with classic pcap and a snap length of 0xFFFFFFFF: after an absurd
    header, a plausible one claiming 60 MiB is not believed."""
    data, ends = pcap_records(1)
    header = data[:24]
    header = header[:16] + struct.pack("<I", 0xFFFFFFFF) + header[20:]
    records = data[24:]
    copies = 6 * 1024 * 1024 // len(records) + 1
    sec = struct.unpack_from("<I", records)[0]
    fake = struct.pack("<IIII", sec, 0, 60 * 1024 * 1024, 60 * 1024 * 1024)
    bad = header + records + b"\xff" * 16 + fake + records * copies
    stats = ReadStats()
    tracemalloc.start()
    count = sum(1 for _ in CaptureReader(io.BytesIO(bad), stats))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count == len(ends) * (copies + 1)
    assert stats.anomalies["absurd record length"] == 1
    assert peak < 4_000_000, peak
