"""Widgets over named series and a formula: an `aggregation` data source with `series`.

    {"type": "aggregation", "series": [{"name": "A", "eventType": "purchase"},
                                       {"name": "B", "eventType": "signup"}],
     "formula": "A / B * 100", "interval": "1d"}

The source is checked by the formula query's own parser (`formula_query`), so errors name
the same fields under the widget's path (`widgets[2].dataSource.formula`). Line and bar
charts and tables draw the formula per bucket (or each series when there is no formula);
counters and gauges show the formula over the series' totals for exactly the widget's
window. The source's own `eventType`, `filters` and `segment` apply to every series.

Thread rule: `check` anywhere (pure); `view` in the dashboard's worker thread.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from rta.core.errors import ValidationError, field_error
from rta.core.queries import formula_query as fq

if TYPE_CHECKING:
    from rta.core.dashboards.widgets import Pinned, Window

WIDGETS = ("line-chart", "bar-chart", "table", "counter", "gauge")
KEYS = ("type", "series", "formula", "interval", "eventType", "filters", "segment",
        "timeRange", "startTime", "endTime")


def has_series(src: dict[str, Any]) -> bool:
    return src.get("type") == "aggregation" and "series" in src


def _body(src: dict[str, Any], start: int | None, end: int | None, interval: Any,
          tz_offset_min: int = 0) -> dict[str, Any]:
    body: dict[str, Any] = {"series": src.get("series")}
    if src.get("formula") is not None:
        body["formula"] = src["formula"]
    if interval is not None:
        body["interval"] = interval
    if tz_offset_min:
        body["tzOffset"] = tz_offset_min
    if start is not None and end is not None:
        body.update(startTime=start, endTime=end - 1)
    for key, name in (("eventType", "eventType"), ("filters", "where"), ("segment", "segment")):
        if src.get(key) is not None:
            body[name] = src[key]
    return body


def check(src: dict[str, Any], path: str, wtype: str | None) -> dict[str, Any]:
    """The validated source (errors name fields under `path`)."""
    if wtype is not None and wtype not in WIDGETS:
        raise field_error(f"{path}.series", "named series and formulas are drawn by "
                          + ", ".join(WIDGETS) + " widgets", value=wtype)
    src = dict(src)
    if src.get("aggregation") == "count":  # (the editor's default for aggregation sources)
        del src["aggregation"]
    for key in src:
        if key not in KEYS:
            raise field_error(f"{path}.{key}", "is not used with series (give it per series)",
                              allowed=list(KEYS))
    try:
        fq.parse_formula_query(_body(src, None, None, src.get("interval")), 0)
    except ValidationError as exc:
        for d in exc.details:
            if isinstance(d.get("field"), str):
                d["field"] = f"{path}.{d['field']}"
        first = exc.details[0]["field"] if exc.details else path
        raise ValidationError(f"{first}: {exc.details[0].get('message', exc.message)}"
                              if exc.details else exc.message, exc.details) from None
    return src


def view(pinned: Pinned, wtype: str, src: dict[str, Any], win: Window,
         tz_offset_min: int) -> dict[str, Any]:
    """The widget's view: a value (counter, gauge), else a series (charts, tables)."""
    from rta.core.dashboards import widgets as w

    if wtype in ("counter", "gauge"):
        span = max(1, win.end - win.start)
        q = fq.parse_formula_query(_body(src, win.start, win.end, span), win.now)
        result = fq.execute(q, pinned.ctx)
        if result.values is None:  # (no formula: the first series' total)
            return {"kind": "value", "value": w._num(result.first.data.total.value)}
        return {"kind": "value", "value": w._num(result.total)}
    interval = w._interval(src, win)
    if interval >= w.HOUR and win.time_range not in ("today", "yesterday"):
        offset = int(tz_offset_min) * w.MINUTE
        win = replace(win, start=win.start - (win.start + offset) % interval)
    q = fq.parse_formula_query(_body(src, win.start, win.end, interval, int(tz_offset_min)),
                               win.now)
    result = fq.execute(q, pinned.ctx)
    stamps = result.first.data.rows.timestamps
    if result.values is not None:
        lines: list[tuple[Any, list[int], list[Any]]] = [
            (src.get("formula"), stamps, [None if v != v else v for v in result.values.tolist()])]
    else:
        lines = [(s.name, r.data.rows.timestamps, r.data.rows.values)
                 for s, r in zip(q.series, result.results, strict=True)]
    out = w._series_view(lines, interval)
    return w._table_from_series(out) if wtype == "table" else out
