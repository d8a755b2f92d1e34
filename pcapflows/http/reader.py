"""``read_http()``: a capture's connections as HTTP flows where they speak HTTP/1."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pcapflows.api import FlowReader, read
from pcapflows.closing import Closing
from pcapflows.http.convert import flows_from_tcp
from pcapflows.io.source import Source
from pcapflows.model.flow import Flow
from pcapflows.stats import ReadStats


class HTTPReader(Closing):
    """An iterator of flows (``HTTPFlow`` and ``TCPFlow``) with the read's ``stats``.

    Returned by :func:`read_http`; it wraps the :class:`~pcapflows.api.FlowReader`
    of the same capture (``tcp_reader``), so everything said there about errors,
    warnings and closing holds here too.
    """

    def __init__(self, reader: FlowReader) -> None:
        self.tcp_reader = reader
        self._pending: list[Flow] = []

    @property
    def stats(self) -> ReadStats:
        return self.tcp_reader.stats

    def __iter__(self) -> Iterator[Flow]:
        return self

    def __next__(self) -> Flow:
        while not self._pending:
            tcp = next(self.tcp_reader)
            self._pending = flows_from_tcp(tcp)
            self._pending.reverse()
        return self._pending.pop()

    def close(self) -> None:
        self._pending = []
        self.tcp_reader.close()


def read_http(source: Source, **read_options: Any) -> HTTPReader:
    """Read a capture as :func:`pcapflows.read` does (same ``source`` and options),
    giving for each connection, in the order connections finish, one
    :class:`~pcapflows.http.HTTPFlow` per HTTP/1 exchange (in order) then a
    ``TCPFlow`` for whatever follows that is not HTTP (a CONNECT tunnel, an
    upgraded protocol, bytes after the framing was lost); a connection that is not
    HTTP/1 (recognised by its content, on any port) is its plain ``TCPFlow``.
    """
    if read_options.get("messages", True) is False:
        raise ValueError("read_http needs the messages: messages=False is not possible")
    return HTTPReader(read(source, **read_options))
