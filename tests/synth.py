"""Hand-made traffic for tests: whole captures built with struct, and crafted segments.

* :func:`pcap`: many short HTTP-like connections one after the other (or several at a
  time), each with handshake, a request, a response and a FIN close, for streaming and
  benchmark runs. Checksums are left zero: nothing in pcapflows checks them, as tshark
  by default does not either.
* :class:`Talk`: the segments of one connection, written turn by turn, with each side's
  next sequence number tracked so that a test states only what it changes (a damaged
  sequence number, a retransmission, a late RST).
* :func:`capture_segments`: a real capture decoded into segments by pcapflows' own reader
  and decoder, for properties that feed real traffic to :func:`pcapflows.reassemble`.
* :func:`first_copies`: the ground truth those properties compare against, computed from
  the segments alone with 32-bit sequence arithmetic (nothing from pcapflows).
"""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Iterable

from tcptable import seg

from pcapflows.decode.decoder import Decoder
from pcapflows.decode.segment import SYN, Segment
from pcapflows.io.reader import CaptureReader
from pcapflows.stats import ReadStats

ETH = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00"


def frame(
    src: int, dst: int, sport: int, dport: int, seq: int, ack: int, flags: int, payload: bytes = b""
) -> bytes:
    tcp = (
        struct.pack(
            ">HHIIBBHHH",
            sport,
            dport,
            seq & 0xFFFFFFFF,
            ack & 0xFFFFFFFF,
            5 << 4,
            flags,
            65535,
            0,
            0,
        )
        + payload
    )
    ip = struct.pack(">BBHHHBBHII", 0x45, 0, 20 + len(tcp), 0, 0x4000, 64, 6, 0, src, dst)
    return ETH + ip + tcp


def connection(i: int, t: float) -> list[tuple[float, bytes]]:
    c, s = 0x0A000000 + (i % 50000) + 1, 0x0A640001
    sport = 1024 + i % 60000
    cs, ss = 1000 + i, 900000 + i
    req = b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % i
    resp = b"HTTP/1.1 200 OK\r\nContent-Length: 64\r\n\r\n" + b"x" * 64
    S, A, F, P = 2, 16, 1, 8
    pk = [
        frame(c, s, sport, 80, cs, 0, S),
        frame(s, c, 80, sport, ss, cs + 1, S | A),
        frame(c, s, sport, 80, cs + 1, ss + 1, A),
        frame(c, s, sport, 80, cs + 1, ss + 1, P | A, req),
        frame(s, c, 80, sport, ss + 1, cs + 1 + len(req), P | A, resp),
        frame(c, s, sport, 80, cs + 1 + len(req), ss + 1 + len(resp), F | A),
        frame(s, c, 80, sport, ss + 1 + len(resp), cs + 2 + len(req), F | A),
        frame(c, s, sport, 80, cs + 2 + len(req), ss + 2 + len(resp), A),
    ]
    return [(t + k * 0.001, f) for k, f in enumerate(pk)]


def pcap(connections: int, spacing: float = 0.01) -> bytes:
    """A pcap with ``connections`` connections starting ``spacing`` seconds apart."""
    out = io.BytesIO()
    out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    pkts: list[tuple[float, bytes]] = []
    for i in range(connections):
        pkts += connection(i, 1_700_000_000 + i * spacing)
    pkts.sort(key=lambda p: p[0])
    for ts, f in pkts:
        sec = int(ts)
        usec = round((ts - sec) * 1e6)
        out.write(struct.pack("<IIII", sec, usec, len(f), len(f)))
        out.write(f)
    return out.getvalue()


# -- crafted segments -------------------------------------------------------------------

Endpoint = tuple[str, int]
#: (sender, receiver): one direction of one 4-tuple.
Direction = tuple[Endpoint, Endpoint]


