"""The ``pcapflows`` command (also ``python -m pcapflows``).

``pcapflows CAPTURE`` lists the TCP flows of a capture, one line each;
``pcapflows CAPTURE --follow N`` prints flow N like Wireshark's Follow TCP Stream.

Exit codes: 0 success; 1 the input could not be read as a capture; 2 bad command line;
3 the flow asked for with ``--follow`` is not in the capture. Errors are one line on
standard error, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence

from pcapflows import __version__
from pcapflows.api import read
from pcapflows.errors import CaptureError
from pcapflows.output import follow_lines, summary_line
from pcapflows.stats import ReadStats

EXIT_OK = 0
EXIT_BAD_INPUT = 1
EXIT_USAGE = 2
EXIT_NO_SUCH_FLOW = 3


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pcapflows",
        description="Reassemble the TCP conversations of a pcap or pcapng capture.",
        epilog=(
            "exit codes: 0 ok, 1 input is not a readable capture, 2 bad command line, "
            "3 no such flow"
        ),
    )
    p.add_argument("capture", help="pcap or pcapng file (gzip allowed), or - for stdin")
    p.add_argument(
        "--follow",
        metavar="N",
        type=int,
        help="print the messages of flow N (the index in the listing)",
    )
    p.add_argument("--hex", action="store_true", help="with --follow: always show hex dumps")
    p.add_argument("--stats", action="store_true", help="print what was read and skipped to stderr")
    limits = p.add_argument_group("limits (defaults as in the library; see the README)")
    limits.add_argument(
        "--idle-timeout", type=float, metavar="S", help="close a connection idle this long"
    )
    limits.add_argument("--max-connections", type=int, metavar="N", help="connections open at once")
    limits.add_argument(
        "--max-buffer", type=int, metavar="BYTES", help="bytes held above a hole, per direction"
    )
    limits.add_argument(
        "--max-total-buffer", type=int, metavar="BYTES", help="bytes held above holes, in all"
    )
    p.add_argument("--version", action="version", version=f"pcapflows {__version__}")
    return p


def _print_stats(stats: ReadStats) -> None:
    err = sys.stderr
    print(
        f"packets {stats.packets}, tcp segments {stats.tcp_segments}, flows {stats.flows}",
        file=err,
    )
    for reason, n in stats.skipped.most_common():
        print(f"skipped {n}: {reason}", file=err)
    for kind, n in stats.anomalies.most_common():
        print(f"damaged {n}: {kind}", file=err)
    for detail in stats.anomaly_details[:20]:
        print(f"  {detail}", file=err)
    for limit, n in stats.limits.most_common():
        print(f"limit {limit} cut in {n} time(s)", file=err)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; return its exit code (also used as the process exit code)."""
    args = _parser().parse_args(argv)
    try:
        options = {
            name: value
            for name in ("idle_timeout", "max_connections", "max_buffer", "max_total_buffer")
            if (value := getattr(args, name)) is not None
        }
        reader = read(args.capture, order="first_packet", warn=False, **options)
    except CaptureError as exc:
        print(f"pcapflows: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    out = sys.stdout
    code = EXIT_OK
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if args.follow is None:
                for flow in reader:
                    print(summary_line(flow), file=out)
            else:
                found = False
                for flow in reader:
                    if flow.metadata["pcapflows"]["stream"] == args.follow:
                        for line in follow_lines(flow, force_hex=args.hex):
                            print(line, file=out)
                        found = True
                        reader.close()
                        break
                if not found:
                    print(
                        f"pcapflows: error: no flow {args.follow} in {args.capture} "
                        f"({reader.stats.flows} flows)",
                        file=sys.stderr,
                    )
                    code = EXIT_NO_SUCH_FLOW
    except BrokenPipeError:
        # Output piped into head or less that quit early: not an error.
        sys.stderr.close()
        return EXIT_OK
    if reader.stats.anomalies:
        total = sum(reader.stats.anomalies.values())
        print(
            f"pcapflows: warning: {total} damaged record(s) skipped (--stats for details)",
            file=sys.stderr,
        )
    if args.stats:
        _print_stats(reader.stats)
    return code
