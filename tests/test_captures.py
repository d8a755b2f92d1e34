"""The project's sample captures read through ``pcapflows.read``, against their ground truth.

``captures/expected.json`` is written by ``captures/make_captures.py`` from what it put
on the wire (never from pcapflows), so these tests compare pcapflows with a ground truth
built independently of it. The ground truth itself is cross-checked against tshark's
Follow TCP Stream on the captures where tshark's behaviour is known to be the same, and
the generator is checked to be deterministic.
"""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conformance import run_tshark
from tcptable import require_tshark

import pcapflows

CAPTURES = Path(__file__).resolve().parents[1] / "captures"
SCRIPT = CAPTURES / "make_captures.py"
DOC: dict[str, Any] = json.loads((CAPTURES / "expected.json").read_text())
EXPECTED: dict[str, dict[str, Any]] = DOC["captures"]
NAMES = sorted(EXPECTED)
#: A real tcpdump recording, made only with ``--record-loopback``: not reproducible.
LOOPBACK = "loopback_http.pcap"

#: Captures whose tshark Follow output is not compared, and why.
TSHARK_DIFFERS = {
    # tshark inserts "[N bytes missing in capture file]" into the stream at a hole, and
    # drops everything after a hole that was never acknowledged; pcapflows reports gaps
    # and inserts nothing (README, "Where pcapflows and tshark's Follow TCP Stream
    # differ"). Snap-length cuts are holes too.
    "rule_gap_acked.pcap": "gap",
    "rule_gap_unacked_open.pcap": "gap",
    "rule_snaplen.pcap": "gap",
    # A SYN-ACK before the SYN: tshark's stream set-up (node 0 = first packet's sender,
    # base sequence numbers) depends on its version's handling of late SYNs.
    "rule_synack_first.pcap": "reordering before the SYN",
    # Two connections on one 4-tuple: whether and where tshark starts a new tcp.stream
    # has changed between tshark versions, so stream indexes need not line up.
    "rule_port_reuse.pcap": "port reuse",
    # Several TCP segments in one frame (an 802.11 A-MSDU): tshark 4.0 dissects each
    # one right, but its Follow mixes them up (segments of one stream printed in the
    # other's, or as sent by the wrong node). Compared with tshark's per-segment
    # dissection instead (test_segments_of_one_frame_agree_with_tshark).
    "tunnel_aruba_amsdu.pcap": "several segments in one frame",
}


def content(value: str | dict[str, str]) -> bytes:
    """A message's content as stored in expected.json (text, or ``{"hex": ...}``)."""
    if isinstance(value, dict):
        return bytes.fromhex(value["hex"])
    return value.encode("ascii")


def sent_by(flow: dict[str, Any], from_client: bool) -> bytes:
    """All bytes one side of an expected flow sent, in order (gaps left out)."""
    return b"".join(content(m[1]) for m in flow["messages"] if m[0] == from_client)


def read(name: str) -> tuple[list[pcapflows.TCPFlow], pcapflows.ReadStats]:
    """The flows of one sample capture, in order of first packet, and the read's stats."""
    reader = pcapflows.read(CAPTURES / name, order="first_packet")
    flows = list(reader)
    return flows, reader.stats


def spans(items: list[dict[str, Any]]) -> list[list[Any]]:
    """Gaps or conflicts as sorted ``[from_client, offset, length]`` (time left out)."""
    return sorted([x["from_client"], x["offset"], x["length"]] for x in items)


def has_fragments(name: str) -> bool:
    """Whether the capture's segments travel as IP fragments (skipped-count unclear)."""
    return "fragments" in name


# --------------------------------------------------------------------------------------
# pcapflows against the ground truth
# --------------------------------------------------------------------------------------


def mirrored(hop: dict[str, Any]) -> dict[str, Any]:
    """A tunnel hop as the opposite direction sees it: the outer addresses swapped. The
    outer UDP ports stay: both tunnel endpoints send to the tunnel's port (VXLAN and
    GENEVE from a flow-hash source port), as the generator writes them."""
    return dict(hop, src=hop["dst"], dst=hop["src"])


