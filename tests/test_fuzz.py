"""Fuzzing ``pcapflows.read``: whatever the bytes, only the file header may fail a read.

The contract under test (README, :mod:`pcapflows.errors`): :class:`pcapflows.CaptureError`
may come out of the ``pcapflows.read(...)`` call itself, for a file header that is not a
capture; after that, iterating the reader and using its flows never raises, never hangs,
never allocates memory because a length field says so, and every piece of damage is
counted in ``reader.stats`` and reported with one :class:`pcapflows.PcapflowsWarning`.

Inputs are real captures (``captures/`` and, when present, the shared corpus) mutated by
hypothesis: byte flips, 4-byte fields set to extreme values, truncation, deleted,
duplicated, spliced and inserted ranges, and targeted edits of the length fields of
pcap records and pcapng blocks, whose offsets come from a small parser written here
(independent of pcapflows, so a reader bug cannot hide the field it misreads). A second
family builds well-formed containers around random frames, per link type, so that the
decoder and the reassembler see garbage behind valid headers.

``test_damage.py`` checks hand-made damage on synthetic captures; this file complements it
with real captures, random damage, and the memory bound. Example counts are bounded for CI
by ``PCAPFLOWS_FUZZ_EXAMPLES``; ``fuzz/README.md`` has the longer runs.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import signal
import struct
import tracemalloc
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tcptable import CORPUS

import pcapflows
from pcapflows.cli.listing import row
from pcapflows.cli.views import view
from pcapflows.stats import MAX_ANOMALY_DETAILS

ROOT = Path(__file__).resolve().parent.parent
CAPTURES = ROOT / "captures"
# The shared corpus (CORPUS: PCAPFLOWS_CORPUS, see tcptable.py) adds seeds; they are simply
# left out when it is absent (and under CI, conftest.py stops a run without it).

Order = Literal["finish", "first_packet"]
ORDERS: list[Order] = ["finish", "first_packet"]

#: Examples per hypothesis test. The default keeps the whole file near half a minute on
#: a 2-core machine; ``PCAPFLOWS_FUZZ_EXAMPLES=20000`` is the long run (fuzz/README.md).
EXAMPLES = int(os.environ.get("PCAPFLOWS_FUZZ_EXAMPLES", "300"))
#: Seconds one read of one fuzzed input (at most a few tens of KB) may take. A real hang
#: is interrupted by a timer, so the run fails with the input instead of stalling CI.
READ_TIMEOUT = float(os.environ.get("PCAPFLOWS_FUZZ_TIMEOUT", "20"))
#: Peak Python allocation allowed for reading one such input. Inputs are under 64 KB and
#: every buffer in pcapflows is bounded by the bytes really present, so anything near a
#: megabyte can only come from trusting a length field.
PEAK_LIMIT = 4 * 1024 * 1024
#: Seeds are truncated (at a record boundary) to this size, so examples stay fast.
SEED_MAX = 20_000

#: Anomaly kinds the capture reader (not the decoder) counts: damage to the container,
#: which concerns no packet that reached ``stats.packets``.
CONTAINER_KINDS = frozenset(
    {
        "truncated record",
        "absurd record length",
        "truncated block",
        "bad section header",
        "bad block length",
        "bad interface block",
        "bad packet block",
        "truncated compressed data",
    }
)
#: The decoder's catch-all for an exception no layer anticipated: a bug being masked, so
#: the fuzz tests treat it as a failure even though the read went on.
UNEXPECTED = "undecodable packet"

# -- a small independent parser for the seeds ---------------------------------------------

PCAP_MAGICS = {0xA1B2C3D4: 0, 0xA1B23C4D: 0, 0xA1B2CD34: 8}
SHB, IDB, PB, SPB, EPB = 0x0A0D0D0A, 1, 2, 3, 6
PACKET_BLOCKS = frozenset((PB, SPB, EPB))
#: Kinds of :class:`Record` that are not pcapng block types.
PCAP_HEADER, PCAP_RECORD = -1, -2


@dataclass(frozen=True)
class Record:
    """One pcap record, pcap file header or pcapng block, located in the seed's bytes.

    ``data_at``/``data_len`` locate the frame (-1 when the record carries none) and
    ``max_len`` is the largest frame the record may hold without exceeding a snap length.
    """

    kind: int
    start: int
    end: int
    endian: str
    data_at: int = -1
    data_len: int = 0
    max_len: int = 262144


@dataclass(frozen=True)
class Seed:
    """A real capture, decompressed and cut to size, with its records located."""

    name: str
    content: bytes
    gzipped: bool
    fmt: str
    records: tuple[Record, ...]

    @property
    def packets(self) -> int:
        """Frames in the capture (pcap records, pcapng packet blocks)."""
        return sum(1 for r in self.records if r.kind in (PCAP_RECORD, *PACKET_BLOCKS))

    @property
    def boundaries(self) -> list[int]:
        """Offsets at which the capture can be cut without cutting a record."""
        return [r.end for r in self.records]


def parse_pcap(data: bytes) -> list[Record]:
    """Records of a classic pcap, stopping at the first one that does not fit."""
    for endian in "<>":
        (magic,) = struct.unpack(endian + "I", data[:4])
        if magic in PCAP_MAGICS:
            break
    else:
        raise ValueError("not a pcap")
    extra = PCAP_MAGICS[magic]
    snaplen = struct.unpack_from(endian + "I", data, 16)[0] or 262144
    out = [Record(PCAP_HEADER, 0, 24, endian)]
    pos = 24
    while pos + 16 + extra <= len(data):
        incl = struct.unpack_from(endian + "I", data, pos + 8)[0]
        end = pos + 16 + extra + incl
        if end > len(data):
            break
        out.append(Record(PCAP_RECORD, pos, end, endian, pos + 16 + extra, incl, snaplen))
        pos = end
    return out


def parse_pcapng(data: bytes) -> list[Record]:
    """Blocks of a pcapng, following each section's byte order, up to the first bad one."""
    out: list[Record] = []
    endian = "<"
    snaplens: list[int] = []
    pos = 0
    while pos + 12 <= len(data):
        if data[pos : pos + 4] == b"\x0a\x0d\x0d\x0a":
            endian = "<" if data[pos + 8 : pos + 12] == b"\x4d\x3c\x2b\x1a" else ">"
            snaplens = []
        btype, blen = struct.unpack_from(endian + "II", data, pos)
        if blen < 12 or blen % 4 or pos + blen > len(data):
            break
        data_at, data_len, max_len = -1, 0, 262144
        if btype == IDB:
            snaplens.append(struct.unpack_from(endian + "I", data, pos + 12)[0] or 262144)
        elif btype in (EPB, PB):
            iid = struct.unpack_from(endian + ("I" if btype == EPB else "H"), data, pos + 8)[0]
            data_at, data_len = pos + 28, struct.unpack_from(endian + "I", data, pos + 20)[0]
            max_len = snaplens[iid] if iid < len(snaplens) else 0
        elif btype == SPB and snaplens:
            orig = struct.unpack_from(endian + "I", data, pos + 8)[0]
            data_len = min(orig, blen - 16, snaplens[0])  # what a reader can take
        out.append(Record(btype, pos, pos + blen, endian, data_at, data_len, max_len))
        pos += blen
    return out


