"""Several named series and a formula over them: `POST /analytics/aggregate` with `series`.

    {"series": [{"name": "A", "eventType": "purchase"},
                {"name": "B", "eventType": "signup"}],
     "formula": "A / B * 100", "interval": "1d", "timeRange": "last_30d"}

Each series is an aggregate query of its own (event type, filters, `aggregation`,
`property`/`metric`), and shares the request's time range, `interval`, `tzOffset` and
top-level filters (ANDed with its own), so every series has the same buckets. The series are
answered by the single-series path (`analytics.execute`, result cache included), and the
formula (`formula.py`) is evaluated over their per-bucket values and their totals: a formula
costs its series' queries plus one vectorised pass over the buckets, nothing more.

Thread rule: parse anywhere (pure); `execute` in the query's worker thread.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from rta.core.errors import ValidationError, field_error
from rta.core.queries import analytics, query_warnings
from rta.core.queries import params as p
from rta.core.queries.analytics_results import AggregateResult
from rta.core.queries.analytics_specs import MAX_SERIES, AggregateQuery, checked_aggregation
from rta.core.queries.backend import QueryContext
from rta.core.queries.formula import (
    NAME_RE,
    FormulaError,
    Node,
    check_names,
    evaluate,
    evaluate_scalar,
    parse_formula,
)
from rta.core.queries.params import FilterSpec
from rta.core.queries.query_cache import QueryCache
from rta.core.queries.query_warnings import QueryWarning, Vocabulary

MAX_FORMULA_SERIES = 10
TOP_KEYS = ("series", "formula", "interval", "tzOffset")
SERIES_KEYS = ("name", "type", "eventType", "types", "userId", "userIds", "where", "filters",
               "operator", "segment", "filter", "metric", "property", "aggregation")
SHARED_KEYS = ("startTime", "endTime", "timeRange", "interval", "tzOffset", "groupBy", "limit")


@dataclass(frozen=True)
class NamedSeries:
    name: str
    query: AggregateQuery


@dataclass(frozen=True)
class FormulaQuery:
    """Named aggregate series sharing one bucket grid, and an optional formula over them."""

    series: tuple[NamedSeries, ...]
    formula: str | None
    node: Node | None
    now: int

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.series]


def is_formula_body(body: Any) -> bool:
    """Whether an aggregate request is the multi-series form (it has `series`)."""
    return isinstance(body, dict) and "series" in body


def _prefixed(path: str, exc: ValidationError) -> ValidationError:
    """The same error with its field paths under `path` (`where` -> `series[1].where`)."""
    details = []
    for d in exc.details:
        field = d.get("field")
        details.append({**d, "field": f"{path}.{field}" if field else path})
    message = exc.message
    first = exc.details[0].get("field") if exc.details else None
    if first and message.startswith(f"{first}:"):
        message = f"{path}.{message}"
    return ValidationError(message, details, code=exc.code)


def _series(spec: Any, path: str, top: FilterSpec, interval: int | None, offset: int,
            now: int) -> NamedSeries:
    if not isinstance(spec, dict):
        raise field_error(path, "must be an object: {name, eventType, filters, aggregation, "
                          "property}")
    name = spec.get("name")
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise field_error(f"{path}.name", "is required: a name the formula can use (a letter "
                          "or _, then letters, digits or _)", value=name)
    for key in spec:
        if key in SHARED_KEYS:
            raise field_error(f"{path}.{key}", "is shared by every series: give it once, at "
                              "the top level of the request")
        if key not in SERIES_KEYS and not key.startswith("properties."):
            raise field_error(f"{path}.{key}", "unknown parameter",
                              allowed=[*SERIES_KEYS, "properties.<key>"])
    body = {k: v for k, v in spec.items() if k != "name"}
    try:
        own = p.filter_spec(body, now)
        metric = p.property_name(body, "metric", False) or p.property_name(
            body, "property", False)
        if metric is not None and metric.startswith("properties."):
            metric = metric[len("properties."):]
        aggregation = checked_aggregation(p.one(body, "aggregation"), metric)
    except ValidationError as exc:
        raise _prefixed(path, exc) from None
    segments = top.segments + tuple((f"{path}.{field}", seg) for field, seg in own.segments)
    flt = FilterSpec(p.intersect(top.flt, own.flt), [top.canonical, own.canonical], segments)
    return NamedSeries(name, AggregateQuery(flt, now, metric, aggregation, interval, offset,
                                            None, MAX_SERIES))


def parse_formula_query(body: Any, now: int) -> FormulaQuery:
    """Check a multi-series aggregate request; errors name the field (`series[2].where`,
    `formula` with the character offset where it stops parsing)."""
    p.check_keys(body, TOP_KEYS)
    specs = body.get("series")
    if not isinstance(specs, list) or not specs:
        raise field_error("series", "must be a non-empty list of series objects")
    if len(specs) > MAX_FORMULA_SERIES:
        raise field_error("series", f"has {len(specs)} series; at most {MAX_FORMULA_SERIES} "
                          "are allowed", count=len(specs), max=MAX_FORMULA_SERIES)
    top_body = {k: v for k, v in body.items() if k not in TOP_KEYS}
    top = p.filter_spec(top_body, now)
    interval = p.interval(body)
    offset = p.tz_offset(body)
    series: list[NamedSeries] = []
    for i, spec in enumerate(specs):
        s = _series(spec, f"series[{i}]", top, interval, offset, now)
        if any(s.name == other.name for other in series):
            raise field_error(f"series[{i}].name", f"{s.name!r} names an earlier series too",
                              value=s.name)
        series.append(s)
    text = body.get("formula")
    node = None
    if text is not None:
        if not isinstance(text, str) or not text.strip():
            raise field_error("formula", "must be an expression over the series names, "
                              "such as 'A / B * 100'", value=text)
        try:
            node = parse_formula(text)
            check_names(node, [s.name for s in series])
        except FormulaError as exc:
            raise field_error("formula", str(exc), position=exc.position,
                              value=text) from None
    return FormulaQuery(tuple(series), text, node, now)


# -- results -------------------------------------------------------------------------------

def _json_number(v: float) -> float | None:
    return None if np.isnan(v) else float(v)


def values_of(result: AggregateResult) -> np.ndarray:
    """A series' per-bucket values as float64 (NaN for null)."""
    return np.array([np.nan if v is None else float(v) for v in result.data.rows.values],
                    dtype=np.float64)


