"""Flows as they happen: reassembly events in, flow events out (sans-IO).

:class:`~pcapflows.model.build.FlowBuilder` waits for a connection to end and hands
over the whole flow. :class:`LiveFlows` reports each connection while it runs, as a
live proxy's hooks do (mitmproxy's ``tcp_start``, ``tcp_message``, ``tcp_end``,
``tcp_error``): a ``start`` event at the connection's first packet, a ``message``
event as soon as a message is complete, and one ``end`` or ``error`` event at the
close. The events of all connections come in the order of the packets that caused
them, and a message is handed over once, so memory is bounded by what the open
connections hold, not by what they sent.

A message is what :func:`pcapflows.read` makes one: a maximal run of contiguous bytes
from one side. A run is complete, and its event sent, at the packet that ends it: the
first bytes the other side delivers, a gap in its own direction, its side's FIN (when
every byte before it is there), or the connection's close; ``max_message`` also ends a
run once it holds that many bytes, which bounds what one message can hold (a one-way
transfer of 20 GB is a single run). The message's ``timestamp`` is, as in ``read()``,
the capture time of the packet that first carried its first byte.

Where the two can differ (named here so that a comparison can name it too): ``read()``
places a run by when its bytes were captured, while events can only report bytes once
reassembly delivers them. Bytes captured above a hole that is given up on later (by an
acknowledgment, a limit or the close), bytes of a reported gap that turn up after all,
and bytes below the first ones seen of a connection picked up mid-stream reach the
events later than their capture, so the interleaving of the two directions, and for
such bytes the message boundaries, can differ from ``read()``'s.
The flows' endpoints, metadata and errors never differ: they come from the same
builder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pcapflows.model.build import FlowBuilder, flow_seed, new_flow
from pcapflows.model.tcp import TCPFlow, TCPMessage
from pcapflows.reassembly.events import AssemblerEvent, Closed, Data, Gap, Opened

#: What happened: mitmproxy's hook names without their ``tcp_`` prefix.
FlowEventKind = Literal["start", "message", "end", "error"]


@dataclass(slots=True)
class FlowEvent:
    """One step of one connection, in the order of the capture.

    ``flow`` is the same object for every event of a connection; it grows as the
    connection goes on: ``start`` gives it its endpoints and ids, each ``message`` event
    appends ``message`` to ``flow.messages`` (with ``keep_messages=False`` the list
    holds only that newest message), and at ``end`` or ``error`` (the flow ended with a
    reset: ``flow.error`` says which side sent it) it is complete: the same state as
    :func:`pcapflows.read` gives for the connection, messages aside. ``timestamp`` is
    the capture time of the packet that caused the event (for what the end of the
    capture causes: the capture's latest time).
    """

    kind: FlowEventKind
    flow: TCPFlow
    message: TCPMessage | None
    timestamp: float


class _Open:
    """A running connection: its flow and the run of bytes not yet handed over."""

    __slots__ = ("client", "direction", "ends", "flow", "parts", "size", "start")

    def __init__(self, flow: TCPFlow, client: int) -> None:
        self.flow = flow
        self.client = client
        #: The direction of the run being collected (-1: none), its bytes, their total
        #: and the capture time of its first byte.
        self.direction = -1
        self.parts: list[bytes] = []
        self.size = 0
        self.start = 0.0
        #: Per direction, the stream offset just past the last byte delivered.
        self.ends: list[int | None] = [None, None]


class LiveFlows:
    """Turns the events of an :class:`~pcapflows.reassembly.assembler.Assembler` made
    with ``announce=True`` into :class:`FlowEvent` objects.

    Feed each packet's assembler events with :meth:`add`, giving the capture time of
    the packet that caused them, and pass each flow event to :meth:`deliver` as it is
    handed on. ``keep_messages=False`` keeps only the newest message
    on each flow; ``max_message`` (bytes) ends a run that reaches it. Events of a
    connection that started before the builder saw it (no
    :class:`~pcapflows.reassembly.events.Opened`) are ignored.
    """

    def __init__(self, *, keep_messages: bool = True, max_message: int | None = None) -> None:
        if max_message is not None and max_message < 1:
            raise ValueError(f"max_message must be at least 1 byte, not {max_message}")
        self.keep_messages = keep_messages
        self.max_message = max_message
        self._open: dict[int, _Open] = {}
        #: The whole-flow builder, without payload, makes each flow's final state:
        #: the same code as read()'s, so endpoints, metadata and errors cannot differ.
        self._final = FlowBuilder(messages=False)

    def deliver(self, event: FlowEvent) -> None:
        """Grow the event's flow by its message, as the event is handed to the caller.

        Done at hand-over rather than in :meth:`add`, because one packet can complete
        several messages of one flow: each consumer must find its event's message as
        ``flow.messages[-1]``, as a live proxy's hook does.
        """
        message = event.message
        if message is not None:
            if self.keep_messages:
                event.flow.messages.append(message)
            else:
                event.flow.messages = [message]

    def add(self, events: list[AssemblerEvent], now: float, out: list[FlowEvent]) -> None:
        """Take the assembler events one packet caused; append the flow events to ``out``."""
        final = self._final.add
        for event in events:
            if isinstance(event, Data):
                st = self._open.get(event.conn)
                if st is not None:
                    self._data(st, event, now, out)
                if event.fill:
                    final(event)
            elif isinstance(event, Opened):
                self._start(event, out)
            elif isinstance(event, Closed):
                st = self._open.pop(event.conn, None)
                flow = final(event)
                if st is not None and flow is not None:
                    self._close(st, flow, now, out)
            else:
                if isinstance(event, Gap):
                    st = self._open.get(event.conn)
                    if (
                        st is not None
                        and st.direction == event.direction
                        and st.ends[event.direction] == event.offset
                    ):
                        self._flush(st, now, out)  # nothing can join the run any more
                final(event)

    def finished(self, conn: int, direction: int, now: float, out: list[FlowEvent]) -> None:
        """Direction ``direction`` of ``conn`` reached its FIN: a run of it is complete
        (see :meth:`~pcapflows.reassembly.assembler.Assembler.finished_direction`)."""
        st = self._open.get(conn)
        if st is not None and st.direction == direction:
            self._flush(st, now, out)

    def _start(self, event: Opened, out: list[FlowEvent]) -> None:
        ci = event.client
        seed = flow_seed(event.stream, event.frame, event.timestamp, event.endpoints)
        flow = new_flow(
            seed, event.endpoints[ci], event.endpoints[1 - ci], event.timestamp, None, None
        )
        self._open[event.conn] = _Open(flow, ci)
        out.append(FlowEvent("start", flow, None, event.timestamp))

    def _data(self, st: _Open, event: Data, now: float, out: list[FlowEvent]) -> None:
        d = event.direction
        end = st.ends[d]
        if st.direction != d or (end is not None and end != event.offset):
            self._flush(st, now, out)
            st.direction = d
            st.start = event.timestamp
        data = event.data
        st.parts.append(data)
        st.size += len(data)
        st.ends[d] = event.offset + len(data)
        if self.max_message is not None and st.size >= self.max_message:
            self._flush(st, now, out)  # the run goes on in a new message

    def _flush(self, st: _Open, now: float, out: list[FlowEvent]) -> None:
        """Hand over the run collected so far as a message."""
        if not st.parts:
            st.direction = -1
            return
        parts = st.parts
        content = parts[0] if len(parts) == 1 else b"".join(parts)
        message = TCPMessage(st.direction == st.client, content, st.start)
        flow = st.flow
        st.parts = []
        st.size = 0
        st.direction = -1
        out.append(FlowEvent("message", flow, message, now))

    def _close(self, st: _Open, final: TCPFlow, now: float, out: list[FlowEvent]) -> None:
        """Hand over the last run, then give the flow its final state."""
        self._flush(st, now, out)
        flow = st.flow
        if final.client_conn.peername != flow.client_conn.peername:
            # Later packets showed the roles the other way round than the first packet
            # did (see Opened): the messages handed over or about to be change sides.
            pending = [e.message for e in out if e.flow is flow and e.message is not None]
            for m in [*flow.messages, *pending]:
                m.from_client = not m.from_client
        flow.client_conn.set_state(final.client_conn.get_state())
        flow.server_conn.set_state(final.server_conn.get_state())
        flow.timestamp_created = final.timestamp_created
        flow.metadata = final.metadata
        flow.error = final.error
        out.append(FlowEvent("error" if flow.error else "end", flow, None, now))
