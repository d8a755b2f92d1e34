"""Words and numbers for people: how a connection ended, sizes, durations, times.

Shared by ``list``, ``follow``, ``stats`` and the JSON output, so that a connection
ends in the same words wherever it is shown. The README's "How a connection ended"
table defines each word; :func:`ending` is that table in code.
"""

from __future__ import annotations

from typing import Any

from pcapflows.model.tcp import TCPFlow

#: Every word :func:`ending` can give, in the order ``stats`` lists them.
ENDINGS = (
    "fin",
    "reset by client",
    "reset by server",
    "rejected",
    "no reply",
    "idle",
    "open at end",
    "port reused",
    "evicted",
)


def ending(meta: dict[str, Any]) -> str:
    """How a connection ended, from its ``metadata["pcapflows"]``.

    * ``evicted``: the connection limit (``--max-connections``) closed it early (first,
      since what was seen of it may be only a part);
    * ``rejected``: the client's SYN was answered by a RST from the server, which never
      sent a SYN-ACK or a byte (a closed port, or a firewall answering for it);
    * ``no reply``: the client sent a SYN and the server sent nothing at all;
    * ``reset by client`` / ``reset by server``: any other connection a RST ended;
    * ``fin``: both sides closed with FIN;
    * ``idle``: no packet for the idle timeout (``--idle-timeout``);
    * ``open at end``: still open when the capture ended (or the read was stopped);
    * ``port reused``: a new SYN on the same four addresses and ports ended it.
    """
    closed_by = meta.get("closed_by")
    history = str(meta.get("history", ""))
    packets = meta.get("packets") or {}
    sent = meta.get("bytes") or {}
    client_syn = "S" in history
    server_silent = not packets.get("server")
    if closed_by == "limit":
        return "evicted"
    if closed_by == "rst":
        rst_from = meta.get("rst_from", "?")
        if (
            rst_from == "server"
            and client_syn
            and "h" not in history
            and not sent.get("server")
            and "d" not in history
        ):
            return "rejected"
        return f"reset by {rst_from}"
    if client_syn and server_silent:
        return "no reply"
    return {
        "fin": "fin",
        "idle": "idle",
        "end": "open at end",
        "reuse": "port reused",
        "limit": "evicted",
    }.get(str(closed_by), str(closed_by))


def notes(meta: dict[str, Any]) -> str:
    """What else is worth a word: the tunnels it came through, the flow it continues."""
    out = []
    paths = [t["path"] for t in meta.get("tunnels", []) if t.get("path")]
    if paths:
        out.append("via " + "/".join(str(hop["type"]) for hop in paths[0]))
    if "follows" in meta:
        out.append(f"continues {meta['follows']}")
    return ", ".join(out)


def size(n: int, exact: bool = False) -> str:
    """``512 B``, ``1.3 KiB``, ``20.0 MiB``; with ``exact``, the number of bytes."""
    if exact or n < 1024:
        return f"{n} B" if not exact else str(n)
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            return f"{value:.1f} {unit}"
    return f"{n} B"  # pragma: no cover


def duration(seconds: float | None) -> str:
    """``0.352s``, ``75.0s``, ``1h02m``: short enough for a column."""
    if seconds is None:
        return "-"
    if seconds < 100:
        return f"{seconds:.3f}s"
    if seconds < 3600:
        return f"{seconds:.0f}s"
    h, rest = divmod(int(seconds), 3600)
    return f"{h}h{rest // 60:02d}m"


def flow_duration(flow: TCPFlow) -> float | None:
    start = flow.client_conn.timestamp_start
    end = flow.client_conn.timestamp_end
    return None if start is None or end is None else end - start
