"""``pcapflows export``: the flows of captures as JSON lines, a mitmproxy flow file, or
a directory of files, one per direction of each connection (as tcpflow writes them).

Flows are written as their connections finish, so an export holds only the
connections open at once, never the whole capture.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from pcapflows.cli.describe import ending
from pcapflows.cli.errors import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    CliError,
    WriteFailed,
    cannot_write,
    guarded,
)
from pcapflows.cli.jsonl import dumps, flow_record
from pcapflows.cli.reading import Scan, add_read_arguments, report
from pcapflows.model.tcp import TCPFlow
from pcapflows.output import endpoint

DESCRIPTION = (
    "Write the TCP flows of captures as JSON lines (one flow per line, payload in "
    "base64, all metadata; schema in the package: pcapflows/cli/flow-1.schema.json), "
    "as a mitmproxy flow file (mitmproxy -r OUT), or as a directory with one file per "
    "direction of each connection, named as tcpflow names them, and an index."
)
EXAMPLES = """\
examples:
  pcapflows export captures/demo.pcapng --format jsonl -o flows.jsonl
  pcapflows export captures/demo.pcapng --format jsonl -o - | jq .ending
  pcapflows export captures/demo.pcapng --format mitm -o demo.mitm   # mitmproxy -r demo.mitm
  pcapflows export captures/demo.pcapng --format dir -o demo-flows
  pcapflows export a.pcap b.pcap --port 80 --format jsonl -o web.jsonl

dir: OUT/192.168.001.023.52114-203.000.113.080.00080 holds what the client sent,
OUT/203.000.113.080.00080-192.168.001.023.52114 what the server sent (c1, c2, ...
appended when the same addresses and ports are used again), only the captured bytes
(a gap is not filled: OUT/index.tsv lists each gap with its offsets)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_read_arguments(parser)
    g = parser.add_argument_group("output")
    g.add_argument(
        "--format",
        required=True,
        choices=("jsonl", "mitm", "dir"),
        help="jsonl: JSON lines; mitm: a mitmproxy flow file; dir: files as tcpflow's",
    )
    g.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUT",
        help="the file (- for standard output, jsonl and mitm) or the directory (dir: "
        "created, or an empty one)",
    )


def run(args: argparse.Namespace) -> int:
    scan = Scan(args, args.captures)
    target: str = args.output
    if args.format == "dir" and target == "-":
        raise CliError("--format dir writes a directory: give its name with -o")
    try:
        if args.format == "jsonl":
            count = _jsonl(scan, target)
        elif args.format == "mitm":
            count = _mitm(scan, target)
        else:
            count = _dir(scan, Path(target))
    except WriteFailed as exc:
        scan.close()
        raise cannot_write(target, exc.error) from exc
    if target != "-" and not args.quiet:
        print(f"pcapflows: wrote {count} flows to {target}", file=sys.stderr)
    report(scan)
    return EXIT_INTERRUPTED if scan.interrupted else EXIT_OK


def _flows(scan: Scan) -> Iterator[tuple[str, TCPFlow]]:
    for item in scan:
        if item.flow is not None:
            yield item.capture, item.flow


def _open(target: str, binary: bool) -> IO[Any]:
    if target == "-":
        return sys.stdout.buffer if binary else sys.stdout
    return guarded(
        target, lambda: open(target, "wb" if binary else "w", encoding=None if binary else "utf-8")
    )


def _jsonl(scan: Scan, target: str) -> int:
    out = _open(target, binary=False)
    count = 0
    try:
        for label, flow in _flows(scan):
            line = dumps(flow_record(flow, label)) + "\n"
            guarded(target, out.write, line)
            count += 1
    finally:
        if target != "-":
            guarded(target, out.close)
    return count


def _mitm(scan: Scan, target: str) -> int:
    from pcapflows.mitmfile import MitmWriter

    writer = guarded(target, MitmWriter, target)
    try:
        for _, flow in _flows(scan):
            guarded(target, writer.add, flow)
    finally:
        guarded(target, writer.close)
    return writer.count


def tcpflow_name(addr: Any) -> str:
    """An endpoint as tcpflow names it: IPv4 with each number zero-padded to three
    digits, IPv6 in its compressed form, then a dot and the port in five digits."""
    host, port = str(addr[0]), int(addr[1])
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if isinstance(ip, ipaddress.IPv4Address):
        host = ".".join(f"{int(part):03d}" for part in host.split("."))
    return f"{host}.{port:05d}"


INDEX_COLUMNS = (
    "capture",
    "index",
    "client",
    "server",
    "start",
    "ending",
    "client_file",
    "client_bytes",
    "server_file",
    "server_bytes",
    "gaps",
)


def _dir(scan: Scan, out: Path) -> int:
    """One file per direction with payload, and ``index.tsv``."""
    try:
        if out.exists():
            if not out.is_dir():
                raise CliError(f"{out} exists and is not a directory")
            if any(out.iterdir()):
                raise CliError(f"{out} is not empty: give a new or an empty directory")
        else:
            out.mkdir(parents=True)
        index = open(out / "index.tsv", "w", encoding="utf-8")
    except OSError as exc:
        raise WriteFailed(exc) from None
    used: dict[str, int] = {}
    count = 0
    try:
        index.write("\t".join(INDEX_COLUMNS) + "\n")
        for label, flow in _flows(scan):
            meta = flow.metadata["pcapflows"]
            client = tcpflow_name(flow.client_conn.peername)
            server = tcpflow_name(flow.server_conn.address)
            pair = f"{client}-{server}"
            seen = used.get(pair, 0)
            used[pair] = seen + 1
            suffix = f"c{seen}" if seen else ""
            names = {True: f"{client}-{server}{suffix}", False: f"{server}-{client}{suffix}"}
            written = {True: 0, False: 0}
            files: dict[bool, IO[bytes]] = {}
            try:
                for m in flow.messages:
                    f = files.get(m.from_client)
                    if f is None:
                        f = files[m.from_client] = open(out / names[m.from_client], "wb")
                    f.write(m.content)
                    written[m.from_client] += len(m.content)
            finally:
                for f in files.values():
                    f.close()
            gaps = ";".join(
                f"{'client' if g['from_client'] else 'server'}@{g['offset']}+{g['length']}"
                for g in meta["gaps"]
            )
            index.write(
                "\t".join(
                    [
                        label,
                        str(meta["stream"]),
                        endpoint(flow.client_conn.peername),
                        endpoint(flow.server_conn.address),
                        repr(flow.client_conn.timestamp_start),
                        ending(meta),
                        names[True] if written[True] else "",
                        str(written[True]),
                        names[False] if written[False] else "",
                        str(written[False]),
                        gaps,
                    ]
                )
                + "\n"
            )
            count += 1
    except OSError as exc:
        raise WriteFailed(exc) from None
    finally:
        try:
            index.close()
        except OSError as exc:
            raise WriteFailed(exc) from None
    return count
