"""Stickiness and lifecycle answers, built from the few numbers a backend counts.

A backend counts (stickiness) users per number of active periods and (lifecycle) users per
period and status; what those counts mean in the answer (percentages, cumulative shares,
the sign of dormant, totals) is written once, here, so both backends answer alike.

Thread rule: pure functions over their arguments; any thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from rta.core.queries.segment_spec import pct
from rta.core.queries.stickiness_specs import LifecycleQuery, StickinessQuery
from rta.core.queries.timeparse import iso

STATUSES = ("new", "returning", "resurrecting", "dormant")


@dataclass(frozen=True)
class StickinessRow:
    periods: int  # active in exactly this many periods
    users: int
    percentage: float  # of totalUsers
    cumulative_users: int  # active in at least `periods` periods
    cumulative_percentage: float

    def to_json(self) -> dict[str, Any]:
        return {"periods": self.periods, "users": self.users, "percentage": self.percentage,
                "cumulativeUsers": self.cumulative_users,
                "cumulativePercentage": self.cumulative_percentage}


@dataclass(frozen=True)
class StickinessResult:
    name: Any
    event_type: str
    interval: str
    start_time: int  # first ms of the first period
    end_time: int  # last ms of the last period
    periods: int
    total_users: int
    rows: tuple[StickinessRow, ...]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "eventType": self.event_type, "interval": self.interval,
                "startTime": self.start_time, "endTime": self.end_time,
                "periods": self.periods, "totalUsers": self.total_users,
                "stickiness": [r.to_json() for r in self.rows]}


def stickiness_result(q: StickinessQuery, users_by_count: np.ndarray) -> StickinessResult:
    """`users_by_count[k]`: users active in exactly k periods (k = 0..count; 0 is unused)."""
    n = q.grid.count
    counts = np.zeros(n + 1, dtype=np.int64)
    got = np.asarray(users_by_count, dtype=np.int64)[:n + 1]
    counts[:len(got)] = got
    counts[0] = 0
    total = int(counts.sum())
    at_least = np.cumsum(counts[::-1])[::-1]
    rows = tuple(StickinessRow(k, int(counts[k]), pct(int(counts[k]), total),
                               int(at_least[k]), pct(int(at_least[k]), total))
                 for k in range(1, n + 1))
    return StickinessResult(q.name, q.event_type, q.grid.interval, q.grid.start_time,
                            q.grid.end_time - 1, n, total, rows)


@dataclass(frozen=True)
class LifecyclePeriod:
    start_time: int
    date: str
    new: int
    returning: int
    resurrecting: int
    dormant: int  # negative (users lost), as PostHog charts it

    def to_json(self) -> dict[str, Any]:
        return {"startTime": self.start_time, "date": self.date, "new": self.new,
                "returning": self.returning, "resurrecting": self.resurrecting,
                "dormant": self.dormant}


@dataclass(frozen=True)
class LifecycleResult:
    name: Any
    event_type: str
    interval: str
    start_time: int
    end_time: int
    periods: tuple[LifecyclePeriod, ...]

    def to_json(self) -> dict[str, Any]:
        totals = {s: sum(getattr(p, s) for p in self.periods) for s in STATUSES}
        return {"name": self.name, "eventType": self.event_type, "interval": self.interval,
                "startTime": self.start_time, "endTime": self.end_time,
                "periods": [p.to_json() for p in self.periods], "totals": totals}


def lifecycle_result(q: LifecycleQuery, counts: np.ndarray) -> LifecycleResult:
    """`counts[i, s]`: users of grid period i with status STATUSES[s] (dormant positive)."""
    grid = q.grid
    rows = tuple(LifecyclePeriod(t, iso(t), int(counts[i, 0]), int(counts[i, 1]),
                                 int(counts[i, 2]), -int(counts[i, 3]))
                 for i, t in enumerate(grid.starts()))
    return LifecycleResult(q.name, q.event_type, grid.interval, grid.start_time,
                           grid.end_time - 1, rows)
