"""What the packets of one connection are made from: :class:`FlowSpec`, built from a TCP
flow here (:func:`spec_of_tcp`) or from a mitmproxy HTTP flow's state
(:mod:`pcapflows.httpsynth`), and turned into packets by :mod:`pcapflows.pcapwrite`.

Apart from both so that neither imports the other's module back.
"""

from __future__ import annotations

import hashlib
from typing import Any

_U32 = 0xFFFFFFFF


class FlowSpec:
    """Everything the packets of one connection are made from (built from a flow by
    :func:`spec_of_tcp` or from an HTTP state by :mod:`pcapflows.httpsynth`).

    ``runs`` are the messages in order: ``(from_client, [(bytes, timestamp), ...])``,
    one run's pieces contiguous in its direction (an HTTP body may come later than its
    head). ``gaps`` are ``(from_client, offset, length, timestamp, cause)`` as in
    ``metadata["pcapflows"]["gaps"]``. ``fins`` lists who sent a FIN, in order (True
    for the client); ``rst`` is ``(from_client, timestamp)``.
    """

    __slots__ = (
        "clean",
        "client",
        "end",
        "fin_acked",
        "fins",
        "flow_id",
        "gaps",
        "handshake",
        "isn",
        "opening",
        "rst",
        "runs",
        "server",
        "setup",
        "start",
    )

    def __init__(
        self,
        flow_id: str,
        client: tuple[str, int],
        server: tuple[str, int],
        *,
        handshake: bool,
        start: float,
        setup: float | None = None,
        end: float | None = None,
        runs: list[tuple[bool, list[tuple[bytes, float]]]] | None = None,
        gaps: list[tuple[bool, int, int, float, str]] | None = None,
        fins: list[bool] | None = None,
        rst: tuple[bool, float] | None = None,
        isn: tuple[int, int] | None = None,
        clean: bool = False,
        fin_acked: bool = True,
        opening: tuple[bool, bool] | None = None,
    ) -> None:
        self.flow_id = flow_id
        self.client = client
        self.server = server
        self.handshake = handshake
        self.start = start
        self.setup = setup
        self.end = end
        self.runs = runs or []
        self.gaps = gaps or []
        self.fins = fins or []
        self.rst = rst
        self.isn = isn if isn is not None else derived_isns(flow_id)
        #: Both FINs were acknowledged before the RST (a clean close, reset after).
        self.clean = clean
        #: The last FIN was acknowledged (else the connection was still closing).
        self.fin_acked = fin_acked
        #: Whether the client's SYN and the server's SYN-ACK are written (by default
        #: both when ``handshake``, else neither).
        self.opening = opening if opening is not None else (handshake, handshake)


def derived_isns(flow_id: str) -> tuple[int, int]:
    """The client's and server's initial sequence numbers for a flow without them in
    its metadata: a hash of the flow id, so that writing a flow twice gives the same
    packets."""
    d = hashlib.sha256(flow_id.encode("utf-8", "replace")).digest()
    return int.from_bytes(d[:4], "big"), int.from_bytes(d[4:8], "big")


# --- from a TCP flow to its spec --------------------------------------------------------


def _reset_side(msg: str) -> bool:
    """Whether the RST of an error message came from the client ("... by server"
    names the server; anything else is taken as the client's)."""
    return "by server" not in msg


def spec_of_tcp(flow: Any) -> FlowSpec:
    """The spec of a TCP flow: pcapflows' own, one read from a mitmproxy file, or a
    real ``mitmproxy.tcp.TCPFlow`` (anything with the same attributes)."""
    cc, sc = flow.client_conn, flow.server_conn
    client = tuple(cc.peername)[:2]
    server_addr = sc.peername or sc.address or cc.sockname
    server = tuple(server_addr)[:2]
    meta = flow.metadata.get("pcapflows") if isinstance(flow.metadata, dict) else None
    messages = flow.messages
    first_ts = messages[0].timestamp if messages else None
    start = cc.timestamp_start
    if start is None or (first_ts is not None and first_ts < start):
        start = first_ts if first_ts is not None else 0.0
    end = cc.timestamp_end
    error = flow.error
    runs = [(m.from_client, [(m.content, m.timestamp)]) for m in messages]
    gaps: list[tuple[bool, int, int, float, str]] = []
    fins: list[bool] = []
    rst: tuple[bool, float] | None = None
    isn: tuple[int, int] | None = None
    clean = False
    fin_acked = True
    opening: tuple[bool, bool] | None = None
    if isinstance(meta, dict):
        clean = meta.get("closed_by") == "fin"
        fin_acked = meta.get("closed_by") in ("fin", "rst")
        handshake = bool(meta.get("handshake_seen"))
        for g in meta.get("gaps") or ():
            gaps.append(
                (bool(g["from_client"]), int(g["offset"]), int(g["length"]),
                 float(g["timestamp"]), str(g["cause"]))
            )  # fmt: skip
        history = str(meta.get("history", ""))
        opening = (handshake or "S" in history, handshake or "h" in history)
        for letter in history:
            if letter in "Ff" and (letter == "F") not in fins:
                fins.append(letter == "F")
        rst_from = meta.get("rst_from")
        if rst_from in ("client", "server"):
            when = error.timestamp if error is not None else end
            rst = (rst_from == "client", when if when is not None else start)
        elif meta.get("closed_by") == "fin" and not fins:
            fins = [True, False]
        given = meta.get("isn")
        if isinstance(given, dict) and "client" in given and "server" in given:
            isn = (int(given["client"]) & _U32, int(given["server"]) & _U32)
    else:
        handshake = sc.timestamp_tcp_setup is not None
        if error is not None:
            rst = (_reset_side(str(error.msg)), error.timestamp)
        else:
            fins = [True, False]
    return FlowSpec(
        str(flow.id),
        (str(client[0]), int(client[1])),
        (str(server[0]), int(server[1])),
        handshake=handshake,
        start=start,
        setup=sc.timestamp_tcp_setup,
        end=end,
        runs=runs,
        gaps=gaps,
        fins=fins,
        rst=rst,
        isn=isn,
        clean=clean,
        fin_acked=fin_acked,
        opening=opening,
    )


# --- from a spec to packets ---------------------------------------------------------


def first_data(spec: FlowSpec) -> float | None:
    """The time of the flow's first data byte, if it has any."""
    return next((t for _, pieces in spec.runs for b, t in pieces if b), None)


def spec_start(spec: FlowSpec) -> float:
    """The time of the first packet written for ``spec``: its start, or its first
    data if that is earlier. Writing flows in this order keeps a file's timestamps from
    ever going back (:func:`pcapflows.convert.convert` sorts by it)."""
    first = first_data(spec)
    return spec.start if first is None or first >= spec.start else first


__all__ = ["FlowSpec", "derived_isns", "first_data", "spec_of_tcp", "spec_start"]
