"""/analytics/* over a real server: seed payloads, shapes, filters, cache, errors."""

from __future__ import annotations

import json
from typing import Any

import httpx

BASE = 1_700_000_000_000 - 1_700_000_000_000 % 3_600_000
STEP = 60_000


def events() -> list[dict[str, Any]]:
    out = []
    for i in range(30):
        out.append({"type": "pageview", "userId": f"user_{i % 4}", "sessionId": f"s{i % 6}",
                    "timestamp": BASE + i * STEP,
                    "properties": {"page": ["/products", "/home", "/cart"][i % 3],
                                   "duration": 1000 + i * 100, "referrer": "google.com"}})
    for i in range(6):
        out.append({"type": "purchase", "userId": f"user_{i % 2}", "timestamp": BASE + i * STEP,
                    "properties": {"amount": 10.5 * (i + 1), "currency": "EUR"}})
    return out


async def load(http: httpx.AsyncClient) -> None:
    r = await http.post("/events/batch", json=events())
    assert r.status_code == 202, r.text


async def test_seed_aggregate_payload(http: httpx.AsyncClient) -> None:
    await load(http)
    r = await http.post("/analytics/aggregate", json={
        "eventType": "pageview", "metric": "duration", "startTime": BASE,
        "endTime": BASE + 30 * STEP - 1, "interval": 300000})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["aggregation"] == "avg" and body["interval"] == 300000
    assert body["startTime"] == BASE and body["endTime"] == BASE + 30 * STEP - 1
    assert [b["timestamp"] for b in body["buckets"]] == [BASE + k * 300000 for k in range(6)]
    first = [1000 + i * 100 for i in range(5)]
    assert body["buckets"][0] == {"timestamp": BASE, "value": sum(first) / 5, "count": 5}
    assert body["total"]["count"] == 30


async def test_aggregate_sum_grouped_with_where(http: httpx.AsyncClient) -> None:
    await load(http)
    r = await http.post("/analytics/aggregate", json={
        "eventType": "pageview", "metric": "properties.duration", "aggregation": "sum",
        "groupBy": "page", "limit": 2, "interval": "10m", "startTime": BASE,
        "endTime": BASE + 30 * STEP - 1,
        "where": [{"property": "duration", "operator": "gte", "value": 2000}]})
    body = r.json()
    assert r.status_code == 200, body
    assert body["groups"] == 3 and len(body["series"]) == 2
    kept = [e for e in events() if e["type"] == "pageview"
            and e["properties"]["duration"] >= 2000]
    sums: dict[str, int] = {}
    for e in kept:
        sums[e["properties"]["page"]] = sums.get(e["properties"]["page"], 0) + \
            e["properties"]["duration"]
    best = sorted(sums.items(), key=lambda kv: -kv[1])[:2]
    assert [(s["key"], s["total"]["value"]) for s in body["series"]] == best
    assert sum(b["value"] for b in body["series"][0]["buckets"]) == best[0][1]


async def test_count_endpoint(http: httpx.AsyncClient) -> None:
    await load(http)
    r = await http.get("/analytics/count", params={
        "type": "pageview", "groupBy": "page", "startTime": BASE,
        "endTime": BASE + 30 * STEP})
    body = r.json()
    assert body["count"] == 30
    assert {g["key"]: g["count"] for g in body["groups"]} == {
        "/products": 10, "/home": 10, "/cart": 10}
    r = await http.get("/analytics/count", params={"groupBy": "type"})
    assert {g["key"]: g["count"] for g in r.json()["groups"]} == {"pageview": 30,
                                                                  "purchase": 6}
    r = await http.get("/analytics/count", params={
        "where": json.dumps([{"property": "amount", "operator": "gt", "value": 40}])})
    assert r.json()["count"] == 3
    r = await http.get("/analytics/count", params=[("where", "page=/home"),
                                                   ("where", "duration>2000")])
    assert r.json()["count"] == len([i for i in range(30) if i % 3 == 1 and i > 10])
    r = await http.get("/analytics/count", params={"properties.currency": "EUR"})
    assert r.json()["count"] == 6
    r = await http.post("/analytics/count", json={"type": ["purchase"], "userId": "user_1"})
    assert r.json()["count"] == 3


async def test_unique_users_endpoint(http: httpx.AsyncClient) -> None:
    await load(http)
    r = await http.get("/analytics/unique-users", params={
        "startTime": BASE, "endTime": BASE + 30 * STEP})
    assert r.json()["uniqueUsers"] == 4 and r.json()["approximate"] is False
    r = await http.get("/analytics/unique-users", params={
        "startTime": BASE, "endTime": BASE + 2 * STEP - 1, "interval": "1m"})
    body = r.json()
    assert [b["value"] for b in body["buckets"]] == [1, 1]  # user_i does both
    # with an interval the buckets align to it, but only the requested range counts, and
    # `events` counts every matching event (anonymous ones too) whichever way it is asked
    extra = [{"type": "pageview", "userId": "edge_before", "timestamp": BASE + 60_000 - 1},
             {"type": "pageview", "userId": "edge_after", "timestamp": BASE + 180_000 + 1},
             {"type": "pageview", "timestamp": BASE + 60_000}]
    assert (await http.post("/events/batch", json=extra)).status_code == 202
    span = {"type": "pageview", "startTime": BASE + 60_000, "endTime": BASE + 180_000}
    plain = (await http.get("/analytics/unique-users", params=span)).json()
    assert (plain["uniqueUsers"], plain["events"]) == (3, 4)
    for more in ({"interval": "1h"}, {"approximate": "true"},
                 {"interval": "1h", "approximate": "true"}):
        got = (await http.get("/analytics/unique-users", params={**span, **more})).json()
        assert (got["uniqueUsers"], got["events"]) == (3, 4), (more, got)
        assert (got["startTime"], got["endTime"]) == (BASE + 60_000, BASE + 180_000)
    r = await http.get("/analytics/unique-users", params={"approximate": "true"})
    body = r.json()
    assert body["uniqueUsers"] == 6 and body["standardError"] >= 0  # (+ the two edge users)
    assert body["relativeStandardError"] < 0.01


