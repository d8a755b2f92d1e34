"""pcapflows against tshark's Follow TCP Stream on every capture of the shared corpus.

The comparison itself is ``tools/conformance.py`` (also a command line tool, which writes
docs/conformance.md). Here:

* every file of the corpus MANIFEST must have zero unexplained differences (or be a
  file pcapflows rejects as not a supported capture);
* every named difference has a test on a real capture that shows it *and* shows, from
  the packets themselves (tshark's per-frame fields, not its Follow output), that
  pcapflows' bytes are the right ones;
* docs/conformance.md must be what the tool generates now.

tshark runs once per file for the whole session (in a pool of two processes); the
named-difference tests add a few small targeted tshark runs.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import conformance as cf
import pytest
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
    if shutil.which("tshark") is None:
        pytest.fail("tshark is not installed: these tests compare with it (apt-get install tshark)")


@pytest.fixture(scope="session")
def results() -> dict[str, cf.FileResult]:
    """The comparison of every corpus file, computed once (two worker processes)."""
    _require_tshark()
    require_corpus()
    return {r.name: r for r in cf.compare_corpus(CORPUS, workers=2)}


def _param(name: str) -> object:
    if name in KNOWN_ISSUES:
        return pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=KNOWN_ISSUES[name]))
    return name


@pytest.mark.parametrize("name", [_param(n) for n in manifest()])
def test_no_unexplained_difference(name: str, results: dict[str, cf.FileResult]) -> None:
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


def test_docs_table_is_current(results: dict[str, cf.FileResult]) -> None:
    """docs/conformance.md holds exactly what the command at its top generates."""
    doc = (ROOT / "docs" / "conformance.md").read_text()
    assert "python tools/conformance.py --corpus ../shared/corpus --markdown" in doc
    table = cf.markdown_table([results[n] for n in manifest()])
    assert f"{cf.BEGIN}\n{table}{cf.END}" in doc, "regenerate docs/conformance.md"


def test_every_reason_is_seen_and_documented(results: dict[str, cf.FileResult]) -> None:
    seen = {x for r in results.values() for x in reasons_of(r)}
    doc = (ROOT / "docs" / "conformance.md").read_text()
    for reason in cf.REASONS:
        assert f"### {reason}" in doc, reason
    assert seen == set(cf.REASONS)


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
        """Per-frame tshark fields (one row per frame), the packets' own word."""
        args = ["tshark", "-r", str(self.path), "-n", "-T", "fields", "-E", "occurrence=f"]
        for n in names:
            args += ["-e", n]
        out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
        return [line.split("\t") for line in out.splitlines()]


def reasons_of(r: cf.FileResult) -> set[str]:
    return {x for d in r.directions for x in d.reasons}


def data(flow: cf.pcapflows.TCPFlow, from_client: bool) -> bytes:
    return b"".join(m.content for m in flow.messages if m.from_client == from_client)


# --------------------------------------------------------------------------- named


def test_marker(results: dict[str, cf.FileResult]) -> None:
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


def test_truncated(results: dict[str, cf.FileResult]) -> None:
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
    payloads = cf.frame_payloads(one.path, [0])
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
    payloads = cf.frame_payloads(one.path, [0])
    first, second = s.frames[0], s.frames[1]
    assert first.seq_raw - second.seq_raw == 1396 + 22
    assert data(f, False) == payloads[second.number] + payloads[first.number]
    assert theirs == payloads[first.number]
    assert [g["cause"] for g in f.metadata["pcapflows"]["gaps"]] == ["unseen"]


def test_snaplen(results: dict[str, cf.FileResult]) -> None:
    """Frames cut to 96 of 1514 bytes: tshark shows their first 30 payload bytes run
    together, without a marker; pcapflows has a 'snaplen' gap of exactly the cut bytes
    after each of them."""
    name = "tcp_truncated/zeek__timestamp.pcap"
    assert "snaplen" in reasons_of(results[name])
    one = One(name)
    f, s = one.flow(), one.stream()
    cut = {int(r[1]) - int(r[0]) for r in one.fields("frame.cap_len", "frame.len") if r[0] != r[1]}
    gaps = [g for g in f.metadata["pcapflows"]["gaps"] if not g["from_client"]]
    assert len(gaps) > 100 and {g["cause"] for g in gaps} == {"snaplen"}
    # Each gap is exactly what the snap length cut from one frame (most: 1514 - 96).
    assert {g["length"] for g in gaps} <= cut and 1514 - 96 in cut
    assert s.sent[s.node(cf.flow_ends(f)[1])] == data(f, False)


