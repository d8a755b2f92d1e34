"""``pcapflows list``: one line per TCP connection, in the order of first packets.

A table with a header row, or ``--json`` for one JSON object per line (the schema of
``export --format jsonl``, without the payload).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Iterator

from pcapflows.cli.describe import duration, ending, endpoint, flow_duration, notes, size, utc
from pcapflows.cli.errors import EXIT_INTERRUPTED, EXIT_OK
from pcapflows.cli.jsonl import dumps, flow_record
from pcapflows.cli.reading import Item, Scan, add_read_arguments, report
from pcapflows.cli.table import Table
from pcapflows.model.tcp import TCPFlow

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
        "--bytes", action="store_true", help="exact byte counts instead of 1.3 KiB and the like"
    )


def in_order(items: Iterable[Item]) -> Iterator[tuple[str, TCPFlow]]:
    """Items (finishing order) re-ordered by index within each capture; the connections
    the filter did not want only mark their index as done."""
    waiting: dict[int, TCPFlow | None] = {}
    want = 0
    current: str | None = None
    for item in items:
        if item.capture != current:
            for k in sorted(waiting):
                f = waiting[k]
                if f is not None and current is not None:
                    yield current, f
            waiting, want, current = {}, 0, item.capture
        waiting[item.stream] = item.flow
        while want in waiting:
            f = waiting.pop(want)
            if f is not None:
                yield current, f
            want += 1
    if current is not None:
        for k in sorted(waiting):
            f = waiting[k]
            if f is not None:
                yield current, f


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


def run(args: argparse.Namespace) -> int:
    scan = Scan(args, args.captures)
    several = len(args.captures) > 1
    out = sys.stdout
    if args.json:
        for label, flow in in_order(scan):
            print(dumps(flow_record(flow, label, messages=False)), file=out)
    else:
        columns = (
            ("capture", *COLUMNS) if several else COLUMNS,
            (False, *RIGHT) if several else RIGHT,
        )
        table = Table(out, *columns)
        for label, flow in in_order(scan):
            cells = row(flow, args.bytes)
            table.add([label, *cells] if several else cells)
        table.close()
    out.flush()
    report(scan)
    return EXIT_INTERRUPTED if scan.interrupted else EXIT_OK
