"""Resolving every widget's data: each widget's `dataSource` is answered by the query
engines (analytics and behaviour modules) and reshaped into a small *view* the browser draws
without further computation (the view shapes are listed in the package docstring).

A widget that fails at query time (data changed, a backend error) carries its own `error`
while the rest of the dashboard resolves.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections import Counter
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from rta.core.dashboards.model import (
    DEFAULT_REFRESH_MS,
    DEFAULT_TIME_RANGE,
    HEATMAP_MEASURES,
    _strip_prefix,
    check_widget_properties,
)
from rta.core.embedded.store.snapshot import Snapshot
from rta.core.errors import RtaError, field_error
from rta.core.queries.filters import parse_filter
from rta.core.queries.timeparse import DAY, HOUR, MINUTE, now_ms, parse_duration, parse_time_range

if TYPE_CHECKING:
    from rta.core.engine import Engine

log = logging.getLogger("rta.dashboards")
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
# Candidate bucket widths for charts without an explicit interval: the first that gives at
# most ~120 points over the range wins.
AUTO_INTERVALS = (MINUTE, 5 * MINUTE, 15 * MINUTE, HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, DAY,
                  7 * DAY)


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


def resolve_dashboard(engine: Engine | PinnedEngine, dashboard: dict[str, Any],
                      time_range: str | None = None, tz_offset_min: int = 0,
                      now: int | None = None) -> dict[str, Any]:
    """Every widget's data in one response; a failing widget carries its own `error`.

    All widgets read one snapshot. Pure reads with no result cache: with a `PinnedEngine`
    made on the event-loop thread, this may run in a worker thread.
    """
    if time_range is not None:
        parse_time_range(None, None, None, time_range=time_range)
    current = now_ms() if now is None else now
    t0 = time.perf_counter()
    pinned: Any = engine if isinstance(engine, PinnedEngine) else PinnedEngine(engine)
    widgets = []
    for i, widget in enumerate(dashboard.get("widgets", [])):
        widgets.append(resolve_widget(pinned, dashboard, widget, i, time_range, tz_offset_min,
                                      current))
    return {"dashboardId": dashboard.get("id"), "name": dashboard.get("name"),
            "updatedAt": dashboard.get("updatedAt"), "generatedAt": current,
            "timeRange": time_range or dashboard.get("timeRange"),
            "refreshInterval": dashboard.get("refreshInterval", DEFAULT_REFRESH_MS),
            "tookMs": round((time.perf_counter() - t0) * 1000, 2), "widgets": widgets}


def resolve_widget(engine: Engine, dashboard: dict[str, Any], widget: dict[str, Any], index: int,
                   time_range: str | None = None, tz_offset_min: int = 0,
                   now: int | None = None) -> dict[str, Any]:
    current = now_ms() if now is None else now
    out: dict[str, Any] = {"id": widget.get("id", f"w{index + 1}"), "index": index,
                           "type": widget.get("type"), "title": widget.get("title"),
                           "data": None, "error": None}
    t0 = time.perf_counter()
    try:
        src = widget["dataSource"]
        win = _window(src, dashboard, time_range, current)
        out["window"] = {"start": win.start, "end": win.end, "timeRange": win.time_range}
        out["data"] = _widget_view(engine, widget, index, src, win, tz_offset_min)
    except RtaError as exc:
        out["error"] = exc.to_dict()["error"]
    except Exception as exc:  # one broken widget must not take the dashboard down
        log.exception("dashboard widget %s failed", out["id"])
        out["error"] = {"code": "internal_error", "message": f"widget failed: {exc}",
                        "details": [{"type": type(exc).__name__}]}
    out["tookMs"] = round((time.perf_counter() - t0) * 1000, 2)
    return out


def _widget_view(engine: Engine, widget: dict[str, Any], index: int, src: dict[str, Any],
                 win: Window, tz_offset_min: int) -> dict[str, Any]:
    wtype = widget["type"]
    stype = src["type"]
    check_widget_properties(engine.snapshot(), widget, index, missing_ok=True)
    if wtype == "heatmap":
        if stype == "retention":
            return _retention_view(_run_retention(engine, src, win), as_heatmap=True)
        return heatmap_view(engine, src, win, tz_offset_min)
    if wtype in ("counter", "gauge"):
        return {"kind": "value", "value": _scalar(engine, src, win)}
    if wtype == "funnel" or stype == "funnel":
        view = _funnel_view(_run_funnel(engine, src, win))
        if wtype == "table":
            return _table_from_funnel(view)
        if wtype == "bar-chart":
            return {"kind": "categories", "labels": [s["name"] for s in view["steps"]],
                    "values": [s["count"] for s in view["steps"]]}
        return view
    if stype == "retention":
        return _retention_view(_run_retention(engine, src, win), as_heatmap=False)
    if wtype == "line-chart" or (wtype == "bar-chart" and stype in ("aggregation",
                                                                    "unique_users")):
        return _series(engine, src, win, tz_offset_min)
    if wtype == "table" and stype in ("aggregation", "unique_users"):
        return _table_from_series(_series(engine, src, win, tz_offset_min))
    # categories: pie, bar (count/top), table (count/top)
    view = _categories(engine, src, win)
    return _table_from_categories(view, src) if wtype == "table" else view


# -- adapters onto the query engines ------------------------------------------------------------


def _engine_module(name: str, what: str) -> Any:
    """The query module, imported late so dashboards load even in a partial build."""
    try:
        return importlib.import_module(name)
    except ImportError:  # pragma: no cover - both modules ship with the package
        raise RtaError(f"{what} queries are not available in this build",
                       code="not_available") from None


def _analytics(kind: str, engine: Engine, params: dict[str, Any]) -> dict[str, Any]:
    """An analytics query computed directly (no result cache): the cache belongs to the
    event-loop thread, and dashboards resolve in a worker thread over a pinned snapshot.

    The seam for the typed query API (`rta.core.queries.analytics_specs` / `_results`): the
    answer is read back with `_field` by the exact keys each query's JSON has, so switching
    means building the spec here and reading the result's attributes where `_field` is."""
    module = _engine_module("rta.core.queries.analytics", "analytics")
    result: dict[str, Any] = module.prepare(kind, engine, params).compute()
    return result


