"""Nothing is lost without a count (issue 9, item 7), on every capture we have.

Every payload byte of every decoded TCP segment ends in exactly one bucket of
``reader.stats.payload``. The bytes captured are counted here independently, by running
the capture reader and decoder alone; the bytes delivered are checked against the flows
themselves.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tcptable import CAPTURES, corpus_params

import pcapflows
from pcapflows.decode.decoder import Decoder
from pcapflows.io.reader import CaptureReader
from pcapflows.stats import PAYLOAD_BUCKETS, ReadStats

OURS = sorted(p for p in CAPTURES.iterdir() if ".pcap" in p.name)


def captured_payload(path: Path) -> int:
    """Payload bytes of every TCP segment the decoder yields, without the reassembler."""
    stats = ReadStats()
    decoder = Decoder(stats)
    total = 0
    for pkt in CaptureReader(path, stats):
        total += sum(len(seg.payload) for seg in decoder.decode_all(pkt))
    decoder.finish()
    return total


@pytest.mark.parametrize("path", [*corpus_params(), *OURS], ids=str)
def test_every_payload_byte_is_in_exactly_one_bucket(path: Path | None) -> None:
    assert path is not None
    try:
        reader = pcapflows.read(path, warn=False)
    except pcapflows.CaptureError as exc:
        # Formats pcapflows does not read (snoop, zstd) are refused at once, whole.
        assert "not a pcap or pcapng capture" in str(exc)
        return
    flows = list(reader)
    pay = reader.stats.payload
    assert pay["captured"] == captured_payload(path)
    assert sum(pay[k] for k in PAYLOAD_BUCKETS) == pay["captured"], dict(pay)
    assert set(pay) <= {"captured", *PAYLOAD_BUCKETS}
    delivered = sum(sum(f.metadata["pcapflows"]["bytes"].values()) for f in flows)
    assert pay["delivered"] == delivered
    shown = sum(len(m.content) for f in flows for m in f.messages)
    assert shown == delivered
