"""Built-in dashboard templates over the common event vocabulary.

Pageview widgets read every SDK's pageviews (`PAGEVIEWS`; top pages through the web
analytics' page paths, which read `$pathname`, `path`, `page` or the URL alike).
The vocabulary is the demo data's (and most product-analytics setups'): pageview {page,
referrer, duration ms}, click {element, page, category}, signup {plan, source}, login {method},
purchase {amount, currency, product, quantity}, experiment_assigned {experiment, variant},
conversion {revenue}, form_submit {form}, error {message, code, page} and api_request
{endpoint, method, status, duration ms}. Each template is a complete dashboard body, validated
by the same rules as a user's dashboard, so a template can never produce a broken dashboard.

Thread rule: constant data; any thread.
"""

from __future__ import annotations

import copy
from typing import Any

LAYOUT = {"type": "grid", "columns": 12, "gap": 16}
# every SDK's pageview (rta's pageview and page, PostHog's $pageview: rta.core.queries.pageviews)
PAGEVIEWS = ["pageview", "page", "$pageview"]


def _w(wtype: str, title: str, pos: tuple[int, int, int, int], source: dict[str, Any],
       **config: Any) -> dict[str, Any]:
    x, y, w, h = pos
    out: dict[str, Any] = {"type": wtype, "title": title,
                           "position": {"x": x, "y": y, "w": w, "h": h}, "dataSource": source}
    if config:
        out["config"] = config
    return out


OVERVIEW: dict[str, Any] = {
    "name": "Overview",
    "description": "Traffic, users, revenue and conversion at a glance.",
    "layout": LAYOUT,
    "timeRange": "last_24h",
    "refreshInterval": 10_000,
    "widgets": [
        _w("counter", "Events", (0, 0, 3, 2), {"type": "count"}),
        _w("counter", "Active users", (3, 0, 3, 2), {"type": "unique_users"}),
        _w("counter", "Revenue", (6, 0, 3, 2),
           {"type": "aggregation", "eventType": "purchase", "metric": "amount",
            "aggregation": "sum"}, format="currency", currency="USD"),
        _w("counter", "Signups", (9, 0, 3, 2), {"type": "count", "eventType": "signup"}),
        _w("line-chart", "Pageviews over time", (0, 2, 8, 4),
           {"type": "aggregation", "eventType": PAGEVIEWS, "aggregation": "count"},
           showGrid=True, fill=True),
        _w("pie-chart", "Events by type", (8, 2, 4, 4), {"type": "count", "groupBy": "type"},
           doughnut=True),
        _w("bar-chart", "Top pages", (0, 6, 6, 4),
           {"type": "web_breakdown", "dimension": "pages", "n": 8}, horizontal=True),
        _w("funnel", "Purchase funnel", (6, 6, 6, 4),
           {"type": "funnel", "steps": [
               {"name": "Visited", "eventType": "pageview"},
               {"name": "Viewed products", "eventType": "click",
                "filters": {"category": "products"}},
               {"name": "Checkout", "eventType": "form_submit",
                "filters": {"form": "checkout"}},
               {"name": "Purchased", "eventType": "purchase"}],
            "timeLimit": 86_400_000}),
        _w("heatmap", "Activity by hour and weekday", (0, 10, 12, 4), {"type": "count"}),
    ],
}

