"""The filters every subcommand shares, and the flow names ``follow`` accepts.

A filter is decided as early as the information allows, so that a flow that is not
wanted costs as little as possible: endpoints (``--host``, ``--port``, ``--net``,
``--flow``) and start time (``--since``, ``--until``) are known from a connection's
first packet, so an unwanted connection's payload is never collected; only
``--min-bytes`` has to wait for the connection's end. Different options must all
match (AND); repeating one option widens it (OR): ``--port 80 --port 443``.
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import re
from dataclasses import dataclass, field

from pcapflows.cli.errors import CliError
from pcapflows.model.tcp import TCPFlow

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Endpoint = tuple[str, int]

#: ``ip:port-ip:port``, IPv6 addresses in brackets.
_PAIR = re.compile(r"^(\[[^\]]+\]|[^\[\]:-]+):(\d+)-(\[[^\]]+\]|[^\[\]:-]+):(\d+)$")


@dataclass(frozen=True)
class FlowSpec:
    """One flow named on the command line: by its index (``stream``) or by its two
    endpoints (either order, since either side may be the client)."""

    text: str
    index: int | None = None
    endpoints: frozenset[Endpoint] | None = None

    def matches(self, stream: int, endpoints: tuple[Endpoint, Endpoint]) -> bool:
        if self.index is not None:
            return stream == self.index
        return self.endpoints == frozenset(endpoints)


def _address(text: str, what: str) -> str:
    """The address in the compressed form segments carry (so that text compares)."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise CliError(f"{what}: {text!r} is not an IPv4 or IPv6 address") from None


def parse_flow(text: str) -> FlowSpec:
    """``7`` or ``10.0.0.1:5000-10.0.0.2:80`` or ``[2001:db8::1]:5000-[2001:db8::2]:80``."""
    text = text.strip()
    if text.isdigit():
        return FlowSpec(text, index=int(text))
    m = _PAIR.match(text)
    if m is None:
        raise CliError(
            f"bad flow {text!r}: give an index (0, 1, ...) or client:port-server:port, "
            "IPv6 addresses in brackets ([2001:db8::1]:5000-[2001:db8::2]:80)"
        )
    ends: list[Endpoint] = []
    for host, port in ((m.group(1), m.group(2)), (m.group(3), m.group(4))):
        bracketed = host.startswith("[")
        addr = _address(host.strip("[]"), f"bad flow {text!r}")
        if ":" in addr and not bracketed:
            raise CliError(f"bad flow {text!r}: put IPv6 addresses in brackets")
        number = int(port)
        if number > 65535:
            raise CliError(f"bad flow {text!r}: port {number} is above 65535")
        ends.append((addr, number))
    return FlowSpec(text, endpoints=frozenset(ends))


def parse_time(text: str) -> float:
    """Epoch seconds (``1700000000.5``) or ISO 8601 (``2023-11-14T22:13:20Z``; a time
    without a zone is UTC, as capture times are)."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        dt = datetime.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise CliError(
            f"bad time {text!r}: give epoch seconds or ISO 8601 UTC (2023-11-14T22:13:20Z)"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.timezone.utc)
    return dt.timestamp()


@dataclass
class FlowFilter:
    """What ``--host``, ``--port``, ``--net``, ``--flow``, ``--since``, ``--until`` and
    ``--min-bytes`` ask for. Empty: every flow."""

    hosts: set[str] = field(default_factory=set)
    ports: set[int] = field(default_factory=set)
    nets: list[Network] = field(default_factory=list)
    flows: list[FlowSpec] = field(default_factory=list)
    since: float | None = None
    until: float | None = None
    min_bytes: int = 0

    @property
    def empty(self) -> bool:
        return not (
            self.hosts
            or self.ports
            or self.nets
            or self.flows
            or self.since is not None
            or self.until is not None
            or self.min_bytes
        )

    def wants_connection(
        self, stream: int, endpoints: tuple[Endpoint, Endpoint], start: float
    ) -> bool:
        """Decided at a connection's first packet: endpoints, index and start time."""
        (a, pa), (b, pb) = endpoints
        if self.hosts and a not in self.hosts and b not in self.hosts:
            return False
        if self.ports and pa not in self.ports and pb not in self.ports:
            return False
        if self.nets and not any(_within(a, n) or _within(b, n) for n in self.nets):
            return False
        if self.flows and not any(f.matches(stream, endpoints) for f in self.flows):
            return False
        if self.since is not None and start < self.since:
            return False
        return not (self.until is not None and start >= self.until)

    def wants_flow(self, flow: TCPFlow) -> bool:
        """Decided at the end: what only the whole connection tells (its size)."""
        if not self.min_bytes:
            return True
        sent = flow.metadata["pcapflows"]["bytes"]
        return int(sent["client"]) + int(sent["server"]) >= self.min_bytes


def _within(addr: str, net: Network) -> bool:
    try:
        return ipaddress.ip_address(addr) in net
    except ValueError:
        return False


def add_filter_arguments(parser: argparse.ArgumentParser) -> None:
    """The filter options, in a group of their own."""
    g = parser.add_argument_group(
        "filters (applied while reading; repeat an option for OR, combine options for AND)"
    )
    g.add_argument("--host", action="append", metavar="IP", help="either endpoint is IP")
    g.add_argument("--port", action="append", type=int, metavar="N", help="either port is N")
    g.add_argument("--net", action="append", metavar="CIDR", help="either endpoint is in CIDR")
    g.add_argument(
        "--flow",
        dest="flow_filter",
        action="append",
        metavar="FLOW",
        help="the flow with this index, or client:port-server:port ([IPv6]:port)",
    )
    g.add_argument(
        "--since",
        metavar="TIME",
        help="flows that started at or after TIME (capture time: ISO 8601 UTC such as "
        "2023-11-14T22:13:20Z, or epoch seconds)",
    )
    g.add_argument("--until", metavar="TIME", help="flows that started before TIME")
    g.add_argument(
        "--min-bytes",
        type=int,
        default=0,
        metavar="N",
        help="flows with at least N payload bytes (both directions together)",
    )


def filter_from(args: argparse.Namespace) -> FlowFilter:
    """The :class:`FlowFilter` of parsed arguments; :class:`CliError` for a bad value."""
    f = FlowFilter()
    f.hosts = {_address(h, "--host") for h in args.host or ()}
    for p in args.port or ():
        if not 0 <= p <= 65535:
            raise CliError(f"--port: {p} is not a port number (0-65535)")
    f.ports = set(args.port or ())
    for n in args.net or ():
        try:
            f.nets.append(ipaddress.ip_network(n, strict=False))
        except ValueError:
            raise CliError(f"--net: {n!r} is not a network (such as 10.0.0.0/8)") from None
    f.flows = [parse_flow(s) for s in args.flow_filter or ()]
    f.since = None if args.since is None else parse_time(args.since)
    f.until = None if args.until is None else parse_time(args.until)
    if f.since is not None and f.until is not None and f.until <= f.since:
        raise CliError("--until must be later than --since")
    if args.min_bytes < 0:
        raise CliError("--min-bytes must be 0 or more")
    f.min_bytes = args.min_bytes
    return f
