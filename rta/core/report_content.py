"""What a scheduled report says: a dashboard's headline figures with their change against
the previous period, and its top tables, read from one pinned backend view (so both
periods and every widget agree), through the backend protocol (embedded or ClickHouse).

Headlines:
- a counter or gauge: its value over its window;
- a chart of a series (line over `aggregation`, `count` or `unique_users`, bar over
  `aggregation` or `unique_users`): each series' total over exactly the window (the
  widget's aggregation over the whole window: a sum or count adds up, an average is the
  average of all the window's events, unique users are distinct over the window), for
  every drawn group when the chart is grouped.
The previous period is the same window shifted back by its own length (last_7d against the
7 days before it; today so far against the same span of yesterday).

Tables: the dashboard's table widgets, and its pie and bar charts of categories, first
`TABLE_ROWS` rows each. Funnel and heatmap widgets are not in a report (the picture shows
them).

Thread rule: `build_report` runs in a worker thread over a `Pinned` made on the event loop.
"""

from __future__ import annotations

import html
import math
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from rta.core.dashboards import Pinned, Window, resolve_widget
from rta.core.dashboards import widgets as dash_widgets
from rta.core.errors import RtaError
from rta.core.queries.buckets import Buckets

TABLE_ROWS = 10
SKIPPED = ("funnel", "heatmap")  # (drawn, not reported: neither a figure nor a table)
# the charts the dashboard draws as time series (as `widgets._widget_view` decides)
SERIES_SOURCES = {"line-chart": ("aggregation", "count", "unique_users"),
                  "bar-chart": ("aggregation", "unique_users")}


def _change(value: float | None, previous: float | None) -> dict[str, float | None]:
    if value is None or previous is None:
        return {"change": None, "changePct": None}
    change = value - previous
    pct = None if previous == 0 else round(100.0 * change / abs(previous), 1)
    return {"change": change, "changePct": pct}


def _headline(title: str, series: str | None, value: float | None,
              previous: float | None, aggregation: str | None) -> dict[str, Any]:
    return {"title": title, "series": series, "aggregation": aggregation, "value": value,
            "previous": previous, **_change(value, previous)}


def _shifted(widget: dict[str, Any], start: int, end: int) -> dict[str, Any]:
    """The widget with its data source pinned to [start, end) (the previous period)."""
    src = dict(widget["dataSource"])
    src.pop("timeRange", None)
    src["startTime"] = start
    src["endTime"] = end - 1  # (the API's endTime is inclusive)
    return {**widget, "dataSource": src}


def _empty(src: dict[str, Any]) -> float | None:
    """A series' total with no events: 0 for what adds up, no value otherwise."""
    agg = src.get("aggregation", "count") if src.get("type") == "aggregation" else "count"
    return 0.0 if agg in ("count", "sum") else None


def series_totals(pinned: Pinned, src: dict[str, Any],
                  win: Window) -> tuple[list[tuple[str, float | None]], bool]:
    """(series name, its total over exactly [start, end)) for a chart's source, and whether
    every group is listed (so a group missing had no events)."""
    flt = dash_widgets._source_filter(pinned, src, win)
    backend = pinned.ctx.backend
    if src["type"] == "unique_users":
        users, _events = backend.unique_users(flt)
        return [("unique users", float(users))], True
    agg = src.get("aggregation", "count") if src["type"] == "aggregation" else "count"
    metric = src["metric"].removeprefix("properties.") if src.get("metric") else None
    group_by = src.get("groupBy")
    if isinstance(group_by, str):
        group_by = group_by.removeprefix("properties.")
    limit = int(src.get("limit") or dash_widgets.GROUP_LIMIT) if group_by else 1
    buckets = Buckets(win.start, max(1, win.end - win.start), 1)
    data = backend.series(flt, buckets, agg, metric, group_by or None, limit)
    name = agg if metric is None else f"{agg}({src['metric']})"
    empty = _empty(src)
    total = data.total.value
    out: list[tuple[str, float | None]] = [
        (f"{name}, all" if data.series else name, empty if total is None else float(total))]
    labels = dash_widgets._labels([g.key for g in data.series])
    for label, group in zip(labels, data.series, strict=True):
        value = group.total.value
        out.append((label, empty if value is None else float(value)))
    return out, data.groups <= len(data.series)


