"""How a layer of the decoder says that a packet goes no further.

A layer returns where the next one starts; everything else it says by raising one of
these: :class:`Skip` (a fine packet that carries no TCP for us), :class:`Damage` (a
broken one), or :class:`Aggregate` (a frame that carries several packets). The
:class:`~pcapflows.decode.decoder.Decoder` turns each into exactly one count. Kept
apart from the parsers so that link layers, IP and tunnels share them without
importing each other.
"""

from __future__ import annotations

from collections.abc import Callable

from pcapflows.decode.segment import TunnelHop

#: Network protocols a link handler can find (the IP version numbers).
IPV4 = 4
IPV6 = 6

#: ``(network protocol, buffer, offset of the IP header, end of the packet)``. ``buffer``
#: is the frame itself except for handlers that must build a new one (dpkt); ``end`` is
#: where the packet ends when the link layer knows better than the frame length (PPPoE
#: and NFLOG carry their own lengths), else ``len(buffer)``.
LinkResult = tuple[int, bytes, int, int]
LinkHandler = Callable[[bytes], LinkResult]
#: The tunnels around a packet, outermost first.
Path = tuple[TunnelHop, ...]


class Skip(Exception):
    """Raised by a layer for a packet that is fine but carries no TCP for us.

    The message is the reason counted with :meth:`ReadStats.skip`, so it should be
    short and stable (it is a counter key): ``"ethertype 0x0806"``, ``"not tcp: udp"``.
    """


class Damage(Exception):
    """Raised by a layer for a broken packet: ``kind`` is the counter key, ``detail``
    the human-readable specifics (the decoder prefixes the frame number)."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(kind, detail)
        self.kind = kind
        self.detail = detail


#: One subframe of an aggregate: where its packet is (a :data:`LinkResult` within the
#: subframe, whose ``end`` is the subframe's end as far as it was captured) and how many
#: bytes its length field claims beyond that; or the Skip or Damage the subframe met.
Subframe = tuple[LinkResult, int] | Skip | Damage


class Aggregate(Exception):
    """Raised by a link layer for a frame that carries several packets (an 802.11
    A-MSDU), since a handler returns one :data:`LinkResult`: ``parts`` are its
    subframes in order, ``tail`` the bytes after the last one that were too few for a
    subframe header. The decoder decodes every part as a packet of its own, with the
    tunnel ``path`` and the snap-length cut (``missing`` bytes) of the frame around it,
    which a tunnel on the way up fills in. Raised rather than returned so that the one
    packet path every ordinary frame takes is left as it was."""

    def __init__(self, parts: list[Subframe], tail: int) -> None:
        super().__init__("aggregate")
        self.parts = parts
        self.tail = tail
        self.path: Path = ()
        self.missing = 0
