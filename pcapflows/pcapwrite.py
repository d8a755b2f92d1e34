"""Flows back to packets: write a capture (pcapng or pcap) that holds the given flows.

Each TCP flow becomes the packets a capture of it would hold, so that Wireshark (and
:func:`pcapflows.read`) shows the same conversation: the three-way handshake when the
flow saw one, data segments of at most the MSS (1460 bytes over IPv4, 1440 over IPv6)
carrying each message's bytes at the message's timestamp, ACKs from the peer, FIN or RST
as the flow ended, bytes the flow reports missing as segments absent from the capture,
Ethernet framing, correct IP and TCP checksums. HTTP flows of mitmproxy files (their
state dicts, see :func:`pcapflows.mitmfile.read_mitm_states`) become HTTP/1.1 bytes on a
TCP connection of their own (:mod:`pcapflows.httpsynth`).

Why the rules are what they are (the reader must give the flows back unchanged):

* **Sequence numbers.** The initial sequence numbers come from
  ``metadata["pcapflows"]["isn"]`` (``{"client": n, "server": n}``) when a flow has
  them, else from a hash of the flow id: the same flow always gives the same packets.
* **Roles.** With a handshake the SYN names the client. Without one, the reader picks
  the server by port (well-known, else lower); when that would pick the wrong side, a
  lone SYN-ACK from the server is written (the reader takes its receiver as the client
  and still reports no handshake); with equal ports the client sends the first packet.
* **Gaps.** A gap is a run of sequence numbers no packet carries. Cause ``ack`` (and
  ``unseen``): the peer acknowledges past it, after the data that follows it, at the
  gap's timestamp when that keeps time in order. Cause ``end`` (and ``limit``): the
  peer never acknowledges it (its ACKs stay at the hole). Cause ``snaplen``: the
  segment is there but cut by the snap length (captured length below the original),
  its missing bytes counted as zeros in the checksum, which no reader can verify.
* **Endings.** FINs as the flow's history says (``F`` client, ``f`` server, in that
  order), at the flow's end time, each acknowledged by the peer unless a reset follows
  or a hole stays open; a RST from the side ``rst_from`` names, at the error's time.
  Without pcapflows metadata (a flow of mitmproxy's), a flow with an error ends with a
  RST (from the side its message names, else the client), else with both FINs.
* **Time.** Within a flow, no packet is earlier than the one before it (a timestamp
  that would go back is raised to the previous one; ``0.0`` is a timestamp like any
  other). Across flows, packets are merged by timestamp through a heap that keeps only
  what is needed: a packet is written once its time is no later than the start of the
  latest flow given. So the file's timestamps never go back when flows are given in the
  order of their first packets (``read(order="first_packet")``); a flow given after one
  that started later has its packets older than what was already written written at
  once (counted in :attr:`CaptureWriter.out_of_order`), never delayed. The heap holds
  only packets later than the latest start, so its size is that of the flows alive at
  that moment, never a time window's worth. Two flows on the same addresses never mix:
  the earlier one's packets are all written before the next one's first.

Timestamps are written in nanoseconds (``if_tsresol`` 9, or the nanosecond pcap magic):
a timestamp read from a micro- or nanosecond capture comes back exactly.
"""

from __future__ import annotations

import hashlib
import heapq
import ipaddress
import struct
from collections import Counter
from collections.abc import Iterable
from typing import Any, Literal

from pcapflows.decode.link import ETH_IPV4, ETH_IPV6
from pcapflows.decode.segment import ACK, FIN, PSH, RST, SYN
from pcapflows.flowspec import FlowSpec, first_data, spec_of_tcp, spec_start
from pcapflows.httpsynth import spec_of_http
from pcapflows.mitmfile import Target, _name, _open
from pcapflows.reassembly.state import decide_client

Format = Literal["pcapng", "pcap"]

MSS_IPV4 = 1460
MSS_IPV6 = 1440
#: The peer acknowledges after this many full segments (23 KiB over IPv4): well inside
#: the 64 KiB window every packet advertises, so no reader sees the window fill up.
ACK_EVERY = 16
WINDOW = 65535

