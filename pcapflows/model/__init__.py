"""Stage 4 of the pipeline: events in, mitmproxy-shaped flows out.

``flow``, ``connection`` and ``tcp`` are mitmproxy's model (same names, attributes and
state); ``build`` turns the reassembler's events into those objects.
"""
