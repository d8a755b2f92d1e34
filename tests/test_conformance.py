"""pcapflows against tshark's Follow TCP Stream on every capture of the shared corpus.

The comparison itself is ``tools/conformance.py`` (also a command line tool, which writes
docs/conformance.md). Here:

* every file of the corpus MANIFEST must have zero unexplained differences (or be a
  file pcapflows rejects as not a supported capture);
* every named difference has a test on a real or crafted capture that shows it *and*
  shows, from the packets themselves (tshark's per-frame fields, not its Follow
  output), that pcapflows' bytes are the right ones;
* the checker itself answers "unexplained" when fed invented bytes;
* docs/conformance.md must be what the tool generates now.

tshark runs at most once per capture file per test run: its output is cached on disk
(pytest's cache directory, or a directory shared by the pytest-xdist workers of this
run) under the file's SHA-256 and tshark's version, and each file's comparison is made
once per run, by whichever worker needs it first, and shared with the others. The
corpus test is parametrized per file, so that workers share the load.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import struct
from collections.abc import Iterator, Mapping
from pathlib import Path

import conformance as cf
import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw
from scapy.utils import wrpcap
from tcptable import CORPUS, require_corpus

ROOT = Path(__file__).resolve().parents[1]

#: Files whose differences are pcapflows' (not tshark's): each stays unexplained in the
#: table and is an expected failure here, strictly, so that the fix is noticed (the test
#: then passes unexpectedly and fails the run until the entry is removed).
KNOWN_ISSUES: dict[str, str] = {}


def manifest() -> list[str]:
    try:
        return cf.manifest(CORPUS)
    except OSError:
        return ["<no corpus>"]


def _require_tshark() -> None:
    if cf.shutil.which("tshark") is None:
        pytest.fail("tshark is not installed: these tests compare with it (apt-get install tshark)")


def _run_dir(factory: pytest.TempPathFactory) -> Path:
    """A directory shared by every pytest-xdist worker of this run (and only this run)."""
    base = factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session", autouse=True)
def _tshark_cache(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> None:
    """tshark's output is cached on disk: in pytest's cache directory when there is one
    (kept between runs: the key is the file's hash and tshark's version), else in a
    directory this run's workers share."""
    cache = getattr(request.config, "cache", None)
    where = cache.mkdir("conformance-tshark") if cache is not None else None
    cf.CACHE = Path(where) if where is not None else _run_dir(tmp_path_factory) / "tshark"


class Results(Mapping[str, cf.FileResult]):
    """The comparison of each corpus file, made once per run whichever worker asks
    first (the others wait for it on a lock, then read it from disk)."""

    def __init__(self, where: Path) -> None:
        self.where = where
        where.mkdir(parents=True, exist_ok=True)
        self.names = manifest()

    def __getitem__(self, name: str) -> cf.FileResult:
        key = hashlib.sha256(name.encode()).hexdigest()[:24]
        entry = self.where / f"{key}.pickle"
        with cf._locked(self.where / f"{key}.lock"):
            if entry.exists():
                result: cf.FileResult = pickle.loads(entry.read_bytes())
                return result
            result = cf.compare(CORPUS / name, name)
            tmp = entry.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(pickle.dumps(result))
            os.replace(tmp, entry)
            return result

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)


@pytest.fixture(scope="session")
def results(tmp_path_factory: pytest.TempPathFactory) -> Results:
    _require_tshark()
    require_corpus()
    return Results(_run_dir(tmp_path_factory) / "conformance-results")


def _param(name: str) -> object:
    if name in KNOWN_ISSUES:
        return pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=KNOWN_ISSUES[name]))
    return name


@pytest.mark.parametrize("name", [_param(n) for n in manifest()])
def test_no_unexplained_difference(name: str, results: Results) -> None:
    r = results[name]
    if r.unsupported is not None:
        # Listed as "not a supported capture" in the table, with pcapflows' reason.
        assert name in r.unsupported
        assert name.endswith((".zst", ".snoop")), r.unsupported
        return
    problems = [
        f"tshark {d.tshark_stream} / flow {d.flow_stream} {d.sender}: {d.problem}"
        for d in r.unexplained
    ]
    assert not problems, f"{name}:\n" + "\n".join(problems)


def test_docs_table_is_current(results: Results) -> None:
    """docs/conformance.md holds exactly what the command at its top generates."""
    doc = (ROOT / "docs" / "conformance.md").read_text()
    assert "python tools/conformance.py --corpus ../shared/corpus --markdown" in doc
    table = cf.markdown_table([results[n] for n in manifest()])
    assert f"{cf.BEGIN}\n{table}{cf.END}" in doc, "regenerate docs/conformance.md"


def test_every_reason_is_seen_and_documented(results: Results) -> None:
    """Each named reason is documented, and each is met on the corpus or on one of the
    crafted captures below (cases the corpus does not hold)."""
    seen = {x for n in manifest() for x in reasons_of(results[n])}
    doc = (ROOT / "docs" / "conformance.md").read_text()
    for reason in cf.REASONS:
        assert f"### {reason}" in doc, reason
    assert seen | CRAFTED_REASONS == set(cf.REASONS)


#: Named reasons shown on crafted captures only (see the tests that craft them).
CRAFTED_REASONS = {"quoted header"}


def test_missing_tshark_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(cf.ConformanceError, match="tshark not found"):
        cf.run_tshark(CORPUS / "sessions/dpkt__http.pcap")


# --------------------------------------------------------------------------- helpers


