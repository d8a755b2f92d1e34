"""The project's own sample captures, read through ``pcapflows.read``.

``captures/expected.json`` is written by ``captures/make_captures.py`` from what it put
on the wire, so these tests compare pcapflows with ground truth built independently of
it; clean captures are also checked against tshark.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tcptable import CAPTURES
from tshark import follow

import pcapflows

EXPECTED: dict[str, list[dict[str, Any]]] = json.loads((CAPTURES / "expected.json").read_text())


def read(name: str) -> list[pcapflows.TCPFlow]:
    return list(pcapflows.read(CAPTURES / name, order="first_packet"))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_capture_matches_ground_truth(name: str) -> None:
    flows = read(name)
    expected = EXPECTED[name]
    assert len(flows) == len(expected)
    for flow, exp in zip(flows, expected, strict=True):
        meta = flow.metadata["pcapflows"]
        assert list(flow.client_conn.peername) == exp["client"]
        assert list(flow.server_conn.address) == exp["server"]
        assert meta["handshake_seen"] == exp["handshake_seen"]
        got = [(m.from_client, m.content.hex()) for m in flow.messages]
        assert got == [(m[0], m[1]) for m in exp["messages"]]
        for m, e in zip(flow.messages, exp["messages"], strict=True):
            assert m.timestamp == pytest.approx(e[2], abs=2e-6)
        gaps = [[g["from_client"], g["offset"], g["length"]] for g in meta["gaps"]]
        assert gaps == exp["gaps"]
        conflicts = [[c["from_client"], c["offset"], c["length"]] for c in meta["conflicts"]]
        assert conflicts == exp["conflicts"]
        assert (flow.error is not None) == exp["error"]
        assert meta["open_at_end"] == exp["open_at_end"]


def test_demo_skips_noise_and_counts_it() -> None:
    reader = pcapflows.read(CAPTURES / "demo.pcapng")
    flows = list(reader)
    assert len(flows) == 4
    assert reader.stats.skipped["not tcp: ip protocol 17"] == 1
    assert reader.stats.skipped["ethertype 0x0806"] == 1
    assert not reader.stats.anomalies


def test_script_is_deterministic(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(CAPTURES / "make_captures.py"), str(tmp_path)],
        check=True,
        timeout=300,
    )
    made = sorted(p.name for p in tmp_path.iterdir())
    assert made == sorted([*EXPECTED, "expected.json"])
    for name in made:
        assert (tmp_path / name).read_bytes() == (CAPTURES / name).read_bytes(), name


# tshark differs by design on gaps, mid-stream pickups and port reuse (see the README);
# these captures are the clean ones where both must agree byte for byte.
TSHARK_CLEAN = [
    n
    for n in sorted(EXPECTED)
    if not n.startswith(
        ("rule_gap", "rule_snaplen", "rule_midstream", "rule_port_reuse", "rule_conflict")
    )
]


@pytest.mark.parametrize("name", TSHARK_CLEAN)
def test_clean_captures_agree_with_tshark(name: str) -> None:
    streams = follow(str(CAPTURES / name))
    flows = read(name)
    assert len(streams) == len(flows)
    for flow in flows:
        s = streams[flow.metadata["pcapflows"]["stream"]]
        cli = flow.client_conn.peername
        srv = flow.server_conn.address
        assert {s.node0, s.node1} == {cli, srv}
        assert s.bytes_from(cli) == b"".join(m.content for m in flow.messages if m.from_client)
        assert s.bytes_from(srv) == b"".join(m.content for m in flow.messages if not m.from_client)
