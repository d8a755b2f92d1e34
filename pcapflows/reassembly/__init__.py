"""Stage 3 of the pipeline: segments in, ordered byte events out. Sans-IO.

Bottom-up: ``seqnum`` (32-bit sequence numbers into a 64-bit space), ``pending``
(bytes waiting for a hole to fill), ``half`` (one direction of a connection),
``state`` (a connection's lifecycle table and who is the client), ``connection`` (two
directions and the facts that drive the lifecycle), ``assembler`` (the table of
connections: keying, port reuse, timeouts, limits); ``events`` and ``summary`` are
what comes out. No files, no clock, no
logging: time is the capture's, and nothing here raises on any packet sequence.
"""