class One:
    """One capture taken apart: pcapflows' flows, tshark's streams, the pairs."""

    def __init__(self, name: str) -> None:
        _require_tshark()
        self.path = require_corpus() / name
        self.cap = cf.read_flows(self.path)
        self.ts = cf.run_tshark(self.path, guess=len(self.cap.flows) + 2)
        self.pairs = cf.pair(self.cap.flows, self.ts.streams)

    def stream(self, index: int = 0) -> cf.TsharkStream:
        return self.ts.streams[index]

    def flow(self, index: int = 0) -> cf.pcapflows.TCPFlow:
        return next(p.flows[0] for p in self.pairs if p.streams and p.streams[0].index == index)

    def fields(self, *names: str) -> list[list[str]]:
        """tshark's per-frame fields (one row per frame and TCP layer), the packets'
        own word, from the same tshark run as the rest (never a run of its own)."""
        base: dict[tuple[int, int | None], int] = {}  # tshark's relative seq: stream, sender
        for s in self.ts.streams.values():
            for fr in s.frames:
                base.setdefault((s.index, s.sender(fr)), fr.seq_raw - fr.seq)
        rows = []
        for s in self.ts.streams.values():
            for fr in s.frames:
                peer = base.get((s.index, 1 - (s.sender(fr) or 0)), fr.ack_raw)
                value = {
                    "frame.number": fr.number,
                    "frame.len": fr.frame_len,
                    "frame.cap_len": fr.cap_len,
                    "tcp.srcport": fr.srcport,
                    "tcp.seq": fr.seq,
                    "tcp.len": fr.length,
                    "tcp.ack": (fr.ack_raw - peer) % (1 << 32) if fr.flags & cf.ACK else 0,
                    "tcp.hdr_len": fr.hdr_len,
                    "tcp.flags.syn": int(bool(fr.flags & cf.SYN)),
                    "tcp.flags.ack": int(bool(fr.flags & cf.ACK)),
                    "ip.fragment.overlap.conflict": "1" if fr.fragment_conflict else "",
                }
                rows.append((fr.number, [str(value[n]) for n in names]))
        return [r for _, r in sorted(rows, key=lambda x: x[0])]

    def payloads(self, index: int = 0) -> dict[int, bytes]:
        """Each frame's own captured payload (tshark's ``tcp.payload``) in a stream."""
        return {fr.number: fr.payload for fr in self.ts.streams[index].frames}


def reasons_of(r: cf.FileResult) -> set[str]:
    return {x for d in r.directions for x in d.reasons}


def data(flow: cf.pcapflows.TCPFlow, from_client: bool) -> bytes:
    return b"".join(m.content for m in flow.messages if m.from_client == from_client)


# --------------------------------------------------------------------------- named


def test_marker(results: Results) -> None:
    """tshark writes '[4 bytes missing in capture file]' (NUL-terminated) in the
    middle of the client's data; pcapflows has a 4-byte gap there, acknowledged by the
    server (ack 13 covers it), and inserts nothing."""
    name = "tcp_overlap_gap/suricata__eve-overlap-payload-05-gap__tcp-simple-gap2.pcap"
    assert "marker" in reasons_of(results[name])
    one = One(name)
    f, s = one.flow(), one.stream()
    (gap,) = f.metadata["pcapflows"]["gaps"]
    assert (gap["offset"], gap["length"], gap["cause"]) == (4, 4, "ack")
    ours = data(f, True)
    theirs = s.sent[s.node(cf.flow_ends(f)[0])]
    assert theirs == ours[:4] + b"[4 bytes missing in capture file]\x00" + ours[4:]
    assert b"missing" not in ours
    # The packets: 4 bytes at relative seq 1, 4 at 9; the server acknowledges 13.
    rows = one.fields("tcp.seq", "tcp.len", "tcp.ack", "tcp.srcport")
    assert ["1", "4", "1", "12345"] in rows and ["9", "4", "1", "12345"] in rows
    assert ["1", "0", "13", "8080"] in rows


def test_truncated(results: Results) -> None:
    """tshark's output stops at a hole that was never acknowledged (this capture holds
    one direction only); pcapflows keeps the 7 segments after it, which are in the
    capture: each frame's own payload is in our bytes after the gap."""
    name = "tcp_overlap_gap/pcapplusplus__unidirectional_tcp_stream_with_missing_packet.pcap"
    assert "truncated" in reasons_of(results[name])
    one = One(name)
    f, s = one.flow(), one.stream()
    ours, theirs = data(f, True), s.sent[0]
    gaps = [g for g in f.metadata["pcapflows"]["gaps"] if g["from_client"]]
    assert gaps and gaps[0]["offset"] == len(theirs) == 1420
    assert ours.startswith(theirs) and len(ours) > len(theirs)
    payloads = one.payloads(0)
    after = [fr for fr in s.frames if fr.seq > gaps[0]["offset"] + 1 and payloads.get(fr.number)]
    assert len(after) >= 5
    for fr in after:
        at = fr.seq - 1 - gaps[0]["length"]  # our bytes close up over the gap
        assert ours[at : at + fr.length] == payloads[fr.number]
        assert payloads[fr.number] not in theirs