def load_seed(path: Path) -> Seed:
    """Read, decompress and cut one seed capture at its last record boundary <= SEED_MAX."""
    raw = path.read_bytes()
    gzipped = raw[:2] == b"\x1f\x8b"
    content = gzip.decompress(raw) if gzipped else raw
    fmt = "pcapng" if content[:4] == b"\x0a\x0d\x0d\x0a" else "pcap"
    records = parse_pcapng(content) if fmt == "pcapng" else parse_pcap(content)
    kept = [r for r in records if r.end <= SEED_MAX] or records[:1]
    return Seed(path.name, content[: kept[-1].end], gzipped, fmt, tuple(kept))


def modified_pcap(seed: Seed) -> Seed:
    """The same capture in the "modified" pcap format (magic a1b2cd34, 8 more bytes per
    record header), which no seed file uses."""
    e = seed.records[0].endian
    out = bytearray(struct.pack(e + "I", 0xA1B2CD34) + seed.content[4:24])
    for r in seed.records[1:]:
        out += seed.content[r.start : r.start + 16] + b"\0" * 8 + seed.content[r.start + 16 : r.end]
    content = bytes(out)
    return Seed(seed.name + " (modified)", content, False, "pcap", tuple(parse_pcap(content)))


#: (directory, file): small captures covering both byte orders, micro and nanoseconds,
#: pcapng with several sections and interfaces, gzip, and the supported link types.
SEED_FILES = [
    (CAPTURES, "link_ethernet.pcap"),
    (CAPTURES, "pcap_big_endian.pcap"),
    (CAPTURES, "pcap_nanosecond.pcap"),
    (CAPTURES, "pcapng_two_interfaces.pcapng"),
    (CAPTURES, "gzip_pcap.pcap.gz"),
    (CAPTURES, "gzip_pcapng.pcapng.gz"),
    (CAPTURES, "demo.pcapng"),
    (CAPTURES, "link_sll.pcap"),
    (CAPTURES, "link_sll2.pcap"),
    (CAPTURES, "link_raw_101.pcap"),
    (CAPTURES, "link_null_le_af30.pcap"),
    (CAPTURES, "link_null_be_ipv4.pcap"),
    (CAPTURES, "link_loop.pcap"),
    (CAPTURES, "link_qinq.pcap"),
    (CAPTURES, "link_ipv6_229.pcap"),
    (CAPTURES, "ipv4_fragments.pcap"),
    (CAPTURES, "ipv6_fragments.pcap"),
    (CAPTURES, "ipv6_ext_headers.pcap"),
    (CAPTURES, "rule_snaplen.pcap"),
    (CORPUS, "formats/gopacket__be__test202.pcapng"),
    (CORPUS, "formats/pcapplusplus__many_interfaces-1.pcapng"),
    (CORPUS, "formats/zeek__get-to-ssh-server.pcap"),
    (CORPUS, "formats/pcapplusplus__nanosecs_big_endian.pcap"),
    (CORPUS, "formats/scapy__http_head.pcapng.gz"),
    (CORPUS, "formats/tcpdump__tcp-handshake-nano.pcap"),
    (CORPUS, "linktypes/arkime__80211http.pcap"),
    (CORPUS, "linktypes/zeek__nflog-http.pcap"),
    (CORPUS, "linktypes/suricata__decode-chdlc-01__hdlc-http_1tx.pcap"),
    (CORPUS, "linktypes/suricata__bug-6887-defrag-ppp-ipv6-tcp__frag-ppp-ipv6-tcp.pcap"),
    (CORPUS, "linktypes/suricata__bug-4810__pppoe-session-http.pcap"),
    (CORPUS, "linktypes/arkime__mpls-basic.pcap"),
]


def _load_seeds() -> list[Seed]:
    seeds = [load_seed(d / f) for d, f in SEED_FILES if (d / f).is_file()]
    seeds.append(modified_pcap(seeds[0]))
    return seeds


#: Loaded once per module: every example picks one of these.
SEEDS = _load_seeds()
SEED_BY_NAME = {s.name: s for s in SEEDS}

# -- running a read and checking everything that must hold --------------------------------


class Hang(BaseException):
    """Raised by the timer in a read that takes too long. A BaseException, because the
    decoder turns any Exception into a counted anomaly and would swallow it."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Interrupt the block with :class:`Hang` after ``seconds`` (POSIX main thread only;
    elsewhere the block simply runs)."""
    if not hasattr(signal, "setitimer"):
        yield
        return

    def fire(signum: int, frame: object) -> None:
        raise Hang(f"read took more than {seconds} s")

    try:
        old = signal.signal(signal.SIGALRM, fire)
    except ValueError:  # not the main thread
        yield
        return
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


