"""``pcapflows convert INPUT -o OUTPUT``: between captures and mitmproxy flow files.

The input is recognized by its content (a pcap, pcapng or gzip magic is a capture,
anything else is tried as a mitmproxy flow file), the output format by ``format`` or the
output's extension (``.pcapng``, ``.pcap``, ``.mitm``; ``-`` is standard output and
needs ``format``). A capture to a capture reads the flows and writes them again (the
round trip the tests check); a flow file to a capture is mitmproxy's decrypted traffic
for Wireshark; a capture to a flow file is ``pcapflows CAPTURE -w OUT``. Everything
streams: flows are written as they are read.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from array import array
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Literal, cast

from pcapflows.api import read
from pcapflows.errors import CaptureError, FlowFileError
from pcapflows.flowspec import spec_start
from pcapflows.io.sniff import GZIP_MAGIC, PCAPNG_MAGIC, pcap_magic
from pcapflows.mitmfile import MitmWriter, Target, read_mitm_states
from pcapflows.pcapwrite import CaptureWriter, flow_spec
from pcapflows.stats import ReadStats

OutputFormat = Literal["pcapng", "pcap", "mitm"]
FORMATS: tuple[OutputFormat, ...] = ("pcapng", "pcap", "mitm")
_EXTENSIONS: dict[str, OutputFormat] = {
    ".pcapng": "pcapng",
    ".pcap": "pcap",
    ".mitm": "mitm",
    ".flows": "mitm",
}


@dataclass
class ConvertResult:
    """What :func:`convert` did.

    ``input_kind`` is ``"capture"`` or ``"mitm"``; ``flows`` the flows written;
    ``packets`` the packets written (captures only); ``skipped`` the flows of the input
    not written, by type (``{"udp": 2}``); ``out_of_order`` the packets written after a
    later one (see :mod:`pcapflows.pcapwrite`); ``stats`` the read statistics of a
    capture input.
    """

    input_kind: Literal["capture", "mitm"]
    output_format: OutputFormat
    flows: int = 0
    packets: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    out_of_order: int = 0
    stats: ReadStats | None = None

    def summary(self) -> str:
        """One line for the command line's standard error."""
        what = "mitmproxy flow file" if self.input_kind == "mitm" else "capture"
        line = f"read a {what}, wrote {self.flows} flows"
        if self.output_format != "mitm":
            line += f" ({self.packets} packets, {self.output_format})"
        if self.skipped:
            parts = ", ".join(f"{n} {k}" for k, n in sorted(self.skipped.items()))
            line += f"; skipped {parts}"
        if self.out_of_order:
            line += (
                f"; {self.out_of_order} packets earlier than the one before "
                "(standard input is read once: flows written as they came)"
            )
        return line


def output_format(output: Target, format: str | None) -> OutputFormat:
    """The format ``format`` names, else the one the output's extension says;
    ``ValueError`` when neither says one."""
    if format is not None:
        if format not in FORMATS:
            raise ValueError(f"unknown output format {format!r} (pcapng, pcap or mitm)")
        return format
    if isinstance(output, (str, os.PathLike)):
        ext = os.path.splitext(os.fspath(output))[1].lower()
        if ext in _EXTENSIONS:
            return _EXTENSIONS[ext]
    raise ValueError(
        "cannot tell the output format from the output's name: give --format "
        "(pcapng, pcap or mitm), or end the name in .pcapng, .pcap or .mitm"
    )


def _is_capture(head: bytes) -> bool:
    if head.startswith((PCAPNG_MAGIC, GZIP_MAGIC)):
        return True
    return len(head) >= 4 and pcap_magic(head[:4]) is not None


def _input(source: Target) -> tuple[BinaryIO, bool, bytes]:
    """The input as a binary file that can give its first bytes back, whether it was
    opened here, and those bytes."""
    if isinstance(source, (str, os.PathLike)):
        if os.fspath(source) == "-":
            fp: Any = sys.stdin.buffer
            owned = False
        else:
            fp = open(source, "rb")
            owned = True
    else:
        if isinstance(source, io.TextIOBase):
            raise TypeError("the input is opened in text mode: open it with 'rb'")
        fp = source
        owned = False
    if not hasattr(fp, "peek"):
        fp = io.BufferedReader(cast(Any, fp))
    head = bytes(fp.peek(8)[:8])
    return cast(BinaryIO, fp), owned, head