@dataclass(frozen=True)
class FormulaResult:
    query: FormulaQuery
    results: tuple[AggregateResult, ...]
    values: np.ndarray | None  # the formula per bucket (NaN = null)
    total: float | None

    @property
    def first(self) -> AggregateResult:
        return self.results[0]

    @property
    def cached(self) -> bool:
        return all(r.cached for r in self.results)

    def to_json(self) -> dict[str, Any]:
        first = self.first
        series = []
        for s, r in zip(self.query.series, self.results, strict=True):
            body = r.to_json()
            del body["cached"]
            series.append({"name": s.name, **body})
        out: dict[str, Any] = {
            "formula": self.query.formula, "interval": first.interval,
            "startTime": first.start_time, "endTime": first.end_time,
            "bucketCount": first.bucket_count}
        if self.values is not None:
            out["buckets"] = [{"timestamp": t, "value": _json_number(v)} for t, v in zip(
                first.data.rows.timestamps, self.values.tolist(), strict=True)]
            out["total"] = {"value": self.total}
        out["series"] = series
        out["cached"] = self.cached
        return out


def combine(query: FormulaQuery, results: list[AggregateResult]) -> FormulaResult:
    """The formula over the series' answers (which share one bucket grid)."""
    stamps = results[0].data.rows.timestamps
    for r in results[1:]:
        if r.data.rows.timestamps != stamps:  # (cannot happen: one range, one interval)
            raise RuntimeError("formula series answered different buckets")
    if query.node is None:
        return FormulaResult(query, tuple(results), None, None)
    arrays = {s.name: values_of(r) for s, r in zip(query.series, results, strict=True)}
    per_bucket = evaluate(query.node, arrays, len(stamps))
    totals = {s.name: r.data.total.value for s, r in zip(query.series, results, strict=True)}
    return FormulaResult(query, tuple(results), per_bucket,
                         evaluate_scalar(query.node, totals))


def execute(query: FormulaQuery, ctx: QueryContext,
            cache: QueryCache | None = None) -> FormulaResult:
    """Each series through the single-series path (and its cache), then the formula."""
    return combine(query, [_aggregate(s.query, ctx, cache) for s in query.series])


def _aggregate(q: AggregateQuery, ctx: QueryContext, cache: QueryCache | None
               ) -> AggregateResult:
    result = analytics.execute(q, ctx, cache)
    assert isinstance(result, AggregateResult)
    return result


def shifted(query: FormulaQuery, start: int, end: int, interval: int) -> FormulaQuery:
    """The same series over [start, end) with `interval` buckets (a comparison period)."""
    series = tuple(NamedSeries(s.name, dataclasses.replace(
        s.query, interval=interval, filter=shift_spec(s.query.filter, start, end)))
        for s in query.series)
    return dataclasses.replace(query, series=series)


def shift_spec(spec: FilterSpec, start: int, end: int) -> FilterSpec:
    """`spec` over the explicit range [start, end) instead of its own."""
    flt = dataclasses.replace(spec.flt, start=start, end=end, _luts={})
    return FilterSpec(flt, [spec.canonical, {"range": [start, end]}], spec.segments)


def warnings(query: FormulaQuery, vocab: Vocabulary) -> list[QueryWarning]:
    """Each series' warnings (misspelt types, properties), under its `series[i].` path."""
    out: list[QueryWarning] = []
    for i, s in enumerate(query.series):
        out += [QueryWarning(f"series[{i}].{w.field}", w.message)
                for w in query_warnings.for_query(s.query, vocab)]
    return list(dict.fromkeys(out))
