"""A byte-bounded LRU of decompressed segment columns.

Sealed segments are compressed on disk (a few bytes per event); queries need plain numpy
columns. Decoding on every query would cost more than the query, decoding everything at open
would cost the RAM compression saved, so the columns queries use stay decoded here up to a
budget and the least recently used ones are dropped past it.

Threads: every method is safe from any thread (one lock; a miss decodes outside it).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol, TypeVar

Key = tuple[str, str]  # (segment file, column name)


class Sized(Protocol):
    """What the cache holds: a numpy column, a sparse group, an Arrow array."""

    @property
    def nbytes(self) -> int: ...


T = TypeVar("T", bound=Sized)


class ColumnCache:
    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self._items: OrderedDict[Key, Sized] = OrderedDict()
        self._lock = threading.Lock()
        self._names: dict[str, int] = {}  # column name -> how many segments have it here
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    def get(self, key: Key, load: Callable[[], T]) -> T:
        """The cached column for `key`, loading (outside the lock) on a miss.

        Two threads missing the same key both decode it; the second result replaces the
        first. Rare, and cheaper than holding a lock across decompression."""
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
                self.hits += 1
                return found  # type: ignore[return-value]  # (keys map to one type each)
            self.misses += 1
        value = load()
        self.put(key, value)
        return value

    def peek(self, key: Key) -> Sized | None:
        """The cached column, if any, without loading or reordering anything."""
        with self._lock:
            return self._items.get(key)

    def put(self, key: Key, value: Sized) -> None:
        with self._lock:
            self._remove(key)
            if value.nbytes > self.budget_bytes:
                return  # (larger than the whole budget: used once, never kept)
            self._items[key] = value
            self.bytes += value.nbytes
            self._names[key[1]] = self._names.get(key[1], 0) + 1
            while self.bytes > self.budget_bytes:
                self._remove(next(iter(self._items)))
                self.evictions += 1

    def in_use(self, name: str) -> bool:
        """Whether some segment's column `name` is cached: queries are reading that column,
        so a new segment's copy is worth keeping decoded from the start."""
        return self._names.get(name, 0) > 0

    def drop(self, owner: str) -> None:
        """Forget every column of one segment (keys are `(owner, column)`)."""
        with self._lock:
            for key in [k for k in self._items if k[0] == owner]:
                self._remove(key)

    def _remove(self, key: Key) -> None:
        old = self._items.pop(key, None)
        if old is not None:
            self.bytes -= old.nbytes
            self._names[key[1]] -= 1

    def stats(self) -> dict[str, int]:
        return {"bytes": self.bytes, "budgetBytes": self.budget_bytes, "columns": len(self._items),
                "hits": self.hits, "misses": self.misses, "evictions": self.evictions}

