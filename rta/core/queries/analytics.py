"""Analytics facade: request dict in, exact API response dict out, with the result cache.

`run_aggregate`, `run_count`, `run_unique_users` and `run_top` are the stable entry points the
HTTP API, dashboards and alerts call. Each takes the POST body or the GET query arguments as a
dict (values may be strings, as a query string gives them, or typed JSON values) and returns the
response body.

Every query accepts the one filter shape (see `rta.core.queries.filters`): `type`/`eventType`
(a name, a list, or "a,b"), `userId`, `startTime`, `endTime` (inclusive, as everywhere),
`timeRange` ('last_7d'), `where` (a JSON list/object, a JSON string of one, or the CLI form
'duration>1000'), `operator`, `segment`, a nested `filter` object (ANDed), and
`properties.<key>=value` equality shorthands. Unknown parameters are rejected (400) so a typo
never silently changes an answer.

Times in responses: `startTime` and `endTime` are the resolved range, both inclusive (the
same convention requests use, so they round-trip); unbounded sides report the data's bounds.
Time series buckets are epoch-aligned (each has its start `timestamp`; the first and last may
be partial) and hold only events inside the requested range; empty buckets are zero (count,
sum, unique_users) or null (avg, min, max, percentiles — there is no value to show).

Splitting a query into `prepare` (parse, snapshot, cache key) and `Prepared.compute` (pure
numpy over immutable blocks; safe in a worker thread) lets the server answer cache hits on
the event loop and send only real work to its query threads.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from rta.core.embedded import counts as counts_mod
from rta.core.embedded import timeseries as ts_mod
from rta.core.embedded.hll import DEFAULT_PRECISION, standard_error
from rta.core.embedded.segments import check_numeric
from rta.core.embedded.store.snapshot import Snapshot
from rta.core.engine import Engine
from rta.core.errors import ValidationError, field_error
from rta.core.queries.filters import (
    EventFilter,
    Group,
    parse_cli_where,
    parse_filter,
    predicate_to_json,
)
from rta.core.queries.query_cache import QueryCache
from rta.core.queries.timeparse import now_ms, parse_duration

FILTER_KEYS = ("type", "eventType", "types", "userId", "userIds", "startTime", "endTime",
               "timeRange", "where", "filters", "operator", "segment", "filter")
AGGREGATE_KEYS = ("metric", "property", "aggregation", "interval", "groupBy", "limit",
                  "tzOffset")
COUNT_KEYS = ("groupBy", "limit")
UNIQUE_KEYS = ("interval", "approximate", "precision", "tzOffset")
MAX_TZ_OFFSET = 14 * 60  # minutes: UTC-14:00 to UTC+14:00 covers every zone
TOP_KEYS = ("property", "n", "limit", "sort")
MAX_GROUPS = 10_000
MAX_SERIES = 100


@dataclass
class Prepared:
    """A parsed query bound to one snapshot; `compute()` may run in a worker thread."""

    kind: str
    key: str
    version: int
    start: int | None  # the time range the result depends on (for invalidation)
    end: int | None
    compute: Callable[[], dict[str, Any]]


# -- public facade -------------------------------------------------------------------------

def run_aggregate(engine: Engine, body: dict[str, Any]) -> dict[str, Any]:
    """POST /analytics/aggregate: a zero-filled time series of one aggregation."""
    return execute(engine, prepare_aggregate(engine, body))


def run_count(engine: Engine, params: dict[str, Any]) -> dict[str, Any]:
    """GET /analytics/count: matching events, optionally per type or property value."""
    return execute(engine, prepare_count(engine, params))


def run_unique_users(engine: Engine, params: dict[str, Any]) -> dict[str, Any]:
    """GET /analytics/unique-users: distinct users (exact or HyperLogLog), optionally per
    interval (DAU-style)."""
    return execute(engine, prepare_unique_users(engine, params))


def run_top(engine: Engine, params: dict[str, Any]) -> dict[str, Any]:
    """GET /analytics/top: the most frequent values of a property with users and share."""
    return execute(engine, prepare_top(engine, params))


def query_cache(engine: Engine) -> QueryCache:
    """The engine's result cache (created on first use with the configured TTL)."""
    cache = engine.extensions.get("query_cache")
    if not isinstance(cache, QueryCache):
        cache = QueryCache(engine.config.cache_ttl_ms)
        engine.extensions["query_cache"] = cache
    return cache


