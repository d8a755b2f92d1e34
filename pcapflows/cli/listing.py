"""``pcapflows list``: one line per TCP connection, in the order of first packets.

A table with a header row, or ``--json`` for one JSON object per line (the schema of
``export --format jsonl``, without the payload).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Iterator
from itertools import groupby
from operator import attrgetter

from pcapflows.api import in_stream_order
from pcapflows.cli.describe import duration, ending, flow_duration, notes, size
from pcapflows.cli.errors import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    CliError,
    WriteFailed,
    cannot_write,
    guarded,
)
from pcapflows.cli.jsonl import dumps, flow_record
from pcapflows.cli.reading import Item, Scan, add_read_arguments, report
from pcapflows.cli.table import Table
from pcapflows.mitmfile import MitmWriter
from pcapflows.model.flow import Flow
from pcapflows.model.tcp import TCPFlow
from pcapflows.output import endpoint, utc

DESCRIPTION = (
    "List the TCP connections of captures, one line each, in the order of their first "
    "packets: index, client -> server, start (UTC), duration, packets and payload bytes "
    "each way, messages, gaps, conflicts and how the connection ended."
)
EXAMPLES = """\
examples:
  pcapflows list captures/demo.pcapng
  pcapflows list captures/demo.pcapng --bytes          # exact byte counts
  pcapflows list captures/demo.pcapng --json           # one JSON object per line
  pcapflows list a.pcap b.pcapng --port 443            # several captures, one filter
  pcapflows list - < capture.pcap                      # standard input
  pcapflows list captures/demo.pcapng -w out.mitm      # and a mitmproxy flow file
  pcapflows list captures/demo.pcapng --http           # HTTP requests, as mitmdump
  pcapflows list captures/demo.pcapng --http -w out.mitm   # then: mitmweb -r out.mitm

endings: fin, reset by client, reset by server, rejected (SYN answered by RST),
no reply (SYN never answered), idle, open at end, port reused, evicted (limit)."""

COLUMNS = (
    "#",
    "client",
    "server",
    "start (UTC)",
    "duration",
    "pkts c>s",
    "pkts s>c",
    "bytes c>s",
    "bytes s>c",
    "msgs",
    "gaps",
    "conflicts",
    "ending",
)
RIGHT = (True, False, False, False, True, True, True, True, True, True, True, True, False)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_read_arguments(parser)
    g = parser.add_argument_group("output")
    g.add_argument("--json", action="store_true", help="one JSON object per line instead")
    g.add_argument(
        "--http",
        action="store_true",
        help="HTTP/1 exchanges instead of connections, one line each as mitmdump lists "
        "them (time, client, method, URL, status, content type, size, duration); "
        "connections that are not HTTP get a TCP line; with -w the file holds HTTP flows",
    )
    g.add_argument(
        "-w",
        "--write",
        metavar="OUT",
        help="also write the flows to a mitmproxy flow file as they finish (- for "
        "standard output, instead of the listing); open it with mitmproxy -r OUT",
    )
    g.add_argument(
        "--bytes", action="store_true", help="exact byte counts instead of 1.3 KiB and the like"
    )


def in_order(items: Iterable[Item]) -> Iterator[tuple[str, TCPFlow]]:
    """Items (finishing order, one capture after the other) re-ordered by index within
    each capture; the connections the filter did not want only mark their index as
    done."""
    for capture, group in groupby(items, key=attrgetter("capture")):
        for flow in in_stream_order((item.stream, item.flow) for item in group):
            if flow is not None:
                yield capture, flow


def row(flow: TCPFlow, exact: bool) -> list[str]:
    meta = flow.metadata["pcapflows"]
    packets, sent = meta["packets"], meta["bytes"]
    end = ending(meta)
    extra = notes(meta)
    return [
        str(meta["stream"]),
        endpoint(flow.client_conn.peername),
        endpoint(flow.server_conn.address),
        utc(flow.client_conn.timestamp_start),
        duration(flow_duration(flow)),
        str(packets["client"]),
        str(packets["server"]),
        size(sent["client"], exact),
        size(sent["server"], exact),
        str(len(flow.messages)),
        str(len(meta["gaps"])),
        str(len(meta["conflicts"])),
        f"{end}, {extra}" if extra else end,
    ]


class _Output:
    """The flow file of ``--write``, created at the first flow (or at the end of a
    capture without any), so that an unreadable capture leaves no file behind."""

    def __init__(self, target: str, http: bool = False) -> None:
        self.target = target
        self.to_stdout = target == "-"
        self.writer: MitmWriter | None = None
        self.http = http
        #: With ``--http``: each connection's flows, converted once for the file and
        #: kept for the listing (by ``id`` of the TCP flow, until listed).
        self.converted: dict[int, list[Flow]] = {}

    def _open(self) -> MitmWriter:
        if self.writer is None:
            try:
                self.writer = MitmWriter(self.target)
            except OSError as exc:
                raise cannot_write(self.target, exc) from exc
        return self.writer

    def add(self, flow: TCPFlow) -> None:
        writer = self._open()
        flows: list[Flow] = [flow]
        if self.http:
            flows = self.converted[id(flow)] = http_flows(flow)
        for f in flows:
            guarded(self.target, writer.add, f)

    def writing(self, items: Iterable[Item]) -> Iterator[Item]:
        """The items, each flow written as it finishes (before the listing's
        re-ordering holds it back)."""
        for item in items:
            if item.flow is not None:
                self.add(item.flow)
            yield item

    def close(self, complete: bool) -> int:
        """Close the file (created now if no flow came and the read went through);
        return how many flows it holds. Closing flushes: it can fail too."""
        if complete:
            self._open()
        if self.writer is None:
            return 0
        guarded(self.target, self.writer.close)
        return self.writer.count


def http_flows(flow: TCPFlow) -> list[Flow]:
    """The connection's HTTP flows (``--http``), imported only when asked for."""
    from pcapflows.http.convert import flows_from_tcp

    return flows_from_tcp(flow)


