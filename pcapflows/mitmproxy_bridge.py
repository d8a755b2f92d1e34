"""Real mitmproxy objects, and mitmproxy addons run over a capture.

The only pcapflows module that uses mitmproxy, and it imports it inside the functions
that need it: ``import pcapflows`` and the plain command line stay fast and work
without it (mitmproxy is the optional extra ``pcapflows[mitmproxy]``).

:func:`to_mitmproxy` turns a flow into a genuine ``mitmproxy.tcp.TCPFlow`` (through
mitmproxy's own ``from_state``, so the object is exactly what mitmproxy would load
from a flow file). :func:`replay` runs addons over a capture offline with mitmproxy's
own machinery: a ``Master`` with its ``AddonManager`` and options, scripts loaded by
mitmproxy's script loader, hooks dispatched as the live proxy dispatches them. Only
the source of the events differs: packets from a file instead of sockets.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, TypeGuard, cast, overload

from pcapflows.api import EventReader, events
from pcapflows.errors import MITMPROXY_HINT, AddonError, MitmproxyMissing
from pcapflows.io.source import Source
from pcapflows.limits import DEFAULT_LIMITS, Limits
from pcapflows.model.flow import FLOW_FORMAT_VERSION, Flow
from pcapflows.model.live import FlowEvent
from pcapflows.model.tcp import TCPFlow, TCPMessage
from pcapflows.stats import ReadStats

if TYPE_CHECKING:
    import mitmproxy.http
    import mitmproxy.tcp
    from mitmproxy.master import Master

    from pcapflows.http.model import HTTPFlow


def require_mitmproxy() -> None:
    """Raise :class:`~pcapflows.errors.MitmproxyMissing` unless a usable mitmproxy
    (one that reads flow format 21, i.e. 11 or later) can be imported.

    Importing mitmproxy costs a noticeable fraction of a second, so this is called
    only by what needs it, never at ``import pcapflows``.
    """
    try:
        from mitmproxy import version
    except ImportError as exc:
        raise MitmproxyMissing(f"mitmproxy is not installed ({exc}): {MITMPROXY_HINT}") from exc
    if version.FLOW_FORMAT_VERSION < FLOW_FORMAT_VERSION:
        raise MitmproxyMissing(
            f"mitmproxy {version.VERSION} is too old (11 or later needed): {MITMPROXY_HINT}"
        )


def _migrated(state: dict[str, Any]) -> dict[str, Any]:
    """Our state (format 21) in the format of the installed mitmproxy.

    mitmproxy's own migration does it (a no-op for mitmproxy 11): a later mitmproxy
    that bumps the format still gets a state it accepts.
    """
    from mitmproxy.io import compat

    return compat.migrate_flow(state)  # type: ignore[arg-type,return-value]


def _m_message(message: TCPMessage) -> mitmproxy.tcp.TCPMessage:
    """mitmproxy's message for ours. mitmproxy's constructor turns a timestamp of 0.0
    into "now"; a capture can hold 0.0 (a clock never set), so it is put back."""
    from mitmproxy import tcp

    m = tcp.TCPMessage(message.from_client, message.content, message.timestamp)
    m.timestamp = message.timestamp
    return m


@overload
def to_mitmproxy(flow: TCPFlow) -> mitmproxy.tcp.TCPFlow: ...
@overload
def to_mitmproxy(flow: HTTPFlow) -> mitmproxy.http.HTTPFlow: ...


def to_mitmproxy(flow: TCPFlow | HTTPFlow) -> mitmproxy.tcp.TCPFlow | mitmproxy.http.HTTPFlow:
    """A genuine ``mitmproxy.tcp.TCPFlow`` (or ``mitmproxy.http.HTTPFlow`` for a
    :class:`pcapflows.http.HTTPFlow`) with the same state as ``flow``.

    Connections, messages (requests, responses, WebSocket messages), error,
    metadata and ids are the same (``get_state()`` is equal), so the result works
    with everything in mitmproxy: ``copy()``, its flow file writer, filters, addons.
    The two flows are independent: changing one does not change the other.

    Raises :class:`~pcapflows.errors.MitmproxyMissing` (an ``ImportError``) if
    mitmproxy is not installed; ``pip install 'pcapflows[mitmproxy]'`` installs it.
    """
    require_mitmproxy()
    if flow.type == "http":
        from mitmproxy import http

        h = http.HTTPFlow.from_state(_migrated(flow.get_state()))
        if not isinstance(h, http.HTTPFlow):
            raise TypeError(f"not an HTTP flow: {flow!r}")
        ours = getattr(flow, "websocket", None)
        if ours is not None and h.websocket is not None:
            for a, b in zip(ours.messages, h.websocket.messages, strict=True):
                b.timestamp = a.timestamp  # 0.0 survives (see _m_message)
        return h
    from mitmproxy import tcp

    if not isinstance(flow, TCPFlow):
        raise TypeError(f"not a TCP or HTTP flow: {flow!r}")
    m = tcp.TCPFlow.from_state(_migrated(flow.get_state()))
    if not isinstance(m, tcp.TCPFlow):  # from_state picks the class by "type"
        raise TypeError(f"not a TCP flow: {flow!r}")
    for ours_m, theirs in zip(flow.messages, m.messages, strict=True):
        theirs.timestamp = ours_m.timestamp  # 0.0 survives (see _m_message)
    return m


@dataclass
class ReplayResult:
    """What a :func:`replay` did.

    ``stats`` are the statistics of the read (empty when the events came from the
    caller without a reader). ``errors_logged`` counts records of level ERROR logged
    while the flows ran: mitmproxy logs an exception raised in a hook that way
    ("Addon error: ...") and goes on with the next hook, as a live proxy does;
    ``errors`` keeps the first few, formatted.
    """

    stats: ReadStats
    flows: int = 0
    messages: int = 0
    errors_logged: int = 0
    errors: list[str] = field(default_factory=list)


#: How many logged errors a ReplayResult keeps verbatim (the count goes on).
MAX_ERRORS_KEPT = 20


class _ErrorWatch(logging.Handler):
    """Counts the ERROR records logged (mitmproxy's errorcheck idea: an error logged
    while the addons start means they did not start well)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.count = 0
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        if len(self.records) < MAX_ERRORS_KEPT:
            self.records.append(record)