class Trickle(io.RawIOBase):
    """A stream that returns at most ``step`` bytes per read, like a pipe."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data = memoryview(data)
        self._pos = 0
        self._step = max(1, step)

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = min(len(b), self._step, len(self._data) - self._pos)
        b[:n] = self._data[self._pos : self._pos + n]
        self._pos += n
        return n


#: How the bytes reach pcapflows. "buffered" behaves like an opened file (a
#: BufferedReader allocates the size asked for before reading); "trickle" like a pipe.
SOURCES = ("bytesio", "buffered", "trickle")


def make_source(data: bytes, kind: str) -> BinaryIO:
    """``data`` as the kind of stream named (see :data:`SOURCES`)."""
    if kind == "buffered":
        return io.BufferedReader(io.BytesIO(data))
    if kind == "trickle":
        return Trickle(data, 7)  # type: ignore[return-value]
    return io.BytesIO(data)


@dataclass
class Outcome:
    """What one read gave: None flows when the header was refused."""

    flows: list[pcapflows.TCPFlow] | None
    stats: pcapflows.ReadStats
    warnings: list[warnings.WarningMessage]
    peak: int = 0


def read_capture(
    data: bytes,
    *,
    order: Order = "finish",
    source: str = "bytesio",
    measure: bool = False,
    options: dict[str, Any] | None = None,
) -> Outcome:
    """Read ``data`` the way a user would and check the contract on the way.

    Only the ``pcapflows.read`` call may raise, and only CaptureError. Iterating and
    using every flow (state, messages, the CLI's renderings) must not raise at all.
    """
    stats = pcapflows.ReadStats()
    if measure:
        tracemalloc.start()
    try:
        with warnings.catch_warnings(record=True) as caught, time_limit(READ_TIMEOUT):
            warnings.simplefilter("always")
            try:
                reader = pcapflows.read(
                    make_source(data, source),
                    order=order,
                    limits=pcapflows.Limits(**(options or {})),
                )
            except pcapflows.CaptureError:
                return Outcome(None, stats, list(caught))
            flows = []
            for flow in reader:
                touch(flow)
                flows.append(flow)
        peak = tracemalloc.get_traced_memory()[1] if measure else 0
    finally:
        if measure:
            tracemalloc.stop()
    out = Outcome(flows, reader.stats, list(caught), peak)
    check_outcome(out, order)
    return out


def touch(flow: pcapflows.TCPFlow) -> None:
    """Use a flow the way callers do: its state (and a round trip of it), its messages,
    and the CLI's summary and follow output."""
    state = flow.get_state()
    assert pcapflows.TCPFlow.from_state(state).get_state() == state
    for m in flow.messages:
        assert isinstance(m.content, bytes) and m.content
        m.get_state()
    row(flow, exact=False)
    for _ in view(flow):
        pass


def check_outcome(out: Outcome, order: Order) -> None:
    """Invariants of the stats and flows of any read, whatever the input."""
    s, flows = out.stats, out.flows
    assert flows is not None
    for n in (s.packets, s.bytes, s.tcp_segments, s.flows):
        assert isinstance(n, int) and n >= 0
    assert all(v > 0 for v in s.skipped.values())
    assert all(v > 0 for v in s.anomalies.values())
    assert UNEXPECTED not in s.anomalies, s.anomaly_details
    assert len(s.anomaly_details) == min(sum(s.anomalies.values()), MAX_ANOMALY_DETAILS)
    assert all(d.split(":")[0] in s.anomalies for d in s.anomaly_details)
    assert s.flows == len(flows)
    assert s.tcp_segments <= s.packets
    # Every packet read is counted at least once: a segment, a skip or decoder damage.
    decoded = sum(v for k, v in s.anomalies.items() if k not in CONTAINER_KINDS)
    assert s.tcp_segments + sum(s.skipped.values()) + decoded >= s.packets
    # Damage is reported, once, exactly when there was some.
    reported = [w for w in out.warnings if issubclass(w.category, pcapflows.PcapflowsWarning)]
    assert len(reported) == (1 if s.anomalies else 0), [str(w.message) for w in out.warnings]
    assert len(reported) == len(out.warnings), [str(w.message) for w in out.warnings]
    streams = [f.metadata["pcapflows"]["stream"] for f in flows]
    assert sorted(streams) == list(range(len(flows)))
    if order == "first_packet":
        assert streams == sorted(streams)
    content = 0
    for f in flows:
        meta = f.metadata["pcapflows"]
        for side, from_client in (("client", True), ("server", False)):
            sent = sum(len(m.content) for m in f.messages if m.from_client == from_client)
            assert meta["bytes"][side] == sent
            content += sent
        assert 1 <= meta["first_frame"] <= meta["last_frame"]
    # No byte is invented: every message byte was captured in some frame.
    assert content <= s.bytes


# -- mutations ---------------------------------------------------------------------------

#: Values for a 4-byte field: small, around the limits of real frames and of pcapflows'
#: caps, signed and unsigned extremes.
EXTREMES = [
    0,
    1,
    2,
    4,
    8,
    12,
    16,
    20,
    28,
    0x7F,
    0xFF,
    0xFFFF,
    0x10000,
    262144,
    262145,
    64 * 1024 * 1024 - 4,
    64 * 1024 * 1024 + 4,
    0x7FFFFFFF,
    0x80000000,
    0xFFFFFFF0,
    0xFFFFFFFC,
    0xFFFFFFFF,
]

#: Fields worth corrupting, per record kind: (offset, width); a negative offset counts
#: from the end of the record (the pcapng trailing length).
FIELDS: dict[int, list[tuple[int, int]]] = {
    PCAP_HEADER: [(16, 4), (20, 4), (20, 2), (4, 2), (8, 4)],
    PCAP_RECORD: [(8, 4), (8, 4), (12, 4), (0, 4), (4, 4)],
    SHB: [(4, 4), (-4, 4), (8, 4), (12, 2), (16, 4), (20, 4)],
    IDB: [(4, 4), (-4, 4), (0, 4), (8, 2), (12, 4), (16, 2), (18, 2), (20, 4)],
    EPB: [(4, 4), (-4, 4), (0, 4), (20, 4), (20, 4), (24, 4), (8, 4), (12, 4), (16, 4)],
    PB: [(4, 4), (-4, 4), (0, 4), (20, 4), (24, 4), (8, 2)],
    SPB: [(4, 4), (-4, 4), (8, 4)],
}
OTHER_BLOCK_FIELDS = [(4, 4), (-4, 4), (0, 4)]


@st.composite
def field_value(draw: st.DrawFn) -> tuple[str, int]:
    """How to choose a new field value: absolute, relative to the file length, relative
    to the current value, or random."""
    how = draw(st.sampled_from(["abs", "abs", "len", "cur", "rand"]))
    if how == "abs":
        return how, draw(st.sampled_from(EXTREMES))
    if how == "rand":
        return how, draw(st.integers(0, 0xFFFFFFFF))
    return how, draw(st.integers(-64, 64))


def put_field(
    data: bytearray, at: int, width: int, endian: str, how: str, value: int, total: int
) -> None:
    """Write a value chosen by ``how`` into the field at ``data[at:at+width]``."""
    if at < 0 or at + width > len(data):
        return
    fmt = endian + ("I" if width == 4 else "H")
    if how == "len":
        value += total
    elif how == "cur":
        value += struct.unpack_from(fmt, data, at)[0]
    struct.pack_into(fmt, data, at, value % (1 << (8 * width)))


@st.composite
def field_edit(draw: st.DrawFn, seed: Seed) -> Callable[[bytearray], None]:
    """Corrupt one length, type or header field of one record of ``seed``, found with the
    independent parser: this reaches the reader's length checks far more often than
    random flips."""
    rec = draw(st.sampled_from(seed.records))
    offset, width = draw(st.sampled_from(FIELDS.get(rec.kind, OTHER_BLOCK_FIELDS)))
    at = rec.end + offset if offset < 0 else rec.start + offset
    swap = draw(st.integers(0, 4)) == 4  # sometimes the other byte order
    endian = {"<": ">", ">": "<"}[rec.endian] if swap else rec.endian
    how, value = draw(field_value())
    return lambda data: put_field(data, at, width, endian, how, value, len(data))


@st.composite
def byte_edit(draw: st.DrawFn) -> Callable[[bytearray], None]:
    """One blind mutation of the bytes; positions are taken modulo the current length so
    that a list of mutations applies whatever the earlier ones did."""
    op = draw(st.sampled_from(["flip", "set", "put32", "cut", "delete", "dup", "splice", "insert"]))
    pos = draw(st.integers(0, 1 << 16))
    size = draw(st.integers(1, 64))
    if op == "flip":
        bit = draw(st.integers(0, 7))

        def flip(d: bytearray) -> None:
            if d:
                d[pos % len(d)] ^= 1 << bit

        return flip
    if op == "set":
        value = draw(st.integers(0, 255))

        def set_byte(d: bytearray) -> None:
            if d:
                d[pos % len(d)] = value

        return set_byte
    if op == "put32":
        endian = draw(st.sampled_from("<>"))
        how, value = draw(field_value())
        return lambda d: put_field(d, pos % max(1, len(d) - 3), 4, endian, how, value, len(d))
    if op == "cut":
        return lambda d: d.__delitem__(slice(pos % (len(d) + 1), None))
    if op == "delete":
        return lambda d: d.__delitem__(slice(pos % (len(d) + 1), pos % (len(d) + 1) + size))
    if op == "dup":

        def dup(d: bytearray) -> None:
            at = pos % (len(d) + 1)
            d[at:at] = d[at : at + size]

        return dup
    if op == "splice":
        to = draw(st.integers(0, 1 << 16))

        def splice(d: bytearray) -> None:
            if d:
                chunk = d[pos % len(d) : pos % len(d) + size]
                at = to % len(d)
                d[at : at + len(chunk)] = chunk

        return splice
    junk = draw(st.binary(min_size=1, max_size=64))

    def insert(d: bytearray) -> None:
        at = pos % (len(d) + 1)
        d[at:at] = junk

    return insert


@st.composite
def damaged_capture(draw: st.DrawFn) -> bytes:
    """A seed with field edits, then blind byte edits, maybe gzip-wrapped (gzip seeds
    sometimes unwrapped), and maybe blind edits of the compressed bytes too."""
    seed = draw(st.sampled_from(SEEDS))
    data = bytearray(seed.content)
    edits = draw(st.lists(field_edit(seed), max_size=3))
    for edit in edits:
        edit(data)
    # Mostly spare the magic and pcap file header: damage there only gives CaptureError,
    # which says nothing about the rest of the reader.
    keep = draw(st.sampled_from([4 if seed.fmt == "pcapng" else 24] * 3 + [0]))
    body = data[keep:]
    for edit in draw(st.lists(byte_edit(), max_size=6 if edits else 8, min_size=0 if edits else 1)):
        edit(body)
    data[keep:] = body
    if seed.gzipped != (draw(st.integers(0, 4)) == 4):
        packed = bytearray(gzip.compress(bytes(data), mtime=0))
        for edit in draw(st.lists(byte_edit(), max_size=2)):
            edit(packed)
        return bytes(packed)
    return bytes(data)


FUZZ = settings(max_examples=EXAMPLES, deadline=None)

#: Reader options: the defaults, or small limits so that idle timeouts, lingering and the
#: buffer limit above a hole are reached by short fuzzed captures too.
read_options = st.fixed_dictionaries(
    {},
    optional={
        "idle_timeout": st.sampled_from([0.001, 1.0, 60.0]),
        "linger": st.sampled_from([0.0, 0.5]),
        "max_buffer": st.sampled_from([1, 100, 4096]),
    },
)


@FUZZ
@given(damaged_capture(), st.sampled_from(ORDERS), st.sampled_from(SOURCES), read_options)
def test_damaged_captures_never_raise_after_the_header(
    data: bytes, order: Order, source: str, options: dict[str, Any]
) -> None:
    """Random damage to real captures: CaptureError only from the header, the stats and
    flows consistent, every anomaly reported."""
    read_capture(data, order=order, source=source, options=options)


@FUZZ
@given(damaged_capture())
def test_no_length_field_costs_memory(data: bytes) -> None:
    """The same inputs read like an opened file (whose reads allocate what is asked for):
    the peak allocation stays far below what absurd length fields claim."""
    out = read_capture(data, source="buffered", measure=True)
    assert out.peak < PEAK_LIMIT, f"peak {out.peak} bytes for a {len(data)}-byte input"


# -- well-formed containers: every record must come out ------------------------------------


def rewrite_frame(data: bytearray, rec: Record, frame: bytes) -> None:
    """Replace the frame of ``rec`` (already located in ``data``) keeping the container
    consistent: the record's lengths and the pcapng padding follow the new frame."""
    e = rec.endian
    if rec.kind == PCAP_RECORD:
        head = bytearray(data[rec.start : rec.data_at])
        orig = struct.unpack_from(e + "I", head, 12)[0]
        struct.pack_into(e + "II", head, 8, len(frame), max(orig, len(frame)))
        data[rec.start : rec.end] = head + frame
        return
    body = bytearray(data[rec.start + 8 : rec.data_at])
    orig = struct.unpack_from(e + "I", body, 16)[0]
    struct.pack_into(e + "II", body, 12, len(frame), max(orig, len(frame)))
    options = data[rec.data_at + ((rec.data_len + 3) & ~3) : rec.end - 4]
    body += frame + b"\0" * (-len(frame) % 4) + options
    blen = len(body) + 12
    data[rec.start : rec.end] = (
        struct.pack(e + "II", rec.kind, blen) + body + struct.pack(e + "I", blen)
    )


@st.composite
def frame_edit(draw: st.DrawFn, frame: bytes, max_len: int) -> bytes:
    """A damaged version of one frame: cut, flipped, lengthened, emptied or replaced."""
    op = draw(st.sampled_from(["cut", "flip", "grow", "empty", "random", "flip", "cut"]))
    if op == "cut":
        return frame[: draw(st.integers(0, len(frame)))]
    if op == "empty":
        return b""
    if op == "random":
        return draw(st.binary(max_size=min(max_len, 256)))
    if op == "grow":
        return (frame + draw(st.binary(min_size=1, max_size=64)))[:max_len]
    out = bytearray(frame)
    for _ in range(draw(st.integers(1, 4))):
        if out:
            out[draw(st.integers(0, len(out) - 1))] ^= draw(st.integers(1, 255))
    return bytes(out)


UNKNOWN_BLOCK_TYPES = [4, 5, 7, 8, 9, 0xA, 0xBAD, 0x40000BAD, 0x12345678, 0x80000001]


@st.composite
def well_formed_variant(draw: st.DrawFn) -> tuple[str, bytes, int, int]:
    """A seed whose frames are damaged, duplicated or dropped, and (pcapng) with extra
    non-packet blocks, all without breaking the container: nothing stops the read.

    Returns the seed name, the bytes, and how many frames and frame bytes it holds.
    """
    seed = draw(st.sampled_from(SEEDS))
    data = bytearray(seed.content)
    frames = [r for r in seed.records if r.data_at >= 0]  # not SPBs: no room to rewrite
    # Edit from the end so that the offsets of the records still to edit hold.
    chosen = sorted(
        set(draw(st.lists(st.integers(0, len(frames) - 1), max_size=4))) if frames else set(),
        reverse=True,
    )
    for i in chosen:
        rec = frames[i]
        action = draw(st.sampled_from(["edit", "edit", "edit", "dup", "drop", "block"]))
        if action == "edit":
            old = bytes(data[rec.data_at : rec.data_at + rec.data_len])
            rewrite_frame(data, rec, draw(frame_edit(old, rec.max_len or 262144)))
        elif action == "dup":
            data[rec.end : rec.end] = data[rec.start : rec.end]
        elif action == "drop":
            del data[rec.start : rec.end]
        elif seed.fmt == "pcapng":
            btype = draw(st.sampled_from(UNKNOWN_BLOCK_TYPES))
            body = draw(st.binary(max_size=40))
            body += b"\0" * (-len(body) % 4)
            e = rec.endian
            blen = len(body) + 12
            data[rec.end : rec.end] = (
                struct.pack(e + "II", btype, blen) + body + struct.pack(e + "I", blen)
            )
    content = bytes(data)
    recs = parse_pcapng(content) if seed.fmt == "pcapng" else parse_pcap(content)
    assert recs[-1].end == len(content)
    packets = [r for r in recs if r.kind in (PCAP_RECORD, *PACKET_BLOCKS)]
    if draw(st.integers(0, 4)) == 4:
        content = gzip.compress(content, mtime=0)
    return seed.name, content, len(packets), sum(r.data_len for r in packets)


@FUZZ
@given(well_formed_variant(), st.sampled_from(SOURCES))
def test_damaged_frames_do_not_stop_the_read(
    case: tuple[str, bytes, int, int], source: str
) -> None:
    """Frames damaged inside an intact container (cut, zero-length, lying IP and TCP
    lengths, random bytes), records duplicated or dropped, unknown pcapng blocks: every
    record before and after is still read, and the damage is decoder damage only."""
    _, data, packets, size = case
    out = read_capture(data, source=source)
    assert out.stats.packets == packets
    assert out.stats.bytes == size
    assert not CONTAINER_KINDS & set(out.stats.anomalies), out.stats.anomaly_details


@FUZZ
@given(st.data())
def test_cut_anywhere_gives_the_flows_of_the_whole_records(data: st.DataObject) -> None:
    """A real capture cut at any byte gives exactly the flows of the records wholly
    before the cut, plus one counted anomaly when the cut is inside a record or block."""
    seed = data.draw(st.sampled_from(SEEDS))
    first = seed.records[0].end
    cut = data.draw(st.integers(first, len(seed.content)))
    whole = max(b for b in seed.boundaries if b <= cut)
    packed = data.draw(st.booleans())

    def wrap(b: bytes) -> bytes:
        return gzip.compress(b, mtime=0) if packed else b

    got = read_capture(wrap(seed.content[:cut]))
    want = read_capture(wrap(seed.content[:whole]))
    assert got.flows is not None and want.flows is not None
    assert [f.get_state() for f in got.flows] == [f.get_state() for f in want.flows]
    assert got.stats.packets == want.stats.packets
    damage = sum(got.stats.anomalies.values()) - sum(want.stats.anomalies.values())
    assert damage == (0 if cut == whole else 1), got.stats.anomaly_details


# -- random frames behind valid headers, per link type -------------------------------------

#: Every link type pcapflows decodes, and one it does not (147, user-defined).
LINKTYPES = [0, 1, 9, 12, 14, 50, 101, 104, 105, 108, 113, 127, 147, 228, 229, 239, 276]

WIFI_DATA = bytes.fromhex("0801") + b"\0" * 2 + b"\x02" * 18 + b"\0\0"  # 24-byte data header
LLC_SNAP = b"\xaa\xaa\x03\x00\x00\x00"


def link_header(linktype: int, version: int, variant: int) -> bytes:
    """A valid link-layer header for an IP packet of ``version`` (4 or 6) under
    ``linktype``; ``variant`` picks among the encodings a writer may use."""
    et = b"\x08\x00" if version == 4 else b"\x86\xdd"
    af = 2 if version == 4 else (24, 28, 30, 10)[variant % 4]
    if linktype == 0:
        return struct.pack("<I" if variant % 2 else ">I", af)
    if linktype == 108:
        return struct.pack(">I", af)
    if linktype == 1:
        vlans = b"\x81\x00\x00\x64" * (variant % 3)
        return b"\x02" * 6 + b"\x04" * 6 + vlans + et
    if linktype in (9, 50):
        return (b"\xff\x03" if variant % 2 else b"") + (
            b"\x00\x21" if version == 4 else b"\x00\x57"
        )
    if linktype == 104:
        return b"\x0f\x00" + et
    if linktype == 105:
        return WIFI_DATA + LLC_SNAP + et
    if linktype == 127:
        return struct.pack("<BBHI", 0, 0, 8, 0) + WIFI_DATA + LLC_SNAP + et
    if linktype == 113:
        return struct.pack(">HHH8s", 0, 1, 6, b"\x02" * 6) + et
    if linktype == 239:
        return bytes([2 if version == 4 else 10, 0, 0, 0]) + struct.pack("<HH", 1004, 9)
    if linktype == 276:
        return et + struct.pack(">HIHBB8s", 0, 1, 1, 0, 6, b"\x02" * 6)
    return b""  # raw IP (12, 14, 101, 228, 229) and the unsupported 147


HOSTS4 = [bytes([10, 0, 0, i]) for i in (1, 2, 3)]
HOSTS6 = [bytes(15) + bytes([i]) for i in (1, 2, 3)]
FLAGS = [0x02, 0x12, 0x10, 0x18, 0x11, 0x01, 0x04, 0x14, 0x19, 0x00, 0xFF, 0x03, 0x06]


@st.composite
def ip_tcp(draw: st.DrawFn, version: int) -> bytes:
    """An IPv4 or IPv6 packet carrying TCP, from a few hosts and ports so that segments
    meet in connections, with every length field honest by default and sometimes a lie."""
    payload = draw(st.binary(max_size=48))
    words = draw(st.integers(5, 8))  # header words actually present (options are NOPs)
    doff = words if draw(st.integers(0, 5)) else draw(st.integers(0, 15))  # or a lie
    seq = draw(st.sampled_from([0, 1, 1000, 1001, 1010, 0xFFFFFFF0, 0x7FFFFFFF]))
    tcp = struct.pack(
        ">HHIIBBHHH",
        draw(st.sampled_from([80, 443, 1234])),
        draw(st.sampled_from([80, 443, 1234])),
        (seq + draw(st.integers(0, 64))) & 0xFFFFFFFF,
        draw(st.sampled_from([0, 1, 1001, 2001, 0xFFFFFFFF])),
        doff << 4,
        draw(st.sampled_from(FLAGS)),
        draw(st.sampled_from([0, 1, 65535])),
        0,
        0,
    )
    options = b"\x01" * (4 * (words - 5))
    tcp += options + payload
    lie = draw(st.integers(0, 5)) == 0
    if version == 4:
        ihl = draw(st.integers(0, 15)) if lie else 5
        total = draw(st.sampled_from([0, 1, 19, 20, 40, 0xFFFF])) if lie else 20 + len(tcp)
        frag = draw(st.sampled_from([0x4000, 0x2000, 0x0001, 0x2003, 0x1FFF])) if lie else 0x4000
        proto = draw(st.sampled_from([6, 6, 17, 0])) if lie else 6
        ident = draw(st.integers(0, 3))
        src, dst = draw(st.sampled_from(HOSTS4)), draw(st.sampled_from(HOSTS4))
        ip = struct.pack(">BBHHHBBH4s4s", 0x40 | ihl, 0, total, ident, frag, 64, proto, 0, src, dst)
        return ip + b"\0" * (4 * max(0, ihl - 5)) + tcp
    nh = draw(st.sampled_from([6, 0, 43, 44, 51, 59, 60])) if lie else 6
    plen = draw(st.sampled_from([0, 1, 8, 0xFFFF])) if lie else len(tcp)
    src, dst = draw(st.sampled_from(HOSTS6)), draw(st.sampled_from(HOSTS6))
    ext = b""
    if nh != 6:
        ext = bytes([6, draw(st.integers(0, 255))]) + draw(st.binary(min_size=6, max_size=6))
    return struct.pack(">IHBB16s16s", 0x60000000, plen, nh, 64, src, dst) + ext + tcp


@st.composite
def random_frame(draw: st.DrawFn, linktype: int) -> bytes:
    """A frame for ``linktype``: pure random bytes, or a valid link header and IP/TCP
    headers (see :func:`ip_tcp`) possibly cut or flipped afterwards."""
    if draw(st.integers(0, 5)) == 0:
        return draw(st.binary(max_size=120))
    version = draw(st.sampled_from([4, 6]))
    frame = bytearray(link_header(linktype, version, draw(st.integers(0, 3))))
    frame += draw(ip_tcp(version))
    if draw(st.integers(0, 3)) == 0:
        del frame[draw(st.integers(0, len(frame))) :]
    for _ in range(draw(st.integers(0, 2))):
        if frame:
            frame[draw(st.integers(0, len(frame) - 1))] = draw(st.integers(0, 255))
    return bytes(frame)


@st.composite
def synthetic_capture(draw: st.DrawFn) -> tuple[bytes, int, int]:
    """A well-formed pcap (either byte order, micro or nanoseconds) or pcapng (one or two
    interfaces) of random frames; returns the bytes, the frame count and frame bytes."""
    linktype = draw(st.sampled_from(LINKTYPES))
    frames = draw(st.lists(random_frame(linktype), min_size=1, max_size=24))
    t = 1_700_000_000.0
    stamps = []
    for _ in frames:
        t += draw(st.sampled_from([0.0, 0.001, 0.5, 40.0, 700.0, -1.0]))
        stamps.append(max(t, 0.0))
    cut = [draw(st.sampled_from([0, 0, 0, 1, 1000])) for _ in frames]  # snap-length cuts
    if draw(st.booleans()):
        e = draw(st.sampled_from("<>"))
        nano = draw(st.booleans())
        units = 1_000_000_000 if nano else 1_000_000
        out = bytearray(
            struct.pack(e + "IHHiIII", 0xA1B23C4D if nano else 0xA1B2C3D4, 2, 4, 0, 0, 0, linktype)
        )
        for ts, f, extra in zip(stamps, frames, cut, strict=True):
            sec = int(ts)
            out += struct.pack(e + "IIII", sec, int((ts - sec) * units), len(f), len(f) + extra)
            out += f
        return bytes(out), len(frames), sum(map(len, frames))
    e = draw(st.sampled_from("<>"))
    second = draw(st.sampled_from(LINKTYPES))

    def block(btype: int, body: bytes) -> bytes:
        body += b"\0" * (-len(body) % 4)
        return (
            struct.pack(e + "II", btype, len(body) + 12)
            + body
            + struct.pack(e + "I", len(body) + 12)
        )

    out = bytearray(block(SHB, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1)))
    out += block(IDB, struct.pack(e + "HHI", linktype, 0, 0))
    out += block(
        IDB, struct.pack(e + "HHI", second, 0, 0) + struct.pack(e + "HH", 9, 1) + b"\x09\0\0\0"
    )
    for ts, f, extra in zip(stamps, frames, cut, strict=True):
        iid = draw(st.integers(0, 1))
        ticks = int(ts * (1_000_000_000 if iid else 1_000_000))
        head = struct.pack(
            e + "IIIII", iid, ticks >> 32, ticks & 0xFFFFFFFF, len(f), len(f) + extra
        )
        out += block(EPB, head + f)
    return bytes(out), len(frames), sum(map(len, frames))