def test_late_start() -> None:
    """tshark starts the server's direction at frame 1 (65 bytes, higher sequence
    numbers); frame 2, captured later, carries the 1396 bytes before it. pcapflows keeps
    them, then a 22-byte gap that nothing covers, then frame 1's bytes."""
    one = One("tcp_ooo_retrans/tcpflow__test1-out-of-order.pcap")
    f, s = one.flow(), one.stream()
    ours = cf.tokens(f, False)
    theirs = s.sent[s.node(cf.flow_ends(f)[1])]
    assert cf.classify(ours, theirs) == ("late start",)
    payloads = one.payloads(0)
    first, second = s.frames[0], s.frames[1]
    assert first.seq_raw - second.seq_raw == 1396 + 22
    assert data(f, False) == payloads[second.number] + payloads[first.number]
    assert theirs == payloads[first.number]
    assert [g["cause"] for g in f.metadata["pcapflows"]["gaps"]] == ["unseen"]


def test_snaplen(results: Results) -> None:
    """Frames cut to 96 of 1514 bytes: tshark shows their first 30 payload bytes run
    together, without a marker; pcapflows has a 'snaplen' gap of exactly the cut bytes
    after each of them: each gap starts where a cut frame's captured payload ends and
    is that frame's frame.len - frame.cap_len."""
    name = "tcp_truncated/zeek__timestamp.pcap"
    assert "snaplen" in reasons_of(results[name])
    one = One(name)
    f, s = one.flow(), one.stream()
    server = cf.flow_ends(f)[1]
    frames = [fr for fr in s.frames if s.sender(fr) == s.node(server)]
    base = next(fr.seq_raw for fr in frames if fr.flags & cf.SYN) + 1
    # Where each cut frame's captured payload ends (stream offset) -> bytes cut.
    cut = {
        (fr.seq_raw - base + len(fr.payload)) % (1 << 32): fr.frame_len - fr.cap_len
        for fr in frames
        if fr.cap_len < fr.frame_len and fr.payload
    }
    gaps = [g for g in f.metadata["pcapflows"]["gaps"] if not g["from_client"]]
    assert len(gaps) > 100 and {g["cause"] for g in gaps} == {"snaplen"}
    # pcapflows closes up its offsets over nothing: our offsets count the gaps too.
    assert all(cut.get(g["offset"]) == g["length"] for g in gaps)
    assert 1514 - 96 in cut.values()
    assert s.sent[s.node(server)] == data(f, False)


def test_snaplen_hole_must_be_what_the_snap_length_cut() -> None:
    """The same direction with one gap one byte longer than the cut, or at another
    offset, is unexplained: the hole is compared with frame.len - frame.cap_len."""
    one = One("tcp_truncated/zeek__timestamp.pcap")
    f, s = one.flow(), one.stream()
    client, server = cf.flow_ends(f)
    mine = [fr for fr in s.frames if s.sender(fr) == s.node(server)]
    peer = [fr for fr in s.frames if s.sender(fr) == s.node(client)]
    ours = cf.tokens(f, False)
    theirs = s.sent[s.node(server)]
    assert cf.judge(ours, theirs, mine, peer) == (("snaplen",), None)
    k = next(i for i, t in enumerate(ours) if isinstance(t, cf.Hole))
    hole, after = ours[k], ours[k + 1]
    assert isinstance(hole, cf.Hole) and isinstance(after, cf.Run)
    longer = [
        *ours[:k],
        cf.Hole(hole.offset, hole.length + 1, "snaplen"),
        cf.Run(after.offset + 1, after.data[1:]),
        *ours[k + 2 :],
    ]
    kind, problem = cf.judge(longer, theirs[:-1], mine, peer)
    assert kind is None and problem is not None


def test_conflict(results: Results) -> None:
    """A retransmission carried other bytes than the first copy: tshark shows the later
    copy, pcapflows keeps the first. The difference is named from the packets: at each
    differing offset two captured frames carry different bytes, ours is the first copy
    and tshark's the other (pcapflows' own conflict list is not consulted)."""
    name = "tcp_overlap_gap/zeek__reassembly.pcap"
    assert "conflict" in reasons_of(results[name])
    one = One(name)
    (p,) = [p for p in one.pairs if p.flows and p.flows[0].metadata["pcapflows"]["conflicts"]]
    f, s = p.flows[0], p.streams[0]
    client, _ = cf.flow_ends(f)
    ours = cf.tokens(f, True)
    mine = [fr for fr in s.frames if s.sender(fr) == s.node(client)]
    ev = cf.evidence(ours, mine)
    assert ev.problem is None and ev.packets is not None
    rendered, where = cf.render(ours)
    theirs = s.sent[s.node(client)]
    assert len(rendered) == len(theirs) and rendered != theirs
    offsets = {p + k: o + k for p, o, n in where for k in range(n)}
    diff = [k for k in range(len(rendered)) if rendered[k] != theirs[k]]
    for k in diff:
        copies = ev.packets.copies[offsets[k]]
        assert len(copies) >= 2 and rendered[k] in copies and theirs[k] in copies
    # Two copies of each differing range: first-captured (ours) and a later frame.
    differing = {offsets[k] for k in diff}
    frames_there = {
        fr.number
        for fr in mine
        for o in differing
        if 0 <= o - (fr.data_seq - ev.packets.base) % (1 << 32) < len(fr.payload)
    }
    assert len(frames_there) >= 2


def test_conflict_needs_two_captured_copies() -> None:
    """The same bytes with one byte changed where the packets carry a single copy are
    unexplained: a conflict is named only where captured copies differ."""
    one = One("tcp_overlap_gap/zeek__reassembly.pcap")
    f, s = one.flow(), one.stream()
    client, server = cf.flow_ends(f)
    mine = [fr for fr in s.frames if s.sender(fr) == s.node(client)]
    peer = [fr for fr in s.frames if s.sender(fr) == s.node(server)]
    ours = cf.tokens(f, True)
    theirs = bytearray(s.sent[s.node(client)])
    theirs[2] ^= 0xFF  # inside the first segment, of which one copy was captured
    assert cf.judge(ours, bytes(theirs), mine, peer)[0] is None


