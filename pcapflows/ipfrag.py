"""IPv4 and IPv6 fragment reassembly (sans-IO, capture time only).

A TCP segment split into IP fragments is only decodable once every fragment is here.
Policy, with the precedent for each choice:

* The first copy of a byte wins, as in the TCP reassembler: overlapping fragments that
  disagree (an evasion classic) do not rewrite what was already received, and the
  disagreement is reported.
* Incomplete datagrams expire after :data:`DEFAULT_TIMEOUT` seconds of capture time
  (Linux's ``ipfrag_time``), and all pending fragments together are bounded by
  :data:`DEFAULT_MAX_PENDING` bytes (Linux's ``ipfrag_high_thresh``): the oldest
  datagram is dropped first. Every drop is reported; nothing grows without bound.
* No size field is trusted for allocation: a datagram is assembled from the bytes that
  actually arrived.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_PENDING = 4 * 1024 * 1024
#: Largest possible reassembled payload (the IPv4/IPv6 length fields are 16 bits).
MAX_DATAGRAM = 65535

FragKey = tuple[int, str, str, int, int]


@dataclass
class _Datagram:
    first_seen: float
    pieces: dict[int, bytes] = field(default_factory=dict)
    total: int | None = None
    size: int = 0


class Defragmenter:
    """Collects fragments until datagrams are complete.

    :meth:`add` returns the reassembled payload when a datagram completes. Problems
    (conflicting overlaps, expired or evicted datagrams, impossible offsets) are
    appended to :attr:`problems` as ``(kind, detail)`` for the caller to count.
    """

    def __init__(
        self, *, timeout: float = DEFAULT_TIMEOUT, max_pending: int = DEFAULT_MAX_PENDING
    ) -> None:
        self.timeout = timeout
        self.max_pending = max_pending
        self._pending: OrderedDict[FragKey, _Datagram] = OrderedDict()
        self._bytes = 0
        self.problems: list[tuple[str, str]] = []

    @property
    def pending_bytes(self) -> int:
        return self._bytes

    def add(
        self,
        key: FragKey,
        offset: int,
        more: bool,
        payload: bytes,
        timestamp: float,
    ) -> bytes | None:
        """Add one fragment; return the whole payload if the datagram is now complete."""
        self._expire(timestamp)
        end = offset + len(payload)
        if end > MAX_DATAGRAM or (more and not payload):
            self.problems.append(("bad ip fragment", f"fragment {offset}-{end} of {key[1]}"))
            return None
        dg = self._pending.get(key)
        if dg is None:
            dg = self._pending[key] = _Datagram(timestamp)
        if not more:
            if dg.total is not None and dg.total != end:
                self.problems.append(("conflicting ip fragments", f"two last fragments {key[1]}"))
            elif dg.total is None:
                dg.total = end
        # Keep only the bytes not already held (first copy wins).
        added = self._merge(dg, offset, payload, key)
        dg.size += added
        self._bytes += added
        if dg.total is not None and self._complete(dg):
            del self._pending[key]
            self._bytes -= dg.size
            out = bytearray()
            for off in sorted(dg.pieces):
                out += dg.pieces[off]
            return bytes(out[: dg.total])
        while self._bytes > self.max_pending and self._pending:
            old_key, old = self._pending.popitem(last=False)
            self._bytes -= old.size
            self.problems.append(
                ("ip fragments evicted", f"{old_key[1]} -> {old_key[2]} id {old_key[4]}")
            )
        return None

    def _merge(self, dg: _Datagram, offset: int, payload: bytes, key: FragKey) -> int:
        """Insert the parts of ``payload`` not yet covered; return bytes added."""
        cur = offset
        end = offset + len(payload)
        added = 0
        for off in sorted(dg.pieces):
            piece = dg.pieces[off]
            pend = off + len(piece)
            if pend <= cur or off >= end:
                continue
            if off > cur:
                dg.pieces[cur] = payload[cur - offset : off - offset]
                added += off - cur
            lo, hi = max(cur, off), min(end, pend)
            if piece[lo - off : hi - off] != payload[lo - offset : hi - offset]:
                self.problems.append(
                    ("conflicting ip fragments", f"{key[1]} -> {key[2]} bytes {lo}-{hi}")
                )
            cur = max(cur, pend)
            if cur >= end:
                break
        if cur < end:
            dg.pieces[cur] = payload[cur - offset :]
            added += end - cur
        return added

    @staticmethod
    def _complete(dg: _Datagram) -> bool:
        pos = 0
        for off in sorted(dg.pieces):
            if off > pos:
                return False
            pos = max(pos, off + len(dg.pieces[off]))
        return dg.total is not None and pos >= dg.total

    def _expire(self, now: float) -> None:
        while self._pending:
            key, dg = next(iter(self._pending.items()))
            if now - dg.first_seen <= self.timeout:
                break
            del self._pending[key]
            self._bytes -= dg.size
            self.problems.append(
                ("ip fragments incomplete", f"{key[1]} -> {key[2]} id {key[4]} expired")
            )

    def finish(self) -> None:
        """End of input: every datagram still incomplete is reported."""
        for key in list(self._pending):
            self.problems.append(
                ("ip fragments incomplete", f"{key[1]} -> {key[2]} id {key[4]} at end")
            )
        self._pending.clear()
        self._bytes = 0
