"""Resolving every widget's data: each widget's `dataSource` becomes a typed query (the
analytics and behaviour specs, built here or by their pure parsers so errors name the same
fields as the API's), run against one `QueryContext` (one backend view) for the whole
dashboard (`pin`), and its typed result is reshaped into a small *view* the browser draws
without further computation (the view shapes are listed in the package docstring).

A widget that fails at query time (data changed, a backend error) carries its own `error`
while the rest of the dashboard resolves.

Thread rule: `pin` on the event loop (it takes the view); resolving widgets runs in a
worker thread over that pinned view only.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from rta.core import query_services as services
from rta.core.dashboards import formula_source
from rta.core.dashboards.model import (
    DEFAULT_REFRESH_MS,
    DEFAULT_TIME_RANGE,
    HEATMAP_MEASURES,
    _strip_prefix,
    check_widget_properties,
)
from rta.core.errors import RtaError, field_error
from rta.core.queries import analytics, behaviour
from rta.core.queries import params as qparams
from rta.core.queries.analytics_results import (
    AggregateResult,
    AnalyticsResult,
    CountResult,
    TopResult,
    UniqueUsersResult,
)
from rta.core.queries.analytics_specs import (
    DEFAULT_PRECISION,
    MAX_GROUPS,
    MAX_SERIES,
    UNIQUE_KEYS,
    AggregateQuery,
    AnalyticsQuery,
    CountQuery,
    TopQuery,
    UniqueUsersQuery,
    checked_aggregation,
)
from rta.core.queries.backend import QueryContext
from rta.core.queries.behaviour_results import CohortResult, FunnelResult
from rta.core.queries.behaviour_specs import parse_cohort, parse_funnel
from rta.core.queries.buckets import Buckets
from rta.core.queries.filters import EventFilter, parse_filter
from rta.core.queries.params import FilterSpec
from rta.core.queries.timeparse import DAY, HOUR, MINUTE, parse_duration, parse_time_range
from rta.core.queries.web_specs import WebSettings, settings_from

if TYPE_CHECKING:
    from rta.core.engine import Engine

log = logging.getLogger("rta.dashboards")
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
# Candidate bucket widths for charts without an explicit interval: the first that gives at
# most ~120 points over the range wins.
AUTO_INTERVALS = (MINUTE, 5 * MINUTE, 15 * MINUTE, HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, DAY,
                  7 * DAY)
COUNT_LIMIT = 100  # the count API's default number of groups
SERIES_LIMIT = 10  # the aggregate API's default number of series
GROUP_LIMIT = 8  # series a grouped chart shows unless its source says
R = TypeVar("R")


# -- resolving data -----------------------------------------------------------------------------


@dataclass
class Window:
    start: int
    end: int  # exclusive
    now: int
    time_range: str | None


def _window(src: dict[str, Any], dashboard: dict[str, Any], override: str | None,
            now: int) -> Window:
    """The widget's time window: the picker's override, else its own, else the dashboard's."""
    rng = override or src.get("timeRange") or dashboard.get("timeRange") or DEFAULT_TIME_RANGE
    if src.get("startTime") is not None and override is None:
        lo, hi = parse_time_range(src.get("startTime"), src.get("endTime"), now)
        return Window(lo if lo is not None else 0, hi if hi is not None else now + 1, now, None)
    lo, hi = parse_time_range(None, None, now, time_range=rng)
    assert lo is not None and hi is not None
    return Window(lo, hi, now, rng)


def auto_interval(span_ms: int, target: int = 120) -> int:
    for step in AUTO_INTERVALS:
        if span_ms / step <= target:
            return step
    return AUTO_INTERVALS[-1]


@dataclass(frozen=True)
class Pinned:
    """One dashboard's view of the data: every widget asks the same backend view (on the
    embedded engine, one snapshot). Pin on the event-loop thread, then resolve in a worker
    thread."""

    ctx: QueryContext
    web: WebSettings = field(default_factory=WebSettings)  # the site's visit rule


def pin(engine: Engine, now: int | None = None) -> Pinned:
    """The query context every widget of one dashboard reads."""
    return Pinned(services.context(engine, now),
                  settings_from(engine.config.visit_timeout_minutes, engine.config.web_own_hosts))