def test_fragment_overlap(results: Results) -> None:
    """IP fragments of one segment overlapped with other content: tshark flags frame 5
    (ip.fragment.overlap.conflict) and shows the last copy; pcapflows reports the frame
    and keeps the first, which came first and is what the receiver already had."""
    name = "ip/zeek__fragmented-4.pcap"
    assert "fragment overlap" in reasons_of(results[name])
    one = One(name)
    assert "kept the first copy" in one.cap.damaged[5]
    rows = one.fields("frame.number", "ip.fragment.overlap.conflict")
    assert [r[0] for r in rows if r[1]] == ["5"]
    f, s = one.flow(1), one.stream(1)
    ours, theirs = data(f, True), s.sent[s.node(cf.flow_ends(f)[0])]
    assert ours.startswith(b"GET /msadc/..%2f../..%2f../..%2f../winnt/system32/cm")
    assert ours.endswith(b"d.exe?/c+dir+c:\\\n")
    assert len(ours) == len(theirs) and ours[:28] == theirs[:28] and ours != theirs


def test_client_by_first_packet(results: Results) -> None:
    """The SYN-ACK is captured (and stamped) before the SYN it answers: tshark's node 0
    is the server. The SYN-ACK acknowledges the SYN's sequence number + 1, so the SYN
    was sent first: pcapflows' client is the SYN's sender (history starts '^'). Both
    start the connection at the earliest frame, the SYN-ACK."""
    name = "tcp_ooo_retrans/zeek__handshake-reorder.pcap"
    assert "client by first packet" in reasons_of(results[name])
    assert not results[name].unexplained
    one = One(name)
    f, s = one.flow(), one.stream()
    synack, syn = s.frames[0], s.frames[1]
    assert synack.flags == 0x12 and syn.flags == 0x02
    assert synack.ack_raw == syn.seq_raw + 1 and synack.time < syn.time
    client, server = cf.flow_ends(f)
    assert s.nodes == (server, client)
    assert s.sender(syn) == s.node(client)
    assert f.client_conn.timestamp_start == pytest.approx(synack.time, abs=1e-6)
    assert f.metadata["pcapflows"]["history"].startswith("^")


def test_client_by_the_port_rule_mid_stream(results: Results) -> None:
    """No SYN and no SYN-ACK captured (picked up mid-stream): tshark's node 0 is the
    sender of the first packet, port 443; by the rule applied to tshark's own flags and
    ports, the client is the side on the high port, as pcapflows says."""
    name = "sessions/zeek__smtp.pcap"
    one = One(name)
    s = one.stream(3)
    assert not any(fr.flags & cf.SYN for fr in s.packets)
    assert s.nodes is not None and s.nodes[0][1] == 443
    sent = [(s.nodes[s.sender(fr) or 0], fr) for fr in s.packets]
    client, rule = cf.client_by_packets(sent, s.nodes)
    assert client == s.nodes[1] and rule == "port"
    assert cf.flow_ends(one.flow(3))[0] == client
    (d, _) = [d for d in results[name].directions if d.tshark_stream == 3]
    assert "client by first packet" in d.reasons and d.problem is None


def _swap_roles(flow: cf.pcapflows.TCPFlow) -> None:
    """Invented input: the flow with client and server exchanged."""
    client, server = flow.client_conn.peername, flow.server_conn.address
    flow.client_conn.peername, flow.server_conn.address = server, client
    for m in flow.messages:
        m.from_client = not m.from_client
    meta = flow.metadata["pcapflows"]
    for key in ("bytes", "packets"):
        meta[key] = {"client": meta[key]["server"], "server": meta[key]["client"]}
    for item in (*meta["gaps"], *meta["conflicts"]):
        item["from_client"] = not item["from_client"]


@pytest.mark.parametrize(
    "name", ["tcp_ooo_retrans/zeek__handshake-reorder.pcap", "sessions/dpkt__http.pcap"]
)
def test_a_wrong_role_is_unexplained(name: str) -> None:
    """Fed a flow whose client is the SYN's receiver, the checker says unexplained,
    whatever pcapflows' history marker says: roles come from tshark's tcp.flags."""
    one = One(name)
    ctx = cf._Context(one.path, one.cap)
    (p, *_) = [p for p in one.pairs if p.streams and p.flows]
    assert all(d.problem is None for d in cf._compare_pair(p, ctx))
    _swap_roles(p.flows[0])
    out = cf._compare_pair(p, ctx)
    assert out and all(d.problem is not None and "client:" in d.problem for d in out)


def test_start_is_the_earliest_frame_whatever_the_capture_order() -> None:
    """tcpflow's test1: frame 2 is stamped 16 ms before frame 1; the connection starts
    at frame 2's time (tshark's conversation start), not at the first record's."""
    one = One("tcp_ooo_retrans/tcpflow__test1-out-of-order.pcap")
    times = [fr.time for fr in one.stream().frames]
    assert times[1] < times[0]
    assert one.flow().client_conn.timestamp_start == pytest.approx(min(times), abs=1e-6)


