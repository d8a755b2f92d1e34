"""Conformance of pcapflows with Wireshark's Follow TCP Stream, over real captures.

Usage::

    python tools/conformance.py FILE...            # per-stream results
    python tools/conformance.py --corpus ../shared/corpus --markdown docs/conformance.md

For one capture this runs ``tshark`` to list the TCP streams with their frames
(``-T fields -e frame.number -e frame.time_epoch -e tcp.stream ...``) and to follow each
of them (``-z follow,tcp,raw,N`` for many N in the same run: starting tshark costs far
more than one more follow), runs :func:`pcapflows.read` on the same file, pairs tshark's
streams with pcapflows' flows, and compares every direction:

* the bytes, which must be identical or differ only in one of tshark's known, *named*
  ways (:data:`REASONS`), each checked exactly rather than by loosening the comparison;
* the byte counts (pcapflows' ``metadata["pcapflows"]["bytes"]`` against its messages,
  and what tshark shows once its markers are taken out);
* which side is the client;
* the connection's start and end: first and last frame numbers and capture times.

The stream listing comes from per-frame fields rather than from ``-z conv,tcp``: tshark
4.0's conversation table has no stream index (so port reuse cannot be told apart) and
prints durations to 4 decimals only, while frame times are exact. Its start and end are
the earliest and latest frame time, which is what is compared here too.

Everything neither identical nor a named difference is *unexplained*. tshark streams and
pcapflows flows that cannot be paired are reported as such with a reason, never dropped.
This module uses only the standard library, pcapflows and tshark, so that it runs
outside the test suite (``tests/test_conformance.py`` imports it).
"""

from __future__ import annotations

import argparse
import csv
import ipaddress
import os
import re
import shutil
import subprocess
import sys
import time
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pcapflows

Endpoint = tuple[str, int]

#: The named ways in which tshark's view is not the true stream (or pairs differently),
#: each with what the check requires. docs/conformance.md explains each one.
REASONS: dict[str, str] = {
    "marker": "tshark writes '[N bytes missing in capture file]' where pcapflows has a gap "
    "of N bytes (the peer acknowledged past a hole)",
    "truncated": "tshark's output stops before a gap; pcapflows keeps the bytes after it",
    "late start": "tshark starts the direction at its first captured frame, after a gap; "
    "pcapflows keeps the bytes with lower sequence numbers captured later",
    "snaplen": "payload cut by the snap length is silently absent from tshark's output; "
    "pcapflows has a gap with cause 'snaplen' there",
    "conflict": "bytes differ only inside pcapflows' recorded conflicts (tshark shows a "
    "later copy, pcapflows keeps the first)",
    "fragment overlap": "bytes differ only inside a TCP segment whose IP fragments "
    "overlapped with other content (tshark flags ip.fragment.overlap.conflict and keeps "
    "the last copy; pcapflows reports the frame and keeps the first)",
    "client by first packet": "tshark's node 0 is the sender of the first packet; "
    "pcapflows picks the client by SYN, SYN-ACK and server port (its history starts '^')",
    "read past damage": "tshark stops reading the file at a damaged record; pcapflows "
    "skips to the next valid record and reads on. Checked: pcapflows on the records "
    "before the damage agrees with tshark",
    "damaged frame": "a frame damaged or cut inside its TCP header: tshark's Follow skips "
    "it (its node 0 is then the next frame's sender), or pcapflows skips it as damage "
    "(reported with its frame number) where tshark still lists it",
    "after close": "tshark keeps a packet that came after the connection closed in the "
    "stream; pcapflows ended the flow and gave the packet a flow of its own, without "
    "payload",
    "late SYN": "tshark starts a new stream at a SYN captured after packets that already "
    "acknowledge it (a reordered capture); pcapflows keeps one connection, whose bytes "
    "are checked against every packet's payload instead",
    "dropped after marker": "tshark writes a marker when the peer acknowledges past a "
    "hole and moves on; a segment of that hole captured afterwards is dropped by tshark "
    "(it never fills a marker), pcapflows puts it in its place. Checked: removing exactly "
    "such late runs from ours gives tshark's bytes",
    "port reuse": "the 4-tuple carried several connections: tshark gives each a stream "
    "index, pcapflows a flow; paired by first frame",
}

#: tshark's Follow TCP Stream separator line.
SEPARATOR = "=" * 67
#: Most follow taps given to one tshark run (each tap filters every packet).
BATCH = 1000
#: Float tolerance for times: both sides read the same timestamps from the same file.
TIME_TOLERANCE = 1e-6
#: Per-frame fields asked of tshark, in this order (the TCP ones once per TCP layer).
FIELDS = (
    "frame.number",
    "frame.time_epoch",
    "frame.protocols",
    "tcp.stream",
    "tcp.srcport",
    "tcp.len",
    "tcp.flags",
    "tcp.seq",
    "tcp.seq_raw",
    "tcp.ack_raw",
    "ip.src",
    "ipv6.src",
    "ip.fragment.overlap.conflict",
    "ipv6.fragment.overlap.conflict",
    "_ws.short",
)
#: Encapsulations whose inner TCP tshark follows (named in unpaired-stream reports).
TUNNELS = ("gre", "erspan", "vxlan", "geneve", "gtp", "teredo", "nsh", "mpls", "pppoes")
SYN, ACK = 0x02, 0x10


class ConformanceError(Exception):
    """tshark is missing or failed: the comparison cannot be made at all."""


def marker(n: int) -> bytes:
    """tshark's rendering of an acknowledged hole of ``n`` bytes (NUL-terminated)."""
    return f"[{n} bytes missing in capture file]".encode() + b"\x00"


def require_tshark() -> str:
    """The path of tshark, or a clear error: without it nothing can be compared."""
    path = shutil.which("tshark")
    if path is None:
        raise ConformanceError(
            "tshark not found on PATH; install it (Debian/Ubuntu: apt-get install tshark)"
        )
    return path