def cached(engine: Engine, prepared: Prepared) -> dict[str, Any] | None:
    hit = query_cache(engine).get(prepared.key, engine.store)
    return None if hit is None else {**hit, "cached": True}


def remember(engine: Engine, prepared: Prepared, result: dict[str, Any]) -> None:
    query_cache(engine).put(prepared.key, result, prepared.version, prepared.start,
                            prepared.end)


def execute(engine: Engine, prepared: Prepared) -> dict[str, Any]:
    """Serve from the cache when still valid, else compute and remember.

    Results are shared with the cache: treat them as read-only.
    """
    hit = cached(engine, prepared)
    if hit is not None:
        return hit
    result = prepared.compute()
    remember(engine, prepared, result)
    return {**result, "cached": False}


PREPARERS: dict[str, Callable[[Engine, dict[str, Any]], Prepared]] = {}


def prepare(kind: str, engine: Engine, params: dict[str, Any]) -> Prepared:
    """Prepare a query by name: aggregate, count, unique-users, top."""
    return PREPARERS[kind](engine, params)


# -- parameters ----------------------------------------------------------------------------

def _check_keys(params: dict[str, Any], allowed: tuple[str, ...]) -> None:
    if not isinstance(params, dict):
        raise ValidationError("body must be a JSON object", [{"field": ""}])
    known = set(FILTER_KEYS) | set(allowed)
    for key in params:
        if key not in known and not key.startswith("properties."):
            raise field_error(key, "unknown parameter", allowed=[
                *sorted(known), "properties.<key>"])


def _one(params: dict[str, Any], name: str) -> Any:
    """A scalar parameter (the last one when a query string repeats it)."""
    value = params.get(name)
    if isinstance(value, list | tuple) and value and all(isinstance(v, str) for v in value):
        return value[-1]
    return value


def _where_items(value: Any, path: str) -> list[Any]:
    """`where` in any accepted form as a list of JSON filter items."""
    if value is None or value == "":
        return []
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list | tuple):
        items: list[Any] = []
        for i, v in enumerate(value):
            items.extend(_where_items(v, f"{path}[{i}]") if isinstance(v, str) else [v])
        return items
    if isinstance(value, str):
        text = value.strip()
        if text[:1] in ("[", "{"):
            try:
                return _where_items(json.loads(text), path)
            except json.JSONDecodeError:
                raise field_error(path, "is not valid JSON") from None
        try:
            return [predicate_to_json(parse_cli_where(text))]
        except ValidationError:
            raise field_error(path, "must be a JSON filter list or the compact form "
                              "'page=/x', 'duration>1000'", value=value) from None
    raise field_error(path, "must be a list of filters", value=value)


def _shorthand(key: str, value: Any) -> dict[str, Any]:
    """`properties.k=v` from a query string: equal as text, or as the number/boolean it spells."""
    prop = key[len("properties."):]
    if not prop:
        raise field_error(key, "needs a property name after 'properties.'")
    if isinstance(value, list | tuple):
        value = value[-1]
    options: list[dict[str, Any]] = [{"property": prop, "operator": "eq", "value": value}]
    if isinstance(value, str):
        try:
            options.append({"property": prop, "operator": "eq", "value": float(value)})
        except ValueError:
            if value in ("true", "false"):
                options.append({"property": prop, "operator": "eq", "value": value == "true"})
    return options[0] if len(options) == 1 else {"or": options}


def _type_list(value: Any) -> Any:
    if isinstance(value, str) and "," in value:
        return [t.strip() for t in value.split(",") if t.strip()]
    if isinstance(value, list | tuple):
        out = [t.strip() for v in value for t in str(v).split(",") if t.strip()]
        return out or None
    return value


