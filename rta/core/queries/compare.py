"""Period comparisons: `compare: "previous_period"` on aggregates, counts and unique users.

The current period is the answer's resolved range [start, end) (length L). The previous
period is the same range shifted back by `shift`: L itself for headline figures, and for a
time series L rounded up to a whole number of buckets, so the previous period's buckets are
the current grid moved back bucket for bucket (bucket i is compared with bucket i). The
previous answer is computed by the same query path (result cache included), so the cost of a
comparison is one more query of the same shape (plus, for exact unique users, one distinct
count over both periods together, which gives the users seen in both).

Change: `absoluteChange = current - previous`, `relativeChange = absoluteChange / previous`
(null when previous is 0 or either value is null). Significance (`compare_stats`): counts by
the exact conditional Poisson test, exact unique users by the exact McNemar test; other
aggregations, approximate unique users and formulas report the change without a test.

Thread rule: parse anywhere (pure); `compare` in the query's worker thread.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from rta.core.errors import field_error
from rta.core.queries import analytics
from rta.core.queries import formula_query as fq
from rta.core.queries import params as p
from rta.core.queries.analytics_results import (
    AggregateResult,
    AnalyticsResult,
    CountResult,
    UniqueUsersResult,
)
from rta.core.queries.analytics_specs import (
    AggregateQuery,
    AnalyticsQuery,
    CountQuery,
    UniqueUsersQuery,
)
from rta.core.queries.backend import QueryContext
from rta.core.queries.compare_stats import Significance, mcnemar_test, poisson_test
from rta.core.queries.filters import EventFilter, Group, Predicate
from rta.core.queries.query_cache import QueryCache

MODES = ("previous_period",)
Number = int | float | None


def parse_compare(params: Any, kind: str = "aggregate") -> str | None:
    """The `compare` parameter (None when absent); 400 naming `compare` otherwise."""
    if not isinstance(params, dict):
        return None
    raw = p.one(params, "compare")
    if raw is None or raw == "" or raw is False or raw == "none":
        return None
    if raw not in MODES:
        raise field_error("compare", "must be previous_period", value=raw,
                          allowed=list(MODES))
    if kind not in ("aggregate", "count", "unique-users"):
        raise field_error("compare", f"is not available for /analytics/{kind}")
    return str(raw)


def split_compare(params: Any, kind: str = "aggregate") -> tuple[Any, str | None]:
    """(the parameters without `compare`, the mode): the query itself never sees it."""
    mode = parse_compare(params, kind)
    if isinstance(params, dict) and "compare" in params:
        params = {k: v for k, v in params.items() if k != "compare"}
    return params, mode


def change(current: Number, previous: Number) -> tuple[Number, float | None]:
    """(absolute, relative) change from `previous` to `current`."""
    if current is None or previous is None:
        return None, None
    absolute = current - previous
    return absolute, (absolute / previous if previous != 0 else None)


@dataclass(frozen=True)
class Comparison:
    """The previous period's figures beside the current answer's."""

    shift: int | None
    start: int | None  # inclusive, as the answer's own startTime/endTime
    end: int | None
    current: Number
    previous: Number
    significance: Significance | None
    stamps: list[int] | None = None  # previous buckets' starts
    previous_values: list[Number] | None = None
    current_values: list[Number] | None = None
    mode: str = "previous_period"

    def to_json(self) -> dict[str, Any]:
        absolute, relative = change(self.current, self.previous)
        out: dict[str, Any] = {
            "compare": self.mode, "shiftMs": self.shift, "startTime": self.start,
            "endTime": self.end, "value": self.previous, "absoluteChange": absolute,
            "relativeChange": relative,
            "significance": None if self.significance is None else self.significance.to_json()}
        if self.stamps is not None and self.previous_values is not None \
                and self.current_values is not None:
            rows = []
            for t, prev, cur in zip(self.stamps, self.previous_values, self.current_values,
                                    strict=True):
                a, r = change(cur, prev)
                rows.append({"timestamp": t, "value": prev, "absoluteChange": a,
                             "relativeChange": r})
            out["buckets"] = rows
        return out


def shift_for(start: int, end: int, interval: int | None) -> int:
    """How far back the previous period starts: the range's length, rounded up to whole
    buckets for a series (so the buckets align)."""
    length = end - start
    if interval:
        return -(-length // interval) * interval
    return length


def compare(query: AnalyticsQuery | fq.FormulaQuery, result: AnalyticsResult | fq.FormulaResult,
            ctx: QueryContext, cache: QueryCache | None = None) -> Comparison:
    """The previous period for an answered query (its resolved range taken from `result`)."""
    if isinstance(query, fq.FormulaQuery) and isinstance(result, fq.FormulaResult):
        return _formula(query, result, ctx, cache)
    if isinstance(query, AggregateQuery) and isinstance(result, AggregateResult):
        return _aggregate(query, result, ctx, cache)
    if isinstance(query, CountQuery) and isinstance(result, CountResult):
        return _count(query, result, ctx, cache)
    if isinstance(query, UniqueUsersQuery) and isinstance(result, UniqueUsersResult):
        return _unique(query, result, ctx, cache)
    raise field_error("compare", "is not available for this query")


def _empty(current: Number) -> Comparison:
    return Comparison(None, None, None, current, None, None)


def _shifted(spec: p.FilterSpec, start: int, end: int) -> p.FilterSpec:
    return fq.shift_spec(spec, start, end)


def _aggregate(q: AggregateQuery, r: AggregateResult, ctx: QueryContext,
               cache: QueryCache | None) -> Comparison:
    if r.start_time is None or r.end_time is None or r.interval is None:
        return _empty(r.data.total.value)
    start, end = r.start_time, r.end_time + 1
    shift = shift_for(start, end, r.interval)
    prev_q = dataclasses.replace(q, interval=r.interval,
                                 filter=_shifted(q.filter, start - shift, end - shift))
    prev = analytics.execute(prev_q, ctx, cache)
    assert isinstance(prev, AggregateResult)
    sig: Significance | None = None
    if q.aggregation == "count":
        sig = poisson_test(r.data.total.count, prev.data.total.count)
    elif q.aggregation == "unique_users":
        sig = _users_test(q.filter, ctx, start, end, shift, r.data.total.value,
                          prev.data.total.value)
    return Comparison(shift, start - shift, end - 1 - shift, r.data.total.value,
                      prev.data.total.value, sig, prev.data.rows.timestamps,
                      list(prev.data.rows.values), list(r.data.rows.values))


def _count(q: CountQuery, r: CountResult, ctx: QueryContext,
           cache: QueryCache | None) -> Comparison:
    if r.start_time is None or r.end_time is None:
        return _empty(r.count)
    start, end = r.start_time, r.end_time + 1
    shift = shift_for(start, end, None)
    prev_q = dataclasses.replace(q, filter=_shifted(q.filter, start - shift, end - shift))
    prev = analytics.execute(prev_q, ctx, cache)
    assert isinstance(prev, CountResult)
    return Comparison(shift, start - shift, end - 1 - shift, r.count, prev.count,
                      poisson_test(r.count, prev.count))


def _unique(q: UniqueUsersQuery, r: UniqueUsersResult, ctx: QueryContext,
            cache: QueryCache | None) -> Comparison:
    if r.start_time is None or r.end_time is None:
        return _empty(r.unique_users)
    start, end = r.start_time, r.end_time + 1
    shift = shift_for(start, end, q.interval)
    prev_q = dataclasses.replace(q, filter=_shifted(q.filter, start - shift, end - shift))
    prev = analytics.execute(prev_q, ctx, cache)
    assert isinstance(prev, UniqueUsersResult)
    sig = None if q.approximate else _users_test(q.filter, ctx, start, end, shift,
                                                 r.unique_users, prev.unique_users)
    rows = (prev.buckets.timestamps, list(prev.buckets.values), list(r.buckets.values)) \
        if r.buckets is not None and prev.buckets is not None else (None, None, None)
    return Comparison(shift, start - shift, end - 1 - shift, r.unique_users, prev.unique_users,
                      sig, *rows)


def _users_test(spec: p.FilterSpec, ctx: QueryContext, start: int, end: int, shift: int,
                current: Number, previous: Number) -> Significance | None:
    """McNemar's test: the users of both periods together give those seen in both."""
    if current is None or previous is None:
        return None
    union = union_filter(analytics.resolve_filter(spec, ctx), start, end, shift)
    either, _ = ctx.backend.unique_users(union)
    both = int(current) + int(previous) - either
    return mcnemar_test(int(current) - both, int(previous) - both, both)


