#!/usr/bin/env python3
"""Deterministic generator of realistic HTTP-over-TCP captures, with their ground truth.

    python bench/gencap.py --preset small -o /tmp/small          # /tmp/small.pcap + .truth.json.gz
    python bench/gencap.py --preset large-x2 -o /tmp/l2   # doubled: 2x packets, same concurrency
    python bench/gencap.py --connections 500 --concurrency 50 --packets 40000 --seed 7 -o /tmp/c

Why not scapy: a benchmark capture has a million packets, and building them with scapy
would take longer than reading them. Frames are packed with :mod:`struct`, one seeded
:class:`random.Random` drives everything, so the same parameters always give the same
bytes (the benchmark caches captures on that promise).

What is on the wire, and why each thing is there (each one is a path a reassembler has to
get right, and each has a cost a benchmark should see):

- Ethernet + IPv4, and IPv6 for about a fifth of the clients (their own servers).
- A three-way handshake with the usual Linux options (MSS, SACK permitted, timestamps,
  window scale 7); every later segment carries the timestamp option, so a full segment
  is 1448 bytes over IPv4 (1428 over IPv6), as on a 1500-byte Ethernet.
- HTTP/1.1 keep-alive: several request/response exchanges per connection, requests of
  a few hundred bytes (some POSTs with bodies), responses with a heavy-tailed size (most
  small, some megabytes), bodies of compressible text or random bytes.
- Delayed ACKs: the receiver sends a pure ACK after every second full segment.
- About 1.5% of data segments swapped with the next one (reordering), about 1%
  retransmitted a few segments later, half of those re-packetised (split in two, or
  straddling two original segments: other boundaries, the same bytes).
- Some initial sequence numbers just below 2^32, so the streams wrap around.
- Every way to end: FIN from either side first (acknowledged both ways), RST from the
  client, RST from the server, and connections still open when the capture ends (a tenth
  of the last ``concurrency`` connections, and the first 1% of the first ones: idle
  long-lived connections, as many in a capture twice as long).
- Connections interleaved: ``concurrency`` of them are open at once, each packet comes
  from one of them chosen at random.

Only unambiguous traffic is generated, so the truth is the truth of any correct
reassembler: no byte is missing from the capture (a retransmission always repeats bytes
already captured, with the same content), no ACK acknowledges bytes not yet captured, no
packet follows a RST or the last ACK of a close, every connection has its own 4-tuple,
and the capture lasts far less than an idle timeout (an hour). Checksums are left zero
(no reassembler under test checks them); every length field is right.

The truth, written beside the capture (``NAME.truth.json.gz``), lists per connection:
client and server (address, port), the length and SHA-256 of each direction's byte
stream, the number of messages (maximal runs of one direction's bytes between the other
side's bytes: the reassembler's ``TCPMessage``), a digest of their directions and lengths
(``shape``), and how it ended (``fin``, ``rst_client``, ``rst_server``, ``open``); for the
whole capture: packets, bytes, stream bytes (``payload_bytes``) and the payload bytes sent
again (``retransmitted_bytes``: what a reassembler counts as duplicates).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import gzip
import hashlib
import ipaddress
import json
import math
import random
import struct
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: Bumped whenever the bytes for given parameters change (the benchmark's cache key).
GENERATOR_VERSION = 2

REORDER = 0.015
RETRANSMIT = 0.01
REPACKETISE = 0.5
IPV6_SHARE = 0.2
WRAP_SHARE = 0.1
#: Among the connections of the last "concurrency" window (those a capture would cut
#: off), the share left open; earlier ones always close, so that doubling a capture
#: keeps the number of connections waiting at the end the same.
OPEN_SHARE = 0.1
#: Among the connections of the first window, the share left open too (at least one):
#: long-lived connections that never close, the same number whatever the capture's
#: length. A reader that yields flows in first-packet order waits for them.
OPEN_EARLY_SHARE = 0.01
MEAN_GAP_US = 400

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
M32 = 0xFFFFFFFF

PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)
RECORD = struct.Struct("<IIII")
IP4 = struct.Struct("!BBHHHBBH4s4s")
IP6 = struct.Struct("!IHBB16s16s")
# TCP header with NOP, NOP, timestamps: 32 bytes.
TCP_TS = struct.Struct("!HHIIBBHHHBBBBII")
# SYN: MSS, SACK permitted, timestamps, NOP, window scale: 40 bytes.
TCP_SYN = struct.Struct("!HHIIBBHHHBBHBBBBIIBBBB")


@dataclasses.dataclass(frozen=True)
class Params:
    """What a capture is made of; equal parameters give byte-identical captures."""

    connections: int
    concurrency: int
    packets: int
    seed: int = 1

    def doubled(self) -> Params:
        """Twice the connections and packets at the same concurrency."""
        return dataclasses.replace(self, connections=2 * self.connections, packets=2 * self.packets)

    def key(self) -> str:
        """A file-name-safe identity, including the generator's version."""
        return (
            f"v{GENERATOR_VERSION}-c{self.connections}-k{self.concurrency}"
            f"-p{self.packets}-s{self.seed}"
        )