def _host(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return text


def _endpoint(text: str) -> Endpoint | None:
    host, _, port = text.strip().rpartition(":")
    host = host.strip("[]")
    return (_host(host), int(port)) if host else None


# --------------------------------------------------------------------------- tshark


@dataclass
class Frame:
    """One frame's share of a tshark stream (one TCP layer of it)."""

    number: int
    time: float
    srcport: int
    length: int
    flags: int
    seq: int  # relative, as tshark shows it
    seq_raw: int
    ack_raw: int
    addresses: frozenset[str]
    protocols: str
    fragment_conflict: bool
    short: bool = False  # the snap length cut the frame inside a header tshark decodes


@dataclass
class TsharkStream:
    """What tshark says about one TCP stream (``tcp.stream`` index)."""

    index: int
    nodes: tuple[Endpoint, Endpoint] | None = None
    sent: list[bytes] = field(default_factory=lambda: [b"", b""])
    frames: list[Frame] = field(default_factory=list)

    def node(self, endpoint: Endpoint) -> int:
        """0 or 1: which node ``endpoint`` is."""
        assert self.nodes is not None
        return 0 if endpoint == self.nodes[0] else 1

    def sender(self, frame: Frame) -> int | None:
        """0 or 1: which node sent ``frame`` (None when the two cannot be told apart)."""
        if self.nodes is None:
            return None
        (a0, p0), (a1, p1) = self.nodes
        if p0 != p1:
            return 0 if frame.srcport == p0 else 1 if frame.srcport == p1 else None
        if a0 != a1 and (a0 in frame.addresses) != (a1 in frame.addresses):
            return 0 if a0 in frame.addresses else 1
        return None

    @property
    def encapsulation(self) -> str:
        """Tunnel protocols under the TCP of the first frame, e.g. ``"gre"``."""
        layers = self.frames[0].protocols.split(":") if self.frames else []
        return "/".join(dict.fromkeys(p for p in layers if p.startswith(TUNNELS)))


@dataclass
class TsharkCapture:
    """tshark's streams of one capture, and what it said on stderr."""

    streams: dict[int, TsharkStream]
    stderr: str = ""


def _int(values: list[str], k: int, base: int = 10) -> int:
    return int(values[k], base) if k < len(values) and values[k] else 0


def _fields(text: str) -> dict[int, TsharkStream]:
    streams: dict[int, TsharkStream] = {}
    for line in text.splitlines():
        if line.startswith("="):
            break  # the follow output starts
        cols = line.split("\t")
        if len(cols) != len(FIELDS) or not cols[3]:
            continue
        number, when, protocols, ids, *tcp, v4, v6, frag4, frag6, short = cols
        addresses = frozenset(_host(a) for a in f"{v4},{v6}".split(",") if a)
        ports, lens, flags, seqs, raws, acks = (c.split(",") for c in tcp)
        # Several TCP layers in one frame (TCP in a tunnel in TCP, or the TCP header that
        # an ICMP error quotes): the k-th stream id goes with the k-th of each TCP field.
        for k, sid in enumerate(ids.split(",")):
            s = streams.setdefault(int(sid), TsharkStream(int(sid)))
            s.frames.append(
                Frame(
                    int(number),
                    float(when),
                    _int(ports, k),
                    _int(lens, k),
                    _int(flags, k, 16),
                    _int(seqs, k),
                    _int(raws, k),
                    _int(acks, k),
                    addresses,
                    protocols,
                    bool(frag4 or frag6),
                    bool(short),
                )
            )
    return streams


def _follows(text: str, streams: dict[int, TsharkStream]) -> None:
    for block in text.split(SEPARATOR + "\nFollow: tcp,raw\n")[1:]:
        lines = block.split("\n")
        sid = int(lines[0].split()[-1])
        n0, n1 = _endpoint(lines[1].split(": ", 1)[1]), _endpoint(lines[2].split(": ", 1)[1])
        if sid not in streams or n0 is None or n1 is None:
            continue  # a stream index the capture does not have (see run_tshark)
        sent = [bytearray(), bytearray()]
        for line in lines[3:]:
            if line.startswith(SEPARATOR):
                break
            if line.strip():
                sent[1 if line.startswith("\t") else 0] += bytes.fromhex(line.strip())
        streams[sid].nodes = (n0, n1)
        streams[sid].sent = [bytes(sent[0]), bytes(sent[1])]


def _run(args: list[str]) -> tuple[str, str]:
    proc = subprocess.run(
        args, capture_output=True, text=True, errors="replace", check=False, timeout=900
    )
    # A file tshark cannot read (or reads only partly) is not an error here: its streams
    # are then missing, and pcapflows' flows show up unpaired, with tshark's message kept.
    return proc.stdout, proc.stderr


#: tshark options for every run: heuristic dissectors tshark 4.0 leaves off that
#: pcapflows matches. Teredo on ports other than 3544 is recognized by content (as Zeek
#: does); on the corpus this changes tshark's streams of zeek__Teredo.pcap only.
TSHARK_OPTIONS = ("--enable-heuristic", "teredo_udp")


def run_tshark(path: str | os.PathLike[str], guess: int = 0) -> TsharkCapture:
    """List and follow every TCP stream of a capture with tshark.

    ``guess`` is how many streams to follow in the same run as the listing (indices
    0..guess-1; indices that do not exist come back empty and are ignored). The listing
    is authoritative: streams it shows beyond the guess are followed in another run, so
    a wrong guess costs time, never results.
    """
    tshark = require_tshark()
    args = [tshark, *TSHARK_OPTIONS, "-r", str(path), "-n", "-T", "fields", "-E", "occurrence=a"]
    args += ["-E", "aggregator=,", "-E", "separator=/t"]
    for f in FIELDS:
        args += ["-e", f]
    for sid in range(min(guess, BATCH)):
        args += ["-z", f"follow,tcp,raw,{sid}"]
    out, err = _run(args)
    streams = _fields(out)
    _follows(out, streams)
    missing = sorted(sid for sid, s in streams.items() if s.nodes is None)
    for i in range(0, len(missing), BATCH):
        args = [tshark, *TSHARK_OPTIONS, "-r", str(path), "-n", "-q"]
        for sid in missing[i : i + BATCH]:
            args += ["-z", f"follow,tcp,raw,{sid}"]
        out, more = _run(args)
        _follows(out, streams)
        err += more
    lines = [ln for ln in err.splitlines() if ln.strip() and "Running as user" not in ln]
    return TsharkCapture(streams, "\n".join(lines))


def frame_payloads(path: str | os.PathLike[str], streams: Iterable[int]) -> dict[int, bytes]:
    """TCP payload per frame number of some tshark streams (``-e tcp.payload``): the
    packets themselves, independent of any reassembly, tshark's or ours."""
    ids = sorted(set(streams))
    args = [
        require_tshark(),
        *TSHARK_OPTIONS,
        "-r",
        str(path),
        "-n",
        "-Y",
        f"tcp.stream in {{{','.join(map(str, ids))}}}",
    ]
    args += ["-T", "fields", "-E", "occurrence=a", "-E", "aggregator=,"]
    args += ["-e", "frame.number", "-e", "tcp.stream", "-e", "tcp.payload"]
    out, _ = _run(args)
    result: dict[int, bytes] = {}
    for line in out.splitlines():
        number, sids, payloads = [*line.split("\t"), "", ""][:3]
        plist = payloads.split(",")
        for k, sid in enumerate(sids.split(",")):
            if sid and int(sid) in ids:
                result[int(number)] = bytes.fromhex(plist[k]) if k < len(plist) else b""
    return result


# --------------------------------------------------------------------------- pcapflows


@dataclass(frozen=True)
class Run:
    """Contiguous bytes of one direction at a stream offset, and the positions in them
    that a recorded conflict covers (there tshark may show the later copy)."""

    offset: int
    data: bytes
    conflicted: frozenset[int]


@dataclass(frozen=True)
class Hole:
    """A gap of one direction: tshark renders it as its marker, or (snap length) not at
    all, or ends the direction there."""

    offset: int
    length: int
    cause: str


Token = Run | Hole


@dataclass
class Capture:
    """pcapflows' flows of one capture, with the frames it skipped as damage."""

    flows: list[pcapflows.TCPFlow]
    damaged: dict[int, str]  # frame number -> anomaly detail
    skipped: Counter[str]
    #: The record after which pcapflows skipped damage and read on, if it did.
    resync: int | None = None


#: How pcapflows reports reading on past a damaged record: "... after frame K; skipped
#: N bytes to the next valid record" (or block).
RESYNC = re.compile(r"after frame (\d+)\b.*skipped \d+ bytes to the next valid")


def read_flows(path: str | os.PathLike[str]) -> Capture:
    """pcapflows' flows in order of first packet (damage warnings off: they are counted)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pcapflows.PcapflowsWarning)
        reader = pcapflows.read(path, order="first_packet", warn=False)
        flows = list(reader)
    damaged: dict[int, str] = {}
    resync: int | None = None
    for detail in reader.stats.anomaly_details:
        m = RESYNC.search(detail)
        if m is not None:
            resync = int(m.group(1)) if resync is None else resync
            continue
        for m in re.finditer(r"\bframe (\d+)\b", detail):
            damaged.setdefault(int(m.group(1)), detail)
    return Capture(flows, damaged, Counter(reader.stats.skipped), resync)


def read_prefix(path: str | os.PathLike[str], records: int) -> Capture:
    """pcapflows' flows of the first ``records`` records only: what it makes of the part
    of a damaged file that tshark could read."""
    from pcapflows.capture import CaptureReader
    from pcapflows.decode import Decoder

    stats = pcapflows.ReadStats()

    def segments() -> Iterable[pcapflows.Segment]:
        decoder = Decoder(stats)
        with CaptureReader(path, stats) as capture:
            for pkt in capture:
                if pkt.index > records:
                    break
                seg = decoder.decode(pkt)
                if seg is not None:
                    yield seg
        decoder.finish()

    flows = list(pcapflows.reassemble(segments(), order="first_packet"))
    return Capture(flows, {}, Counter(stats.skipped))


def flow_ends(flow: pcapflows.TCPFlow) -> tuple[Endpoint, Endpoint]:
    """(client, server) endpoints of a flow, normalized as tshark's are."""
    client, server = flow.client_conn.peername, flow.server_conn.address
    assert client is not None and server is not None
    return (_host(str(client[0])), int(client[1])), (_host(str(server[0])), int(server[1]))


def tokens(flow: pcapflows.TCPFlow, from_client: bool) -> list[Token]:
    """One direction of a flow in stream order: runs of bytes separated by holes."""
    meta = flow.metadata["pcapflows"]
    data = b"".join(m.content for m in flow.messages if m.from_client == from_client)
    holes = [
        Hole(g["offset"], g["length"], g["cause"])
        for g in sorted(meta["gaps"], key=lambda g: int(g["offset"]))
        if g["from_client"] == from_client
    ]
    conflicted = {
        o
        for c in meta["conflicts"]
        if c["from_client"] == from_client
        for o in range(c["offset"], c["offset"] + c["length"])
    }
    out: list[Token] = []

    def run(start: int, b: bytes) -> Run:
        mask = frozenset(o - start for o in conflicted if start <= o < start + len(b))
        return Run(start, b, mask)

    pos = 0  # position in the stream (data and holes)
    taken = 0  # bytes of data consumed
    for h in holes:
        chunk = data[taken : taken + (h.offset - pos)]
        if chunk:
            out.append(run(pos, chunk))
        taken += len(chunk)
        out.append(h)
        pos = h.offset + h.length
    if taken < len(data):
        out.append(run(pos, data[taken:]))
    return out


def render(ts: Sequence[Token]) -> tuple[bytes, frozenset[int], list[tuple[int, int, int]]]:
    """tshark's rendering of tokens, the positions in it that a conflict covers, and
    ``(rendered position, stream offset, length)`` of each run."""
    out = bytearray()
    mask: set[int] = set()
    where = []
    for t in ts:
        if isinstance(t, Run):
            mask.update(len(out) + o for o in t.conflicted)
            where.append((len(out), t.offset, len(t.data)))
            out += t.data
        elif t.cause != "snaplen":
            out += marker(t.length)
    return bytes(out), frozenset(mask), where


def _ends_output(rest: Sequence[Token]) -> bool:
    """Whether tshark's output may stop at the start of ``rest``: at a missing region
    (adjacent holes) that was not all acknowledged, or that no captured byte follows.
    An acknowledged hole with data after it is shown as a marker instead."""
    for t in rest:
        if isinstance(t, Run):
            return False
        if t.cause != "ack":
            return True
    return isinstance(rest[0], Hole) if rest else False


def classify(
    ours: Sequence[Token], theirs: bytes, allowed: frozenset[int] = frozenset()
) -> tuple[str, ...] | None:
    """The named differences between one of our directions and tshark's, or None.

    ``()`` means identical. Otherwise tshark's bytes must be one contiguous slice of our
    tokens, starting and ending at token boundaries, with each hole inside rendered as
    tshark renders it, and differing from ours only at recorded conflicts or at stream
    offsets in ``allowed`` (IP fragments that overlapped with other content).
    """
    if not ours:
        return () if not theirs else None
    for i in range(len(ours)):
        for j in range(len(ours), i, -1):
            if j < len(ours) and not _ends_output(ours[j:]):
                continue
            rendered, mask, where = render(ours[i:j])
            extra: list[str] = []
            if rendered != theirs:
                if len(rendered) != len(theirs) or not (mask or allowed):
                    continue
                diff = [k for k in range(len(rendered)) if rendered[k] != theirs[k]]
                frag = {p + k for p, o, n in where for k in range(n) if o + k in allowed}
                if not all(k in mask or k in frag for k in diff):
                    continue
                if any(k in mask for k in diff):
                    extra.append("conflict")
                if any(k in frag and k not in mask for k in diff):
                    extra.append("fragment overlap")
            names: list[str] = []
            inside = [t for t in ours[i:j] if isinstance(t, Hole)]
            if any(h.cause != "snaplen" for h in inside):
                names.append("marker")
            if any(h.cause == "snaplen" for h in inside):
                names.append("snaplen")
            names += extra
            if i > 0:
                names.append("late start")
            if j < len(ours):
                names.append("truncated")
            return tuple(names)
    if not theirs and isinstance(ours[0], Hole):
        return ("truncated",)  # a hole first: tshark shows nothing at all
    return None


#: Most late runs whose combinations ``dropped_after_marker`` tries (2**n subsets).
MAX_LATE_RUNS = 10


def _first_frames(
    ours: Sequence[Token], frames: Sequence[Frame], payloads: dict[int, bytes]
) -> dict[int, int] | None:
    """For each stream offset we hold, the number of the first frame (capture order)
    whose payload carries that byte, placing frames by tshark's relative sequence
    number shifted onto our offsets. The shift is the one most frames agree with (a
    frame's payload found in our bytes votes for one); frames whose bytes do not match
    ours there (wild, fuzzed sequence numbers) are left out."""
    mine = {t.offset + k: b for t in ours if isinstance(t, Run) for k, b in enumerate(t.data)}
    votes: Counter[int] = Counter()
    for f in frames:
        p = payloads.get(f.number, b"")
        if len(p) < 4:
            continue
        data_seq = f.seq + (1 if f.flags & SYN else 0)  # a SYN's data follows it
        for t in ours:
            if isinstance(t, Run):
                at = t.data.find(p)
                while at >= 0:
                    votes[t.offset + at - data_seq] += 1
                    at = t.data.find(p, at + 1)
    if not votes:
        return None
    shift = votes.most_common(1)[0][0]
    first: dict[int, int] = {}
    for f in sorted(frames, key=lambda fr: fr.number):
        p = payloads.get(f.number, b"")
        base = f.seq + (1 if f.flags & SYN else 0) + shift
        same = [k for k, b in enumerate(p) if mine.get(base + k) == b]
        # A frame counts where its bytes are ours (a conflicting retransmission lost
        # where the first copy won), if most of them are: not by coincidence.
        if same and 2 * len(same) > len(p):
            for k in same:
                first.setdefault(base + k, f.number)
    return first


def dropped_after_marker(
    ours: Sequence[Token], theirs: bytes, frames: Sequence[Frame], payloads: dict[int, bytes]
) -> tuple[str, ...] | None:
    """tshark 4.0's Follow writes a marker when the peer acknowledges past a hole and
    moves its next expected byte past the hole; a segment of the hole captured later is
    then old data to it and dropped, where pcapflows fills the hole with it.

    Checked exactly: a run is *late* when every byte of it came only in frames captured
    after the first frame of some byte we hold at a higher offset (tshark had moved on
    by then); removing some late runs (their place joining the holes around them)
    must give a direction that :func:`classify` matches to tshark's bytes, markers
    included. None if no such set of late runs exists."""
    first = _first_frames(ours, frames, payloads)
    if first is None:
        return None
    late: list[int] = []
    later = None  # lowest frame number among bytes at higher offsets
    for i in range(len(ours) - 1, -1, -1):
        t = ours[i]
        if not isinstance(t, Run):
            continue
        numbers = [first.get(t.offset + k) for k in range(len(t.data))]
        if None in numbers:
            return None  # bytes no frame explains: not this case
        own = [n for n in numbers if n is not None]
        if later is not None and min(own) > later:
            late.append(i)
        later = min(own) if later is None else min(later, min(own))
    late = late[:MAX_LATE_RUNS]
    for mask in range(1, 1 << len(late)):
        drop = {late[b] for b in range(len(late)) if mask >> b & 1}
        merged: list[Token] = []
        for i, t in enumerate(ours):
            if i in drop or isinstance(t, Hole):
                length = t.length if isinstance(t, Hole) else len(t.data)
                if merged and isinstance(merged[-1], Hole) and merged[-1].cause != "snaplen":
                    prev = merged[-1]
                    merged[-1] = Hole(prev.offset, prev.length + length, "ack")
                elif isinstance(t, Hole) and i not in drop:
                    merged.append(t)
                else:
                    merged.append(Hole(t.offset, length, "ack"))
            else:
                merged.append(t)
        kind = classify(merged, theirs)
        if kind is not None:
            return (*kind, "dropped after marker")
    return None


def shown_markers(ours: Sequence[Token], theirs: bytes) -> int:
    """How many of tshark's bytes are its markers for our holes (not captured bytes)."""
    lengths = {t.length for t in ours if isinstance(t, Hole) and t.cause != "snaplen"}
    return sum(len(marker(n)) * theirs.count(marker(n)) for n in lengths)


def packet_check(
    ours: Sequence[Token], frames: Sequence[Frame], payloads: dict[int, bytes]
) -> str | None:
    """Check a direction against its packets; None if right, else what is wrong.

    The reference is every frame's own payload, placed by its raw sequence number
    relative to the sender's SYN, the first copy of each byte winning: exactly the bytes
    the packets carry, with no reassembler's (tshark's or ours) judgement in between.
    """
    syn = [f for f in frames if f.flags & SYN and not f.flags & ACK]
    syn = syn or [f for f in frames if f.flags & SYN]
    if not syn:
        return "no SYN to place the packets by"
    base = syn[0].seq_raw + 1
    truth: dict[int, int] = {}
    for f in frames:
        for k, b in enumerate(payloads.get(f.number, b"")):
            truth.setdefault((f.seq_raw - base + k) % (1 << 32), b)
    mine = {t.offset + k: b for t in ours if isinstance(t, Run) for k, b in enumerate(t.data)}
    if mine != truth:
        wrong = sorted(set(mine) ^ set(truth)) or sorted(o for o in mine if mine[o] != truth[o])
        return f"bytes differ from the packets' payloads from offset {wrong[0]}"
    return None


def first_difference(a: bytes, b: bytes) -> int:
    """Offset of the first byte where ``a`` and ``b`` differ (or the shorter length)."""
    n = min(len(a), len(b))
    return next((i for i in range(n) if a[i] != b[i]), n)


# --------------------------------------------------------------------------- pairing


@dataclass
class Pair:
    """tshark streams and pcapflows flows that are one connection.

    Normally one of each; more when one side splits a connection the other keeps whole
    (``late SYN``: several tshark streams; ``after close``: several flows), none on one
    side when unpaired (``why`` then says why).
    """

    streams: list[TsharkStream]
    flows: list[pcapflows.TCPFlow]
    reasons: list[str] = field(default_factory=list)
    why: str = ""


def _range(f: pcapflows.TCPFlow) -> tuple[int, int]:
    m = f.metadata["pcapflows"]
    return int(m["first_frame"]), int(m["last_frame"])


def _payload(f: pcapflows.TCPFlow) -> int:
    return sum(f.metadata["pcapflows"]["bytes"].values())


def pair(flows: Sequence[pcapflows.TCPFlow], streams: dict[int, TsharkStream]) -> list[Pair]:
    """Pair tshark streams and flows by endpoints and, on a reused 4-tuple, by frames.

    pcapflows' stream index is its own numbering, so it is not used: a flow's
    ``first_frame``/``last_frame`` and tshark's ``frame.number`` are the same capture
    record numbers, and the pair is the one whose frame ranges overlap most.
    """
    groups: dict[frozenset[Endpoint], tuple[list[TsharkStream], list[pcapflows.TCPFlow]]] = {}
    for s in sorted(streams.values(), key=lambda s: s.index):
        groups.setdefault(frozenset(s.nodes or ()), ([], []))[0].append(s)
    for f in flows:
        groups.setdefault(frozenset(flow_ends(f)), ([], []))[1].append(f)
    out: list[Pair] = []
    for ss, ff in groups.values():
        pairs: list[Pair] = []
        free = list(ff)
        lone: list[TsharkStream] = []
        for s in ss:
            lo, hi = s.frames[0].number, s.frames[-1].number
            best: pcapflows.TCPFlow | None = None
            best_overlap = 0
            for f in free:
                first, last = _range(f)
                overlap = min(hi, last) - max(lo, first) + 1
                if first == lo:
                    overlap += 1 << 40  # same first frame: certainly the same connection
                if overlap > best_overlap:
                    best, best_overlap = f, overlap
            if best is None:
                lone.append(s)
            else:
                free.remove(best)
                pairs.append(Pair([s], [best]))
        for s in lone:
            if not _attach_stream(s, pairs):
                out.append(Pair([s], [], why=_why_stream(s, ff)))
        for f in free:
            if not _attach_flow(f, pairs):
                out.append(Pair([], [f], why=_why_flow(f, ss)))
        if len(ss) > 1 and len(ff) > 1:
            for p in pairs:
                p.reasons.append("port reuse")
        out += pairs
    out.sort(key=lambda p: p.streams[0].index if p.streams else 1 << 40)
    return out


def _attach_stream(s: TsharkStream, pairs: list[Pair]) -> bool:
    """``late SYN``: tshark opened stream ``s`` at a SYN that the peer's SYN-ACK in a
    stream already paired had acknowledged, inside that flow's frames."""
    syn = s.frames[0]
    if not (syn.flags & SYN and not syn.flags & ACK):
        return False
    for p in pairs:
        first, last = _range(p.flows[0])
        if not all(first <= fr.number <= last for fr in s.frames):
            continue
        for fr in p.streams[0].frames:
            if fr.flags & SYN and fr.flags & ACK and fr.ack_raw == (syn.seq_raw + 1) % (1 << 32):
                p.streams.append(s)
                p.reasons.append("late SYN")
                return True
    return False


def _attach_flow(f: pcapflows.TCPFlow, pairs: list[Pair]) -> bool:
    """``after close``: flow ``f`` has no payload and lies inside a tshark stream whose
    paired flow had closed (FIN, RST or idle) before it."""
    if _payload(f):
        return False
    first, last = _range(f)
    for p in pairs:
        numbers = {fr.number for fr in p.streams[0].frames}
        main = p.flows[0]
        if (
            main.metadata["pcapflows"]["closed_by"] in ("fin", "rst", "idle")
            and _range(main)[1] < first
            and all(n in numbers for n in (first, last))
        ):
            p.flows.append(f)
            p.reasons.append("after close")
            return True
    return False


def _why_stream(s: TsharkStream, flows: list[pcapflows.TCPFlow]) -> str:
    why = "pcapflows splits this 4-tuple otherwise" if flows else "no pcapflows flow"
    if s.encapsulation:
        why += f" (TCP inside {s.encapsulation})"
    return why


def _why_flow(f: pcapflows.TCPFlow, streams: list[TsharkStream]) -> str:
    return "tshark splits this 4-tuple otherwise" if streams else "no tshark stream"


# --------------------------------------------------------------------------- comparison


@dataclass
class Direction:
    """The comparison of one direction of one connection."""

    tshark_stream: int | None
    flow_stream: int | None
    sender: str  # "client" or "server" as pcapflows sees it ("node N" when unpaired)
    endpoint: str
    reasons: tuple[str, ...] = ()
    problem: str | None = None  # set when unexplained
    ours: int = 0  # payload bytes pcapflows has
    theirs: int = 0  # captured bytes tshark shows (markers taken out)

    @property
    def status(self) -> str:
        """``identical``, ``named`` or ``unexplained``."""
        if self.problem is not None:
            return "unexplained"
        return "named" if self.reasons else "identical"


@dataclass
class FileResult:
    """All directions of one capture, or why it was not compared."""

    name: str
    streams: int = 0
    flows: int = 0
    directions: list[Direction] = field(default_factory=list)
    unsupported: str | None = None  # pcapflows.CaptureError text
    tshark_stderr: str = ""
    seconds: float = 0.0

    def count(self, status: str) -> int:
        """How many directions have this status."""
        return sum(1 for d in self.directions if d.status == status)

    def reasons(self) -> Counter[str]:
        """Named directions per reason (a direction with two reasons counts in both)."""
        c: Counter[str] = Counter()
        for d in self.directions:
            if d.status == "named":
                c.update(dict.fromkeys(d.reasons, 1))
        return c

    @property
    def unexplained(self) -> list[Direction]:
        """The directions that are neither identical nor a named difference."""
        return [d for d in self.directions if d.problem is not None]


def _excerpt(data: bytes, at: int) -> str:
    return data[max(0, at - 8) : at + 16].hex() or "(end)"


def _fragment_offsets(s: TsharkStream, sender: int) -> frozenset[int]:
    """Stream offsets of the segments whose IP fragments overlapped with other content,
    in the direction sent by node ``sender`` (tshark's relative sequence numbers count
    the SYN as 1)."""
    frames = [f for f in s.frames if s.sender(f) == sender]
    base = 1 if any(f.flags & SYN for f in frames) else 0
    return frozenset(
        f.seq - base + k for f in frames if f.fragment_conflict for k in range(f.length)
    )


class _Context:
    """What the comparison of one pair needs besides the pair."""

    def __init__(self, path: str | os.PathLike[str], cap: Capture) -> None:
        self.path = path
        self.cap = cap


def _compare_pair(p: Pair, ctx: _Context) -> list[Direction]:
    s, f = p.streams[0], p.flows[0]
    assert s.nodes is not None
    meta = f.metadata["pcapflows"]
    client, server = flow_ends(f)
    frames = sorted((fr for st in p.streams for fr in st.frames), key=lambda fr: fr.number)
    common: list[str] = list(dict.fromkeys(p.reasons))
    problems: list[str] = []
    # Client side: tshark's node 0 sent the first packet; pcapflows' history marks with
    # a leading '^' a client that did not, so the two must agree with each other.
    caret = str(meta["history"]).startswith("^")
    if s.nodes[0] == server and caret:
        common.append("client by first packet")
    elif (
        s.nodes[0] == server
        and len(frames) > 1
        and frames[0].short
        and s.sender(frames[0]) == s.node(client)
        and s.sender(frames[1]) == 0
    ):
        # tshark's Follow drops the first frame (its TCP header was cut), so its node 0
        # is the next frame's sender; pcapflows used the captured fixed header.
        common.append("damaged frame")
    elif s.nodes[0] == server or caret:
        problems.append(f"client: tshark node 0 {s.nodes[0]}, history {meta['history']!r}")
    more, why = _span(frames, p.flows, client, s, ctx.cap.damaged)
    common += more
    problems += why
    payloads = (
        frame_payloads(ctx.path, [st.index for st in p.streams]) if "late SYN" in common else {}
    )
    out = []
    for from_client, me in ((True, client), (False, server)):
        side = "client" if from_client else "server"
        d = Direction(s.index, meta["stream"], side, f"{me[0]}:{me[1]}")
        ours = tokens(f, from_client)
        d.ours = sum(len(t.data) for t in ours if isinstance(t, Run))
        own = list(problems)
        if d.ours != meta["bytes"][side]:
            own.append(f"byte count: messages {d.ours}, metadata {meta['bytes'][side]}")
        theirs = s.sent[s.node(me)]
        kind: tuple[str, ...] | None
        if "late SYN" in common:
            # tshark's Follow is lossy across its split: check against the packets.
            mine = [fr for fr in frames if s.sender(fr) == s.node(me)]
            bad = packet_check(ours, mine, payloads)
            kind = () if bad is None else None
            d.theirs = sum(len(st.sent[st.node(me)]) for st in p.streams)
        else:
            kind = classify(ours, theirs, _fragment_offsets(s, s.node(me)))
            d.theirs = len(theirs)
            bad = None
            if kind is None:
                if not payloads:
                    payloads = frame_payloads(ctx.path, [st.index for st in p.streams])
                mine = [fr for fr in frames if s.sender(fr) == s.node(me)]
                kind = dropped_after_marker(ours, theirs, mine, payloads)
        if kind is None:
            rendered = render(ours)[0]
            at = first_difference(rendered, theirs)
            own.append(
                bad
                or f"bytes differ at {at} (ours {len(rendered)} rendered, tshark"
                f" {len(theirs)}): ours {_excerpt(rendered, at)} tshark {_excerpt(theirs, at)}"
            )
        else:
            d.reasons = tuple(dict.fromkeys((*kind, *common)))
            if "marker" in kind:
                d.theirs -= shown_markers(ours, theirs)
        if own:
            d.problem = "; ".join(own)
        out.append(d)
    for extra in p.flows[1:]:  # "after close": flows without payload
        em = extra.metadata["pcapflows"]
        for side, end in zip(("client", "server"), flow_ends(extra), strict=True):
            d = Direction(s.index, em["stream"], side, f"{end[0]}:{end[1]}")
            d.reasons = ("after close",)
            out.append(d)
    return out


def _span(
    frames: list[Frame],
    flows: list[pcapflows.TCPFlow],
    client: Endpoint,
    s: TsharkStream,
    damaged: dict[int, str],
) -> tuple[list[str], list[str]]:
    """Start and end of the connection (first and last frame, earliest and latest
    time): named reasons and problems."""
    reasons: list[str] = []
    problems: list[str] = []
    first = min(_range(f)[0] for f in flows)
    last = max(_range(f)[1] for f in flows)
    numbers = [fr.number for fr in frames]
    if (first, last) != (min(numbers), max(numbers)):
        kept = [fr for fr in frames if fr.number not in damaged]
        if kept and (first, last) == (kept[0].number, kept[-1].number):
            reasons.append("damaged frame")
            frames = kept
        else:
            problems.append(f"frames: ours {first}..{last}, tshark {min(numbers)}..{max(numbers)}")
    start = flows[0].client_conn.timestamp_start or 0.0
    ends = [f.client_conn.timestamp_end for f in flows]
    end = max(e for e in ends if e is not None) if any(e is not None for e in ends) else None
    lo, hi = min(fr.time for fr in frames), max(fr.time for fr in frames)
    if abs(start - lo) > TIME_TOLERANCE:
        problems.append(f"start: ours {start:.9f}, tshark {lo:.9f}")
    if end is None or abs(end - hi) > TIME_TOLERANCE:
        problems.append(f"end: ours {end}, tshark {hi:.9f}")
    return reasons, problems


def _unpaired(p: Pair, cap: Capture) -> list[Direction]:
    out = []
    note = ""
    if cap.skipped:
        note = "; pcapflows skipped " + ", ".join(f"{n} x {k}" for k, n in cap.skipped.items())
    for s in p.streams:
        for k, node in enumerate(s.nodes or ()):
            d = Direction(s.index, None, f"node {k}", f"{node[0]}:{node[1]}")
            d.theirs = len(s.sent[k])
            d.problem = f"unpaired tshark stream: {p.why}{note}"
            out.append(d)
    for f in p.flows:
        meta = f.metadata["pcapflows"]
        for side, end in zip(("client", "server"), flow_ends(f), strict=True):
            d = Direction(None, meta["stream"], side, f"{end[0]}:{end[1]}")
            d.ours = meta["bytes"][side]
            d.problem = f"unpaired pcapflows flow: {p.why}"
            out.append(d)
    return out


def compare(path: str | os.PathLike[str], name: str | None = None) -> FileResult:
    """Compare pcapflows with tshark on one capture."""
    t0 = time.monotonic()
    result = FileResult(name or str(path))
    try:
        cap = read_flows(path)
    except pcapflows.CaptureError as exc:
        # Named by the file's corpus name, so that the table does not depend on where
        # the corpus is checked out.
        result.unsupported = str(exc).replace(str(path), result.name)
        result.seconds = time.monotonic() - t0
        return result
    ts = run_tshark(path, guess=len(cap.flows) + 8 + len(cap.flows) // 8)
    result.tshark_stderr = ts.stderr
    seen = [fr.number for st in ts.streams.values() for fr in st.frames]
    past_damage = cap.resync is not None and (not seen or max(seen) <= cap.resync)
    if past_damage:
        assert cap.resync is not None
        cap = read_prefix(path, cap.resync)
    result.streams, result.flows = len(ts.streams), len(cap.flows)
    ctx = _Context(path, cap)
    for p in pair(cap.flows, ts.streams):
        if not p.streams or not p.flows or p.streams[0].nodes is None:
            result.directions += _unpaired(p, cap)
        else:
            result.directions += _compare_pair(p, ctx)
    if past_damage:
        for d in result.directions:
            d.reasons = (*d.reasons, "read past damage")
    result.seconds = time.monotonic() - t0
    return result


# --------------------------------------------------------------------------- corpus


def manifest(corpus: Path) -> list[str]:
    """The capture files of a corpus, as listed in its MANIFEST.tsv."""
    with open(corpus / "MANIFEST.tsv", newline="") as f:
        return [row["file"] for row in csv.DictReader(f, delimiter="\t")]


def _compare_named(args: tuple[str, str]) -> FileResult:
    return compare(*args)


def compare_many(todo: Sequence[tuple[str, str]], workers: int = 2) -> list[FileResult]:
    """Compare ``(path, name)`` captures in a pool of ``workers`` processes (tshark is
    single-threaded, and a corpus is many small files), results in the order given."""
    if workers <= 1:
        return [_compare_named(a) for a in todo]
    # Biggest files first, so that one large capture does not finish last, alone.
    order = sorted(range(len(todo)), key=lambda i: -os.path.getsize(todo[i][0]))
    results: dict[int, FileResult] = {}
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for i, r in zip(order, pool.map(_compare_named, [todo[i] for i in order]), strict=True):
            results[i] = r
    return [results[i] for i in range(len(todo))]


def compare_corpus(corpus: Path, workers: int = 2) -> list[FileResult]:
    """Compare every capture of a corpus's MANIFEST.tsv."""
    return compare_many([(str(corpus / n), n) for n in manifest(corpus)], workers)


def totals(results: Sequence[FileResult]) -> tuple[Counter[str], Counter[str]]:
    """Totals over results (files, streams, directions by status) and named by reason."""
    total: Counter[str] = Counter()
    by_reason: Counter[str] = Counter()
    for r in results:
        total["files"] += 1
        if r.unsupported is not None:
            total["unsupported"] += 1
            continue
        total["streams"] += r.streams
        total["directions"] += len(r.directions)
        for status in ("identical", "named", "unexplained"):
            total[status] += r.count(status)
        by_reason += r.reasons()
    return total, by_reason


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(results: Sequence[FileResult]) -> str:
    """The generated part of docs/conformance.md: the table and a totals line."""
    lines = [
        "| file | streams | directions | identical | named, by reason | unexplained |",
        "| --- | ---: | ---: | ---: | --- | ---: |",
    ]
    for r in results:
        if r.unsupported is not None:
            lines.append(f"| {r.name} | not a supported capture: {_cell(r.unsupported)} ||||| ")
            continue
        reasons = ", ".join(f"{k} {n}" for k, n in sorted(r.reasons().items()))
        named = f"{r.count('named')} ({reasons})" if reasons else "0"
        lines.append(
            f"| {r.name} | {r.streams} | {len(r.directions)} | {r.count('identical')} "
            f"| {named} | {r.count('unexplained')} |"
        )
    total, by_reason = totals(results)
    reasons = ", ".join(f"{k} {n}" for k, n in sorted(by_reason.items()))
    lines += [
        "",
        f"**Totals:** {total['files']} files ({total['files'] - total['unsupported']}"
        f" compared, {total['unsupported']} not a supported capture),"
        f" {total['streams']} tshark streams, {total['directions']} directions:"
        f" {total['identical']} identical, {total['named']} differing by a named reason"
        f" ({reasons}), {total['unexplained']} unexplained.",
    ]
    unexplained = [(r.name, d) for r in results for d in r.unexplained]
    if unexplained:
        lines += ["", "Unexplained:", ""]
        lines += [
            f"- {name}: tshark stream {d.tshark_stream}, flow {d.flow_stream},"
            f" {d.sender} {d.endpoint}: {_cell(d.problem or '')}"
            for name, d in unexplained
        ]
    return "\n".join(lines) + "\n"


BEGIN = "<!-- BEGIN GENERATED TABLE (tools/conformance.py) -->"
END = "<!-- END GENERATED TABLE -->"


def write_markdown(path: Path, table: str) -> None:
    """Replace the generated part of ``path`` (between the markers), keeping the prose."""
    text = path.read_text() if path.exists() else f"{BEGIN}\n{END}\n"
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    path.write_text(f"{head}{BEGIN}\n{table}{END}{tail}")


def describe(r: FileResult) -> str:
    """Per-stream results of one capture, for the command line."""
    if r.unsupported is not None:
        return f"{r.name}: not a supported capture: {r.unsupported}\n"
    out = [
        f"{r.name}: {r.streams} tshark streams, {r.flows} flows, {len(r.directions)}"
        f" directions: {r.count('identical')} identical, {r.count('named')} named,"
        f" {r.count('unexplained')} unexplained ({r.seconds:.2f} s)"
    ]
    for d in r.directions:
        what = d.problem if d.problem is not None else ", ".join(d.reasons) or "identical"
        out.append(
            f"  tshark {d.tshark_stream} / flow {d.flow_stream} {d.sender} {d.endpoint}:"
            f" ours {d.ours} B, tshark {d.theirs} B: {d.status}: {what}"
        )
    return "\n".join(out) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Command line; exit status 1 when anything is unexplained, 2 without tshark."""
    ap = argparse.ArgumentParser(description="Compare pcapflows with tshark's Follow TCP Stream.")
    ap.add_argument("files", nargs="*", help="captures to compare")
    ap.add_argument("--corpus", type=Path, help="a corpus directory with a MANIFEST.tsv")
    ap.add_argument("--markdown", type=Path, help="write the table into this file")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    ap.add_argument("--quiet", action="store_true", help="print only what is unexplained")
    a = ap.parse_args(argv)
    todo = [(f, f) for f in a.files]
    if a.corpus is not None:
        todo += [(str(a.corpus / n), n) for n in manifest(a.corpus)]
    if not todo:
        ap.error("give capture files or --corpus")
    try:
        results = compare_many(todo, a.jobs)
    except ConformanceError as exc:
        print(f"conformance: {exc}", file=sys.stderr)
        return 2
    for r in results:
        if not a.quiet:
            sys.stdout.write(describe(r))
        for d in r.unexplained if a.quiet else ():
            print(f"{r.name}: tshark {d.tshark_stream} / flow {d.flow_stream}: {d.problem}")
    total, by_reason = totals(results)
    print(
        f"{total['files']} files, {total['streams']} streams, {total['directions']} directions:"
        f" {total['identical']} identical, {total['named']} named ({dict(by_reason)}),"
        f" {total['unexplained']} unexplained"
    )
    if a.markdown is not None:
        write_markdown(a.markdown, markdown_table(results))
    return 1 if total["unexplained"] else 0


if __name__ == "__main__":
    sys.exit(main())