def union_filter(flt: EventFilter, start: int, end: int, shift: int) -> EventFilter:
    """`flt` over [start - shift, end - shift) and [start, end) together (a gap between
    them, when the shift is longer than the period, is left out)."""
    out = dataclasses.replace(flt, start=start - shift, end=end, _luts={})
    if end - shift < start:
        gap = Group("or", (Predicate("timestamp", "lt", end - shift),
                           Predicate("timestamp", "gte", start)))
        out.where = gap if flt.where is None else Group("and", (flt.where, gap))
    return out


def _formula(q: fq.FormulaQuery, r: fq.FormulaResult, ctx: QueryContext,
             cache: QueryCache | None) -> Comparison:
    first = r.first
    if first.start_time is None or first.end_time is None or first.interval is None:
        return _empty(r.total)
    start, end = first.start_time, first.end_time + 1
    shift = shift_for(start, end, first.interval)
    prev = fq.execute(fq.shifted(q, start - shift, end - shift, first.interval), ctx, cache)
    if r.values is None or prev.values is None:
        return Comparison(shift, start - shift, end - 1 - shift, None, None, None)
    return Comparison(shift, start - shift, end - 1 - shift, r.total, prev.total, None,
                      prev.first.data.rows.timestamps, _nulls(prev.values.tolist()),
                      _nulls(r.values.tolist()))


def _nulls(values: list[float]) -> list[Number]:
    return [None if v != v else v for v in values]
