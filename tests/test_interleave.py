"""Other connections never change a flow (issue 9, item 3).

The property: take any capture (the *base*), insert segments of other 4-tuples at any
positions, with timestamps that keep the capture's order, and reassemble both with
:func:`pcapflows.reassemble`. Every flow of the base's 4-tuples must come out identical:
its messages (bytes, direction, timestamps), gaps, conflicts, how it ended (``closed_by``,
``open_at_end``, the RST), history, counters, endpoints and times. Only what legitimately
depends on the other traffic is left out: the stream index (and the ids derived from it).

Why it matters: linger and idle deadlines used to be checked only when some packet moved
the assembler's clock, so whether a late RST, a retransmitted FIN or a keep-alive joined
its flow or started a new one depended on unrelated connections (a capture filtered to
one connection gave other flows than the full capture). The rule (README, semantics): a
connection's deadlines are judged by its own packets' times.

Resource limits are the one allowed exception; the inserted traffic here is a few
segments, far below every default limit, so none can cut in. The extra traffic also stays
within the base's time span (it never extends the capture), because whether a connection
still open at the end of the input ended by "idle" or "end" is a statement about the
capture's end, not about the connection.

Bases are generated connections (handshakes, data with retransmissions, reordering and
lost segments, FIN and RST closes, FINs never acknowledged, late RSTs after the linger,
keep-alives, idle gaps longer than the idle timeout, port reuse) and real captures: the
project's ``captures/`` and a sample of the shared corpus, decoded into segments by
pcapflows' own reader and decoder.
"""

from __future__ import annotations

import dataclasses
import os
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from synth import Endpoint, Talk, capture_segments

import pcapflows
from pcapflows.decode.segment import Segment
from pcapflows.errors import CaptureError

ROOT = Path(__file__).resolve().parent.parent
CAPTURES = ROOT / "captures"
_BESIDE = ROOT.parent / "shared" / "corpus"
CORPUS = Path(os.environ.get("PCAPFLOWS_CORPUS", str(_BESIDE)))

