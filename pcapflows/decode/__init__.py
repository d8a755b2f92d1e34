"""Stage 2 of the pipeline: captured frames in, TCP segments out.

The only place that knows link layers, IP, tunnels and fragments, and the only
package that imports dpkt. What leaves it is a :class:`~pcapflows.decode.segment.Segment`
(addresses, ports, sequence numbers, flags, payload, capture time), or a counted
reason why a frame carried none.
"""

from pcapflows.decode.decoder import IP_TUNNELS, UDP_TUNNELS

__all__ = ["IP_TUNNELS", "UDP_TUNNELS"]