@FUZZ
@given(synthetic_capture(), st.sampled_from(ORDERS), read_options)
def test_random_frames_in_valid_captures(
    case: tuple[bytes, int, int], order: Order, options: dict[str, Any]
) -> None:
    """Random and half-valid frames under every link type: every record is read and
    accounted for (a segment, a skip or an anomaly), nothing raises, memory stays small."""
    data, packets, size = case
    out = read_capture(data, order=order, source="buffered", measure=True, options=options)
    assert out.flows is not None
    assert out.stats.packets == packets
    assert out.stats.bytes == size
    assert not CONTAINER_KINDS & set(out.stats.anomalies), out.stats.anomaly_details
    assert out.peak < PEAK_LIMIT


# -- the seeds themselves, and fixed damage from the list ---------------------------


@pytest.mark.parametrize("seed", SEEDS, ids=lambda s: s.name)
def test_seeds_are_clean(seed: Seed) -> None:
    """Every seed reads without damage and our parser agrees on its frame count, so the
    properties above measure the mutations, not the seeds."""
    assert seed.records[-1].end == len(seed.content)
    out = read_capture(gzip.compress(seed.content, mtime=0) if seed.gzipped else seed.content)
    assert out.stats.packets == seed.packets
    assert out.stats.bytes == sum(r.data_len for r in seed.records)
    assert not out.stats.anomalies, out.stats.anomaly_details


