"""``key_tunnels``: overlays whose tenants reuse the same inner addresses.

Two VXLAN tenants (VNI 100 and 200, the same outer endpoints) each carry a connection
between the same inner addresses and ports, with different bytes. By default a
connection is its inner 4-tuple, as tshark and Zeek key it, so the two are one
connection; keyed by tunnel they are two, each with its own bytes. A GTP-U connection,
whose two directions carry different TEIDs (each chosen by its receiver), stays one.
Expected values are the bytes the test sends.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from scapy.contrib.gtp import GTP_U_Header
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.layers.vxlan import VXLAN
from scapy.packet import Packet
from scapy.utils import wrpcap

import pcapflows

OUTER = ("198.18.0.1", "198.18.0.2")
INNER = (("10.1.0.1", 40000), ("10.1.0.2", 80))


def conversation(wrap: dict[bool, Packet], request: bytes, reply: bytes, t0: float) -> list[Packet]:
    """A whole connection between INNER's ends, each packet wrapped by ``wrap[from_client]``."""
    (c, cp), (s, sp) = INNER
    ci, si = 1000, 5000

    def pkt(from_client: bool, flags: str, seq: int, ack: int, data: bytes = b"") -> Packet:
        src, dst, sport, dport = (c, s, cp, sp) if from_client else (s, c, sp, cp)
        body = IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack)
        return wrap[from_client] / (body / data if data else body)

    packets = [
        pkt(True, "S", ci, 0),
        pkt(False, "SA", si, ci + 1),
        pkt(True, "A", ci + 1, si + 1),
        pkt(True, "PA", ci + 1, si + 1, request),
        pkt(False, "PA", si + 1, ci + 1 + len(request), reply),
        pkt(True, "FA", ci + 1 + len(request), si + 1 + len(reply)),
        pkt(False, "FA", si + 1 + len(reply), ci + 2 + len(request)),
        pkt(True, "A", ci + 2 + len(request), si + 2 + len(reply)),
    ]
    for i, p in enumerate(packets):
        p.time = t0 + i * 0.01
    return packets


def vxlan(vni: int, from_client: bool) -> Packet:
    """Each direction with a source port of its own, as VXLAN senders pick them."""
    a, b = OUTER if from_client else OUTER[::-1]
    sport = 49152 if from_client else 51515
    return Ether() / IP(src=a, dst=b) / UDP(sport=sport, dport=4789) / VXLAN(vni=vni) / Ether()


def gtpu(teid: int, from_client: bool) -> Packet:
    a, b = OUTER if from_client else OUTER[::-1]
    return Ether() / IP(src=a, dst=b) / UDP(sport=2152, dport=2152) / GTP_U_Header(teid=teid)


def capture(packets: list[Packet]) -> bytes:
    """The packets as a pcap file in memory (pcapflows reads bytes as a capture)."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "c.pcap"
        wrpcap(str(path), sorted(packets, key=lambda p: float(p.time)))
        return path.read_bytes()


def tenants() -> bytes:
    """Tenant 100 and tenant 200, interleaved packet by packet."""
    one = conversation({d: vxlan(100, d) for d in (True, False)}, b"GET /alpha", b"ALPHA", 1.0)
    two = conversation({d: vxlan(200, d) for d in (True, False)}, b"GET /bravo", b"BRAVO", 1.005)
    return capture(one + two)


def sent(flow: pcapflows.TCPFlow) -> tuple[bytes, bytes]:
    c = b"".join(m.content for m in flow.messages if m.from_client)
    s = b"".join(m.content for m in flow.messages if not m.from_client)
    return c, s


def test_by_default_a_connection_is_its_inner_4_tuple() -> None:
    flows = list(pcapflows.read(tenants(), warn=False))
    # One connection (the second tenant's packets are retransmissions of the first's
    # numbers, with other bytes: conflicts, first copy kept).
    assert len(flows) == 1
    assert sent(flows[0]) == (b"GET /alpha", b"ALPHA")
    assert flows[0].metadata["pcapflows"]["conflicts"]


def test_keyed_by_tunnel_each_tenant_is_a_connection() -> None:
    flows = list(pcapflows.read(tenants(), warn=False, key_tunnels=True, order="first_packet"))
    assert [sent(f) for f in flows] == [(b"GET /alpha", b"ALPHA"), (b"GET /bravo", b"BRAVO")]
    ids = [
        {hop["id"] for t in f.metadata["pcapflows"]["tunnels"] for hop in t["path"]} for f in flows
    ]
    assert ids == [{100}, {200}]
    for f in flows:
        assert f.metadata["pcapflows"]["conflicts"] == []
        assert f.metadata["pcapflows"]["closed_by"] == "fin"


def test_per_direction_teids_still_make_one_connection() -> None:
    wrap = {True: gtpu(0x1111, True), False: gtpu(0x2222, False)}
    data = capture(conversation(wrap, b"uplink", b"downlink", 1.0))
    (flow,) = pcapflows.read(data, warn=False, key_tunnels=True)
    assert sent(flow) == (b"uplink", b"downlink")
    teids = {t["from_client"]: t["path"][0]["id"] for t in flow.metadata["pcapflows"]["tunnels"]}
    assert teids == {True: 0x1111, False: 0x2222}


def test_command_line_option(tmp_path: Path) -> None:
    path = tmp_path / "tenants.pcap"
    path.write_bytes(tenants())

    def listing(*extra: str) -> list[str]:
        r = subprocess.run(
            [sys.executable, "-m", "pcapflows", str(path), *extra],
            capture_output=True,
            check=True,
        )
        return r.stdout.decode().splitlines()[1:]  # the rows, after the header

    assert len(listing()) == 1
    assert len(listing("--key-tunnels")) == 2
