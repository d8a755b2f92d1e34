"""Per-read statistics: what was read, what was skipped and why.

Every stage of the pipeline counts into one :class:`ReadStats` so that a user can see,
after a read, exactly what was not turned into flows. Nothing is dropped without a count.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

#: How many anomaly descriptions are kept verbatim; beyond that only counts grow, so a
#: capture full of damage cannot make the statistics themselves unbounded.
MAX_ANOMALY_DETAILS = 100


#: Where a captured TCP payload byte can end, in ``ReadStats.payload``:
#: delivered in a flow; a duplicate of bytes already there (retransmissions, keep-alive
#: probes, bytes of a connection that had already finished); a conflict (a later copy
#: that differed, see the flow's ``conflicts``); implausible (its sequence number was
#: not believed); before the start (below the SYN); after the FIN; dropped by a limit
#: (it arrived for a hole forgotten because too many were open, see ``MAX_HOLES``).
PAYLOAD_BUCKETS = (
    "delivered",
    "duplicate",
    "conflict",
    "implausible",
    "before_start",
    "after_fin",
    "limit",
)


@dataclass
class ReadStats:
    """Counters for one read of one capture.

    ``skipped`` counts packets not used, by reason (``"not tcp: udp"``,
    ``"linktype 182 unsupported"``, ...). ``anomalies`` counts damage by kind
    (``"truncated record"``, ``"bad ipv4 header length"``, ...) and ``anomaly_details``
    keeps the first :data:`MAX_ANOMALY_DETAILS` human-readable descriptions.
    """

    packets: int = 0
    bytes: int = 0
    tcp_segments: int = 0
    flows: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    anomalies: Counter[str] = field(default_factory=Counter)
    anomaly_details: list[str] = field(default_factory=list)
    #: How often a resource limit cut in: ``"max_connections"`` (connections closed
    #: early), ``"max_total_buffer"`` (connections made to give up their holes). Each
    #: such event is also visible in the flows (``closed_by="limit"``, gaps with cause
    #: ``"limit"``); a limit never drops data silently.
    limits: Counter[str] = field(default_factory=Counter)
    #: TCP payload bytes: ``"captured"`` (in the decoded segments), and where every one
    #: of them went once its connection finished, in exactly one of
    #: :data:`PAYLOAD_BUCKETS`. Nothing captured is lost without a count.
    payload: Counter[str] = field(default_factory=Counter)
    #: Segments (``"segments"``) and acknowledgments (``"acks"``) whose sequence or
    #: acknowledgment number was not believed (far outside any plausible window).
    implausible: Counter[str] = field(default_factory=Counter)

    def skip(self, reason: str) -> None:
        """Count one packet that is fine but not used (not TCP, unsupported link type)."""
        self.skipped[reason] += 1

    def anomaly(self, kind: str, detail: str = "") -> None:
        """Count one piece of damage; keep its description while there is room."""
        self.anomalies[kind] += 1
        if len(self.anomaly_details) < MAX_ANOMALY_DETAILS:
            self.anomaly_details.append(f"{kind}: {detail}" if detail else kind)

    def as_dict(self) -> dict[str, object]:
        """A JSON-friendly copy."""
        return {
            "packets": self.packets,
            "bytes": self.bytes,
            "tcp_segments": self.tcp_segments,
            "flows": self.flows,
            "skipped": dict(self.skipped),
            "anomalies": dict(self.anomalies),
            "anomaly_details": list(self.anomaly_details),
            "limits": dict(self.limits),
            "payload": dict(self.payload),
            "implausible": dict(self.implausible),
        }