ENGAGEMENT: dict[str, Any] = {
    "name": "Engagement",
    "description": "Who comes back, what they do, and when.",
    "layout": LAYOUT,
    "timeRange": "last_7d",
    "refreshInterval": 30_000,
    "widgets": [
        _w("counter", "Active users", (0, 0, 3, 2), {"type": "unique_users"}),
        _w("counter", "Pageviews", (3, 0, 3, 2), {"type": "count", "eventType": PAGEVIEWS}),
        _w("counter", "Logins", (6, 0, 3, 2), {"type": "count", "eventType": "login"}),
        _w("gauge", "Avg. time on page", (9, 0, 3, 2),
           {"type": "aggregation", "eventType": "pageview", "metric": "duration",
            "aggregation": "avg"}, min=0, max=60_000, unit="ms", thresholds=[20_000, 40_000],
           higherIsBetter=True),
        _w("line-chart", "Daily active users", (0, 2, 8, 4),
           {"type": "unique_users", "interval": "1d"}, fill=True),
        _w("pie-chart", "Signups by plan", (8, 2, 4, 4),
           {"type": "top", "eventType": "signup", "property": "plan", "n": 6}),
        _w("bar-chart", "Most clicked elements", (0, 6, 6, 4),
           {"type": "top", "eventType": "click", "property": "element", "n": 8},
           horizontal=True),
        _w("heatmap", "Retention: login after signup (daily cohorts)", (6, 6, 6, 4),
           {"type": "retention", "entryEvent": "signup", "retentionEvent": "login",
            "periods": 7, "periodLength": 86_400_000}),
        _w("heatmap", "When users are active", (0, 10, 8, 4),
           {"type": "count", "eventType": PAGEVIEWS}),
        _w("table", "Experiment assignments", (8, 10, 4, 4),
           {"type": "top", "eventType": "experiment_assigned", "property": "variant", "n": 5}),
    ],
}

PERFORMANCE: dict[str, Any] = {
    "name": "Performance",
    "description": "API latency, throughput and failures.",
    "layout": LAYOUT,
    "timeRange": "last_1h",
    "refreshInterval": 5_000,
    "widgets": [
        _w("counter", "API requests", (0, 0, 3, 2), {"type": "count", "eventType": "api_request"}),
        _w("counter", "Avg. latency", (3, 0, 3, 2),
           {"type": "aggregation", "eventType": "api_request", "metric": "duration",
            "aggregation": "avg"}, unit="ms", decimals=1),
        _w("gauge", "p95 latency", (6, 0, 3, 2),
           {"type": "aggregation", "eventType": "api_request", "metric": "duration",
            "aggregation": "p95"}, min=0, max=1000, unit="ms", thresholds=[300, 700]),
        _w("counter", "Server errors (5xx)", (9, 0, 3, 2),
           {"type": "count", "eventType": "api_request",
            "filters": [{"property": "status", "operator": "gte", "value": 500}]},
           tone="danger"),
        _w("line-chart", "p95 latency over time", (0, 2, 6, 4),
           {"type": "aggregation", "eventType": "api_request", "metric": "duration",
            "aggregation": "p95"}, unit="ms"),
        _w("bar-chart", "Requests over time", (6, 2, 6, 4),
           {"type": "aggregation", "eventType": "api_request", "aggregation": "count"}),
        _w("bar-chart", "Busiest endpoints", (0, 6, 6, 4),
           {"type": "top", "eventType": "api_request", "property": "endpoint", "n": 8},
           horizontal=True),
        _w("table", "Responses by status", (6, 6, 6, 4),
           {"type": "count", "eventType": "api_request", "groupBy": "status"}),
        _w("heatmap", "Request load by hour and weekday", (0, 10, 12, 4),
           {"type": "count", "eventType": "api_request"}),
    ],
}

ERRORS: dict[str, Any] = {
    "name": "Errors",
    "description": "What breaks, where, and for how many users.",
    "layout": LAYOUT,
    "timeRange": "last_24h",
    "refreshInterval": 10_000,
    "widgets": [
        _w("counter", "Errors", (0, 0, 4, 2), {"type": "count", "eventType": "error"},
           tone="danger"),
        _w("counter", "Users affected", (4, 0, 4, 2),
           {"type": "unique_users", "eventType": "error"}),
        _w("counter", "Failed API requests (5xx)", (8, 0, 4, 2),
           {"type": "count", "eventType": "api_request",
            "filters": [{"property": "status", "operator": "gte", "value": 500}]},
           tone="danger"),
        _w("line-chart", "Errors over time", (0, 2, 8, 4),
           {"type": "aggregation", "eventType": "error", "aggregation": "count"}, fill=True),
        _w("pie-chart", "Errors by page", (8, 2, 4, 4),
           {"type": "top", "eventType": "error", "property": "page", "n": 6}),
        _w("table", "Top error messages", (0, 6, 6, 4),
           {"type": "top", "eventType": "error", "property": "message", "n": 10}),
        _w("bar-chart", "Errors by code", (6, 6, 6, 4),
           {"type": "count", "eventType": "error", "groupBy": "code"}),
        _w("heatmap", "Errors by hour and weekday", (0, 10, 12, 4),
           {"type": "count", "eventType": "error"}),
    ],
}