def _behaviour() -> Any:
    return _engine_module("rta.core.queries.behaviour", "behavioural")


class PinnedEngine:
    """The engine seen through one snapshot, so every widget of a dashboard reads the same
    data and a worker thread never asks the live store for a snapshot while ingest runs."""

    def __init__(self, engine: Engine, snap: Snapshot | None = None) -> None:
        self._engine = engine
        self._snap = snap if snap is not None else engine.snapshot()

    def snapshot(self) -> Snapshot:
        return self._snap

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)


def _common(src: dict[str, Any], win: Window) -> dict[str, Any]:
    body: dict[str, Any] = {"startTime": win.start, "endTime": win.end - 1}
    if src.get("eventType") is not None:
        body["eventType"] = src["eventType"]
    if src.get("filters") is not None:
        body["where"] = src["filters"]
    if src.get("segment") is not None:
        body["segment"] = src["segment"]
    return body


def _params(src: dict[str, Any], win: Window) -> dict[str, Any]:
    """Query-string style parameters for the GET-shaped analytics calls."""
    params = _common(src, win)
    if "eventType" in params:
        etype = params.pop("eventType")
        params["type"] = etype if isinstance(etype, str) else ",".join(etype)
    return params


def _interval(src: dict[str, Any], win: Window) -> int:
    if src.get("interval") is not None:
        return parse_duration(src["interval"], "interval")
    return auto_interval(win.end - win.start)


def _scalar(engine: Engine, src: dict[str, Any], win: Window) -> float | None:
    stype = src["type"]
    if stype == "count":
        res = _analytics("count", engine, _params(src, win))
        return _num(_field(res, "count"))
    if stype == "unique_users":
        res = _analytics("unique-users", engine, _params(src, win))
        return _num(_field(res, "uniqueUsers"))
    return exact_aggregate(engine, src, win)