def flows_by_key(out: Outcome) -> dict[tuple[Any, Any, int], dict[str, Any]]:
    """Flow states keyed by (client, server, first frame)."""
    assert out.flows is not None
    return {
        (
            f.client_conn.peername,
            f.server_conn.address,
            f.metadata["pcapflows"]["first_frame"],
        ): f.get_state()
        for f in out.flows
    }


def ip_offset(linktype: int) -> int:
    """Where the IP header starts in the frames of the seeds used below."""
    return {1: 14, 113: 16, 276: 20, 101: 0}[linktype]


def frame_edit_case(name: str, flow_no: int, edit: Callable[[bytearray, int], None]) -> None:
    """Damage the first data-carrying frame of flow ``flow_no`` of seed ``name`` in place
    and check: every other flow is unchanged, the damaged flow is still there, and the
    damage is counted and reported."""
    seed = SEED_BY_NAME[name]
    clean = read_capture(seed.content, order="first_packet")
    assert clean.flows is not None
    target = clean.flows[flow_no].metadata["pcapflows"]
    frames = [r for r in seed.records if r.data_at >= 0]
    index = target["first_frame"] + 3  # the handshake, then the request
    rec = frames[index - 1]
    e = rec.endian
    if seed.fmt == "pcap":
        linktype = struct.unpack_from(e + "I", seed.content, 20)[0]
    else:
        idbs = [r for r in seed.records if r.kind == IDB]
        idb = idbs[struct.unpack_from(e + "I", seed.content, rec.start + 8)[0]]
        linktype = struct.unpack_from(e + "H", seed.content, idb.start + 8)[0]
    frame = bytearray(seed.content[rec.data_at : rec.data_at + rec.data_len])
    edit(frame, ip_offset(linktype))
    data = bytearray(seed.content)
    rewrite_frame(data, rec, bytes(frame))
    out = read_capture(bytes(data), order="first_packet")
    before, after = flows_by_key(clean), flows_by_key(out)
    # Damaged bytes may still parse as some other segment, so flows may be added.
    assert before.keys() <= after.keys()
    for key, state in before.items():
        frames_of = state["metadata"]["pcapflows"]
        if not frames_of["first_frame"] <= index <= frames_of["last_frame"]:
            assert after[key] == state, key
    assert out.stats.packets == clean.stats.packets
    assert sum(out.stats.anomalies.values()) >= 1
    assert any(issubclass(w.category, pcapflows.PcapflowsWarning) for w in out.warnings)


