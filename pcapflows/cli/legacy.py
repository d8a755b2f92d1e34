"""``pcapflows CAPTURE [options]``: the command without a subcommand.

It is ``pcapflows list CAPTURE [options]``, and the options of the command before
subcommands keep working: ``--follow N [--hex]`` runs ``pcapflows follow CAPTURE N
[--format hex]``, ``-w OUT`` is list's ``-w``, ``--stats`` is ``-v``; options this parser
does not know go on to that subcommand, which checks them. ``-s addon.py`` runs
mitmproxy addon scripts over the capture instead of listing it (mitmproxy's log, the
addons' ``logging`` included, goes to standard error; standard output is the addons'
own).

Exit codes: 0 success; 1 the input could not be read as a capture; 2 bad command line
(``--write`` or ``-s`` with ``--follow``, ``-s`` with ``--write``, ``-s`` without
mitmproxy installed: one line says what to install); 3 the flow asked for with
``--follow`` is not in the capture; 4 the output could not be written (a full disk, a
``--write`` file that cannot be created: one line on standard error); 5 a ``-s`` script
could not be loaded (mitmproxy's error and traceback are printed before); 141 the reader
of the output went away (``pcapflows CAPTURE | head``: quiet, as a shell reports a
command that a closed pipe stopped). Errors are one line on standard error, never a
traceback, except an addon's own error, which mitmproxy prints with the addon's
traceback.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence

from pcapflows import __version__
from pcapflows.cli.errors import (
    EXIT_ADDON,
    EXIT_BAD_INPUT,
    EXIT_OK,
    EXIT_USAGE,
)
from pcapflows.cli.reading import limit_options, print_stats
from pcapflows.errors import CaptureError
from pcapflows.limits import Limits
from pcapflows.stats import ReadStats


def legacy_parser() -> argparse.ArgumentParser:
    from pcapflows.cli import Parser

    p = Parser(
        prog="pcapflows",
        usage="pcapflows CAPTURE [options]",
        description="List the TCP connections of a capture (as 'pcapflows list', whose "
        "options it takes too), follow one, write them, or run mitmproxy addons over them.",
        epilog=(
            "exit codes: 0 ok, 1 input is not a readable capture, 2 bad command line, "
            "3 no such flow, 4 output could not be written, 5 a -s script could not be loaded, "
            "141 output pipe closed"
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
    p.add_argument(
        "-w",
        "--write",
        metavar="OUT",
        help="also write the flows to a mitmproxy flow file (- for standard output, "
        "instead of the listing); open it with mitmproxy -r OUT",
    )
    p.add_argument(
        "-s",
        dest="scripts",
        metavar="SCRIPT",
        action="append",
        help="run this mitmproxy addon script over the capture (repeatable) instead of "
        "listing it; needs pip install 'pcapflows[mitmproxy]'",
    )
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
    p.add_argument(
        "--key-tunnels",
        action="store_true",
        help="tell connections apart by their tunnel too (overlays reusing inner addresses)",
    )
    p.add_argument("--version", action="version", version=f"pcapflows {__version__}")
    return p


def _report(stats: ReadStats, detail: bool) -> None:
    """After a run: one warning line if records were damaged, the details with --stats."""
    if stats.anomalies:
        total = sum(stats.anomalies.values())
        print(
            f"pcapflows: warning: {total} damaged record(s) skipped (--stats for details)",
            file=sys.stderr,
        )
    if detail:
        print_stats(stats)


def run_legacy(argv: Sequence[str]) -> int:
    """Run the command line as it was before subcommands; return its exit code."""
    parser = legacy_parser()
    # What this parser does not know goes on to the subcommand it maps to (list's
    # --bytes, --json, filters, more captures; follow's --format ...), which checks it.
    args, more = parser.parse_known_args(argv)
    if args.hex and args.follow is None:
        parser.error("--hex does nothing without --follow")
    options = limit_options(args)
    try:
        limits = Limits(**options)
    except ValueError as exc:
        parser.error(str(exc))
    if args.write is not None and args.follow is not None:
        print("pcapflows: error: --write and --follow cannot be combined", file=sys.stderr)
        return EXIT_USAGE
    if not args.scripts:
        # ``pcapflows CAPTURE`` is ``pcapflows list CAPTURE`` (and -w its -w);
        # ``--follow N [--hex]`` is ``pcapflows follow CAPTURE N [--format hex]``;
        # --stats is their -v. Rebuilt from the parsed options, so that every
        # spelling argparse accepts (--follow=N, abbreviations) maps alike.
        from pcapflows.cli import run_subcommand

        common = [f"--{k.replace('_', '-')}={v}" for k, v in options.items()]
        common += ["--key-tunnels"] * args.key_tunnels + ["-v"] * args.stats
        if args.follow is None:
            write = [] if args.write is None else [f"--write={args.write}"]
            return run_subcommand("list", [args.capture, *common, *write, *more])
        fmt = ["--format=hex"] if args.hex else []
        return run_subcommand("follow", [args.capture, str(args.follow), *common, *fmt, *more])
    if more:
        parser.error(f"unrecognized arguments: {' '.join(more)}")
    if args.follow is not None:
        parser.error("-s and --follow cannot be combined")
    if args.write is not None:
        parser.error("-s and --write cannot be combined (write the flows in an addon)")
    return _run_scripts(args, limits)


def _run_scripts(args: argparse.Namespace, limits: Limits) -> int:
    """``-s``: the scripts run over the capture with mitmproxy's machinery
    (:func:`pcapflows.replay`), as ``mitmdump -s`` would run them on live traffic.

    mitmproxy's log goes to standard error, as one stream with ours; an exception in
    a hook is logged there and the replay goes on (exit 0, as mitmdump), with a
    one-line count at the end.
    """
    from pcapflows.errors import AddonError, MitmproxyMissing
    from pcapflows.mitmproxy_bridge import replay, require_mitmproxy

    try:
        require_mitmproxy()
    except MitmproxyMissing as exc:
        print(f"pcapflows: error: -s: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = replay(
                args.capture,
                scripts=args.scripts,
                limits=limits,
                key_tunnels=args.key_tunnels,
                warn=False,
                log=sys.stderr,
            )
    except CaptureError as exc:
        print(f"pcapflows: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except AddonError as exc:
        print(f"pcapflows: error: {exc}", file=sys.stderr)
        return EXIT_ADDON
    if result.errors_logged:
        print(
            f"pcapflows: warning: {result.errors_logged} error(s) logged while the addons ran",
            file=sys.stderr,
        )
    _report(result.stats, args.stats)
    return EXIT_OK
