"""``pcapflows stats``: what is in captures, at a glance.

Totals, flows by server port and by how they ended, top talkers, what was skipped and
why, anomalies, and the limits that cut in. Reads without keeping any payload
(summaries only), so it costs what a listing costs.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter

from pcapflows.cli.describe import ENDINGS, duration, ending, size
from pcapflows.cli.errors import EXIT_INTERRUPTED, EXIT_OK
from pcapflows.cli.reading import Scan, add_read_arguments, report
from pcapflows.output import utc
from pcapflows.stats import PAYLOAD_BUCKETS

DESCRIPTION = (
    "Summarize captures: packets, bytes, flows and time span; flows by server port and "
    "by how they ended; top talkers; frames skipped and why; anomalies (gaps, "
    "conflicts, resets, connections open at the end, damaged records); limits that cut "
    "in. Filters select the flows counted; packet totals are those of the whole capture."
)
EXAMPLES = """\
examples:
  pcapflows stats captures/demo.pcapng
  pcapflows stats captures/*.pcap --top 5
  pcapflows stats big.pcapng --net 10.0.0.0/8 --bytes"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_read_arguments(parser)
    g = parser.add_argument_group("output")
    g.add_argument("--top", type=int, default=10, metavar="N", help="rows in each ranking")
    g.add_argument("--bytes", action="store_true", help="exact byte counts")


def run(args: argparse.Namespace) -> int:
    scan = Scan(args, args.captures, messages=False)
    exact: bool = args.bytes
    ports: Counter[int] = Counter()
    endings: Counter[str] = Counter()
    talkers: Counter[str] = Counter()
    flows = payload = gaps = gap_bytes = conflicts = resets = open_end = 0
    for item in scan:
        flow = item.flow
        if flow is None:
            continue
        meta = flow.metadata["pcapflows"]
        flows += 1
        server = flow.server_conn.address
        if server:
            ports[int(server[1])] += 1
        endings[ending(meta)] += 1
        sent = int(meta["bytes"]["client"]) + int(meta["bytes"]["server"])
        payload += sent
        for addr in (flow.client_conn.peername, server):
            if addr:
                talkers[str(addr[0])] += sent
        gaps += len(meta["gaps"])
        gap_bytes += sum(int(g["length"]) for g in meta["gaps"])
        conflicts += len(meta["conflicts"])
        resets += meta["closed_by"] == "rst"
        open_end += bool(meta["open_at_end"])
    out = sys.stdout
    top: int = max(args.top, 0)
    runs = scan.runs
    packets = sum(r.stats.packets for r in runs)
    segments = sum(r.stats.tcp_segments for r in runs)
    captured = sum(r.stats.bytes for r in runs)
    all_flows = sum(r.stats.flows for r in runs)
    firsts = [r.first_time for r in runs if r.first_time is not None]
    lasts = [r.last_time for r in runs if r.last_time is not None]

    def line(label: str, value: object) -> None:
        print(f"  {label:<22}{value}".rstrip(), file=out)

    print("totals", file=out)
    line("captures", ", ".join(r.label for r in runs))
    line("packets", f"{packets} ({segments} TCP segments), {size(captured, exact)} captured")
    if firsts and lasts:
        first, last = min(firsts), max(lasts)
        line(
            "time (UTC)",
            f"{utc(first)} to {utc(last)} ({duration(last - first)})",
        )
    shown = f"{flows} of {all_flows} selected by the filters" if flows != all_flows else f"{flows}"
    line("flows", shown)
    line("payload", f"{size(payload, exact)} in the flows counted")
    print("flows by server port", file=out)
    for port, n in ports.most_common(top):
        line(str(port), n)
    if not ports:
        line("none", "")
    print("flows by ending", file=out)
    for word in ENDINGS:
        if endings[word]:
            line(word, endings[word])
    print(f"top talkers (payload bytes to and from, top {top})", file=out)
    for host, n in talkers.most_common(top):
        line(host, size(n, exact))
    print("skipped frames", file=out)
    skipped: Counter[str] = Counter()
    for r in runs:
        skipped.update(r.stats.skipped)
    for reason, n in skipped.most_common() or [("none", 0)]:
        line(reason, n if reason != "none" else "")
    print("anomalies", file=out)
    line("gaps", f"{gaps} ({size(gap_bytes, exact)} missing)")
    line("conflicts", conflicts)
    line("resets", resets)
    line("open at end", open_end)
    damaged: Counter[str] = Counter()
    for r in runs:
        damaged.update(r.stats.anomalies)
    line("damaged records", sum(damaged.values()))
    for kind, n in damaged.most_common():
        line(f"  {kind}", n)
    pay: Counter[str] = Counter()
    for r in runs:
        pay.update(r.stats.payload)
    for bucket in PAYLOAD_BUCKETS[1:]:
        if pay[bucket]:
            line(f"payload {bucket.replace('_', ' ')}", size(pay[bucket], exact))
    print("limits that cut in", file=out)
    limits: Counter[str] = Counter()
    for r in runs:
        limits.update(r.stats.limits)
    if not limits:
        line("none", "")
    for name, n in limits.most_common():
        line(name, f"{n} time(s)")
    out.flush()
    report(scan)
    return EXIT_INTERRUPTED if scan.interrupted else EXIT_OK
