"""``TCPMessage`` and ``TCPFlow``, shaped like mitmproxy's ``mitmproxy.tcp``.

A message is a chunk of one direction of the byte stream; pcapflows makes each message a
maximal run of contiguous bytes from one side (see the README for the exact rules).
"""

from __future__ import annotations

import time
from typing import Any

from pcapflows.model.connection import Client, Server
from pcapflows.model.flow import Flow


class TCPMessage:
    """Bytes sent by one side, with the capture time of the packet that carried the first.

    ``timestamp=None`` means "now" (for messages made by hand); ``0.0`` is kept, unlike
    mitmproxy, because a capture can legitimately carry it.
    """

    __slots__ = ("content", "from_client", "timestamp")

    def __init__(self, from_client: bool, content: bytes, timestamp: float | None = None) -> None:
        self.from_client = from_client
        self.content = content
        self.timestamp: float = time.time() if timestamp is None else timestamp

    @classmethod
    def from_state(cls, state: Any) -> TCPMessage:
        from_client, content, timestamp = state
        return cls(from_client, content, timestamp)

    def get_state(self) -> tuple[bool, bytes, float]:
        return self.from_client, self.content, self.timestamp

    def set_state(self, state: Any) -> None:
        self.from_client, self.content, self.timestamp = state

    def __eq__(self, other: object) -> bool:
        if isinstance(other, TCPMessage):
            return self.get_state() == other.get_state()
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{'->' if self.from_client else '<-'} {self.content!r}"


class TCPFlow(Flow):
    """One TCP connection: its two endpoints and the messages exchanged."""

    type = "tcp"

    def __init__(
        self,
        client_conn: Client,
        server_conn: Server,
        live: bool = False,
        *,
        id: str | None = None,
        timestamp_created: float | None = None,
    ) -> None:
        super().__init__(client_conn, server_conn, live, id=id, timestamp_created=timestamp_created)
        self.messages: list[TCPMessage] = []

    def get_state(self) -> dict[str, Any]:
        return {**super().get_state(), "messages": [m.get_state() for m in self.messages]}

    def set_state(self, state: dict[str, Any]) -> None:
        state = dict(state)
        self.messages = [TCPMessage.from_state(m) for m in state.pop("messages")]
        super().set_state(state)

    def __repr__(self) -> str:
        return f"<TCPFlow ({len(self.messages)} messages)>"
