"""``Headers``: mitmproxy's HTTP header multi-dict, without mitmproxy.

A capture is evidence, so the fields are kept exactly as they were sent: names in
their original case, in their original order, duplicates included (``fields``). Only
lookups are case-insensitive, and ``headers["X"]`` folds repeated fields with
``", "`` as RFC 9110 allows (use :meth:`Headers.get_all` for ``Set-Cookie``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, MutableMapping
from typing import Any, overload


def _native(x: bytes) -> str:
    """Header bytes as text: UTF-8 where valid, undecodable bytes surrogate-escaped
    (so that encoding back gives the very same bytes)."""
    return x.decode("utf-8", "surrogateescape")


def _bytes(x: str | bytes) -> bytes:
    return x if isinstance(x, bytes) else x.encode("utf-8", "surrogateescape")


class Headers(MutableMapping[str, str]):
    """An ordered multi-dict of ``(name, value)`` byte pairs; names case-insensitive.

    ``Headers([(b"Host", b"example.com")])`` or ``Headers(content_type="text/html")``
    (underscores become dashes, as in mitmproxy). ``bytes(headers)`` is the header
    block as HTTP/1 writes it.
    """

    fields: tuple[tuple[bytes, bytes], ...]

    def __init__(self, fields: Iterable[tuple[bytes, bytes]] = (), **headers: str | bytes) -> None:
        self.fields = tuple((k, v) for k, v in fields)
        for key, value in self.fields:
            if not isinstance(key, bytes) or not isinstance(value, bytes):
                raise TypeError("Header fields must be bytes.")
        for name, text in headers.items():
            self[_bytes(name).replace(b"_", b"-").decode("utf-8", "surrogateescape")] = text

    @classmethod
    def from_parsed(cls, fields: Iterable[tuple[bytes, bytes]]) -> Headers:
        """Headers of fields the parser made (bytes pairs by construction): the same
        as ``Headers(fields)`` without checking each field's type, which is a
        noticeable share of reading a capture's HTTP."""
        self = cls.__new__(cls)
        self.fields = tuple(fields)
        return self

    # -- mapping ---------------------------------------------------------------------

    @staticmethod
    def _key(key: str | bytes) -> bytes:
        return _bytes(key).lower()

    def get_all(self, name: str | bytes) -> list[str]:
        """Every value of ``name``, in order, not folded."""
        key = self._key(name)
        return [_native(v) for k, v in self.fields if k.lower() == key]

    def set_all(self, name: str | bytes, values: Iterable[str | bytes]) -> None:
        """Replace the values of ``name`` in place (extra ones go at the end)."""
        key = self._key(name)
        pending = [_bytes(v) for v in values]
        new: list[tuple[bytes, bytes]] = []
        for k, v in self.fields:
            if k.lower() == key:
                if pending:
                    new.append((k, pending.pop(0)))
            else:
                new.append((k, v))
        new.extend((_bytes(name), v) for v in pending)
        self.fields = tuple(new)

    def add(self, name: str | bytes, value: str | bytes) -> None:
        """Append a field (a duplicate name is kept as a second field)."""
        self.insert(len(self.fields), name, value)

    def insert(self, index: int, name: str | bytes, value: str | bytes) -> None:
        item = (_bytes(name), _bytes(value))
        self.fields = (*self.fields[:index], item, *self.fields[index:])

    def __getitem__(self, key: str | bytes) -> str:
        values = self.get_all(key)
        if not values:
            raise KeyError(key)
        return ", ".join(values)

    def __setitem__(self, key: str | bytes, value: str | bytes) -> None:
        self.set_all(key, [value])

    def __delitem__(self, key: str | bytes) -> None:
        k = self._key(key)
        if not any(name.lower() == k for name, _ in self.fields):
            raise KeyError(key)
        self.fields = tuple(f for f in self.fields if f[0].lower() != k)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, (str, bytes)):
            return False
        k = self._key(key)
        return any(name.lower() == k for name, _ in self.fields)

    def __iter__(self) -> Iterator[str]:
        seen: set[bytes] = set()
        for name, _ in self.fields:
            k = name.lower()
            if k not in seen:
                seen.add(k)
                yield _native(name)

    def __len__(self) -> int:
        return len({name.lower() for name, _ in self.fields})

    @overload
    def items(self) -> Any: ...
    @overload
    def items(self, multi: bool) -> Any: ...

    def items(self, multi: bool = False) -> Any:
        """``(name, value)`` text pairs: one per name (folded), or every field."""
        if multi:
            return ((_native(k), _native(v)) for k, v in self.fields)
        return super().items()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return self.fields == other.fields
        return False

    __hash__ = None  # type: ignore[assignment]

    def __bytes__(self) -> bytes:
        if not self.fields:
            return b""
        return b"\r\n".join(b": ".join(f) for f in self.fields) + b"\r\n"

    def __repr__(self) -> str:
        return f"Headers[{', '.join(repr(f) for f in self.fields)}]"

    # -- state -------------------------------------------------------------------------

    def get_state(self) -> tuple[tuple[bytes, bytes], ...]:
        return self.fields

    def set_state(self, state: Iterable[Iterable[bytes]]) -> None:
        self.fields = tuple((k, v) for k, v in (tuple(f) for f in state))

    @classmethod
    def from_state(cls, state: Iterable[Iterable[bytes]]) -> Headers:
        h = cls()
        h.set_state(state)
        return h

    def copy(self) -> Headers:
        return Headers(self.fields)
