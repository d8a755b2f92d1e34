"""Stage 2 of the pipeline: captured frames in, TCP segments out.

The only place that knows link layers, IP, tunnels and fragments, and the only
package that imports dpkt. What leaves it is a :class:`~pcapflows.decode.segment.Segment`
(addresses, ports, sequence numbers, flags, payload, capture time), or a counted
reason why a frame carried none.

Modules: :mod:`~pcapflows.decode.link` (link layers), :mod:`~pcapflows.decode.ip`
(IP and TCP header details), :mod:`~pcapflows.decode.tunnels` (tunnel headers and the
tables below), :mod:`~pcapflows.decode.ipfrag` (fragment reassembly),
:mod:`~pcapflows.decode.signals` (how a layer says a packet goes no further) and
:mod:`~pcapflows.decode.decoder` (the policy that ties them together).
"""

from pcapflows.decode.tunnels import IP_TUNNELS, UDP_TUNNELS

__all__ = ["IP_TUNNELS", "UDP_TUNNELS"]
