"""The ``Flow`` base and ``Error``, shaped like mitmproxy's ``mitmproxy.flow``.

Same attributes, state keys (flow format 21) and ``copy()`` semantics as mitmproxy 11,
so that ``flow.get_state()`` is what mitmproxy itself would write. The interactive
parts of a live proxy (intercept, resume, kill) have no meaning for a capture and are
not provided.

Deliberate difference: a timestamp of ``0.0`` is a real capture time and is kept. Only
``None`` means "now", and only for objects a user creates by hand.
"""

from __future__ import annotations

import builtins
import copy
import time
import uuid
from typing import Any, ClassVar

from pcapflows.model.connection import Client, Server

#: mitmproxy's flow file format version that these states correspond to (mitmproxy 11).
FLOW_FORMAT_VERSION = 21


class Error:
    """Why a flow ended abnormally (for a capture: a RST), and when."""

    KILLED_MESSAGE: ClassVar[str] = "Connection killed."

    def __init__(self, msg: str, timestamp: float | None = None) -> None:
        self.msg = msg
        self.timestamp: float = time.time() if timestamp is None else timestamp

    def __str__(self) -> str:
        return self.msg

    def __repr__(self) -> str:
        return self.msg

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Error):
            return (self.msg, self.timestamp) == (other.msg, other.timestamp)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def get_state(self) -> dict[str, Any]:
        return {"msg": self.msg, "timestamp": self.timestamp}

    def set_state(self, state: dict[str, Any]) -> None:
        state = dict(state)
        self.msg = state.pop("msg")
        self.timestamp = state.pop("timestamp")
        if state:
            raise ValueError(f"Unexpected fields in Error.set_state: {state}")

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Error:
        return cls(state["msg"], state["timestamp"])

    def copy(self) -> Error:
        return Error(self.msg, self.timestamp)


class Flow:
    """A connection's worth of traffic: the base of :class:`~pcapflows.model.tcp.TCPFlow`.

    pcapflows' own extras live in ``metadata["pcapflows"]`` rather than in subclasses,
    so that the state round-trips through mitmproxy unchanged.
    """

    type: ClassVar[str] = "flow"
    _types: ClassVar[dict[str, builtins.type[Flow]]] = {}

    error: Error | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        Flow._types[cls.type] = cls

    def __init__(
        self,
        client_conn: Client,
        server_conn: Server,
        live: bool = False,
        *,
        id: str | None = None,
        timestamp_created: float | None = None,
    ) -> None:
        # ``id`` and ``timestamp_created`` (beyond mitmproxy's signature) let a builder
        # that knows them skip drawing a random id and reading the clock, per flow.
        self.id = str(uuid.uuid4()) if id is None else id
        self.client_conn = client_conn
        self.server_conn = server_conn
        self.live = live
        self.timestamp_created: float = (
            time.time() if timestamp_created is None else timestamp_created
        )
        self.intercepted: bool = False
        self.marked: str = ""
        self.is_replay: str | None = None
        self.metadata: dict[str, Any] = {}
        self.comment: str = ""
        self.error = None
        self._backup: dict[str, Any] | None = None

    @property
    def killable(self) -> bool:
        """Always False: a flow read from a capture is over."""
        return False

    def get_state(self) -> dict[str, Any]:
        """Serialized form: exactly the keys and types mitmproxy 11 writes."""
        state: dict[str, Any] = {
            "version": FLOW_FORMAT_VERSION,
            "type": self.type,
            "id": self.id,
            "error": self.error.get_state() if self.error else None,
            "client_conn": self.client_conn.get_state(),
            "server_conn": self.server_conn.get_state(),
            "intercepted": self.intercepted,
            "is_replay": self.is_replay,
            "marked": self.marked,
            "metadata": copy.deepcopy(self.metadata),
            "comment": self.comment,
            "timestamp_created": self.timestamp_created,
        }
        state["backup"] = copy.deepcopy(self._backup) if self._backup != state else None
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore from a state dict of the same version and type."""
        state = dict(state)
        version = state.pop("version")
        if version != FLOW_FORMAT_VERSION:
            raise ValueError(
                f"flow state version {version} is not {FLOW_FORMAT_VERSION} (mitmproxy 11)"
            )
        kind = state.pop("type")
        if kind != self.type:
            raise ValueError(f"flow state of type {kind!r} given to a {self.type!r} flow")
        self.id = state.pop("id")
        err = state.pop("error")
        self.error = Error.from_state(err) if err else None
        self.client_conn.set_state(state.pop("client_conn"))
        self.server_conn.set_state(state.pop("server_conn"))
        self.intercepted = state.pop("intercepted")
        self.is_replay = state.pop("is_replay")
        self.marked = state.pop("marked")
        self.metadata = state.pop("metadata")
        self.comment = state.pop("comment")
        self.timestamp_created = state.pop("timestamp_created")
        self._backup = state.pop("backup", None)
        if state:
            raise ValueError(f"Unexpected fields in {type(self).__name__}.set_state: {state}")

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Flow:
        """A new flow of the type named in the state (only ``"tcp"`` exists here)."""
        try:
            flow_cls = Flow._types[state["type"]]
        except KeyError:
            raise ValueError(f"Unknown flow type: {state.get('type')!r}") from None
        f = flow_cls(Client(peername=("", 0), sockname=("", 0)), Server(address=None))
        f.set_state(state)
        return f

    def copy(self) -> Flow:
        """A copy with a new id, not live, as mitmproxy's ``Flow.copy()``."""
        state = self.get_state()
        state["id"] = str(uuid.uuid4())
        f = type(self).from_state(state)
        f.live = False
        return f

    def modified(self) -> bool:
        """Whether the flow changed since :meth:`backup` was called."""
        if self._backup:
            return self._backup != self.get_state()
        return False

    def backup(self, force: bool = False) -> None:
        """Save the current state, so that :meth:`revert` can restore it."""
        if not self._backup or force:
            self._backup = self.get_state()

    def revert(self) -> None:
        """Go back to the state saved by :meth:`backup`."""
        if self._backup:
            self.set_state(self._backup)
            self._backup = None

    @property
    def timestamp_start(self) -> float | None:
        """When the flow's connection started."""
        return self.client_conn.timestamp_start