_U32 = 0xFFFFFFFF
_ETH = struct.Struct("!6s6sH")
_IP4 = struct.Struct("!BBHHHBBH4s4s")
_IP6 = struct.Struct("!IHBB16s16s")
_TCP = struct.Struct("!HHIIBBHHH")
#: The IPv4 header words that never change here: 0x4500, 0x4000 (DF), TTL 64 and TCP.
_EPB = struct.Struct("<IIIIIII")
_U32LE = struct.Struct("<I")
_PCAP_REC = struct.Struct("<IIII")
_IP4_FIXED = 0x4500 + 0x4000 + (64 << 8 | 6)


class _Side:
    """One end of a synthesized connection: its addresses and its sequence counters."""

    __slots__ = ("acked", "eth", "hole", "ip", "ip_id", "ipsum", "mac", "nxt", "port", "v6")

    def __init__(self, host: str, port: int) -> None:
        addr = _ip(host)
        self.v6 = addr.version == 6
        self.ip = addr.packed
        #: The address as one number: its 16-bit words' sum, modulo 0xFFFF (checksums).
        self.ipsum = int.from_bytes(self.ip, "big")
        self.port = port
        #: The Ethernet header of this side's frames (set once the peer is known).
        self.eth = b""
        # A locally administered unicast MAC derived from the address, so that each
        # host keeps one MAC across the file (Wireshark's Ethernet conversations).
        self.mac = b"\x02" + hashlib.sha1(self.ip).digest()[:5]
        self.ip_id = 0
        #: Next sequence number to send (unbounded; written modulo 2**32).
        self.nxt = 0
        #: What the peer acknowledges of this side: stops at a hole never acknowledged.
        self.acked = 0
        #: A hole in this side's bytes that the peer never acknowledged.
        self.hole = False


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The address of ``host``; a name (mitmproxy keeps the host a client asked for)
    becomes a stable address in 198.18.0.0/15, the range RFC 2544 sets aside for
    benchmarks, so that it can never be mistaken for a real one."""
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        h = int.from_bytes(hashlib.sha1(host.encode("utf-8", "replace")).digest()[:4], "big")
        return ipaddress.IPv4Address((198 << 24) | (18 << 16) | (h & 0x1FFFF))


class _Packets:
    """Builds one connection's frames in order, each no earlier than the one before."""

    __slots__ = ("c", "mss", "now", "out", "s")

    def __init__(self, c: _Side, s: _Side) -> None:
        self.c = c
        self.s = s
        self.mss = MSS_IPV6 if c.v6 else MSS_IPV4
        self.now = float("-inf")
        #: (timestamp, captured frame, original length)
        self.out: list[tuple[float, bytes, int]] = []

    def send(
        self,
        ts: float,
        src: _Side,
        dst: _Side,
        flags: int,
        payload: bytes = b"",
        *,
        seq: int | None = None,
        cut: int = 0,
        options: bytes = b"",
    ) -> None:
        """One packet from ``src``; ``cut`` trailing payload bytes are left out of the
        captured frame (the snap length), though they count on the wire."""
        if ts < self.now:
            ts = self.now
        self.now = ts
        seq_no = (src.nxt if seq is None else seq) & _U32
        ack_no = dst.acked & _U32 if flags & ACK else 0
        hlen = 20 + len(options)
        off = (hlen // 4) << 4
        total = hlen + len(payload)
        # The checksum of pseudo-header, header and payload, summed apart: each part
        # but the payload has an even length, so their sums modulo 0xFFFF add up.
        if payload:
            r = int.from_bytes(payload + b"\0" if len(payload) & 1 else payload, "big")
        else:
            r = 0
        r += (
            src.ipsum
            + dst.ipsum
            + 6
            + total
            + (src.port << 48 | dst.port << 32 | seq_no)
            + (ack_no << 32 | off << 24 | flags << 16 | WINDOW)
        )
        if options:
            r += int.from_bytes(options, "big")
        r %= 0xFFFF
        csum = 0xFFFF - r if r else 0
        segment = (
            _TCP.pack(src.port, dst.port, seq_no, ack_no, off, flags, WINDOW, csum, 0)
            + options
            + payload
        )
        src.ip_id = ip_id = (src.ip_id + 1) & 0xFFFF
        eth = src.eth
        if src.v6:
            ip = _IP6.pack(0x60000000, total, 6, 64, src.ip, dst.ip)
        else:
            # The header's checksum from its words' sum: version and length, flags (DF),
            # TTL and protocol, the addresses, then what changes (length and id).
            r = (_IP4_FIXED + src.ipsum + dst.ipsum + 20 + total + ip_id) % 0xFFFF
            ip = _IP4.pack(
                0x45, 0, 20 + total, ip_id, 0x4000, 64, 6, 0xFFFF - r if r else 0, src.ip, dst.ip
            )
        frame = eth + ip + segment
        if cut:
            self.out.append((ts, frame[: len(frame) - cut], len(frame)))
        else:
            self.out.append((ts, frame, len(frame)))
        if seq is None:
            src.nxt += len(payload) + (1 if flags & (SYN | FIN) else 0)
            if not src.hole:
                src.acked = src.nxt

    def data(self, ts: float, src: _Side, dst: _Side, content: bytes) -> None:
        """``content`` in segments of at most the MSS, the peer acknowledging every
        :data:`ACK_EVERY` segments."""
        mss = self.mss
        n = len(content)
        sent = 0
        for i in range(0, n, mss):
            end = i + mss
            self.send(ts, src, dst, ACK | PSH if end >= n else ACK, content[i:end])
            sent += 1
            if sent % ACK_EVERY == 0 and end < n:
                self.send(ts, dst, src, ACK)


def flow_spec(flow: Any) -> FlowSpec | None:
    """What is written for ``flow`` (a TCP flow object, or a flow state dict of a
    mitmproxy file); None for a flow of another type (UDP, DNS), which is not written."""
    kind = flow.get("type") if isinstance(flow, dict) else getattr(flow, "type", None)
    if kind == "tcp":
        if isinstance(flow, dict):
            from pcapflows.model.tcp import TCPFlow

            flow = TCPFlow.from_state(flow)
        return spec_of_tcp(flow)
    if kind == "http":
        state = flow if isinstance(flow, dict) else flow.get_state()
        return spec_of_http(state)
    return None


def packets(spec: FlowSpec) -> list[tuple[float, bytes, int]]:
    """The frames of one connection: ``(timestamp, captured bytes, original length)``."""
    c = _Side(*spec.client)
    s = _Side(*spec.server)
    if c.v6 != s.v6:
        raise ValueError(
            f"flow {spec.flow_id}: client {spec.client[0]} and server {spec.server[0]} "
            "are not of the same IP version"
        )
    kind = ETH_IPV6 if c.v6 else ETH_IPV4
    c.eth = _ETH.pack(s.mac, c.mac, kind)
    s.eth = _ETH.pack(c.mac, s.mac, kind)
    p = _Packets(c, s)
    runs = [(fc, pieces) for fc, pieces in spec.runs if any(b for b, _ in pieces)]
    first_ts = first_data(spec)
    t0 = spec_start(spec)
    c.nxt, s.nxt = spec.isn
    c.acked, s.acked = c.nxt, s.nxt
    syn, synack = spec.opening
    mss = struct.pack("!BBH", 2, 4, p.mss)
    if syn and synack:
        p.send(t0, c, s, SYN, options=mss)
        t_ack = spec.setup if spec.setup is not None else t0
        if first_ts is not None and t_ack > first_ts:
            t_ack = first_ts
        p.send(t0, s, c, SYN | ACK, options=mss)
        p.send(t_ack, c, s, ACK)
    elif syn:
        p.send(t0, c, s, SYN, options=mss)
    elif synack:
        p.send(t0, s, c, SYN | ACK, options=mss)
    elif decide_client([False, False], [False, False], None, (c.port, s.port)) != 0:
        # The reader would take the client for the server: a SYN-ACK says who is who.
        p.send(t0, s, c, SYN | ACK)
    else:
        # The connection's first packet (its time is the flow's start), from the client
        # (with equal ports, the first sender is taken as the client).
        p.send(t0, c, s, ACK)
    # Gaps by direction, in stream order; offsets count from the first data byte.
    base = (c.nxt, s.nxt)
    gaps: tuple[list[tuple[int, int, float, str]], list[tuple[int, int, float, str]]] = ([], [])
    for fc, off, n, ts, cause in sorted(spec.gaps, key=lambda g: g[1]):
        if n > 0:
            gaps[0 if fc else 1].append((off, n, ts, cause))
    gi = [0, 0]
    #: Per direction, the times of gaps waiting for the peer's acknowledgment.
    to_ack: tuple[list[float], list[float]] = ([], [])

    def skip_gaps(d: int, upto: int | None, until: float = float("inf")) -> None:
        """Leave out the gaps of direction ``d`` that start at or before ``upto`` bytes
        into its stream (None: all that are left) and are not later than ``until``."""
        side, peer = (c, s) if d == 0 else (s, c)
        lst = gaps[d]
        while gi[d] < len(lst):
            off, n, ts, cause = lst[gi[d]]
            pos = side.nxt - base[d]
            if (upto is not None and off > max(pos, upto)) or ts > until:
                break
            gi[d] += 1
            if cause == "snaplen":
                for i in range(0, n, p.mss):
                    k = min(p.mss, n - i)
                    p.send(ts, side, peer, ACK, bytes(k), cut=k)
            elif cause in ("end", "limit"):
                side.hole = True
                side.nxt += n
            else:
                side.nxt += n
                if not side.hole:
                    side.acked = side.nxt
                to_ack[d].append(ts)

    def ack_gaps(d: int, limit: float) -> None:
        """The peer's acknowledgment past the gaps just left out, at the latest one's
        time, unless that is after ``limit`` (the next packet's time)."""
        if to_ack[d]:
            side, peer = (c, s) if d == 0 else (s, c)
            t = max(to_ack[d])
            to_ack[d].clear()
            p.send(min(max(t, p.now), limit), peer, side, ACK)

    for i, (fc, pieces) in enumerate(runs):
        d = 0 if fc else 1
        src, dst = (c, s) if fc else (s, c)
        t_run = pieces[0][1]
        # The other direction's gaps that were given up on before this run...
        skip_gaps(1 - d, (dst.nxt - base[1 - d]), t_run)
        ack_gaps(1 - d, t_run)
        # ...and this direction's, acknowledged before the data when they were then.
        skip_gaps(d, src.nxt - base[d])
        if to_ack[d] and max(to_ack[d]) <= t_run:
            ack_gaps(d, t_run)
        for content, ts in pieces:
            if content:
                p.data(ts, src, dst, content)
        nxt = runs[i + 1] if i + 1 < len(runs) else None
        next_ts = nxt[1][0][1] if nxt is not None else float("inf")
        if to_ack[d]:
            ack_gaps(d, max(next_ts, p.now))
        elif nxt is None or nxt[0] == fc:
            p.send(p.now, dst, src, ACK)
    # Gaps after the last data, in time order.
    while gi[0] < len(gaps[0]) or gi[1] < len(gaps[1]):
        d = min((dd for dd in (0, 1) if gi[dd] < len(gaps[dd])), key=lambda dd: gaps[dd][gi[dd]][2])
        skip_gaps(d, None, gaps[d][gi[d]][2])
        ack_gaps(d, float("inf"))
    # The end.
    end = spec.end if spec.end is not None else p.now
    rst_ts = spec.rst[1] if spec.rst is not None else None
    fin_ts = end if rst_ts is None else min(end, rst_ts)
    for k, fc in enumerate(spec.fins):
        src, dst = (c, s) if fc else (s, c)
        p.send(fin_ts, src, dst, FIN | ACK)
        if k + 1 < len(spec.fins) and spec.fins[k + 1] != fc:
            continue  # the peer's FIN acknowledges this one
        if spec.fin_acked and (spec.rst is None or spec.clean):
            p.send(fin_ts, dst, src, ACK)
    if spec.rst is not None:
        fc, ts = spec.rst
        src, dst = (c, s) if fc else (s, c)
        p.send(ts, src, dst, RST | ACK)
        if end > p.now:
            p.send(end, dst, src, ACK)
    elif end > p.now:
        # The connection's last packet was later (an ACK, a keep-alive): keep its time.
        p.send(end, c, s, ACK)
    return p.out


# --- the file formats -----------------------------------------------------------------


def _pad4(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 4)


def _pcapng_header() -> bytes:
    shb_body = struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)
    app = _pad4(b"pcapflows")
    opts = struct.pack("<HH", 4, 9) + app + struct.pack("<HH", 0, 0)  # shb_userappl
    shb_len = 12 + len(shb_body) + len(opts)
    shb = struct.pack("<II", 0x0A0D0D0A, shb_len) + shb_body + opts + struct.pack("<I", shb_len)
    return shb + _idb(9)


