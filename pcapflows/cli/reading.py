"""Reading captures for the subcommands: filters applied while reading, progress,
Ctrl-C, and the summary of what went wrong.

The loop is :func:`pcapflows.read`'s pipeline (capture reader, decoder, assembler,
flow builder) written out here, for three things ``read()`` does not offer:

* **Filters decided at the first packet.** The assembler announces each connection
  (``announce=True``: an :class:`~pcapflows.reassembly.events.Opened` event with its
  index, endpoints and time); a connection the filter does not want never reaches the
  flow builder, so none of its payload is kept. Every connection still goes through
  the assembler, so indices are those of the whole capture (tshark's ``tcp.stream``)
  whatever the filter: ``list --port 443`` and ``follow CAPTURE 17`` name the same
  flow 17.
* **Progress**: the share of the file read, from the position of the file object we
  opened ourselves.
* **Ctrl-C**: the signal only sets a flag, checked between packets, so the assembler
  is never interrupted half-way through a segment; the connections still open are then
  finished as if the capture had ended there (``open at end``) and handed out, so the
  command prints what was found so far and exits 130.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, BinaryIO

from pcapflows.api import copy_counts
from pcapflows.cli.errors import EXIT_BAD_INPUT, CliError
from pcapflows.cli.filters import FlowFilter, add_filter_arguments, filter_from
from pcapflows.cli.progress import Progress
from pcapflows.decode.decoder import Decoder
from pcapflows.errors import CaptureError
from pcapflows.io.reader import CaptureReader
from pcapflows.limits import (
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_BUFFER,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_TOTAL_BUFFER,
    Limits,
)
from pcapflows.model.build import FlowBuilder
from pcapflows.model.tcp import TCPFlow
from pcapflows.reassembly.assembler import Assembler
from pcapflows.reassembly.events import Closed, Opened
from pcapflows.stats import PAYLOAD_BUCKETS, ReadStats

#: Packets between two looks at the Ctrl-C flag and the progress line: cheap enough
#: to vanish in the per-packet cost, often enough to answer within milliseconds.
CHECK_EVERY = 256


def add_read_arguments(parser: argparse.ArgumentParser, *, many: bool = True) -> None:
    """Captures, filters, limits and the verbosity options every subcommand takes."""
    if many:
        parser.add_argument(
            "captures",
            nargs="+",
            metavar="CAPTURE",
            help="pcap or pcapng files (gzip allowed), - for standard input; flows of "
            "several captures are labelled by file",
        )
    add_filter_arguments(parser)
    limits = parser.add_argument_group("limits")
    limits.add_argument(
        "--idle-timeout",
        type=float,
        metavar="S",
        help=f"close a connection idle this long, capture time (default: {DEFAULT_IDLE_TIMEOUT:g})",
    )
    limits.add_argument(
        "--max-connections",
        type=int,
        metavar="N",
        help=f"connections open at once (default: {DEFAULT_MAX_CONNECTIONS})",
    )
    limits.add_argument(
        "--max-buffer",
        type=int,
        metavar="BYTES",
        help=f"bytes held above a hole, per direction (default: {DEFAULT_MAX_BUFFER})",
    )
    limits.add_argument(
        "--max-total-buffer",
        type=int,
        metavar="BYTES",
        help=f"bytes held above holes, in all (default: {DEFAULT_MAX_TOTAL_BUFFER})",
    )
    limits.add_argument(
        "--key-tunnels",
        action="store_true",
        help="tell connections apart by their tunnel too (overlays reusing inner addresses)",
    )
    out = parser.add_argument_group("messages")
    out.add_argument("-q", "--quiet", action="store_true", help="no progress line, no warning line")
    out.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="after the run, what was read, skipped and damaged (standard error)",
    )


def limit_options(args: argparse.Namespace) -> dict[str, Any]:
    """The limits given on the command line, by ``Limits`` field name."""
    return {
        name: value
        for name in ("idle_timeout", "max_connections", "max_buffer", "max_total_buffer")
        if (value := getattr(args, name)) is not None
    }


def limits_from(args: argparse.Namespace) -> Limits:
    try:
        return Limits(**limit_options(args))
    except ValueError as exc:
        raise CliError(str(exc)) from None


@dataclass
class Item:
    """One connection finished: its index and, if the filter wanted it, its flow."""

    capture: str
    stream: int
    flow: TCPFlow | None


@dataclass
class CaptureRun:
    """What was learnt about one capture while reading it."""

    label: str
    stats: ReadStats = field(default_factory=ReadStats)
    first_time: float | None = None
    last_time: float | None = None
    #: The read stopped before the end (Ctrl-C): bytes read of the total, if known.
    interrupted: bool = False
    done_bytes: int = 0
    total_bytes: int | None = None


class _Interrupt:
    """Ctrl-C as a flag: the first SIGINT asks the read to stop at the next check; a
    second one interrupts at once (Python's default), for a read that seems stuck."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Callable[[int, FrameType | None], object] | int | None = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def __enter__(self) -> _Interrupt:
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread (an in-process caller): no handler
            self._previous = None
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


class Scan:
    """Reads the captures one after the other with the command's filter and limits.

    Iterating yields an :class:`Item` per connection as it finishes (the flow is None
    for connections the filter does not want, so that a caller re-ordering by index
    knows that index is done). ``runs`` has one :class:`CaptureRun` per capture read so
    far; ``interrupted`` is set once Ctrl-C stopped the read.
    """

    def __init__(
        self,
        args: argparse.Namespace,
        captures: list[str],
        *,
        messages: bool = True,
        flow_filter: FlowFilter | None = None,
    ) -> None:
        self.captures = captures
        self.filter = flow_filter if flow_filter is not None else filter_from(args)
        self.limits = limits_from(args)
        self.key_tunnels: bool = args.key_tunnels
        self.messages = messages
        self.quiet: bool = args.quiet
        self.verbose: bool = args.verbose
        self.runs: list[CaptureRun] = []
        self.interrupted = False
        self._interrupt = _Interrupt()
        self._opened: list[tuple[CaptureReader, BinaryIO | None, int | None]] = []
        # Open every capture first: a missing file or one that is not a capture is an
        # error before anything is printed.
        for name in captures:
            self._opened.append(self._open(name))

    def _open(self, name: str) -> tuple[CaptureReader, BinaryIO | None, int | None]:
        stats = ReadStats()
        f: BinaryIO | None = None
        total: int | None = None
        source: object = name
        if name != "-":
            try:
                f = open(name, "rb")
            except OSError as exc:
                raise CliError(
                    f"{name}: cannot open: {exc.strerror or exc}", EXIT_BAD_INPUT
                ) from None
            try:
                total = os.fstat(f.fileno()).st_size or None
            except OSError:
                total = None
            source = f
        try:
            reader = CaptureReader(source, stats)  # type: ignore[arg-type]
        except CaptureError as exc:
            if f is not None:
                f.close()
            raise CliError(str(exc), EXIT_BAD_INPUT) from None
        return reader, f, total

    def __iter__(self) -> Generator[Item, None, None]:
        with self._interrupt:
            try:
                for name, (reader, f, total) in zip(self.captures, self._opened, strict=True):
                    label = "<stdin>" if name == "-" else name
                    if self.interrupted:
                        break
                    yield from self._one(label, reader, f, total)
            finally:
                self.close()

    def close(self) -> None:
        """Release every capture (also those not read yet)."""
        for reader, f, _ in self._opened:
            reader.close()
            if f is not None:
                f.close()

    def _one(
        self, label: str, reader: CaptureReader, f: BinaryIO | None, total: int | None
    ) -> Iterator[Item]:
        run = CaptureRun(label, stats=reader.stats, total_bytes=total)
        self.runs.append(run)
        stats = run.stats
        decoder = Decoder(stats, max_fragment_bytes=self.limits.max_fragment_bytes)
        assembler = Assembler(self.limits, key_tunnels=self.key_tunnels, announce=True)
        builder = FlowBuilder(messages=self.messages)
        wanted: dict[int, bool] = {}
        streams: dict[int, int] = {}
        flt = self.filter
        everything = flt.empty
        progress = None
        if not self.quiet and _is_tty(sys.stderr):
            progress = Progress(sys.stderr, label, total)
        interrupt = self._interrupt

        def handle(events: list[object]) -> Iterator[Item]:
            for ev in events:
                if isinstance(ev, Opened):
                    streams[ev.conn] = ev.stream
                    wanted[ev.conn] = everything or flt.wants_connection(
                        ev.stream, ev.endpoints, ev.timestamp
                    )
                conn: int = ev.conn  # type: ignore[attr-defined]
                if wanted.get(conn):
                    flow = builder.add(ev)  # type: ignore[arg-type]
                    if flow is not None:
                        del wanted[conn]
                        stats.flows += 1
                        keep = everything or flt.wants_flow(flow)
                        yield Item(label, streams.pop(conn), flow if keep else None)
                elif isinstance(ev, Closed):
                    wanted.pop(conn, None)
                    stats.flows += 1
                    yield Item(label, streams.pop(conn), None)

        n = 0
        first = last = None
        try:
            for packet in reader:
                ts = packet.timestamp
                if first is None or ts < first:
                    first = ts
                if last is None or ts > last:
                    last = ts
                for seg in decoder.decode_all(packet):
                    events = assembler.feed(seg)
                    if events:
                        yield from handle(events)  # type: ignore[arg-type]
                n += 1
                if n % CHECK_EVERY == 0:
                    if progress is not None and f is not None:
                        progress.update(_position(f), stats.flows)
                    if interrupt.requested:
                        break
            if interrupt.requested:
                run.interrupted = self.interrupted = True
                run.done_bytes = _position(f) if f is not None else stats.bytes
            if progress is not None:
                progress.close()
            if not run.interrupted:
                decoder.finish()
            yield from handle(assembler.close_all())  # type: ignore[arg-type]
        finally:
            if progress is not None:
                progress.close()
            reader.close()
            copy_counts(stats, assembler)
            run.first_time, run.last_time = first, last


def _position(f: BinaryIO) -> int:
    try:
        return f.tell()
    except (OSError, ValueError):
        return 0


def _is_tty(stream: object) -> bool:
    try:
        return bool(stream.isatty())  # type: ignore[attr-defined]
    except (AttributeError, ValueError):
        return False


# -- after the run ----------------------------------------------------------------------


def print_stats(stats: ReadStats, label: str | None = None) -> None:
    """Everything :class:`ReadStats` knows, on standard error (``-v``, legacy ``--stats``)."""
    err = sys.stderr
    head = f"{label}: " if label else ""
    print(
        f"{head}packets {stats.packets}, tcp segments {stats.tcp_segments}, flows {stats.flows}",
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


def _unusual_skips(stats: ReadStats) -> int:
    """Frames skipped that may have hidden TCP: an unsupported link type, encrypted
    802.11. Other skips (ARP, UDP, ICMP, ...) are traffic that is simply not TCP, in
    every capture: ``-v`` and ``stats`` count them, a warning would be noise."""
    return sum(
        n
        for reason, n in stats.skipped.items()
        if reason.startswith("linktype") or "encrypted" in reason
    )


def report(scan: Scan) -> None:
    """After the run: one warning line per capture with damage, frames it could not
    use or limits that cut in (unless ``--quiet``), the detail with ``-v``; one line
    when Ctrl-C stopped the read."""
    for run in scan.runs:
        s = run.stats
        parts = []
        damaged = sum(s.anomalies.values())
        if damaged:
            parts.append(f"{damaged} damaged record(s) skipped")
        odd = _unusual_skips(s)
        if odd:
            parts.append(f"{odd} frame(s) that may hold TCP not decoded")
        cut = sum(s.limits.values())
        if cut:
            parts.append(f"limits cut in {cut} time(s)")
        if parts and not scan.quiet:
            more = "" if scan.verbose else " (-v for details)"
            print(f"pcapflows: warning: {run.label}: {', '.join(parts)}{more}", file=sys.stderr)
        if scan.verbose:
            print_stats(s, run.label)
        if run.interrupted:
            where = f"{run.done_bytes} bytes"
            if run.total_bytes:
                where += f" ({run.done_bytes * 100 // run.total_bytes}%)"
            print(
                f"pcapflows: interrupted after {where} of {run.label}: connections still "
                "open are shown as open at end",
                file=sys.stderr,
            )
