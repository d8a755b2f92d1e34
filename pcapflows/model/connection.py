"""Client and server connection objects, shaped like mitmproxy's ``mitmproxy.connection``.

pcapflows synthesizes these from captured packets. They carry mitmproxy 11's fields,
defaults, state keys (flow format 21) and reprs, so that a flow's state can be written
into mitmproxy's own file format unchanged, without importing mitmproxy. Fields that
only make sense for a live proxy (TLS material, proxy mode, upstream proxy) are kept
with mitmproxy's defaults; values coming from a state dict are kept as they are
(certificates, for instance, stay in their serialized form).
"""

from __future__ import annotations

import dataclasses
import enum
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

Address = tuple[str, int]

_C = TypeVar("_C", bound="Connection")


class ConnectionState(enum.Flag):
    """Whether a connection can be read from / written to (always CLOSED offline)."""

    CLOSED = 0
    CAN_READ = 1
    CAN_WRITE = 2
    OPEN = CAN_READ | CAN_WRITE


def _address(value: Any) -> Any:
    """Addresses are tuples in state and in objects (mitmproxy reads lists back too)."""
    if isinstance(value, list):
        return tuple(value)
    return value


@dataclass(kw_only=True, eq=False, repr=False)
class Connection:
    """Fields common to both ends. Equality and hashing go by ``id``, as in mitmproxy."""

    peername: Address | None
    sockname: Address | None
    state: ConnectionState = ConnectionState.CLOSED
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    transport_protocol: str = "tcp"
    error: str | None = None
    tls: bool = False
    certificate_list: Sequence[Any] = ()
    alpn: bytes | None = None
    alpn_offers: Sequence[bytes] = ()
    cipher: str | None = None
    cipher_list: Sequence[str] = ()
    tls_version: str | None = None
    sni: str | None = None
    timestamp_start: float | None = None
    timestamp_end: float | None = None
    timestamp_tls_setup: float | None = None

    #: Fields that are not part of the serialized state.
    _NOT_SERIALIZED: ClassVar[frozenset[str]] = frozenset({"state"})
    #: Fields whose state is a list (mitmproxy stores sequences as lists).
    _LISTS: ClassVar[frozenset[str]] = frozenset({"certificate_list", "alpn_offers", "cipher_list"})
    _ADDRESSES: ClassVar[frozenset[str]] = frozenset({"peername", "sockname", "address"})

    @property
    def connected(self) -> bool:
        """Whether the connection is open (never, for connections read from a capture)."""
        return self.state is ConnectionState.OPEN

    @property
    def tls_established(self) -> bool:
        return self.timestamp_tls_setup is not None

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Connection):
            return self.id == other.id
        return False

    def __hash__(self) -> int:
        return hash(self.id)

    @classmethod
    def _state_fields(cls) -> list[dataclasses.Field[Any]]:
        return [f for f in dataclasses.fields(cls) if f.name not in cls._NOT_SERIALIZED]

    def get_state(self) -> dict[str, Any]:
        """The serialized form, key for key and type for type what mitmproxy 11 writes."""
        state: dict[str, Any] = {}
        for f in self._state_fields():
            value = getattr(self, f.name)
            if f.name in self._LISTS:
                value = list(value)
            elif f.name in self._ADDRESSES and value is not None:
                value = tuple(value)
            state[f.name] = value
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore from a state dict; unknown keys are an error, as in mitmproxy."""
        state = dict(state)
        for f in self._state_fields():
            value = state.pop(f.name)
            if f.name in self._ADDRESSES:
                value = _address(value)
            setattr(self, f.name, value)
        if state:
            raise ValueError(f"Unexpected fields in {type(self).__name__}.set_state: {state}")

    @classmethod
    def from_state(cls: type[_C], state: dict[str, Any]) -> _C:
        """A new connection from a state dict."""
        values = {}
        for f in cls._state_fields():
            if f.name not in state:
                raise ValueError(f"Invalid state for {cls.__name__}: missing {f.name!r}")
            value = state[f.name]
            if f.name in cls._ADDRESSES:
                value = _address(value)
            values[f.name] = value
        extra = set(state) - set(values)
        if extra:
            raise ValueError(f"Invalid state for {cls.__name__}: unexpected {sorted(extra)}")
        return cls(**values)

    def __repr__(self) -> str:
        attrs: dict[str, Any] = {"id": None, "address": None}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.default is dataclasses.MISSING or value != f.default:
                if f.name == "cipher_list":
                    value = f"<{len(value)} ciphers>"
                elif f.name == "id":
                    value = f"…{value[-6:]}"
                attrs[f.name] = value
        return f"{type(self).__name__}({attrs!r})"


@dataclass(kw_only=True, eq=False, repr=False)
class Client(Connection):
    """The side that opened the connection.

    ``peername`` is the client's own address, ``sockname`` the address it connected to.
    """

    peername: Address
    sockname: Address
    mitmcert: Any = None
    proxy_mode: str = "regular"
    #: A capture gives every connection a start time, so unlike mitmproxy there is no
    #: "now" default here: 0.0 is a legitimate capture time and None means unknown.
    timestamp_start: float | None = None

    def __str__(self) -> str:
        return f"Client({_fmt(self.peername)}, state={(self.state.name or '').lower()})"


@dataclass(kw_only=True, eq=False, repr=False)
class Server(Connection):
    """The side that accepted the connection; ``address`` is where the client connected."""

    address: Address | None
    peername: Address | None = None
    sockname: Address | None = None
    timestamp_start: float | None = None
    timestamp_tcp_setup: float | None = None
    via: Any = None

    def __str__(self) -> str:
        port = f", src_port={self.sockname[1]}" if self.sockname else ""
        state = (self.state.name or "").lower()
        return f"Server({_fmt(self.address)}, state={state}{port})"


def _fmt(addr: Address | None) -> str:
    if not addr:
        return "<no address>"
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
