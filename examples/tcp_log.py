"""A mitmproxy addon that logs every TCP message: copy it and make it yours.

It uses only mitmproxy's TCP hooks, so the same file runs on a capture and on live
traffic:

    pcapflows capture.pcapng -s examples/tcp_log.py      # a capture, offline
    mitmdump --tcp-hosts '.*' -s examples/tcp_log.py     # live, through mitmproxy

Each connection logs a line when it starts, one per message (direction, size, first
bytes), one when it ends (or is reset), and the run ends with a summary. Lines go
through Python's ``logging``, which mitmproxy shows in its log (``pcapflows -s``
prints it on standard error).
"""

from __future__ import annotations

import logging

from mitmproxy import tcp

#: How many bytes of each message to show.
PREVIEW = 16


def _where(address: tuple[str, int] | None) -> str:
    if not address:
        return "?"
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class TCPLog:
    def __init__(self) -> None:
        # Per open connection: messages and bytes so far (forgotten at its end, so a
        # long capture does not grow this).
        self.open: dict[str, list[int]] = {}
        self.connections = 0
        self.resets = 0
        self.messages = 0
        self.bytes = 0

    def tcp_start(self, flow: tcp.TCPFlow) -> None:
        self.connections += 1
        self.open[flow.id] = [0, 0]
        client = _where(flow.client_conn.peername)
        logging.info(f"{flow.id[:8]} start {client} -> {_where(flow.server_conn.address)}")

    def tcp_message(self, flow: tcp.TCPFlow) -> None:
        message = flow.messages[-1]  # the new one
        counts = self.open[flow.id]
        counts[0] += 1
        counts[1] += len(message.content)
        arrow = "->" if message.from_client else "<-"
        preview = message.content[:PREVIEW]
        logging.info(f"{flow.id[:8]} {arrow} {len(message.content)} bytes {preview!r}")

    def tcp_end(self, flow: tcp.TCPFlow) -> None:
        self._finish(flow, "end")

    def tcp_error(self, flow: tcp.TCPFlow) -> None:
        self.resets += 1
        self._finish(flow, f"error ({flow.error})")

    def _finish(self, flow: tcp.TCPFlow, how: str) -> None:
        n, size = self.open.pop(flow.id)
        self.messages += n
        self.bytes += size
        logging.info(f"{flow.id[:8]} {how}: {n} messages, {size} bytes")

    def done(self) -> None:
        logging.info(
            f"summary: {self.connections} connections, {self.messages} messages, "
            f"{self.bytes} bytes, {self.resets} reset"
        )


addons = [TCPLog()]
