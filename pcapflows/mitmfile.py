"""mitmproxy flow files, written and read without mitmproxy.

A flow file is a plain sequence of flow states, one after another, each one
tnetstring (:mod:`pcapflows.tnetstring`) holding ``flow.get_state()``. There is no
file header: every flow carries its own ``version``. mitmproxy 11.0.2 and 12.3.1 both
write flow format **21** (``mitmproxy.version.FLOW_FORMAT_VERSION``), so every release
between them does too. From 11.0.2 to 12.3.1 the TCP flow, connection and tnetstring
code did not change; the reader now checks that each value is a dict, and the writer of
the save addon flushes after each flow. mitmproxy 10 wrote format 20, mitmproxy 9
format 18.

:func:`write_mitm` writes format 21: ``flow.get_state()`` exactly (pcapflows' model
mirrors mitmproxy 11 key for key), after checking each flow against what mitmproxy's
``Flow.from_state`` needs (:mod:`pcapflows.mitmstate`), because mitmproxy refuses a
whole file over one bad value (often with an assertion, not a message): every key and no
other, ``str`` where it wants text (ids, addresses' hosts, ``proxy_mode``) and ``bytes``
where it wants bytes (message contents, ``alpn``), float timestamps (an ``int`` is
written as a float), a ``proxy_mode`` that mitmproxy's mode parser accepts, ids unique
in the file, and metadata made of JSON-like values (dicts with ``str`` keys, lists,
text, numbers, booleans, None): they come back exactly as they went in, where a tuple
would come back a list.

:func:`read_mitm` reads the TCP flows back as pcapflows objects; other flow types
(``http``, ``udp``, ``dns``) are counted in :attr:`MitmReader.skipped`. It reads format
21 and migrates 20 (mitmproxy 10) and 19 (development builds between 9 and 10), whose
TCP flows differ from 21 only by a connection ``state`` key and the TLS version name
``QUIC`` (now ``QUICv1``), as mitmproxy's own migration does. Older files are refused
with a message saying how to convert them (mitmproxy migrates them: ``mitmdump -nr OLD
-w NEW``). ``write_mitm(read_mitm(f), out)`` gives the same states, metadata included.
"""

from __future__ import annotations

import io
import os
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO, Union, cast

from pcapflows import tnetstring
from pcapflows.closing import Closing
from pcapflows.errors import FlowFileError
from pcapflows.io.sniff import GZIP_MAGIC, PCAP_MAGICS, PCAPNG_MAGIC
from pcapflows.mitmstate import checked_state, read_state
from pcapflows.model.flow import FLOW_FORMAT_VERSION, Flow
from pcapflows.model.tcp import TCPFlow

#: A path, a path-like object, ``"-"`` (standard input or output), or a binary file object.
Target = Union[str, "os.PathLike[str]", BinaryIO]

#: Flow format versions :func:`read_mitm` migrates to 21 (see the module docstring).
MIGRATED_VERSIONS = (19, 20)


# --- writing -------------------------------------------------------------------------


class MitmWriter(Closing):
    """Writes flows to a mitmproxy flow file one at a time (see :func:`write_mitm`).

    For callers that get flows one by one rather than as an iterable (the command
    line writes each flow as the capture finishes it and lists it too). ``count`` is
    the number of flows written. Use it as a context manager, or call :meth:`close`,
    to close a file it opened.
    """

    def __init__(self, file: Target) -> None:
        self.name = _name(file, "<stdout>")
        self.count = 0
        self._fp, self._owned = _open(file, "wb")
        self._seen: set[str] = set()
        self._closed = False

    def add(self, flow: Flow) -> None:
        """Check ``flow`` (:func:`checked_state`), write it and flush.

        ``ValueError`` if mitmproxy would refuse it or its id was already written:
        then nothing of it is written. ``OSError`` from the file (a full disk) as is.
        """
        if self._closed:
            raise ValueError(f"write to a closed MitmWriter ({self.name})")
        state = checked_state(flow)
        flow_id: str = state["id"]
        if flow_id in self._seen:
            raise ValueError(f"flow id {flow_id!r} written twice: ids must be unique in a file")
        self._seen.add(flow_id)
        tnetstring.dump(state, self._fp)
        self._fp.flush()
        self.count += 1

    def close(self) -> None:
        """Close the file if this writer opened it (a file object given is left open)."""
        if not self._closed:
            self._closed = True
            if self._owned:
                self._fp.close()