def exact_aggregate(engine: Engine, src: dict[str, Any], win: Window) -> float | None:
    """One aggregation over exactly [start, end): a single bucket of the time-series kernel.

    The analytics API widens ranges to epoch-aligned buckets (right for charts); a counter
    saying "revenue, last 24h" must cover exactly the last 24 hours.
    """
    ts_mod = _engine_module("rta.core.embedded.timeseries", "analytics")
    agg = src.get("aggregation", "count")
    metric = _strip_prefix(src["metric"]) if src.get("metric") else None
    flt = _event_filter(engine, src, win)
    snap = engine.snapshot()
    buckets = ts_mod.Buckets(win.start, max(1, win.end - win.start), 1)
    res = ts_mod.timeseries(flt, snap, buckets, agg, metric)
    value = float(res.total_value)
    if value != value or value in (float("inf"), float("-inf")):
        return 0.0 if agg in ("count", "sum", "unique_users") else None
    return value


def _event_filter(engine: Engine, src: dict[str, Any], win: Window) -> Any:
    spec: dict[str, Any] = {"startTime": win.start, "endTime": win.end - 1}
    for key in ("eventType", "segment"):
        if src.get(key) is not None:
            spec[key] = src[key]
    if src.get("filters") is not None:
        spec["where"] = src["filters"]
    return parse_filter(spec, "dataSource", win.now,
                        segments=engine.services.segment_resolver)


def _series(engine: Engine, src: dict[str, Any], win: Window,
            tz_offset_min: int = 0) -> dict[str, Any]:
    """A chart's series: buckets follow the viewer's time zone (daily ones start at local
    midnight), and a rolling window starts at a bucket boundary, so the first bucket of
    "last 7 days by day" is a whole day, not the sliver of one that a window starting now
    minus 7 days would cut."""
    interval = _interval(src, win)
    offset = int(tz_offset_min) * MINUTE
    if interval >= HOUR and win.time_range not in ("today", "yesterday"):
        win = replace(win, start=win.start - (win.start + offset) % interval)
    zone = {"tzOffset": int(tz_offset_min)}
    if src["type"] == "unique_users":
        res = _analytics("unique-users", engine, {**_params(src, win), "interval": interval,
                                                  **zone})
        name = "unique users"
    else:
        agg = src.get("aggregation", "count") if src["type"] == "aggregation" else "count"
        body = {**_common(src, win), "aggregation": agg, "interval": interval, **zone}
        if src.get("metric"):
            body["metric"] = src["metric"]
        if src.get("groupBy"):
            body["groupBy"] = src["groupBy"]
            body["limit"] = src.get("limit", 8)
        res = _analytics("aggregate", engine, body)
        name = agg if not src.get("metric") else f"{agg}({src['metric']})"
    return _series_view(res, name, interval)


def _categories(engine: Engine, src: dict[str, Any], win: Window) -> dict[str, Any]:
    if src["type"] == "top":
        params = {**_params(src, win), "property": src["property"], "n": src.get("n", 10)}
        res = _analytics("top", engine, params)
        keys, values, extra = [], [], []
        for r in _field(res, "values"):
            keys.append(_field(r, "value"))
            values.append(_num(_field(r, "count")) or 0)
            extra.append({"uniqueUsers": _field(r, "uniqueUsers"), "share": _field(r, "share")})
        # (a top answer has no total: a table's shares are of the values shown)
        return {"kind": "categories", "labels": _labels(keys), "values": values,
                "extra": extra, "total": None}
    params = _params(src, win)
    if src.get("groupBy"):
        params["groupBy"] = src["groupBy"]
    if src["type"] == "unique_users":
        res = _analytics("unique-users", engine, params)
        return {"kind": "categories", "labels": ["users"],
                "values": [_num(_field(res, "uniqueUsers")) or 0]}
    res = _analytics("count", engine, params)
    if src.get("groupBy"):
        items = [(_field(g, "key"), _field(g, "count")) for g in _field(res, "groups")]
    else:
        items = [("total", _field(res, "count"))]
    items.sort(key=lambda kv: -(_num(kv[1]) or 0))
    labels = _labels([k for k, _ in items])
    values = [_num(v) or 0 for _, v in items]
    return {"kind": "categories", "labels": labels, "values": values,
            "total": _num(_field(res, "count"))}