def test_conflict(results: dict[str, cf.FileResult]) -> None:
    """A retransmission carried other bytes than the first copy: tshark shows one copy,
    pcapflows keeps the first and records the conflict. Every byte pcapflows has is the
    first copy the packets carry (first copy wins, frame by frame)."""
    name = "tcp_overlap_gap/zeek__reassembly.pcap"
    assert "conflict" in reasons_of(results[name])
    one = One(name)
    (p,) = [p for p in one.pairs if p.flows and p.flows[0].metadata["pcapflows"]["conflicts"]]
    f, s = p.flows[0], p.streams[0]
    payloads = cf.frame_payloads(one.path, [s.index])
    conflicted = {c["from_client"] for c in f.metadata["pcapflows"]["conflicts"]}
    for from_client, me in zip((True, False), cf.flow_ends(f), strict=True):
        ours = cf.tokens(f, from_client)
        frames = [fr for fr in s.frames if s.sender(fr) == s.node(me)]
        # The packets' own payloads, first copy of each byte winning, are our bytes.
        assert cf.packet_check(ours, frames, payloads) is None
        rendered, theirs = cf.render(ours)[0], s.sent[s.node(me)]
        assert (rendered != theirs) == (from_client in conflicted)
        assert len(rendered) == len(theirs)


def test_fragment_overlap(results: dict[str, cf.FileResult]) -> None:
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


def test_client_by_first_packet(results: dict[str, cf.FileResult]) -> None:
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


def test_start_is_the_earliest_frame_whatever_the_capture_order() -> None:
    """tcpflow's test1: frame 2 is stamped 16 ms before frame 1; the connection starts
    at frame 2's time (tshark's conversation start), not at the first record's."""
    one = One("tcp_ooo_retrans/tcpflow__test1-out-of-order.pcap")
    times = [fr.time for fr in one.stream().frames]
    assert times[1] < times[0]
    assert one.flow().client_conn.timestamp_start == pytest.approx(min(times), abs=1e-6)


def test_damaged_frame(results: dict[str, cf.FileResult]) -> None:
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


def test_dropped_after_marker(results: dict[str, cf.FileResult]) -> None:
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
    payloads = cf.frame_payloads(one.path, [s.index])
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


def test_read_past_damage(results: dict[str, cf.FileResult]) -> None:
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


def test_after_close(results: dict[str, cf.FileResult]) -> None:
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


def test_late_syn(results: dict[str, cf.FileResult]) -> None:
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


def test_port_reuse(results: dict[str, cf.FileResult]) -> None:
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


def test_unsupported_link_type_is_counted(results: dict[str, cf.FileResult]) -> None:
    """Link type 182 (an MTP2 variant tshark cannot read either): pcapflows skips and
    counts every packet; tshark has no stream, so there is nothing to compare."""
    name = "robustness/tcpdump__kday6.pcap"
    reader = cf.pcapflows.read(CORPUS / name)
    assert list(reader) == []
    assert reader.stats.skipped["linktype 182 unsupported"] == reader.stats.packets > 0
    r = results[name]
    assert (r.streams, r.flows, r.directions) == (0, 0, [])
    assert "unsupported" in r.tshark_stderr


# --------------------------------------------------------------------------- the tool


def test_classify_requires_an_unacknowledged_hole_to_stop() -> None:
    """tshark stops only at a hole not acknowledged (or with nothing after it): stopping
    at an acknowledged hole followed by data is not 'truncated'."""
    a, b = cf.Run(0, b"abcd", frozenset()), cf.Run(8, b"efgh", frozenset())
    acked = [a, cf.Hole(4, 4, "ack"), b]
    assert cf.classify(acked, b"abcd") is None
    assert cf.classify(acked, b"abcd" + cf.marker(4) + b"efgh") == ("marker",)
    assert cf.classify([a, cf.Hole(4, 4, "end"), b], b"abcd") == ("truncated",)
    assert cf.classify([a, cf.Hole(4, 4, "ack")], b"abcd") == ("truncated",)
    assert cf.classify([a, cf.Hole(4, 4, "unseen"), b], b"efgh") == ("late start",)
    assert cf.classify([a], b"abce") is None


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