def resolve_dashboard(source: Engine | Pinned, dashboard: dict[str, Any],
                      time_range: str | None = None, tz_offset_min: int = 0,
                      now: int | None = None) -> dict[str, Any]:
    """Every widget's data in one response; a failing widget carries its own `error`.

    All widgets read one snapshot. Pure reads with no result cache (the cache belongs to
    the event-loop thread): given a `Pinned` made there, this may run in a worker thread.
    """
    if time_range is not None:
        parse_time_range(None, None, None, time_range=time_range)
    pinned = source if isinstance(source, Pinned) else pin(source, now)
    current = pinned.ctx.now if now is None else now
    t0 = time.perf_counter()
    widgets = []
    for i, widget in enumerate(dashboard.get("widgets", [])):
        widgets.append(resolve_widget(pinned, dashboard, widget, i, time_range, tz_offset_min,
                                      current))
    return {"dashboardId": dashboard.get("id"), "name": dashboard.get("name"),
            "updatedAt": dashboard.get("updatedAt"), "generatedAt": current,
            "timeRange": time_range or dashboard.get("timeRange"),
            "refreshInterval": dashboard.get("refreshInterval", DEFAULT_REFRESH_MS),
            "tookMs": round((time.perf_counter() - t0) * 1000, 2), "widgets": widgets}


def resolve_widget(pinned: Pinned, dashboard: dict[str, Any], widget: dict[str, Any],
                   index: int, time_range: str | None = None, tz_offset_min: int = 0,
                   now: int | None = None) -> dict[str, Any]:
    current = pinned.ctx.now if now is None else now
    out: dict[str, Any] = {"id": widget.get("id", f"w{index + 1}"), "index": index,
                           "type": widget.get("type"), "title": widget.get("title"),
                           "data": None, "error": None}
    t0 = time.perf_counter()
    try:
        src = widget["dataSource"]
        win = _window(src, dashboard, time_range, current)
        out["window"] = {"start": win.start, "end": win.end, "timeRange": win.time_range}
        out["data"] = _widget_view(pinned, widget, index, src, win, tz_offset_min)
    except RtaError as exc:
        out["error"] = exc.to_dict()["error"]
    except Exception as exc:  # one broken widget must not take the dashboard down
        log.exception("dashboard widget %s failed", out["id"])
        out["error"] = {"code": "internal_error", "message": f"widget failed: {exc}",
                        "details": [{"type": type(exc).__name__}]}
    out["tookMs"] = round((time.perf_counter() - t0) * 1000, 2)
    return out


def _widget_view(pinned: Pinned, widget: dict[str, Any], index: int, src: dict[str, Any],
                 win: Window, tz_offset_min: int) -> dict[str, Any]:
    wtype = widget["type"]
    stype = src["type"]
    check_widget_properties(pinned.ctx.backend, widget, index, missing_ok=True)
    if wtype == "counter" and src.get("compare"):
        from rta.core.dashboards import widget_compare
        return widget_compare.counter(pinned, widget, index, src, win, tz_offset_min)
    if formula_source.has_series(src):
        return formula_source.view(pinned, wtype, src, win, tz_offset_min)
    if stype in ("web", "web_breakdown"):
        from rta.core.dashboards.web_widgets import web_view
        return web_view(pinned.ctx, pinned.web, wtype, src, win.start, win.end, win.now)
    if wtype == "heatmap":
        if stype == "retention":
            return _retention_view(_run_retention(pinned, src, win), as_heatmap=True)
        return heatmap_view(pinned, src, win, tz_offset_min)
    if wtype in ("counter", "gauge"):
        return {"kind": "value", "value": _scalar(pinned, src, win)}
    if stype == "paths":
        from rta.core.dashboards import paths_widget
        return paths_widget.view(pinned.ctx, src, win.start, win.end, win.now)
    if wtype == "funnel" or stype == "funnel":
        view = _funnel_view(_run_funnel(pinned, src, win))
        if wtype == "table":
            return _table_from_funnel(view)
        if wtype == "bar-chart":
            return {"kind": "categories", "labels": [s["name"] for s in view["steps"]],
                    "values": [s["count"] for s in view["steps"]]}
        return view
    if stype == "retention":
        return _retention_view(_run_retention(pinned, src, win), as_heatmap=False)
    if wtype == "line-chart" or (wtype == "bar-chart" and stype in ("aggregation",
                                                                    "unique_users")):
        return _series(pinned, src, win, tz_offset_min)
    if wtype == "table" and stype in ("aggregation", "unique_users"):
        return _table_from_series(_series(pinned, src, win, tz_offset_min))
    # categories: pie, bar (count/top), table (count/top)
    view = _categories(pinned, src, win)
    return _table_from_categories(view, src) if wtype == "table" else view