class _StandardError(logging.Handler):
    """Warnings and errors to the current standard error, for an application that has
    configured no logging: what Python's last-resort handler would do, were it not
    disabled by the handler mitmproxy's Master puts on the root logger."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:
            self.handleError(record)


class _Scripts:
    """Holds the ``Script`` addons of the scripts given by path.

    mitmproxy's ``ScriptLoader`` (behind ``mitmdump -s``) makes its scripts with a
    watcher that reloads one when its file changes, on a timer; a replay is a batch
    run that must give every flow to the same code, so the scripts are made by the
    same ``Script`` class with reloading off (as mitmproxy's own test context does),
    and held here so that the addon manager reaches them for every hook.
    """

    name = "pcapflows-scripts"

    def __init__(self) -> None:
        self.addons: list[Any] = []


def _is_capture(source: object) -> TypeGuard[Source]:
    """Whether ``source`` names or holds a capture (rather than being events)."""
    return isinstance(source, (str, bytes, bytearray, memoryview, os.PathLike)) or hasattr(
        source, "read"
    )


def replay(
    source: Source | EventReader | Iterable[FlowEvent],
    addons: Sequence[object] = (),
    *,
    scripts: Sequence[str | os.PathLike[str]] = (),
    limits: Limits = DEFAULT_LIMITS,
    key_tunnels: bool = False,
    keep_messages: bool = True,
    max_message: int | None = None,
    warn: bool = True,
    log: IO[str] | None = None,
) -> ReplayResult:
    """Run mitmproxy addons over a capture, offline, as if its connections went
    through mitmproxy.

    ``source`` is a capture (anything :func:`pcapflows.read` takes) or events already
    made: a ``pcapflows.events()`` reader or any iterable of its events. ``addons``
    are addon objects, ``scripts`` paths of addon scripts (what ``mitmdump -s``
    loads), run after the objects, in the order given.

    Everything goes through mitmproxy's own machinery: a ``Master`` with default
    options; each addon is loaded (``load``), configured with all options
    (``configure``); then ``running``; then the capture's connections, interleaved
    in capture order: ``tcp_start`` when a connection's first packet is seen,
    ``tcp_message`` when a message is complete (``flow.messages[-1]`` is the new
    one, as in a live proxy), and exactly one of ``tcp_end`` or ``tcp_error`` (the
    connection was reset: ``flow.error`` says how); finally ``done``. An exception in
    a hook is logged by mitmproxy and the replay goes on, as a live proxy does
    (counted in the result's ``errors_logged``). The flow a hook gets is a genuine
    ``mitmproxy.tcp.TCPFlow``, the same object for all hooks of a connection; at
    ``tcp_end``/``tcp_error`` its connections, error and ``metadata["pcapflows"]``
    are final (what :func:`pcapflows.read` gives); what an addon adds to the flow
    stays. It is dropped after its last hook, so memory stays bounded by the
    connections open at once; ``keep_messages=False`` keeps only the newest message
    on each flow, for very long connections.

    ``log`` is where mitmproxy's log goes (a text stream, as mitmdump's terminal
    log, at level info: the addons' own ``logging`` output included). Without it,
    warnings and errors go to standard error unless the application configured
    logging itself.

    Raises :class:`~pcapflows.errors.CaptureError` for a source that is not a
    capture (before any addon is loaded), :class:`~pcapflows.errors.AddonError` if
    an addon or script fails to load or configure (mitmproxy has logged why; no flow
    was replayed), :class:`~pcapflows.errors.MitmproxyMissing` without mitmproxy.
    Runs its own asyncio event loop (async hooks are awaited), so it cannot be
    called from a running one.
    """
    require_mitmproxy()
    paths = [os.fspath(p) for p in scripts]
    for p in paths:
        if paths.count(p) > 1:
            raise AddonError(f"Duplicate script: {p}")
    stream: Iterable[FlowEvent]
    if _is_capture(source):
        stream = events(
            source,
            limits=limits,
            key_tunnels=key_tunnels,
            keep_messages=keep_messages,
            max_message=max_message,
            warn=warn,
        )
    else:
        stream = cast(Iterable[FlowEvent], source)
    stats = getattr(stream, "stats", None)
    result = ReplayResult(stats if isinstance(stats, ReadStats) else ReadStats())
    try:
        asyncio.run(_replay(iter(stream), list(addons), paths, keep_messages, log, result))
    finally:
        if stream is not source:  # the reader made here (a caller's stays theirs)
            cast(EventReader, stream).close()
    return result


def _log_setup(log: IO[str] | None) -> tuple[list[logging.Handler], int | None]:
    """Install the log handlers of one replay; return them and the root level to
    restore (None: unchanged)."""
    root = logging.getLogger()
    handlers: list[logging.Handler] = []
    level = None
    if log is None:
        if not root.handlers:
            handlers.append(_StandardError())
    elif root.getEffectiveLevel() > logging.INFO:
        level = root.level
        root.setLevel(logging.INFO)
    for h in handlers:
        root.addHandler(h)
    return handlers, level


async def _replay(
    events: Iterator[FlowEvent],
    addons: list[object],
    scripts: list[str],
    keep_messages: bool,
    log: IO[str] | None,
    result: ReplayResult,
) -> None:
    from mitmproxy import master, options
    from mitmproxy.addons import termlog

    root = logging.getLogger()
    watch = _ErrorWatch()
    extra, level = _log_setup(log)
    root.addHandler(watch)
    m = master.Master(options.Options(), event_loop=asyncio.get_running_loop())
    # mitmdump's terminal log, on the caller's stream.
    term = termlog.TermLog(out=log) if log is not None else None
    try:
        _start(m, [term] if term is not None else [], addons, scripts)
        if watch.count:
            details = tuple(watch.format(r) for r in watch.records)
            raise AddonError(_one_line(watch.records[0]), details)
        await m.running()
        try:
            await _run_events(m, events, keep_messages, result)
        finally:
            await m.done()
    finally:
        legacy = getattr(m, "_legacy_log_events", None)
        if legacy is not None:
            legacy.uninstall()  # done() does it too; harmless twice
        if term is not None:
            term.uninstall()
        root.removeHandler(watch)
        for h in extra:
            root.removeHandler(h)
        if level is not None:
            root.setLevel(level)
    result.errors_logged = watch.count
    result.errors = [watch.format(r) for r in watch.records]


def _start(m: Master, own: list[object], addons: list[object], scripts: list[str]) -> None:
    """Load and configure ``own`` addons (the terminal log) and the caller's, then the
    scripts, as mitmproxy starts its own.

    mitmproxy's refusals (a missing script, two addons of one name, a bad option)
    become :class:`~pcapflows.errors.AddonError`; an error inside a script is logged by
    mitmproxy, with the script's traceback, and seen by the caller's error watch.
    """
    from mitmproxy import addonmanager, exceptions, hooks
    from mitmproxy.addons import script

    try:
        for a in own + addons:
            m.addons.add(a)
        configure = hooks.ConfigureHook(set(m.options.keys()))
        for a in own + addons:
            with addonmanager.safecall():
                m.addons.invoke_addon_sync(a, configure)
        if scripts:
            holder = _Scripts()
            m.addons.add(holder)
            for path in scripts:
                # Loads the script and runs its load and configure hooks.
                holder.addons.append(script.Script(path, False))
    except (exceptions.OptionsError, exceptions.AddonManagerError) as exc:
        raise AddonError(str(exc)) from None


def _one_line(record: logging.LogRecord) -> str:
    """A logged error in one line: its message and the exception's last line."""
    text = record.getMessage()
    if record.exc_info and record.exc_info[1] is not None:
        exc = record.exc_info[1]
        text = f"{text}: {type(exc).__name__}: {exc}"
    return " ".join(text.split())


async def _run_events(
    m: Master,
    events: Iterator[FlowEvent],
    keep_messages: bool,
    result: ReplayResult,
) -> None:
    """Dispatch one hook per event, with the mitmproxy flow of the event's connection."""
    from mitmproxy import tcp
    from mitmproxy.proxy.layers.tcp import TcpEndHook, TcpErrorHook, TcpMessageHook, TcpStartHook

    handle = m.addons.handle_lifecycle
    # id(pcapflows flow) -> (that flow, its mitmproxy flow, our state at its start).
    # Keying by the object (the same one for all events of a connection) and holding
    # it keeps the key unique while the connection is open.
    open_flows: dict[int, tuple[TCPFlow, tcp.TCPFlow, dict[str, Any]]] = {}

    for event in events:
        key = id(event.flow)
        if event.kind == "start":
            ours = event.flow
            state = Flow.get_state(ours)  # the base's state: without messages
            theirs = tcp.TCPFlow.from_state(_migrated({**state, "messages": []}))
            assert isinstance(theirs, tcp.TCPFlow)
            open_flows[key] = (ours, theirs, Flow.get_state(ours))  # from_state consumed one
            result.flows += 1
            await handle(TcpStartHook(theirs))
            continue
        try:
            ours, theirs, at_start = open_flows[key]
        except KeyError:
            raise ValueError(f"{event.kind!r} event for a flow that never started") from None
        if event.kind == "message":
            message = event.message if event.message is not None else ours.messages[-1]
            if not keep_messages:
                del theirs.messages[:]
            theirs.messages.append(_m_message(message))
            result.messages += 1
            await handle(TcpMessageHook(theirs))
        elif event.kind in ("end", "error"):
            del open_flows[key]
            _finish(ours, theirs, at_start)
            await handle(TcpErrorHook(theirs) if theirs.error else TcpEndHook(theirs))
        else:
            raise ValueError(f"unknown event kind {event.kind!r}")
    # An iterable that stopped before its flows ended (never pcapflows.events()):
    # the flows still get their one last hook, as a proxy that shuts down ends them.
    for ours, theirs, at_start in list(open_flows.values()):
        _finish(ours, theirs, at_start)
        await handle(TcpErrorHook(theirs) if theirs.error else TcpEndHook(theirs))
    open_flows.clear()


def _finish(ours: TCPFlow, theirs: mitmproxy.tcp.TCPFlow, at_start: dict[str, Any]) -> None:
    """Bring into the mitmproxy flow what the capture decided since the flow started:
    the fields of our flow and its connections that changed (end times, the error,
    what the whole connection showed), and pcapflows' metadata.

    Only those: whatever an addon set on the flow in earlier hooks stays.
    ``at_start`` is our flow's state (without messages) when it started.
    """
    from mitmproxy import flow as m_flow

    now = Flow.get_state(ours)
    if now["client_conn"]["peername"] != at_start["client_conn"]["peername"] and len(
        theirs.messages
    ) == len(ours.messages):
        # The roles turned round at the end (see pcapflows.model.live): the messages
        # already given to the addons take the sides ours now have.
        for mine, m in zip(ours.messages, theirs.messages, strict=True):
            m.from_client = mine.from_client
    for name, conn in (("client_conn", theirs.client_conn), ("server_conn", theirs.server_conn)):
        was = at_start[name]
        changed = {k: v for k, v in now[name].items() if was.get(k) != v}
        if changed:
            state = conn.get_state()
            state.update({k: v for k, v in changed.items() if k in state})
            conn.set_state(state)
    if ours.error is not None:
        theirs.error = m_flow.Error(ours.error.msg, ours.error.timestamp)
    theirs.metadata.update(now["metadata"])  # a copy already
    for name in ("id", "timestamp_created", "marked", "comment", "is_replay"):
        if now[name] != at_start[name]:
            setattr(theirs, name, now[name])
