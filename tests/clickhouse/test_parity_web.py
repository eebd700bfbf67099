"""Parity of the web analytics (visits, headline figures, every dimension) between the
embedded engine and ClickHouse, on hypothesis-generated traffic (gaps at the timeout, ties,
late batches, session ids, bots, malformed URLs; tests/core/web_logs.py)."""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rta.core.queries import web
from rta.core.queries.backend import QueryContext
from rta.core.queries.web_specs import DIMENSIONS, WebSettings, parse_web
from tests.clickhouse.harness import Pair, same
from tests.core.web_logs import NOW, T0, web_log

SETTINGS = settings(max_examples=int(os.environ.get("RTA_PARITY_EXAMPLES", "6")),
                    deadline=None, suppress_health_check=[HealthCheck.too_slow])
RULES = WebSettings(own_hosts=("sub.site.com",))


def _answer(params: dict[str, Any], dimension: str | None, ctx: QueryContext) -> Any:
    try:
        return web.execute(parse_web(params, NOW, dimension), ctx, RULES).to_json()
    except Exception as exc:  # a 400 must be the same 400 on both sides
        return {"error": type(exc).__name__, "message": str(exc)}


def _check(log: list[list[dict[str, Any]]], queries: list[tuple[dict[str, Any],
                                                                str | None]]) -> None:
    pair = Pair.create()
    try:
        for batch in log:
            pair.ingest(batch, NOW)
        embedded, clickhouse = pair.contexts(NOW)
        for params, dimension in queries:
            want = _answer(params, dimension, embedded)
            assert "error" not in want, want
            same(want, _answer(params, dimension, clickhouse), f"{dimension} {params}")
    finally:
        pair.close()


@st.composite
def queries(draw: st.DrawFn) -> list[tuple[dict[str, Any], str | None]]:
    out: list[tuple[dict[str, Any], str | None]] = []
    for dimension in [None, *draw(st.lists(st.sampled_from(DIMENSIONS), min_size=1,
                                           max_size=3, unique=True))]:
        params: dict[str, Any] = {"startTime": T0 + draw(st.integers(-2, 40)) * 3_600_000}
        params["endTime"] = params["startTime"] + draw(st.sampled_from((1, 24, 400))) * \
            3_600_000
        if draw(st.booleans()):
            params["bots"] = "true"
        if dimension is not None:
            params["limit"] = draw(st.sampled_from((1, 3, 50)))
        if draw(st.integers(0, 3)) == 0:
            params["where"] = '[{"property": "$browser", "operator": "neq", "value": "Safari"}]'
        out.append((params, dimension))
    return out


@SETTINGS
@given(web_log(), queries())
def test_web_answers_match(log: list[list[dict[str, Any]]],
                           asked: list[tuple[dict[str, Any], str | None]]) -> None:
    _check(log, asked)


def test_every_dimension_on_one_log() -> None:
    t = T0
    log = [[{"type": "$pageview", "userId": f"u{i % 3}", "timestamp": t + i * 7 * 60_000,
             "properties": {"$current_url": f"https://site.com/p{i % 4}?utm_source=s{i % 2}"
                                            f"&utm_medium=cpc&utm_campaign=c{i % 3}",
                            "$referrer": ("https://www.google.com/", "$direct",
                                          "https://sub.site.com/", "http://[bad")[i % 4],
                            "$browser": ("Chrome", "Firefox")[i % 2],
                            "$os": "Linux", "$device_type": "Desktop",
                            "$geoip_country_code": ("DE", "US", "FR")[i % 3]}}
            for i in range(40)],
           [{"type": "click", "userId": "u1", "timestamp": t + 3 * 60_000},
            {"type": "pageview", "userId": "u2", "timestamp": t,
             "properties": {"page": "/late"}}]]
    everything = {"startTime": T0 - 1, "endTime": NOW - 1}
    _check(log, [(everything, None), (everything, "realtime"),
                 *[({**everything, "limit": 5}, d) for d in DIMENSIONS]])


def test_the_web_template_resolves_alike() -> None:
    """Every widget of the `web` dashboard template, on both engines."""
    from rta.core.dashboards import validate_dashboard
    from rta.core.dashboards.templates import builtin
    from rta.core.dashboards.widgets import Pinned, resolve_dashboard

    t = NOW - 3 * 3_600_000
    log = [[{"type": "$pageview", "userId": f"u{i % 4}", "timestamp": t + i * 11 * 60_000,
             "properties": {"$current_url": f"https://site.com/p{i % 3}?utm_campaign=c{i % 2}",
                            "$referrer": ("https://www.bing.com/", "$direct")[i % 2],
                            "$browser": ("Chrome", "Safari")[i % 2], "$os": "iOS",
                            "$device_type": "Mobile", "$geoip_country_code": "JP"}}
            for i in range(16)]]
    doc = validate_dashboard(builtin("web"))
    pair = Pair.create()
    try:
        for batch in log:
            pair.ingest(batch, NOW)
        answers = []
        for ctx in pair.contexts(NOW):
            out = resolve_dashboard(Pinned(ctx, RULES), doc, now=NOW)
            answers.append([(w["title"], w["error"], w["data"]) for w in out["widgets"]])
        assert all(error is None for _, error, _ in answers[0]), answers[0]
        same(answers[0], answers[1])
    finally:
        pair.close()
