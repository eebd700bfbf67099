"""Calendar periods (UTC days, Monday weeks, calendar months) for stickiness and lifecycle.

Both queries work on whole periods: a range selects every period it overlaps, and all events
inside those periods count (as PostHog does), so an answer never depends on where inside a
day the range happens to start. The grid is part of the answer's meaning, so it is written
once, here; backends only map a timestamp to its period number (`index`) — numpy here, SQL in
`clickhouse/period_sql.py` — and both must agree on `number`.

Period numbers: days since 1970-01-01, weeks since Monday 1969-12-29 (week 0), months since
January 1970.

Thread rule: pure functions over their arguments; any thread.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rta.core.errors import field_error
from rta.core.queries.timeparse import DAY, WEEK, iso

INTERVALS = ("day", "week", "month")
WEEK_SHIFT = 3 * DAY  # 1970-01-01 was a Thursday: +3 days puts week starts on Mondays
MAX_GRID = 1000
DEFAULT_PERIODS = 8  # the current period and the 7 before it


def number(interval: str, ts: int) -> int:
    """The period number of one ms timestamp."""
    if interval == "day":
        return ts // DAY
    if interval == "week":
        return (ts + WEEK_SHIFT) // WEEK
    month = np.array([ts], dtype="datetime64[ms]").astype("datetime64[M]")
    return int(month.astype(np.int64)[0])


def start_of(interval: str, n: int) -> int:
    """The first ms of period number `n`."""
    if interval == "day":
        return n * DAY
    if interval == "week":
        return n * WEEK - WEEK_SHIFT
    return int(np.array([n], dtype="datetime64[M]").astype("datetime64[ms]").astype(
        np.int64)[0])


@dataclass(frozen=True)
class PeriodGrid:
    """`count` periods of `interval` from period number `first`."""

    interval: str
    first: int
    count: int

    @property
    def last(self) -> int:
        return self.first + self.count - 1

    def starts(self) -> list[int]:
        return [start_of(self.interval, self.first + i) for i in range(self.count)]

    def edges(self, before: int = 0, after: int = 0) -> np.ndarray:
        """Period starts from `first - before` to the end of `last + after` (int64)."""
        return np.array([start_of(self.interval, n) for n in
                         range(self.first - before, self.last + after + 2)], dtype=np.int64)

    @property
    def start_time(self) -> int:
        return start_of(self.interval, self.first)

    @property
    def end_time(self) -> int:
        """Exclusive end of the last period."""
        return start_of(self.interval, self.last + 1)

    def index(self, ts: np.ndarray, before: int = 0) -> np.ndarray:
        """Each timestamp's period relative to `first - before` (so 0 is period
        `first - before`); -1 for earlier, count + before for later (int64)."""
        if self.interval == "day":
            rel = ts // DAY - (self.first - before)
        elif self.interval == "week":
            rel = (ts + WEEK_SHIFT) // WEEK - (self.first - before)
        else:
            edges = self.edges(before)
            return np.searchsorted(edges, ts, "right").astype(np.int64) - 1
        return np.clip(rel, -1, self.count + before)

    def labels(self) -> list[str]:
        return [iso(t) for t in self.starts()]


def parse_grid(body: dict[str, object], start: int | None, end: int | None, now: int,
               ) -> PeriodGrid:
    """The grid of `interval` periods overlapping [start, end) (end exclusive; defaults: the
    current period and the 7 before it, ending with the period holding now)."""
    interval = body.get("interval", "day")
    if interval not in INTERVALS:
        raise field_error("interval", f"must be one of {', '.join(INTERVALS)}",
                          value=interval, allowed=list(INTERVALS))
    assert isinstance(interval, str)
    last = number(interval, (now if end is None else end - 1))
    first = last - DEFAULT_PERIODS + 1 if start is None else number(interval, start)
    first = max(first, number(interval, 0))
    if first > last:
        raise field_error("startTime", "must be before endTime")
    count = last - first + 1
    if count > MAX_GRID:
        raise field_error("startTime", f"the range holds {count} {interval}s; at most "
                          f"{MAX_GRID}", periods=count)
    return PeriodGrid(interval, first, count)
