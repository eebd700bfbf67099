"""Alerts on a query's value, end to end: a funnel's conversion rate crossing a threshold
fires over the WebSocket and lands in the history; the backtest replays it; bad metrics are
400s naming the field."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from rta.client.ws import connect
from rta.core.alerts import now_ms
from tests.server.test_alerts_api import config_for, next_alert
from tests.server.test_ws import no_protocol_pings
from tests.support import LiveServer, live_server


@pytest.fixture
async def srv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[LiveServer]:
    no_protocol_pings(monkeypatch)
    async with live_server(config_for(tmp_path)) as server:
        yield server


@pytest.fixture
async def http(srv: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=srv.url, timeout=10) as client:
        yield client


def funnel_rule(**condition: Any) -> dict[str, Any]:
    return {"name": "signup conversion", "cooldown": 0, "condition": {
        "type": "threshold", "operator": "lt", "threshold": 50, "timeWindow": "1h",
        "evaluateEvery": "1s",
        "metric": {"kind": "funnel", "steps": ["visit", {"eventType": "signup"}],
                   "timeLimit": "1h", "step": "overall"}, **condition},
        "notification": {"channels": ["websocket", "log"], "severity": "warning"}}


def visits(users: range, at: int) -> list[dict[str, Any]]:
    return [{"type": "visit", "userId": f"u{i}", "timestamp": at} for i in users]


def signups(users: range, at: int) -> list[dict[str, Any]]:
    return [{"type": "signup", "userId": f"u{i}", "timestamp": at} for i in users]


async def wait_state(http: httpx.AsyncClient, alert_id: str, key: str, want: Any) -> None:
    with trio.fail_after(5):
        while (await http.get(f"/alerts/{alert_id}")).json()["state"].get(key) != want:
            await trio.sleep(0.1)


async def test_funnel_conversion_alert_fires_and_backtests(srv: LiveServer,
                                                           http: httpx.AsyncClient) -> None:
    now = now_ms()
    r = await http.post("/events/batch", json=visits(range(4), now - 30_000)
                        + signups(range(3), now - 25_000))
    assert r.status_code == 202
    r = await http.post("/alerts", json=funnel_rule())
    assert r.status_code == 201, r.text
    created = r.json()
    alert_id = created["id"]
    assert created["condition"]["evaluateEvery"] == 1000
    assert "funnel visit > signup conversion" in created["summary"]
    await wait_state(http, alert_id, "value", 75.0)  # 3 of 4: above the threshold
    assert (await http.get(f"/alerts/{alert_id}")).json()["state"]["status"] == "ok"

    async with connect(srv.url, subscriptions=[("alerts", None)]) as conn:
        r = await http.post("/events/batch", json=visits(range(4, 8), now - 20_000))
        fired = await next_alert(conn, timeout=5)  # 3 of 8 = 37.5 % < 50 %
    assert fired["event"] == "fired" and fired["alertId"] == alert_id
    assert fired["value"] == 37.5 and fired["threshold"] == 50
    history = (await http.get("/alerts/history", params={"alertId": alert_id})).json()
    assert history["history"][0]["event"] == "fired"
    assert history["history"][0]["value"] == 37.5

    # the backtest over the last minute: 0 % (visits before any signup), then 75 %, then
    # 37.5 % once the second visits arrive
    r = await http.post(f"/alerts/{alert_id}/test", json={"startTime": now - 60_000,
                                                          "endTime": now})
    assert r.status_code == 200, r.text
    test = r.json()
    assert test["stepMs"] == 1000 and test["evaluations"] == 60
    assert [(f["value"], f["firedAt"]) for f in test["firings"]] == [
        (0.0, now - 30_000 - (now - 30_000) % 1000 + 1000),
        (37.5, now - 20_000 - (now - 20_000) % 1000 + 1000)]
    assert test["firings"][0]["resolvedAt"] == now - 25_000 - (now - 25_000) % 1000 + 1000

    # the stored rule round-trips through PUT and PATCH (its counter fields at defaults)
    stored = (await http.get(f"/alerts/{alert_id}")).json()
    r = await http.put(f"/alerts/{alert_id}", json={
        k: stored[k] for k in ("name", "condition", "notification", "cooldown", "for")})
    assert r.status_code == 200, r.text
    r = await http.patch(f"/alerts/{alert_id}", json={"condition": {"threshold": 30}})
    assert r.status_code == 200, r.text
    assert r.json()["condition"]["metric"]["kind"] == "funnel"
    await wait_state(http, alert_id, "status", "resolved")  # 37.5 % is not below 30 %


async def test_stickiness_alert_fires_and_backtests(srv: LiveServer,
                                                    http: httpx.AsyncClient) -> None:
    """Share of the last 2 days' visitors seen on both calendar days (the window touches 3):
    four regulars (100 %), then five newcomers (4 of 9 = 44.44 % < 50 %) fire it."""
    now, day = now_ms(), 86_400_000
    regulars = visits(range(4), now - day - 30_000) + visits(range(4), now - 30_000)
    assert (await http.post("/events/batch", json=regulars)).status_code == 202
    body = funnel_rule(timeWindow="2d", metric={
        "kind": "stickiness", "eventType": "visit", "interval": "day", "minPeriods": 2})
    r = await http.post("/alerts", json=body)
    assert r.status_code == 201, r.text
    alert_id = r.json()["id"]
    assert "share of visit users active on >= 2 days" in r.json()["summary"]
    await wait_state(http, alert_id, "value", 100.0)
    async with connect(srv.url, subscriptions=[("alerts", None)]) as conn:
        await http.post("/events/batch", json=visits(range(4, 9), now - 20_000))
        fired = await next_alert(conn, timeout=5)
    assert fired["event"] == "fired" and fired["alertId"] == alert_id
    assert fired["value"] == 44.44
    r = await http.post(f"/alerts/{alert_id}/test", json={"startTime": now - 60_000,
                                                          "endTime": now})
    assert r.status_code == 200, r.text
    firings = r.json()["firings"]  # 0 % before the regulars' second visit, then 44.44 %
    assert [f["value"] for f in firings] == [0.0, 44.44]
    assert firings[1]["firedAt"] == now - 20_000 - (now - 20_000) % 1000 + 1000


async def test_bad_metrics_name_the_field(http: httpx.AsyncClient) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"metric": {"kind": "funnel", "steps": ["a", "b"], "step": "c"}},
         "condition.metric.step"),
        ({"metric": {"kind": "funnel", "steps": ["a", "b"], "step": 2}},
         "condition.metric.step"),
        ({"metric": {"kind": "funnel", "steps": ["a", {"name": "x"}]}},
         "condition.metric.steps[1].eventType"),
        ({"metric": {"kind": "funnel", "steps": ["a", "b"], "startTime": 0}},
         "condition.metric.startTime"),
        ({"metric": {"kind": "formula", "series": [{"name": "A", "eventType": "a"}],
                     "formula": "A / B"}}, "condition.metric.formula"),
        ({"metric": {"kind": "formula", "series": [{"name": "A", "where": 3}],
                     "formula": "A"}}, "condition.metric.series[0].where"),
        ({"metric": {"kind": "retention", "entryEvent": "a", "day": 7}}, "condition.timeWindow"),
        ({"metric": {"kind": "retention", "day": 1}}, "condition.metric.entryEvent"),
        ({"metric": {"kind": "unique_users", "eventType": "a", "page": 1}},
         "condition.metric.page"),
        ({"metric": {"kind": "stickiness"}}, "condition.metric.eventType"),
        ({"metric": {"kind": "stickiness", "eventType": "a", "minPeriods": 3}},
         "condition.metric.minPeriods"),  # a 1h window touches at most 2 days
        ({"metric": {"kind": "stickiness", "eventType": "a", "interval": "month"}},
         "condition.metric.interval"),
        ({"metric": {"kind": "sticky"}}, "condition.metric.kind"),
        ({"metric": "funnel"}, "condition.metric"),
        ({"eventType": "a", "metric": {"kind": "unique_users"}}, "condition.eventType"),
        ({"evaluateEvery": "10ms", "metric": {"kind": "unique_users"}},
         "condition.evaluateEvery"),
    ]
    for condition, field in cases:
        body = funnel_rule()
        body["condition"] = {**{k: v for k, v in body["condition"].items() if k != "metric"},
                             **condition}
        r = await http.post("/alerts", json=body)
        assert r.status_code == 400, (condition, r.text)
        err = r.json()["error"]
        assert err["details"][0]["field"] == field, (condition, err)
        assert err["message"].startswith(field), err
