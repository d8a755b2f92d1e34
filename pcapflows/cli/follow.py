"""``pcapflows follow``: one conversation, as Wireshark's Follow TCP Stream shows it.

The flow is named by its index or by its endpoints; the capture is read once, and the
read stops as soon as that connection has finished. Gaps and conflicts are shown
where they are, as annotations in brackets: a missing byte is never shown as a byte.
"""

from __future__ import annotations

import argparse
import sys

from pcapflows.cli import colour
from pcapflows.cli.errors import EXIT_INTERRUPTED, EXIT_NO_SUCH_FLOW, EXIT_OK, CliError
from pcapflows.cli.filters import filter_from, parse_flow
from pcapflows.cli.jsonl import dumps, flow_record
from pcapflows.cli.reading import Scan, add_read_arguments, report
from pcapflows.cli.views import view
from pcapflows.model.tcp import TCPFlow

DESCRIPTION = (
    "Print one TCP conversation of a capture, both directions in order, like "
    "Wireshark's Follow TCP Stream: text where it is text, a hex dump otherwise, gaps "
    "and conflicts as annotations. The capture is read once and the read stops when "
    "the connection has finished."
)
EXAMPLES = """\
examples:
  pcapflows follow captures/demo.pcapng 2
  pcapflows follow captures/demo.pcapng 192.168.1.23:52118-203.0.113.80:80
  pcapflows follow captures/demo.pcapng [2001:db8:1::23]:52116-[2001:db8:2::80]:80
  pcapflows follow captures/demo.pcapng 2 --format hex --max-bytes 4096
  pcapflows follow captures/demo.pcapng 2 --format raw --side server > body.bin
  pcapflows follow captures/demo.pcapng 2 --format json | jq .messages
  pcapflows follow captures/demo.pcapng 2 --http       # requests and responses

FLOW is the index 'pcapflows list' shows, or client:port-server:port (either order;
IPv6 addresses in brackets); with a 4-tuple that repeats, the first connection."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("capture", metavar="CAPTURE", help="pcap or pcapng file, - for stdin")
    parser.add_argument(
        "flow", metavar="FLOW", help="index, or client:port-server:port ([IPv6]:port)"
    )
    g = parser.add_argument_group("output")
    g.add_argument(
        "--format",
        choices=("text", "hex", "raw", "json"),
        default="text",
        help="text: text where it is text, hex dumps otherwise; hex: hex dumps only; raw: "
        "the bytes of one side (--side) unchanged; json: one JSON object (the export "
        "schema)",
    )
    g.add_argument(
        "--http",
        action="store_true",
        help="the connection's HTTP/1 exchanges: each request and response with its "
        "start line, headers and body (decoded; text, or a hex dump; --max-bytes per body)",
    )
    g.add_argument(
        "--side",
        choices=("client", "server"),
        help="only what this side sent (required with --format raw)",
    )
    g.add_argument(
        "--max-bytes", type=int, metavar="N", help="show at most N payload bytes, then stop"
    )
    g.add_argument(
        "--color",
        nargs="?",
        const="always",
        default="auto",
        choices=("auto", "always", "never"),
        help="colour the two directions: auto on a terminal only, --color alone forces it",
    )
    add_read_arguments(parser, many=False)


def run(args: argparse.Namespace) -> int:
    if args.format == "raw" and args.side is None:
        raise CliError("--format raw needs --side client or --side server")
    if args.color == "always" and args.format in ("raw", "json"):
        raise CliError(f"--color does nothing with --format {args.format}")
    if args.max_bytes is not None and args.max_bytes < 0:
        raise CliError("--max-bytes must be 0 or more")
    if args.http and args.format in ("raw", "json"):
        raise CliError(f"--format {args.format} does nothing with --http (text or hex)")
    if args.http and args.side is not None:
        raise CliError("--side does nothing with --http (an exchange has both sides)")
    spec = parse_flow(args.flow)
    flt = filter_from(args)
    flt.flows.append(spec)
    scan = Scan(args, [args.capture], flow_filter=flt)
    found: TCPFlow | None = None
    items = iter(scan)
    try:
        for item in items:
            if item.flow is not None:
                found = item.flow
                break
    finally:
        # Closing the scan's generator runs its end (the read's counts for -v, the
        # SIGINT handler put back); the scan itself, for a generator never started.
        items.close()
        scan.close()
    if found is None:
        report(scan)
        if scan.interrupted:
            return EXIT_INTERRUPTED
        flows = sum(r.stats.flows for r in scan.runs)
        raise CliError(f"no flow {args.flow} in {args.capture} ({flows} flows)", EXIT_NO_SUCH_FLOW)
    side = None if args.side is None else args.side == "client"
    if args.format == "json":
        record = flow_record(found, scan.runs[0].label, max_bytes=args.max_bytes, side=side)
        print(dumps(record))
    elif args.format == "raw":
        _raw(found, side is True, args.max_bytes, args.quiet)
    elif args.http:
        from pcapflows.cli.follow_http import http_view

        on = colour.wanted(args.color, sys.stdout)
        for line in http_view(
            found, hex_only=args.format == "hex", max_bytes=args.max_bytes, colour_on=on
        ):
            print(line)
    else:
        on = colour.wanted(args.color, sys.stdout)
        for line in view(
            found, hex_only=args.format == "hex", side=side, max_bytes=args.max_bytes, colour_on=on
        ):
            print(line)
    report(scan)
    return EXIT_INTERRUPTED if scan.interrupted else EXIT_OK


def _raw(flow: TCPFlow, client: bool, max_bytes: int | None, quiet: bool) -> None:
    """The bytes one side sent, unchanged, to standard output (binary)."""
    out = sys.stdout.buffer
    left = max_bytes
    for m in flow.messages:
        if m.from_client != client:
            continue
        data = m.content
        if left is not None:
            data = data[:left]
            left -= len(data)
        out.write(data)
        if left == 0:
            break
    out.flush()
    who = "client" if client else "server"
    gaps = [g for g in flow.metadata["pcapflows"]["gaps"] if g["from_client"] == client]
    if gaps and not quiet:
        missing = sum(g["length"] for g in gaps)
        print(
            f"pcapflows: warning: {len(gaps)} gap(s) in the {who}'s bytes ({missing} bytes "
            "missing in the capture): written without them, nothing filled in",
            file=sys.stderr,
        )
