"""Conformance of pcapflows with Wireshark's Follow TCP Stream, over real captures.

Usage::

    python tools/conformance.py FILE...            # per-stream results
    python tools/conformance.py --corpus ../shared/corpus --markdown docs/conformance.md

For one capture this runs ``tshark`` once, to list every frame's TCP fields (``-T
fields -e frame.number -e tcp.stream -e tcp.flags -e tcp.seq_raw -e tcp.payload ...``)
and to follow each stream (``-z follow,tcp,raw,N`` for every N in the same run: starting
tshark costs far more than one more follow), every TCP port decoded as plain data so
that no dissector above TCP changes what Follow prints. It runs :func:`pcapflows.read`
on the same file, pairs tshark's streams with pcapflows' flows, and compares every
direction:

* the bytes, which must be identical or differ only in one of tshark's known, *named*
  ways (:data:`REASONS`), each checked exactly rather than by loosening the comparison;
* the bytes against the packets themselves (:func:`evidence`): every byte delivered
  must be the first captured copy at its sequence number, none past the sender's FIN,
  every ``snaplen`` gap what the snap length cut; a named difference is only ever the
  packets' word, never pcapflows' own (its conflict list, its ``^`` marker);
* the byte counts (pcapflows' ``metadata["pcapflows"]["bytes"]`` against its messages,
  and what tshark shows once its markers are taken out);
* which side is the client, by tshark's ``tcp.flags`` and ports (:func:`client_by_packets`);
* the connection's start and end: first and last frame numbers and capture times (TCP
  headers quoted by ICMP errors or sFlow samples left out: they are no packets of it).

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
import bisect
import csv
import hashlib
import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
import time
import warnings
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path

#: The checkout this tool belongs to: its pcapflows is the one compared (run as a
#: script, Python would otherwise import whichever pcapflows is installed).
ROOT = Path(__file__).resolve().parents[1]
if (ROOT / "pcapflows" / "__init__.py").exists() and str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pcapflows  # noqa: E402
from pcapflows.limits import DEFAULT_IDLE_TIMEOUT  # noqa: E402

Endpoint = tuple[str, int]

#: The named ways in which tshark's view is not the true stream (or pairs differently),
#: each with what the check requires. docs/conformance.md explains each one.
REASONS: dict[str, str] = {
    "marker": "tshark writes '[N bytes missing in capture file]' where pcapflows has a gap "
    "of N bytes (the peer acknowledged past a hole)",
    "truncated": "tshark's output stops before a gap; pcapflows keeps the bytes after it, "
    "each of them the captured payload at its sequence number",
    "late start": "tshark starts the direction at its first captured frame, after a gap; "
    "pcapflows keeps the bytes with lower sequence numbers captured later, each of them "
    "the captured payload at its sequence number",
    "snaplen": "payload cut by the snap length is silently absent from tshark's output; "
    "pcapflows has a gap with cause 'snaplen' there, exactly a cut frame's "
    "frame.len - frame.cap_len past its captured payload",
    "conflict": "bytes differ only where two captured copies of the same sequence range "
    "differ: tshark shows a later copy, pcapflows keeps the first",
    "fragment overlap": "bytes differ only inside a TCP segment whose IP fragments "
    "overlapped with other content (tshark flags ip.fragment.overlap.conflict and keeps "
    "the last copy; pcapflows reports the frame and keeps the first)",
    "client by first packet": "tshark's node 0 is the sender of the first packet; "
    "pcapflows' client is the one tshark's own tcp.flags and ports say (SYN, else "
    "SYN-ACK, else the server port rule)",
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
    "hole and moves on; bytes of that hole captured afterwards are dropped by tshark "
    "(it never fills a marker), pcapflows puts them in their place. Checked: removing "
    "exactly such late bytes from ours gives tshark's bytes",
    "idle split": "the connection was silent for longer than pcapflows' idle timeout "
    "(by the capture's own timestamps, such as a jump of decades in a damaged or merged "
    "file): tshark keeps one stream, pcapflows ends the flow and starts one that "
    "continues its sequence space (metadata follows); their bytes together are tshark's",
    "port reuse": "the 4-tuple carried several connections: tshark gives each a stream "
    "index, pcapflows a flow; paired by first frame",
    "quoted header": "tshark counts a TCP header quoted by an ICMP error or an sFlow "
    "sample in the stream (its span, or a stream of its own); pcapflows rightly does "
    "not: such a header is no packet of the connection",
}

#: pcapflows' default idle timeout: a longer silence ends a flow ("idle split").
IDLE_TIMEOUT = DEFAULT_IDLE_TIMEOUT

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
    "frame.len",
    "frame.cap_len",
    "tcp.stream",
    "tcp.srcport",
    "tcp.len",
    "tcp.flags",
    "tcp.seq",
    "tcp.seq_raw",
    "tcp.ack_raw",
    "tcp.hdr_len",
    "tcp.payload",
    "ip.src",
    "ipv6.src",
    "ip.fragment.overlap.conflict",
    "ipv6.fragment.overlap.conflict",
    "_ws.short",
    "tcp.reset_cause",
)
#: Decode every TCP port's payload as plain data (see :func:`_tshark_base`).
DECODE_AS = "tcp.port==0-65535,data"
#: Protocols that quote a packet's headers (and TCP header) rather than carry it.
QUOTING = frozenset({"icmp", "icmpv6", "sflow"})
#: Encapsulations whose inner TCP tshark follows (named in unpaired-stream reports).
TUNNELS = ("gre", "erspan", "vxlan", "geneve", "gtp", "teredo", "nsh", "mpls", "pppoes")
FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10
#: The sequence space, and half of it.
MOD, HALF = 1 << 32, 1 << 31
#: A move in sequence space too large to trust on one packet's word (see unwrap).
JUMP = 1 << 30
#: Frames whose payloads vote for where our offset 0 is, and candidates tried.
MAX_VOTERS, MAX_BASES = 32, 4
#: pcapflows' documented limit of the well-known ports (its role rule, README).
WELL_KNOWN = 1024


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


@cache
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
    """One frame's share of a tshark stream (one TCP layer of it): tshark's own
    per-frame fields, independent of any reassembly (tshark's Follow or ours)."""

    number: int
    time: float
    srcport: int
    length: int  # tcp.len: the segment's payload length, captured or not
    flags: int
    seq: int  # relative, as tshark shows it
    seq_raw: int
    ack_raw: int
    addresses: frozenset[str]
    protocols: str
    fragment_conflict: bool
    short: bool = False  # the snap length cut the frame inside a header tshark decodes
    payload: bytes = b""  # tcp.payload: the captured payload bytes
    frame_len: int = 0  # frame.len: the frame's length on the wire
    cap_len: int = 0  # frame.cap_len: what the capture kept of it
    #: The TCP header is one that an ICMP error or an sFlow sample quotes, not a packet
    #: of the connection: tshark counts it in the stream, pcapflows rightly does not.
    quoted: bool = False
    hdr_len: int = 0
    #: Payload tshark does not give as bytes (a RST's, shown only as text).
    opaque: bool = False

    @property
    def data_seq(self) -> int:
        """Raw sequence number of the first payload byte (a SYN's data follows it)."""
        return (self.seq_raw + (1 if self.flags & SYN else 0)) % MOD

    @property
    def cut(self) -> int:
        """Payload bytes the snap length cut from this segment (``frame.len -
        frame.cap_len``, at most what the TCP header says is missing)."""
        return max(0, min(self.frame_len - self.cap_len, self.length - len(self.payload)))


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
    def packets(self) -> list[Frame]:
        """The frames that are packets of the connection (not quoted headers)."""
        return [f for f in self.frames if not f.quoted]

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
    runs: int = 0  # tshark processes started for it (0 when read from the cache)


def _int(values: list[str], k: int, base: int = 10) -> int:
    return int(values[k], base) if k < len(values) and values[k] else 0


def _quoted(protocols: str, k: int) -> bool:
    """Whether the k-th TCP layer of a frame sits inside a protocol that quotes headers
    (an ICMP error, an sFlow sample) rather than carrying packets."""
    seen = 0
    quoting = False
    for p in protocols.split(":"):
        if p in QUOTING:
            quoting = True
        elif p == "tcp":
            if seen == k:
                return quoting
            seen += 1
    return quoting


def _fields(text: str) -> dict[int, TsharkStream]:
    streams: dict[int, TsharkStream] = {}
    for line in text.splitlines():
        if line.startswith("="):
            break  # the follow output starts
        cols = line.split("\t")
        if len(cols) != len(FIELDS) or not cols[5]:
            continue
        number, when, protocols, flen, clen, ids, *tcp, v4, v6, frag4, frag6, short, rst = cols
        addresses = frozenset(_host(a) for a in f"{v4},{v6}".split(",") if a)
        ports, lens, flags, seqs, raws, acks, hdrs, payloads = (c.split(",") for c in tcp)
        # Several TCP layers in one frame (TCP in a tunnel in TCP, or the TCP header that
        # an ICMP error quotes): the k-th stream id goes with the k-th of each TCP field.
        for k, sid in enumerate(ids.split(",")):
            s = streams.setdefault(int(sid), TsharkStream(int(sid)))
            quoted = _quoted(protocols, k)
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
                    b"" if quoted or k >= len(payloads) else bytes.fromhex(payloads[k]),
                    int(flen or 0),
                    int(clen or 0),
                    quoted,
                    _int(hdrs, k),
                )
            )
            fr = s.frames[-1]
            if fr.flags & RST and fr.length and not fr.payload and not quoted:
                _reset_payload(fr, rst)
    return streams


