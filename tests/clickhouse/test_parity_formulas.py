"""Parity of formulas over named series and of previous-period comparisons (the extra
queries they run, the McNemar union of users over two ranges with a gap between them)
and of alert metrics' window values (stickiness share in every example) between the
embedded engine and ClickHouse, on hypothesis-generated logs."""

from __future__ import annotations

import math
import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rta.core import alert_metrics as am
from rta.core.alerts import Rule, validate_alert
from rta.core.queries import analytics
from rta.core.queries import compare as cmp
from rta.core.queries import formula_query as fq
from rta.core.queries.analytics_specs import parse
from rta.core.queries.backend import QueryContext
from tests.clickhouse.event_logs import NOW, TYPES, Log, event_logs
from tests.clickhouse.harness import same
from tests.clickhouse.test_parity_analytics import _loaded
from tests.clickhouse.test_parity_basics import PREDICATES

SETTINGS = settings(max_examples=int(os.environ.get("RTA_PARITY_EXAMPLES", "6")),
                    deadline=None, suppress_health_check=[HealthCheck.too_slow])
RANGES = (("startTime", NOW - 10 * 86_400_000 - 3_600_000 * 5), ("timeRange", "last_7d"),
          ("timeRange", "last_24h"), (None, None))


@st.composite
def series_spec(draw: st.DrawFn, name: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": name, "eventType": draw(st.sampled_from(TYPES))}
    agg = draw(st.sampled_from(("count", "count", "unique_users", "sum", "avg", "max")))
    spec["aggregation"] = agg
    if agg in ("sum", "avg", "max"):
        spec["property"] = "amount"
    if draw(st.integers(0, 3)) == 0:
        spec["where"] = [draw(PREDICATES)]
    return spec


@st.composite
def formula_body(draw: st.DrawFn) -> dict[str, Any]:
    names = ["A", "B", "C"][:draw(st.integers(1, 3))]
    body: dict[str, Any] = {"series": [draw(series_spec(n)) for n in names],
                            "formula": draw(st.sampled_from(
                                ("A", "A * 2 - 1", "A / B * 100", "(A + B) / C", "-A / (B - C)"
                                 ))),
                            "interval": draw(st.sampled_from(("1h", "6h", "1d", "7d")))}
    if len(names) < 3:
        body["formula"] = {1: "A * 2 - 1", 2: "A / B * 100"}[len(names)]
    key, value = draw(st.sampled_from(RANGES))
    if key is not None:
        body[key] = value
    if draw(st.booleans()):
        body["compare"] = "previous_period"
    return body


def _formula(body: dict[str, Any], ctx: QueryContext) -> Any:
    try:
        params, mode = cmp.split_compare(body, "aggregate")
        q = fq.parse_formula_query(params, NOW)
        r = fq.execute(q, ctx)
        out = r.to_json()
        if mode:
            out["comparison"] = cmp.compare(q, r, ctx).to_json()
        return out
    except Exception as exc:
        return {"error": type(exc).__name__, "message": str(exc)}


@st.composite
def compare_params(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    kind = draw(st.sampled_from(("count", "unique-users", "aggregate")))
    body: dict[str, Any] = {"compare": "previous_period"}
    if draw(st.booleans()):
        body["type"] = draw(st.sampled_from(TYPES))
    if kind != "count" and draw(st.booleans()):
        body["interval"] = draw(st.sampled_from(("1h", "5h", "1d")))
    if kind == "aggregate":
        body["aggregation"] = draw(st.sampled_from(("count", "unique_users")))
    key, value = draw(st.sampled_from(RANGES))
    if key is not None:
        body[key] = value
    if draw(st.integers(0, 3)) == 0:
        body["where"] = [draw(PREDICATES)]
    return kind, body


def _compared(kind: str, body: dict[str, Any], ctx: QueryContext) -> Any:
    try:
        params, _ = cmp.split_compare(body, kind)
        q = parse(kind, params, NOW)
        r = analytics.execute(q, ctx)
        return {**r.to_json(), "comparison": cmp.compare(q, r, ctx).to_json()}
    except Exception as exc:
        return {"error": type(exc).__name__, "message": str(exc)}


METRICS = st.sampled_from([
    {"kind": "funnel", "steps": ["pageview", "signup"], "timeLimit": "1d"},
    {"kind": "funnel", "steps": ["pageview", "signup", "purchase"], "step": 2,
     "order": "any"},
    {"kind": "retention", "entryEvent": "signup", "retentionEvent": "pageview", "day": 2},
    {"kind": "unique_users", "eventType": "click"},
    {"kind": "formula", "series": [{"name": "A", "eventType": "purchase"},
                                   {"name": "B", "eventType": "pageview"}],
     "formula": "A / B"}])
# counters compared with the previous window (each measure's test), resolved on each backend
COUNTERS = {"name": "c", "timeRange": "last_7d", "widgets": [
    {"id": f"w{i}", "type": "counter", "title": f"w{i}",
     "dataSource": {**src, "compare": "previous_period"}}
    for i, src in enumerate((
        {"type": "count", "eventType": "pageview"},
        {"type": "unique_users", "where": [{"property": "amount", "operator": "gt",
                                            "value": 100}]},
        {"type": "aggregation", "aggregation": "avg", "metric": "amount"},
        {"type": "aggregation", "series": [{"name": "A", "eventType": "purchase"},
                                           {"name": "B", "eventType": "pageview"}],
         "formula": "A / B", "timeRange": "last_24h"}))]}


def _counters(ctx: QueryContext) -> list[Any]:
    from rta.core.dashboards.widgets import Pinned, resolve_dashboard

    out = resolve_dashboard(Pinned(ctx), COUNTERS, now=NOW)["widgets"]
    return [(w["data"], w["error"]) for w in out]


# always checked: the stickiness share (its where adds the window's time bounds)
STICKY = ({"kind": "stickiness", "eventType": "pageview", "minPeriods": 2},
          {"kind": "stickiness", "eventType": "click", "interval": "week", "minPeriods": 1,
           "where": [{"property": "amount", "operator": "gt", "value": 1}]})


@SETTINGS
@given(log=event_logs(), bodies=st.lists(formula_body(), min_size=1, max_size=3),
       compares=st.lists(compare_params(), min_size=1, max_size=3),
       metrics=st.lists(METRICS, min_size=1, max_size=2, unique_by=lambda m: m["kind"]))
def test_formulas_and_comparisons_match(log: Log, bodies: list[dict[str, Any]],
                                        compares: list[tuple[str, dict[str, Any]]],
                                        metrics: list[dict[str, Any]]) -> None:
    pair = _loaded(log)
    try:
        embedded, clickhouse = pair.contexts(NOW)
        for body in bodies:
            want = _formula(body, embedded)
            same(want, _formula(body, clickhouse), f"formula {body}")
        for kind, body in compares:
            want = _compared(kind, body, embedded)
            assert "error" not in want, want
            same(want, _compared(kind, body, clickhouse), f"{kind} {body}")
        for metric in (*metrics, *STICKY):  # (the same typed queries on either backend)
            rule = Rule.from_doc({**validate_alert({
                "name": "m", "condition": {"type": "threshold", "threshold": 1,
                                           "timeWindow": "10d", "metric": metric}}), "id": "r"})
            for end in (NOW, NOW - 3 * 86_400_000 + 7):
                a = am.window_value(rule, embedded, end)
                b = am.window_value(rule, clickhouse, end)
                assert (math.isnan(a) and math.isnan(b)) or math.isclose(a, b), (metric, a, b)
        want_counters = _counters(embedded)
        assert all(err is None for _, err in want_counters), want_counters
        same(want_counters, _counters(clickhouse), "counters compared")
    finally:
        pair.close()
