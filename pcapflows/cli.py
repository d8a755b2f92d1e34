"""The ``pcapflows`` command (also ``python -m pcapflows``).

``pcapflows CAPTURE`` lists the TCP flows of a capture, one line each;
``pcapflows CAPTURE --follow N`` prints flow N like Wireshark's Follow TCP Stream;
``pcapflows CAPTURE -w OUT`` also writes every flow to a mitmproxy flow file as the
capture finishes it (``-w -``: to standard output instead of the listing, for
``pcapflows CAPTURE -w - | mitmdump -nr -``), and says on standard error how many;
``pcapflows CAPTURE -s addon.py`` runs mitmproxy addon scripts over the capture instead
of listing it (mitmproxy's log, the addons' ``logging`` included, goes to standard
error; standard output is the addons' own).

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
import io
import os
import sys
import warnings
from collections.abc import Iterator, Sequence

from pcapflows import __version__
from pcapflows.api import FlowReader, in_stream_order, read
from pcapflows.errors import CaptureError
from pcapflows.limits import Limits
from pcapflows.mitmfile import MitmWriter
from pcapflows.output import follow_lines, summary_line
from pcapflows.stats import PAYLOAD_BUCKETS, ReadStats

EXIT_OK = 0
EXIT_BAD_INPUT = 1
EXIT_USAGE = 2
EXIT_NO_SUCH_FLOW = 3
EXIT_OUTPUT = 4
EXIT_ADDON = 5
#: 128 + SIGPIPE (13): what a shell reports for a command stopped by a closed pipe, as
#: ``seq 1000000 | head`` stops; written out because Windows has no SIGPIPE.
EXIT_BROKEN_PIPE = 141


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pcapflows",
        description="Reassemble the TCP conversations of a pcap or pcapng capture.",
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
    pay = stats.payload
    if pay:
        where = ", ".join(f"{k} {pay[k]}" for k in PAYLOAD_BUCKETS if pay[k])
        print(f"payload bytes {pay['captured']}: {where or 'none'}", file=err)
    for what, n in stats.implausible.most_common():
        print(f"implausible {what} not believed: {n}", file=err)


def _report(stats: ReadStats, detail: bool) -> None:
    """After a run: one warning line if records were damaged, the details with --stats."""
    if stats.anomalies:
        total = sum(stats.anomalies.values())
        print(
            f"pcapflows: warning: {total} damaged record(s) skipped (--stats for details)",
            file=sys.stderr,
        )
    if detail:
        _print_stats(stats)


def _detach_stdout() -> None:
    """Point standard output at the null device after a write to it failed.

    What could not be written stays in Python's buffer, and the interpreter flushes it
    again at exit: into a closed pipe or a full disk, that prints "Exception ignored"
    with a traceback after we have exited cleanly. The null device swallows it.
    """
    try:
        fd = sys.stdout.fileno()
        null = os.open(os.devnull, os.O_WRONLY)
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return  # not a real file (an in-process caller's StringIO): nothing at exit
    try:
        os.dup2(null, fd)
    except OSError:
        pass
    finally:
        os.close(null)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; return its exit code (also used as the process exit code).

    Writing the output can fail: the disk is full (a one-line error, exit 4) or the
    reader of a pipe went away (quietly, exit 141). The output is flushed here, inside
    the guard, so that neither failure is left for the interpreter's exit to report.
    """
    args_given = list(sys.argv[1:] if argv is None else argv)
    if args_given[:1] == ["convert"]:
        # ``pcapflows convert``: its own parser (pcapflows/convert.py) until the command
        # line has subcommands.
        from pcapflows.convert import main as convert_main

        try:
            code = convert_main(args_given[1:])
            if sys.stdout is not None:
                sys.stdout.flush()
        except BrokenPipeError:
            _detach_stdout()
            return EXIT_BROKEN_PIPE
        return code
    try:
        try:
            code = _run(argv)
        except SystemExit as exc:  # argparse's --help, --version and usage errors
            code = exc.code if isinstance(exc.code, int) else EXIT_USAGE if exc.code else 0
        if sys.stdout is not None:
            sys.stdout.flush()
    except BrokenPipeError:
        _detach_stdout()
        return EXIT_BROKEN_PIPE
    except OSError as exc:
        _detach_stdout()
        try:
            print(f"pcapflows: error: cannot write output: {exc.strerror or exc}", file=sys.stderr)
        except OSError:
            pass  # standard error is gone too: the exit code still says it
        return EXIT_OUTPUT
    return code


def _write(reader: FlowReader, target: str) -> int:
    """``--write``: every flow to a flow file as it finishes, and the listing too unless
    the flow file is standard output (then nothing else may go there).

    The writer's own errors (a full disk) name the file and exit 4 here; with ``-``
    they are standard output's errors, which :func:`main` handles (a closed pipe).
    """
    to_stdout = target == "-"
    try:
        writer = MitmWriter(target)
    except OSError as exc:
        print(f"pcapflows: error: cannot write {target}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_OUTPUT

    def written() -> Iterator[tuple[int, str]]:
        for flow in reader:
            if to_stdout:
                writer.add(flow)
            else:
                try:
                    writer.add(flow)
                except OSError as exc:
                    raise _WriteFailed(exc) from exc
            yield flow.metadata["pcapflows"]["stream"], summary_line(flow)

    failed: OSError | None = None
    try:
        if to_stdout:
            for _ in written():
                pass
        else:
            for line in in_stream_order(written()):
                print(line, file=sys.stdout)
    except _WriteFailed as exc:
        failed = exc.error
    finally:
        # Closing flushes what is still buffered: it can fail too (a full disk). An
        # error of standard output on its way to main() is not stopped here.
        try:
            writer.close()
        except OSError as exc:
            failed = failed or exc
    if failed is not None:
        if to_stdout:
            raise failed
        why = failed.strerror or failed
        print(f"pcapflows: error: cannot write {target}: {why}", file=sys.stderr)
        return EXIT_OUTPUT
    if not to_stdout:
        print(f"pcapflows: wrote {writer.count} flows to {target}", file=sys.stderr)
    return EXIT_OK


class _WriteFailed(Exception):
    """An OSError of the flow file, told apart from one of standard output."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


def _run(argv: Sequence[str] | None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    options = {
        name: value
        for name in ("idle_timeout", "max_connections", "max_buffer", "max_total_buffer")
        if (value := getattr(args, name)) is not None
    }
    try:
        limits = Limits(**options)
    except ValueError as exc:
        parser.error(str(exc))
    if args.write is not None and args.follow is not None:
        print("pcapflows: error: --write and --follow cannot be combined", file=sys.stderr)
        return EXIT_USAGE
    if args.scripts:
        if args.follow is not None:
            parser.error("-s and --follow cannot be combined")
        if args.write is not None:
            parser.error("-s and --write cannot be combined (write the flows in an addon)")
        return _run_scripts(args, limits)
    try:
        # Finishing order: the listing re-orders one line per flow (never the flows
        # and their payload), and --follow stops as soon as its flow is complete.
        reader = read(args.capture, warn=False, limits=limits, key_tunnels=args.key_tunnels)
    except CaptureError as exc:
        print(f"pcapflows: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    out = sys.stdout
    code = EXIT_OK
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if args.write is not None:
                code = _write(reader, args.write)
            elif args.follow is None:
                lines = ((f.metadata["pcapflows"]["stream"], summary_line(f)) for f in reader)
                for line in in_stream_order(lines):
                    print(line, file=out)
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
    finally:
        reader.close()
    _report(reader.stats, args.stats)
    return code


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
