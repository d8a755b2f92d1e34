"""Properties of reassembly that must hold for every input (hypothesis).

* Any reordering, duplication or re-segmentation of a direction's segments gives the
  same bytes.
* The same conversation at ISN 2**32-10 (wrapping) and at ISN 1000 gives the same flow.
* The assembler never raises, whatever segments it is fed, and never invents bytes:
  each delivered byte is the first captured copy at its sequence number, bytes past a
  FIN are not delivered, and a direction never delivers more bytes than the distinct
  sequence numbers its captured payload covers (ground truth computed here from the
  segments with 32-bit arithmetic), whatever damage the sequence numbers carry.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from synth import Direction, Talk, direction_of, payload_seq
from tcptable import seg

import pcapflows
from pcapflows import Assembler, Closed, Data
from pcapflows.decode.segment import Segment
from pcapflows.reassembly.seqnum import seq_diff

#: ``PCAPFLOWS_EXAMPLES=5000 python -m pytest tests/test_properties.py`` for a longer run.
EXAMPLES = int(os.environ.get("PCAPFLOWS_EXAMPLES", "150"))
SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def cut_points(n: int) -> st.SearchStrategy[list[int]]:
    return st.lists(st.integers(min_value=1, max_value=max(1, n - 1)), max_size=12).map(
        lambda xs: sorted(set(x for x in xs if 0 < x < n))
    )


@st.composite
def segmented_stream(draw: Any) -> tuple[bytes, list[tuple[int, bytes]]]:
    """A payload and a shuffled, duplicated, re-segmented list of (offset, bytes) pieces."""
    payload = draw(st.binary(min_size=1, max_size=300))
    cuts = [0, *draw(cut_points(len(payload))), len(payload)]
    pieces = [(a, payload[a:b]) for a, b in itertools.pairwise(cuts)]
    # Extra copies: exact duplicates and overlapping re-segmentations of the same bytes.
    extra = draw(
        st.lists(
            st.tuples(st.integers(0, len(payload) - 1), st.integers(1, max(1, len(payload)))),
            max_size=6,
        )
    )
    for start, n in extra:
        pieces.append((start, payload[start : start + n]))
    pieces = draw(st.permutations(pieces))
    return payload, pieces


def conversation(isn_c: int, isn_s: int, pieces: list[tuple[int, bytes]]) -> list[Segment]:
    segs = [
        seg(1.0, "c", isn_c, 0, "S"),
        seg(1.1, "s", isn_s, isn_c + 1, "SA"),
        seg(1.2, "c", isn_c + 1, isn_s + 1, "A"),
    ]
    t = 2.0
    for off, data in pieces:
        segs.append(seg(t, "c", isn_c + 1 + off, isn_s + 1, "PA", data))
        t += 0.01
    return segs


@SETTINGS
@given(segmented_stream(), st.integers(0, 2**32 - 1))
def test_any_order_duplication_resegmentation_same_bytes(
    stream: tuple[bytes, list[tuple[int, bytes]]], isn: int
) -> None:
    payload, pieces = stream
    flows = list(pcapflows.reassemble(conversation(isn, 77, pieces)))
    assert len(flows) == 1
    flow = flows[0]
    assert b"".join(m.content for m in flow.messages) == payload
    assert all(m.from_client for m in flow.messages)
    assert flow.metadata["pcapflows"]["gaps"] == []
    assert flow.metadata["pcapflows"]["conflicts"] == []


def comparable(flow: pcapflows.TCPFlow) -> dict[str, Any]:
    state = flow.get_state()
    meta = state["metadata"]["pcapflows"]
    return {
        "messages": state["messages"],
        "error": state["error"],
        "meta": {k: v for k, v in meta.items()},
        "client": flow.client_conn.peername,
        "server": flow.server_conn.address,
    }


@st.composite
def two_way(draw: Any) -> list[tuple[str, int, bytes, bool]]:
    """Alternating data from both sides, some of it out of order, one hole maybe."""
    turns = draw(
        st.lists(
            st.tuples(st.booleans(), st.binary(min_size=1, max_size=40)), min_size=1, max_size=8
        )
    )
    out = []
    for from_client, data in turns:
        out.append(("c" if from_client else "s", 0, data, draw(st.booleans())))
    return out


@SETTINGS
@given(two_way(), st.integers(0, 30))
def test_wraparound_changes_nothing(turns: list[tuple[str, int, bytes, bool]], near: int) -> None:
    def build(isn_c: int, isn_s: int) -> list[Segment]:
        segs = [
            seg(1.0, "c", isn_c, 0, "S"),
            seg(1.1, "s", isn_s, isn_c + 1, "SA"),
            seg(1.2, "c", isn_c + 1, isn_s + 1, "A"),
        ]
        nxt = {"c": isn_c + 1, "s": isn_s + 1}
        t = 2.0
        for sender, _, data, split in turns:
            other = "s" if sender == "c" else "c"
            if split and len(data) > 1:
                # Send the second half first: reordering across the wrap.
                h = len(data) // 2
                segs.append(seg(t, sender, nxt[sender] + h, nxt[other], "PA", data[h:]))
                segs.append(seg(t + 0.001, sender, nxt[sender], nxt[other], "PA", data[:h]))
            else:
                segs.append(seg(t, sender, nxt[sender], nxt[other], "PA", data))
            nxt[sender] += len(data)
            t += 0.1
        segs.append(seg(t, "c", nxt["c"], nxt["s"], "FA"))
        segs.append(seg(t + 0.1, "s", nxt["s"], nxt["c"] + 1, "FA"))
        segs.append(seg(t + 0.2, "c", nxt["c"] + 1, nxt["s"] + 1, "A"))
        return segs

    wrapped = list(pcapflows.reassemble(build(2**32 - 10 - near, 2**32 - 1 - near)))
    plain = list(pcapflows.reassemble(build(1000, 5000)))
    assert len(wrapped) == len(plain) == 1
    assert comparable(wrapped[0]) == comparable(plain[0])
    expected = b"".join(d for s, _, d, _ in turns if s == "c")
    got = b"".join(m.content for m in plain[0].messages if m.from_client)
    assert got == expected


ENDPOINTS = [("10.0.0.1", 1000), ("10.0.0.2", 80), ("10.0.0.3", 80)]


@st.composite
def arbitrary_segment(draw: Any) -> Segment:
    src = draw(st.sampled_from(ENDPOINTS))
    dst = draw(st.sampled_from(ENDPOINTS))
    base = draw(st.sampled_from([0, 2**32 - 5, 2**31, 1000]))
    return Segment(
        draw(st.sampled_from([0.0, 1.0, 2.0, 1e9, 5000.0, -1.0])),
        src[0],
        src[1],
        dst[0],
        dst[1],
        (base + draw(st.integers(-20, 40))) % 2**32,
        (base + draw(st.integers(-20, 40))) % 2**32,
        draw(st.integers(0, 255)),
        draw(st.binary(max_size=12)),
        draw(st.integers(0, 65535)),
        draw(st.integers(0, 5)),
        0,
    )


@settings(max_examples=2 * EXAMPLES, deadline=None)
@given(st.lists(arbitrary_segment(), max_size=40), st.integers(1, 64))
def test_assembler_never_raises_never_invents(segments: list[Segment], max_buffer: int) -> None:
    asm = Assembler(pcapflows.Limits(idle_timeout=100.0, max_buffer=max_buffer))
    sent: set[bytes] = set()
    events = []
    for s in segments:
        events.extend(asm.feed(s))
        sent.add(s.payload)
    events.extend(asm.close_all())
    assert asm.open_connections == 0
    everything = b"".join(sent)
    for e in events:
        if isinstance(e, Data):
            assert e.data
            # Every delivered chunk is a piece of some captured payload: never invented.
            assert any(e.data in p for p in sent), (e, everything)
    # And the flow builder never raises on the same input either.
    flows = list(
        pcapflows.reassemble(
            segments, limits=pcapflows.Limits(idle_timeout=100.0, max_buffer=max_buffer)
        )
    )
    for f in flows:
        for m in f.messages:
            assert m.content


@SETTINGS
@given(segmented_stream(), st.integers(0, 2**32 - 1), st.data())
def test_shuffled_including_the_handshake(
    stream: tuple[bytes, list[tuple[int, bytes]]], isn: int, data: st.DataObject
) -> None:
    """Shuffled or merged captures can show the SYN after the data it precedes."""
    payload, pieces = stream
    segs = conversation(isn, 77, pieces)
    # The server acknowledges everything; shuffled, its ACK may come before the data,
    # and the bytes captured after it must still fill the gap it made us declare.
    segs.append(seg(9.0, "s", 78, isn + 1 + len(payload), "A"))
    shuffled = data.draw(st.permutations(segs))
    flows = list(pcapflows.reassemble(shuffled))
    assert len(flows) == 1
    flow = flows[0]
    assert b"".join(m.content for m in flow.messages) == payload
    assert flow.client_conn.peername == ("10.0.0.1", 40000)
    assert flow.metadata["pcapflows"]["gaps"] == []
    assert flow.metadata["pcapflows"]["handshake_seen"] is True


@SETTINGS
@given(two_way(), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.data())
def test_two_way_conversation_any_capture_order(
    turns: list[tuple[str, int, bytes, bool]], isn_c: int, isn_s: int, data: st.DataObject
) -> None:
    """Both directions, with ACKs and FINs, in any capture order: same bytes each way."""
    segs = [
        seg(1.0, "c", isn_c, 0, "S"),
        seg(1.1, "s", isn_s, isn_c + 1, "SA"),
        seg(1.2, "c", isn_c + 1, isn_s + 1, "A"),
    ]
    nxt = {"c": isn_c + 1, "s": isn_s + 1}
    t = 2.0
    for sender, _, payload, _ in turns:
        other = "s" if sender == "c" else "c"
        segs.append(seg(t, sender, nxt[sender], nxt[other], "PA", payload))
        nxt[sender] += len(payload)
        segs.append(seg(t + 0.01, other, nxt[other], nxt[sender], "A"))
        t += 0.1
    segs.append(seg(t, "c", nxt["c"], nxt["s"], "FA"))
    segs.append(seg(t + 0.1, "s", nxt["s"], nxt["c"] + 1, "FA"))
    segs.append(seg(t + 0.2, "c", nxt["c"] + 1, nxt["s"] + 1, "A"))
    shuffled = data.draw(st.permutations(segs))
    flows = list(pcapflows.reassemble(shuffled))
    assert len(flows) == 1
    flow = flows[0]
    for who, from_client in (("c", True), ("s", False)):
        expected = b"".join(p for s, _, p, _ in turns if s == who)
        got = b"".join(m.content for m in flow.messages if m.from_client == from_client)
        assert got == expected
    assert flow.metadata["pcapflows"]["gaps"] == []
    assert flow.client_conn.peername == ("10.0.0.1", 40000)


# -- never invents: delivered bytes against the captured sequence space ------------------

#: Damage to a sequence or acknowledgment number: near half the sequence space (where
#: serial arithmetic flips), a quarter, 16 MiB, both ways, and three quarters.
JUMPS = st.one_of(
    st.sampled_from(
        [
            2**31 - 7,
            2**31 - 1,
            2**31,
            2**31 + 5,
            2**30,
            -(2**30),
            2**24,
            -(2**24),
            2**24 + 12345,
            3 * 2**30,
        ]
    ),
    st.integers(2**20, 2**32 - 2**20),
)


@st.composite
def hostile_conversation(draw: Any) -> list[Segment]:
    """An ordinary conversation (fixed initial sequence numbers, so that no segment can
    legitimately start another connection that reuses the same numbers), damaged by:

    * a copy of a data segment whose sequence number jumped (~2**31, ~2**30, ~2**24 or
      anywhere), later followed by an ordinary retransmission of that segment;
    * segments carrying bytes past a direction's FIN, after the FIN;
    * ACKs with damaged acknowledgment numbers;
    * ordinary retransmissions (whole or partial), keep-alive probes and RSTs;
    * pauses past the linger (5 s) and past the attempt linger, so that the connection
      can close before some of the above arrives.
    """
    t = Talk(isn_c=draw(st.integers(0, 2**32 - 1)), isn_s=draw(st.integers(0, 2**32 - 1)))
    segs: list[Segment] = []
    if draw(st.integers(0, 4)):
        segs += t.handshake(0.0)
    sent: list[Segment] = []
    for who, data, acked in draw(
        st.lists(
            st.tuples(st.sampled_from("cs"), st.binary(min_size=1, max_size=60), st.booleans()),
            min_size=1,
            max_size=8,
        )
    ):
        s = t.send(0.0, who, "PA", data)
        sent.append(s)
        if draw(st.integers(0, 5)):  # sometimes the capture lost it
            segs.append(s)
        if acked:
            segs.append(t.packet(0.0, Talk.peer(who), "A"))
    fin_at: dict[str, int] = {}
    close = draw(st.sampled_from(["fins", "fins", "fin-c", "fin-s", "rst", "none"]))
    if close.startswith("fin"):
        order = "cs" if close == "fins" else close[-1]
        for who in order:
            fin_at[who] = len(segs)
            segs.append(t.send(0.0, who, "FA"))
        if close == "fins" and draw(st.booleans()):
            segs.append(t.packet(0.0, "c", "A"))
    elif close == "rst":
        segs.append(t.packet(0.0, draw(st.sampled_from("cs")), "R", ack=0))

    def position(after: int) -> int:
        return draw(st.integers(min(after, len(segs)), len(segs)))

    def index_of(s: Segment) -> int:
        return next((i for i, x in enumerate(segs) if x is s), 0)

    used: list[int] = []

    def jump() -> int:
        """A jump for one damaged number. Damage is independent: two damaged numbers
        that agree with each other (the same jump twice, or two within a window of each
        other) are what a capture that lost that much looks like, and pcapflows rightly
        believes them (README: a jump two packets agree on); so each jump here stays
        more than 64 MiB away from the others of the same example."""
        j = draw(JUMPS)
        while any(min((j - u) % 2**32, (u - j) % 2**32) <= 2**26 for u in used):
            j += 2**27
        used.append(j)
        return j

    for op in draw(
        st.lists(
            st.sampled_from(["jump", "jump", "past-fin", "ack", "retrans", "keepalive", "rst"]),
            min_size=1,
            max_size=6,
        )
    ):
        captured = [x for x in sent if any(x is y for y in segs)]
        if op in ("jump", "keepalive") and not captured:
            continue
        if op == "jump":
            # After its original: the first copy of a byte is never the damaged one, so
            # the truth below does not depend on which copy a reader should believe.
            s = draw(st.sampled_from(captured))
            p = position(index_of(s) + 1)
            damaged = dataclasses.replace(s, seq=(s.seq + jump()) & 0xFFFFFFFF)
            segs.insert(p, damaged)
            segs.insert(position(p + 1), dataclasses.replace(s))
        elif op == "past-fin" and fin_at:
            who = draw(st.sampled_from(sorted(fin_at)))
            fin = segs[fin_at[who]] if fin_at[who] < len(segs) else None
            if fin is None or not fin.flags & 0x01:
                continue
            beyond = draw(st.sampled_from([0, 1, 2, 100, 2**16, 2**20, 2**30]))
            data = draw(st.binary(min_size=1, max_size=40))
            extra = t.packet(0.0, who, "PA", data, seq=fin.seq + beyond)
            segs.insert(position(index_of(fin) + 1), extra)
        elif op == "ack":
            who = draw(st.sampled_from("cs"))
            ack = t.nxt[Talk.peer(who)] + jump()
            segs.insert(position(0), t.packet(0.0, who, "A", ack=ack))
        elif op == "retrans":
            s = draw(st.sampled_from(sent))
            a = draw(st.integers(0, len(s.payload) - 1))
            b = draw(st.integers(a + 1, len(s.payload)))
            part = dataclasses.replace(s, seq=(s.seq + a) & 0xFFFFFFFF, payload=s.payload[a:b])
            segs.insert(position(index_of(s) + 1), part)
        elif op == "keepalive":
            s = draw(st.sampled_from(captured))
            probe = dataclasses.replace(
                s, seq=(s.seq + len(s.payload) - 1) & 0xFFFFFFFF, payload=b"\0", flags=0x10
            )
            segs.insert(position(index_of(s) + 1), probe)
        elif op == "rst":
            who = draw(st.sampled_from("cs"))
            segs.insert(position(0), t.packet(0.0, who, "R", ack=0))
    # Capture times in capture order, some pauses long enough to end the connection.
    now = 1.0
    out = []
    for s in segs:
        now += draw(st.sampled_from([0.0, 0.001, 0.01, 0.3, 6.0, 20.0, 200.0]))
        out.append(dataclasses.replace(s, timestamp=now))
    return out


def deliveries(segments: list[Segment]) -> dict[tuple[int, Direction], list[Data]]:
    """Data events per (connection, sending direction), from the public Assembler."""
    asm = Assembler()
    events = []
    for s in segments:
        events.extend(asm.feed(s))
    events.extend(asm.close_all())
    senders: dict[tuple[int, int], Direction] = {}
    for e in events:
        if isinstance(e, Closed):
            ends = e.summary.endpoints
            senders[(e.conn, 0)] = (ends[0], ends[1])
            senders[(e.conn, 1)] = (ends[1], ends[0])
    out: dict[tuple[int, Direction], list[Data]] = {}
    for e in events:
        if isinstance(e, Data):
            out.setdefault((e.conn, senders[(e.conn, e.direction)]), []).append(e)
    return out


def stream_bytes(segments: list[Segment]) -> dict[Direction, dict[int, int]]:
    """Ground truth per direction: the first captured copy of every byte that belongs to
    the stream, i.e. every payload byte's sequence number (32-bit arithmetic), minus
    those at or after a FIN of its direction captured before it (the FIN's sequence
    number is that of the byte after the FIN segment's data). A byte captured before the
    FIN that ends below it cannot be told from data by any reader, so it counts."""
    out: dict[Direction, dict[int, int]] = {}
    fins: dict[Direction, int] = {}
    for s in segments:
        d = direction_of(s)
        if s.payload:
            table = out.setdefault(d, {})
            base = payload_seq(s)
            for i, byte in enumerate(s.payload):
                q = (base + i) & 0xFFFFFFFF
                if d not in fins or seq_diff(q, fins[d]) < 0:
                    table.setdefault(q, byte)
        if s.flags & 0x01 and not s.flags & 0x02 and d not in fins:
            fins[d] = (payload_seq(s) + len(s.payload)) & 0xFFFFFFFF
    return out


def captured_copies(segments: list[Segment]) -> dict[Direction, dict[int, set[int]]]:
    """Every value captured at every sequence number, per direction (FINs ignored)."""
    out: dict[Direction, dict[int, set[int]]] = {}
    for s in segments:
        table = out.setdefault(direction_of(s), {})
        for i, byte in enumerate(s.payload):
            table.setdefault((payload_seq(s) + i) & 0xFFFFFFFF, set()).add(byte)
    return out


def check_never_invents(segments: list[Segment]) -> None:
    """Every delivered byte is a captured byte at its sequence number, and no flow
    delivers more bytes than sequence numbers were captured. A 4-tuple's first flow in
    a direction gets the first captured copy of each byte (a conflicting later copy
    never overwrites it); a later flow of the same 4-tuple (the port reused) is a new
    connection, whose sequence numbers may be the earlier one's again: its bytes must
    each be one of the copies captured at their number."""
    truth = stream_bytes(segments)
    copies = captured_copies(segments)
    delivered = deliveries(segments)
    seen: set[Direction] = set()
    for (conn, direction), chunks in sorted(delivered.items(), key=lambda kv: kv[0][0]):
        later = direction in seen
        seen.add(direction)
        n = sum(len(c.data) for c in chunks)
        table = truth.get(direction, {})
        captured = copies.get(direction, {})
        # Offsets are relative: find the raw number of offset 0 that makes every byte
        # a captured copy at its sequence number (one must exist).
        first = chunks[0]
        candidates = [
            (q - first.offset) & 0xFFFFFFFF
            for q, values in captured.items()
            if first.data[0] in values
        ]

        def fits(
            base: int,
            chunks: list[Data] = chunks,
            table: dict[int, int] = table,
            values: dict[int, set[int]] = captured,
            later: bool = later,
        ) -> bool:
            return all(
                byte in values.get((base + c.offset + i) & 0xFFFFFFFF, ())
                if later
                else table.get((base + c.offset + i) & 0xFFFFFFFF) == byte
                for c in chunks
                for i, byte in enumerate(c.data)
            )

        assert any(fits(base) for base in candidates), (
            f"connection {conn} {direction}: delivered bytes are not "
            f"{'captured' if later else 'the first captured'} copies at their sequence "
            f"numbers: {[(c.offset, c.data) for c in chunks]}"
        )
        limit = len(captured) if later else len(table)
        assert n <= limit, (
            f"connection {conn} {direction}: {n} bytes delivered, {limit} sequence "
            "numbers of stream data captured"
        )


def issue_item1() -> list[Segment]:
    """Issue 9 item 1 as found: 300 bytes in three segments, a copy of the third whose
    sequence number is damaged about 2**31 ahead, then an ordinary retransmission of the
    second; the old code delivered 500 bytes (the retransmission again, 4 GiB ahead)."""
    t = Talk()
    segs = t.handshake(1.0)
    c = t.nxt["c"]
    segs += [t.send(2.0, "c", "PA", b"a" * 100), t.send(2.1, "c", "PA", b"b" * 100)]
    segs += [t.send(2.2, "c", "PA", b"c" * 100)]
    segs.append(t.packet(2.3, "c", "PA", b"c" * 100, seq=c + 200 + 2**31 - 7))
    segs += [
        t.packet(2.4, "s", "A", ack=c + 100),
        t.packet(2.5, "c", "PA", b"b" * 100, seq=c + 100),
    ]
    segs += [t.packet(2.6, "s", "A"), t.send(3.0, "c", "FA"), t.send(3.1, "s", "FA")]
    return segs


def port_reused_after_reset() -> list[Segment]:
    """Found by hypothesis: data at sequence number 0 after the client's RST, then,
    200 s later, a new connection on the same 4-tuple (the server speaks first, so it
    is taken as that flow's client) whose client-side data wraps round to sequence
    number 0 again. Both flows deliver a byte at 0, each a copy captured in its own
    flow; the earlier form of the check counted bytes over the whole 4-tuple and took
    the second for a duplicate."""
    return [
        seg(1.0, "c", 2, 0, "R"),
        seg(1.0, "c", 0, 0, "PA", b"\x00"),
        seg(201.0, "s", 1, 2_415_919_099, "A"),
        seg(201.0, "c", 2_281_701_369, 0, "PA", b"\x00"),
        seg(201.0, "c", 0, 0, "PA", b"\x00"),
        seg(201.0, "c", 2, 2_147_483_642, "A"),
        seg(201.0, "c", 1, 0, "FA"),
        seg(201.0, "s", 0, 2, "FA"),
    ]


def issue_item2() -> list[Segment]:
    """Issue 9 item 2: bytes 1000 past the client's FIN, after it."""
    t = Talk()
    segs = [*t.handshake(1.0), t.send(2.0, "c", "PA", b"x" * 10)]
    fin = t.nxt["c"]
    segs += [t.send(2.1, "c", "FA"), t.send(2.2, "s", "FA")]
    segs.append(t.packet(2.3, "c", "PA", b"y" * 10, seq=fin + 1000))
    return segs


@settings(max_examples=2 * EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_conversation())
@example(issue_item1())
@example(issue_item2())
@example(port_reused_after_reset())
def test_never_invents_bytes(segments: list[Segment]) -> None:
    """Per flow and direction, the bytes delivered never exceed the distinct sequence
    numbers of stream data captured, and each delivered byte is a captured copy at its
    sequence number (the first one, in a 4-tuple's first flow): a damaged sequence
    number, data past the FIN or a late retransmission can neither duplicate nor move
    bytes."""
    check_never_invents(segments)