def write_mitm(flows: Iterable[Flow], file: Target) -> int:
    """Write ``flows`` to a mitmproxy flow file (format 21); return how many were written.

    ``file`` is a path (created or truncated), a path-like object, ``"-"`` for standard
    output, or a binary file object (left open). Each flow is checked
    (:func:`checked_state`), written and flushed as it comes out of ``flows``: nothing
    is collected, so a generator over a huge capture is written in the memory of one
    flow, and a reader at the other end of a pipe sees each flow at once. A flow that
    mitmproxy would refuse, or whose id was already written, raises ``ValueError``
    before any of its bytes are written; the flows before it are in the file.

    The file loads in mitmproxy 11 and 12 (``mitmproxy -r FILE``, ``mitmdump -nr FILE``)
    and in :func:`read_mitm`. Only the flow ids are kept while writing (to refuse a
    repeated one): some 100 bytes per flow.
    """
    with MitmWriter(file) as writer:
        for flow in flows:
            writer.add(flow)
        return writer.count


def _open(file: Target, mode: str) -> tuple[BinaryIO, bool]:
    """The binary file object for ``file``, and whether we opened it (and must close it).

    A file object opened in text mode is a ``TypeError`` saying so, rather than an
    obscure one from the first read or write.
    """
    if isinstance(file, (str, os.PathLike)):
        if os.fspath(file) == "-":
            if "w" in mode:
                sys.stdout.flush()  # text already printed goes first
                return sys.stdout.buffer, False
            return sys.stdin.buffer, False
        return cast(BinaryIO, open(file, mode)), True
    if isinstance(file, (bytes, bytearray)):
        raise TypeError("give a path, '-' or a binary file object, not bytes")
    if isinstance(file, io.TextIOBase):
        raise TypeError(f"{_name(file)} is opened in text mode: open it with {mode!r}")
    return file, False


def _name(file: Target, std: str = "<stdin>") -> str:
    if isinstance(file, (str, os.PathLike)):
        path = os.fspath(file)
        return std if path == "-" else str(path)
    return str(getattr(file, "name", None) or f"<{type(file).__name__}>")


# --- reading -------------------------------------------------------------------------

#: What a file that is not a flow file usually is, by its first bytes.
_MAGIC = (
    # The classic pcap magics (microsecond and nanosecond), in either byte order.
    (
        tuple(
            magic.to_bytes(4, order)
            for magic, (_units, extra) in PCAP_MAGICS.items()
            if not extra
            for order in ("little", "big")
        ),
        "pcap",
    ),
    ((PCAPNG_MAGIC,), "pcapng"),
    ((GZIP_MAGIC,), "gzip"),
    ((b"{", b"\xef\xbb\xbf{"), "JSON (a HAR file?)"),
)