def _reset_payload(fr: Frame, cause: str) -> None:
    """A RST's payload: tshark shows it only as text (``tcp.reset_cause``), not as
    ``tcp.payload``. Text of exactly the captured length, all printable ASCII, is the
    bytes themselves; otherwise the bytes are known to be there but not their values."""
    captured = fr.length - max(0, min(fr.frame_len - fr.cap_len, fr.length))
    if len(cause) == captured and cause.isascii() and cause.isprintable():
        fr.payload = cause.encode()
    else:
        fr.opaque = True


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


#: Where tshark's output is kept between runs and between processes (pytest-xdist
#: workers): None for no cache. Set it, or the environment variable
#: ``PCAPFLOWS_TSHARK_CACHE``, or ``--cache`` on the command line.
CACHE: Path | None = None
#: Bumped whenever what is asked of tshark, or how its output is read, changes.
CACHE_FORMAT = 3

#: tshark options for every run: heuristic dissectors tshark 4.0 leaves off that
#: pcapflows matches. Teredo on ports other than 3544 is recognized by content (as Zeek
#: does); on the corpus this changes tshark's streams of zeek__Teredo.pcap only.
TSHARK_OPTIONS = ("--enable-heuristic", "teredo_udp")


@cache
def tshark_version() -> str:
    """tshark's version line (part of the cache key: another tshark may see otherwise)."""
    out, _ = _run([require_tshark(), "--version"])
    return out.splitlines()[0] if out else "unknown"


def _cache_dir() -> Path | None:
    if CACHE is not None:
        return CACHE
    env = os.environ.get("PCAPFLOWS_TSHARK_CACHE")
    return Path(env) if env else None