def _by_start(fp: BinaryIO) -> Iterator[Any] | None:
    """The flows of a flow file in the order their packets start, so that the capture
    written from them never goes back in time (mitmproxy saves flows as they end).

    A first pass notes where each flow starts in time and in the file (16 bytes a
    flow: 1.6 MB for 100,000), a second reads them in that order, one at a time. None
    when the input cannot seek (standard input): its flows are then written as they
    come, and the writer counts the packets that go back (``out_of_order``).
    """
    try:
        if not fp.seekable():
            return None
        base = fp.tell()
    except (OSError, ValueError):
        return None
    starts = array("d")
    offsets = array("q")
    reader = read_mitm_states(fp)
    at = 0
    for flow in reader:
        spec = flow_spec(flow)
        # A flow not written (UDP, DNS) goes first: it is only counted as skipped.
        starts.append(float("-inf") if spec is None else spec_start(spec))
        offsets.append(base + at)
        at = reader.offset
    order = sorted(range(len(starts)), key=starts.__getitem__)

    def in_order() -> Iterator[Any]:
        for i in order:
            fp.seek(offsets[i])
            yield next(read_mitm_states(fp))

    return in_order()


def convert(input: Target, output: Target, format: str | None = None) -> ConvertResult:
    """Convert ``input`` (a capture or a mitmproxy flow file, by content) into
    ``output`` in ``format`` (``"pcapng"``, ``"pcap"``, ``"mitm"``; by default from the
    output's extension).

    ``ValueError`` for an output format that cannot be told; a capture input that
    cannot be read raises :class:`~pcapflows.CaptureError`, a flow file that is damaged
    :class:`~pcapflows.FlowFileError`; ``OSError`` from the files as is.
    """
    fmt = output_format(output, format)
    fp, owned, head = _input(input)
    try:
        if _is_capture(head):
            # In the order of their first packets: a capture written from them then
            # never goes back in time (finished flows wait for earlier ones).
            reader = read(fp, warn=False, order="first_packet" if fmt != "mitm" else "finish")
            result = ConvertResult("capture", fmt, stats=reader.stats)
            flows: Any = reader
        else:
            result = ConvertResult("mitm", fmt)
            by_start = _by_start(fp) if fmt != "mitm" else None
            flows = by_start if by_start is not None else read_mitm_states(fp)
        if fmt == "mitm":
            with MitmWriter(output) as mw:
                for flow in flows:
                    if isinstance(flow, dict):
                        result.skipped[str(flow.get("type"))] += 1
                    else:
                        mw.add(flow)
                result.flows = mw.count
        else:
            with CaptureWriter(output, fmt) as cw:
                for flow in flows:
                    cw.add(flow)
            result.flows = cw.count
            result.packets = cw.packets
            result.out_of_order = cw.out_of_order
            result.skipped.update(cw.skipped)
        return result
    finally:
        if owned:
            fp.close()


# --- the command line -------------------------------------------------------------


def add_convert_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``pcapflows convert`` (for the CLI's subcommand parser)."""
    parser.add_argument(
        "input", help="a capture (pcap, pcapng, gzip) or a mitmproxy flow file; - for stdin"
    )
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUTPUT",
        help="the file to write (.pcapng, .pcap or .mitm; - for standard output with --format)",
    )
    parser.add_argument(
        "--format", choices=FORMATS, help="the output format (default: by the output's extension)"
    )


DESCRIPTION = (
    "Convert a mitmproxy flow file to a capture Wireshark opens (HTTP flows as HTTP/1.1 "
    "on TCP), a capture to a flow file, or a capture to a capture."
)
EXAMPLES = """\
examples:
  pcapflows convert flows.mitm -o flows.pcapng        # then: wireshark flows.pcapng
  pcapflows convert captures/demo.pcapng -o demo.mitm
  pcapflows convert flows.mitm -o - --format pcap | tshark -r -

exit codes: 0 ok, 1 input unreadable, 2 bad command line, 4 output not written"""


def run_convert(args: argparse.Namespace) -> int:
    """Run ``pcapflows convert``; return the exit code (0 ok, 1 the input cannot be
    read, 2 no output format, 4 the output cannot be written). One line on standard
    error says what was written, or what went wrong."""
    try:
        fmt = output_format(args.output, args.format)
    except ValueError as exc:
        print(f"pcapflows convert: error: {exc}", file=sys.stderr)
        return 2
    try:
        result = convert(args.input, args.output, fmt)
    except (CaptureError, FlowFileError, ValueError) as exc:
        print(f"pcapflows convert: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        raise
    except OSError as exc:
        name = exc.filename or args.output
        print(f"pcapflows convert: error: {name}: {exc.strerror or exc}", file=sys.stderr)
        return 1 if exc.filename == args.input else 4
    print(f"pcapflows convert: {result.summary()}", file=sys.stderr)
    return 0