async def test_top_endpoint(http: httpx.AsyncClient) -> None:
    await load(http)
    r = await http.get("/analytics/top", params={
        "type": "pageview", "property": "page", "n": 2, "startTime": BASE,
        "endTime": BASE + 30 * STEP})
    body = r.json()
    assert r.status_code == 200
    assert [v["count"] for v in body["values"]] == [10, 10]
    assert all(v["share"] == 10 / 30 for v in body["values"])
    assert body["otherCount"] == 10 and body["distinct"] == 3
    assert body["values"][0]["uniqueUsers"] in (1, 2, 3, 4)
    r = await http.get("/analytics/top", params={"property": "userId", "n": 1})
    assert r.json()["values"][0]["value"] in ("user_0", "user_1")


async def test_cache_is_invalidated_by_new_events(http: httpx.AsyncClient) -> None:
    await load(http)
    params = {"type": "purchase", "startTime": BASE, "endTime": BASE + 30 * STEP}
    assert (await http.get("/analytics/count", params=params)).json()["cached"] is False
    assert (await http.get("/analytics/count", params=params)).json()["cached"] is True
    r = await http.post("/events", json={"type": "purchase", "userId": "late",
                                         "timestamp": BASE + 5, "properties": {}})
    assert r.status_code == 202
    body = (await http.get("/analytics/count", params=params)).json()
    assert body["cached"] is False and body["count"] == 7
    stats = (await http.get("/stats")).json()
    assert stats["queryCache"]["hits"] >= 1


async def test_bad_input_is_a_400_naming_the_field(http: httpx.AsyncClient) -> None:
    await load(http)
    cases: list[tuple[str, str, Any, str]] = [
        ("POST", "/analytics/aggregate", {"aggregation": "mode"}, "aggregation"),
        ("POST", "/analytics/aggregate", {"aggregation": "sum", "metric": "page"}, "metric"),
        ("POST", "/analytics/aggregate", {"interval": 1, "startTime": BASE,
                                          "endTime": BASE + 3_600_000}, "interval"),
        ("POST", "/analytics/aggregate", {"startTime": BASE + 5, "endTime": BASE},
         "startTime"),
        ("POST", "/analytics/aggregate", {"where": [{"property": "a", "operator": "like",
                                                     "value": 1}]}, "where[0].operator"),
        ("GET", "/analytics/count", {"where": "[not json"}, "where"),
        ("GET", "/analytics/count", {"limit": "x", "groupBy": "page"}, "limit"),
        ("GET", "/analytics/top", {"n": 5}, "property"),
        ("GET", "/analytics/unique-users", {"interval": "fortnight"}, "interval"),
        ("GET", "/analytics/unique-users", {"startTime": "yesterday-ish"}, "startTime"),
        ("GET", "/analytics/top", {"property": "page", "typo": 1}, "typo"),
        ("POST", "/analytics/aggregate", {"interval": 1e20}, "interval"),
        ("POST", "/analytics/aggregate", {"startTime": 1e20, "endTime": 1e20}, "startTime"),
        ("GET", "/analytics/unique-users", {"interval": "100000000000000000000"}, "interval"),
        ("GET", "/analytics/count", {"startTime": "-5"}, "startTime"),
        ("GET", "/analytics/count", {"endTime": "Infinity"}, "endTime"),
        ("POST", "/analytics/aggregate", {"interval": "1d", "tzOffset": 900}, "tzOffset"),
        ("GET", "/analytics/unique-users", {"interval": "1d", "tzOffset": "x"}, "tzOffset"),
    ]
    for method, path, payload, field in cases:
        if method == "POST":
            r = await http.post(path, json=payload)
        else:
            r = await http.get(path, params=payload)
        assert r.status_code == 400, (path, payload, r.text)
        err = r.json()["error"]
        assert err["details"][0]["field"] == field, (payload, err)
    # a relative start reaching before 1970 means "from the beginning", however far back
    for far in ("last_99999999999999999999d", "9" * 400 + "d"):
        r = await http.get("/analytics/aggregate", params={"startTime": far})
        assert r.status_code == 200 and r.json()["startTime"] == 0, r.text
    r = await http.post("/analytics/aggregate", content=b"[1,2]",
                        headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    r = await http.post("/analytics/aggregate", content=b"{nope",
                        headers={"Content-Type": "application/json"})
    assert r.status_code == 400