def test_damaged_frame(results: Results) -> None:
    """Frame 1 (the client's SYN) is cut by the snap length inside its TCP options (34 of
    40 header bytes): tshark's Follow skips it, so its node 0 is frame 2's sender, the
    server. The fixed header (ports, sequence number, flags) was captured, so pcapflows
    uses the frame: the SYN's sender is the client and the connection starts at frame 1."""
    name = "tcp_truncated/zeek__truncated-header.pcap"
    assert "damaged frame" in reasons_of(results[name])
    assert not results[name].unexplained
    one = One(name)
    assert 1 not in one.cap.damaged
    f, s = one.flow(), one.stream()
    assert s.frames[0].number == 1 and s.frames[0].short
    assert f.metadata["pcapflows"]["first_frame"] == 1
    assert f.metadata["pcapflows"]["history"].startswith("S")
    client, server = cf.flow_ends(f)
    assert s.nodes is not None and s.nodes[0] == server
    (row,) = [r for r in one.fields("frame.number", "tcp.hdr_len", "frame.cap_len") if r[0] == "1"]
    assert int(row[1]) == 40 and int(row[2]) == 14 + 20 + 34
    rows = one.fields("frame.number", "tcp.srcport", "tcp.flags.syn", "tcp.flags.ack")
    assert rows[0][1:] == [str(client[1]), "1", "0"]


def test_dropped_after_marker(results: Results) -> None:
    """Zeek's fuzzed Modbus capture: the client's frame 21 acknowledges past a hole in
    the server's stream, so tshark writes a 48-byte marker for offsets 120..168 and
    moves on. Frame 23, captured after it, carries 12 of those bytes (offset 123):
    tshark drops it as old data, pcapflows puts it where its sequence number says, and
    the hole shrinks to 3 + 33 bytes around it."""
    name = "robustness/zeek__fuzz-72.pcap"
    assert "dropped after marker" in reasons_of(results[name])
    assert not results[name].unexplained
    one = One(name)
    f, s = one.flow(), one.stream()
    client, server = cf.flow_ends(f)
    frames = {fr.number: fr for fr in s.frames}
    payloads = one.payloads(s.index)
    late = frames[23]
    assert s.sender(late) == s.node(server) and len(payloads[23]) == 12
    # Frame 21 (the client's) acknowledged past the hole before frame 23 was captured.
    hole_end = frames[16].seq  # the data tshark shows right after its marker
    assert s.sender(frames[21]) == s.node(client)
    assert (frames[21].ack_raw - frames[16].seq_raw) % (1 << 32) < 1 << 31
    assert frames[23].seq < hole_end
    # Ours: frame 23's payload sits at its sequence number, between two smaller gaps.
    server_data = [t for t in cf.tokens(f, False) if isinstance(t, cf.Run)]
    (run,) = [t for t in server_data if t.offset == 123]
    assert run.data == payloads[23]
    gaps = [(g["offset"], g["length"]) for g in f.metadata["pcapflows"]["gaps"]]
    assert (120, 3) in gaps and (135, 33) in gaps
    # tshark's: the 48-byte marker, and frame 23's bytes nowhere.
    theirs = s.sent[s.node(server)]
    assert cf.marker(48) in theirs and payloads[23] not in theirs


def test_read_past_damage(results: Results) -> None:
    """3 stray bytes after record 18: tshark stops reading; pcapflows reads on. On the
    18 records tshark read, both agree; test_damage.py shows that the rest equals what
    tshark reassembles from the file with the 3 bytes removed."""
    name = "robustness/suricata__smtp-to-comma__10.7.29.101_49898-178.63.41.150_25.pcap"
    r = results[name]
    assert not r.unexplained
    assert all("read past damage" in d.reasons for d in r.directions) and r.directions
    one = One(name)
    assert one.cap.resync == 18
    assert max(fr.number for fr in one.stream().frames) == 18
    assert sum(len(m.content) for m in one.flow().messages) > 100_000


def test_after_close(results: Results) -> None:
    """The client resets the connection (frame 20); 18 s later the server's RST (frame
    78) arrives. tshark keeps it in stream 2; pcapflows has closed the flow (it lingers
    5 s after a RST) and gives the packet a flow of its own, without payload. The bytes
    of the connection are the same."""
    name = "tunnels/zeek__Teredo.pcap"
    assert "after close" in reasons_of(results[name])
    one = One(name)
    # The connection to port 1578. (Another one, to 1577, ends the same way: its RST
    # comes 16 s after both FINs; Zeek's conn.log also gives that RST its own entry.)
    (p,) = [p for p in one.pairs if "after close" in p.reasons and p.streams[0].index == 2]
    main, extra = p.flows
    assert main.metadata["pcapflows"]["closed_by"] == "rst"
    assert extra.metadata["pcapflows"]["first_frame"] == 78
    assert extra.metadata["pcapflows"]["bytes"] == {"client": 0, "server": 0}
    assert extra.client_conn.timestamp_start - main.client_conn.timestamp_end > 5
    s = p.streams[0]
    assert s.frames[-1].number == 78 and s.frames[-1].flags & 0x04
    for from_client, end in zip((True, False), cf.flow_ends(main), strict=True):
        assert s.sent[s.node(end)] == data(main, from_client)


