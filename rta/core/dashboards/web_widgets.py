"""Dashboard views of the web analytics sources (`web`, `web_breakdown`).

A `web` counter shows one headline figure with the previous period's value and the change
(`{"kind": "value", "value", "previous", "change", "unit"}`), or the visitors of the last five
minutes (`measure: realtime`); a `web` table lists all six figures. A `web_breakdown` is
categories (bar, pie: visitors per value) or a table (visitors, visits, pageviews, bounce
rate, share). Every widget of a dashboard reads one pinned view, so on the embedded engine
they share one visit derivation.

Thread rule: the dashboard's worker thread, over its pinned context.
"""

from __future__ import annotations

from typing import Any

from rta.core.queries import web
from rta.core.queries.backend import QueryContext
from rta.core.queries.web_results import BreakdownResult, RealtimeResult, WebResult
from rta.core.queries.web_specs import WebSettings, parse_web

UNITS = {"bounce_rate": "%", "visit_duration": "s"}
NAMES = {"visitors": "Visitors", "visits": "Visits", "pageviews": "Pageviews",
         "views_per_visit": "Views per visit", "bounce_rate": "Bounce rate",
         "visit_duration": "Visit duration (s)"}
DIMENSION_NAMES = {"pages": "Page", "entry-pages": "Entry page", "exit-pages": "Exit page",
                   "sources": "Source", "channels": "Channel", "utm-sources": "UTM source",
                   "utm-mediums": "UTM medium", "utm-campaigns": "UTM campaign",
                   "countries": "Country", "browsers": "Browser", "os": "OS",
                   "devices": "Device"}


def _params(src: dict[str, Any], start: int, end: int) -> dict[str, Any]:
    params: dict[str, Any] = {"startTime": start, "endTime": end - 1}
    if src.get("filters") is not None:
        params["where"] = src["filters"]
    if src.get("segment") is not None:
        params["segment"] = src["segment"]
    if src.get("bots"):
        params["bots"] = True
    return params


def web_view(ctx: QueryContext, settings: WebSettings, wtype: str, src: dict[str, Any],
             start: int, end: int, now: int) -> dict[str, Any]:
    """The view of a `web` or `web_breakdown` source over [start, end)."""
    params = _params(src, start, end)
    if src["type"] == "web_breakdown":
        params["limit"] = src.get("n", 10)
        res = web.execute(parse_web(params, now, src["dimension"]), ctx, settings)
        assert isinstance(res, BreakdownResult)
        return _breakdown_view(wtype, res)
    measure = src.get("measure", "visitors")
    if measure == "realtime":
        live = web.execute(parse_web(params, now, "realtime"), ctx, settings)
        assert isinstance(live, RealtimeResult)
        return {"kind": "value", "value": live.visitors}
    res = web.execute(parse_web(params, now), ctx, settings)
    assert isinstance(res, WebResult)
    metrics = res.to_json()["metrics"]
    if wtype == "table":
        return {"kind": "table", "columns": ["Metric", "Value", "Previous", "Change %"],
                "rows": [[NAMES[k], m["value"], m["previous"], m["change"]]
                         for k, m in metrics.items()]}
    m = metrics[measure]
    return {"kind": "value", "value": m["value"], "previous": m["previous"],
            "change": m["change"], "unit": UNITS.get(measure),
            "changeUnit": "pt" if measure == "bounce_rate" else "%",
            "lowerIsBetter": measure == "bounce_rate"}


def _breakdown_view(wtype: str, res: BreakdownResult) -> dict[str, Any]:
    body = res.to_json()
    labels = ["(none)" if r["value"] is None else str(r["value"]) for r in body["rows"]]
    if wtype == "table":
        rows = [[label, r["visitors"], r["visits"], r["pageviews"], r["bounce_rate"],
                 r["share"]] for label, r in zip(labels, body["rows"], strict=True)]
        return {"kind": "table", "columns": [DIMENSION_NAMES[res.dimension], "Visitors",
                                             "Visits", "Pageviews", "Bounce %", "Share %"],
                "rows": rows}
    return {"kind": "categories", "labels": labels,
            "values": [r["visitors"] for r in body["rows"]],
            "extra": [{"visits": r["visits"], "pageviews": r["pageviews"],
                       "bounceRate": r["bounce_rate"], "share": r["share"]}
                      for r in body["rows"]],
            "total": body["visitors"]}