# -- typed queries: a widget's source as a spec, run against the dashboard's context ------------


class AnswerShapeError(LookupError):
    """A query answered with another result type than the widget reads: the widget fails
    loudly (its `error`) instead of drawing blank."""


def _expect(result: object, kind: type[R]) -> R:
    if not isinstance(result, kind):
        raise AnswerShapeError(f"the query answered a {type(result).__name__}, "
                               f"not a {kind.__name__}")
    return result


def _analytics(query: AnalyticsQuery, pinned: Pinned) -> AnalyticsResult:
    """An analytics query computed directly, without the result cache (it belongs to the
    event-loop thread; dashboards resolve in a worker over their pinned snapshot)."""
    return analytics.compute(analytics.plan(query, pinned.ctx))


def _filter(src: dict[str, Any], win: Window) -> FilterSpec:
    """The source's filter over the window, parsed as the analytics API parses its own
    (same error fields: `where[0].value`, `segment`); the segment resolves at execution."""
    params: dict[str, Any] = {"startTime": win.start, "endTime": win.end - 1}
    if src.get("eventType") is not None:
        params["eventType"] = src["eventType"]
    if src.get("filters") is not None:
        params["where"] = src["filters"]
    if src.get("segment") is not None:
        params["segment"] = src["segment"]
    return qparams.filter_spec(params, win.now)


def _interval(src: dict[str, Any], win: Window) -> int:
    if src.get("interval") is not None:
        return parse_duration(src["interval"], "interval")
    return auto_interval(win.end - win.start)


def _count_query(src: dict[str, Any], win: Window, grouped: bool = False) -> CountQuery:
    flt = _filter(src, win)
    group_by = qparams.property_name(src, "groupBy", False) if grouped else None
    return CountQuery(flt, win.now, group_by, COUNT_LIMIT)


def _unique_query(src: dict[str, Any], win: Window, interval: int | None = None,
                  tz_offset_min: int = 0) -> UniqueUsersQuery:
    flt = _filter(src, win)
    step = None if interval is None else qparams.interval({"interval": interval})
    return UniqueUsersQuery(flt, win.now, step, qparams.tz_offset({"tzOffset": tz_offset_min}),
                            False, DEFAULT_PRECISION)


def _aggregate_query(src: dict[str, Any], win: Window, aggregation: Any, interval: int,
                     tz_offset_min: int) -> AggregateQuery:
    """The series a chart shows, with the checks `parse_aggregate` makes, in its order."""
    flt = _filter(src, win)
    metric = qparams.property_name(src, "metric", False) if src.get("metric") else None
    if metric is not None:
        metric = metric.removeprefix("properties.")
    aggregation = checked_aggregation(aggregation, metric)
    step = qparams.interval({"interval": interval})
    offset = qparams.tz_offset({"tzOffset": tz_offset_min})
    group_by = qparams.property_name(src, "groupBy", False) if src.get("groupBy") else None
    limit = SERIES_LIMIT
    if group_by is not None:  # (an explicit null limit means the API's default)
        limit = qparams.int_param({"limit": src.get("limit", GROUP_LIMIT)}, "limit",
                                  SERIES_LIMIT, 1, MAX_SERIES)
    return AggregateQuery(flt, win.now, metric, aggregation, step, offset, group_by, limit)


def _top_query(src: dict[str, Any], win: Window) -> TopQuery:
    prop = src["property"]
    flt = _filter(src, win)
    name = qparams.property_name({"property": prop}, "property", True)
    assert name is not None
    n = qparams.int_param({"n": src.get("n", 10)}, "n", 10, 1, MAX_GROUPS)
    return TopQuery(flt, win.now, name, n, "count")


def _scalar(pinned: Pinned, src: dict[str, Any], win: Window) -> float | None:
    stype = src["type"]
    if stype == "count":
        return _num(_expect(_analytics(_count_query(src, win), pinned), CountResult).count)
    if stype == "unique_users":
        res = _expect(_analytics(_unique_query(src, win), pinned), UniqueUsersResult)
        return _num(res.unique_users)
    return exact_aggregate(pinned, src, win)