def _zero_length(f: bytearray, ip: int) -> None:
    del f[:]


def _ihl_too_big(f: bytearray, ip: int) -> None:
    del f[ip + 40 :]
    struct.pack_into(">H", f, ip + 2, 40)
    f[ip] = 0x4F


def _ihl_too_small(f: bytearray, ip: int) -> None:
    f[ip] = 0x43


def _total_length_too_big(f: bytearray, ip: int) -> None:
    struct.pack_into(">H", f, ip + 2, 0xFFF0)


def _total_length_too_small(f: bytearray, ip: int) -> None:
    struct.pack_into(">H", f, ip + 2, 12)


def _tcp_offset_past_end(f: bytearray, ip: int) -> None:
    tcp = ip + (f[ip] & 0x0F) * 4
    del f[tcp + 24 :]
    struct.pack_into(">H", f, ip + 2, len(f) - ip)
    f[tcp + 12] = 0xF0


def _tcp_offset_too_small(f: bytearray, ip: int) -> None:
    f[ip + (f[ip] & 0x0F) * 4 + 12] = 0x20


def _ipv6_payload_too_big(f: bytearray, ip: int) -> None:
    struct.pack_into(">H", f, ip + 4, 0xFFF0)


def _ipv6_tcp_offset_past_end(f: bytearray, ip: int) -> None:
    del f[ip + 40 + 24 :]
    struct.pack_into(">H", f, ip + 4, 24)
    f[ip + 40 + 12] = 0xF0


