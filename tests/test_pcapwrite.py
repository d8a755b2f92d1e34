"""Flows back to packets (pcapflows.pcapwrite): what the reader gets back, what tshark sees.

The truth is independent of the writer: hand-made flows (hypothesis) whose expected
read-back is computed from the reassembly rules of the README (a message is a maximal
run of one side's bytes; a gap the peer acknowledged has cause ``ack``, one never
acknowledged ``end``; a FIN left unacknowledged leaves the connection open at the end),
the flows pcapflows reads from real captures, and tshark's own dissection of the files.
"""

from __future__ import annotations

import io
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pcapflows
from pcapflows.model.connection import Client, Server
from pcapflows.model.flow import Error
from pcapflows.model.tcp import TCPFlow, TCPMessage
from pcapflows.pcapwrite import MSS_IPV4, CaptureWriter, write_capture
from tests.tcptable import CAPTURES, CORPUS, require_corpus, require_tshark

# --- comparing flows ------------------------------------------------------------------


def key(flow: TCPFlow) -> tuple[Any, ...]:
    """What must survive a write and a read: endpoints, messages (bytes, direction,
    timestamp), gaps (direction, offset, length, cause, time), how the flow ended."""
    m = flow.metadata["pcapflows"]
    return (
        tuple(flow.client_conn.peername),
        tuple(flow.server_conn.address or ()),
        [msg.get_state() for msg in flow.messages],
        sorted(
            (g["from_client"], g["offset"], g["length"], g["cause"], g["timestamp"])
            for g in m["gaps"]
        ),
        m["closed_by"],
        m.get("rst_from"),
        m["open_at_end"],
        str(flow.error) if flow.error else None,
        flow.client_conn.timestamp_start,
        flow.client_conn.timestamp_end,
        m["handshake_seen"],
    )


def roundtrip(flows: list[TCPFlow], format: str = "pcapng") -> list[TCPFlow]:
    buf = io.BytesIO()
    assert write_capture(flows, buf, format) == len(flows)  # type: ignore[arg-type]
    return list(pcapflows.read(buf.getvalue(), warn=False))


