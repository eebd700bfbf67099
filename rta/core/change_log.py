"""Which time ranges changed since a data version: the result cache's invalidation.

Every change (events stored, shipped or dropped) bumps the version and records the range of
timestamps it touched; a cached answer for [start, end) stays valid while no later change
overlaps it. The log keeps the last 4,096 changes; older versions count as changed.

Thread rule: `record` from the owner's thread (the store's loop, the shipper); `since` from
any thread (one deque read, appends are atomic).
"""

from __future__ import annotations

from collections import deque


class ChangeLog:
    def __init__(self, keep: int = 4096) -> None:
        self.version = 0
        self._changes: deque[tuple[int, int, int]] = deque(maxlen=keep)

    def record(self, lo: int, hi: int) -> int:
        """A change touching timestamps lo..hi (inclusive); the new version."""
        self.version += 1
        self._changes.append((self.version, lo, hi))
        return self.version

    def since(self, version: int, start: int | None, end: int | None) -> bool:
        """Whether events with start <= ts < end changed after `version`."""
        if version == self.version:
            return False
        if not self._changes or self._changes[0][0] > version + 1:
            return True  # the log no longer reaches back that far
        for v, lo, hi in reversed(self._changes):
            if v <= version:
                break
            if (start is None or hi >= start) and (end is None or lo < end):
                return True
        return False