def _filter(engine: Engine, params: dict[str, Any], now: int) -> tuple[EventFilter, Any]:
    """The query's EventFilter and a canonical JSON form of it (for the cache key)."""
    spec: dict[str, Any] = {}
    for key in ("startTime", "endTime", "timeRange", "operator", "segment"):
        value = _one(params, key)
        if value is not None and value != "":
            spec[key] = value
    for key in ("type", "eventType", "types"):
        value = params.get(key)
        if value is not None and value != "":
            spec[key] = _type_list(value)
    users = params.get("userId", params.get("userIds"))
    if users is not None and users != "":
        spec["userId"] = [users] if isinstance(users, str) else list(users)
    where = _where_items(params.get("where", params.get("filters")), "where")
    where.extend(_shorthand(k, v) for k, v in params.items() if k.startswith("properties."))
    if where:
        spec["where"] = where
    resolver = engine.extensions.get("segment_resolver")
    flt = parse_filter(spec, path="", now=now, segments=resolver)
    nested = params.get("filter")
    canonical: Any = spec
    if nested is not None:
        if isinstance(nested, str):
            try:
                nested = json.loads(nested)
            except json.JSONDecodeError:
                raise field_error("filter", "is not valid JSON") from None
        inner = parse_filter(nested, path="filter", now=now, segments=resolver)
        flt = _intersect(flt, inner)
        canonical = [spec, nested]
    return flt, canonical


def _intersect(a: EventFilter, b: EventFilter) -> EventFilter:
    """Events matching both filters."""
    def both_range(x: int | None, y: int | None, pick: Callable[[int, int], int]) -> int | None:
        return y if x is None else x if y is None else pick(x, y)

    types = a.types if b.types is None else b.types if a.types is None else tuple(
        t for t in a.types if t in b.types)
    users = a.users if b.users is None else b.users if a.users is None else tuple(
        u for u in a.users if u in b.users)
    where = a.where if b.where is None else b.where if a.where is None else Group(
        "and", (a.where, b.where))
    seg = a.segment_users if b.segment_users is None else b.segment_users \
        if a.segment_users is None else np.intersect1d(a.segment_users, b.segment_users)
    out = EventFilter(start=both_range(a.start, b.start, max), end=both_range(a.end, b.end, min),
                      types=types, users=users, where=where, segment_users=seg)
    if out.start is not None and out.end is not None and out.start >= out.end:
        out.end = out.start  # empty, not an error: the two ranges simply do not overlap
    return out


def _int_param(params: dict[str, Any], name: str, default: int, lo: int, hi: int) -> int:
    raw = _one(params, name)
    if raw is None or raw == "":
        return default
    try:
        if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
            raise ValueError
        value = int(raw)
    except (TypeError, ValueError):
        raise field_error(name, "must be an integer", value=raw) from None
    if not lo <= value <= hi:
        raise field_error(name, f"must be between {lo} and {hi}", value=value)
    return value


def _tz_offset(params: dict[str, Any]) -> int:
    """`tzOffset`: minutes east of UTC that bucket boundaries follow (330 for India, -300 for
    New York in winter), in ms; 0 (UTC) by default."""
    return _int_param(params, "tzOffset", 0, -MAX_TZ_OFFSET, MAX_TZ_OFFSET) * 60_000


def _bool_param(params: dict[str, Any], name: str) -> bool:
    raw = _one(params, name)
    if raw is None or isinstance(raw, bool):
        return bool(raw)
    text = str(raw).strip().lower()
    if text in ("1", "true", "yes", "on", ""):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise field_error(name, "must be true or false", value=raw)


def _property_name(params: dict[str, Any], name: str, required: bool) -> str | None:
    raw = _one(params, name)
    if raw is None or raw == "":
        if required:
            raise field_error(name, "is required: the property (or type, userId) to use")
        return None
    if not isinstance(raw, str):
        raise field_error(name, "must be a property name", value=raw)
    return raw.strip()


def _interval(params: dict[str, Any]) -> int | None:
    raw = _one(params, "interval")
    if raw is None or raw == "" or raw == "auto":
        return None
    return parse_duration(raw, "interval")


