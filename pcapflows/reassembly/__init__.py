"""Stage 3 of the pipeline: segments in, ordered byte events out. Sans-IO.

Bottom-up: ``seqnum`` (32-bit sequence numbers into a 64-bit space), ``pending``
(bytes waiting for a hole to fill), ``half`` (one direction of a connection),
``connection`` (two directions, the handshake, roles and closing), ``assembler`` (the
table of connections: keying, port reuse, timeouts, limits). No files, no clock, no
logging: time is the capture's, and nothing here raises on any packet sequence.
"""