def _idb(tsresol: int) -> bytes:
    """An Ethernet interface whose timestamps count 10**-tsresol seconds."""
    idb_opts = struct.pack("<HHB3x", 9, 1, tsresol) + struct.pack("<HH", 0, 0)
    idb_len = 20 + len(idb_opts)
    return struct.pack("<IIHHI", 1, idb_len, 1, 0, 0) + idb_opts + struct.pack("<I", idb_len)


#: Nanoseconds since 1970 fit a pcapng timestamp until 2554; later ones (a damaged
#: capture's) go to a second interface counting microseconds, added when first needed.
_NS_LIMIT = 1 << 64
_US_LIMIT = float(1 << 64) / 1e6


def _pcap_header() -> bytes:
    return struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, 1)


def _split_ns(ts: float) -> tuple[int, int]:
    """Seconds and nanoseconds of a timestamp, so that the reader's ``sec + ns / 1e9``
    gives the same float back (``ts - sec`` is exact)."""
    if not ts >= 0.0:
        raise ValueError(f"timestamp {ts!r} is before 1970: a capture cannot hold it")
    sec = int(ts)
    ns = round((ts - sec) * 1e9)
    if ns >= 1_000_000_000:
        sec, ns = sec + 1, ns - 1_000_000_000
    return sec, ns


