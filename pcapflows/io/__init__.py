"""Stage 1 of the pipeline: capture files in, captured frames out.

Knows file formats (pcap, pcapng, their byte orders and timestamp resolutions,
compression) and nothing about protocols: what leaves this package is a
:class:`~pcapflows.io.packet.Packet` (link type, capture timestamp, the frame's bytes
and its original length), plus damage counted in :class:`~pcapflows.stats.ReadStats`.
"""
