"""WebSocket frames (RFC 6455) from one side's bytes, joined into messages as
mitmproxy keeps them: masking removed, fragments joined, TEXT and BINARY messages
only (control frames are not messages; the first CLOSE gives the code and reason).

``permessage-deflate`` (RFC 7692) messages are inflated when the 101 response agreed
on it, as mitmproxy (through wsproto) does. A gap or a frame cut by the end of the
stream stops the side there: the bytes from that frame on are not WebSocket messages.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

from pcapflows.http.stream import Side

_MAX_FRAME = 1 << 40


@dataclass
class WsMessage:
    opcode: int
    content: bytes
    #: Offset of the message's last byte (its completion).
    last: int


@dataclass
class WsSide:
    messages: list[WsMessage] = field(default_factory=list)
    #: (code, reason, offset of the frame's last byte) of the first CLOSE frame.
    close: tuple[int, str, int] | None = None
    #: Where parsing stopped before the end of the side (None: it all parsed).
    stopped_at: int | None = None
    why: str | None = None


class _Inflater:
    """permessage-deflate for one direction (``no_context_takeover``: one window per
    message)."""

    def __init__(self, takeover: bool) -> None:
        self.takeover = takeover
        self._z = zlib.decompressobj(-15)

    def inflate(self, data: bytes) -> bytes:
        if not self.takeover:
            self._z = zlib.decompressobj(-15)
        return self._z.decompress(data + b"\x00\x00\xff\xff")


def deflate_params(extensions: str) -> tuple[bool, bool] | None:
    """From a 101's Sec-WebSocket-Extensions: None if permessage-deflate was not
    agreed, else whether the client's and the server's contexts are kept."""
    for ext in extensions.split(","):
        params = [p.strip().lower() for p in ext.split(";")]
        if params and params[0] == "permessage-deflate":
            return (
                "client_no_context_takeover" not in params,
                "server_no_context_takeover" not in params,
            )
    return None


def parse_side(side: Side, offset: int, deflate: tuple[bool, bool] | None) -> WsSide:
    """The messages ``side`` sent from ``offset`` on."""
    out = WsSide()
    inflater = None
    if deflate is not None:
        inflater = _Inflater(deflate[0] if side.from_client else deflate[1])
    cur = offset
    pending: list[bytes] = []
    pending_op = 0
    compressed = False
    while cur < side.end:
        start = cur
        i = side.piece_at(cur)
        if i < 0:
            out.stopped_at, out.why = cur, "gap in the WebSocket stream"
            return out
        avail = side.run_ends[i] - cur
        if avail < 2:
            out.stopped_at, out.why = cur, "WebSocket frame cut off"
            return out
        # At most 14 bytes of frame header, copied: a header can straddle two pieces.
        head = side.joined(cur, 14)
        b0, b1 = head[0], head[1]
        length = b1 & 0x7F
        hdr = 2
        if length == 126:
            hdr = 4
            if avail >= 4:
                length = int.from_bytes(head[2:4], "big")
        elif length == 127:
            hdr = 10
            if avail >= 10:
                length = int.from_bytes(head[2:10], "big")
        masked = bool(b1 & 0x80)
        mask_at = hdr
        if masked:
            hdr += 4
        if avail < hdr or length > _MAX_FRAME or avail - hdr < length:
            out.stopped_at, out.why = cur, "WebSocket frame cut off"
            return out
        payload = side.joined(cur + hdr, length)
        if masked:
            key = head[mask_at : mask_at + 4]
            full = (key * (length // 4 + 1))[:length]
            payload = (int.from_bytes(payload, "big") ^ int.from_bytes(full, "big")).to_bytes(
                length, "big"
            )
        last = cur + hdr + length - 1
        cur = last + 1
        fin, rsv1, opcode = bool(b0 & 0x80), bool(b0 & 0x40), b0 & 0x0F
        if opcode >= 8:
            if opcode == 8 and out.close is None:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                reason = payload[2:].decode("utf-8", "replace")
                out.close = (code, reason, last)
            continue
        if opcode in (1, 2):
            pending, pending_op, compressed = [payload], opcode, rsv1
        elif opcode == 0 and pending_op:
            pending.append(payload)
        else:
            out.stopped_at, out.why = start, f"unexpected opcode {opcode}"
            return out
        if fin:
            content = b"".join(pending)
            if compressed and inflater is not None:
                try:
                    content = inflater.inflate(content)
                except zlib.error:
                    out.stopped_at, out.why = start, "permessage-deflate data does not inflate"
                    return out
            out.messages.append(WsMessage(pending_op, content, last))
            pending, pending_op = [], 0
    return out