@pytest.mark.parametrize("name", NAMES)
def test_flows_match_ground_truth(name: str) -> None:
    """Every flow of every capture: roles, messages, times, gaps, conflicts, ending."""
    expected = EXPECTED[name]
    flows, stats = read(name)
    assert len(flows) == len(expected["flows"])
    for index, (flow, exp) in enumerate(zip(flows, expected["flows"], strict=True)):
        where = f"{name} flow {index}"
        meta = flow.metadata["pcapflows"]
        assert meta["stream"] == index, where
        assert flow.client_conn.peername is not None, where
        assert flow.server_conn.address is not None, where
        assert flow.server_conn.peername is not None, where
        assert list(flow.client_conn.peername) == exp["client"], where
        assert list(flow.server_conn.address) == exp["server"], where
        assert list(flow.server_conn.peername) == exp["server"], where
        assert meta["handshake_seen"] == exp["handshake_seen"], where

        got = [(m.from_client, m.content) for m in flow.messages]
        want = [(m[0], content(m[1])) for m in exp["messages"]]
        assert got == want, where
        for k, (m, e) in enumerate(zip(flow.messages, exp["messages"], strict=True)):
            if e[2] is not None:
                assert m.timestamp == pytest.approx(e[2], abs=1e-6), f"{where} message {k}"

        assert meta["bytes"] == exp["bytes"], where
        if exp["packets"] is not None:
            assert meta["packets"] == exp["packets"], where
        assert spans(meta["gaps"]) == sorted(exp["gaps"]), where
        assert spans(meta["conflicts"]) == sorted(exp["conflicts"]), where

        if exp["error"]:
            assert flow.error is not None, where
            assert f"by {exp['rst_from']}" in flow.error.msg, where
        else:
            assert flow.error is None, where
        assert meta["closed_by"] == exp["closed_by"], where
        assert meta["open_at_end"] == exp["open_at_end"], where
        if exp["first_frame"] is not None:
            assert meta["first_frame"] == exp["first_frame"], where
            assert meta["last_frame"] == exp["last_frame"], where
        if "tunnel" in exp:
            # The client's packets came by the stated path, the server's by its mirror
            # (or by the path stated for them).
            back = exp.get("tunnel_server") or [mirrored(hop) for hop in exp["tunnel"]]
            assert meta["tunnels"] == [
                {"from_client": True, "path": exp["tunnel"]},
                {"from_client": False, "path": back},
            ], where
        else:
            assert "tunnels" not in meta, where

    if expected["records"] is not None:
        assert stats.packets == expected["records"]
        if not has_fragments(name):
            assert sum(stats.skipped.values()) == expected["non_tcp_records"]
    assert not stats.anomalies, stats.anomaly_details


def test_wrapped_sequence_numbers_change_nothing() -> None:
    """ISN 2**32-10 and ISN 1000: the same conversation, the same flows."""

    def summary(name: str) -> list[Any]:
        flows, _ = read(name)
        return [
            (
                [(m.from_client, m.content, m.timestamp) for m in f.messages],
                spans(f.metadata["pcapflows"]["gaps"]),
                f.metadata["pcapflows"]["bytes"],
                f.metadata["pcapflows"]["closed_by"],
            )
            for f in flows
        ]

    assert summary("rule_seq_wrap.pcap") == summary("rule_seq_1000.pcap")
    assert EXPECTED["rule_seq_wrap.pcap"]["flows"] == EXPECTED["rule_seq_1000.pcap"]["flows"]


def test_demo_skips_noise() -> None:
    """demo.pcapng: four flows; its ARP and DNS packets are counted as skipped."""
    flows, stats = read("demo.pcapng")
    assert len(flows) == 4
    assert stats.packets == EXPECTED["demo.pcapng"]["records"]
    assert sum(stats.skipped.values()) == EXPECTED["demo.pcapng"]["non_tcp_records"] == 6