class _Waiting:
    """A flow's packets not yet written (``next`` is the first of them)."""

    __slots__ = ("frames", "key", "next", "opt")

    def __init__(self, frames: list[tuple[float, bytes, int]], opt: bytes, key: tuple[bytes, ...]):
        self.frames = frames
        self.opt = opt
        self.key = key
        self.next = 0


class CaptureWriter:
    """Writes flows to a capture one at a time (see :func:`write_capture`).

    ``count`` is the number of flows written, ``packets`` the number of packets,
    ``skipped`` the flows passed over by type (``{"udp": 2}``), ``out_of_order`` the
    packets written after a later one because their flow came late (see the module
    docstring). Packets wait in a heap until no flow still to come can start before
    them; :meth:`close` writes what waits and closes a file it opened.
    """

    def __init__(self, file: Target, format: Format = "pcapng") -> None:
        if format not in ("pcapng", "pcap"):
            raise ValueError(f"format must be 'pcapng' or 'pcap', not {format!r}")
        self.name = _name(file, "<stdout>")
        self.format: Format = format
        self.count = 0
        self.packets = 0
        self.out_of_order = 0
        self.skipped: Counter[str] = Counter()
        self._fp, self._owned = _open(file, "wb")
        self._closed = False
        # One entry per flow with packets waiting: (time of its next packet, the order
        # in which flows came, the flow): a merge of the flows' own ordered packets, one
        # heap operation per packet.
        self._heap: list[tuple[float, int, _Waiting]] = []
        self._order = 0
        self._mark = float("-inf")
        self._last = float("-inf")
        self._pending: dict[tuple[bytes, ...], int] = {}
        self._buf: list[bytes] = []
        self._buffered = 0
        self._us_interface = False
        self._write(_pcapng_header() if format == "pcapng" else _pcap_header())

    # Writing in blocks of some 256 KiB: one write call per packet would cost more than
    # building the packet.
    def _write(self, b: bytes) -> None:
        self._buf.append(b)
        self._buffered += len(b)
        if self._buffered >= 1 << 18:
            self._flush()

    def _flush(self) -> None:
        if self._buf:
            self._fp.write(b"".join(self._buf))
            self._buf = []
            self._buffered = 0

    def add(self, flow: Any) -> bool:
        """Write one flow (TCP flow object, or a flow state dict of a mitmproxy file);
        return whether it was written (other flow types are counted in ``skipped``)."""
        if self._closed:
            raise ValueError(f"write to a closed CaptureWriter ({self.name})")
        spec = self._spec(flow)
        if spec is None:
            return False
        self.add_spec(spec)
        return True

    def _spec(self, flow: Any) -> FlowSpec | None:
        spec = flow_spec(flow)
        if spec is None:
            kind = flow.get("type") if isinstance(flow, dict) else getattr(flow, "type", None)
            self.skipped[kind if isinstance(kind, str) else repr(kind)] += 1
        return spec

    def add_spec(self, spec: FlowSpec) -> None:
        """Write the packets of one connection described by ``spec``."""
        frames = packets(spec)
        if not frames:
            return
        self.count += 1
        a = _ip(spec.client[0]).packed + spec.client[1].to_bytes(2, "big")
        b = _ip(spec.server[0]).packed + spec.server[1].to_bytes(2, "big")
        key = (a, b) if a <= b else (b, a)
        heap = self._heap
        if self._pending.get(key):
            # An earlier flow on the same addresses still waits: all of it goes first.
            while self._pending.get(key):
                self._pop()
        comment = _pad4(spec.flow_id.encode("utf-8", "replace"))
        clen = len(spec.flow_id.encode("utf-8", "replace"))
        opt = struct.pack("<HH", 1, clen) + comment + struct.pack("<HH", 0, 0)
        limit = _US_LIMIT if self.format == "pcapng" else float(_U32 + 1)
        for ts, _, _ in frames:
            if not 0.0 <= ts < limit:
                raise ValueError(
                    f"flow {spec.flow_id}: timestamp {ts!r} cannot be written in {self.format}"
                    + (" (use pcapng)" if self.format == "pcap" and ts > 0 else "")
                )
        start = frames[0][0]
        self._order += 1
        heapq.heappush(heap, (start, self._order, _Waiting(frames, opt, key)))
        self._pending[key] = self._pending.get(key, 0) + 1
        if start > self._mark:
            self._mark = start
        mark = self._mark
        while heap and heap[0][0] <= mark:
            self._pop()

    def _pop(self) -> None:
        """Write the earliest waiting packet."""
        heap = self._heap
        ts, order, w = heap[0]
        frames = w.frames
        _, frame, orig = frames[w.next]
        opt = w.opt
        w.next += 1
        if w.next < len(frames):
            heapq.heapreplace(heap, (frames[w.next][0], order, w))
        else:
            heapq.heappop(heap)
            key = w.key
            left = self._pending[key] - 1
            if left:
                self._pending[key] = left
            else:
                del self._pending[key]
        if ts < self._last:
            self.out_of_order += 1
        else:
            self._last = ts
        sec, ns = _split_ns(ts)
        cap = len(frame)
        buf = self._buf
        if self.format == "pcapng":
            ticks = sec * 1_000_000_000 + ns
            iface = 0
            if ticks >= _NS_LIMIT:
                if not self._us_interface:
                    self._us_interface = True
                    self._write(_idb(6))
                iface = 1
                ticks = sec * 1_000_000 + round(ns / 1000)
            pad = -cap % 4
            blen = 32 + cap + pad + len(opt)
            # The block in parts, joined once per 256 KiB written (no copy per packet).
            buf.append(_EPB.pack(6, blen, iface, ticks >> 32, ticks & _U32, cap, orig))
            buf.append(frame)
            if pad:
                buf.append(b"\0" * pad)
            buf.append(opt)
            buf.append(_U32LE.pack(blen))
            self._buffered += blen
        else:
            buf.append(_PCAP_REC.pack(sec, ns, cap, orig))
            buf.append(frame)
            self._buffered += 16 + cap
        if self._buffered >= 1 << 18:
            self._flush()
        self.packets += 1

    # Its own context-manager pair rather than pcapflows.closing.Closing: this module
    # is compiled with mypyc, which cannot derive a native class from an interpreted one.
    def __enter__(self) -> CaptureWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Write the packets still waiting, flush, and close a file this writer opened."""
        if self._closed:
            return
        self._closed = True
        try:
            while self._heap:
                self._pop()
            self._flush()
            self._fp.flush()
        finally:
            if self._owned:
                self._fp.close()


def write_capture(flows: Iterable[Any], file: Target, format: Format = "pcapng") -> int:
    """Write ``flows`` as a capture; return the number of flows written.

    ``flows``: pcapflows or mitmproxy TCP flows, and flow state dicts of a mitmproxy
    file (:func:`pcapflows.mitmfile.read_mitm_states`; HTTP flows become HTTP/1.1 on a
    connection of their own, other types are skipped). ``file``: a path, ``"-"`` for
    standard output, or a binary file object (left open). ``format``: ``"pcapng"`` (one
    interface, Ethernet, nanosecond timestamps, the flow id as each packet's comment) or
    ``"pcap"`` (nanosecond pcap). Flows are written as they come; the module docstring
    gives the synthesis rules and the packet order. ``ValueError`` for a flow that
    cannot be written (addresses of two IP versions, a timestamp before 1970).
    """
    with CaptureWriter(file, format) as writer:
        for flow in flows:
            writer.add(flow)
        return writer.count


__all__ = [
    "ACK_EVERY",
    "MSS_IPV4",
    "MSS_IPV6",
    "CaptureWriter",
    "flow_spec",
    "packets",
    "write_capture",
]
