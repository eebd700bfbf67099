"""Analytics queries: typed specs executed against a `QueryContext`, with the result cache.

    query = parse("count", params, now)       # pure (analytics_specs)
    result = execute(query, ctx, cache)       # worker thread: resolves segments, computes
    body = result.to_json()                   # the API's response, at the edge

Execution is split so the server can answer cache hits on the event loop: `plan` binds a
query to its context (resolved time range, segment members, cache key) and `compute` does
the backend work. A query naming a saved segment must be planned in the worker thread too
(`needs_worker`), since its members are part of the cache key and cost a query to find.

Times in responses: `startTime` and `endTime` are the resolved range, both inclusive (the
same convention requests use, so they round-trip); unbounded sides report the data's bounds.
Time series buckets are epoch-aligned (each has its start `timestamp`; the first and last may
be partial) and hold only events inside the requested range; empty buckets are zero (count,
sum, unique_users) or null (avg, min, max, percentiles — there is no value to show).

`run_aggregate`, `run_count`, `run_unique_users`, `run_top` and `prepare` (dict in, dict
out) remain only for callers not yet on the typed path (dashboards, alerts).

Thread rule: parse anywhere (pure); `execute` and `plan` in the query's worker thread,
except cache lookups of queries that name no saved segment, which the event loop may answer.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from rta.core.errors import field_error
from rta.core.queries.analytics_results import (
    AggregateResult,
    AnalyticsResult,
    Approximation,
    CountResult,
    EventType,
    SeriesData,
    SeriesRows,
    TopResult,
    Total,
    UniqueRows,
    UniqueUsersResult,
)
from rta.core.queries.analytics_specs import (
    AggregateQuery,
    AnalyticsQuery,
    CountQuery,
    TopQuery,
    UniqueUsersQuery,
    parse,
)
from rta.core.queries.backend import QueryContext
from rta.core.queries.buckets import MAX_BUCKETS, METRIC_AGGREGATIONS, Buckets, make_buckets
from rta.core.queries.filters import EventFilter
from rta.core.queries.params import FilterSpec
from rta.core.queries.query_cache import QueryCache
from rta.core.queries.units import unit_backend

if TYPE_CHECKING:
    from rta.core.engine import Engine

KINDS = {AggregateQuery: "aggregate", CountQuery: "count", UniqueUsersQuery: "unique",
         TopQuery: "top"}


@dataclass(frozen=True)
class Plan:
    """A query bound to one context: the filter to run (range resolved, segment members in),
    the buckets of a series, and the cache key with what invalidates it."""

    query: AnalyticsQuery
    ctx: QueryContext
    flt: EventFilter
    buckets: Buckets | None
    key: str

    @property
    def version(self) -> int:
        return self.ctx.backend.version


def needs_worker(query: AnalyticsQuery) -> bool:
    """True when planning itself reads data (a saved segment must be evaluated)."""
    return bool(query.filter.segments)


def execute(query: AnalyticsQuery, ctx: QueryContext,
            cache: QueryCache | None = None) -> AnalyticsResult:
    """Plan, answer from the cache when still valid, else compute (and remember)."""
    planned = plan(query, ctx)
    if cache is not None:
        hit = lookup(planned, cache)
        if hit is not None:
            return hit
    return compute_and_remember(planned, cache)


def lookup(planned: Plan, cache: QueryCache) -> AnalyticsResult | None:
    hit: AnalyticsResult | None = cache.get(planned.key, planned.ctx.backend)
    return None if hit is None else dataclasses.replace(hit, cached=True)


def compute_and_remember(planned: Plan, cache: QueryCache | None) -> AnalyticsResult:
    result = compute(planned)
    if cache is not None:
        cache.put(planned.key, result, planned.version, planned.flt.start, planned.flt.end)
    return result


# -- planning ------------------------------------------------------------------------------

def resolve_filter(spec: FilterSpec, ctx: QueryContext) -> EventFilter:
    """A fresh filter with the saved segments' members in (errors name the field)."""
    flt = dataclasses.replace(spec.flt, _luts={})
    for path, name in spec.segments:
        if ctx.segments is None:
            raise field_error(path, "saved segments are not available here")
        try:
            members = ctx.segments(name)
        except KeyError:
            raise field_error(path, f"no saved segment named {name!r}") from None
        flt.segment_users = members if flt.segment_users is None else np.intersect1d(
            flt.segment_users, members)
    return flt


