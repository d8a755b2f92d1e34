"""The public entry points: :func:`read` for captures, :func:`reassemble` for segments.

Both are thin pipelines over the sans-IO pieces (capture reading, decoding, the
assembler, the flow builder). Flows come out as they finish, so a read holds only the
connections open at the same time, never the whole file.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Literal, TypeVar

from pcapflows.closing import Closing
from pcapflows.decode.decoder import Decoder
from pcapflows.decode.segment import FIN, Segment
from pcapflows.errors import PcapflowsWarning
from pcapflows.io.reader import CaptureReader, Source
from pcapflows.limits import DEFAULT_LIMITS, Limits
from pcapflows.model.build import FlowBuilder
from pcapflows.model.live import FlowEvent, LiveFlows
from pcapflows.model.tcp import TCPFlow
from pcapflows.reassembly.assembler import Assembler
from pcapflows.stats import ReadStats

Order = Literal["finish", "first_packet"]

#: The longest message :func:`events` hands over when messages are not kept (1 MiB):
#: a longer run of one side's bytes comes as several messages, so that one connection
#: cannot make the event reader hold more.
DEFAULT_MAX_MESSAGE = 1 << 20
T = TypeVar("T")


def in_stream_order(items: Iterable[tuple[int, T]]) -> Iterator[T]:
    """Re-order ``(stream index, item)`` pairs that come in finishing order into
    stream-index order (the order of the flows' first packets).

    An item waits here until every stream before it has finished, so with long-lived
    connections this holds more than the finishing order does: the price of the order
    and why it is not the default. Keep what waits small (the command line's listing
    re-orders one text line per flow, not the flows with their payload).
    """
    waiting: dict[int, T] = {}
    want = 0
    for index, item in items:
        waiting[index] = item
        while want in waiting:
            yield waiting.pop(want)
            want += 1
    for k in sorted(waiting):
        yield waiting[k]


def _in_order(flows: Iterable[TCPFlow]) -> Iterator[TCPFlow]:
    """Finished flows re-ordered by stream index (``order="first_packet"``)."""
    return in_stream_order((f.metadata["pcapflows"]["stream"], f) for f in flows)


def reassemble(
    segments: Iterable[Segment],
    *,
    order: Order = "finish",
    limits: Limits = DEFAULT_LIMITS,
    key_tunnels: bool = False,
    messages: bool = True,
) -> Iterator[TCPFlow]:
    """Turn decoded segments (in capture order) into flows.

    Useful when segments come from somewhere other than a capture file (scapy packets,
    a test table). Options are those of :func:`read`.
    """
    assembler = Assembler(limits, key_tunnels=key_tunnels)
    flows = _flows(zip(segments), assembler, messages)
    return _in_order(flows) if order == "first_packet" else flows


def _flows(
    batches: Iterable[Iterable[Segment]],
    assembler: Assembler,
    messages: bool,
    at_end: Callable[[], None] | None = None,
) -> Iterator[TCPFlow]:
    """The pipeline's inner loop: the segments of each packet into the assembler, its
    events into the flow builder, finished flows out.

    ``batches`` holds the segments of one packet each (a frame may carry several: an
    802.11 A-MSDU), so that a reader can pass ``map(decoder.decode_all, packets)``
    without a generator of its own between the stages; ``at_end`` runs when the input
    is exhausted, before the open connections are closed. Everything per packet is
    inline, with no generator made per packet.
    """
    add = FlowBuilder(messages=messages).add
    feed = assembler.feed
    for batch in batches:
        for seg in batch:
            events = feed(seg)
            if events:
                for event in events:
                    flow = add(event)
                    if flow is not None:
                        yield flow
    if at_end is not None:
        at_end()
    for event in assembler.close_all():
        flow = add(event)
        if flow is not None:
            yield flow


def copy_counts(stats: ReadStats, a: Assembler) -> None:
    """Copy the assembler's own counters (limits that cut in, payload buckets) into
    ``stats``: after each flow, as a reader does, or once at the end."""
    if a.evicted:
        stats.limits["max_connections"] = a.evicted
    if a.released:
        stats.limits["max_total_buffer"] = a.released
    # The assembler's counts only grow, and a key appears once its count is above
    # zero: setting the values (dict.update, not Counter.update, which adds) makes an
    # exact copy without clearing first; done per flow, it must stay cheap.
    payload = stats.payload
    payload["captured"] = a.captured
    dict.update(payload, a.payload)
    dict.update(stats.implausible, a.implausible)


class _Reader(Closing, Iterator[T]):
    """What :class:`FlowReader` and :class:`EventReader` share: the capture, its
    :class:`ReadStats`, the damage warning at the end, and closing."""

    def __init__(self, source: Source, limits: Limits, warn: bool, assembler: Assembler) -> None:
        self.stats = ReadStats()
        self._capture = CaptureReader(source, self.stats)
        self._warn = warn
        self._decoder = Decoder(self.stats, max_fragment_bytes=limits.max_fragment_bytes)
        #: The capture's segments, a batch per record, for the subclass's pipeline.
        self._batches = map(self._decoder.decode_all, self._capture)
        self._it: Iterator[T] = iter(())
        self._assembler = assembler
        self._done = False
        self._closed = False

    def __iter__(self) -> _Reader[T]:
        return self

    def __next__(self) -> T:
        if self._closed:
            raise StopIteration
        try:
            item = next(self._it)
        except StopIteration:
            self._finish()
            raise
        self._counted(item)
        return item

    def _counted(self, item: T) -> None:
        """Count ``item`` in the statistics (a finished flow, for both readers)."""

    def _count(self) -> None:
        """Copy the assembler's counters (limits, payload buckets) into the stats."""
        copy_counts(self.stats, self._assembler)

    def _finish(self) -> None:
        if self._done:
            return
        self._done = True
        self._capture.close()
        self._count()
        if self._warn and self.stats.anomalies:
            summary = ", ".join(f"{n} x {k}" for k, n in self.stats.anomalies.most_common())
            warnings.warn(
                PcapflowsWarning(f"{self._capture.name}: damaged input skipped: {summary}"),
                stacklevel=4,
            )

    def close(self) -> None:
        """Stop reading and release the input; iteration then ends (StopIteration).

        Connections still open are not reported: closing says the caller wants no
        more. A file object the caller gave stays open (it is theirs); a path we opened
        is closed. Calling it twice, or after the end, is harmless.
        """
        self._done = True
        self._closed = True
        self._capture.close()
        self._it = iter(())  # drop the open connections and their buffers now


class FlowReader(_Reader[TCPFlow]):
    """An iterator of the flows of one capture, with its :class:`ReadStats`.

    Returned by :func:`read`. The capture's header is checked when the reader is made
    (so a file that is not a capture fails at once with
    :class:`~pcapflows.errors.CaptureError`); packets are read lazily as flows are
    requested. ``stats`` is complete once the iterator is exhausted. Damage met on the
    way is reported once, at the end, as a :class:`~pcapflows.errors.PcapflowsWarning`.

    If the file object the caller gave is closed by them (or fails) in the middle of
    the read, that is counted as damage (``"input closed during read"``, ``"read
    error"``) and the read ends as if the file had been cut there: every flow still
    open is finished and returned, marked ``open_at_end``. Raising instead would throw
    those flows away and break the promise that nothing after the header raises; the
    count and the warning keep the cut visible. To stop on purpose, call
    :meth:`close`: iteration then ends at once, without the open flows.
    """

    def __init__(
        self,
        source: Source,
        *,
        order: Order = "finish",
        limits: Limits = DEFAULT_LIMITS,
        key_tunnels: bool = False,
        messages: bool = True,
        warn: bool = True,
    ) -> None:
        if order not in ("finish", "first_packet"):
            raise ValueError(f"order must be 'finish' or 'first_packet', not {order!r}")
        super().__init__(source, limits, warn, Assembler(limits, key_tunnels=key_tunnels))
        flows = _flows(self._batches, self._assembler, messages, self._decoder.finish)
        self._it = _in_order(flows) if order == "first_packet" else flows

    def _counted(self, item: TCPFlow) -> None:
        self.stats.flows += 1
        self._count()


class EventReader(_Reader[FlowEvent]):
    """An iterator of the :class:`~pcapflows.model.live.FlowEvent` objects of one
    capture, with its :class:`ReadStats`. Returned by :func:`events`; reading, damage
    and closing work as for :class:`FlowReader`."""

    def __init__(
        self,
        source: Source,
        *,
        limits: Limits = DEFAULT_LIMITS,
        key_tunnels: bool = False,
        keep_messages: bool = True,
        max_message: int | None = None,
        warn: bool = True,
    ) -> None:
        if max_message is None and not keep_messages:
            max_message = DEFAULT_MAX_MESSAGE
        live = LiveFlows(keep_messages=keep_messages, max_message=max_message)
        assembler = Assembler(limits, key_tunnels=key_tunnels, announce=True)
        super().__init__(source, limits, warn, assembler)
        self._it = _flow_events(self._batches, assembler, live, self._decoder.finish)

    def _counted(self, item: FlowEvent) -> None:
        if item.kind == "end" or item.kind == "error":
            self.stats.flows += 1
            self._count()


def _flow_events(
    batches: Iterable[Iterable[Segment]],
    assembler: Assembler,
    live: LiveFlows,
    at_end: Callable[[], None] | None = None,
) -> Iterator[FlowEvent]:
    """The pipeline of :func:`events`: as :func:`_flows`, with the live builder."""
    add = live.add
    deliver = live.deliver
    feed = assembler.feed
    out: list[FlowEvent] = []
    for batch in batches:
        for seg in batch:
            ts = seg.timestamp
            events = feed(seg)
            if events:
                add(events, ts, out)
            if seg.flags & FIN:
                done = assembler.finished_direction(seg)
                if done is not None:
                    live.finished(done[0], done[1], ts, out)
            if out:
                for fe in out:
                    deliver(fe)
                    yield fe
                out.clear()
    if at_end is not None:
        at_end()
    latest = assembler.latest
    add(assembler.close_all(), 0.0 if latest is None else latest, out)
    for fe in out:
        deliver(fe)
        yield fe


def read(
    source: Source,
    *,
    order: Order = "finish",
    limits: Limits = DEFAULT_LIMITS,
    key_tunnels: bool = False,
    messages: bool = True,
    warn: bool = True,
) -> FlowReader:
    """Read a pcap or pcapng capture and return an iterator of its TCP flows.

    ``source`` is a path, a path-like object, a binary file object, ``"-"`` for
    standard input, or the capture itself in memory (``bytes``, ``bytearray``,
    ``memoryview``: content, never a file name); gzip-compressed captures are
    recognized by their content.

    Flows are yielded as they finish (both FINs, a RST, ``idle_timeout`` seconds of
    capture time without a packet, or the end of the input): ``order="finish"``, the
    default, keeps memory bounded by the connections open at once.
    ``order="first_packet"`` yields them in the order of their first packet instead
    (``flow.metadata["pcapflows"]["stream"]`` is that index), holding finished flows
    back until every earlier one is done.

    ``limits`` (a :class:`~pcapflows.limits.Limits`) bounds what one read may hold:
    ``Limits(idle_timeout=60, max_connections=10_000)``. ``idle_timeout`` and
    ``linger`` are seconds of capture time a quiet connection stays open and a closed
    one keeps collecting its last ACKs and retransmissions; ``max_buffer`` bounds the
    bytes buffered above a hole in one direction before the hole is reported as a gap
    (cause ``"limit"``); ``max_connections`` the connections open at once (the one
    nearest its timeout is closed early, ``closed_by="limit"``); ``max_total_buffer``
    the bytes held above holes in all connections together (the biggest holders give
    up their holes); ``max_fragment_bytes`` the IP fragments waiting for their
    datagram (the oldest are dropped and reported). The README lists the defaults and
    their precedents; ``reader.stats.limits`` counts how often each cut in.

    ``key_tunnels=True`` keys connections by their tunnel as well as by their inner
    4-tuple (outer endpoints, and the VNI, GRE key or ERSPAN session), for overlays
    whose tenants reuse the same inner addresses; by default a connection is its inner
    4-tuple whatever carried it, as tshark and Zeek key it.

    ``messages=False`` leaves the payload out: flows come with their connections and
    metadata (sizes, gaps, conflicts, how they ended) but no messages, and nothing of
    the payload is kept while a connection is open. For listings and statistics, and
    with ``order="first_packet"``, where a finished flow may wait a long time.

    ``warn=False`` silences the :class:`~pcapflows.errors.PcapflowsWarning` about
    damaged input (the statistics in ``reader.stats`` still count it).

    Raises :class:`~pcapflows.errors.CaptureError` at once if ``source`` cannot be
    opened or is not a supported capture (a file object opened in text mode is one:
    the message says a binary file is needed), :class:`TypeError` if it is none of the
    kinds above. Nothing after the file header raises.
    """
    return FlowReader(
        source,
        order=order,
        limits=limits,
        key_tunnels=key_tunnels,
        messages=messages,
        warn=warn,
    )


def events(
    source: Source,
    *,
    limits: Limits = DEFAULT_LIMITS,
    key_tunnels: bool = False,
    keep_messages: bool = True,
    max_message: int | None = None,
    warn: bool = True,
) -> EventReader:
    """Read a capture and return an iterator of its connections' events as they
    happened: ``start``, ``message``, and ``end`` or ``error``, for all connections
    interleaved in the order of the packets that caused them (see
    :class:`~pcapflows.model.live.FlowEvent`).

    What a live proxy's hooks would have seen, for code written for them (mitmproxy's
    ``tcp_start``, ``tcp_message``, ``tcp_end``, ``tcp_error``): each event carries its
    flow, the same object from ``start`` to the end, and a ``message`` event comes as
    soon as the message is complete, not when the connection ends. Messages are those
    :func:`read` makes (the module :mod:`pcapflows.model.live` names the one case where
    the interleaving of the two sides can differ: bytes delivered late, past a hole).

    ``keep_messages=False`` does not keep delivered messages on the flow (``flow.messages``
    holds only the newest one), and cuts a run of one side's bytes into messages of at
    most ``max_message`` bytes (1 MiB unless given): memory then depends on the
    connections open at once, not on what they carry, whatever the capture's size.
    ``max_message`` can also be given with ``keep_messages=True``. ``source``,
    ``limits``, ``key_tunnels`` and ``warn`` are as for :func:`read`.
    """
    return EventReader(
        source,
        limits=limits,
        key_tunnels=key_tunnels,
        keep_messages=keep_messages,
        max_message=max_message,
        warn=warn,
    )