IPV4_DAMAGE = [
    _zero_length,
    _ihl_too_big,
    _ihl_too_small,
    _total_length_too_big,
    _total_length_too_small,
    _tcp_offset_past_end,
    _tcp_offset_too_small,
]
IPV6_DAMAGE = [_zero_length, _ipv6_payload_too_big, _ipv6_tcp_offset_past_end]


@pytest.mark.parametrize("name", ["link_sll.pcap", "link_sll2.pcap", "gzip_pcapng.pcapng.gz"])
@pytest.mark.parametrize("edit", IPV4_DAMAGE, ids=lambda f: f.__name__.strip("_"))
def test_lying_ipv4_tcp_headers_in_real_captures(
    name: str, edit: Callable[[bytearray, int], None]
) -> None:
    """IPv4/TCP length fields that lie in the request of the IPv4 flow: the IPv6 flow
    after it is untouched and the damage is counted and reported."""
    frame_edit_case(name, 0, edit)


@pytest.mark.parametrize("name", ["link_sll.pcap", "gzip_pcapng.pcapng.gz"])
@pytest.mark.parametrize("edit", IPV6_DAMAGE, ids=lambda f: f.__name__.strip("_"))
def test_lying_ipv6_tcp_headers_in_real_captures(
    name: str, edit: Callable[[bytearray, int], None]
) -> None:
    """The same in the second flow: the flow before it is untouched."""
    frame_edit_case(name, 1, edit)