def _web(title: str, pos: tuple[int, int, int, int], measure: str) -> dict[str, Any]:
    return _w("counter", title, pos, {"type": "web", "measure": measure},
              **({"unit": "%", "decimals": 1} if measure == "bounce_rate" else
                 {"unit": "s", "decimals": 0} if measure == "visit_duration" else
                 {"decimals": 2} if measure == "views_per_visit" else {}))


def _dim(wtype: str, title: str, pos: tuple[int, int, int, int], dimension: str,
         n: int = 10, **config: Any) -> dict[str, Any]:
    return _w(wtype, title, pos, {"type": "web_breakdown", "dimension": dimension, "n": n},
              **config)


# Web analytics on one page (docs/web.md): pageviews of every SDK, visits, sources, devices.
WEB: dict[str, Any] = {
    "name": "Web analytics",
    "description": "Visitors, visits, bounce rate, sources, pages, countries and devices.",
    "layout": LAYOUT,
    "timeRange": "last_7d",
    "refreshInterval": 30_000,
    "widgets": [
        _web("Unique visitors", (0, 0, 2, 2), "visitors"),
        _web("Total visits", (2, 0, 2, 2), "visits"),
        _web("Total pageviews", (4, 0, 2, 2), "pageviews"),
        _web("Views per visit", (6, 0, 2, 2), "views_per_visit"),
        _web("Bounce rate", (8, 0, 2, 2), "bounce_rate"),
        _web("Visit duration", (10, 0, 2, 2), "visit_duration"),
        _w("line-chart", "Visitors over time", (0, 2, 9, 4),
           {"type": "unique_users", "eventType": ["pageview", "page", "$pageview"],
            "filters": [{"property": "$bot", "operator": "neq", "value": True}]}, fill=True),
        _w("counter", "Visitors now (last 5 minutes)", (9, 2, 3, 4),
           {"type": "web", "measure": "realtime"}),
        _dim("table", "Top sources", (0, 6, 4, 4), "sources"),
        _dim("pie-chart", "Channels", (4, 6, 4, 4), "channels", 8, doughnut=True),
        _dim("table", "UTM campaigns", (8, 6, 4, 4), "utm-campaigns"),
        _dim("bar-chart", "Top pages", (0, 10, 4, 4), "pages", horizontal=True),
        _dim("table", "Entry pages", (4, 10, 4, 4), "entry-pages"),
        _dim("table", "Exit pages", (8, 10, 4, 4), "exit-pages"),
        _dim("bar-chart", "Countries", (0, 14, 3, 4), "countries", horizontal=True),
        _dim("pie-chart", "Browsers", (3, 14, 3, 4), "browsers", 6),
        _dim("pie-chart", "Operating systems", (6, 14, 3, 4), "os", 6),
        _dim("pie-chart", "Devices", (9, 14, 3, 4), "devices", 4, doughnut=True),
    ],
}

BUILTIN_TEMPLATES: dict[str, dict[str, Any]] = {
    "overview": OVERVIEW,
    "engagement": ENGAGEMENT,
    "performance": PERFORMANCE,
    "errors": ERRORS,
    "web": WEB,
}


def builtin(name: str) -> dict[str, Any] | None:
    """A deep copy of the named built-in template (callers may mutate it)."""
    tpl = BUILTIN_TEMPLATES.get(name)
    return None if tpl is None else copy.deepcopy(tpl)
