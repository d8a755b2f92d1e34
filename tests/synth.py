"""Fast synthetic captures built with struct, for streaming and benchmark runs.

Many short HTTP-like connections one after the other (or several at a time), each with
handshake, a request, a response and a FIN close. Checksums are left zero: nothing in
pcapflows checks them, as tshark by default does not either.
"""

from __future__ import annotations

import io
import struct

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