def _segment_fingerprint(flt: EventFilter) -> str | None:
    """Saved segments can change without new events: their members belong in the key."""
    if flt.segment_users is None:
        return None
    data = np.ascontiguousarray(flt.segment_users).tobytes()
    return hashlib.blake2b(data, digest_size=12).hexdigest()


def _key(kind: str, canonical: Any, flt: EventFilter, extra: dict[str, Any]) -> str:
    return json.dumps([kind, canonical, flt.start, flt.end, _segment_fingerprint(flt), extra],
                      sort_keys=True, default=str, separators=(",", ":"))


def _range_out(snap: Snapshot, start: int | None, end: int | None) -> tuple[int | None,
                                                                             int | None]:
    """The resolved range to report (inclusive end); unbounded sides take the data's bounds."""
    bounds = snap.time_bounds()
    lo = start if start is not None else (bounds[0] if bounds else None)
    hi = end - 1 if end is not None else (bounds[1] if bounds else None)
    return lo, hi


def _event_type(flt: EventFilter) -> str | list[str] | None:
    if flt.types is None:
        return None
    return flt.types[0] if len(flt.types) == 1 else list(flt.types)


def _num(value: float) -> float | int | None:
    """JSON number for a float result: None for NaN/inf, ints stay ints when integral."""
    if not math.isfinite(value):
        return None
    return value


def _values(values: np.ndarray, integral: bool) -> list[Any]:
    if integral:
        return values.astype(np.int64).tolist()
    out = values.tolist()
    return [v if v == v and v not in (math.inf, -math.inf) else None for v in out]


# -- aggregate -----------------------------------------------------------------------------

def prepare_aggregate(engine: Engine, body: dict[str, Any]) -> Prepared:
    _check_keys(body, AGGREGATE_KEYS)
    now = now_ms()
    flt, canonical = _filter(engine, body, now)
    metric = _property_name(body, "metric", False) or _property_name(body, "property", False)
    if metric is not None and metric.startswith("properties."):
        metric = metric[len("properties."):]
    aggregation = _one(body, "aggregation")
    if aggregation is None or aggregation == "":
        aggregation = "avg" if metric else "count"
    if not isinstance(aggregation, str) or aggregation.lower() not in ts_mod.AGGREGATIONS:
        raise field_error("aggregation", "must be one of " + ", ".join(ts_mod.AGGREGATIONS),
                          value=aggregation, allowed=list(ts_mod.AGGREGATIONS))
    aggregation = aggregation.lower()
    if aggregation in ts_mod.METRIC_AGGREGATIONS and not metric:
        raise field_error("metric", f"is required for aggregation {aggregation!r}: the "
                          "numeric property to aggregate")
    interval = _interval(body)
    offset = _tz_offset(body)
    group_by = _property_name(body, "groupBy", False)
    limit = _int_param(body, "limit", 10, 1, MAX_SERIES)
    snap = engine.snapshot()
    if metric and aggregation in ts_mod.METRIC_AGGREGATIONS:
        check_numeric(snap, metric, "metric")
    start, end = _series_range(snap, flt, now, interval)
    buckets = None
    if start is not None and end is not None:
        # Buckets are epoch-aligned, so the first and last may be partial: only events inside
        # the requested range count, exactly as `WHERE ts BETWEEN start AND end` would.
        buckets = ts_mod.make_buckets(start, end, interval, offset_ms=offset)
        flt.start, flt.end = start, end
    else:  # no range given and no data: an empty series
        flt.end = flt.start = 0
    key = _key("aggregate", canonical, flt, {"metric": metric, "aggregation": aggregation,
                                             "interval": interval, "groupBy": group_by,
                                             "limit": limit, "tzOffset": offset})

    def compute() -> dict[str, Any]:
        base: dict[str, Any] = {
            "eventType": _event_type(flt), "metric": metric, "aggregation": aggregation,
            "groupBy": group_by, "interval": buckets.interval if buckets else interval,
            "startTime": flt.start if buckets else None,
            "endTime": flt.end - 1 if buckets and flt.end is not None else None,
            "bucketCount": buckets.count if buckets else 0,
        }
        if buckets is None:
            base.update(buckets=[], total={"value": 0 if aggregation in (
                "count", "sum", "unique_users") else None, "count": 0})
            if group_by:
                base.update(series=[], groups=0)
            return base
        res = ts_mod.timeseries(flt, snap, buckets, aggregation, metric, group_by, limit)
        integral = aggregation in ("count", "unique_users")
        stamps = buckets.timestamps()
        base["buckets"] = _bucket_rows(stamps, res.value, res.count, integral)
        base["total"] = {"value": _total(res.total_value, integral), "count": res.total_count}
        if group_by:
            base["series"] = [{"key": s.key,
                               "total": {"value": _total(s.total_value, integral),
                                         "count": s.total_count},
                               "buckets": _bucket_rows(stamps, s.value, s.count, integral)}
                              for s in res.series]
            base["groups"] = res.groups
        return base

    return Prepared("aggregate", key, snap.version, flt.start, flt.end, compute)


