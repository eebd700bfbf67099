"""Formulas and period comparisons over a real server: the response shapes, the 400s
naming the field, and that the single-series body answers exactly as before."""

from __future__ import annotations

from typing import Any

import httpx

BASE = 1_700_000_000_000 - 1_700_000_000_000 % 3_600_000
STEP = 60_000
END = BASE + 20 * STEP


def events() -> list[dict[str, Any]]:
    out = []
    for i in range(20):
        out.append({"type": "pageview", "userId": f"u{i % 5}", "timestamp": BASE + i * STEP})
        if i % 4 == 0:
            out.append({"type": "signup", "userId": f"u{i % 5}", "timestamp": BASE + i * STEP,
                        "properties": {"plan": "pro" if i % 8 == 0 else "free"}})
    return out


async def test_formula_route(http: httpx.AsyncClient) -> None:
    r = await http.post("/events/batch", json=events())
    assert r.status_code == 202, r.text
    single = {"eventType": "signup", "interval": "5m", "startTime": BASE, "endTime": END - 1}
    before = (await http.post("/analytics/aggregate", json=single)).json()
    body = {"series": [{"name": "S", "eventType": "signup"},
                       {"name": "P", "eventType": "pageview", "aggregation": "unique_users"}],
            "formula": "S / P * 100", "interval": "5m", "startTime": BASE, "endTime": END - 1}
    r = await http.post("/analytics/aggregate", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["formula"] == "S / P * 100" and out["bucketCount"] == 4
    assert [b["value"] for b in out["buckets"]] == [2 / 5 * 100, 1 / 5 * 100, 1 / 5 * 100,
                                                     1 / 5 * 100]
    assert out["total"]["value"] == 5 / 5 * 100
    # the series answer exactly as the single-series body does
    series = {k: v for k, v in out["series"][0].items() if k != "name"}
    assert series == {k: v for k, v in before.items() if k != "cached"}
    after = (await http.post("/analytics/aggregate", json=single)).json()
    assert {k: v for k, v in after.items() if k != "cached"} == \
        {k: v for k, v in before.items() if k != "cached"}

    # warnings name the series
    body["series"][0]["eventType"] = "signupp"
    out = (await http.post("/analytics/aggregate", json=body)).json()
    assert out["warnings"][0]["field"] == "series[0].type"

    for bad, field in [({"formula": "S / X"}, "formula"),
                       ({"formula": "S /"}, "formula"),
                       ({"series": [{"name": f"A{i}"} for i in range(11)]}, "series"),
                       ({"series": [{"name": "S", "where": 3}]}, "series[0].where")]:
        r = await http.post("/analytics/aggregate", json={**body, **bad})
        assert r.status_code == 400, r.text
        err = r.json()["error"]
        assert err["details"][0]["field"] == field, err
    r = await http.post("/analytics/aggregate", json={**body, "formula": "S + (P"})
    assert r.json()["error"]["details"][0]["position"] == 6
    assert "at character 6" in r.json()["error"]["message"]


async def test_compare_routes(http: httpx.AsyncClient) -> None:
    r = await http.post("/events/batch", json=events())
    assert r.status_code == 202, r.text
    half = BASE + 10 * STEP
    r = await http.get("/analytics/count", params={
        "type": "pageview", "startTime": half, "endTime": END - 1, "compare": "previous_period"})
    assert r.status_code == 200, r.text
    c = r.json()["comparison"]
    assert c["value"] == 10 and r.json()["count"] == 10 and c["shiftMs"] == 10 * STEP
    assert c["significance"]["pValue"] == 1.0 and not c["significance"]["significant"]

    r = await http.post("/analytics/unique-users", json={
        "type": "signup", "startTime": half, "endTime": END - 1, "compare": "previous_period"})
    c = r.json()["comparison"]
    # signups at i = 0, 4, 8 (u0, u4, u3) and 12, 16 (u2, u1): no user in both
    assert (c["significance"]["onlyCurrent"], c["significance"]["onlyPrevious"],
            c["significance"]["both"]) == (2, 3, 0)

    r = await http.post("/analytics/aggregate", json={
        "series": [{"name": "A", "eventType": "signup"}, {"name": "B", "eventType": "pageview"}],
        "formula": "A / B", "interval": "5m", "startTime": half, "endTime": END - 1,
        "compare": "previous_period"})
    out = r.json()
    assert out["comparison"]["value"] == 3 / 10 and out["total"]["value"] == 2 / 10
    assert len(out["comparison"]["buckets"]) == len(out["buckets"]) == 2

    r = await http.get("/analytics/aggregate", params={
        "eventType": "pageview", "interval": "5m", "timeRange": "last_24h",
        "compare": "previous_period"})
    assert r.status_code == 200 and "buckets" in r.json()["comparison"]

    r = await http.get("/analytics/top", params={"property": "plan", "compare": "previous_period"})
    assert r.status_code == 400 and r.json()["error"]["details"][0]["field"] == "compare"
    r = await http.get("/analytics/count", params={"compare": "yesterday"})
    assert r.status_code == 400 and r.json()["error"]["details"][0]["field"] == "compare"