def _run_funnel(engine: Engine, src: dict[str, Any], win: Window) -> dict[str, Any]:
    body: dict[str, Any] = {"steps": src["steps"], "startTime": win.start,
                            "endTime": win.end - 1}
    for key in ("timeLimit", "order", "countBy"):
        if src.get(key) is not None:
            body[key] = src[key]
    snap = engine.snapshot()
    funnel = _engine_module("rta.core.embedded.funnel", "behavioural")
    query = funnel.parse(body, win.now, engine, snap)  # segments resolve over all the data
    res: dict[str, Any] = funnel.answer(snap, query)  # answer() prunes to the window itself
    return res


def _run_retention(engine: Engine, src: dict[str, Any], win: Window) -> dict[str, Any]:
    body: dict[str, Any] = {"entryEvent": src["entryEvent"],
                            "retentionEvent": src["retentionEvent"],
                            "periods": src.get("periods", 7),
                            "periodLength": src.get("periodLength", DAY),
                            "startTime": win.start, "endTime": win.end - 1}
    for key in ("retentionType", "criterion"):
        if src.get(key) is not None:
            body[key] = src[key]
    res: dict[str, Any] = _behaviour().run_cohort(engine, body, win.now, engine.snapshot())
    return res


# -- reshaping engine answers into views --------------------------------------------------------


class AnswerShapeError(LookupError):
    """A query answer lacks a field a widget reads: a renamed field fails the widget loudly
    (its `error`) instead of drawing it blank."""


def _field(answer: Any, key: str) -> Any:
    """`answer[key]`, the exact key the query's JSON answer has."""
    if not isinstance(answer, dict) or key not in answer:
        raise AnswerShapeError(f"the query answer has no {key!r} field")
    return answer[key]


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


def _series_view(res: Any, name: str, interval: int) -> dict[str, Any]:
    """A time series: one per group when the aggregate is grouped (and has groups), else
    the answer's buckets under `name`."""
    series_list = res.get("series") if isinstance(res, dict) else None
    timestamps: list[int] = []
    out_series: list[dict[str, Any]] = []
    if series_list:
        names = _labels([_field(s, "key") for s in series_list])
        for s, series_name in zip(series_list, names, strict=True):
            pts = _field(s, "buckets")
            if not timestamps:
                timestamps = [int(_field(p, "timestamp")) for p in pts]
            out_series.append({"name": series_name,
                               "values": [_num(_field(p, "value")) for p in pts]})
    else:
        pts = _field(res, "buckets")
        timestamps = [int(_field(p, "timestamp")) for p in pts]
        out_series.append({"name": name, "values": [_num(_field(p, "value")) for p in pts]})
    return {"kind": "series", "interval": interval, "timestamps": timestamps,
            "series": out_series}


def _funnel_view(res: dict[str, Any]) -> dict[str, Any]:
    steps = []
    for s in res.get("steps", []):
        steps.append({"name": s.get("name"), "count": s.get("count", 0),
                      "conversionRate": s.get("conversionRate"),
                      "dropoffRate": s.get("dropoffRate")})
    return {"kind": "funnel", "steps": steps, "totalEntered": res.get("totalEntered"),
            "totalCompleted": res.get("totalCompleted"),
            "overallConversionRate": res.get("overallConversionRate")}


def _retention_view(res: dict[str, Any], as_heatmap: bool) -> dict[str, Any]:
    periods = 0
    rows_pct: list[list[float | None]] = []
    labels: list[str] = []
    sizes: list[float] = []
    for c in _field(res, "cohorts"):
        pct = _field(c, "percentages")
        size = _num(_field(c, "size")) or 0
        periods = max(periods, len(pct))
        rows_pct.append([_num(v) for v in pct])
        labels.append(_date_label(_field(c, "startTime")))
        sizes.append(size)
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