def _digest(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@contextmanager
def _locked(lock: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``lock`` (processes sharing a cache wait for the one
    already running tshark on the same file instead of running it again)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock, at worst the same output is made twice
        yield
        return
    with open(lock, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _tshark_base(tshark: str, path: str | os.PathLike[str]) -> list[str]:
    # Every TCP port decoded as plain data: Follow is asked for the bytes of the stream,
    # and some of tshark's dissectors above TCP (OpenFlow's, for one) change what it
    # prints when they desegment. tcp.payload does not depend on it.
    return [tshark, *TSHARK_OPTIONS, "-r", str(path), "-n", "-d", DECODE_AS]


def _outputs(path: str | os.PathLike[str], guess: int) -> tuple[list[str], str, int]:
    """tshark's outputs for one capture: the per-frame fields and as many follows as
    possible in one run, another run only for streams beyond the guess."""
    tshark = require_tshark()
    args = [*_tshark_base(tshark, path), "-T", "fields", "-E", "occurrence=a"]
    args += ["-E", "aggregator=,", "-E", "separator=/t"]
    for f in FIELDS:
        args += ["-e", f]
    for sid in range(min(guess, BATCH)):
        args += ["-z", f"follow,tcp,raw,{sid}"]
    out, err = _run(args)
    outs = [out]
    listed: set[int] = set()
    for line in out.splitlines():
        if line.startswith("="):
            break
        cols = line.split("\t")
        if len(cols) == len(FIELDS) and cols[5]:
            listed.update(int(sid) for sid in cols[5].split(","))
    missing = sorted(sid for sid in listed if sid >= min(guess, BATCH))
    for i in range(0, len(missing), BATCH):
        args = [*_tshark_base(tshark, path), "-q"]
        for sid in missing[i : i + BATCH]:
            args += ["-z", f"follow,tcp,raw,{sid}"]
        more, more_err = _run(args)
        outs.append(more)
        err += more_err
    return outs, err, len(outs)


def run_tshark(path: str | os.PathLike[str], guess: int = 0) -> TsharkCapture:
    """List and follow every TCP stream of a capture with tshark.

    ``guess`` is how many streams to follow in the same run as the listing (indices
    0..guess-1; indices that do not exist come back empty and are ignored). The listing
    is authoritative: streams it shows beyond the guess are followed in another run, so
    a wrong guess costs time, never results. With a cache (:data:`CACHE`) the outputs
    are kept under a key made of the file's SHA-256, tshark's version and what is asked
    of it, so tshark runs once per file whoever asks and however often.
    """
    require_tshark()
    where = _cache_dir()
    runs = 0
    if where is None:
        outs, err, runs = _outputs(path, guess)
    else:
        where.mkdir(parents=True, exist_ok=True)
        key = hashlib.sha256(
            f"{CACHE_FORMAT}\0{_digest(path)}\0{tshark_version()}\0{DECODE_AS}\0"
            f"{' '.join(TSHARK_OPTIONS)}\0"
            f"{','.join(FIELDS)}".encode()
        ).hexdigest()[:32]
        entry = where / f"{key}.json"
        with _locked(where / f"{key}.lock"):
            if entry.exists():
                saved = json.loads(entry.read_text())
                outs, err = saved["outs"], saved["err"]
            else:
                outs, err, runs = _outputs(path, guess)
                tmp = entry.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_text(json.dumps({"outs": outs, "err": err}))
                os.replace(tmp, entry)
    streams = _fields(outs[0])
    for out in outs:
        _follows(out, streams)
    lines = [ln for ln in err.splitlines() if ln.strip() and "Running as user" not in ln]
    return TsharkCapture(streams, "\n".join(lines), runs)


# --------------------------------------------------------------------------- pcapflows


@dataclass(frozen=True)
class Run:
    """Contiguous bytes of one direction at a stream offset."""

    offset: int
    data: bytes


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
    from pcapflows.decode.decoder import Decoder
    from pcapflows.io.reader import CaptureReader

    stats = pcapflows.ReadStats()

    def segments() -> Iterable[pcapflows.Segment]:
        decoder = Decoder(stats)
        with CaptureReader(path, stats) as capture:
            for pkt in capture:
                if pkt.index > records:
                    break
                yield from decoder.decode_all(pkt)
        decoder.finish()

    flows = list(pcapflows.reassemble(segments(), order="first_packet"))
    return Capture(flows, {}, Counter(stats.skipped))


def flow_ends(flow: pcapflows.TCPFlow) -> tuple[Endpoint, Endpoint]:
    """(client, server) endpoints of a flow, normalized as tshark's are."""
    client, server = flow.client_conn.peername, flow.server_conn.address
    assert client is not None and server is not None
    return (_host(str(client[0])), int(client[1])), (_host(str(server[0])), int(server[1]))


def joined_tokens(flows: Sequence[pcapflows.TCPFlow], from_client: bool) -> list[Token]:
    """:func:`tokens` of flows that continue one another (each starts where the one
    before it ended), as one stream."""
    out: list[Token] = []
    shift = 0
    for flow in flows:
        out += [replace(t, offset=t.offset + shift) for t in tokens(flow, from_client)]
        shift = max((_token_end(t) for t in out), default=0)
    return out


def _token_end(t: Token) -> int:
    return t.offset + (len(t.data) if isinstance(t, Run) else t.length)


def tokens(flow: pcapflows.TCPFlow, from_client: bool) -> list[Token]:
    """One direction of a flow in stream order: runs of bytes separated by holes."""
    meta = flow.metadata["pcapflows"]
    data = b"".join(m.content for m in flow.messages if m.from_client == from_client)
    holes = [
        Hole(g["offset"], g["length"], g["cause"])
        for g in sorted(meta["gaps"], key=lambda g: int(g["offset"]))
        if g["from_client"] == from_client
    ]
    out: list[Token] = []

    pos = 0  # position in the stream (data and holes)
    taken = 0  # bytes of data consumed
    for h in holes:
        chunk = data[taken : taken + (h.offset - pos)]
        if chunk:
            out.append(Run(pos, chunk))
        taken += len(chunk)
        out.append(h)
        pos = h.offset + h.length
    if taken < len(data):
        out.append(Run(pos, data[taken:]))
    return out


def render(ts: Sequence[Token]) -> tuple[bytes, list[tuple[int, int, int]]]:
    """tshark's rendering of tokens, and ``(rendered position, stream offset, length)``
    of each run."""
    out = bytearray()
    where = []
    for t in ts:
        if isinstance(t, Run):
            where.append((len(out), t.offset, len(t.data)))
            out += t.data
        elif t.cause != "snaplen":
            out += marker(t.length)
    return bytes(out), where


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
    ours: Sequence[Token],
    theirs: bytes,
    copies: Mapping[int, Collection[int]] | None = None,
    fragments: Collection[int] = frozenset(),
) -> tuple[str, ...] | None:
    """The named differences between one of our directions and tshark's, or None.

    ``()`` means identical. Otherwise tshark's bytes must be one contiguous slice of our
    tokens, starting and ending at token boundaries, with each hole inside rendered as
    tshark renders it, and differing from ours only where the packets themselves prove
    it allowed: at a stream offset where captured copies differ (``copies``: offset ->
    the values captured there) and tshark's byte is one of them, or inside a segment
    whose IP fragments overlapped (``fragments``). What lies outside the slice is not
    judged here: :func:`evidence` checks every byte of ours against the packets.
    """
    copies = copies or {}
    if not ours:
        return () if not theirs else None
    for i in range(len(ours)):
        for j in range(len(ours), i, -1):
            if j < len(ours) and not _ends_output(ours[j:]):
                continue
            rendered, where = render(ours[i:j])
            extra: list[str] = []
            if rendered != theirs:
                if len(rendered) != len(theirs) or not (copies or fragments):
                    continue
                diff = [k for k in range(len(rendered)) if rendered[k] != theirs[k]]
                offsets = {p + k: o + k for p, o, n in where for k in range(n)}
                named = set()
                for k in diff:
                    o = offsets.get(k)
                    if o is not None and theirs[k] in copies.get(o, ()):
                        named.add("conflict")
                    elif o is not None and o in fragments:
                        named.add("fragment overlap")
                    else:
                        break
                else:
                    extra = sorted(named)
                if not extra:
                    continue
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


def _acked(peer: Sequence[Frame], base: int) -> tuple[list[int], list[int]]:
    """When the peer first acknowledged past each point of this direction: frame
    numbers and the highest stream offset acknowledged so far, both increasing."""
    numbers: list[int] = []
    highest: list[int] = []
    acks = sorted((f for f in peer if f.flags & ACK), key=lambda fr: fr.number)
    for f, rel in zip(acks, unwrap([f.ack_raw for f in acks], base), strict=True):
        if not highest or rel > highest[-1]:
            numbers.append(f.number)
            highest.append(rel)
    return numbers, highest


def _late_pieces(
    ours: Sequence[Token], pk: Packets, peer: Sequence[Frame]
) -> list[tuple[int, int]] | None:
    """Our bytes that tshark has dropped as old data: ``(offset, length)`` of each
    stretch first captured after the peer had acknowledged past its start (tshark had
    then written its marker for them and moved on), or after bytes at higher offsets
    (tshark may have moved on then too). None if some byte is carried by no packet."""
    numbers, highest = _acked(peer, pk.base)
    stretches: list[tuple[int, int, int]] = []  # offset, length, first frame
    for t in ours:
        if not isinstance(t, Run):
            continue
        pos, end = t.offset, t.offset + len(t.data)
        while pos < end:
            here = list(pk.covering(pos, pos + 1))
            if not here:
                return None
            n = min(end, here[0].end) - pos
            if (
                stretches
                and stretches[-1][0] + stretches[-1][1] == pos
                and stretches[-1][2] == here[0].frame
            ):
                o, m, fr = stretches[-1]
                stretches[-1] = (o, m + n, fr)
            else:
                stretches.append((pos, n, here[0].frame))
            pos += n
    late: list[tuple[int, int]] = []
    later: int | None = None  # lowest first frame among bytes at higher offsets
    for o, n, fr in reversed(stretches):
        k = bisect.bisect_right(highest, o)
        passed = numbers[k] if k < len(numbers) else None
        if (passed is not None and fr > passed) or (later is not None and fr > later):
            if late and late[-1][0] == o + n:
                late[-1] = (o, n + late[-1][1])
            else:
                late.append((o, n))
        later = fr if later is None else min(later, fr)
    return late


def _drop(ours: Sequence[Token], drop: Collection[tuple[int, int]]) -> list[Token]:
    """``ours`` with the stretches ``drop`` turned into holes (joining holes beside them)."""
    cuts = sorted(drop)
    pieces: list[Token] = []
    for t in ours:
        if isinstance(t, Hole):
            pieces.append(t)
            continue
        pos = t.offset
        for o, n in cuts:
            if o + n <= t.offset or o >= t.offset + len(t.data):
                continue
            if o > pos:
                pieces.append(Run(pos, t.data[pos - t.offset : o - t.offset]))
            pieces.append(Hole(o, n, "ack"))
            pos = o + n
        if pos < t.offset + len(t.data):
            pieces.append(Run(pos, t.data[pos - t.offset :]))
    merged: list[Token] = []
    for t in pieces:
        prev = merged[-1] if merged else None
        if (
            isinstance(t, Hole)
            and isinstance(prev, Hole)
            and "snaplen" not in (t.cause, prev.cause)
        ):
            merged[-1] = Hole(prev.offset, prev.length + t.length, "ack")
        else:
            merged.append(t)
    return merged


def dropped_after_marker(
    ours: Sequence[Token], theirs: bytes, pk: Packets, peer: Sequence[Frame]
) -> tuple[str, ...] | None:
    """tshark 4.0's Follow writes a marker when the peer acknowledges past a hole and
    moves its next expected byte past the hole; bytes of the hole captured later are
    then old data to it and dropped, where pcapflows puts them where their sequence
    numbers say: as a run between smaller gaps, filling the hole inside a longer run,
    or above a hole that the ACK passed before they arrived.

    Checked from the packets: the bytes removed must be *late* (see
    :func:`_late_pieces`), and removing them (their place joining the holes around
    them) must give a direction that :func:`classify` matches to tshark's bytes,
    markers included. None if no such set of late bytes exists."""
    late = _late_pieces(ours, pk, peer)
    if not late:
        return None
    late = late[:MAX_LATE_RUNS]
    subsets = [(1 << len(late)) - 1, *range(1, (1 << len(late)) - 1)]
    for mask in subsets:
        drop = [late[b] for b in range(len(late)) if mask >> b & 1]
        kind = classify(_drop(ours, drop), theirs, pk.copies, pk.fragments)
        if kind is not None:
            return (*kind, "dropped after marker")
    return None


#: tshark's marker, as found in its output.
MARKER = re.compile(rb"\[(\d+) bytes missing in capture file\]\x00")


def shown_markers(theirs: bytes) -> int:
    """How many of tshark's bytes are its markers (not captured bytes)."""
    return sum(len(m.group(0)) for m in MARKER.finditer(theirs))


def judge(
    ours: Sequence[Token],
    theirs: bytes | None,
    mine: Sequence[Frame],
    peer: Sequence[Frame],
) -> tuple[tuple[str, ...] | None, str | None]:
    """One of our directions against tshark's Follow output (``theirs``; None where
    that is no reference) and against the packets: ``mine`` the sender's frames,
    ``peer`` the other side's (their ACKs). Returns the named differences (None when
    unexplained) and what is wrong (None when nothing is).

    The packet check runs on every direction, identical or not: a difference may only
    be named when every byte we deliver is the packets' own."""
    ev = evidence(ours, mine, complete=theirs is None)
    if ev.problem is not None:
        return None, ev.problem
    assert ev.packets is not None
    if theirs is None:
        return (), None
    kind = classify(ours, theirs, ev.packets.copies, ev.packets.fragments)
    if kind is None:
        kind = dropped_after_marker(ours, theirs, ev.packets, peer)
    if kind is None:
        rendered = render(ours)[0]
        at = first_difference(rendered, theirs)
        return None, (
            f"bytes differ at {at} (ours {len(rendered)} rendered, tshark {len(theirs)}):"
            f" ours {_excerpt(rendered, at)} tshark {_excerpt(theirs, at)}"
        )
    return kind, None


def first_difference(a: bytes, b: bytes) -> int:
    """Offset of the first byte where ``a`` and ``b`` differ (or the shorter length)."""
    n = min(len(a), len(b))
    return next((i for i in range(n) if a[i] != b[i]), n)


def _excerpt(data: bytes, at: int) -> str:
    return data[max(0, at - 8) : at + 16].hex() or "(end)"


def client_by_packets(
    frames: Sequence[tuple[Endpoint, Frame]], ends: tuple[Endpoint, Endpoint]
) -> tuple[Endpoint, str]:
    """The client by the packets, as the README's rule says: the sender of a SYN without
    ACK (the first one captured if both sent one), else the receiver of a SYN-ACK, else
    (picked up mid-stream) the side not on the likely server port (a port below 1024
    against one that is not, else the lower port; equal ports: the first sender).
    ``frames``: (sender, frame) of the connection's packets, as tshark decoded them
    (``tcp.flags``, ``tcp.srcport``); ``ends``: the two endpoints, first sender first.
    Returns the client and the part of the rule that decided."""
    a, b = ends
    other = {a: b, b: a}
    ordered = sorted(frames, key=lambda x: x[1].number)
    syn = [(e, f) for e, f in ordered if f.flags & SYN and not f.flags & ACK]
    if syn:
        return syn[0][0], f"sent the first SYN, frame {syn[0][1].number}"
    synack = {e for e, f in ordered if f.flags & SYN and f.flags & ACK}
    if len(synack) == 1:
        (server,) = synack
        return other[server], "received the SYN-ACK"
    (_, pa), (_, pb) = a, b
    if (pa < WELL_KNOWN) != (pb < WELL_KNOWN):
        return (b, "port") if pa < WELL_KNOWN else (a, "port")
    if pa != pb:
        return (b, "port") if pa < pb else (a, "port")
    return a, "first sender"


# --------------------------------------------------------------------------- the packets


@dataclass
class _Piece:
    """The first captured copy of a range of one direction's sequence space."""

    start: int  # sequence number relative to the direction's base, in [0, 2**32)
    data: bytes
    frame: int

    @property
    def end(self) -> int:
        return self.start + len(self.data)


class Packets:
    """One direction's captured payload, each frame's own ``tcp.payload`` placed at its
    sequence number, the first copy of each byte in capture order winning: exactly the
    bytes the packets carry, with no reassembler's judgement (tshark's or ours) in
    between.

    Positions are relative to ``base`` (the sequence number of our offset 0) and
    unwrapped frame by frame in capture order: each frame lands at the position
    nearest to the previous frame's (sequence numbers are 32 bits; a stream longer than
    4 GiB goes round several times, one step at a time). A segment whose sequence
    number is damaged lands far away, and the next ordinary segment lands next to its
    predecessors again: a retransmission can never be placed 4 GiB after the original.
    """

    def __init__(self, frames: Sequence[Frame], base: int) -> None:
        self.base = base
        self.pieces: list[_Piece] = []
        self._starts: list[int] = []
        #: Positions that captured copies gave different bytes, with every value seen.
        self.copies: dict[int, set[int]] = {}
        #: Positions inside segments whose IP fragments overlapped (tshark flags them;
        #: its tcp.payload is its own choice of copy, so their value is not compared).
        self.fragments: set[int] = set()
        #: (start, end) of payload the snap length cut (frame.len - frame.cap_len).
        self.cut: list[tuple[int, int]] = []
        #: Position of the first FIN (capture order) that ends the stream: not one below
        #: offset 0 (a fake FIN before the sender's SYN) nor one on a SYN (SYN+FIN is no
        #: valid close, only a scanner's or a fuzzer's): nothing is stream past it.
        self.fin: tuple[int, int] | None = None  # (position, frame number)
        #: (start, end) of payload that tshark gives as text only (a RST's): there,
        #: only that some packet carries a byte is checked, not its value.
        self.opaque: list[tuple[int, int]] = []
        ordered = sorted(frames, key=lambda fr: fr.number)
        for f, rel in zip(ordered, unwrap([f.data_seq for f in ordered], base), strict=True):
            if f.payload:
                self._paint(rel, f.payload, f.number)
            if f.opaque:
                self.opaque.append((rel, rel + f.length - f.cut))
            if f.fragment_conflict:
                self.fragments.update(rel + k for k in range(f.length))
            if f.cut:
                at = rel + len(f.payload)
                self.cut.append((at, at + f.cut))
            if f.flags & FIN and not f.flags & SYN and self.fin is None and rel >= 0:
                self.fin = (rel + f.length, f.number)

    def _paint(self, start: int, data: bytes, frame: int) -> None:
        end = start + len(data)
        i = max(0, bisect.bisect_right(self._starts, start) - 1)
        pos = start
        new: list[_Piece] = []
        while i < len(self.pieces) and self.pieces[i].start < end:
            p = self.pieces[i]
            i += 1
            if p.end <= pos:
                continue
            if p.start > pos:
                new.append(_Piece(pos, data[pos - start : p.start - start], frame))
            lo, hi = max(p.start, pos), min(p.end, end)
            old, now = p.data[lo - p.start : hi - p.start], data[lo - start : hi - start]
            if old != now:
                for k in range(hi - lo):
                    if old[k] != now[k]:
                        self.copies.setdefault(lo + k, {old[k]}).add(now[k])
            pos = hi
        if pos < end:
            new.append(_Piece(pos, data[pos - start :], frame))
        for p in new:
            k = bisect.bisect_left(self._starts, p.start)
            self._starts.insert(k, p.start)
            self.pieces.insert(k, p)

    def covering(self, start: int, end: int) -> Iterator[_Piece]:
        """The pieces overlapping positions ``start..end`` (no wrap), in order."""
        i = max(0, bisect.bisect_right(self._starts, start) - 1)
        while i < len(self.pieces) and self.pieces[i].start < end:
            if self.pieces[i].end > start:
                yield self.pieces[i]
            i += 1

    def mismatch(self, offset: int, data: bytes) -> str | None:
        """Why our ``data`` at stream ``offset`` is not the first captured copy there
        (None if it is): a byte no packet carries, or another value."""
        start = offset
        pos = start
        for p in self.covering(start, start + len(data)):
            pos = self._skip_opaque(pos, p.start)
            if p.start > pos:
                break
            hi = min(p.end, start + len(data))
            mine = data[pos - start : hi - start]
            theirs = p.data[pos - p.start : hi - p.start]
            if mine != theirs:
                for k in range(len(mine)):
                    if mine[k] != theirs[k] and pos + k not in self.fragments:
                        return (
                            f"offset {offset + pos - start + k}: ours {mine[k]:#04x}, the"
                            f" first captured copy (frame {p.frame}) {theirs[k]:#04x}"
                        )
            pos = hi
        pos = self._skip_opaque(pos, start + len(data))
        if pos < start + len(data):
            return f"offset {offset + pos - start}: no captured packet carries this byte"
        return None

    def _skip_opaque(self, pos: int, end: int) -> int:
        """Past the opaque ranges from ``pos`` on (at most to ``end``)."""
        moved = True
        while moved and pos < end:
            moved = False
            for lo, hi in self.opaque:
                if lo <= pos < hi:
                    pos, moved = min(hi, end), True
        return pos

    def first_frame(self, offset: int) -> int | None:
        """The frame that first carried the byte at stream ``offset``."""
        for p in self.covering(offset, offset + 1):
            return p.frame
        return None


def _signed(n: int) -> int:
    """A difference of sequence numbers as the nearest signed distance."""
    n %= MOD
    return n - MOD if n >= HALF else n


def unwrap(seqs: Sequence[int], base: int) -> list[int]:
    """Positions of raw sequence numbers (capture order) relative to ``base``, each at
    the distance nearest to the last trusted one. A jump of 2**30 or more is trusted
    only when the next number lands near it (a sparse capture of a long transfer
    moves on from there; a damaged sequence number is alone), so one damaged number
    cannot carry the next ordinary one 4 GiB away."""
    out: list[int] = []
    ref: tuple[int, int] | None = None  # (raw sequence number, position)
    for k, seq in enumerate(seqs):
        if ref is None:
            ref = (seq, _signed(seq - base))
            out.append(ref[1])
            continue
        delta = _signed(seq - ref[0])
        pos = ref[1] + delta
        out.append(pos)
        if abs(delta) < JUMP or (k + 1 < len(seqs) and abs(_signed(seqs[k + 1] - seq)) < JUMP):
            ref = (seq, pos)
    return out


def _bases(ours: Sequence[Token], frames: Sequence[Frame]) -> list[int]:
    """Candidate sequence numbers for our offset 0, most likely first: after the
    sender's SYN, then the ones most frames' payloads agree with (found in our bytes).
    Any candidate is then checked byte by byte, so a wrong one can only fail."""
    out: list[int] = []
    syn = next((f for f in sorted(frames, key=lambda f: f.number) if f.flags & SYN), None)
    if syn is not None:
        out.append((syn.seq_raw + 1) % MOD)
    runs = [t for t in ours if isinstance(t, Run)]
    votes: Counter[int] = Counter()
    with_data = sorted((f for f in frames if f.payload), key=lambda f: -len(f.payload))
    for f in with_data[:MAX_VOTERS]:
        for t in runs:
            at = t.data.find(f.payload)
            if at >= 0:
                votes[(f.data_seq - t.offset - at) % MOD] += 1
                break
    out += [b for b, _ in votes.most_common(MAX_BASES) if b not in out]
    # Picked up mid-stream, pcapflows' offset 0 is the lowest sequence number seen;
    # the first segment's is the next guess.
    data = [f for f in sorted(frames, key=lambda f: f.number) if f.payload]
    if data:
        low = min((_signed(f.data_seq - data[0].data_seq), f.data_seq) for f in data)[1]
        out += [b for b in (low, data[0].data_seq) if b not in out]
    return out


@dataclass
class Evidence:
    """One direction checked against its packets: the placed payload (None when our
    bytes cannot be placed at all) and what is wrong (None when nothing is)."""

    packets: Packets | None
    problem: str | None


def evidence(ours: Sequence[Token], frames: Sequence[Frame], complete: bool = False) -> Evidence:
    """Check one of our directions against the packets its sender sent (``frames``:
    tshark's per-frame fields, quoted headers and frames pcapflows reported as damage
    left out). Every byte we deliver must be the first captured copy at its sequence
    number, our offsets may not span more than 2**32 (the same captured byte used
    twice, 4 GiB apart), nothing may lie at or past the sender's FIN, and a ``snaplen``
    hole must be payload that the snap length cut (``frame.len - frame.cap_len``) and
    that no packet carries. ``complete``: every captured byte below the FIN must also
    be ours (used where tshark's Follow is not a reference)."""
    bases = _bases(ours, frames) or [0]
    first: Evidence | None = None
    for base in bases:
        pk = Packets(frames, base)
        ev = Evidence(pk, _problem(ours, pk, complete))
        if ev.problem is None:
            return ev
        first = first or ev
    assert first is not None
    return first


def _problem(ours: Sequence[Token], pk: Packets, complete: bool) -> str | None:
    for t in ours:
        if isinstance(t, Run):
            bad = pk.mismatch(t.offset, t.data)
            if bad is not None:
                return f"not the packets' bytes: {bad}"
            if pk.fin is not None and t.offset + len(t.data) > pk.fin[0]:
                past = t.offset + len(t.data) - max(t.offset, pk.fin[0])
                return f"{past} bytes at or past the FIN (frame {pk.fin[1]}, offset {pk.fin[0]})"
        elif t.cause == "snaplen":
            end = t.offset + t.length
            covered = t.offset
            for lo, hi in sorted(pk.cut):
                if lo <= covered < hi:
                    covered = min(end, max(covered, hi))
            if covered < end:
                return (
                    f"snaplen gap {t.offset}+{t.length}: offset {covered} is not payload"
                    " that the snap length cut (frame.len - frame.cap_len)"
                )
            if any(True for _ in pk.covering(t.offset, end)):
                return f"snaplen gap {t.offset}+{t.length}: captured packets carry these bytes"
    if complete:
        mine = sum(len(t.data) for t in ours if isinstance(t, Run))
        limit = pk.fin[0] if pk.fin is not None else max((p.end for p in pk.pieces), default=0)
        captured = sum(min(p.end, limit) - p.start for p in pk.pieces if p.start < limit)
        if mine != captured:
            return f"{mine} bytes delivered, the packets carry {captured} (below any FIN)"
    return None


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
            lo, hi = s.packets[0].number, s.packets[-1].number
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
    syn = s.packets[0]
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
    paired flow had closed (FIN, RST or idle) before it. ``idle split``: see
    :func:`_attach_split`."""
    if _payload(f):
        return _attach_split(f, pairs)
    first, last = _range(f)
    for p in pairs:
        numbers = {fr.number for fr in p.streams[0].packets}
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


def _attach_split(f: pcapflows.TCPFlow, pairs: list[Pair]) -> bool:
    """``idle split``: flow ``f`` lies inside a tshark stream, starts with the first
    frame after a silence of that stream longer than pcapflows' idle timeout (by the
    capture times tshark reads), and the pair's latest flow ends just before it."""
    first, last = _range(f)
    for p in pairs:
        frames = sorted(p.streams[0].packets, key=lambda fr: fr.number)
        numbers = {fr.number for fr in frames}
        if not (first in numbers and last in numbers):
            continue
        before = [fr for fr in frames if fr.number < first]
        after = next((fr for fr in frames if fr.number == first), None)
        if not before or after is None or _range(p.flows[-1])[1] != before[-1].number:
            continue
        if after.time - max(fr.time for fr in before) > IDLE_TIMEOUT:
            p.flows.append(f)
            p.reasons.append("idle split")
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


class _Context:
    """What the comparison of one pair needs besides the pair."""

    def __init__(self, path: str | os.PathLike[str], cap: Capture) -> None:
        self.path = path
        self.cap = cap


def _senders(p: Pair) -> list[tuple[Endpoint, Frame]]:
    """The pair's packets (quoted headers left out) with their senders, capture order."""
    out = []
    for st in p.streams:
        assert st.nodes is not None
        for fr in st.packets:
            k = st.sender(fr)
            if k is not None:
                out.append((st.nodes[k], fr))
    return sorted(out, key=lambda x: x[1].number)


def _compare_pair(p: Pair, ctx: _Context) -> list[Direction]:
    s, f = p.streams[0], p.flows[0]
    assert s.nodes is not None
    meta = f.metadata["pcapflows"]
    client, server = flow_ends(f)
    sent = _senders(p)
    frames = sorted((fr for st in p.streams for fr in st.packets), key=lambda fr: fr.number)
    common: list[str] = list(dict.fromkeys(p.reasons))
    problems: list[str] = []
    # Roles by the packets (tshark's tcp.flags and ports), never by pcapflows' word.
    first_sender = sent[0][0] if sent else s.nodes[0]
    ends = (first_sender, s.nodes[1] if first_sender == s.nodes[0] else s.nodes[0])
    truth, rule = client_by_packets(sent, ends)
    if client != truth:
        problems.append(f"client: ours {client}, the packets say {truth} ({rule})")
    elif s.nodes[0] != client:
        if frames and frames[0].short and sent and sent[0][0] == client:
            # tshark's Follow skips the first frame (its TCP header was cut), so its
            # node 0 is the next frame's sender; the fixed header was captured.
            common.append("damaged frame")
        else:
            common.append("client by first packet")
    more, why = _span(p, frames, ctx.cap.damaged)
    common += more
    problems += why
    out = []
    for from_client, me in ((True, client), (False, server)):
        side = "client" if from_client else "server"
        d = Direction(s.index, meta["stream"], side, f"{me[0]}:{me[1]}")
        # A connection split by pcapflows' idle timeout: its flows' bytes, in order.
        parts = [f, *(g for g in p.flows[1:] if _payload(g))]
        ours = joined_tokens(parts, from_client)
        d.ours = sum(len(t.data) for t in ours if isinstance(t, Run))
        own = list(problems)
        counted = sum(g.metadata["pcapflows"]["bytes"][side] for g in parts)
        if d.ours != counted:
            own.append(f"byte count: messages {d.ours}, metadata {counted}")
        mine = [fr for e, fr in sent if e == me]
        peer = [fr for e, fr in sent if e != me]
        if "late SYN" in common:
            # tshark's Follow is lossy across its split: the packets are the reference.
            theirs = None
            d.theirs = sum(len(st.sent[st.node(me)]) for st in p.streams)
        else:
            theirs = s.sent[s.node(me)]
            d.theirs = len(theirs)
        kind, bad = judge(ours, theirs, mine, peer)
        if kind is None:
            own.append(bad or "unexplained")
        else:
            d.reasons = tuple(dict.fromkeys((*kind, *common)))
            if theirs is not None and "marker" in kind:
                d.theirs -= shown_markers(theirs)
        if own:
            d.problem = "; ".join(own)
        out.append(d)
    for extra in p.flows[1:]:  # "after close" (no payload), "idle split" (compared above)
        em = extra.metadata["pcapflows"]
        label = "idle split" if _payload(extra) else "after close"
        for side, end in zip(("client", "server"), flow_ends(extra), strict=True):
            d = Direction(s.index, em["stream"], side, f"{end[0]}:{end[1]}")
            d.reasons = (label,)
            out.append(d)
    return out


def _span(p: Pair, frames: list[Frame], damaged: dict[int, str]) -> tuple[list[str], list[str]]:
    """Start and end of the connection (first and last frame, earliest and latest
    time): named reasons and problems. ``frames``: the connection's packets; tshark's
    streams also count headers that ICMP errors or sFlow samples quote ("quoted
    header" when that is what makes tshark's span longer)."""
    reasons: list[str] = []
    problems: list[str] = []
    flows = p.flows
    first = min(_range(f)[0] for f in flows)
    last = max(_range(f)[1] for f in flows)
    everything = [fr for st in p.streams for fr in st.frames]
    if not frames:
        return reasons, ["tshark's stream has no packet that is not a quoted header"]
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
    quoted = [fr for fr in everything if fr.quoted]
    if quoted and (
        min(fr.number for fr in everything) < min(numbers)
        or max(fr.number for fr in everything) > max(numbers)
        or min(fr.time for fr in quoted) < lo
        or max(fr.time for fr in quoted) > hi
    ):
        reasons.append("quoted header")
    return reasons, problems


def _quoted_only(s: TsharkStream) -> list[Direction]:
    """A tshark stream made only of TCP headers that ICMP errors or sFlow samples
    quote: no connection's packet was captured, and pcapflows rightly has no flow."""
    nodes = s.nodes or (("quoted", 0), ("quoted", 0))
    out = []
    for k, node in enumerate(nodes):
        d = Direction(s.index, None, f"node {k}", f"{node[0]}:{node[1]}")
        d.theirs = len(s.sent[k])
        d.reasons = ("quoted header",)
        out.append(d)
    return out


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
    ts = run_tshark(path, guess=len(cap.flows) + 8)
    result.tshark_stderr = ts.stderr
    seen = [fr.number for st in ts.streams.values() for fr in st.frames]
    past_damage = cap.resync is not None and (not seen or max(seen) <= cap.resync)
    if past_damage:
        assert cap.resync is not None
        cap = read_prefix(path, cap.resync)
    result.streams, result.flows = len(ts.streams), len(cap.flows)
    ctx = _Context(path, cap)
    streams = {}
    for sid, s in ts.streams.items():
        if s.packets:
            streams[sid] = s
        else:
            result.directions += _quoted_only(s)
    for p in pair(cap.flows, streams):
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