def exact_aggregate(pinned: Pinned, src: dict[str, Any], win: Window) -> float | None:
    """One aggregation over exactly [start, end): a series of a single bucket.

    The analytics API widens ranges to epoch-aligned buckets (right for charts); a counter
    saying "revenue, last 24h" must cover exactly the last 24 hours.
    """
    agg = src.get("aggregation", "count")
    metric = _strip_prefix(src["metric"]) if src.get("metric") else None
    flt = _source_filter(pinned, src, win)
    buckets = Buckets(win.start, max(1, win.end - win.start), 1)
    data = pinned.ctx.backend.series(flt, buckets, agg, metric, None, 1)
    value = data.total.value
    if value is None:
        return 0.0 if agg in ("count", "sum", "unique_users") else None
    return float(value)


def _source_filter(pinned: Pinned, src: dict[str, Any], win: Window) -> EventFilter:
    """The source's filter over exactly [start, end) (errors under `dataSource.`), its saved
    segment resolved over the dashboard's snapshot."""
    spec: dict[str, Any] = {"startTime": win.start, "endTime": win.end - 1}
    for key in ("eventType", "segment"):
        if src.get(key) is not None:
            spec[key] = src[key]
    if src.get("filters") is not None:
        spec["where"] = src["filters"]
    flt = parse_filter(spec, "dataSource", win.now, defer_segment=True)
    named = () if flt.segment is None else (("dataSource.segment", flt.segment),)
    flt.segment = None
    return analytics.resolve_filter(FilterSpec(flt, spec, named), pinned.ctx)


def _series(pinned: Pinned, src: dict[str, Any], win: Window,
            tz_offset_min: int = 0) -> dict[str, Any]:
    """A chart's series: buckets follow the viewer's time zone (daily ones start at local
    midnight), and a rolling window starts at a bucket boundary, so the first bucket of
    "last 7 days by day" is a whole day, not the sliver of one that a window starting now
    minus 7 days would cut."""
    interval = _interval(src, win)
    offset = int(tz_offset_min) * MINUTE
    if interval >= HOUR and win.time_range not in ("today", "yesterday"):
        win = replace(win, start=win.start - (win.start + offset) % interval)
    if src["type"] == "unique_users":
        unique = _expect(_analytics(_unique_query(src, win, interval, int(tz_offset_min)),
                                    pinned), UniqueUsersResult)
        if unique.buckets is None:
            raise AnswerShapeError("the unique-users answer has no buckets")
        return _series_view([("unique users", unique.buckets.timestamps,
                              unique.buckets.values)], interval)
    agg = src.get("aggregation", "count") if src["type"] == "aggregation" else "count"
    res = _expect(_analytics(_aggregate_query(src, win, agg, interval, int(tz_offset_min)),
                             pinned), AggregateResult)
    groups = res.data.series if res.group_by else ()
    if groups:
        names = _labels([g.key for g in groups])
        return _series_view([(name, g.rows.timestamps, g.rows.values)
                             for g, name in zip(groups, names, strict=True)], interval)
    name = agg if not src.get("metric") else f"{agg}({src['metric']})"
    return _series_view([(name, res.data.rows.timestamps, res.data.rows.values)], interval)


def _categories(pinned: Pinned, src: dict[str, Any], win: Window) -> dict[str, Any]:
    if src["type"] == "top":
        top = _expect(_analytics(_top_query(src, win), pinned), TopResult)
        keys, values, extra = [], [], []
        for v in top.data.values:
            keys.append(v.value)
            values.append(_num(v.count) or 0)
            extra.append({"uniqueUsers": v.unique_users, "share": v.share})
        # (a top answer has no total: a table's shares are of the values shown)
        return {"kind": "categories", "labels": _labels(keys), "values": values,
                "extra": extra, "total": None}
    grouped = bool(src.get("groupBy"))
    if src["type"] == "unique_users":
        if grouped:  # (unique users take no groupBy: refused as the analytics API does)
            raise field_error("groupBy", "unknown parameter",
                              allowed=[*sorted({*qparams.FILTER_KEYS, *UNIQUE_KEYS}),
                                       "properties.<key>"])
        res = _expect(_analytics(_unique_query(src, win), pinned), UniqueUsersResult)
        return {"kind": "categories", "labels": ["users"],
                "values": [_num(res.unique_users) or 0]}
    counted = _expect(_analytics(_count_query(src, win, grouped), pinned), CountResult)
    items: list[tuple[Any, Any]]
    if counted.grouped is not None:
        items = [(g.key, g.count) for g in counted.grouped.groups]
    else:
        items = [("total", counted.count)]
    items.sort(key=lambda kv: -(_num(kv[1]) or 0))
    labels = _labels([k for k, _ in items])
    values = [_num(v) or 0 for _, v in items]
    return {"kind": "categories", "labels": labels, "values": values,
            "total": _num(counted.count)}


