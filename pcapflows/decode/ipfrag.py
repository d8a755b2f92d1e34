"""IPv4 and IPv6 fragment reassembly (sans-IO: capture time only, no clock, no sockets).

A TCP segment split into IP fragments can only be decoded once every fragment is here,
so the decoder hands fragments to a :class:`Defragmenter` and gets the datagram's
payload back when the last missing piece arrives. The policy, and why:

* **First copy wins.** When fragments overlap, the bytes already held are kept, as the
  TCP reassembler keeps the first copy of a sequence number: it is what a receiver that
  saw the first fragment had, and it means a later fragment cannot rewrite a TCP header
  that already arrived (the "tiny fragment" and "overlapping fragment" evasions). If the
  copies differ, the disagreement is reported, never silently resolved.
* **Capture time, not wall time.** Incomplete datagrams expire :data:`DEFAULT_TIMEOUT`
  seconds (Linux's ``net.ipv4.ipfrag_time``, 30 s) after their first fragment, measured
  with the timestamps of the capture, so that reading a file gives the same result
  however fast it is read. Expiry is checked whenever a fragment arrives, oldest first.
* **Bounded memory.** All pending payload bytes together are bounded by
  :data:`DEFAULT_MAX_PENDING` (Linux's ``ipfrag_high_thresh``, 4 MiB); beyond it the
  oldest datagrams are dropped. A capture full of fragments that never complete costs
  at most that much.
* **No length field is trusted for allocation.** A datagram is built from the bytes
  that actually arrived; a fragment claiming to end past the largest possible datagram
  (:data:`MAX_DATAGRAM`) is damage and is dropped.

Every drop is reported through the ``report`` callback as ``(kind, detail)`` so the
caller can count it (the decoder turns it into a :class:`~pcapflows.stats.ReadStats`
anomaly): ``"ip fragments incomplete"`` (expired, evicted, or still pending at
:meth:`Defragmenter.finish`), ``"conflicting ip fragments"``, ``"bad ip fragment"``.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable

from pcapflows.limits import DEFAULT_MAX_FRAGMENT_BYTES

#: Seconds of capture time an incomplete datagram is kept (Linux ``ipfrag_time``).
DEFAULT_TIMEOUT = 30.0
#: Bytes of payload all incomplete datagrams may hold together (Linux
#: ``ipfrag_high_thresh``); one of the :class:`~pcapflows.limits.Limits`.
DEFAULT_MAX_PENDING = DEFAULT_MAX_FRAGMENT_BYTES
#: The largest payload a reassembled datagram can have: both the IPv4 total length and
#: the IPv6 payload length are 16-bit fields (jumbograms cannot be fragmented).
MAX_DATAGRAM = 65535
#: Frame numbers quoted in a report, so a datagram of thousands of tiny fragments does
#: not produce a huge message.
_MAX_FRAMES_QUOTED = 8

#: ``(ip version, source, destination, protocol or next header, identification)``: the
#: fields RFC 791 and RFC 8200 use to tell datagrams apart.
FragKey = tuple[int, str, str, int, int]
Report = Callable[[str, str], None]


class _Datagram:
    """The pieces of one datagram received so far.

    ``starts``/``pieces`` are parallel lists of disjoint byte ranges sorted by offset, so
    placing a fragment is a binary search plus a walk over the pieces it overlaps:
    linear in the overlap, not in the number of fragments (a 64 KiB datagram can arrive
    as 8192 fragments of 8 bytes).
    """

    __slots__ = ("count", "first_seen", "frames", "held", "pieces", "starts", "total")

    def __init__(self, first_seen: float) -> None:
        self.first_seen = first_seen
        self.starts: list[int] = []
        self.pieces: list[bytes] = []
        self.held = 0
        #: Payload length, known once the fragment without "more fragments" arrived.
        self.total: int | None = None
        #: How many fragments arrived, and the frame numbers of the first few (kept
        #: bounded: duplicates of one fragment could otherwise arrive without end).
        self.count = 0
        self.frames: list[int] = []


def _describe(key: FragKey, dg: _Datagram) -> str:
    frames = ", ".join(str(f) for f in dg.frames)
    if dg.count > len(dg.frames):
        frames += f", ... ({dg.count} fragments)"
    size = "?" if dg.total is None else str(dg.total)
    return (
        f"ipv{key[0]} {key[1]} -> {key[2]} id {key[4]}: {dg.held} of {size} bytes (frames {frames})"
    )


class Defragmenter:
    """Collects IP fragments until their datagrams are complete.

    :meth:`add` returns the reassembled payload (the bytes after the IP header, or after
    the IPv6 fragment header) when a datagram completes, else None. Problems go to
    ``report(kind, detail)``; without a callback they are appended to :attr:`problems`.
    """

    def __init__(
        self,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_pending: int = DEFAULT_MAX_PENDING,
        report: Report | None = None,
    ) -> None:
        self.timeout = timeout
        self.max_pending = max_pending
        self.problems: list[tuple[str, str]] = []
        self._report: Report = report if report is not None else self._keep
        # Insertion order is first-seen order, so the oldest datagram is always first:
        # expiry and eviction only ever look at the front.
        self._pending: dict[FragKey, _Datagram] = {}
        self._bytes = 0

    def _keep(self, kind: str, detail: str) -> None:
        self.problems.append((kind, detail))

    @property
    def pending_bytes(self) -> int:
        """Payload bytes held for incomplete datagrams."""
        return self._bytes

    @property
    def pending(self) -> int:
        """Number of incomplete datagrams held."""
        return len(self._pending)

    def add(
        self,
        key: FragKey,
        offset: int,
        more: bool,
        payload: bytes,
        timestamp: float,
        frame: int = 0,
    ) -> bytes | None:
        """Add one fragment; return the whole payload if its datagram is now complete.

        ``offset`` is in bytes (the header field times 8), ``more`` the "more fragments"
        flag, ``frame`` the capture frame number (only for reports).
        """
        self.expire(timestamp)
        end = offset + len(payload)
        if end > MAX_DATAGRAM or offset < 0:
            self._report(
                "bad ip fragment",
                f"frame {frame}: ipv{key[0]} {key[1]} -> {key[2]} id {key[4]} "
                f"ends at {end}, past {MAX_DATAGRAM}",
            )
            return None
        if more and not payload:
            # Carries nothing and cannot be the last: no receiver could use it.
            self._report("bad ip fragment", f"frame {frame}: empty non-final fragment")
            return None
        dg = self._pending.get(key)
        if dg is None:
            dg = self._pending[key] = _Datagram(timestamp)
        dg.count += 1
        if len(dg.frames) < _MAX_FRAMES_QUOTED:
            dg.frames.append(frame)
        if not more:
            if dg.total is None:
                dg.total = end
            elif dg.total != end:
                self._report(
                    "conflicting ip fragments",
                    f"frame {frame}: a second last fragment ends at {end}, "
                    f"not {dg.total}: " + _describe(key, dg),
                )
        if dg.total is not None and end > dg.total:
            self._report(
                "conflicting ip fragments",
                f"frame {frame}: bytes {max(offset, dg.total)}-{end} lie past the last "
                "fragment's end: " + _describe(key, dg),
            )
        added = self._place(dg, offset, payload, key, frame)
        dg.held += added
        self._bytes += added
        if dg.total is not None and dg.held >= dg.total and self._complete(dg, dg.total):
            del self._pending[key]
            self._bytes -= dg.held
            return b"".join(dg.pieces)[: dg.total]
        while self._bytes > self.max_pending and self._pending:
            old_key = next(iter(self._pending))
            old = self._pending.pop(old_key)
            self._bytes -= old.held
            self._report(
                "ip fragments incomplete",
                _describe(old_key, old) + f" evicted: over {self.max_pending} bytes pending",
            )
        return None

    def _place(self, dg: _Datagram, offset: int, payload: bytes, key: FragKey, frame: int) -> int:
        """Store the parts of ``payload`` not yet held (first copy wins); return their size.

        Where the fragment overlaps bytes already held, those are compared and a
        difference is reported, but the held bytes stay.
        """
        end = offset + len(payload)
        starts, pieces = dg.starts, dg.pieces
        # The first held piece that could overlap: the last one starting at or before
        # ``offset`` if it reaches past it, else the next one.
        i = bisect_right(starts, offset) - 1
        if i < 0 or starts[i] + len(pieces[i]) <= offset:
            i += 1
        j = i
        cur = offset
        new_starts: list[int] = []
        new_pieces: list[bytes] = []
        added = 0
        conflict = False
        while j < len(starts) and starts[j] < end:
            s, p = starts[j], pieces[j]
            if s > cur:
                new_starts.append(cur)
                new_pieces.append(payload[cur - offset : s - offset])
                added += s - cur
            lo, hi = max(cur, s), min(end, s + len(p))
            if not conflict and p[lo - s : hi - s] != payload[lo - offset : hi - offset]:
                conflict = True
            new_starts.append(s)
            new_pieces.append(p)
            cur = max(cur, s + len(p))
            j += 1
        if cur < end:
            new_starts.append(cur)
            new_pieces.append(payload[cur - offset :])
            added += end - cur
        if conflict:
            self._report(
                "conflicting ip fragments",
                f"frame {frame}: bytes {offset}-{end} differ from those already held, "
                "kept the first copy: " + _describe(key, dg),
            )
        if added:
            starts[i:j] = new_starts
            pieces[i:j] = new_pieces
        return added

    @staticmethod
    def _complete(dg: _Datagram, total: int) -> bool:
        """Whether the held pieces cover ``[0, total)`` without a hole."""
        pos = 0
        for s, p in zip(dg.starts, dg.pieces, strict=True):
            if s > pos:
                return False
            pos = s + len(p)
            if pos >= total:
                return True
        return pos >= total

    def expire(self, now: float) -> None:
        """Drop, and report, datagrams whose first fragment is older than the timeout.

        Only the front of the first-seen order is examined, so a capture whose clock
        jumps backwards delays expiry rather than making it wrong.
        """
        while self._pending:
            key = next(iter(self._pending))
            dg = self._pending[key]
            if now - dg.first_seen <= self.timeout:
                return
            del self._pending[key]
            self._bytes -= dg.held
            self._report(
                "ip fragments incomplete",
                _describe(key, dg) + f" expired after {self.timeout:g} s",
            )

    def finish(self) -> None:
        """End of input: every datagram still incomplete is reported and dropped."""
        for key, dg in self._pending.items():
            self._report("ip fragments incomplete", _describe(key, dg) + " at end of capture")
        self._pending.clear()
        self._bytes = 0
