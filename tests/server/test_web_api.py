"""GET /analytics/web and /analytics/web/{dimension} over a real server: pageviews sent
through rta's API, PostHog's capture route and Segment's page call counted alike, the
response shapes, and bad input answered with 400s naming the field."""

from __future__ import annotations

import time
from typing import Any

import httpx

MIN = 60_000


def _traffic(now: int) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    t = now - 60 * MIN
    rta = [{"type": "pageview", "userId": "a", "timestamp": t,
            "properties": {"page": "/", "referrer": "https://www.google.com/"}},
           {"type": "pageview", "userId": "a", "timestamp": t + MIN,
            "properties": {"page": "/pricing"}},
           {"type": "pageview", "userId": "bot", "timestamp": t,
            "properties": {"page": "/", "$bot": True}}]
    posthog = {"api_key": "k", "batch": [
        {"event": "$pageview", "distinct_id": "b", "timestamp": t + 2 * MIN,
         "properties": {"$current_url": "https://site.com/docs?utm_source=news&utm_medium=email"
                                        "&utm_campaign=launch",
                        "$pathname": "/docs", "$host": "site.com", "$referrer": "$direct",
                        "$session_id": "ph-1", "$browser": "Firefox", "$os": "Linux",
                        "$device_type": "Desktop", "$geoip_country_code": "DE"}},
        {"event": "$pageleave", "distinct_id": "b", "timestamp": t + 3 * MIN,
         "properties": {"$session_id": "ph-1"}}]}
    segment = {"type": "page", "userId": "c", "timestamp": time.strftime(
        "%Y-%m-%dT%H:%M:%SZ", time.gmtime((now - MIN) / 1000)),
        "properties": {"path": "/blog", "url": "https://site.com/blog",
                       "referrer": "https://news.ycombinator.com/"}}
    return rta, posthog, segment


async def test_web_figures_over_every_sdk_and_bad_input(http: httpx.AsyncClient) -> None:
    now = int(time.time() * 1000)
    rta, posthog, segment = _traffic(now)
    assert (await http.post("/events/batch", json=rta)).status_code == 202
    assert (await http.post("/batch", json=posthog)).status_code == 200
    r = await http.post("/v1/page", json=segment)
    assert r.status_code == 200, r.text

    r = await http.get("/analytics/web", params={"timeRange": "last_24h"})
    assert r.status_code == 200, r.text
    body = r.json()
    m = body["metrics"]
    assert {k: m[k]["value"] for k in m} == {
        "visitors": 3, "visits": 3, "pageviews": 4, "views_per_visit": 1.33,
        "bounce_rate": 66.7, "visit_duration": 40.0}
    assert m["visitors"]["previous"] == 0 and m["visitors"]["change"] is None
    assert body["realtime"] == {"visitors": 1}  # c, one minute ago
    with_bots = (await http.get("/analytics/web", params={"timeRange": "last_24h",
                                                          "bots": "true"})).json()
    assert with_bots["metrics"]["visitors"]["value"] == 4

    pages = (await http.get("/analytics/web/pages", params={"timeRange": "last_24h"})).json()
    assert [(row["value"], row["pageviews"]) for row in pages["rows"]] == [
        ("/", 1), ("/blog", 1), ("/docs", 1), ("/pricing", 1)]
    assert pages["rows"][0]["share"] == 33.3
    sources = (await http.get("/analytics/web/sources", params={"timeRange": "last_24h"})
               ).json()
    assert {row["value"] for row in sources["rows"]} == {"Google", "news", "Hacker News"}
    channels = (await http.get("/analytics/web/channels",
                               params={"timeRange": "last_24h", "limit": 2})).json()
    assert [row["value"] for row in channels["rows"]] == ["Email", "Organic Search"]
    assert channels["values"] == 3
    countries = (await http.get("/analytics/web/countries",
                                params={"timeRange": "last_24h"})).json()
    assert countries["rows"][0] == {"value": None, "visitors": 2, "visits": 2, "pageviews": 3,
                                    "bounce_rate": 50.0, "share": 66.7}
    assert (await http.get("/analytics/web/realtime")).json()["visitors"] == 1
    # the stored events are as sent: $pageview still answers as itself
    count = (await http.get("/analytics/count", params={"type": "$pageview"})).json()
    assert count["count"] == 1

    for path, params, field in (
            ("/analytics/web/nope", {}, "dimension"),
            ("/analytics/web/pages", {"limit": "0"}, "limit"),
            ("/analytics/web", {"limit": "3"}, "limit"),
            ("/analytics/web", {"bots": "maybe"}, "bots"),
            ("/analytics/web", {"startTime": "yesterday-ish"}, "startTime")):
        r = await http.get(path, params=params)
        assert r.status_code == 400, (path, r.text)
        error = r.json()["error"]
        assert error["code"] and error["details"][0]["field"] == field, error
