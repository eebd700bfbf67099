"""Typed analytics queries and their pure parsers (request dict or CLI options in).

Each `parse_*` checks the parameters and returns a frozen spec; it reads no data, so checks
that need data (is the metric numeric? which users are in the saved segment?) happen when the
query runs (`rta.core.queries.analytics.execute`).

Thread rule: pure functions over their arguments; any thread.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rta.core.errors import field_error
from rta.core.group_wire import parse_unit
from rta.core.queries import params as p
from rta.core.queries.buckets import AGGREGATIONS, METRIC_AGGREGATIONS
from rta.core.queries.params import FilterSpec

AGGREGATE_KEYS = ("metric", "property", "aggregation", "interval", "groupBy", "limit",
                  "tzOffset", "unit")
COUNT_KEYS = ("groupBy", "limit")
UNIQUE_KEYS = ("interval", "approximate", "precision", "tzOffset", "unit")
TOP_KEYS = ("property", "n", "limit", "sort")
MAX_GROUPS = 10_000
MAX_SERIES = 100
DEFAULT_PRECISION = 14  # HyperLogLog: 16384 registers, ~0.81 % standard error


@dataclass(frozen=True)
class AggregateQuery:
    """POST /analytics/aggregate: a zero-filled time series of one aggregation."""

    filter: FilterSpec
    now: int
    metric: str | None
    aggregation: str
    interval: int | None
    tz_offset: int  # ms east of UTC
    group_by: str | None
    limit: int
    unit: str = "users"  # unique_users: "users" or "group:<type>" (queries/units.py)


@dataclass(frozen=True)
class CountQuery:
    """GET /analytics/count: matching events, optionally per type or property value."""

    filter: FilterSpec
    now: int
    group_by: str | None
    limit: int


@dataclass(frozen=True)
class UniqueUsersQuery:
    """GET /analytics/unique-users: distinct users (exact or HyperLogLog), optionally per
    interval."""

    filter: FilterSpec
    now: int
    interval: int | None
    tz_offset: int
    approximate: bool
    precision: int
    unit: str = "users"  # "users" or "group:<type>" (queries/units.py)


@dataclass(frozen=True)
class TopQuery:
    """GET /analytics/top: the most frequent values of a property with users and share."""

    filter: FilterSpec
    now: int
    property: str
    n: int
    sort: str  # "count" | "users"


AnalyticsQuery = AggregateQuery | CountQuery | UniqueUsersQuery | TopQuery


def checked_aggregation(aggregation: Any, metric: str | None) -> str:
    """The aggregation asked for (default: avg of a metric, else count), checked against the
    metric it needs; shared with dashboard widgets, which build their specs directly."""
    if aggregation is None or aggregation == "":
        aggregation = "avg" if metric else "count"
    if not isinstance(aggregation, str) or aggregation.lower() not in AGGREGATIONS:
        raise field_error("aggregation", "must be one of " + ", ".join(AGGREGATIONS),
                          value=aggregation, allowed=list(AGGREGATIONS))
    aggregation = aggregation.lower()
    if aggregation in METRIC_AGGREGATIONS and not metric:
        raise field_error("metric", f"is required for aggregation {aggregation!r}: the "
                          "numeric property to aggregate")
    return aggregation


def parse_aggregate(body: Any, now: int) -> AggregateQuery:
    p.check_keys(body, AGGREGATE_KEYS)
    flt = p.filter_spec(body, now)
    metric = p.property_name(body, "metric", False) or p.property_name(body, "property", False)
    if metric is not None and metric.startswith("properties."):
        metric = metric[len("properties."):]
    aggregation = checked_aggregation(p.one(body, "aggregation"), metric)
    interval = p.interval(body)
    offset = p.tz_offset(body)
    group_by = p.property_name(body, "groupBy", False)
    limit = p.int_param(body, "limit", 10, 1, MAX_SERIES)
    unit = _unit(body)
    if unit != "users" and aggregation != "unique_users":
        raise field_error("unit", "applies to aggregation unique_users only", value=unit)
    return AggregateQuery(flt, now, metric, aggregation, interval, offset, group_by, limit,
                          unit)


def _unit(params: Any) -> str:
    """`unit`: "users" (the default) or "group:<type>"."""
    value = p.one(params, "unit")
    return "users" if value is None or value == "" else parse_unit(value, "unit", ("users",))


def parse_count(params: Any, now: int) -> CountQuery:
    p.check_keys(params, COUNT_KEYS)
    flt = p.filter_spec(params, now)
    group_by = p.property_name(params, "groupBy", False)
    limit = p.int_param(params, "limit", 100, 1, MAX_GROUPS)
    return CountQuery(flt, now, group_by, limit)


def parse_unique_users(params: Any, now: int) -> UniqueUsersQuery:
    p.check_keys(params, UNIQUE_KEYS)
    flt = p.filter_spec(params, now)
    interval = p.interval(params)
    offset = p.tz_offset(params)
    approximate = p.bool_param(params, "approximate")
    precision = p.int_param(params, "precision", DEFAULT_PRECISION, 4, 18)
    return UniqueUsersQuery(flt, now, interval, offset, approximate, precision, _unit(params))


def parse_top(params: Any, now: int) -> TopQuery:
    p.check_keys(params, TOP_KEYS)
    flt = p.filter_spec(params, now)
    prop = p.property_name(params, "property", True)
    assert prop is not None
    n = p.int_param(params, "n", p.int_param(params, "limit", 10, 1, MAX_GROUPS), 1,
                    MAX_GROUPS)
    sort = p.one(params, "sort") or "count"
    if sort not in ("count", "users"):
        raise field_error("sort", "must be one of count, users", value=sort,
                          allowed=["count", "users"])
    return TopQuery(flt, now, prop, n, sort)


PARSERS: dict[str, Callable[[Any, int], AnalyticsQuery]] = {
    "aggregate": parse_aggregate, "count": parse_count, "unique-users": parse_unique_users,
    "top": parse_top}


def parse(kind: str, params: Any, now: int) -> AnalyticsQuery:
    """Parse a query by its route name: aggregate, count, unique-users, top."""
    return PARSERS[kind](params, now)
