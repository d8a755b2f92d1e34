"""The decoded TCP segment: the only input the sans-IO reassembler understands.

Kept free of any parsing library so that the reassembler can be fed by anything: the
pcap pipeline, scapy packets, or a hand-written table in a test.
"""

from __future__ import annotations

from dataclasses import dataclass

FIN = 0x01
SYN = 0x02
RST = 0x04
PSH = 0x08
ACK = 0x10
URG = 0x20
ECE = 0x40
CWR = 0x80


@dataclass(frozen=True, slots=True)
class TunnelHop:
    """One tunnel layer a segment was carried in, as the outer packet showed it.

    ``kind`` names the encapsulation (``"gre"``, ``"erspan2"``, ``"vxlan"``, ``"geneve"``,
    ``"gtpu"``, ``"teredo"``, ``"gre-udp"``, ``"ayiya"``, ``"wccp"``, ``"aruba"``,
    ``"4in4"``, ``"6in4"``, ...); ``src``/``dst`` are the outer
    IP addresses, ``sport``/``dport`` the outer UDP ports (0 for tunnels directly over
    IP), ``ident`` the tunnel's own identifier where it has one (VXLAN/GENEVE VNI, GRE
    key, ERSPAN session, GTP-U TEID). This is what Zeek keeps as ``tunnel_parents``.
    """

    kind: str
    src: str
    dst: str
    sport: int = 0
    dport: int = 0
    ident: int | None = None

    def to_dict(self) -> dict[str, object]:
        """The JSON-friendly form stored in ``flow.metadata["pcapflows"]["tunnels"]``."""
        out: dict[str, object] = {"type": self.kind, "src": self.src, "dst": self.dst}
        if self.sport or self.dport:
            out["sport"] = self.sport
            out["dport"] = self.dport
        if self.ident is not None:
            out["id"] = self.ident
        return out


@dataclass(slots=True)
class Segment:
    """One TCP segment as captured.

    ``payload`` is the payload bytes that were captured. ``missing`` is how many further
    payload bytes were on the wire but not in the capture (snap length), so the segment
    covers ``len(payload) + missing`` sequence numbers of data. Addresses are text
    (IPv6 compressed); ``seq`` and ``ack`` are the raw 32-bit header values. ``frame`` is
    the 1-based record number in the capture, for reports. ``tunnel`` lists the
    encapsulations around the segment's IP packet, outermost first (empty for most).
    ``wscale`` is the window scale option of a SYN (RFC 7323), None when absent; it
    tells how far ahead of the stream a segment may plausibly be.
    """

    timestamp: float
    src: str
    sport: int
    dst: str
    dport: int
    seq: int
    ack: int
    flags: int
    payload: bytes = b""
    window: int = 0
    missing: int = 0
    frame: int = 0
    tunnel: tuple[TunnelHop, ...] = ()
    wscale: int | None = None
