"""Values worked out once per object, for the frozen domain values a report reads many times."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
T = TypeVar("T")


class ByIdentity(Generic[K, T]):
    """``make(key)`` worked out once for each ``key``, looked up by identity: hashing a frozen
    dataclass hashes every field, which costs more than many a value made from it. Each entry
    holds its key, so that no other object takes that id while the entry stands; with ``most``,
    the entries are dropped all at once when there are that many (memory stays bounded)."""

    __slots__ = ("_known", "_make", "_most")

    def __init__(self, make: Callable[[K], T], most: int | None = None) -> None:
        self._make = make
        self._most = most
        self._known: dict[int, tuple[K, T]] = {}

    def __call__(self, key: K) -> T:
        hit = self._known.get(id(key))
        if hit is not None:
            return hit[1]
        value = self._make(key)
        if self._most is not None and len(self._known) >= self._most:
            self._known.clear()
        self._known[id(key)] = (key, value)
        return value

    def __len__(self) -> int:
        """How many values are kept."""
        return len(self._known)


def by_identity(most: int | None = None) -> Callable[[Callable[[K], T]], ByIdentity[K, T]]:
    """:class:`ByIdentity` as a decorator."""
    return lambda make: ByIdentity(make, most)