def test_record_longer_than_the_snap_length_is_counted() -> None:
    """A pcap record whose captured length exceeds the header's snap length is damage the
    issue asks to count; the frame itself is there, so every flow must still come out."""
    seed = SEED_BY_NAME["link_sll.pcap"]
    data = bytearray(seed.content)
    struct.pack_into(seed.records[0].endian + "I", data, 16, 64)  # snaplen 64
    out = read_capture(bytes(data))
    clean = read_capture(seed.content)
    assert flows_by_key(out) == flows_by_key(clean)
    assert sum(out.stats.anomalies.values()) >= 1, "incl_len > snaplen not counted"


def test_unknown_pcapng_block_is_skipped_and_counted() -> None:
    """A block of a type no specification defines, between packets: skipped (every flow
    comes out) and, as the issue asks, a counted anomaly."""
    seed = SEED_BY_NAME["pcapng_two_interfaces.pcapng"]
    rec = [r for r in seed.records if r.kind == EPB][5]
    e = rec.endian
    block = struct.pack(e + "II", 0x0BADF00D, 20) + b"\x5a" * 8 + struct.pack(e + "I", 20)
    data = seed.content[: rec.end] + block + seed.content[rec.end :]
    out = read_capture(data)
    assert flows_by_key(out) == flows_by_key(read_capture(seed.content))
    assert sum(out.stats.anomalies.values()) >= 1, "unknown block type not counted"


# -- memory: a length field is never an allocation size ------------------------------------


def absurd_pcap(claim: int) -> tuple[bytes, bytes]:
    """A real pcap (snap length raised to 0xFFFFFFFF, which writers do use), cut after
    its fourth record, followed by a record header claiming ``claim`` bytes and about a
    kilobyte; returns it and the clean prefix."""
    seed = SEED_BY_NAME["link_ethernet.pcap"]
    e = seed.records[0].endian
    clean = bytearray(seed.content[: seed.records[4].end])
    struct.pack_into(e + "I", clean, 16, 0xFFFFFFFF)
    bad = bytes(clean) + struct.pack(e + "IIII", 1_700_000_001, 0, claim, claim) + b"\xee" * 1000
    return bad, bytes(clean)


def absurd_pcapng(claim: int) -> tuple[bytes, bytes]:
    """A real pcapng cut after its sixth packet block, then an Enhanced Packet Block
    whose total length claims ``claim`` bytes, then about a kilobyte."""
    seed = SEED_BY_NAME["pcapng_two_interfaces.pcapng"]
    rec = [r for r in seed.records if r.kind == EPB][5]
    clean = seed.content[: rec.end]
    bad = clean + struct.pack(rec.endian + "III", EPB, claim, 0) + b"\xee" * 1000
    return bad, clean


#: Claims beyond any cap, and claims just below a 64 MiB cap that a 1 KB file cannot
#: honour either: neither may cost more than a few MB.
CLAIMS = [0xFFFFFFF0, 0x7FFFFFFC, 64 * 1024 * 1024 - 16, 16 * 1024 * 1024]


@pytest.mark.parametrize("how", ["path", "gzip", "bytesio"])
@pytest.mark.parametrize("claim", CLAIMS, ids=hex)
@pytest.mark.parametrize("make", [absurd_pcap, absurd_pcapng], ids=["pcap", "pcapng"])
def test_huge_length_field_costs_no_memory(
    tmp_path: Path, make: Callable[[int], tuple[bytes, bytes]], claim: int, how: str
) -> None:
    """A record or block claiming up to 4 GB in a 1 KB file: read from a file, a gzip
    file or memory, the peak allocation stays under a few MB, the flows before the damage
    come out as if the file ended there, and the damage is counted and reported."""
    bad, clean = make(claim)
    if how == "gzip":
        bad = gzip.compress(bad, mtime=0)
    path = tmp_path / "capture"
    path.write_bytes(bad)
    tracemalloc.start()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            reader = pcapflows.read(path if how != "bytesio" else io.BytesIO(bad))
            flows = [f.get_state() for f in reader]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert flows == [f.get_state() for f in pcapflows.read(io.BytesIO(clean))]
    assert sum(reader.stats.anomalies.values()) == 1, reader.stats.anomaly_details
    assert [w.category for w in caught] == [pcapflows.PcapflowsWarning]
    assert peak < PEAK_LIMIT, f"{peak / 2**20:.1f} MiB allocated for a {len(bad)}-byte file"