# --------------------------------------------------------------------------------------
# The captures and their ground truth, independently of pcapflows
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wiretap_counts() -> dict[str, int]:
    """Records per capture as Wireshark's file reader (wiretap) counts them: one
    ``capinfos`` run for all of them (the same reader tshark uses, without starting
    tshark once per file). ``capinfos`` comes with tshark (wireshark-common)."""
    require_tshark()
    capinfos = shutil.which("capinfos")
    if capinfos is None:
        pytest.fail("capinfos (wireshark-common, installed with tshark) is missing")
    out = subprocess.run(
        [capinfos, "-T", "-r", "-c", *(str(CAPTURES / n) for n in NAMES)],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    counts = {}
    for line in out.splitlines():
        path, n = line.rsplit("\t", 1)
        counts[Path(path).name] = int(n)
    return counts


@pytest.mark.parametrize("name", NAMES)
def test_tshark_reads_capture(name: str, wiretap_counts: dict[str, int]) -> None:
    """Wireshark's reader opens every capture and sees every record (capinfos exits
    non-zero on a file it cannot read)."""
    assert name in wiretap_counts
    if EXPECTED[name]["records"] is not None:
        assert wiretap_counts[name] == EXPECTED[name]["records"]


@pytest.mark.parametrize("name", [n for n in NAMES if n not in TSHARK_DIFFERS])
def test_ground_truth_and_pcapflows_agree_with_tshark(name: str) -> None:
    """Bytes per direction: tshark's Follow TCP Stream = ground truth = pcapflows.

    Only captures without gaps, without reordering before the SYN and without port
    reuse (see TSHARK_DIFFERS for why those are left out).
    """
    expected = EXPECTED[name]["flows"]
    assert not any(f["gaps"] for f in expected), "captures with gaps belong in TSHARK_DIFFERS"
    streams = run_tshark(CAPTURES / name, guess=len(expected)).streams
    assert sorted(streams) == list(range(len(expected)))
    flows, _ = read(name)
    assert len(flows) == len(expected)
    for index, (exp, flow) in enumerate(zip(expected, flows, strict=True)):
        s = streams[index]
        client, server = tuple(exp["client"]), tuple(exp["server"])
        assert s.nodes is not None and set(s.nodes) == {client, server}, f"{name} {index}"
        for from_client, endpoint in ((True, client), (False, server)):
            truth = sent_by(exp, from_client)
            assert s.sent[s.node(endpoint)] == truth, f"{name} stream {index} {endpoint}"
            ours = b"".join(m.content for m in flow.messages if m.from_client == from_client)
            assert ours == truth, f"{name} stream {index} {endpoint}"


@pytest.mark.parametrize(
    "name", [n for n, why in TSHARK_DIFFERS.items() if why == "several segments in one frame"]
)
def test_segments_of_one_frame_agree_with_tshark(name: str) -> None:
    """Bytes per direction: tshark's own dissection of every TCP segment (stream,
    sending port, relative sequence number, payload), laid end to end = ground truth =
    pcapflows; and tshark does find several segments in some frame."""
    expected = EXPECTED[name]["flows"]
    streams = run_tshark(CAPTURES / name).streams
    assert sorted(streams) == list(range(len(expected)))
    per_frame = Counter(f.number for s in streams.values() for f in s.frames)
    assert max(per_frame.values()) > 1, "no frame carries several segments"
    flows, _ = read(name)
    for index, (exp, flow) in enumerate(zip(expected, flows, strict=True)):
        for from_client, (_, port) in ((True, exp["client"]), (False, exp["server"])):
            stream = bytearray()
            for f in sorted(streams[index].frames, key=lambda f: f.seq):
                if f.srcport == port and f.payload:
                    assert f.seq == len(stream) + 1, f"{name} stream {index} frame {f.number}"
                    stream += f.payload
            truth = sent_by(exp, from_client)
            assert bytes(stream) == truth, f"{name} stream {index} port {port}"
            ours = b"".join(m.content for m in flow.messages if m.from_client == from_client)
            assert ours == truth, f"{name} stream {index} port {port}"


def test_ground_truth_is_consistent() -> None:
    """Totals, gaps and message times in expected.json agree with each other."""
    for name, cap in EXPECTED.items():
        for index, f in enumerate(cap["flows"]):
            where = f"{name} flow {index}"
            assert f["bytes"] == {
                "client": len(sent_by(f, True)),
                "server": len(sent_by(f, False)),
            }, where
            assert f["error"] == (f["rst_from"] is not None), where
            assert f["error"] == (f["closed_by"] == "rst"), where
            assert f["open_at_end"] == (f["closed_by"] == "end"), where
            for g in f["gaps"] + f["conflicts"]:
                assert isinstance(g[0], bool) and g[1] >= 0 and g[2] > 0, where
            times = [m[2] for m in f["messages"] if m[2] is not None]
            if f["first_frame"] is not None:
                assert 1 <= f["first_frame"] <= f["last_frame"] <= cap["records"], where
            assert all(isinstance(t, float) for t in times), where
            # Two messages in a row from one side only with a gap between them.
            for a, b in zip(f["messages"], f["messages"][1:], strict=False):
                if a[0] == b[0]:
                    assert any(g[0] == a[0] for g in f["gaps"]), where


#: The HTTP/1.1 recording (captures/record_http.py), with its own truth file.
RECORDED = ("record_http.py", "loopback_http11.pcap", "loopback_http11.truth.json")


def test_generator_is_deterministic(tmp_path: Path) -> None:
    """Rerunning make_captures.py gives byte-identical captures and ground truth."""
    subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path)], check=True, capture_output=True, timeout=600
    )
    made = sorted(p.name for p in tmp_path.iterdir())
    committed = sorted(
        p.name
        for p in CAPTURES.iterdir()
        if p.is_file() and p.name not in (SCRIPT.name, "README.md", LOOPBACK, *RECORDED)
    )
    assert made == committed
    for name in made:
        new, old = (tmp_path / name).read_bytes(), (CAPTURES / name).read_bytes()
        if name == "expected.json":
            # The loopback recording's entry is carried over, never regenerated.
            new_doc, old_doc = json.loads(new), json.loads(old)
            old_doc["captures"].pop(LOOPBACK, None)
            assert new_doc == old_doc
        elif name.endswith(".gz") and new != old:
            # Another zlib build (zlib-ng, say) may deflate differently but equivalently;
            # the generator itself is deterministic on a given machine.
            assert new[:10] == old[:10] and gzip.decompress(new) == gzip.decompress(old), name
        else:
            assert new == old, name
    assert sum(p.stat().st_size for p in CAPTURES.iterdir()) < 1_000_000