def _table(title: str, view: dict[str, Any]) -> dict[str, Any] | None:
    if view.get("kind") == "table":
        columns = [str(c) for c in view.get("columns", [])]
        rows = view.get("rows", [])
        time_col = view.get("timeColumn")
    elif view.get("kind") == "categories":
        columns = ["Value", "Count"]
        rows = [[label, value] for label, value in zip(view["labels"], view["values"],
                                                       strict=True)]
        time_col = None
    else:
        return None
    shown = []
    for row in rows[:TABLE_ROWS]:
        cells = list(row)
        if time_col is not None and isinstance(cells[time_col], int | float):
            cells[time_col] = datetime.fromtimestamp(cells[time_col] / 1000, UTC).strftime(
                "%Y-%m-%d %H:%M")
        shown.append(cells)
    return {"title": title, "columns": columns, "rows": shown, "totalRows": len(rows)}


def build_report(pinned: Pinned, dashboard: dict[str, Any],
                 time_range: str | None = None) -> dict[str, Any]:
    """The report's content (JSON-shaped) for `dashboard` at the pinned view's clock."""
    now = pinned.ctx.now
    headlines: list[dict[str, Any]] = []
    tables: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    period: dict[str, int] | None = None
    for i, widget in enumerate(dashboard.get("widgets", [])):
        if widget.get("type") in SKIPPED:
            continue
        title = widget.get("title") or f"Widget {i + 1}"
        out = resolve_widget(pinned, dashboard, widget, i, time_range, 0, now)
        if out.get("error") is not None:
            errors.append({"title": title, "error": out["error"]["message"]})
            continue
        window = out["window"]
        start, end = int(window["start"]), int(window["end"])
        span = end - start
        if period is None:
            period = {"start": start, "end": end}
        wtype = widget.get("type")
        src = widget.get("dataSource") or {}
        try:
            if wtype in ("counter", "gauge"):
                before = resolve_widget(pinned, dashboard, _shifted(widget, start - span, start),
                                        i, None, 0, now)
                prev = (before.get("data") or {}).get("value")
                headlines.append(_headline(title, None, out["data"]["value"], prev,
                                           src.get("aggregation")))
            elif src.get("type") in SERIES_SOURCES.get(str(wtype), ()):
                current, _ = series_totals(pinned, src, Window(start, end, now, None))
                earlier, complete = series_totals(pinned, src,
                                                  Window(start - span, start, now, None))
                before = dict(earlier)
                missing = _empty(src) if complete else None
                for name, value in current:
                    headlines.append(_headline(title, name, value, before.get(name, missing),
                                               src.get("aggregation", "count")))
            else:
                table = _table(title, out["data"] or {})
                if table is not None:
                    tables.append(table)
        except RtaError as exc:
            errors.append({"title": title, "error": exc.message})
    return {"dashboardId": dashboard.get("id"), "name": dashboard.get("name"),
            "generatedAt": now, "timeRange": time_range or dashboard.get("timeRange"),
            "period": period,
            "previousPeriod": None if period is None else {
                "start": 2 * period["start"] - period["end"], "end": period["start"]},
            "headlines": headlines, "tables": tables, "errors": errors}


# -- text -------------------------------------------------------------------------------------


def number(value: Any) -> str:
    """A figure as people read it: thousands separated, at most two decimals."""
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if not math.isfinite(value):
        return str(value)
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.2f}"


def change_text(item: dict[str, Any]) -> str:
    change = item.get("change")
    if change is None:
        return "no previous figure"
    if change == 0:
        return "no change"
    arrow = "▲" if change > 0 else "▼"
    pct = item.get("changePct")
    pct_text = "" if pct is None else f" ({'+' if pct > 0 else ''}{pct:g}%)"
    return f"{arrow} {'+' if change > 0 else '-'}{number(abs(change))}{pct_text}"