def test_idle_split(results: Results) -> None:
    """A BGP session whose last two frames are stamped in 2038, 29 years after the first
    two (a capture made to test the year-2038 problem). tshark keeps one stream; the
    silence is far longer than pcapflows' idle timeout, so its flow ends there and a
    second flow continues the same sequence space (``follows``): each side's bytes of
    the two flows together are tshark's, and no byte is repeated or lost."""
    name = "formats/arkime__y2038-bgp.pcap"
    assert "idle split" in reasons_of(results[name])
    one = One(name)
    (p,) = [p for p in one.pairs if "idle split" in p.reasons]
    first, second = p.flows
    assert second.metadata["pcapflows"]["follows"] == first.metadata["pcapflows"]["stream"]
    s = p.streams[0]
    # The packets prove the silence: the frame that starts the second flow comes more
    # than the idle timeout after every frame before it.
    start = second.metadata["pcapflows"]["first_frame"]
    before = [fr.time for fr in s.frames if fr.number < start]
    (at,) = [fr.time for fr in s.frames if fr.number == start]
    assert at - max(before) > cf.IDLE_TIMEOUT
    for from_client, end in zip((True, False), cf.flow_ends(first), strict=True):
        assert s.sent[s.node(end)] == data(first, from_client) + data(second, from_client)


def test_late_syn(results: Results) -> None:
    """Every packet of a connection shuffled: tshark opens a new stream at the SYN
    (frame 10) that frame 4's SYN-ACK already acknowledged, and its Follow loses most of
    the data. pcapflows keeps one connection, whose bytes are exactly those of the
    unshuffled original and those the packets carry."""
    name = "tcp_ooo_retrans/tcpflow__test5-lines-randomized.pcap"
    assert reasons_of(results[name]) == {"late SYN"}
    one = One(name)
    (p,) = one.pairs
    assert [s.index for s in p.streams] == [0, 1] and len(p.flows) == 1
    (orig,) = cf.read_flows(CORPUS / "tcp_ooo_retrans/tcpflow__test5-lines.pcap").flows
    f = p.flows[0]
    for from_client in (True, False):
        assert data(f, from_client) == data(orig, from_client)
    assert f.metadata["pcapflows"]["gaps"] == []
    theirs = p.streams[0].sent[p.streams[0].node(cf.flow_ends(f)[1])]
    assert b"bytes missing in capture file" in theirs


def test_port_reuse(results: Results) -> None:
    """Three connections on one 4-tuple, each SYN to FIN: tshark gives each a stream,
    pcapflows a flow; paired by first frame, each pair is byte-identical."""
    name = "tcp_special/tcpflow__test7-three-flows.pcap"
    r = results[name]
    assert {d.reasons for d in r.directions} == {("port reuse",)}
    one = One(name)
    assert len(one.pairs) == 3
    for p in one.pairs:
        (s,), (f,) = p.streams, p.flows
        assert s.frames[0].number == f.metadata["pcapflows"]["first_frame"]
        assert s.frames[0].flags == 0x02
        for from_client, end in zip((True, False), cf.flow_ends(f), strict=True):
            assert s.sent[s.node(end)] == data(f, from_client)


def test_unsupported_link_type_is_counted(results: Results) -> None:
    """Link type 182 (an MTP2 variant tshark cannot read either): pcapflows skips and
    counts every packet; tshark has no stream, so there is nothing to compare."""
    name = "robustness/tcpdump__kday6.pcap"
    reader = cf.pcapflows.read(CORPUS / name)
    assert list(reader) == []
    assert reader.stats.skipped["linktype 182 unsupported"] == reader.stats.packets > 0
    r = results[name]
    assert (r.streams, r.flows, r.directions) == (0, 0, [])
    assert "unsupported" in r.tshark_stderr


# --------------------------------------------------------------------------- crafted

C, S = ("10.0.0.1", 40000), ("10.0.0.2", 80)
CISN, SISN = 1000, 5000


def seg(t: float, fwd: bool, flags: str, seq: int, ack: int = 0, data: bytes = b"") -> Packet:
    """One TCP segment client -> server (``fwd``) or back, at capture time ``t``."""
    (src, sport), (dst, dport) = (C, S) if fwd else (S, C)
    p = (
        Ether()
        / IP(src=src, dst=dst)
        / TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack)
    )
    if data:
        p = p / Raw(data)
    p.time = t
    return p


def handshake(t: float = 1000.0) -> list[Packet]:
    return [
        seg(t, True, "S", CISN),
        seg(t + 0.01, False, "SA", SISN, CISN + 1),
        seg(t + 0.02, True, "A", CISN + 1, SISN + 1),
    ]


def conversation() -> list[Packet]:
    """A request, a response, FINs both ways, the last ACK."""
    req, resp = b"GET / HTTP/1.0\r\n\r\n", b"HTTP/1.0 200 OK\r\n\r\nhello"
    c, s = CISN + 1, SISN + 1
    return [
        *handshake(),
        seg(1000.03, True, "PA", c, s, req),
        seg(1000.04, False, "PA", s, c + len(req), resp),
        seg(1000.05, True, "FA", c + len(req), s + len(resp)),
        seg(1000.06, False, "FA", s + len(resp), c + len(req) + 1),
        seg(1000.07, True, "A", c + len(req) + 1, s + len(resp) + 1),
    ]


def icmp_error(t: float, quoted: Packet) -> Packet:
    """A router's ICMP 'host unreachable' quoting a packet (IP header, TCP header and
    data), as routers do: no packet of the connection."""
    p = Ether() / IP(src="10.0.0.254", dst=quoted[IP].src) / ICMP(type=3, code=1)
    p = p / bytes(quoted[IP])
    p.time = t
    return p


