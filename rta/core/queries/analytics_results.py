"""Typed analytics results; `to_json()` gives the API's response body, field for field.

Rows are kept columnar (timestamps, values, counts) and zipped into objects only at the edge,
so a long series costs no Python object per bucket until it is written out. `cached` says
whether the answer came from the result cache (the cache stores results with it False).

Thread rule: pure functions over their arguments; any thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Number = int | float | None
EventType = str | list[str] | None


@dataclass(frozen=True)
class Total:
    value: Number
    count: int

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value, "count": self.count}


@dataclass(frozen=True)
class SeriesRows:
    """One series: per bucket its start, aggregated value (None = no value) and events."""

    timestamps: list[int]
    values: list[Any]
    counts: list[int]

    def to_json(self) -> list[dict[str, Any]]:
        return [{"timestamp": t, "value": v, "count": c}
                for t, v, c in zip(self.timestamps, self.values, self.counts, strict=True)]


@dataclass(frozen=True)
class GroupSeries:
    key: Any
    total: Total
    rows: SeriesRows

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "total": self.total.to_json(), "buckets": self.rows.to_json()}


@dataclass(frozen=True)
class SeriesData:
    """What a backend computes for an aggregate: the series, its total, top groups."""

    rows: SeriesRows
    total: Total
    series: tuple[GroupSeries, ...] = ()
    groups: int = 0


@dataclass(frozen=True)
class AggregateResult:
    event_type: EventType
    metric: str | None
    aggregation: str
    group_by: str | None
    interval: int | None
    start_time: int | None
    end_time: int | None
    bucket_count: int
    data: SeriesData
    cached: bool = False
    unit: str = "users"  # unique_users counts these ("group:<type>": groups)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "eventType": self.event_type, "metric": self.metric,
            "aggregation": self.aggregation, "groupBy": self.group_by,
            "interval": self.interval, "startTime": self.start_time, "endTime": self.end_time,
            "bucketCount": self.bucket_count, "buckets": self.data.rows.to_json(),
            "total": self.data.total.to_json()}
        if self.group_by:
            out["series"] = [s.to_json() for s in self.data.series]
            out["groups"] = self.data.groups
        if self.unit != "users":
            out["unit"] = self.unit
        out["cached"] = self.cached
        return out


@dataclass(frozen=True)
class CountGroup:
    key: Any
    count: int
    share: float

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "count": self.count, "share": self.share}


@dataclass(frozen=True)
class GroupedCount:
    """Counts per value of `groupBy`: the top groups, how many values, the rest."""

    count: int
    groups: tuple[CountGroup, ...]
    distinct: int
    other_count: int
    missing: int


@dataclass(frozen=True)
class CountResult:
    event_type: EventType
    start_time: int | None
    end_time: int | None
    group_by: str | None
    count: int
    grouped: GroupedCount | None = None
    cached: bool = False

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"eventType": self.event_type, "startTime": self.start_time,
                               "endTime": self.end_time, "groupBy": self.group_by,
                               "count": self.count}
        if self.grouped is not None:
            g = self.grouped
            out.update(groups=[x.to_json() for x in g.groups], distinct=g.distinct,
                       otherCount=g.other_count, missing=g.missing)
        out["cached"] = self.cached
        return out


@dataclass(frozen=True)
class Approximation:
    """How far a HyperLogLog estimate may be off."""

    relative_standard_error: float
    standard_error: float
    precision: int


@dataclass(frozen=True)
class UniqueRows:
    """Distinct users per bucket; `events` (every matching event) for exact counts only."""

    timestamps: list[int]
    values: list[int]
    events: list[int] | None = None

    def to_json(self) -> list[dict[str, Any]]:
        if self.events is None:
            return [{"timestamp": t, "value": v}
                    for t, v in zip(self.timestamps, self.values, strict=False)]
        return [{"timestamp": t, "value": v, "events": e}
                for t, v, e in zip(self.timestamps, self.values, self.events, strict=True)]


@dataclass(frozen=True)
class UniqueUsersResult:
    event_type: EventType
    start_time: int | None
    end_time: int | None
    approximate: bool
    interval: int | None
    unique_users: int
    events: int
    approximation: Approximation | None = None
    buckets: UniqueRows | None = None
    cached: bool = False
    unit: str = "users"  # what uniqueUsers counts ("group:<type>": groups)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"eventType": self.event_type, "startTime": self.start_time,
                               "endTime": self.end_time, "approximate": self.approximate,
                               "interval": self.interval, "uniqueUsers": self.unique_users,
                               "events": self.events}
        if self.approximation is not None:
            a = self.approximation
            out.update(relativeStandardError=a.relative_standard_error,
                       standardError=a.standard_error, precision=a.precision)
        if self.buckets is not None:
            out["buckets"] = self.buckets.to_json()
        if self.unit != "users":
            out["unit"] = self.unit
        out["cached"] = self.cached
        return out


@dataclass(frozen=True)
class TopValue:
    value: Any
    count: int
    unique_users: int
    share: float

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value, "count": self.count, "uniqueUsers": self.unique_users,
                "share": self.share}


@dataclass(frozen=True)
class TopData:
    """What a backend computes for a top-N: totals and the chosen values."""

    events: int
    with_value: int
    distinct: int
    values: tuple[TopValue, ...]


@dataclass(frozen=True)
class TopResult:
    event_type: EventType
    property: str
    n: int
    sort: str
    start_time: int | None
    end_time: int | None
    data: TopData
    cached: bool = False

    def to_json(self) -> dict[str, Any]:
        d = self.data
        shown = sum(v.count for v in d.values)
        return {"eventType": self.event_type, "property": self.property, "n": self.n,
                "sort": self.sort, "startTime": self.start_time, "endTime": self.end_time,
                "events": d.events, "withValue": d.with_value, "distinct": d.distinct,
                "values": [v.to_json() for v in d.values], "otherCount": d.with_value - shown,
                "cached": self.cached}


AnalyticsResult = AggregateResult | CountResult | UniqueUsersResult | TopResult