def headline_label(item: dict[str, Any]) -> str:
    return item["title"] if not item.get("series") else f"{item['title']} - {item['series']}"


def period_text(content: dict[str, Any], tz: str) -> str:
    period = content.get("period")
    if not period:
        return "no data period"
    zone = ZoneInfo(tz)

    def fmt(ms: int) -> str:
        return datetime.fromtimestamp(ms / 1000, zone).strftime("%Y-%m-%d %H:%M")
    return f"{fmt(period['start'])} - {fmt(period['end'])} ({tz})"


def plain_text(content: dict[str, Any], tz: str, link: str | None,
               picture_note: str | None) -> str:
    lines = [f"{content['name']}", f"Period: {period_text(content, tz)}",
             "Changes are against the previous period of the same length.", ""]
    if content["headlines"]:
        lines.append("Headline figures")
        for item in content["headlines"]:
            lines.append(f"  {headline_label(item)}: {number(item['value'])}  "
                         f"[{change_text(item)}; before: {number(item['previous'])}]")
        lines.append("")
    for table in content["tables"]:
        lines.append(table["title"])
        lines.append("  " + " | ".join(table["columns"]))
        for row in table["rows"]:
            lines.append("  " + " | ".join(number(c) if not isinstance(c, str) else c
                                           for c in row))
        lines.append("")
    for err in content["errors"]:
        lines.append(f"! {err['title']}: {err['error']}")
    if picture_note:
        lines.append(picture_note)
    if link:
        lines.append(f"Open the dashboard: {link}")
    return "\n".join(lines).rstrip() + "\n"


def html_text(content: dict[str, Any], tz: str, link: str | None,
              picture_note: str | None) -> str:
    e = html.escape
    parts = ["<!doctype html><html><body style=\"font-family:sans-serif;color:#1f2937\">",
             f"<h2 style=\"margin:0 0 4px\">{e(content['name'] or '')}</h2>",
             f"<p style=\"color:#6b7280;margin:0 0 16px\">{e(period_text(content, tz))}; "
             "changes are against the previous period of the same length.</p>"]
    if content["headlines"]:
        parts.append("<table cellpadding=\"6\" style=\"border-collapse:collapse\">"
                     "<tr><th align=\"left\">Figure</th><th align=\"right\">Value</th>"
                     "<th align=\"right\">Change</th><th align=\"right\">Before</th></tr>")
        for item in content["headlines"]:
            change = item.get("change")
            colour = "#6b7280" if not change else ("#047857" if change > 0 else "#b91c1c")
            parts.append(f"<tr><td>{e(headline_label(item))}</td>"
                         f"<td align=\"right\"><b>{e(number(item['value']))}</b></td>"
                         f"<td align=\"right\" style=\"color:{colour}\">"
                         f"{e(change_text(item))}</td>"
                         f"<td align=\"right\">{e(number(item['previous']))}</td></tr>")
        parts.append("</table>")
    for table in content["tables"]:
        parts.append(f"<h3>{e(table['title'])}</h3><table cellpadding=\"4\" "
                     "style=\"border-collapse:collapse\"><tr>")
        parts.extend(f"<th align=\"left\">{e(c)}</th>" for c in table["columns"])
        parts.append("</tr>")
        for row in table["rows"]:
            parts.append("<tr>" + "".join(
                f"<td>{e(c if isinstance(c, str) else number(c))}</td>" for c in row) + "</tr>")
        parts.append("</table>")
    for err in content["errors"]:
        parts.append(f"<p style=\"color:#b91c1c\">{e(err['title'])}: {e(err['error'])}</p>")
    if picture_note:
        parts.append(f"<p style=\"color:#6b7280\">{e(picture_note)}</p>")
    if link:
        parts.append(f"<p><a href=\"{e(link)}\">Open the dashboard</a></p>")
    parts.append("</body></html>")
    return "".join(parts)
