"""The time grid of a series: epoch-aligned buckets, part of the API's meaning.

Bucket alignment, the automatic interval and the bucket cap decide what a client sees, so they
live with the query specs rather than in one backend's kernels.

Thread rule: pure functions over their arguments; any thread.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rta.core.errors import field_error
from rta.core.queries.timeparse import DAY, HOUR, MINUTE, SECOND, WEEK

AGGREGATIONS = ("count", "sum", "avg", "min", "max", "p50", "p90", "p95", "p99",
                "unique_users")
METRIC_AGGREGATIONS = ("sum", "avg", "min", "max", "p50", "p90", "p95", "p99")
QUANTILES = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}
MAX_BUCKETS = 10_000
AUTO_TARGET = 200  # buckets an automatic interval aims for at most
NICE_INTERVALS = (SECOND, 5 * SECOND, 10 * SECOND, 30 * SECOND, MINUTE, 5 * MINUTE,
                  10 * MINUTE, 15 * MINUTE, 30 * MINUTE, HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR,
                  DAY, WEEK)


@dataclass(frozen=True)
class Buckets:
    """`count` buckets of `interval` ms from `start` (aligned by `make_buckets`)."""

    start: int
    interval: int
    count: int

    @property
    def end(self) -> int:
        return self.start + self.interval * self.count

    def edges(self) -> np.ndarray:
        return self.start + np.arange(self.count + 1, dtype=np.int64) * self.interval

    def timestamps(self) -> list[int]:
        return self.edges()[:-1].tolist()

    def index(self, ts: np.ndarray) -> np.ndarray:
        return (ts - self.start) // self.interval


def auto_interval(span: int) -> int:
    """The smallest "nice" interval giving at most AUTO_TARGET buckets over `span` ms."""
    for step in NICE_INTERVALS:
        if span <= step * AUTO_TARGET:
            return step
    return -(-span // (AUTO_TARGET * WEEK)) * WEEK


def make_buckets(start: int, end: int, interval: int | None,
                 field_name: str = "interval", offset_ms: int = 0) -> Buckets:
    """Buckets covering [start, end), aligned to the epoch shifted by `offset_ms` (a time
    zone's offset east of UTC: daily buckets then start at local midnight): start rounds
    down, end rounds up."""
    step = interval if interval is not None else auto_interval(max(end - start, 1))
    first = start - (start + offset_ms) % step
    last = end + (-(end + offset_ms)) % step
    count = max((last - first) // step, 1)
    if count > MAX_BUCKETS:
        raise field_error(field_name, f"would produce {count} buckets; the maximum is "
                          f"{MAX_BUCKETS}: use a larger interval or a shorter time range",
                          value=step, buckets=count, maxBuckets=MAX_BUCKETS)
    return Buckets(first, step, count)
