"""pcapflows' HTTP exchanges against tshark's HTTP dissector on the corpus captures
whose manifest mentions HTTP: every request (method, URI, Host) and response (status,
Content-Length) tshark shows in a TCP stream, pcapflows shows in the same stream in
the same order, and the other way round. tshark dissects HTTP only on its known
ports, so it is told (``-d tcp.port==N,http``) about each port pcapflows found HTTP
on. Bodies are compared by hash with ``http.file_data``. Two tshark runs per capture."""

from __future__ import annotations

import csv
import hashlib
import json
import subprocess
import warnings
from collections import defaultdict
from pathlib import Path

import pytest
from tcptable import CORPUS, have_corpus, require_corpus, require_tshark

import pcapflows
from pcapflows.http import HTTPFlow
from pcapflows.http.convert import flows_from_tcp
from pcapflows.http.model import Message
from pcapflows.http.parser import (
    content_length,
    looks_like_request,
    looks_like_response,
    read_head,
)
from pcapflows.http.stream import sides
from pcapflows.model.tcp import TCPFlow

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
    "tls/ex_h2c_prior_knowledge.pcapng": "HTTP/2 cleartext (prior knowledge): tshark "
    "shows the streams' requests, pcapflows has no HTTP/2 layer yet (issue #24) and reads "
    "the client preface as an HTTP/1 request with method PRI",
    "tunnels/arkime__gre-erspan-vxlan.pcap": "target with a space (GET /Hello Arkime "
    "HTTP/1.0): tshark's URI stops at the space, pcapflows keeps the whole target",
}

#: Named difference checked on every capture (see :func:`_resynced`): once a side's
#: framing is lost (a gap in a head, or a gap past a body's end), pcapflows keeps the
#: rest of that side TCP, because how many messages the gap swallowed is unknown and
#: requests and responses can no longer be paired; tshark starts a new message at any
#: segment after a gap that begins with a start line, and reads on from there.
#: These captures must show it
#: (the packets were checked by hand: each such message starts right after
#: "previous segment not captured", the bytes before it are lost).
RESYNCED: dict[str, int] = {
    # Only the first segment of each request was captured (no server side at all).
    "many_flows/pcapplusplus__4KHttpRequests.pcap": 9,
    # The mirror port dropped most of the server's segments.
    "tunnels/zeek__erspan.pcap": 3,
}