def sflow_sample(t: float, sampled: Packet) -> Packet:
    """An sFlow v5 datagram with one flow sample whose raw-header record quotes the
    first 128 bytes of ``sampled`` (Ethernet, IP, TCP, data)."""
    head = bytes(sampled)[:128]
    record = struct.pack("!IIII", 1, len(bytes(sampled)), 4, len(head)) + head
    record += b"\0" * (-len(head) % 4)
    sample = struct.pack("!8I", 1, 3, 1, 1, 0, 1, 2, 1) + struct.pack("!II", 1, len(record))
    sample += record
    datagram = struct.pack("!7I", 5, 1, 0x0A0000FE, 0, 1, 1000, 1)
    datagram += struct.pack("!II", 1, len(sample)) + sample
    p = Ether() / IP(src="10.0.0.253", dst="10.0.0.252") / UDP(sport=50000, dport=6343)
    p = p / Raw(datagram)
    p.time = t
    return p


def crafted(tmp_path: Path, name: str, packets: list[Packet]) -> cf.FileResult:
    path = tmp_path / name
    wrpcap(str(path), packets)
    return cf.compare(path, name)


def statuses(r: cf.FileResult) -> list[tuple[str, tuple[str, ...], str | None]]:
    return [(d.sender, d.reasons, d.problem) for d in r.directions]


def test_quoted_header_after_the_connection(tmp_path: Path) -> None:
    """An ICMP error quoting the server's response arrives a second after the last
    packet: tshark counts it in the stream (its span ends there), pcapflows rightly
    does not. The stream without quoted headers ends where pcapflows' flow does."""
    packets = conversation()
    packets.append(icmp_error(1001.0, packets[4]))
    r = crafted(tmp_path, "icmp.pcap", packets)
    assert statuses(r) == [
        ("client", ("quoted header",), None),
        ("server", ("quoted header",), None),
    ]
    one_ts = cf.run_tshark(tmp_path / "icmp.pcap", guess=1)
    (s,) = one_ts.streams.values()
    assert [fr.number for fr in s.frames if fr.quoted] == [9]
    assert "icmp" in s.frames[-1].protocols.split(":")


def test_quoted_header_alone(tmp_path: Path) -> None:
    """An ICMP error quoting a TCP packet of a connection that was not captured: tshark
    makes a stream of it, pcapflows has no flow, and that is right."""
    packets = [icmp_error(1000.0, seg(999.0, True, "PA", 7, 9, b"data"))]
    r = crafted(tmp_path, "icmp-only.pcap", packets)
    assert r.streams == 1 and r.flows == 0
    assert {d.reasons for d in r.directions} == {("quoted header",)}
    assert not r.unexplained


def test_quoted_header_in_an_sflow_sample(tmp_path: Path) -> None:
    """An sFlow sample (UDP 6343) quoting the client's request, captured before the
    connection: tshark's stream starts at the sample, pcapflows' flow at the SYN."""
    packets = conversation()
    r = crafted(tmp_path, "sflow.pcap", [sflow_sample(999.0, packets[3]), *packets])
    assert statuses(r) == [
        ("client", ("quoted header",), None),
        ("server", ("quoted header",), None),
    ]


def test_ack_passes_a_hole_before_the_bytes_above_it(tmp_path: Path) -> None:
    """The client sends 100 bytes, the server acknowledges 300 (past a hole of 200),
    then bytes 200..300 arrive: tshark has moved on past the ACK and never shows them;
    pcapflows puts them after a 100-byte gap. Named, and proven from the ACK's frame."""
    c, s = CISN + 1, SISN + 1
    packets = [
        *handshake(),
        seg(1000.03, True, "PA", c, s, b"a" * 100),
        seg(1000.04, False, "A", s, c + 300),
        seg(1000.05, True, "PA", c + 200, s, b"c" * 100),
    ]
    r = crafted(tmp_path, "ack-passes.pcap", packets)
    (client, server) = r.directions
    assert client.problem is None and "dropped after marker" in client.reasons
    assert (client.ours, client.theirs) == (200, 100)
    assert server.status == "identical"


def test_late_bytes_fill_an_acknowledged_hole_inside_a_run(tmp_path: Path) -> None:
    """Bytes 0..100 and 200..300 arrive, the server acknowledges 300, then 100..200
    arrive: tshark shows a marker for them (it had moved on); pcapflows has one run of
    300 bytes, no gap. Named: removing the late bytes gives tshark's marker."""
    c, s = CISN + 1, SISN + 1
    packets = [
        *handshake(),
        seg(1000.03, True, "PA", c, s, b"a" * 100),
        seg(1000.031, True, "PA", c + 200, s, b"c" * 100),
        seg(1000.04, False, "A", s, c + 300),
        seg(1000.05, True, "PA", c + 100, s, b"b" * 100),
        seg(1000.06, True, "PA", c + 300, s, b"d" * 10),
    ]
    r = crafted(tmp_path, "late-fill.pcap", packets)
    (client, _) = r.directions
    assert client.problem is None
    assert set(client.reasons) == {"marker", "dropped after marker"}
    assert client.ours == 310 and client.theirs == 210


# --------------------------------------------------------------------------- invented


def client_side(path: Path) -> tuple[list[cf.Frame], list[cf.Frame], bytes]:
    """tshark's view of the one stream of a crafted capture: the client's frames, the
    server's, and the bytes Follow shows for the client."""
    (st,) = cf.run_tshark(path, guess=1).streams.values()
    mine = [fr for fr in st.frames if fr.srcport == C[1]]
    peer = [fr for fr in st.frames if fr.srcport == S[1]]
    return mine, peer, st.sent[st.node(C)]