class Talk:
    """The segments of one hand-made connection between ``client`` and ``server``.

    ``nxt[who]`` is the next sequence number ``who`` ("c" or "s") would send; only
    :meth:`send` moves it (past the data, the SYN and the FIN), so a test writes the
    ordinary exchange with :meth:`send` and anything unusual (a retransmission, a damaged
    number, a probe) with :meth:`packet` and explicit numbers.
    """

    def __init__(
        self,
        client: Endpoint = ("10.0.0.1", 40000),
        server: Endpoint = ("10.0.0.2", 80),
        isn_c: int = 1000,
        isn_s: int = 5000,
        window: int = 65535,
    ) -> None:
        self.ends = {"c": client, "s": server}
        self.isn = {"c": isn_c & 0xFFFFFFFF, "s": isn_s & 0xFFFFFFFF}
        self.nxt = dict(self.isn)
        self.window = window

    @staticmethod
    def peer(who: str) -> str:
        return "s" if who == "c" else "c"

    def packet(
        self,
        t: float,
        who: str,
        fl: str = "A",
        data: bytes = b"",
        *,
        seq: int | None = None,
        ack: int | None = None,
        window: int | None = None,
    ) -> Segment:
        """One segment from ``who``; ``seq`` defaults to its next sequence number and
        ``ack`` (when the flags have ACK) to the peer's. Moves nothing."""
        src, dst = self.ends[who], self.ends[self.peer(who)]
        if seq is None:
            seq = self.nxt[who]
        if ack is None:
            ack = self.nxt[self.peer(who)] if "A" in fl else 0
        window = self.window if window is None else window
        return seg(t, "c", seq, ack, fl, data, window=window, client=src, server=dst)

    def send(self, t: float, who: str, fl: str = "PA", data: bytes = b"") -> Segment:
        """The next segment of ``who``'s stream: its sequence number then moves past the
        data, and past the SYN and the FIN, which take one number each."""
        s = self.packet(t, who, fl, data)
        self.nxt[who] = (self.nxt[who] + len(data) + ("S" in fl) + ("F" in fl)) & 0xFFFFFFFF
        return s

    def handshake(self, t: float, step: float = 0.001) -> list[Segment]:
        """SYN, SYN-ACK and ACK at ``t``, ``t + step``, ``t + 2 * step``."""
        return [
            self.send(t, "c", "S"),
            self.send(t + step, "s", "SA"),
            self.send(t + 2 * step, "c", "A"),
        ]

    def direction(self, who: str) -> Direction:
        """The (sender, receiver) pair of ``who``'s segments."""
        return (self.ends[who], self.ends[self.peer(who)])


def capture_segments(path: str | os.PathLike[str]) -> list[Segment]:
    """The TCP segments of a capture, in capture order, as pcapflows' reader and decoder
    produce them (what :func:`pcapflows.read` feeds its assembler)."""
    stats = ReadStats()
    reader = CaptureReader(path, stats)
    decoder = Decoder(stats)
    out: list[Segment] = []
    try:
        for pkt in reader:
            out.extend(decoder.decode_all(pkt))
        decoder.finish()
    finally:
        reader.close()
    return out


def direction_of(seg: Segment) -> Direction:
    return ((seg.src, seg.sport), (seg.dst, seg.dport))


def payload_seq(seg: Segment) -> int:
    """Raw sequence number of the segment's first payload byte (a SYN takes one)."""
    return (seg.seq + (1 if seg.flags & SYN else 0)) & 0xFFFFFFFF


def first_copies(segments: Iterable[Segment]) -> dict[Direction, dict[int, int]]:
    """Per direction, every raw sequence number a captured payload byte covers, mapped to
    the first captured copy of that byte (capture order, 32-bit wrap-around)."""
    out: dict[Direction, dict[int, int]] = {}
    for s in segments:
        if not s.payload:
            continue
        table = out.setdefault(direction_of(s), {})
        base = payload_seq(s)
        for i, byte in enumerate(s.payload):
            table.setdefault((base + i) & 0xFFFFFFFF, byte)
    return out
