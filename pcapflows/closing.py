"""What every reader and writer of pcapflows shares: closing, also as a context manager.

One base instead of the same ``__enter__``/``__exit__`` pair in each class, so that
``with pcapflows.read(path) as reader:`` and the like behave alike everywhere: leaving
the block calls :meth:`Closing.close`, whatever happened in it.
"""

from __future__ import annotations

from types import TracebackType
from typing import TypeVar

_C = TypeVar("_C", bound="Closing")


class Closing:
    """A resource released by :meth:`close`; ``with`` closes it on the way out."""

    def close(self) -> None:
        """Release what the object holds; calling it again does nothing."""
        raise NotImplementedError

    def __enter__(self: _C) -> _C:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