def _hour_cell_counts(ts: np.ndarray, offset: int) -> np.ndarray:
    """Events per heatmap cell for time-sorted `ts`: binary search on the local hour
    boundaries instead of bucketing every event (a day of events spans ~25 hours)."""
    first = (int(ts[0]) + offset) // HOUR
    last = (int(ts[-1]) + offset) // HOUR
    hours = np.arange(first, last + 2, dtype=np.int64)  # local hour indexes, one past the end
    edges = np.searchsorted(ts, hours * HOUR - offset, "left")
    per_hour = np.diff(edges).astype(np.float64)
    h = hours[:-1]
    cell = ((h // 24 + 3) % 7) * 24 + h % 24  # 1970-01-01 was a Thursday (Mon = 0)
    return np.bincount(cell, weights=per_hour, minlength=168)


def heatmap_view(engine: Engine, src: dict[str, Any], win: Window,
                 tz_offset_min: int = 0) -> dict[str, Any]:
    """7 x 24 matrix (Mon..Sun x 00..23, local to `tz_offset_min`) of the source's measure.

    count: events per cell; unique_users: distinct users per cell; aggregation: the metric's
    sum/avg/min/max (or count) per cell. One pass of numpy per block, no per-event Python.
    """
    flt = _event_filter(engine, src, win)
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
    snap = engine.snapshot()
    offset = int(tz_offset_min) * MINUTE
    counts = np.zeros(168, dtype=np.float64)
    sums = np.zeros(168, dtype=np.float64)
    mins = np.full(168, np.inf)
    maxs = np.full(168, -np.inf)
    pairs: list[np.ndarray] = []
    for block, sl, mask in flt.select(snap):
        ts = block.ts[sl]
        if mask is None and metric is None and measure != "unique_users" and len(ts):
            counts += _hour_cell_counts(ts, offset)
            continue
        if mask is not None:
            ts = ts[mask]
        local = ts + offset
        days = np.floor_divide(local, DAY)
        hour = np.floor_divide(local - days * DAY, HOUR)
        cell = ((days + 3) % 7) * 24 + hour  # 1970-01-01 was a Thursday (Mon = 0)
        if measure == "unique_users":
            users = block.user[sl] if mask is None else block.user[sl][mask]
            ok = users >= 0
            pairs.append(cell[ok] * (1 << 32) + users[ok].astype(np.int64))
            continue
        if metric is None:
            counts += np.bincount(cell, minlength=168)
            continue
        vals = block.numeric(metric)[sl]
        if mask is not None:
            vals = vals[mask]
        ok = ~np.isnan(vals)
        c, v = cell[ok], vals[ok]
        counts += np.bincount(c, minlength=168)
        sums += np.bincount(c, weights=v, minlength=168)
        if measure in ("min", "max") and len(c):
            np.minimum.at(mins, c, v)
            np.maximum.at(maxs, c, v)
    values: np.ndarray
    if measure == "unique_users":
        uniq = np.unique(np.concatenate(pairs)) if pairs else np.zeros(0, np.int64)
        values = np.bincount(uniq >> 32, minlength=168).astype(np.float64)
    elif measure == "sum":
        values = sums
    elif measure == "avg":
        with np.errstate(invalid="ignore", divide="ignore"):
            values = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    elif measure == "min":
        values = np.where(np.isfinite(mins), mins, np.nan)
    elif measure == "max":
        values = np.where(np.isfinite(maxs), maxs, np.nan)
    else:
        values = counts
    grid = values.reshape(7, 24)
    rows = [[None if v != v else (int(v) if float(v).is_integer() else round(float(v), 3))
             for v in row] for row in grid.tolist()]
    finite = values[~np.isnan(values)]
    return {"kind": "heatmap", "xLabels": [f"{h:02d}" for h in range(24)],
            "yLabels": list(WEEKDAYS), "values": rows,
            "max": float(finite.max()) if len(finite) else 0.0,
            "total": float(finite.sum()) if measure in ("count", "sum") else None,
            "measure": measure, "tzOffsetMinutes": int(tz_offset_min)}