def test_bytes_duplicated_4_gib_ahead_are_unexplained(tmp_path: Path) -> None:
    """Issue 9 bug 1, fed to the checker: a segment whose sequence number is damaged
    (2**31 ahead), then an ordinary retransmission. Output that repeats the
    retransmitted bytes 4 GiB after the original is a token-aligned extension of
    tshark's bytes (the slice check alone calls it 'truncated'); checked against the
    packets it is unexplained, and the true output is identical."""
    c, s = CISN + 1, SISN + 1
    one, two, three = b"1" * 100, b"2" * 100, b"3" * 100
    packets = [
        *handshake(),
        seg(1000.03, True, "PA", c, s, one),
        seg(1000.04, True, "PA", (c + 100 + (1 << 31) + 50) % (1 << 32), s, two),
        seg(1000.05, True, "PA", c + 100, s, two),
        seg(1000.06, True, "PA", c + 200, s, three),
        seg(1000.07, False, "A", s, c + 300),
    ]
    path = tmp_path / "bug1.pcap"
    wrpcap(str(path), packets)
    mine, peer, theirs = client_side(path)
    right: list[cf.Token] = [cf.Run(0, one + two + three)]
    assert cf.judge(right, theirs, mine, peer) == ((), None)
    invented: list[cf.Token] = [
        cf.Run(0, one + two + three),
        cf.Hole(300, (1 << 32) - 200, "end"),
        cf.Run((1 << 32) + 100, two),
    ]
    assert cf.classify(invented, theirs) == ("truncated",)
    kind, problem = cf.judge(invented, theirs, mine, peer)
    assert kind is None and problem is not None and "no captured packet" in problem


def past_fin() -> list[Packet]:
    """50 bytes from the client, its FIN, then 13 bytes with higher sequence numbers."""
    c, s = CISN + 1, SISN + 1
    return [
        *handshake(),
        seg(1000.03, True, "PA", c, s, b"x" * 50),
        seg(1000.04, True, "FA", c + 50, s),
        seg(1000.05, True, "PA", c + 51, s, b"after the FIN"),
        seg(1000.06, False, "A", s, c + 51),
    ]


def test_data_past_a_fin_is_unexplained(tmp_path: Path) -> None:
    """Issue 9 bug 2, fed to the checker: 50 bytes, the client's FIN, then 13 more
    bytes with higher sequence numbers. Delivering them after a gap is a token-aligned
    extension of tshark's bytes ('truncated' to the slice check); against the packets
    they lie past the FIN: unexplained. The right output (50 bytes) is identical."""
    path = tmp_path / "bug2.pcap"
    wrpcap(str(path), past_fin())
    mine, peer, theirs = client_side(path)
    assert theirs == b"x" * 50
    assert cf.judge([cf.Run(0, b"x" * 50)], theirs, mine, peer) == ((), None)
    invented: list[cf.Token] = [
        cf.Run(0, b"x" * 50),
        cf.Hole(50, 1, "end"),
        cf.Run(51, b"after the FIN"),
    ]
    assert cf.classify(invented, theirs) == ("truncated",)
    kind, problem = cf.judge(invented, theirs, mine, peer)
    assert kind is None and problem is not None and "past the FIN" in problem


def test_pcapflows_on_data_past_a_fin(tmp_path: Path) -> None:
    """The same capture through pcapflows itself: no unexplained difference, because
    pcapflows does not deliver bytes past the FIN (issue 9 item 2)."""
    r = crafted(tmp_path, "past-fin.pcap", past_fin())
    assert not r.unexplained, statuses(r)


# --------------------------------------------------------------------------- the tool


def test_classify_requires_an_unacknowledged_hole_to_stop() -> None:
    """tshark stops only at a hole not acknowledged (or with nothing after it): stopping
    at an acknowledged hole followed by data is not 'truncated'."""
    a, b = cf.Run(0, b"abcd"), cf.Run(8, b"efgh")
    acked = [a, cf.Hole(4, 4, "ack"), b]
    assert cf.classify(acked, b"abcd") is None
    assert cf.classify(acked, b"abcd" + cf.marker(4) + b"efgh") == ("marker",)
    assert cf.classify([a, cf.Hole(4, 4, "end"), b], b"abcd") == ("truncated",)
    assert cf.classify([a, cf.Hole(4, 4, "ack")], b"abcd") == ("truncated",)
    assert cf.classify([a, cf.Hole(4, 4, "unseen"), b], b"efgh") == ("late start",)
    assert cf.classify([a], b"abce") is None


def test_tshark_runs_once_per_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a cache, the second reading of a file starts no tshark and gives the same
    streams; another file (another hash) is not served from it."""
    monkeypatch.setattr(cf, "CACHE", tmp_path / "cache")
    path = CORPUS / "sessions/dpkt__http.pcap"
    first = cf.run_tshark(path, guess=2)
    again = cf.run_tshark(path, guess=2)
    assert (first.runs, again.runs) == (1, 0)
    assert len(first.streams) == 2
    for sid, s in first.streams.items():
        assert again.streams[sid].sent == s.sent and again.streams[sid].frames == s.frames
    other = cf.run_tshark(CORPUS / "sessions/tcpdump__ssh.pcap", guess=4)
    assert other.runs == 1 and len(list((tmp_path / "cache").glob("*.json"))) == 2


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _require_tshark()
    require_corpus()
    md = tmp_path / "c.md"
    md.write_text(f"intro\n\n{cf.BEGIN}\nold\n{cf.END}\noutro\n")
    assert cf.main([str(CORPUS / "sessions/dpkt__http.pcap"), "--markdown", str(md)]) == 0
    out = capsys.readouterr().out
    assert "2 tshark streams, 2 flows, 4 directions: 4 identical" in out
    text = md.read_text()
    assert text.startswith("intro\n") and text.endswith("outro\n") and "old" not in text