#: Extra tshark options per capture, where tshark needs to be told what pcapflows
#: finds by itself. Teredo: the client talks to a relay on ports 3797/32900, not the
#: Teredo port 3544, and tshark decodes Teredo on 3544 only (pcapflows recognises the
#: IPv6-in-UDP by content); told about the port, tshark shows the same exchanges.
TSHARK_EXTRA: dict[str, list[str]] = {
    "tunnels/zeek__Teredo.pcap": ["-d", "udp.port==3797,teredo"],
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


class Ours:
    """What pcapflows finds in one capture, per connection (port pair): the
    requests and responses in order, the SHA-256 of each complete non-empty body
    per kind, the start lines that begin a run after a gap on a side whose framing
    was lost (:func:`_resynced`), and the server ports with HTTP."""

    def __init__(self, path: Path) -> None:
        self.records: dict[int, list[Record]] = defaultdict(list)
        self.bodies: dict[tuple[int, str], list[str]] = defaultdict(list)
        self.resync: dict[int, list[Record]] = defaultdict(list)
        self.ports: set[int] = set()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for tcp in pcapflows.read(path):
                flows = flows_from_tcp(tcp)
                if flows == [tcp]:
                    continue
                stream = _key(tcp.client_conn.peername[1], tcp.server_conn.address[1])  # type: ignore[index]
                self.ports.add(tcp.server_conn.address[1])  # type: ignore[index]
                for f in flows:
                    if isinstance(f, HTTPFlow):
                        self._add(stream, f)
                    else:
                        self.resync[stream] += _resynced(tcp, f)

    def _add(self, stream: int, f: HTTPFlow) -> None:
        r = f.request
        http = f.metadata["pcapflows"]["http"]
        cut_request = any(i["from_client"] for i in http.get("incomplete", ()))
        cut_response = any(not i["from_client"] for i in http.get("incomplete", ()))
        if not http.get("request_missing"):
            # A message whose body the capture cut short: tshark's reassembly waits
            # for the rest of the PDU and never shows it (checked in the test).
            target = (
                r.path
                if r.first_line_format != "absolute"
                else f"{r.scheme}://{r.authority}{r.path}"
            )
            kind = "cut request" if cut_request else "request"
            self.records[stream].append((kind, r.method, target, r.headers.get("host", "")))
            body = _decoded(r)
            if not cut_request and body:
                self.bodies[stream, "request"].append(hashlib.sha256(body).hexdigest())
        if f.response is not None:
            kind = "cut response" if cut_response else "response"
            code = str(f.response.status_code)
            self.records[stream].append((kind, code, f.response.headers.get("content-length", "")))
            body = _decoded(f.response)
            if not cut_response and body:
                self.bodies[stream, "response"].append(hashlib.sha256(body).hexdigest())


def _decoded(message: Message) -> bytes | None:
    """The body as tshark shows it in ``http.file_data``: decoded when it has a
    Content-Encoding (tshark inflates gzip and deflate, and shows no file data for
    an encoded body when told not to), the bytes as sent otherwise."""
    if message.headers.get("content-encoding"):
        return message.get_content(strict=False)
    return message.raw_content


def _resynced(tcp: TCPFlow, rest: TCPFlow) -> list[Record]:
    """The messages (``("request", method, target)`` or ``("response", code)``) of
    each run of bytes that starts right after a gap with a start line, at or after
    where pcapflows stopped reading a side (``rest`` is the remainder kept as TCP):
    tshark starts a message at any such segment and reads on from there (messages
    after the first are found through their Content-Length)."""
    http = rest.metadata["pcapflows"]["http"]
    found: list[Record] = []
    for side, stop in zip(
        sides(tcp), (http.get("client_offset"), http.get("server_offset")), strict=True
    ):
        if stop is None:
            continue
        gap_ends = {g[0] + g[1] for g in side.gaps}
        look = looks_like_request if side.from_client else looks_like_response
        for run in side.runs:
            if run.offset < stop or run.offset not in gap_ends or not look(run.data):
                continue
            offset = run.offset
            while offset < run.end:
                head = read_head(side, offset, request=side.from_client).head
                if head is None:
                    break
                start = [x.decode("latin-1") for x in head.start]
                found.append(
                    ("request", *start[:2]) if side.from_client else ("response", start[1])
                )
                length = content_length(head.fields)
                if not isinstance(length, int):
                    break
                offset = head.end + length

    return found


def _tshark_args(path: Path, ports: set[int]) -> list[str]:
    args = [require_tshark(), "-n", "-r", str(path)]
    for p in sorted(ports):
        args += ["-d", f"tcp.port=={p},http"]
    return args + TSHARK_EXTRA.get(str(path.relative_to(CORPUS)), [])


def _tshark(path: Path, ports: set[int]) -> dict[int, list[Record]]:
    args = [*_tshark_args(path, ports), "-Y", "http.request or http.response"]
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


def _tshark_bodies(path: Path, ports: set[int]) -> dict[tuple[int, str], list[str]]:
    """SHA-256 of each ``http.file_data`` tshark shows, per connection and kind, in
    order. Its raw bytes (``-x``) are taken, not the field's text (a string field
    that stops at the first NUL): the body de-chunked and decoded (see
    :func:`_decoded`)."""
    args = [*_tshark_args(path, ports), "-Y", "http.file_data", "-T", "json", "-x"]
    args += ["-j", "tcp http", "--no-duplicate-keys"]
    out = subprocess.run(args, capture_output=True, text=True, timeout=60).stdout
    bodies: dict[tuple[int, str], list[str]] = defaultdict(list)
    for packet in json.loads(out or "[]"):
        layers = packet["_source"]["layers"]
        tcp, http = layers["tcp"], layers["http"]
        tcp = tcp[-1] if isinstance(tcp, list) else tcp
        stream = _key(int(tcp["tcp.srcport"]), int(tcp["tcp.dstport"]))
        for message in http if isinstance(http, list) else [http]:
            raw = message.get("http.file_data_raw")
            kinds = [k for k in ("request", "response") if f"http.{k}" in message]
            if not raw or not kinds:
                continue  # data tshark shows as a continuation, not as a message's body
            kind = kinds[0]
            data = bytes.fromhex(raw[0] if isinstance(raw[0], str) else raw[0][0])
            bodies[stream, kind].append(hashlib.sha256(data).hexdigest())
    return bodies


def _params() -> list[object]:
    return [
        pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=KNOWN[n])) if n in KNOWN else n
        for n in _http_captures() or ["(no corpus)"]
    ]


def _without(want: list[Record], resynced: list[Record]) -> tuple[list[Record], int]:
    """``want`` less the messages tshark found by starting anew after a gap where
    pcapflows keeps the bytes TCP (matched on kind, method and target or status)."""
    left = list(resynced)
    kept: list[Record] = []
    for w in want:
        short = w[:3] if w[0] == "request" else w[:2]
        if short in left:
            left.remove(short)
        else:
            kept.append(w)
    return kept, len(want) - len(kept)


@pytest.mark.corpus
@pytest.mark.parametrize("name", _params())
def test_same_exchanges_as_tshark(name: str) -> None:
    path = require_corpus() / name
    ours = Ours(path)
    theirs = _tshark(path, ours.ports)
    resynced = 0
    for stream in sorted(set(ours.records) | set(theirs)):
        got, want = ours.records.get(stream, []), theirs.get(stream, [])
        want, n = _without(want, ours.resync.get(stream, []))
        resynced += n
        for cut in (r for r in got if r[0].startswith("cut ")):
            assert (cut[0][4:], *cut[1:]) not in want, f"{name}: tshark shows {cut}"
        # tshark pairs requests and responses per frame, not per exchange: compare
        # the requests and the responses each in order.
        for kind in ("request", "response"):
            g = [r for r in got if r[0] == kind]
            w = [r for r in want if r[0] == kind]
            assert g == w, f"{name} stream {stream} {kind}s"
    assert resynced == RESYNCED.get(name, 0), f"{name}: messages after a gap"
    # The bodies: the same bytes, message for message. Where tshark started anew
    # after a gap it may show bodies pcapflows keeps as TCP: there ours must be a
    # subsequence of tshark's.
    bodies = _tshark_bodies(path, ours.ports)
    for key in sorted(set(ours.bodies) | set(bodies)):
        got_b, want_b = ours.bodies.get(key, []), bodies.get(key, [])
        if ours.resync.get(key[0]):
            it = iter(want_b)
            assert all(h in it for h in got_b), f"{name} stream {key} bodies"
        else:
            assert got_b == want_b, f"{name} stream {key} bodies"