def plan(query: AnalyticsQuery, ctx: QueryContext) -> Plan:
    flt = resolve_filter(query.filter, ctx)
    buckets = None
    extra: dict[str, Any]
    if isinstance(query, AggregateQuery):
        if query.metric and query.aggregation in METRIC_AGGREGATIONS:
            ctx.backend.check_numeric(query.metric, "metric")
        buckets = _bind_series(ctx, flt, query.now, query.interval, query.tz_offset)
        extra = {"metric": query.metric, "aggregation": query.aggregation,
                 "interval": query.interval, "groupBy": query.group_by, "limit": query.limit,
                 "tzOffset": query.tz_offset}
        if query.unit != "users":
            extra["unit"] = query.unit
    elif isinstance(query, CountQuery):
        extra = {"groupBy": query.group_by, "limit": query.limit}
    elif isinstance(query, UniqueUsersQuery):
        if query.interval is not None:
            buckets = _bind_series(ctx, flt, query.now, query.interval, query.tz_offset)
        extra = {"interval": query.interval, "tzOffset": query.tz_offset,
                 "approximate": query.approximate,
                 "precision": query.precision if query.approximate else None}
        if query.unit != "users":
            extra["unit"] = query.unit
    else:
        extra = {"property": query.property, "n": query.n, "sort": query.sort}
    key = json.dumps([KINDS[type(query)], query.filter.canonical, flt.start, flt.end,
                      _segment_fingerprint(flt), extra],
                     sort_keys=True, default=str, separators=(",", ":"))
    return Plan(query, ctx, flt, buckets, key)


def _bind_series(ctx: QueryContext, flt: EventFilter, now: int, interval: int | None,
                 offset: int) -> Buckets | None:
    """Concrete buckets for a series, the filter narrowed to them (empty without data).

    Buckets are epoch-aligned, so the first and last may be partial: only events inside the
    requested range count, exactly as `WHERE ts BETWEEN start AND end` would.
    """
    start, end = _series_range(ctx, flt, now, interval)
    if start is None or end is None:  # no range given and no data: an empty series
        flt.start = flt.end = 0
        return None
    buckets = make_buckets(start, end, interval, offset_ms=offset)
    flt.start, flt.end = start, end
    return buckets


def _series_range(ctx: QueryContext, flt: EventFilter, now: int,
                  interval: int | None) -> tuple[int | None, int | None]:
    """A concrete [start, end) for a series: missing sides come from the data (or now)."""
    start, end = flt.start, flt.end
    if start is not None and end is not None:
        return start, end
    bounds = ctx.backend.time_bounds()
    if end is None:
        if start is not None:
            end = max(now + 1, bounds[1] + 1 if bounds else now + 1, start + 1)
        elif bounds is not None:
            end = bounds[1] + 1
    if start is None and end is not None:
        lo = bounds[0] if bounds else end - (interval or 1)
        if interval is not None:  # (at most MAX_BUCKETS - 1 intervals back, so aligning the
            # ends still fits: one stray old timestamp, say seconds sent as ms, must not
            # make every default series too long to compute)
            lo = max(lo, end - (MAX_BUCKETS - 1) * interval)
        start = min(lo, end - 1)
    return start, end


def _segment_fingerprint(flt: EventFilter) -> str | None:
    """Saved segments can change without new events: their members belong in the key."""
    if flt.segment_users is None:
        return None
    data = np.ascontiguousarray(flt.segment_users).tobytes()
    return hashlib.blake2b(data, digest_size=12).hexdigest()


# -- computing -----------------------------------------------------------------------------

def compute(planned: Plan) -> AnalyticsResult:
    """The backend's answer for a planned query (no cache involved)."""
    q = planned.query
    if isinstance(q, AggregateQuery):
        return _aggregate(planned, q)
    if isinstance(q, CountQuery):
        return _count(planned, q)
    if isinstance(q, UniqueUsersQuery):
        return _unique(planned, q)
    return _top(planned, q)


def _event_type(flt: EventFilter) -> EventType:
    if flt.types is None:
        return None
    return flt.types[0] if len(flt.types) == 1 else list(flt.types)


def _range_out(ctx: QueryContext, flt: EventFilter) -> tuple[int | None, int | None]:
    """The resolved range to report (inclusive end); unbounded sides take the data's bounds."""
    bounds = ctx.backend.time_bounds()
    lo = flt.start if flt.start is not None else (bounds[0] if bounds else None)
    hi = flt.end - 1 if flt.end is not None else (bounds[1] if bounds else None)
    return lo, hi