def run(args: argparse.Namespace) -> int:
    """The listing, and with ``--write`` the flow file (``-``: the file only)."""
    if args.http and args.json:
        raise CliError("--json does nothing with --http (export --format jsonl is TCP only)")
    if args.http and args.bytes:
        raise CliError("--bytes does nothing with --http (sizes are mitmdump's)")
    if args.write is None:
        return _listing(args, Scan(args, args.captures))
    output = _Output(args.write, args.http)
    scan = Scan(args, args.captures)
    complete = False
    try:
        try:
            items = output.writing(scan)
            if output.to_stdout:
                for _ in items:
                    pass
                report(scan)
                code = EXIT_INTERRUPTED if scan.interrupted else EXIT_OK
            else:
                code = _listing(args, scan, items, output.converted)
            complete = True
        finally:
            # An error of standard output on its way to main() is not stopped here.
            count = output.close(complete)
    except WriteFailed as exc:
        raise cannot_write(args.write, exc.error) from exc
    if not output.to_stdout:
        print(f"pcapflows: wrote {count} flows to {args.write}", file=sys.stderr)
    return code


def _listing(
    args: argparse.Namespace,
    scan: Scan,
    items: Iterable[Item] | None = None,
    converted: dict[int, list[Flow]] | None = None,
) -> int:
    several = len(args.captures) > 1
    out = sys.stdout
    items = scan if items is None else items
    if args.http:
        from pcapflows.http.output import http_line

        done = {} if converted is None else converted
        for label, flow in in_order(items):
            flows = done.pop(id(flow), None)
            for f in http_flows(flow) if flows is None else flows:
                print(f"{label}: {http_line(f)}" if several else http_line(f), file=out)
    elif args.json:
        for label, flow in in_order(items):
            print(dumps(flow_record(flow, label, messages=False)), file=out)
    else:
        columns = (
            ("capture", *COLUMNS) if several else COLUMNS,
            (False, *RIGHT) if several else RIGHT,
        )
        table = Table(out, *columns)
        for label, flow in in_order(items):
            cells = row(flow, args.bytes)
            table.add([label, *cells] if several else cells)
        table.close()
    out.flush()
    report(scan)
    return EXIT_INTERRUPTED if scan.interrupted else EXIT_OK
