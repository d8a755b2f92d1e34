"""``export --format dir`` against tcpflow (/usr/bin/tcpflow): the same file names and
the same bytes, for every sample capture where tcpflow is right.

Where tcpflow writes something else, the difference is named below and shown from
the packets (through the capture script's ground truth, which was checked against the
packets written): our files are the ground truth's bytes, and tcpflow's differ in
exactly the named way. Where tcpflow writes nothing (link types, tunnels, IPv6
extension headers and fragments it does not decode), only our side is checked.
The exports run in-process (``pcapflows.cli.main``), tcpflow as a subprocess: one
subprocess per capture would cost seconds for nothing the other CLI tests do not
already run.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from tcptable import CAPTURES

from pcapflows.cli import main

TRUTH: dict[str, dict[str, Any]] = json.loads((CAPTURES / "expected.json").read_text())["captures"]

#: Captures where tcpflow's files differ from the bytes the connection carried, and why.
TCPFLOW_WRONG = {
    # Frames padded to 60 bytes: tcpflow takes the padding after the IP total length as
    # payload (and the padding of the last ACK as a second connection, file "c1").
    "eth_padding.pcap": "padding",
    # tcpflow does not reassemble IP fragments: only the first fragment's bytes.
    "ipv4_fragments.pcap": "fragments",
    # Bytes never captured (a hole the peer acknowledged, one still open, bytes the
    # snap length cut): tcpflow writes zero bytes in their place.
    "rule_gap_acked.pcap": "zeros",
    "rule_gap_unacked_open.pcap": "zeros",
    "rule_snaplen.pcap": "zeros",
    # A retransmission with different bytes: tcpflow keeps the later copy.
    "rule_conflict.pcap": "later copy",
}
#: tcpflow appends the VLAN id to its names ("--100"); the bytes are the same.
VLAN_SUFFIX = re.compile(r"--\d+$")


def content(message: list[Any]) -> bytes:
    data = message[1]
    return bytes.fromhex(data["hex"]) if isinstance(data, dict) else data.encode()


def name(addr: list[Any]) -> str:
    host, port = str(addr[0]), int(addr[1])
    if "." in host:
        host = ".".join(f"{int(p):03d}" for p in host.split("."))
    return f"{host}.{port:05d}"


@pytest.mark.skipif(shutil.which("tcpflow") is None, reason="needs tcpflow")
def test_dir_export_is_tcpflow_where_tcpflow_is_right(tmp_path: Path) -> None:
    compared = 0
    for cap, entry in sorted(TRUTH.items()):
        ours, theirs = tmp_path / cap / "ours", tmp_path / cap / "tcpflow"
        with contextlib.redirect_stderr(io.StringIO()):
            code = main(["export", str(CAPTURES / cap), "--format", "dir", "-o", str(ours)])
        assert code == 0, cap
        subprocess.run(
            ["tcpflow", "-r", str(CAPTURES / cap), "-o", str(theirs)],
            capture_output=True,
            timeout=60,
            check=False,  # unsupported link types: tcpflow stops with status 1
        )
        mine = {p.name: p.read_bytes() for p in ours.iterdir() if p.name != "index.tsv"}
        # Ours: the ground truth, one file per direction with bytes, suffix c1 on reuse.
        want: dict[str, bytes] = {}
        for flow in entry["flows"]:
            c, s = name(flow["client"]), name(flow["server"])
            suffix = ""
            while f"{c}-{s}{suffix}" in want or f"{s}-{c}{suffix}" in want:
                suffix = f"c{int(suffix[1:] or 0) + 1}"
            for client, fname in ((True, f"{c}-{s}{suffix}"), (False, f"{s}-{c}{suffix}")):
                data = b"".join(content(m) for m in flow["messages"] if m[0] is client)
                if data:
                    want[fname] = data
        assert mine == want, cap
        tcpflow = {
            VLAN_SUFFIX.sub("", p.name): p.read_bytes()
            for p in (theirs.iterdir() if theirs.exists() else ())
            if p.name != "report.xml"
        }
        why = TCPFLOW_WRONG.get(cap)
        if why is None:
            for fname, data in tcpflow.items():
                assert mine.get(fname) == data, (cap, fname)
                compared += 1
            continue
        assert tcpflow != {k: mine[k] for k in tcpflow if k in mine} or set(tcpflow) - set(mine)
        for fname, data in tcpflow.items():
            if why == "padding":
                if fname in mine:
                    assert data.startswith(mine[fname]) and len(data) > len(mine[fname])
                    assert set(data[len(mine[fname]) :]) == {0xA5}  # the script's padding
                else:
                    assert set(data) == {0xA5}
            elif why == "fragments":
                assert len(data) < len(mine[fname])
            elif why == "zeros":
                flow = next(
                    f
                    for f in entry["flows"]
                    if fname.startswith(name(f["client"])) or fname.startswith(name(f["server"]))
                )
                client = fname.startswith(name(flow["client"]))
                stream = bytearray(data)
                for from_client, off, length in sorted(flow["gaps"], reverse=True):
                    if from_client is client and off < len(stream):
                        assert stream[off : off + length] == bytes(min(length, len(stream) - off))
                        del stream[off : off + length]
                assert bytes(stream) == mine[fname], (cap, fname)
            elif why == "later copy":
                flow = entry["flows"][0]
                client = fname.startswith(name(flow["client"]))
                spans = [(o, n) for c, o, n in flow["conflicts"] if c is client]
                assert len(data) == len(mine[fname])
                differ = [i for i in range(len(data)) if data[i] != mine[fname][i]]
                assert differ and all(any(o <= i < o + n for o, n in spans) for i in differ)
    assert compared >= 50  # tcpflow decodes the common link types: most captures count