def _run_funnel(pinned: Pinned, src: dict[str, Any], win: Window) -> FunnelResult:
    """The funnel over the window, parsed by the funnel API's own parser (same errors)."""
    body: dict[str, Any] = {"steps": src["steps"], "startTime": win.start,
                            "endTime": win.end - 1}
    for key in ("timeLimit", "order", "countBy"):
        if src.get(key) is not None:
            body[key] = src[key]
    return _expect(behaviour.execute(parse_funnel(body, win.now), pinned.ctx), FunnelResult)


def _run_retention(pinned: Pinned, src: dict[str, Any], win: Window) -> CohortResult:
    body: dict[str, Any] = {"entryEvent": src["entryEvent"],
                            "retentionEvent": src["retentionEvent"],
                            "periods": src.get("periods", 7),
                            "periodLength": src.get("periodLength", DAY),
                            "startTime": win.start, "endTime": win.end - 1}
    for key in ("retentionType", "criterion"):
        if src.get(key) is not None:
            body[key] = src[key]
    return _expect(behaviour.execute(parse_cohort(body, win.now), pinned.ctx), CohortResult)


# -- reshaping engine answers into views --------------------------------------------------------


def _num(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if f == f else None


def _label(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"  # (as the value is written in JSON)
    return "(none)" if value is None else str(value)


def _labels(keys: list[Any]) -> list[str]:
    """Category labels, distinct: a text value that reads like another value of the same key
    (200 and "200", true and "true") is shown quoted, so no two slices share a label."""
    plain = [_label(k) for k in keys]
    seen = Counter(plain)
    return [f'"{k}"' if isinstance(k, str) and seen[p] > 1 else p
            for k, p in zip(keys, plain, strict=True)]


def _series_view(lines: list[tuple[Any, list[int], list[Any]]],
                 interval: int) -> dict[str, Any]:
    """A time series view from (name, bucket starts, values) per line; the lines share the
    first one's timestamps (a grouped aggregate's series share one grid)."""
    timestamps = [int(t) for t in lines[0][1]] if lines else []
    return {"kind": "series", "interval": interval, "timestamps": timestamps,
            "series": [{"name": name, "values": [_num(v) for v in values]}
                       for name, _, values in lines]}


def _funnel_view(res: FunnelResult) -> dict[str, Any]:
    summary = res.summary
    steps = [{"name": s.name, "count": s.count, "conversionRate": s.conversion_rate,
              "dropoffRate": s.dropoff_rate} for s in summary.steps]
    return {"kind": "funnel", "steps": steps, "totalEntered": summary.total_entered,
            "totalCompleted": summary.total_completed,
            "overallConversionRate": summary.overall_conversion_rate}


def _retention_view(res: CohortResult, as_heatmap: bool) -> dict[str, Any]:
    periods = 0
    rows_pct: list[list[float | None]] = []
    labels: list[str] = []
    sizes: list[float] = []
    for c in res.cohorts:
        periods = max(periods, len(c.percentages))
        rows_pct.append([_num(v) for v in c.percentages])
        labels.append(_date_label(c.start_time))
        sizes.append(_num(c.size) or 0)
    x_labels = [f"P{p}" for p in range(periods)]
    if as_heatmap:
        return {"kind": "heatmap", "xLabels": x_labels, "yLabels": labels, "values": rows_pct,
                "unit": "%", "rowTotals": sizes}
    columns = ["Cohort", "Users", *x_labels]
    rows = [[lab, size, *[None if v is None else round(v, 1) for v in vals]]
            for lab, size, vals in zip(labels, sizes, rows_pct, strict=True)]
    return {"kind": "table", "columns": columns, "rows": rows}


def _date_label(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 10**11:
        return time.strftime("%Y-%m-%d", time.gmtime(value / 1000))
    return _label(value)


def _table_from_categories(view: dict[str, Any], src: dict[str, Any]) -> dict[str, Any]:
    key = src.get("property") or src.get("groupBy") or "value"
    total = view.get("total") or sum(v for v in view["values"] if v) or 0
    rows = []
    for label, value in zip(view["labels"], view["values"], strict=True):
        share = round(100.0 * value / total, 1) if total else None
        rows.append([label, value, share])
    return {"kind": "table", "columns": [str(key), "Count", "Share %"], "rows": rows}


def _table_from_series(view: dict[str, Any]) -> dict[str, Any]:
    names = [s["name"] for s in view["series"]]
    rows = []
    for i, ts in enumerate(view["timestamps"]):
        rows.append([ts, *[s["values"][i] for s in view["series"]]])
    return {"kind": "table", "columns": ["Time", *names], "rows": rows, "timeColumn": 0}


def _table_from_funnel(view: dict[str, Any]) -> dict[str, Any]:
    rows = [[s["name"], s["count"], s["conversionRate"], s["dropoffRate"]]
            for s in view["steps"]]
    return {"kind": "table", "columns": ["Step", "Users", "Conversion %", "Drop-off %"],
            "rows": rows}


# -- heatmap: events by weekday x hour of day (vectorised) -------------------------------------


def heatmap_view(pinned: Pinned, src: dict[str, Any], win: Window,
                 tz_offset_min: int = 0) -> dict[str, Any]:
    """7 x 24 matrix (Mon..Sun x 00..23, local to `tz_offset_min`) of the source's measure.

    count: events per cell; unique_users: distinct users per cell; aggregation: the metric's
    sum/avg/min/max (or count) per cell. One pass of numpy per block, no per-event Python.
    """
    flt = _source_filter(pinned, src, win)
    measure = "count"
    metric = None
    if src["type"] == "unique_users":
        measure = "unique_users"
    elif src["type"] == "aggregation":
        measure = src.get("aggregation", "count")
        metric = _strip_prefix(src["metric"]) if src.get("metric") else None
        if measure not in HEATMAP_MEASURES:  # (refused when the widget is saved)
            raise field_error("dataSource.aggregation", "a heatmap shows "
                              f"{', '.join(HEATMAP_MEASURES)} per cell", value=measure)
    values = pinned.ctx.backend.heatmap(flt, measure, metric, int(tz_offset_min) * MINUTE)
    grid = values.reshape(7, 24)
    rows = [[None if v != v else (int(v) if float(v).is_integer() else round(float(v), 3))
             for v in row] for row in grid.tolist()]
    finite = values[~np.isnan(values)]
    out: dict[str, Any] = {
        "kind": "heatmap", "xLabels": [f"{h:02d}" for h in range(24)],
        "yLabels": list(WEEKDAYS), "values": rows,
        "max": float(finite.max()) if len(finite) else 0.0,
        "total": float(finite.sum()) if measure in ("count", "sum") else None,
        "measure": measure, "tzOffsetMinutes": int(tz_offset_min)}
    note = short_range_note(win, WEEK_MS, "a weekday-by-hour pattern")
    if note:
        out.update(note)
    return out


WEEK_MS = 7 * DAY
# the range the page offers when a widget's range is shorter than its natural period
NATURAL_RANGES = ((WEEK_MS, "last_7d"), (30 * DAY, "last_30d"))


def short_range_note(win: Window, period_ms: int, what: str) -> dict[str, Any] | None:
    """A long-period widget (the weekday x hour heatmap) over a range shorter than its period
    is mostly empty cells, which reads as "no activity" rather than "not measured": its view
    says so (`note`) and names the shortest range that covers the period (`suggestedRange`),
    which the page offers as one click. The data itself is still the range's: every widget of
    a dashboard answers for the same range."""
    span = win.end - win.start
    if span >= period_ms:
        return None
    suggested = next((name for ms, name in NATURAL_RANGES if ms >= period_ms), None)
    return {"note": f"This range covers {_span_text(span)}; {what} needs at least "
                    f"{_span_text(period_ms)}, so most cells are empty.",
            "suggestedRange": suggested}


def _span_text(ms: int) -> str:
    for unit, name in ((DAY, "day"), (HOUR, "hour"), (MINUTE, "minute")):
        if ms >= unit:
            n = round(ms / unit)
            return f"{n} {name}{'s' if n != 1 else ''}"
    return f"{ms} ms"