def _aggregate(planned: Plan, q: AggregateQuery) -> AggregateResult:
    flt, buckets = planned.flt, planned.buckets
    if buckets is None:
        empty = 0 if q.aggregation in ("count", "sum", "unique_users") else None
        data = SeriesData(SeriesRows([], [], []), Total(empty, 0))
        unit_backend(planned.ctx, q.unit, "unit", flt.segment_users)  # (checked alike)
        return AggregateResult(_event_type(flt), q.metric, q.aggregation, q.group_by,
                               q.interval, None, None, 0, data, unit=q.unit)
    backend = unit_backend(planned.ctx, q.unit, "unit", flt.segment_users)
    data = backend.series(flt, buckets, q.aggregation, q.metric, q.group_by, q.limit)
    assert flt.end is not None
    return AggregateResult(_event_type(flt), q.metric, q.aggregation, q.group_by,
                           buckets.interval, flt.start, flt.end - 1, buckets.count, data,
                           unit=q.unit)


def _count(planned: Plan, q: CountQuery) -> CountResult:
    flt, backend = planned.flt, planned.ctx.backend
    lo, hi = _range_out(planned.ctx, flt)
    if q.group_by is None:
        return CountResult(_event_type(flt), lo, hi, None, backend.count(flt))
    grouped = backend.count_groups(flt, q.group_by, q.limit)
    return CountResult(_event_type(flt), lo, hi, q.group_by, grouped.count, grouped)


def _unique(planned: Plan, q: UniqueUsersQuery) -> UniqueUsersResult:
    result = _unique_of(planned, q)
    return result if q.unit == "users" else dataclasses.replace(result, unit=q.unit)


def _unique_of(planned: Plan, q: UniqueUsersQuery) -> UniqueUsersResult:
    flt, buckets = planned.flt, planned.buckets
    backend = unit_backend(planned.ctx, q.unit, "unit", flt.segment_users)
    if buckets is not None and flt.start is not None and flt.end is not None:
        lo: int | None = flt.start
        hi: int | None = flt.end - 1
    elif q.interval is not None:
        lo = hi = None
    else:
        lo, hi = _range_out(planned.ctx, flt)
    head = (_event_type(flt), lo, hi, q.approximate, q.interval)
    if q.approximate:
        per, overall, events = backend.unique_approx(flt, buckets, q.precision)
        rel = 1.04 / math.sqrt(1 << q.precision)
        rows = None
        if q.interval is not None:
            stamps = buckets.timestamps() if buckets else []
            rows = UniqueRows(stamps, [round(v) for v in per])
        return UniqueUsersResult(*head, round(overall), events,
                                 Approximation(rel, round(overall * rel, 3), q.precision), rows)
    if q.interval is None:
        users, events = backend.unique_users(flt)
        return UniqueUsersResult(*head, users, events)
    if buckets is None:
        return UniqueUsersResult(*head, 0, 0, None, UniqueRows([], [], []))
    users, rows = backend.unique_series(flt, buckets)
    assert rows.events is not None
    return UniqueUsersResult(*head, users, sum(rows.events), None, rows)


def _top(planned: Plan, q: TopQuery) -> TopResult:
    flt = planned.flt
    lo, hi = _range_out(planned.ctx, flt)
    data = planned.ctx.backend.top(flt, q.property, q.n, q.sort == "users")
    return TopResult(_event_type(flt), q.property, q.n, q.sort, lo, hi, data)


# -- compatibility: dict in, dict out (until dashboards and alerts use the typed path) -------

def run_aggregate(engine: Engine, body: dict[str, Any]) -> dict[str, Any]:
    """POST /analytics/aggregate as a dict call, through the result cache."""
    return _run("aggregate", engine, body)


def run_count(engine: Engine, params: dict[str, Any]) -> dict[str, Any]:
    return _run("count", engine, params)


def run_unique_users(engine: Engine, params: dict[str, Any]) -> dict[str, Any]:
    return _run("unique-users", engine, params)


def run_top(engine: Engine, params: dict[str, Any]) -> dict[str, Any]:
    return _run("top", engine, params)


def _run(kind: str, engine: Engine, params: dict[str, Any]) -> dict[str, Any]:
    from rta.core import query_services as services

    now = services.now()
    query = parse(kind, params, now)
    return execute(query, services.context(engine, now), services.query_cache(engine)).to_json()


@dataclass
class Prepared:
    """`prepare(kind, engine, params).compute()`: the uncached answer as a dict (without
    `cached`), over `engine.snapshot()`; for dashboards until they call `execute`."""

    query: AnalyticsQuery
    ctx: QueryContext

    def compute(self) -> dict[str, Any]:
        out = compute(plan(self.query, self.ctx)).to_json()
        del out["cached"]
        return out


def prepare(kind: str, engine: Engine, params: dict[str, Any]) -> Prepared:
    from rta.core import query_services as services

    now = services.now()
    return Prepared(parse(kind, params, now), services.context(engine, now))


def query_cache(engine: Engine) -> QueryCache:
    """The engine's result cache (see `rta.core.query_services.query_cache`)."""
    from rta.core import query_services as services

    return services.query_cache(engine)