def _sorted(keys: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return sorted(keys, key=repr)


# --- generated flows --------------------------------------------------------------------

_NS = st.integers(min_value=0, max_value=5_000_000)


def _ts(ns: int, base: int) -> float:
    """A timestamp as the reader computes one (seconds + nanoseconds / 1e9)."""
    sec, frac = divmod(ns, 1_000_000_000)
    return (base + sec) + frac / 1e9


@st.composite
def flows(draw: Any) -> list[tuple[TCPFlow, tuple[Any, ...]]]:
    """1-3 flows on distinct addresses, each with the key the reader must give back."""
    v6 = draw(st.booleans())
    base = draw(st.sampled_from([0, 1_700_000_000]))
    out = []
    n_flows = draw(st.integers(1, 3))
    for k in range(n_flows):
        if v6:
            chost, shost = f"2001:db8::{k + 1:x}", f"2001:db8:1::{draw(st.integers(1, 9)):x}"
        else:
            chost, shost = f"10.0.{k}.1", f"192.0.2.{draw(st.integers(1, 9))}"
        client = (chost, draw(st.integers(1, 65535)))
        server = (shost, draw(st.integers(1, 65535)))
        handshake = draw(st.booleans())
        t = draw(_NS)
        start = _ts(t, base)
        msgs: list[tuple[bool, bytes, float, str | None]] = []
        seen = [False, False]
        ended_hole = [False, False]
        for i in range(draw(st.integers(0, 6))):
            fc = draw(st.booleans())
            size = draw(st.sampled_from([0, 1, 7, 100, MSS_IPV4, MSS_IPV4 + 1, 3 * MSS_IPV4 + 5]))
            t += draw(st.sampled_from([0, 1, 1000, 250_000]))
            gap = None
            d = 0 if fc else 1
            if ended_hole[d]:
                # Bytes above a hole never acknowledged wait until the end and come out
                # as one run (README: "adjacent bytes that waited above a hole together
                # come out as one event"): one message after such a gap, no more.
                size = 0
            if size and (handshake or seen[d]) and draw(st.integers(0, 3)) == 0:
                gap = draw(st.sampled_from(["ack", "end"]))
                ended_hole[d] = gap == "end"
            content = bytes((i * 37 + j) & 0xFF for j in range(size))
            msgs.append((fc, content, _ts(t, base), gap))
            seen[d] = seen[d] or size > 0
        ending = draw(
            st.sampled_from(["fin", "fin_client", "fin_server", "rst_c", "rst_s", "open"])
        )
        t += draw(st.sampled_from([0, 5000]))
        end = _ts(t, base)
        # The flow as read() would give it...
        f = TCPFlow(
            Client(peername=client, sockname=server, timestamp_start=start, timestamp_end=end),
            Server(address=server, peername=server, sockname=client, timestamp_start=start),
            id=f"flow-{k}-{draw(st.integers(0, 10**6))}",
            timestamp_created=start,
        )
        gaps = []
        pos = [0, 0]
        messages: list[TCPMessage] = []
        for fc, content, ts, gap in msgs:
            d = 0 if fc else 1
            if gap:
                gaps.append(
                    {"from_client": fc, "offset": pos[d], "length": 1000 + pos[d] % 7,
                     "timestamp": ts, "cause": gap}
                )  # fmt: skip
                pos[d] += gaps[-1]["length"]
            if content:
                last = messages[-1] if messages else None
                if last is not None and last.from_client == fc and not gap:
                    last.content += content
                else:
                    messages.append(TCPMessage(fc, content, ts))
            pos[d] += len(content)
        f.messages = messages
        history = ("S" + "h" if handshake else "") + "D"
        closed_by = "end"
        meta: dict[str, Any] = {}
        if ending.startswith("fin"):
            history += "F" if ending in ("fin", "fin_client") else ""
            history += "f" if ending in ("fin", "fin_server") else ""
            if ending == "fin" and not any(ended_hole):
                closed_by = "fin"
        elif ending.startswith("rst"):
            who = "client" if ending == "rst_c" else "server"
            f.error = Error(f"connection reset by {who}", end)
            meta["rst_from"] = who
            closed_by = "rst"
        meta.update(
            handshake_seen=handshake, history=history, gaps=gaps, closed_by=closed_by,
            open_at_end=closed_by == "end",
        )  # fmt: skip
        f.metadata["pcapflows"] = meta
        expected = (
            client,
            server,
            [m.get_state() for m in messages],
            sorted((g["from_client"], g["offset"], g["length"], g["cause"]) for g in gaps),
            closed_by,
            meta.get("rst_from"),
            closed_by == "end",
            str(f.error) if f.error else None,
            start,
            end,
            handshake,
        )
        out.append((f, expected))
    return out


def _without_gap_time(k: tuple[Any, ...]) -> tuple[Any, ...]:
    return (*k[:3], [g[:4] for g in k[3]], *k[4:])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(flows(), st.sampled_from(["pcapng", "pcap"]))
def test_roundtrip_generated(made: list[tuple[TCPFlow, tuple[Any, ...]]], format: str) -> None:
    """read(write_capture(flows)) gives the same flows back."""
    back = roundtrip([f for f, _ in made], format)
    assert _sorted([_without_gap_time(key(f)) for f in back]) == _sorted([e for _, e in made])


# --- real captures ----------------------------------------------------------------------


def _expected_setup(flow: TCPFlow) -> float | None:
    """The handshake's last ACK is written no later than the first data (TCP Fast Open
    carries data in the SYN, before the ACK): a documented difference."""
    setup = flow.server_conn.timestamp_tcp_setup
    if setup is not None and flow.messages and setup > flow.messages[0].timestamp:
        return min(flow.messages[0].timestamp, setup)
    return setup


def _stable(path: Path) -> None:
    flows = list(pcapflows.read(path, warn=False))
    back = roundtrip(flows)
    want = _sorted([(*key(f), _expected_setup(f)) for f in flows])
    got = _sorted([(*key(f), f.server_conn.timestamp_tcp_setup) for f in back])
    assert got == want


@pytest.mark.parametrize(
    "path",
    sorted(p for p in CAPTURES.iterdir() if ".pcap" in p.name),
    ids=lambda p: p.name,
)
def test_captures_stable(path: Path) -> None:
    """Every sample capture: read, write, read again gives the same flows."""
    _stable(path)


#: Corpus captures whose read-write-read is stable (IPv6, midstream, resets, snap length,
#: gaps, tunnels, port reuse by SYN); the ones that are not are named in the README.
STABLE_CORPUS = [
    "formats/zeek__get-to-ssh-server.pcap",
    "linktypes/pcapplusplus__raw_ip.pcap",
    "ip/arkime__v6-http.pcap",
    "formats/zeek__gap-data-missing.pcapng",
    "tcp_special/suricata__bug-7657-01__input.pcap",
    "tcp_truncated/zeek__truncated-header.pcap",
    "tcp_midstream/zeek__missing-syn.pcap",
    "tunnels/zeek__Teredo.pcap",
    "tcp_rst_fin/zeek__rst-inject-rae.pcap",
    "tcp_ooo_retrans/tcpflow__test5-lines-randomized.pcap",
    "tunnels/zeek__erspan.pcap",
]


@pytest.mark.corpus
@pytest.mark.parametrize("name", STABLE_CORPUS)
def test_corpus_stable(name: str) -> None:
    _stable(require_corpus() / name)


# --- tshark -----------------------------------------------------------------------------


def _follow(out: str) -> dict[int, tuple[str, bytes, bytes]]:
    """tshark's ``-z follow,tcp,raw,N`` outputs: stream -> (node 0, its bytes, the other's)."""
    streams: dict[int, tuple[str, bytes, bytes]] = {}
    for block in out.split("Follow: tcp,raw")[1:]:
        lines = block.splitlines()
        sid = int(lines[1].split("eq")[1])
        node0 = lines[2].split(": ", 1)[1]
        a, b = bytearray(), bytearray()
        for line in lines[4:]:
            if line.startswith("====="):
                break
            if line.startswith("\t"):
                b += bytes.fromhex(line.strip())
            elif line.strip():
                a += bytes.fromhex(line.strip())
        streams[sid] = (node0, bytes(a), bytes(b))
    return streams


def _endpoint(addr: tuple[str, int]) -> str:
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


#: The expert warnings a capture with gaps and resets has to have: they are the gaps.
_GAP_WARNINGS = {"Previous segment(s) not captured", "ACKed segment that wasn't captured"}


def tshark_check(
    path: Path, flows: list[TCPFlow], *, allow: set[str] | None = None, follow: bool = True
) -> None:
    """One tshark run: no malformed packet, no bad checksum, no warning but ``allow``;
    Follow TCP Stream of every stream gives the bytes of the flows' messages."""
    tshark = require_tshark()
    args = [tshark, "-n", "-r", str(path), "-o", "tcp.check_checksum:TRUE"]
    args += ["-o", "ip.check_checksum:TRUE", "-o", "tcp.analyze_sequence_numbers:TRUE"]
    args += ["-T", "fields", "-e", "frame.number", "-e", "_ws.expert.message"]
    args += ["-e", "_ws.malformed", "-e", "tcp.checksum.status", "-e", "ip.checksum.status"]
    args += ["-e", "_ws.expert.severity", "-E", "occurrence=a", "-E", "aggregator=|"]
    allow = allow or set()
    for sid in range(len(flows) if follow else 0):
        args += ["-z", f"follow,tcp,raw,{sid}"]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    head, _, follow = out.partition("=====")
    bad = []
    for line in head.splitlines():
        if not line.strip():
            continue
        fields = (line.split("\t") + [""] * 6)[:6]
        frame, messages, malformed, tcp_ok, ip_ok, severities = fields
        if malformed or "0" in tcp_ok.split("|") or "0" in ip_ok.split("|"):
            bad.append(line)
        for msg, sev in zip(messages.split("|"), severities.split("|"), strict=False):
            # Wireshark's severities: 0x600000 warning, 0x800000 error.
            if sev and int(sev, 0) >= 0x600000 and msg not in allow:
                bad.append(f"frame {frame}: {msg}")
    assert bad == []
    if not follow:
        return
    streams = _follow("=====" + follow)
    assert len(streams) == len(flows)
    want = {}
    for f in flows:
        c = b"".join(m.content for m in f.messages if m.from_client)
        s = b"".join(m.content for m in f.messages if not m.from_client)
        want[_endpoint(f.client_conn.peername)] = (c, s)
        want[_endpoint(f.server_conn.address)] = (s, c)
    got = {}
    for node0, a, b in streams.values():
        got[node0] = (a, b)
    assert got == {k: want.get(k) for k in got}


def test_tshark_reads_sample_captures(tmp_path: Path) -> None:
    """The flows of the demo capture and of the IPv6 and reset samples, written: tshark
    finds nothing malformed, every checksum right, and follows the same bytes."""
    flows = []
    for name in ("demo.pcapng", "loopback_http.pcap", "rule_rst_midway.pcap", "link_ipv6_229.pcap"):
        flows += list(pcapflows.read(CAPTURES / name, warn=False))
    out = tmp_path / "out.pcapng"
    write_capture(flows, out)
    tshark_check(out, flows, allow={"Connection reset (RST)"})


@settings(max_examples=1, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(flows(), min_size=8, max_size=8))
def test_tshark_reads_generated(tmp_path_factory: Any, batches: list[Any]) -> None:
    """Generated flows (gaps, resets, both IP versions, large messages), written to one
    pcap: only the warnings their gaps and resets call for, and the same bytes where no
    byte is missing (tshark follows a gap with a marker of its own)."""
    tmp = tmp_path_factory.mktemp("gen")
    made = [f for batch in batches for f, _ in batch]
    # Distinct addresses across batches: each batch numbers its flows from 0.
    for i, f in enumerate(made):
        f.client_conn.peername = (f.client_conn.peername[0], 10000 + i)
        f.server_conn.sockname = f.client_conn.peername
    out = tmp / "gen.pcap"
    write_capture(made, out, "pcap")
    allow = _GAP_WARNINGS | {"Connection reset (RST)"}
    gapless = [f for f in made if not f.metadata["pcapflows"]["gaps"]]
    out2 = tmp / "gapless.pcapng"
    write_capture(gapless, out2)
    tshark_check(out2, gapless, allow={"Connection reset (RST)"})
    # With gaps: no malformed packet, no bad checksum, no warning but the gaps' own.
    tshark_check(out, made, allow=allow, follow=False)


# --- the file formats ------------------------------------------------------------------


def test_pcapng_blocks_and_comments() -> None:
    """One SHB, one IDB (Ethernet, nanoseconds), then EPBs whose comment is the flow id."""
    flows = list(pcapflows.read(CAPTURES / "demo.pcapng", warn=False))
    buf = io.BytesIO()
    with CaptureWriter(buf) as w:
        for f in flows:
            w.add(f)
    data = buf.getvalue()
    i = 0
    kinds = []
    comments = set()
    while i < len(data):
        btype, blen = struct.unpack_from("<II", data, i)
        kinds.append(btype)
        if btype == 1:
            assert struct.unpack_from("<H", data, i + 8)[0] == 1  # Ethernet
            assert data[i + 16 : i + 21] == b"\x09\x00\x01\x00\x09"  # if_tsresol = 9
        if btype == 6:
            cap = struct.unpack_from("<I", data, i + 20)[0]
            opt = i + 28 + cap + (-cap % 4)
            code, olen = struct.unpack_from("<HH", data, opt)
            assert code == 1
            comments.add(data[opt + 4 : opt + 4 + olen].decode())
        i += blen
    assert kinds[:2] == [0x0A0D0D0A, 1] and set(kinds[2:]) == {6}
    assert len(kinds) - 2 == w.packets
    assert comments == {f.id for f in flows}


def test_time_order_and_out_of_order_count() -> None:
    """Flows given in the order of their first packets: timestamps never go back.
    Given in reverse: each flow's own packets still never go back, and the writer
    counts the packets it had to write after later ones."""
    flows = list(pcapflows.read(CAPTURES / "demo.pcapng", warn=False, order="first_packet"))

    def times(data: bytes) -> list[tuple[float, str]]:
        r = []
        i = 0
        while i < len(data):
            btype, blen = struct.unpack_from("<II", data, i)
            if btype == 6:
                hi, lo, cap = struct.unpack_from("<III", data, i + 12)
                opt = i + 28 + cap + (-cap % 4)
                olen = struct.unpack_from("<H", data, opt + 2)[0]
                r.append((((hi << 32) | lo) / 1e9, data[opt + 4 : opt + 4 + olen].decode()))
            i += blen
        return r

    buf = io.BytesIO()
    with CaptureWriter(buf) as w:
        for f in flows:
            w.add(f)
    ts = [t for t, _ in times(buf.getvalue())]
    assert ts == sorted(ts) and w.out_of_order == 0
    buf = io.BytesIO()
    with CaptureWriter(buf) as w:
        for f in reversed(flows):
            w.add(f)
    got = times(buf.getvalue())
    for f in flows:
        own = [t for t, fid in got if fid == f.id]
        assert own == sorted(own)
    assert w.out_of_order > 0
    assert sorted(map(key, pcapflows.read(buf.getvalue(), warn=False)), key=repr) == sorted(
        map(key, flows), key=repr
    )


def test_bad_flows_are_value_errors() -> None:
    f = TCPFlow(
        Client(peername=("10.0.0.1", 1000), sockname=("2001:db8::1", 80), timestamp_start=1.0),
        Server(address=("2001:db8::1", 80)),
    )
    f.messages = [TCPMessage(True, b"x", 1.0)]
    with pytest.raises(ValueError, match="same IP version"):
        write_capture([f], io.BytesIO())
    g = TCPFlow(
        Client(peername=("10.0.0.1", 1000), sockname=("10.0.0.2", 80), timestamp_start=-5.0),
        Server(address=("10.0.0.2", 80)),
    )
    with pytest.raises(ValueError, match="cannot be written"):
        write_capture([g], io.BytesIO())
    with pytest.raises(ValueError, match="format"):
        write_capture([], io.BytesIO(), "erf")  # type: ignore[arg-type]


def test_corpus_path_exists() -> None:
    """The stable list names files that exist (a renamed corpus file must not make the
    corpus test vanish silently)."""
    root = require_corpus()
    assert all((root / n).is_file() for n in STABLE_CORPUS), CORPUS