#: The captures of issue 10's table.
PRESETS: dict[str, Params] = {
    "small": Params(connections=1_000, concurrency=100, packets=100_000),
    "large": Params(connections=10_000, concurrency=100, packets=1_000_000),
    "wide": Params(connections=100_000, concurrency=100_000, packets=1_500_000),
}
QUICK_DIVISOR = 10


def preset(name: str, quick: bool = False) -> Params:
    """``small``, ``large``, ``wide``, each optionally ``-x2`` (doubled); ``quick`` is 1/10."""
    base, _, suffix = name.partition("-")
    if base not in PRESETS or suffix not in ("", "x2"):
        raise ValueError(f"unknown preset {name!r}: one of {', '.join(PRESETS)}, optionally -x2")
    p = PRESETS[base]
    if quick:
        conns = max(10, p.connections // QUICK_DIVISOR)
        p = Params(conns, min(p.concurrency, conns), max(100, p.packets // QUICK_DIVISOR), p.seed)
    return p.doubled() if suffix else p


# ---------------------------------------------------------------------------------------
# Payload


WORDS = (
    "the of and to in is that for it as with was on be by at this from are have an or "
    "not which but all were when we there can more if no will one about up out their "
    "data packet stream server client request response header body value error index "
    '<div> </div> <p> </p> <span class="item"> <a href="/page"> </a> <li> </li> '
    "function return var const let { } ( ) ; = == + - * / \n \n\n \t"
).split(" ")
AGENTS = (
    "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36",
    "curl/8.5.0",
    "python-requests/2.31.0",
)
TYPES = ("text/html; charset=utf-8", "application/json", "text/css", "application/javascript")
BINARY_TYPES = ("image/jpeg", "application/octet-stream", "video/mp4", "application/gzip")


def _text_corpus(rng: random.Random, size: int) -> bytes:
    """Compressible text (word salad with markup) that bodies are sliced from."""
    out: list[str] = []
    n = 0
    while n < size:
        w = rng.choice(WORDS)
        out.append(w)
        n += len(w) + 1
    return " ".join(out).encode()[:size]


def _response_size(rng: random.Random) -> int:
    """Heavy-tailed body size: most a few KB, a quarter tens of KB, a few megabytes."""
    u = rng.random()
    if u < 0.70:
        return int(rng.lognormvariate(math.log(1500), 1.0))
    if u < 0.95:
        return int(rng.lognormvariate(math.log(30_000), 1.2))
    return min(8_000_000, int(200_000 * rng.paretovariate(1.2)))


def _message_cost(segments: int) -> float:
    """Expected packets of a message of ``segments`` segments: the segments, a delayed
    ACK per two (half a one for an odd last), retransmissions (a split one is two)."""
    retransmitted = segments * RETRANSMIT * (1 + REPACKETISE / 2)
    return segments + segments // 2 + 0.5 * (segments % 2) + retransmitted


# ---------------------------------------------------------------------------------------
# Connections


class _Side:
    """One endpoint's sending state; offsets count its stream's bytes (0 = after SYN)."""

    __slots__ = (
        "addr",
        "contig",
        "eth",
        "hash",
        "ipid",
        "isn",
        "messages",
        "port",
        "sent",
        "sign",
        "ts",
    )

    def __init__(
        self, addr: bytes, port: int, eth: bytes, isn: int, ipid: int, ts: int, sign: int
    ) -> None:
        self.addr = addr
        self.port = port
        self.eth = eth
        self.isn = isn
        self.ipid = ipid
        self.ts = ts
        self.sent = 0  # bytes of the stream segmented so far
        self.contig = 0  # bytes of the stream captured contiguously from offset 0
        self.hash = hashlib.sha256()
        self.sign = sign  # +1 the client, -1 the server
        #: Lengths of the connection's messages, signed by direction (shared by both sides).
        self.messages: list[int] = []


class _Exchange:
    __slots__ = ("binary", "post", "req_len", "resp_len", "split_headers")

    def __init__(
        self, req_len: int, post: int, resp_len: int, binary: bool, split_headers: bool
    ) -> None:
        self.req_len = req_len
        self.post = post
        self.resp_len = resp_len
        self.binary = binary
        self.split_headers = split_headers


class Generator:
    """Writes one capture and collects its truth (see the module docstring)."""

    def __init__(self, params: Params) -> None:
        self.p = params
        self.rng = random.Random(params.seed)
        self.corpus = _text_corpus(self.rng, 1 << 18)
        self.truth: list[dict[str, Any]] = []
        self.planned = 0.0
        self.retransmitted = 0  # payload bytes sent again: a reassembler's duplicates
        self.n_planned = 0
        self.n_clients = max(20, min(20_000, params.connections // 20))
        self.client_ports = [32768 + self.rng.randrange(20_000) for _ in range(self.n_clients)]
        self.servers4 = [ipaddress.IPv4Address(f"192.0.2.{i + 10}").packed for i in range(20)]
        self.servers6 = [ipaddress.IPv6Address(f"2001:db8:ff::{i + 10:x}").packed for i in range(5)]

    # -- plans ------------------------------------------------------------------------

    def _budget(self) -> float:
        """Packets for the next connection planned: heavy-tailed, steered to the target.

        Connections are planned when their first packet is due, in no fixed order, so
        the steering counts the connections planned so far, not connection indices.
        """
        p = self.p
        mean = p.packets / p.connections
        left = p.connections - self.n_planned
        steer = (p.packets - self.planned) / (left * mean) if left else 1.0
        steer = min(4.0, max(0.25, steer))
        # Spread: wide when connections carry many packets; narrow when the mean is near
        # the smallest connection (handshake, one exchange, close: about 9 packets).
        sigma = 1.0 if mean > 40 else 0.5
        return mean * steer * self.rng.lognormvariate(-sigma * sigma / 2, sigma)

    def _plan(self, budget: float, close_cost: int, mss: int) -> tuple[list[_Exchange], float]:
        """Exchanges whose expected packet count fills ``budget``; returns them and it."""
        rng = self.rng
        left = budget - 3 - close_cost
        out: list[_Exchange] = []
        cost_total = 3.0 + close_cost
        while True:
            post = 0
            if rng.random() < 0.05:
                post = min(int(rng.lognormvariate(math.log(2000), 1.0)), 200_000)
            req = rng.randrange(250, 900) + post
            resp = _response_size(rng)
            split = rng.random() < 0.3
            req_cost = _message_cost(math.ceil(req / mss))
            room = left - req_cost
            if out and room < 3:
                break
            # The biggest body whose message still fits in what is left of the budget.
            fit = max(1, int(room / 1.51)) * mss - (mss if split else 300)
            resp = max(0, min(resp, fit))
            resp_segs = 1 + math.ceil(resp / mss) if split else math.ceil((resp + 260) / mss)
            cost = req_cost + _message_cost(resp_segs)
            out.append(_Exchange(req, post, resp, rng.random() < 0.4, split))
            left -= cost
            cost_total += cost
            if left < 3:
                break
        return out, cost_total

    def _connection(self, index: int) -> Iterator[bytes]:
        """The frames of connection ``index`` in order; records its truth when done."""
        rng = self.rng
        p = self.p
        client_no = rng.randrange(self.n_clients)
        v6 = client_no < self.n_clients * IPV6_SHARE
        port = self.client_ports[client_no]
        self.client_ports[client_no] = 32768 + (port - 32768 + 1) % 28000
        if v6:
            caddr = ipaddress.IPv6Address(f"2001:db8:1::{client_no + 1:x}").packed
            saddr = rng.choice(self.servers6)
            mss, etype = 1428, b"\x86\xdd"
        else:
            caddr = ipaddress.IPv4Address(0x0A000000 + client_no + 1).packed
            saddr = rng.choice(self.servers4)
            mss, etype = 1448, b"\x08\x00"
        sport = 80 if rng.random() < 0.8 else 8080
        cmac = b"\x02\x00" + caddr[-4:]
        smac = b"\x02\x01" + saddr[-4:]

        def isn() -> int:
            if rng.random() < WRAP_SHARE:
                return (1 << 32) - rng.randrange(1, 1 << (12 if rng.random() < 0.5 else 20))
            return rng.getrandbits(32)

        c = _Side(
            caddr, port, smac + cmac + etype, isn(), rng.getrandbits(16), rng.getrandbits(31), 1
        )
        s = _Side(
            saddr, sport, cmac + smac + etype, isn(), rng.getrandbits(16), rng.getrandbits(31), -1
        )
        s.messages = c.messages

        u = rng.random()
        last_window = index >= p.connections - p.concurrency
        early = max(1, int(p.concurrency * OPEN_EARLY_SHARE))
        if (last_window and u < OPEN_SHARE) or index < early:
            close, close_cost = "open", 0
        elif u < 0.85:
            close, close_cost = "fin", 3
        elif u < 0.93:
            close, close_cost = "rst_client", 1
        else:
            close, close_cost = "rst_server", 1
        plan, cost = self._plan(self._budget(), close_cost, mss)
        self.planned += cost
        self.n_planned += 1

        frame = self._frame
        yield frame(c, s, SYN, c.isn, 0, b"", syn=mss)
        yield frame(s, c, SYN | ACK, s.isn, c.isn + 1, b"", syn=mss)
        yield frame(c, s, ACK, c.isn + 1, s.isn + 1, b"")
        for ex in plan:
            yield from self._message(c, s, self._request(ex, s.port), mss)
            yield from self._message(s, c, self._response(ex), mss)
        if close == "fin":
            a, b = (c, s) if rng.random() < 0.5 else (s, c)
            yield frame(a, b, FIN | ACK, a.isn + 1 + a.sent, b.isn + 1 + b.contig, b"")
            yield frame(b, a, FIN | ACK, b.isn + 1 + b.sent, a.isn + 2 + a.contig, b"")
            yield frame(a, b, ACK, a.isn + 2 + a.sent, b.isn + 2 + b.contig, b"")
        elif close != "open":
            a, b = (c, s) if close == "rst_client" else (s, c)
            yield frame(a, b, RST | ACK, a.isn + 1 + a.sent, b.isn + 1 + b.contig, b"")
        shape = hashlib.sha256()
        for m in c.messages:
            shape.update(b"%d," % m)
        self.truth.append(
            {
                "client": [str(ipaddress.ip_address(caddr)), port],
                "server": [str(ipaddress.ip_address(saddr)), sport],
                "client_bytes": c.sent,
                "client_sha256": c.hash.hexdigest(),
                "server_bytes": s.sent,
                "server_sha256": s.hash.hexdigest(),
                "messages": len(c.messages),
                "shape": shape.hexdigest()[:16],
                "close": close,
            }
        )

    def _frame(
        self, snd: _Side, rcv: _Side, flags: int, seq: int, ack: int, payload: bytes, syn: int = 0
    ) -> bytes:
        """Ethernet + IP + TCP + payload; lengths right, checksums zero."""
        if syn:
            tsecr = rcv.ts if flags & ACK else 0
            tcp = TCP_SYN.pack(
                snd.port,
                rcv.port,
                seq & M32,
                ack & M32,
                0xA0,
                flags,
                64240,
                0,
                0,
                2,
                4,
                syn,
                4,
                2,
                8,
                10,
                snd.ts,
                tsecr,
                1,
                3,
                3,
                7,
            )
        else:
            tcp = TCP_TS.pack(
                snd.port, rcv.port, seq & M32, ack & M32, 0x80, flags, 502, 0, 0, 1, 1, 8, 10,
                snd.ts, rcv.ts,
            )  # fmt: skip
        snd.ts = (snd.ts + 1) & M32
        n = len(tcp) + len(payload)
        if len(snd.addr) == 16:
            ip = IP6.pack(0x60000000, n, 6, 64, snd.addr, rcv.addr)
        else:
            ip = IP4.pack(0x45, 0, 20 + n, snd.ipid, 0x4000, 64, 6, 0, snd.addr, rcv.addr)
            snd.ipid = (snd.ipid + 1) & 0xFFFF
        return snd.eth + ip + tcp + payload

    # -- messages -----------------------------------------------------------------------

    def _request(self, ex: _Exchange, sport: int) -> Iterator[tuple[bytes, bool]]:
        rng = self.rng
        method = "POST" if ex.post else "GET"
        path = "/" + "/".join(rng.choice(WORDS[:40]) for _ in range(rng.randrange(1, 5)))
        head = (
            f"{method} {path}?id={rng.getrandbits(32)} HTTP/1.1\r\n"
            f"Host: www.example.com:{sport}\r\n"
            f"User-Agent: {rng.choice(AGENTS)}\r\n"
            "Accept: */*\r\nAccept-Encoding: gzip, deflate\r\nConnection: keep-alive\r\n"
        )
        if ex.post:
            head += f"Content-Type: application/octet-stream\r\nContent-Length: {ex.post}\r\n"
        pad = ex.req_len - ex.post - len(head) - 12
        if pad > 0:
            head += "Cookie: s=" + rng.randbytes((pad + 1) // 2).hex()[:pad] + "\r\n"
        head += "\r\n"
        if ex.post:
            yield head.encode(), False
            yield from self._body(ex.post, True)
        else:
            yield head.encode(), True

    def _response(self, ex: _Exchange) -> Iterator[tuple[bytes, bool]]:
        rng = self.rng
        ctype = rng.choice(BINARY_TYPES if ex.binary else TYPES)
        head = (
            "HTTP/1.1 200 OK\r\nServer: nginx/1.24.0\r\n"
            f"Date: Tue, 14 Nov 2023 22:{rng.randrange(60):02d}:{rng.randrange(60):02d} GMT\r\n"
            f"Content-Type: {ctype}\r\nContent-Length: {ex.resp_len}\r\n"
            f'Connection: keep-alive\r\nETag: "{rng.getrandbits(64):016x}"\r\n\r\n'
        ).encode()
        yield head, ex.split_headers
        yield from self._body(ex.resp_len, ex.binary)

    def _body(self, n: int, binary: bool) -> Iterator[tuple[bytes, bool]]:
        """``n`` bytes in chunks of at most 64 KiB, made lazily (bodies reach megabytes)."""
        rng = self.rng
        corpus = self.corpus
        while n > 0:
            k = min(n, 65536)
            if binary:
                yield rng.randbytes(k), False
            else:
                start = rng.randrange(len(corpus) - k)
                yield corpus[start : start + k], False
            n -= k

    def _message(
        self, snd: _Side, rcv: _Side, writes: Iterator[tuple[bytes, bool]], mss: int
    ) -> Iterator[bytes]:
        """One message: MSS segments, delayed ACKs, reordering, retransmissions."""
        rng = self.rng
        frame = self._frame
        ack = rcv.isn + 1 + rcv.contig  # the receiver is silent meanwhile
        base = snd.isn + 1
        start = snd.sent
        hold: tuple[int, bytes] | None = None
        prev: tuple[int, bytes] | None = None  # the segment below, in stream order
        retx: list[list[Any]] = []  # [due, off, data]
        unacked = 0
        for off, data, last in self._segments(snd, writes, mss):
            if hold is None and not last and rng.random() < REORDER:
                hold = (off, data)
                continue
            batch = [(off, data)] if hold is None else [(off, data), hold]
            hold = None
            for o, d in batch:
                flags = ACK | PSH if o + len(d) == snd.sent and last else ACK
                yield frame(snd, rcv, flags, base + o, ack, d)
            snd.contig = batch[0][0] + len(batch[0][1])
            for o, d in sorted(batch):
                if rng.random() < RETRANSMIT:
                    retx.extend(self._retransmission(o, d, prev))
                prev = (o, d)
            if retx:
                for r in retx:
                    r[0] -= len(batch)
                for _, o, d in [r for r in retx if r[0] <= 0]:
                    self.retransmitted += len(d)
                    yield frame(snd, rcv, ACK, base + o, ack, d)
                retx = [r for r in retx if r[0] > 0]
            unacked += len(batch)
            if unacked >= 2:
                yield frame(rcv, snd, ACK, rcv.isn + 1 + rcv.sent, base + snd.contig, b"")
                unacked = 0
        for _, o, d in retx:
            self.retransmitted += len(d)
            yield frame(snd, rcv, ACK, base + o, ack, d)
        if unacked and rng.random() < 0.5:
            yield frame(rcv, snd, ACK, rcv.isn + 1 + rcv.sent, base + snd.contig, b"")
        if snd.sent > start:
            snd.messages.append(snd.sign * (snd.sent - start))

    def _retransmission(
        self, off: int, data: bytes, prev: tuple[int, bytes] | None
    ) -> list[list[Any]]:
        """The same bytes again, a few segments later; half of them cut differently."""
        rng = self.rng
        due = rng.randrange(1, 4)
        if rng.random() >= REPACKETISE or len(data) < 2:
            return [[due, off, data]]
        if prev is not None and prev[0] + len(prev[1]) == off and rng.random() < 0.5:
            po, pd = prev
            cut = len(pd) // 2
            return [[due, po + cut, pd[cut:] + data[: min(len(data), cut) // 2 + 1]]]
        k = rng.randrange(1, len(data))
        return [[due, off, data[:k]], [due, off + k, data[k:]]]

    def _segments(
        self, snd: _Side, writes: Iterator[tuple[bytes, bool]], mss: int
    ) -> Iterator[tuple[int, bytes, bool]]:
        """(offset, bytes, is-last) of the message's segments; a write flagged True is
        pushed at once (a short segment), others coalesce into full ones."""
        buf = b""
        pos = 0  # cut by index: slicing the rest off each time would copy it again and again
        pending: tuple[int, bytes] | None = None
        h = snd.hash
        for chunk, push in writes:
            h.update(chunk)
            buf = buf[pos:] + chunk
            pos = 0
            while len(buf) - pos >= mss or (push and pos < len(buf)):
                seg = buf[pos : pos + mss]
                pos += len(seg)
                if pending is not None:
                    yield pending[0], pending[1], False
                pending = (snd.sent, seg)
                snd.sent += len(seg)
        buf = buf[pos:]
        if buf:
            if pending is not None:
                yield pending[0], pending[1], False
            pending = (snd.sent, buf)
            snd.sent += len(buf)
        if pending is not None:
            yield pending[0], pending[1], True

    # -- the capture --------------------------------------------------------------------

    def write(self, path: Path) -> dict[str, Any]:
        """Write the capture to ``path`` and its truth beside it; returns the summary."""
        rng = self.rng
        p = self.p
        active: list[Iterator[bytes]] = []
        started = 0
        packets = 0
        size = len(PCAP_HEADER)
        t_us = 1_700_000_000 * 1_000_000
        pack = RECORD.pack
        # With 100,000 connections open, the collector's passes over their live generators
        # cost more than the generation itself (60 s instead of 20 for `wide`); nothing
        # here makes reference cycles.
        gc_was_on = gc.isenabled()
        gc.disable()
        with open(path, "wb") as f:
            f.write(PCAP_HEADER)
            out: list[bytes] = []
            while True:
                while len(active) < p.concurrency and started < p.connections:
                    active.append(self._connection(started))
                    started += 1
                if not active:
                    break
                i = rng.randrange(len(active))
                fr = next(active[i], None)
                if fr is None:
                    active[i] = active[-1]
                    active.pop()
                    continue
                t_us += rng.randrange(1, 2 * MEAN_GAP_US)
                n = len(fr)
                out.append(pack(t_us // 1_000_000, t_us % 1_000_000, n, n))
                out.append(fr)
                size += 16 + n
                packets += 1
                if len(out) >= 4096:
                    f.write(b"".join(out))
                    out.clear()
            f.write(b"".join(out))
        if gc_was_on:
            gc.enable()
        summary = {
            "generator_version": GENERATOR_VERSION,
            "params": dataclasses.asdict(p),
            "packets": packets,
            "bytes": size,
            "payload_bytes": sum(t["client_bytes"] + t["server_bytes"] for t in self.truth),
            "retransmitted_bytes": self.retransmitted,
            "connections": self.truth,
        }
        with gzip.open(truth_path(path), "wt", compresslevel=5) as g:
            json.dump(summary, g, separators=(",", ":"))
        return summary


def truth_path(capture: Path) -> Path:
    """Where the truth of ``capture`` lives: ``NAME.truth.json.gz`` beside it."""
    return capture.with_name(capture.stem + ".truth.json.gz")


def generate(params: Params, path: Path) -> dict[str, Any]:
    """Write the capture for ``params`` to ``path`` (and its truth); returns the summary."""
    return Generator(params).write(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--preset", help="small, large, wide, optionally with -x2 (doubled)")
    ap.add_argument("--quick", action="store_true", help="the preset at a tenth of its size")
    ap.add_argument("--connections", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=100)
    ap.add_argument("--packets", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("-o", "--output", required=True, help="capture path (.pcap added)")
    args = ap.parse_args(argv)
    if args.preset:
        params = preset(args.preset, args.quick)
    else:
        params = Params(args.connections, args.concurrency, args.packets, args.seed)
    out = Path(args.output)
    if out.suffix != ".pcap":
        out = out.with_name(out.name + ".pcap")
    t0 = time.perf_counter()
    s = generate(params, out)
    print(
        f"{out}: {s['packets']:,} packets, {s['bytes'] / 1e6:.1f} MB, "
        f"{len(s['connections']):,} connections, {time.perf_counter() - t0:.1f} s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
