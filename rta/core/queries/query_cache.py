"""Result cache for analytics queries (typed results, keyed by the typed spec).

A result is keyed by the fully resolved query (time range included) and remembers the store
version its snapshot had. It is served only while it is younger than the TTL *and* the store
reports no event landed in the result's time range since that version
(`store.changed_since`), so a cached answer is never older than the data it covers. Retention
bumps the store version too, so dropped segments invalidate what they touched.

Thread rule: any thread; the cache locks itself (queries look up and store from their
worker threads, cache hits are served on the event loop).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Protocol


class ChangeLog(Protocol):
    def changed_since(self, version: int, start: int | None, end: int | None) -> bool: ...


@dataclass
class _Entry:
    value: Any
    version: int
    start: int | None
    end: int | None
    stored_at: float  # monotonic seconds


class QueryCache:
    """A bounded LRU of query results. Thread-safe: facade calls may run in worker threads."""

    def __init__(self, ttl_ms: int = 30_000, max_entries: int = 512) -> None:
        self.ttl_ms = ttl_ms
        self.max_entries = max_entries
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self.hits = 0
        self.misses = 0
        self.invalidations = 0
        self._lock = threading.Lock()

    def get(self, key: str, store: ChangeLog, now: float | None = None) -> Any:
        """The cached result for `key`, or None when absent, expired or overtaken by data."""
        if self.ttl_ms <= 0:
            self.misses += 1
            return None
        with self._lock:
            return self._get(key, store, now)

    def _get(self, key: str, store: ChangeLog, now: float | None) -> Any:
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        current = time.monotonic() if now is None else now
        if (current - entry.stored_at) * 1000 >= self.ttl_ms or store.changed_since(
                entry.version, entry.start, entry.end):
            del self._entries[key]
            self.invalidations += 1
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry.value

    def put(self, key: str, value: Any, version: int, start: int | None,
            end: int | None, now: float | None = None) -> None:
        """Remember `value`, computed from a snapshot at store `version`, covering [start, end)."""
        if self.ttl_ms <= 0:
            return
        with self._lock:
            self._entries[key] = _Entry(value, version, start, end,
                                        time.monotonic() if now is None else now)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def statistics(self) -> dict[str, int]:
        return {"entries": len(self._entries), "hits": self.hits, "misses": self.misses,
                "invalidations": self.invalidations, "ttlMs": self.ttl_ms}