#: ``PCAPFLOWS_EXAMPLES=2000 python -m pytest tests/test_interleave.py`` for a longer run.
EXAMPLES = int(os.environ.get("PCAPFLOWS_EXAMPLES", "150"))
#: Interleavings tried per real capture.
CAPTURE_EXAMPLES = max(1, EXAMPLES // 15)
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

Pair = frozenset[Endpoint]

# -- comparing flows ----------------------------------------------------------------------


def pair_of(seg: Segment) -> Pair:
    return frozenset({(seg.src, seg.sport), (seg.dst, seg.dport)})


def content(flow: pcapflows.TCPFlow) -> dict[str, Any]:
    """Everything a flow says, minus what depends on its place among all connections
    (the stream index, the ids derived from it, and the stream index of the flow it
    continues, which is replaced by whether it continues one)."""
    state = flow.get_state()
    del state["id"]
    del state["client_conn"]["id"]
    del state["server_conn"]["id"]
    meta = state["metadata"]["pcapflows"]
    del meta["stream"]
    meta["follows"] = "follows" in meta
    return state


def flows_between(segments: list[Segment], pairs: set[Pair]) -> list[dict[str, Any]]:
    """The content of the flows of ``pairs``, in order of their first packet."""
    return [
        content(f)
        for f in pcapflows.reassemble(segments, order="first_packet")
        if frozenset({f.client_conn.peername, f.server_conn.address}) in pairs
    ]


def describe(flows: list[dict[str, Any]]) -> list[Any]:
    """A readable digest for assertion messages."""
    return [
        (
            f["client_conn"]["peername"],
            f["metadata"]["pcapflows"]["history"],
            f["metadata"]["pcapflows"]["closed_by"],
            [(m[0], len(m[1]), m[2]) for m in f["messages"]],
        )
        for f in flows
    ]


def assert_unchanged(base: list[Segment], mixed: list[Segment]) -> None:
    pairs = {pair_of(s) for s in base}
    alone = flows_between(base, pairs)
    together = flows_between(mixed, pairs)
    assert len(together) == len(alone), (describe(alone), describe(together))
    for a, b in zip(alone, together, strict=True):
        assert a == b, (describe([a]), differences(a, b))


def differences(a: dict[str, Any], b: dict[str, Any], where: str = "") -> list[str]:
    """The paths at which two flow states differ, with both values."""
    out: list[str] = []
    for k in sorted(set(a) | set(b)):
        x, y = a.get(k), b.get(k)
        if isinstance(x, dict) and isinstance(y, dict):
            out += differences(x, y, f"{where}{k}.")
        elif x != y:
            out.append(f"{where}{k}: {x!r} != {y!r}")
    return out


# -- inserting unrelated traffic ------------------------------------------------------------

#: Hosts of the inserted traffic (TEST-NET-2), never used by the generated bases; real
#: bases are checked not to use them either.
OTHER_HOSTS = [("198.51.100.1", "198.51.100.2"), ("198.51.100.3", "198.51.100.4")]


@st.composite
def other_segment(draw: st.DrawFn) -> tuple[int, float, Segment]:
    """An unrelated segment with a random position key and a fraction saying where its
    timestamp falls between its neighbours; the timestamp is set by :func:`insert`."""
    hosts = draw(st.sampled_from(OTHER_HOSTS))
    k = draw(st.integers(0, 2))
    client: Endpoint = (hosts[0], 30000 + k)
    server: Endpoint = (hosts[1], draw(st.sampled_from([80, 443])))
    isn = draw(st.sampled_from([0, 1000, 2**31, 2**32 - 3]))
    t = Talk(client, server, isn_c=isn, isn_s=isn + 77)
    fl = draw(st.sampled_from(["S", "SA", "A", "PA", "FA", "R", "RA", "FPA"]))
    data = draw(st.binary(min_size=1, max_size=30)) if "P" in fl else b""
    seq = isn + draw(st.integers(-5, 200))
    s = t.packet(0.0, draw(st.sampled_from("cs")), fl, data, seq=seq, ack=seq + 77)
    return draw(st.integers(0, 10**9)), draw(st.sampled_from([0.0, 0.5, 1.0, 0.001])), s


def insert(base: list[Segment], extras: list[tuple[int, float, Segment]]) -> list[Segment]:
    """``base`` with each extra segment inserted at position ``key % (len(base) + 1)``,
    stamped between the timestamps of the base segments around it (the earlier one when
    the base itself goes backwards there), never before the base's first timestamp or
    after its last: the capture's order is kept and its time span unchanged."""
    slots: dict[int, list[tuple[float, Segment]]] = {}
    for key, frac, s in extras:
        slots.setdefault(key % (len(base) + 1), []).append((frac, s))
    out: list[Segment] = []
    for i in range(len(base) + 1):
        lo = base[i - 1].timestamp if i > 0 else base[0].timestamp
        hi = base[i].timestamp if i < len(base) else base[-1].timestamp
        # Several extras in one slot: in order of their fraction, so time never goes back.
        for frac, s in sorted(slots.get(i, []), key=lambda x: x[0]):
            ts = lo + frac * (hi - lo) if hi >= lo else lo
            out.append(dataclasses.replace(s, timestamp=ts))
        if i < len(base):
            out.append(base[i])
    return out


def mixed_with(base: list[Segment], extras: list[tuple[int, float, Segment]]) -> list[Segment]:
    reserved = {h for pair in OTHER_HOSTS for h in pair}
    used = {s.src for s in base} | {s.dst for s in base}
    assert not reserved & used, "the base uses the hosts reserved for the unrelated traffic"
    return insert(base, extras)


# -- generated bases --------------------------------------------------------------------

#: Pauses between packets of one connection: mostly short, some past the 5 s linger,
#: some past the 130 s attempt linger, one past the 3600 s idle timeout.
PAUSES = st.sampled_from([0.0, 0.001, 0.001, 0.01, 0.01, 0.2, 1.0, 6.0, 16.0, 40.0, 200.0, 4000.0])


@st.composite
def connection(draw: st.DrawFn, start: float) -> list[Segment]:
    """One connection's segments, in its own time order."""
    port = 40000 + draw(st.integers(0, 2))  # a small pool: port reuse happens
    t = Talk(
        ("10.1.0.1", port),
        ("10.2.0.1", 80),
        isn_c=draw(st.integers(0, 2**32 - 1)),
        isn_s=draw(st.integers(0, 2**32 - 1)),
    )
    now = start
    segs: list[Segment] = []

    def later() -> float:
        nonlocal now
        now += draw(PAUSES)
        return now

    opening = draw(st.sampled_from(["handshake", "handshake", "none", "attempt-reset"]))
    if opening == "handshake":
        segs += t.handshake(now)
        now += 0.002
    elif opening == "attempt-reset":
        segs.append(t.send(now, "c", "S"))
        segs.append(t.packet(later(), "s", "RA", seq=0))
        if draw(st.booleans()):
            segs.append(t.packet(later(), "c", "S", seq=t.isn["c"]))  # retried SYN
    turns = draw(
        st.lists(
            st.tuples(
                st.sampled_from("cs"),
                st.binary(min_size=1, max_size=40),
                st.sampled_from(["plain", "acked", "retrans", "reorder", "lost", "dup-late"]),
            ),
            max_size=6,
        )
    )
    sent: list[Segment] = []
    for who, data, how in turns:
        peer = Talk.peer(who)
        if how == "reorder" and len(data) > 1:
            h = len(data) // 2
            seq = t.nxt[who]
            segs.append(t.packet(later(), who, "PA", data[h:], seq=seq + h))
            segs.append(t.packet(later(), who, "PA", data[:h], seq=seq))
            t.nxt[who] = (seq + len(data)) & 0xFFFFFFFF
            continue
        s = t.send(later(), who, "PA", data)
        sent.append(s)
        if how != "lost":
            segs.append(s)
        if how in ("acked", "lost"):
            segs.append(t.packet(later(), peer, "A"))
        elif how == "retrans":
            segs.append(dataclasses.replace(s, timestamp=later()))
        elif how == "dup-late":
            segs.append(dataclasses.replace(s, timestamp=now + draw(st.sampled_from([6, 16, 60]))))
    close = draw(st.sampled_from(["fin", "fin-unacked", "fin-one-side", "rst-c", "rst-s", "none"]))
    first = draw(st.sampled_from("cs"))
    second = Talk.peer(first)
    if close.startswith("fin"):
        fin_seq = t.nxt[first]
        segs.append(t.send(later(), first, "FA"))
        if close != "fin-one-side":
            segs.append(t.send(later(), second, "FA"))
            if close == "fin":
                segs.append(t.packet(later(), first, "A"))
            else:
                # The first side never acknowledges the second FIN; the second side
                # resends it, and the first its own FIN.
                segs.append(t.packet(later(), second, "FA", seq=t.nxt[second] - 1))
                segs.append(t.packet(later(), first, "FA", seq=fin_seq))
    elif close.startswith("rst"):
        segs.append(t.packet(later(), close[-1], "R", ack=0))
    for after in draw(
        st.lists(st.sampled_from(["late-rst", "retrans", "keepalive", "ack"]), max_size=2)
    ):
        when = later() + draw(st.sampled_from([1.0, 6.0, 16.0, 60.0]))
        if after == "late-rst":
            segs.append(t.packet(when, draw(st.sampled_from("cs")), "R", ack=0))
        elif after == "retrans" and sent:
            segs.append(dataclasses.replace(draw(st.sampled_from(sent)), timestamp=when))
        elif after == "keepalive":
            who = draw(st.sampled_from("cs"))
            segs.append(t.packet(when, who, "A", b"\x00", seq=t.nxt[who] - 1))
        else:
            segs.append(t.packet(when, draw(st.sampled_from("cs")), "A"))
        now = when
    return segs


@st.composite
def generated_base(draw: st.DrawFn) -> list[Segment]:
    """One to three connections (possibly on the same 4-tuple), merged by timestamp."""
    segs: list[Segment] = []
    for _ in range(draw(st.integers(1, 3))):
        start = 1000.0 + draw(st.sampled_from([0.0, 0.0005, 0.5, 3.0, 10.0, 20.0, 300.0]))
        segs += draw(connection(start))
    if not segs:
        segs = Talk().handshake(1000.0)
    return sorted(segs, key=lambda s: s.timestamp)


@SETTINGS
@given(generated_base(), st.lists(other_segment(), min_size=1, max_size=12))
def test_unrelated_traffic_changes_no_flow(
    base: list[Segment], extras: list[tuple[int, float, Segment]]
) -> None:
    assert_unchanged(base, mixed_with(base, extras))


# -- real captures -----------------------------------------------------------------------

#: Corpus directories whose captures exercise closes, retransmissions and timing; a few
#: files of each, the smallest first, keep the run short.
CORPUS_DIRS = [
    "tcp_rst_fin",
    "tcp_ooo_retrans",
    "tcp_overlap_gap",
    "tcp_midstream",
    "tcp_window_keepalive",
    "sessions",
    "many_flows",
]
#: ``PCAPFLOWS_INTERLEAVE_PER_DIR=1000`` takes every file of those directories, and
#: ``PCAPFLOWS_INTERLEAVE_DIRS=all`` every directory of the corpus.
PER_DIR = int(os.environ.get("PCAPFLOWS_INTERLEAVE_PER_DIR", "3"))
#: Bigger bases make each example slow without exercising anything new.
MAX_SEGMENTS = 3000


def corpus_sample() -> list[Path]:
    if not CORPUS.is_dir():
        return []
    out: list[Path] = []
    dirs = CORPUS_DIRS
    if os.environ.get("PCAPFLOWS_INTERLEAVE_DIRS") == "all":
        dirs = sorted(p.name for p in CORPUS.iterdir() if p.is_dir())
    for d in dirs:
        files = sorted(
            (p for p in (CORPUS / d).glob("*") if p.is_file()),
            key=lambda p: (p.stat().st_size, p.name),
        )
        # Skip the one-packet files: nothing to interleave with.
        out += [p for p in files if p.stat().st_size > 2000][:PER_DIR]
    return out


#: Corpus captures always included: Teredo.pcap holds the two FIN-closed connections
#: whose server RSTs came more than 5 s later, that the issue found.
CORPUS_NAMED = ["tunnels/zeek__Teredo.pcap"]


def named_sample() -> list[Path]:
    return [CORPUS / n for n in CORPUS_NAMED if (CORPUS / n).is_file()]


def unique(paths: list[Path]) -> list[Path]:
    return list(dict.fromkeys(paths))


def _manifest_lines() -> list[str]:
    """The corpus manifest's rows (its header left out)."""
    return (CORPUS / "MANIFEST.tsv").read_text().splitlines()[1:]


OWN = sorted(p for p in CAPTURES.iterdir() if ".pcap" in p.name)
#: The bases of the hypothesis test: the project's captures and a corpus sample.
REAL = unique(OWN + named_sample() + corpus_sample())
#: The exhaustive test is cheap (each segment is reassembled twice): every corpus file.
EVERY = unique(
    OWN
    + (
        # The captures the manifest lists: key logs and tshark's views beside them
        # (``.keys``, ``.oracle.json``) are not captures.
        sorted(CORPUS / line.split("\t", 1)[0] for line in _manifest_lines())
        if CORPUS.is_dir()
        else []
    )
)


@cache
def real_base(path: Path) -> list[Segment]:
    try:
        segs = capture_segments(path)
    except CaptureError:
        return []
    return segs[:MAX_SEGMENTS]


@pytest.mark.parametrize(
    "path", REAL, ids=lambda p: p.name if p.parent == CAPTURES else f"corpus:{p.name}"
)
@settings(
    max_examples=CAPTURE_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(extras=st.lists(other_segment(), min_size=1, max_size=20), data=st.data())
def test_unrelated_traffic_changes_no_flow_of_a_real_capture(
    path: Path, extras: list[tuple[int, float, Segment]], data: st.DataObject
) -> None:
    base = real_base(path)
    if not base:
        pytest.skip(f"{path.name}: no TCP segments")
    # Half of the extras go where the capture is quiet for more than a second: that is
    # where an unrelated packet can move time past some connection's deadline.
    quiet = [i for i in range(1, len(base)) if base[i].timestamp - base[i - 1].timestamp > 1.0]
    if quiet:
        extras = [
            (data.draw(st.sampled_from(quiet)), frac, s) if k % 2 else (key, frac, s)
            for k, (key, frac, s) in enumerate(extras)
        ]
    assert_unchanged(base, mixed_with(base, extras))


def content_by_pair(segments: list[Segment]) -> dict[Pair, list[dict[str, Any]]]:
    out: dict[Pair, list[dict[str, Any]]] = {}
    for f in pcapflows.reassemble(segments, order="first_packet"):
        pair = frozenset({f.client_conn.peername, f.server_conn.address})
        out.setdefault(pair, []).append(content(f))
    return out


@pytest.mark.parametrize(
    "path", EVERY, ids=lambda p: p.name if p.parent == CAPTURES else f"corpus:{p.name}"
)
def test_each_connection_alone_gives_the_flows_of_the_full_capture(path: Path) -> None:
    """The exhaustive form of the property on a real capture: every 4-tuple's segments
    on their own (what ``tcpdump 'host A and port P ...'`` would have kept) give exactly
    the flows that 4-tuple has in the full capture, i.e. all the other traffic changes
    nothing. Two unrelated packets at the capture's first and last timestamps keep its
    time span, which the rest of the traffic would otherwise have extended."""
    full = real_base(path)
    if not full:
        pytest.skip(f"{path.name}: no TCP segments")
    everything = content_by_pair(full)
    first = min(s.timestamp for s in full)
    last = max(s.timestamp for s in full)
    mark = Talk(("198.51.100.3", 30000), ("198.51.100.4", 443), isn_c=5)
    wrong = []
    for pair, flows in everything.items():
        own = [s for s in full if pair_of(s) == pair]
        alone = [mark.packet(first, "c", "S"), *own, mark.packet(last, "c", "S")]
        got = content_by_pair(alone).get(pair, [])
        if got != flows:
            wrong.append((sorted(pair), describe(got), describe(flows)))
    assert not wrong, f"{len(wrong)} of {len(everything)} 4-tuples differ (alone, full): {wrong}"


# -- the crafted cases of the issue ------------------------------------------------------


def unrelated_syn(t: float) -> Segment:
    return Talk(("198.51.100.1", 30000), ("198.51.100.2", 443), isn_c=7).packet(t, "c", "S")


def fin_fin_then_late_rst(final_ack: bool) -> tuple[Talk, list[Segment]]:
    """Data both ways, the client's FIN, the server's FIN (acknowledged by the client only
    if ``final_ack``), then the server's RST 16 s later."""
    t = Talk()
    segs = t.handshake(0.0)
    segs += [t.send(0.3, "c", "PA", b"hello"), t.send(0.4, "s", "PA", b"world")]
    segs += [t.send(1.0, "c", "FA"), t.send(1.1, "s", "FA")]
    if final_ack:
        segs.append(t.packet(1.2, "c", "A"))
    segs.append(t.packet(17.1, "s", "R", ack=0))
    return t, segs


def reset_attempt_then_data_and_rst() -> tuple[Talk, list[Segment]]:
    """A SYN refused with a RST, then 15 s later data from the client and, at the same
    instant, the server's RST."""
    t = Talk()
    segs = [t.send(0.0, "c", "S"), t.packet(0.001, "s", "RA", seq=0)]
    segs += [t.send(15.0, "c", "PA", b"data"), t.packet(15.0, "s", "R", ack=0)]
    return t, segs


def test_fin_fin_then_rst_16s_later_is_one_flow_with_or_without_a_syn_at_10s() -> None:
    """Issue 9 item 3, crafted: the server's FIN is never acknowledged, so the connection
    is not over when its RST comes 16 s later: one flow, with the RST in it, whether or
    not an unrelated SYN arrives at t=10 (it used to give 1 flow alone, 2 with the SYN)."""
    t, segs = fin_fin_then_late_rst(final_ack=False)
    pair = {frozenset(t.ends.values())}
    alone = flows_between(segs, pair)
    together = flows_between(sorted([*segs, unrelated_syn(10.0)], key=lambda s: s.timestamp), pair)
    assert len(alone) == 1, describe(alone)
    assert together == alone, (describe(alone), describe(together))
    meta = alone[0]["metadata"]["pcapflows"]
    assert meta["rst_from"] == "server"
    assert [(m[0], m[1]) for m in alone[0]["messages"]] == [(True, b"hello"), (False, b"world")]


@pytest.mark.parametrize("at", [1.15, 5.0, 6.2, 10.0, 17.0, 17.1])
def test_fin_fin_acknowledged_then_late_rst_same_with_a_syn(at: float) -> None:
    """The same with the final ACK: whatever the rules decide for a RST 16 s after an
    acknowledged close, an unrelated SYN at any time in between changes nothing."""
    _, segs = fin_fin_then_late_rst(final_ack=True)
    mixed = sorted([*segs, unrelated_syn(at)], key=lambda s: s.timestamp)
    assert_unchanged(segs, mixed)


@pytest.mark.parametrize("at", [0.0005, 5.0, 10.0, 14.9, 15.0])
def test_reset_attempt_then_data_and_rst_same_with_a_syn(at: float) -> None:
    """Issue 9 item 3, second crafted case: the flows of a reset attempt followed 15 s
    later by data and the server's RST at the same instant do not depend on an unrelated
    SYN (it used to decide whether the RST joined the flow); the 4 data bytes come out
    once either way."""
    t, segs = reset_attempt_then_data_and_rst()
    mixed = sorted([*segs, unrelated_syn(at)], key=lambda s: s.timestamp)
    pair = {frozenset(t.ends.values())}
    alone = flows_between(segs, pair)
    assert b"".join(m[1] for f in alone for m in f["messages"]) == b"data"
    assert_unchanged(segs, mixed)


@pytest.mark.parametrize(
    "make",
    [
        lambda: fin_fin_then_late_rst(False)[1],
        lambda: fin_fin_then_late_rst(True)[1],
        lambda: reset_attempt_then_data_and_rst()[1],
    ],
    ids=["fin-unacked-late-rst", "fin-acked-late-rst", "reset-attempt-data-rst"],
)
def test_crafted_cases_every_insertion_point(make: Any) -> None:
    """The crafted cases with one unrelated segment at every position and fraction, each
    of several kinds (a SYN, data, a RST): all give the same flows as the case alone."""
    segs: list[Segment] = make()
    other = Talk(("198.51.100.1", 30001), ("198.51.100.2", 443), isn_c=7)
    kinds = [
        other.packet(0, "c", "S"),
        other.packet(0, "c", "PA", b"x" * 10),
        other.packet(0, "s", "R", ack=0),
    ]
    for pos in range(len(segs) + 1):
        for frac in (0.0, 0.5, 1.0):
            for extra in kinds:
                assert_unchanged(segs, insert(segs, [(pos, frac, extra)]))
