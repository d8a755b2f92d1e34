"""Properties of reassembly that must hold for every input (hypothesis).

* Any reordering, duplication or re-segmentation of a direction's segments gives the
  same bytes.
* The same conversation at ISN 2**32-10 (wrapping) and at ISN 1000 gives the same flow.
* The assembler never raises, whatever segments it is fed, and never invents bytes.
"""

from __future__ import annotations

import itertools
import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tcptable import seg

import pcapflows
from pcapflows import Assembler, Data
from pcapflows.segment import Segment

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
    asm = Assembler(idle_timeout=100.0, max_buffer=max_buffer)
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
    flows = list(pcapflows.reassemble(segments, idle_timeout=100.0, max_buffer=max_buffer))
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