class MitmReader(Closing, Iterator[TCPFlow]):
    """The TCP flows of a mitmproxy flow file, read one at a time (see :func:`read_mitm`).

    ``skipped`` counts the flows of other types by type (``{"http": 3}``) as they are
    passed over; ``flows`` counts the TCP flows returned so far. Use it as a context
    manager, or call :meth:`close`, to close a file it opened before the end.
    """

    def __init__(self, file: Target) -> None:
        self.name = _name(file)
        self.skipped: Counter[str] = Counter()
        self.flows = 0
        self._fp, self._owned = _open(file, "rb")
        self._offset = 0
        self._index = 0
        self._head = b""
        self._closed = False

    def __iter__(self) -> MitmReader:
        return self

    def __next__(self) -> TCPFlow:
        while not self._closed:
            state = self._next_state()
            if state is None:
                self.close()
                break
            kind = state.get("type")
            if kind != "tcp":
                self.skipped[kind if isinstance(kind, str) else repr(kind)] += 1
                continue
            return self._tcp_flow(state)
        raise StopIteration

    def _tcp_flow(self, state: dict[str, Any]) -> TCPFlow:
        """A TCP flow's state as a pcapflows flow, checked as the writer checks it; a
        state mitmproxy would not read is this file's damage."""
        try:
            flow = cast(TCPFlow, TCPFlow.from_state(read_state(state, "state")))
        except (ValueError, TypeError, KeyError) as exc:
            raise self._error(str(exc)) from None
        self.flows += 1
        return flow

    @property
    def offset(self) -> int:
        """Bytes of the file read so far: where the next flow starts (from where the
        reader began)."""
        return self._offset

    def _next_state(self) -> dict[str, Any] | None:
        start = self._offset
        self._index += 1
        if self._index == 1:
            self._head = self._peek(4)
        try:
            item = tnetstring.load(self._fp)
        except FlowFileError as exc:
            self.close()
            if self._index == 1:
                raise FlowFileError(self._not_a_flow_file(str(exc))) from None
            raise self._error(f"{exc} (at byte {start})") from None
        except OSError as exc:
            self.close()
            raise FlowFileError(f"{self.name}: cannot read: {exc.strerror or exc}") from None
        if item is None:
            return None
        value, size = item
        self._offset += size
        if type(value) is not dict:
            if self._index == 1:
                raise FlowFileError(self._not_a_flow_file(f"it holds a {type(value).__name__}"))
            raise self._error(f"a {type(value).__name__} where a flow should be")
        return self._migrate(value)

    def _migrate(self, state: dict[Any, Any]) -> dict[str, Any]:
        version = state.get("version")
        if version is None and self._index == 1:
            raise FlowFileError(self._not_a_flow_file("a dict without a flow format version"))
        if version == FLOW_FORMAT_VERSION and type(version) is int:
            return state
        if type(version) is int and version in MIGRATED_VERSIONS:
            try:
                for conn in (state["client_conn"], state["server_conn"]):
                    conn.pop("state", None)
                    if conn.get("tls_version") == "QUIC":
                        conn["tls_version"] = "QUICv1"
            except (KeyError, TypeError, AttributeError):
                raise self._error(f"a format {version} flow without connections") from None
            state["version"] = FLOW_FORMAT_VERSION
            return state
        if type(version) is int and version > FLOW_FORMAT_VERSION:
            why = "a mitmproxy newer than 12 wrote it"
        else:
            why = (
                "an older mitmproxy wrote it: `mitmdump -nr OLD -w NEW` (mitmproxy 11+) updates it"
            )
        shown = version if version is not None else "missing"
        raise FlowFileError(
            f"{self.name}: flow {self._index} has flow format version {shown}; pcapflows reads "
            f"version {FLOW_FORMAT_VERSION}, which mitmproxy 11 and 12 write (and migrates "
            f"{' and '.join(map(str, MIGRATED_VERSIONS))}): {why}"
        )

    def _error(self, why: str) -> FlowFileError:
        self.close()
        return FlowFileError(f"{self.name}: flow {self._index} is damaged: {why}")

    def _peek(self, n: int) -> bytes:
        """The file's next bytes without consuming them, if the file object can tell
        (to name what a file that is not a flow file is); else nothing."""
        peek = getattr(self._fp, "peek", None)
        try:
            if callable(peek):
                return bytes(peek(n))[:n]
            if self._fp.seekable():
                pos = self._fp.tell()
                head = self._fp.read(n)
                self._fp.seek(pos)
                return head
        except (OSError, ValueError):
            pass
        return b""

    def _not_a_flow_file(self, why: str) -> str:
        head = self._head
        kind = next((k for magics, k in _MAGIC for m in magics if head.startswith(m)), None)
        if kind is None:
            return f"{self.name} is not a mitmproxy flow file ({why})"
        hint = (
            f"; to turn a capture into one: pcapflows {self.name} -w OUT" if "pcap" in kind else ""
        )
        return f"{self.name} is not a mitmproxy flow file: it looks like {kind}{hint}"

    def close(self) -> None:
        """Stop reading and close the file if :func:`read_mitm` opened it."""
        if not self._closed:
            self._closed = True
            if self._owned:
                self._fp.close()


class MitmStateReader(MitmReader):
    """Every flow of a mitmproxy flow file: TCP flows as :class:`~pcapflows.TCPFlow`
    (checked as :func:`read_mitm` checks them), flows of other types as their state
    dicts, as mitmproxy wrote them (see :func:`read_mitm_states`)."""

    def __next__(self) -> Any:  # TCPFlow | dict[str, Any]
        while not self._closed:
            state = self._next_state()
            if state is None:
                self.close()
                break
            if state.get("type") != "tcp":
                return state
            return self._tcp_flow(state)
        raise StopIteration


def read_mitm_states(file: Target) -> MitmStateReader:
    """All the flows of a mitmproxy flow file, for code that handles more than TCP
    (:func:`pcapflows.write_capture` turns HTTP flows into packets).

    TCP flows come as :class:`~pcapflows.TCPFlow` objects, exactly as from
    :func:`read_mitm`; flows of other types (``http``, ``udp``, ``dns``) as their state
    dicts (``state["type"]`` says which), unchecked, with pcapflows' model unable to hold
    them. Read one at a time; the same errors as :func:`read_mitm`.
    """
    return MitmStateReader(file)


def read_mitm(file: Target) -> MitmReader:
    """The TCP flows of a mitmproxy flow file, as pcapflows :class:`~pcapflows.TCPFlow`.

    ``file`` is a path, a path-like object, ``"-"`` for standard input, or a binary file
    object. Flows are read one at a time as the iterator advances (a file of any size
    is read in the memory of its largest flow). Flows of other types (HTTP, UDP, DNS)
    are skipped and counted in the reader's ``skipped``. An empty file yields nothing.

    Raises :class:`~pcapflows.errors.FlowFileError` (one line naming the file) for a
    file that is not a flow file, a damaged or truncated one (when the iteration gets
    there), or one of a flow format version pcapflows does not read. The path is opened
    at once, so a missing file raises ``OSError`` here.
    """
    return MitmReader(file)


__all__ = [
    "MIGRATED_VERSIONS",
    "MitmReader",
    "MitmStateReader",
    "MitmWriter",
    "checked_state",
    "read_mitm",
    "read_mitm_states",
    "write_mitm",
]
