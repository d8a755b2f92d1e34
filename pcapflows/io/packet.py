"""One captured record, as the capture reader hands it to the decoder.

Kept in its own module so that readers (pcap, pcapng, scapy lists, anything later) and
the decoder agree on one small type without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Packet:
    """A link-layer frame with its capture metadata.

    ``timestamp`` is seconds since the epoch as recorded in the capture (``0.0`` is a
    legitimate value). ``data`` is the captured bytes, ``orig_len`` the length on the wire
    (larger than ``len(data)`` when the snap length cut the frame). ``index`` is the
    1-based record number, the same number Wireshark shows as the frame number.
    ``interface`` is the pcapng interface id (0 for classic pcap).

    The record loops in :mod:`~pcapflows.io.pcap` and :mod:`~pcapflows.io.pcapng` make
    one per frame with ``object.__new__`` and set every field themselves, skipping the
    generated ``__init__`` (a Python-level call that was the largest single cost of
    reading): a field added here must be set there too.
    """

    timestamp: float
    linktype: int
    data: bytes
    orig_len: int
    index: int
    interface: int = 0
