"""``pcapflows.events()``: connections reported as they happen.

Checked against two independent truths: conversations generated here (where the
message boundaries and the packet that ends each message are known by construction),
and ``read()`` on every sample and corpus capture, where the only allowed difference is
the one :mod:`pcapflows.model.live` names (bytes reassembly delivered later than the
packets that carried them); whether a flow had such bytes is decided from the raw
assembler events, not from the two outputs being compared.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from synth import Talk, capture_segments
from tcptable import corpus_params

import pcapflows
from pcapflows.api import _flow_events
from pcapflows.decode.segment import Segment
from pcapflows.model.live import FlowEvent, LiveFlows
from pcapflows.model.tcp import TCPFlow, TCPMessage
from pcapflows.reassembly.assembler import Assembler
from pcapflows.reassembly.events import Closed, Data, Opened
from pcapflows.reassembly.summary import ConnectionSummary

HERE = Path(__file__).resolve().parent
CAPTURES = sorted((HERE.parent / "captures").glob("*.pcap*"))


def run(segments: list[Segment], **kw: object) -> list[FlowEvent]:
    """events() over hand-made segments (the same pipeline, without a file)."""
    live = LiveFlows(**kw)  # type: ignore[arg-type]
    return list(_flow_events(zip(segments), Assembler(announce=True), live))


# --- generated conversations: the truth is known by construction -------------------


@st.composite
def conversations(draw: st.DrawFn) -> Conversation:
    """Up to four connections, each a handshake, turns of one side's segments
    (alternating sides, client first), and a FIN exchange; their packets interleaved at
    random, with strictly increasing capture times. Returns the segments and, per
    connection, its expected messages ``(who, bytes, time of first packet)`` and the
    ``(who, time)`` of its data packets (``who + "F"`` for its FINs)."""
    n = draw(st.integers(1, 4))
    scripts: list[list[tuple[str, list[bytes]]]] = []
    for _ in range(n):
        turns = []
        for t in range(draw(st.integers(1, 4))):
            who = "c" if t % 2 == 0 else "s"
            sizes = draw(st.lists(st.integers(1, 40), min_size=1, max_size=3))
            turns.append((who, [bytes([65 + t]) * k for k in sizes]))
        scripts.append(turns)
    # Each connection's packets in order, as (who, flags, data) steps.
    steps: list[list[tuple[str, str, bytes]]] = []
    for turns in scripts:
        s = [("c", "S", b""), ("s", "SA", b""), ("c", "A", b"")]
        for who, parts in turns:
            s += [(who, "PA", p) for p in parts]
            s.append((Talk.peer(who), "A", b""))
        s += [("c", "FA", b""), ("s", "FA", b""), ("c", "A", b"")]
        steps.append(s)
    order = draw(st.permutations([i for i, s in enumerate(steps) for _ in s]))
    talks = [Talk(client=(f"10.0.0.{i + 1}", 40000 + i)) for i in range(n)]
    pos = [0] * n
    segments: list[Segment] = []
    expected: list[list[tuple[str, bytes, float]]] = [[] for _ in range(n)]
    data_times: list[list[tuple[str, float]]] = [[] for _ in range(n)]
    for k, i in enumerate(order):
        who, fl, data = steps[i][pos[i]]
        pos[i] += 1
        t = 1.0 + k * 0.001
        segments.append(talks[i].send(t, who, fl, data))
        if "F" in fl:
            data_times[i].append((who + "F", t))
        if data:
            data_times[i].append((who, t))
            msgs = expected[i]
            if msgs and msgs[-1][0] == who:
                msgs[-1] = (who, msgs[-1][1] + data, msgs[-1][2])
            else:
                msgs.append((who, data, t))
    return segments, expected, data_times


Conversation = tuple[
    list[Segment], list[list[tuple[str, bytes, float]]], list[list[tuple[str, float]]]
]


@settings(max_examples=150, deadline=None)
@given(conversations())
def test_generated_messages_and_their_order(case: Conversation) -> None:
    segments, expected, data_times = case
    events = run(segments)
    times = [e.timestamp for e in events]
    assert times == sorted(times), "events must come in the capture's order"
    # The packet that ends each run: the other side's first data packet of the same
    # connection; the last run ends with its sender's FIN.
    by_flow: dict[str, list[FlowEvent]] = {}
    for e in events:
        by_flow.setdefault(e.flow.id, []).append(e)
    assert len(by_flow) == len(expected)
    for evs in by_flow.values():
        flow = evs[0].flow
        i = int(flow.client_conn.peername[0].rsplit(".", 1)[1]) - 1
        assert [e.kind for e in evs] == ["start"] + ["message"] * len(expected[i]) + ["end"]
        assert evs[0].timestamp == flow.client_conn.timestamp_start
        got = [(m.from_client, m.content, m.timestamp) for m in flow.messages]
        assert got == [(w == "c", b, t) for w, b, t in expected[i]]
        for k, e in enumerate(evs[1:-1]):
            assert e.message is flow.messages[k]
            who = expected[i][k][0]
            ender = Talk.peer(who) if k + 1 < len(expected[i]) else who + "F"
            later = [t for w, t in data_times[i] if w == ender and t > expected[i][k][2]]
            assert e.timestamp == later[0]


@settings(max_examples=60, deadline=None)
@given(conversations(), st.integers(1, 50))
def test_without_kept_messages_runs_are_cut_and_not_kept(case: Conversation, cap: int) -> None:
    segments, expected, _ = case
    live = LiveFlows(keep_messages=False, max_message=cap)
    events = []
    got: dict[str, list[TCPMessage]] = {}
    for e in _flow_events(zip(segments), Assembler(announce=True), live):
        events.append(e)
        if e.kind == "message":
            assert e.message is not None
            assert e.flow.messages == [e.message]  # only the newest is kept
            got.setdefault(e.flow.id, []).append(e.message)
    for flow_id, msgs in got.items():
        assert all(len(m.content) <= cap + 39 for m in msgs)  # a run is cut at a chunk end
        flow = next(e.flow for e in events if e.flow.id == flow_id)
        i = int(flow.client_conn.peername[0].rsplit(".", 1)[1]) - 1
        for fc in (True, False):
            sent = b"".join(b for w, b, _ in expected[i] if (w == "c") == fc)
            assert b"".join(m.content for m in msgs if m.from_client == fc) == sent


def test_a_long_run_is_cut_at_max_message() -> None:
    t = Talk()
    segs = t.handshake(1.0)
    segs += [t.send(2.0 + k / 100, "s", "PA", bytes([k]) * 100) for k in range(10)]
    events = run(segs, max_message=250)
    sizes = [len(e.message.content) for e in events if e.message is not None]
    assert sizes == [300, 300, 300, 100]  # cut at the first chunk end at or past 250
    assert b"".join(m.content for m in events[-1].flow.messages) == b"".join(
        bytes([k]) * 100 for k in range(10)
    )


def test_a_reset_flow_ends_with_error_and_its_state_is_reads() -> None:
    t = Talk()
    segs = [*t.handshake(1.0), t.send(2.0, "c", "PA", b"hello"), t.send(2.5, "s", "RA")]
    events = run(segs)
    assert [e.kind for e in events] == ["start", "message", "error"]
    flow = events[-1].flow
    (whole,) = pcapflows.reassemble(segs)
    assert flow.get_state() == whole.get_state()
    assert flow.error is not None and "server" in flow.error.msg


def test_nothing_at_all_gives_no_events() -> None:
    assert run([]) == []


def test_roles_settled_later_turn_the_messages_round() -> None:
    """The first packet's roles are a guess when a capture starts mid-stream; when the
    final summary says otherwise, the messages already handed over change sides (built
    by hand: the assembler decides from its own rules, this checks the builder's)."""
    a, b = ("10.0.0.1", 80), ("10.0.0.2", 40000)
    live = LiveFlows()
    out: list[FlowEvent] = []
    live.add([Opened(0, 0, (a, b), 0, 1.0, 1)], 1.0, out)
    live.add([Data(0, 0, 0, b"from a", 1.0, 1)], 1.0, out)
    live.add([Data(0, 1, 0, b"from b", 2.0, 2)], 2.0, out)
    summary = ConnectionSummary(
        conn=0,
        stream=0,
        endpoints=(a, b),
        client=1,
        handshake_seen=False,
        first_timestamp=1.0,
        last_timestamp=2.0,
        setup_timestamp=None,
        first_frame=1,
        last_frame=2,
        packets=[1, 1],
        bytes=[6, 6],
        history="^dD",
        closed_by="end",
        open_at_end=True,
        rst_from=None,
        rst_timestamp=None,
        opened_timestamp=1.0,
    )
    assert out[0].flow.client_conn.peername == a  # the guess from the first packet
    for e in out:  # "from a" handed over before the close...
        live.deliver(e)
    out.clear()
    live.add([Closed(0, summary)], 3.0, out)
    for e in out:  # ... "from b" at the close
        live.deliver(e)
    flow = out[-1].flow
    assert flow.client_conn.peername == b
    assert [(m.from_client, m.content) for m in flow.messages] == [
        (False, b"from a"),
        (True, b"from b"),
    ]
    assert flow.id == out[0].flow.id


def test_max_message_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_message"):
        pcapflows.events(CAPTURES[0], max_message=0)


# --- every sample and corpus capture, against read() -------------------------------


def late_streams(path: Path) -> set[int]:
    """Stream indices of the connections whose bytes reassembly delivered later than
    the packets that made them contiguous (given up past a hole, at the close, or below
    bytes already delivered): the case where events() may differ from read().

    Computed from the assembler's own events: a chunk is late when it is delivered at a
    packet later than every packet carrying it and the bytes before it, or when it lies
    below bytes of its direction already delivered."""
    asm = Assembler()
    late: set[int] = set()
    best: dict[tuple[int, int], int] = {}
    ends: dict[tuple[int, int], int] = {}
    streams: dict[int, int] = {}

    def look(events: list[object], now: int) -> None:
        for ev in events:
            if isinstance(ev, Data):
                k = (ev.conn, ev.direction)
                best[k] = max(best.get(k, -1), ev.order)
                if best[k] < now or ev.offset < ends.get(k, ev.offset):
                    late.add(ev.conn)
                ends[k] = max(ends.get(k, 0), ev.offset + len(ev.data))
            elif isinstance(ev, Closed):
                streams[ev.conn] = ev.summary.stream

    segments = capture_segments(path)
    for n, s in enumerate(segments, 1):
        look(list(asm.feed(s)), n)
    look(list(asm.close_all()), len(segments) + 1)
    return {streams[c] for c in late}


def same_as_read(path: Path) -> tuple[int, int]:
    """Check events() against read() on one capture; return (flows, late flows)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            flows = {f.id: f for f in pcapflows.read(path)}
        except pcapflows.CaptureError:
            return 0, 0
        evs = list(pcapflows.events(path))
    late = late_streams(path)
    kinds: dict[str, list[str]] = {}
    done: dict[str, TCPFlow] = {}
    for e in evs:
        kinds.setdefault(e.flow.id, []).append(e.kind)
        if e.kind in ("end", "error"):
            done[e.flow.id] = e.flow
    assert set(done) == set(flows)
    n_late = 0
    for fid, flow in flows.items():
        k = kinds[fid]
        assert k[0] == "start" and k[-1] == ("error" if flow.error else "end")
        assert k.count("start") == 1 and k.count("message") == len(done[fid].messages)
        assert len(k) == k.count("message") + 2
        mine, theirs = done[fid].get_state(), flow.get_state()
        if flow.metadata["pcapflows"]["stream"] in late:
            n_late += 1
            for fc in (True, False):
                a = b"".join(m[1] for m in mine["messages"] if m[0] == fc)
                b = b"".join(m[1] for m in theirs["messages"] if m[0] == fc)
                assert sorted(a) == sorted(b), f"stream {fid}: other bytes"
            mine.pop("messages")
            theirs.pop("messages")
        assert mine == theirs, f"{path.name}: flow {fid} differs from read()"
    return len(flows), n_late


@pytest.mark.parametrize("path", CAPTURES, ids=[p.name for p in CAPTURES])
def test_samples_match_read(path: Path) -> None:
    flows, _ = same_as_read(path)
    assert flows > 0 or path.name in {"link_arcnet_7.pcap"}


@pytest.mark.parametrize("path", corpus_params())
def test_corpus_matches_read(path: Path) -> None:
    same_as_read(path)


def test_event_times_follow_the_capture_on_real_traffic() -> None:
    """On captures whose timestamps never go back, no event goes back either."""
    for path in CAPTURES:
        segs = capture_segments(path)
        times = [s.timestamp for s in segs]
        if times != sorted(times):
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            stamps = [e.timestamp for e in pcapflows.events(path)]
        assert stamps == sorted(stamps), path.name


# --- memory: one long connection, streamed ----------------------------------------

#: Peak RSS allowed for events(keep_messages=False) over a capture with one 500 MB
#: connection streamed to it (README: "Events as they happen"). Measured: 40 MiB, against
#: 1,025 MiB with keep_messages=True. The interpreter with
#: pcapflows imported is about 30 MiB; what the reader holds is a block of input and
#: one message (1 MiB) at a time.
EVENTS_RSS_BOUND_MIB = 80

_PRODUCER = textwrap.dedent(
    """
    import struct, sys, zlib
    out = sys.stdout.buffer
    total = int(sys.argv[1])
    out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101))  # raw IP
    def packet(t, src, dst, sport, dport, seq, ack, flags, data):
        tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                          5 << 4, flags, 65535, 0, 0)
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp) + len(data), 0, 0, 64, 6, 0,
                         bytes(src), bytes(dst))
        frame = ip + tcp + data
        sec, usec = int(t), int((t % 1) * 1e6)
        out.write(struct.pack("<IIII", sec, usec, len(frame), len(frame)) + frame)
    c, s = (10, 0, 0, 1), (10, 0, 0, 2)
    cs, ss = 1000, 5000
    t = 1.0
    packet(t, c, s, 40000, 80, cs, 0, 0x02, b""); cs += 1
    packet(t, s, c, 80, 40000, ss, cs, 0x12, b""); ss += 1
    packet(t, c, s, 40000, 80, cs, ss, 0x10, b"")
    packet(t, c, s, 40000, 80, cs, ss, 0x18, b"GET /big"); cs += 8
    chunk = bytes(range(256)) * 5 + bytes(range(180))  # 1460 bytes
    sent = 0
    n = 0
    while sent < total:
        t += 0.00001
        packet(t, s, c, 80, 40000, ss, cs, 0x10, chunk); ss += len(chunk); sent += len(chunk)
        n += 1
        if n % 2 == 0:
            packet(t, c, s, 40000, 80, cs, ss, 0x10, b"")
    packet(t, s, c, 80, 40000, ss, cs, 0x11, b""); ss += 1
    packet(t, c, s, 40000, 80, cs, ss, 0x11, b""); cs += 1
    packet(t, s, c, 80, 40000, ss, cs, 0x10, b"")
    """
)

_CONSUMER = textwrap.dedent(
    """
    import sys, zlib
    import pcapflows
    sizes = {True: 0, False: 0}
    crc = 0
    kinds = []
    for e in pcapflows.events("-", keep_messages=False):
        kinds.append(e.kind) if e.kind != "message" else None
        if e.message is not None:
            sizes[e.message.from_client] += len(e.message.content)
            if not e.message.from_client:
                crc = zlib.crc32(e.message.content, crc)
            assert len(e.flow.messages) == 1
    # VmHWM, not ru_maxrss: the latter keeps the high-water mark of the process that
    # forked us (a pytest worker with mitmproxy loaded) across exec.
    with open("/proc/self/status") as status:
        peak = next(int(x.split()[1]) for x in status if x.startswith("VmHWM:")) // 1024
    print(sizes[True], sizes[False], crc, ",".join(kinds), peak)
    """
)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads Linux's VmHWM")
def test_one_500mb_connection_in_bounded_memory(tmp_path: Path) -> None:
    total = 500 * 1000 * 1000
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
    producer = subprocess.Popen(
        [sys.executable, "-c", _PRODUCER, str(total)], stdout=subprocess.PIPE, env=env
    )
    consumer = subprocess.run(
        [sys.executable, "-c", _CONSUMER],
        stdin=producer.stdout,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert producer.stdout is not None
    producer.stdout.close()
    assert producer.wait() == 0
    assert consumer.returncode == 0, consumer.stderr
    client, server, crc, kinds, peak = consumer.stdout.split()
    chunk = bytes(range(256)) * 5 + bytes(range(180))
    n = -(-total // len(chunk))
    expect = 0
    for _ in range(n):
        expect = __import__("zlib").crc32(chunk, expect)
    assert (int(client), int(server), int(crc)) == (8, n * len(chunk), expect)
    assert kinds == "start,end"
    assert int(peak) < EVENTS_RSS_BOUND_MIB, f"peak RSS {peak} MiB"
