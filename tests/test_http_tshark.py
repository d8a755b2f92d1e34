"""pcapflows' HTTP exchanges against tshark's HTTP dissector on the corpus captures
whose manifest mentions HTTP: every request (method, URI, Host) and response (status,
Content-Length) tshark shows in a TCP stream, pcapflows shows in the same stream in
the same order, and the other way round. tshark dissects HTTP only on its known
ports, so it is told (``-d tcp.port==N,http``) about each port pcapflows found HTTP
on. One tshark run per capture."""

from __future__ import annotations

import csv
import subprocess
import warnings
from collections import defaultdict
from pathlib import Path

import pytest
from tcptable import CORPUS, have_corpus, require_corpus, require_tshark

import pcapflows
from pcapflows.http import HTTPFlow

Record = tuple[str, ...]

#: Differences with tshark, named. Each is checked to still be a difference (a
#: capture listed here that agrees fails the test, strict xfail).
KNOWN: dict[str, str] = {
    "linktypes/zeek__mixed-vlan-mpls.pcap": "HTTP/0.9 request (GET / with no version): "
    "tshark shows it, pcapflows does not read HTTP/0.9",
    "many_flows/zeek__methods.pcap": "request line without a target (OPTIONS HTTP/1.1): "
    "tshark takes the version as the URI, pcapflows does not take it as a request",
    "tcp_truncated/zeek__communityid__tcp.pcap": "request head cut by the snap length: "
    "tshark shows the partial head, pcapflows keeps the connection as TCP (a head with a "
    "gap is not parsed)",
    "tunnels/arkime__gre-erspan-vxlan.pcap": "target with a space (GET /Hello Arkime "
    "HTTP/1.0): tshark's URI stops at the space, pcapflows keeps the whole target",
    "many_flows/pcapplusplus__4KHttpRequests.pcap": "not yet explained: one request tshark "
    "shows is missing",
    "tunnels/zeek__Teredo.pcap": "not yet explained: two requests on a connection tshark "
    "shows no HTTP for",
    "tunnels/zeek__erspan.pcap": "not yet explained: four requests tshark shows are missing",
}


def _key(a: int, b: int) -> int:
    """Connections are matched by their port pair (tshark's and pcapflows' stream
    numbers differ for tunnelled traffic)."""
    return min(a, b) * 65536 + max(a, b)


def _http_captures() -> list[str]:
    if not have_corpus():
        return []
    with (CORPUS / "MANIFEST.tsv").open() as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return sorted(r["file"] for r in rows if "HTTP" in r["what_it_exercises"])


def _ours(path: Path) -> tuple[dict[int, list[Record]], set[int]]:
    per_stream: dict[int, list[Record]] = defaultdict(list)
    ports: set[int] = set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for f in pcapflows.read_http(path):
            if not isinstance(f, HTTPFlow):
                continue
            stream = _key(f.client_conn.peername[1], f.server_conn.address[1])  # type: ignore[index]
            if f.server_conn.address:
                ports.add(f.server_conn.address[1])
            r = f.request
            if not f.metadata["pcapflows"]["http"].get("request_missing"):
                per_stream[stream].append(
                    (
                        "request",
                        r.method,
                        r.path
                        if r.first_line_format != "absolute"
                        else f"{r.scheme}://{r.authority}{r.path}",
                        r.headers.get("host", ""),
                    )
                )
            if f.response is not None:
                # A response whose body the capture cut short: tshark's reassembly
                # waits for the rest and never shows it (checked below).
                cut = "incomplete" in f.metadata["pcapflows"]["http"]
                per_stream[stream].append(
                    (
                        "cut response" if cut else "response",
                        str(f.response.status_code),
                        f.response.headers.get("content-length", ""),
                    )
                )
    return per_stream, ports


def _tshark(path: Path, ports: set[int]) -> dict[int, list[Record]]:
    args = [require_tshark(), "-n", "-r", str(path), "-Y", "http.request or http.response"]
    for p in sorted(ports):
        args += ["-d", f"tcp.port=={p},http"]
    args += ["-T", "fields", "-E", "separator=\t", "-E", "occurrence=a", "-E", "aggregator=\x1f"]
    for field in (
        "tcp.srcport",
        "tcp.dstport",
        "http.request.method",
        "http.request.uri",
        "http.host",
        "http.response.code",
        "http.content_length_header",
    ):
        args += ["-e", field]
    # tshark exits with 2 on a cut capture after printing what it read: that is kept.
    out = subprocess.run(args, capture_output=True, text=True, timeout=60).stdout
    per_stream: dict[int, list[Record]] = defaultdict(list)
    for line in out.splitlines():
        sport, dport, methods, uris, hosts, codes, lengths = (line.split("\t") + [""] * 7)[:7]
        if not sport or not dport:
            continue  # a TCP header inside an ICMP error, say
        stream = _key(int(sport.split("\x1f")[-1]), int(dport.split("\x1f")[-1]))
        # One frame can end several pipelined messages: each field lists them in order.
        ms, us, hs = methods.split("\x1f"), uris.split("\x1f"), hosts.split("\x1f")
        cs, ls = codes.split("\x1f"), lengths.split("\x1f")
        if methods:
            for i, m in enumerate(ms):
                per_stream[stream].append(
                    ("request", m, us[i] if i < len(us) else "", hs[i] if i < len(hs) else "")
                )
        if codes:
            for i, c in enumerate(cs):
                per_stream[stream].append(("response", c, ls[i] if i < len(ls) else ""))
    return per_stream


def _params() -> list[object]:
    return [
        pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=KNOWN[n])) if n in KNOWN else n
        for n in _http_captures() or ["(no corpus)"]
    ]


@pytest.mark.corpus
@pytest.mark.parametrize("name", _params())
def test_same_exchanges_as_tshark(name: str) -> None:
    path = require_corpus() / name
    ours, ports = _ours(path)
    theirs = _tshark(path, ports)
    for stream in sorted(set(ours) | set(theirs)):
        got, want = ours.get(stream, []), theirs.get(stream, [])
        # tshark pairs requests and responses per frame, not per exchange: compare
        # the requests and the responses each in order.
        for cut in (r for r in got if r[0] == "cut response"):
            assert ("response", *cut[1:]) not in want, f"{name}: tshark shows {cut}"
        for kind in ("request", "response"):
            g = [r for r in got if r[0] == kind]
            w = [r for r in want if r[0] == kind]
            assert g == w, f"{name} stream {stream} {kind}s"