def _total(value: float, integral: bool) -> float | int | None:
    if integral:
        return int(value) if math.isfinite(value) else 0
    return _num(value)


def _bucket_rows(stamps: list[int], values: np.ndarray, count: np.ndarray,
                 integral: bool) -> list[dict[str, Any]]:
    vals = _values(values, integral)
    return [{"timestamp": t, "value": v, "count": c}
            for t, v, c in zip(stamps, vals, count.tolist(), strict=True)]


def _series_range(snap: Snapshot, flt: EventFilter, now: int,
                  interval: int | None) -> tuple[int | None, int | None]:
    """A concrete [start, end) for a series: missing sides come from the data (or now)."""
    start, end = flt.start, flt.end
    if start is not None and end is not None:
        return start, end
    bounds = snap.time_bounds()
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
            lo = max(lo, end - (ts_mod.MAX_BUCKETS - 1) * interval)
        start = min(lo, end - 1)
    return start, end


# -- count ---------------------------------------------------------------------------------

def prepare_count(engine: Engine, params: dict[str, Any]) -> Prepared:
    _check_keys(params, COUNT_KEYS)
    now = now_ms()
    flt, canonical = _filter(engine, params, now)
    group_by = _property_name(params, "groupBy", False)
    limit = _int_param(params, "limit", 100, 1, MAX_GROUPS)
    snap = engine.snapshot()
    key = _key("count", canonical, flt, {"groupBy": group_by, "limit": limit})

    def compute() -> dict[str, Any]:
        lo, hi = _range_out(snap, flt.start, flt.end)
        out: dict[str, Any] = {"eventType": _event_type(flt), "startTime": lo, "endTime": hi,
                               "groupBy": group_by}
        if group_by is None:
            out["count"] = counts_mod.count_events(flt, snap)
            return out
        gc = counts_mod.group_counts(flt, snap, group_by)
        chosen = counts_mod.rank(gc.keys, gc.counts.astype(np.float64), gc.counts > 0, limit)
        shown = int(gc.counts[chosen].sum()) if chosen else 0
        out.update(
            count=gc.total,
            groups=[{"key": gc.keys.label(g), "count": int(gc.counts[g]),
                     "share": counts_mod.share(int(gc.counts[g]), gc.total)} for g in chosen],
            distinct=int(np.count_nonzero(gc.counts)),
            otherCount=gc.total - gc.missing - shown,
            missing=gc.missing)
        return out

    return Prepared("count", key, snap.version, flt.start, flt.end, compute)


# -- unique users --------------------------------------------------------------------------

