"""The decoded TCP segment: the only input the sans-IO reassembler understands.

Kept free of any parsing library so that the reassembler can be fed by anything: the
pcap pipeline, scapy packets, or a hand-written table in a test.
"""

from __future__ import annotations

from dataclasses import dataclass

FIN = 0x01
SYN = 0x02
RST = 0x04
PSH = 0x08
ACK = 0x10
URG = 0x20
ECE = 0x40
CWR = 0x80


@dataclass(slots=True)
class Segment:
    """One TCP segment as captured.

    ``payload`` is the payload bytes that were captured. ``missing`` is how many further
    payload bytes were on the wire but not in the capture (snap length), so the segment
    covers ``len(payload) + missing`` sequence numbers of data. Addresses are text
    (IPv6 compressed); ``seq`` and ``ack`` are the raw 32-bit header values. ``frame`` is
    the 1-based record number in the capture, for reports.
    """

    timestamp: float
    src: str
    sport: int
    dst: str
    dport: int
    seq: int
    ack: int
    flags: int
    payload: bytes = b""
    window: int = 0
    missing: int = 0
    frame: int = 0