def prepare_unique_users(engine: Engine, params: dict[str, Any]) -> Prepared:
    _check_keys(params, UNIQUE_KEYS)
    now = now_ms()
    flt, canonical = _filter(engine, params, now)
    interval = _interval(params)
    offset = _tz_offset(params)
    approximate = _bool_param(params, "approximate")
    precision = _int_param(params, "precision", DEFAULT_PRECISION, 4, 18)
    snap = engine.snapshot()
    buckets = None
    if interval is not None:
        start, end = _series_range(snap, flt, now, interval)
        if start is not None and end is not None:
            # Buckets align to the interval, but only events inside the requested range
            # count (the first and last buckets may be partial), as in `aggregate`.
            buckets = ts_mod.make_buckets(start, end, interval, offset_ms=offset)
            flt.start, flt.end = start, end
        else:
            flt.start = flt.end = 0
    key = _key("unique", canonical, flt, {"interval": interval, "tzOffset": offset,
                                          "approximate": approximate,
                                          "precision": precision if approximate else None})

    def compute() -> dict[str, Any]:
        if buckets is not None and flt.start is not None and flt.end is not None:
            lo: int | None = flt.start
            hi: int | None = flt.end - 1
        elif interval is not None:
            lo = hi = None
        else:
            lo, hi = _range_out(snap, flt.start, flt.end)
        out: dict[str, Any] = {"eventType": _event_type(flt), "startTime": lo, "endTime": hi,
                               "approximate": approximate, "interval": interval}
        if approximate:
            per, overall, events = ts_mod.unique_series_approx(flt, snap, buckets, precision)
            rel = standard_error(precision)
            out.update(uniqueUsers=round(overall), events=events,
                       relativeStandardError=rel,
                       standardError=round(overall * rel, 3), precision=precision)
            if interval is not None:
                stamps = buckets.timestamps() if buckets else []
                out["buckets"] = [{"timestamp": t, "value": round(v)}
                                  for t, v in zip(stamps, per.tolist(), strict=False)]
            return out
        if interval is None:
            users, events = counts_mod.unique_users(flt, snap)
            out.update(uniqueUsers=users, events=events)
            return out
        if buckets is None:
            out.update(uniqueUsers=0, events=0, buckets=[])
            return out
        res = ts_mod.timeseries(flt, snap, buckets, "unique_users", matched=True)
        # `events` counts every matching event, anonymous ones too, as without `interval`
        assert res.matched is not None
        out.update(uniqueUsers=int(res.total_value), events=int(res.matched.sum()),
                   buckets=[{"timestamp": t, "value": v, "events": c} for t, v, c in zip(
                       buckets.timestamps(), res.value.astype(np.int64).tolist(),
                       res.matched.tolist(), strict=True)])
        return out

    return Prepared("unique-users", key, snap.version, flt.start, flt.end, compute)


# -- top -----------------------------------------------------------------------------------

def prepare_top(engine: Engine, params: dict[str, Any]) -> Prepared:
    _check_keys(params, TOP_KEYS)
    now = now_ms()
    flt, canonical = _filter(engine, params, now)
    prop = _property_name(params, "property", True)
    assert prop is not None
    n = _int_param(params, "n", _int_param(params, "limit", 10, 1, MAX_GROUPS), 1, MAX_GROUPS)
    sort = _one(params, "sort") or "count"
    if sort not in ("count", "users"):
        raise field_error("sort", "must be one of count, users", value=sort,
                          allowed=["count", "users"])
    snap = engine.snapshot()
    key = _key("top", canonical, flt, {"property": prop, "n": n, "sort": sort})

    def compute() -> dict[str, Any]:
        lo, hi = _range_out(snap, flt.start, flt.end)
        top = counts_mod.top_values(flt, snap, prop, n, by_users=sort == "users")
        values = [{"value": top.keys.label(g), "count": int(top.counts[g]),
                   "uniqueUsers": int(u), "share": counts_mod.share(int(top.counts[g]),
                                                                     top.with_value)}
                  for g, u in zip(top.chosen, top.users.tolist(), strict=True)]
        shown = sum(v["count"] for v in values)
        return {"eventType": _event_type(flt), "property": prop, "n": n, "sort": sort,
                "startTime": lo, "endTime": hi, "events": top.total,
                "withValue": top.with_value, "distinct": top.distinct, "values": values,
                "otherCount": top.with_value - shown}

    return Prepared("top", key, snap.version, flt.start, flt.end, compute)


PREPARERS.update({"aggregate": prepare_aggregate, "count": prepare_count,
                  "unique-users": prepare_unique_users, "top": prepare_top})
