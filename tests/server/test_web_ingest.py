"""The web-analytics ingest side (#19): the PostHog config routes, device and country
enrichment on the SDK routes, and the first-party script's `POST /api/event`."""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from rta.core.config import EngineConfig
from tests.support import live_server

CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/124.0.0.0 Safari/537.36")
IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
          "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1")
SITE = "https://shop.example"


@pytest.fixture
async def web(engine_config: EngineConfig) -> AsyncIterator[httpx.AsyncClient]:
    """A server behind a trusted proxy on loopback (so X-Forwarded-For names the client)."""
    async with live_server(engine_config, trusted_proxies="127.0.0.0/8") as srv, \
            httpx.AsyncClient(base_url=srv.url, timeout=30) as client:
        yield client


async def events(http: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    r = await http.get("/events", params={"limit": 1000, **params})
    assert r.status_code == 200, r.text
    found: list[dict[str, Any]] = r.json()["events"]
    return found


# -- PostHog configuration -------------------------------------------------------------------


async def test_flags_decide_and_remote_config_answer_for_any_origin(
        web: httpx.AsyncClient) -> None:
    origin = {"Origin": SITE}
    pre = await web.options("/flags/", headers={**origin, "Access-Control-Request-Method":
                                                "POST"})
    assert pre.status_code == 204 and pre.headers["access-control-allow-origin"] == SITE
    r = await web.post("/flags/?v=2&config=true", headers=origin,
                       json={"token": "phc_x", "distinct_id": "d1"})
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == SITE
    body = r.json()
    assert body["flags"] == {} and body["featureFlags"] == {}
    assert body["errorsWhileComputingFlags"] is False
    assert body["sessionRecording"] is False and body["surveys"] is False
    assert body["autocapture_opt_out"] is False and body["siteApps"] == []
    plain = (await web.post("/flags/?v=2", headers=origin, json={})).json()
    assert plain["flags"] == {} and "sessionRecording" not in plain
    for path in ("/decide/?v=3", "/decide", "/flags"):
        got = await web.get(path, headers=origin)
        assert got.status_code == 200, (path, got.text)
    decide = (await web.post("/decide/?v=3", headers=origin, content=b"data=eyJ9")).json()
    assert decide["config"] == {"enable_collect_everything": True}
    config = await web.get("/array/phc_x/config", headers=origin)
    assert config.status_code == 200 and config.headers["access-control-allow-origin"] == SITE
    assert config.json()["autocapture_opt_out"] is False
    assert config.json()["supportedCompression"] == ["gzip", "gzip-js"]
    script = await web.get('/array/ph"c<x/config.js', headers=origin)
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert script.headers["access-control-allow-origin"] == SITE  # loaded crossorigin
    text = script.text
    assert 'w._POSTHOG_REMOTE_CONFIG["ph\\"c<x"]=' in text
    payload = json.loads(re.search(r"=(\{.*\});\}\)\(\);", text).group(1))  # type: ignore[union-attr]
    assert payload["config"]["autocapture_opt_out"] is False


async def test_autocapture_can_be_turned_off(engine_config: EngineConfig) -> None:
    async with live_server(engine_config, posthog_autocapture=False) as srv, \
            httpx.AsyncClient(base_url=srv.url) as http:
        assert (await http.get("/array/t/config")).json()["autocapture_opt_out"] is True
        decide = (await http.post("/decide/", json={})).json()
        assert decide["autocapture_opt_out"] is True
        assert decide["config"] == {"enable_collect_everything": False}


# -- enrichment on the SDK routes ------------------------------------------------------------


async def test_posthog_events_from_a_browser_get_device_and_country(
        web: httpx.AsyncClient) -> None:
    batch = {"api_key": "phc_x", "batch": [
        {"event": "$pageview", "distinct_id": "d1", "properties": {"$current_url": SITE}},
        {"event": "server", "distinct_id": "d2",
         "properties": {"$ip": "2001:4860:4860::8888", "$raw_user_agent": IPHONE,
                        "$browser": "Sent By Client"}}]}
    r = await web.post("/batch/", json=batch, headers={
        "User-Agent": CHROME, "X-Forwarded-For": "203.0.113.9, 81.2.69.160",
        "Origin": SITE})
    assert r.status_code == 200, r.text
    by_user = {e["userId"]: e["properties"] for e in await events(web)}
    first, second = by_user["d1"], by_user["d2"]
    assert (first["$browser"], first["$os"], first["$device_type"]) == (
        "Chrome", "Windows", "Desktop")
    assert first["$geoip_country_code"] == "GB"  # the last untrusted hop, not the first
    assert second["$browser"] == "Sent By Client"  # never overwritten
    assert (second["$os"], second["$device_type"], second["$geoip_country_code"]) == (
        "iOS", "Mobile", "US")
    assert not any("ip" in k.lower().replace("$geoip", "") for p in by_user.values()
                   for k in p), by_user


async def test_a_server_side_sdk_is_not_described_by_its_own_header(
        web: httpx.AsyncClient) -> None:
    r = await web.post("/capture/", json={"api_key": "k", "event": "e", "distinct_id": "s1",
                                          "properties": {"a": 1}},
                       headers={"User-Agent": "posthog-python/3.5.0",
                                "X-Forwarded-For": "8.8.8.8"})
    assert r.status_code == 200, r.text
    (event,) = await events(web)
    assert event["properties"] == {"a": 1}


async def test_segment_context_ip_is_used_and_dropped(web: httpx.AsyncClient) -> None:
    body = {"batch": [{"type": "page", "userId": "u1", "name": "Home",
                       "context": {"ip": "81.2.69.160", "userAgent": IPHONE,
                                   "page": {"path": "/"}}},
                      {"type": "track", "userId": "u2", "event": "bad",
                       "context": {"ip": "not an ip", "userAgent": "☃"}}]}
    r = await web.post("/v1/batch", json=body, headers={"User-Agent": "analytics-node/1"})
    assert r.status_code == 200, r.text
    by_user = {e["userId"]: e["properties"] for e in await events(web)}
    assert by_user["u1"]["$geoip_country_code"] == "GB" and by_user["u1"]["$os"] == "iOS"
    assert by_user["u1"]["context.page.path"] == "/"
    assert "context.ip" not in by_user["u1"] and "context.ip" not in by_user["u2"]
    assert by_user["u2"]["context.userAgent"] == "☃"
    assert not any(k.startswith(("$geoip", "$os", "$browser")) for k in by_user["u2"])


async def test_forwarded_for_is_ignored_without_trusted_proxies(
        http: httpx.AsyncClient) -> None:
    r = await http.post("/e/", json={"event": "e", "distinct_id": "x"},
                        headers={"User-Agent": CHROME, "X-Forwarded-For": "8.8.8.8"})
    assert r.status_code == 200
    (event,) = await events(http)
    assert "$geoip_country_code" not in event["properties"]  # the peer is loopback
    assert event["properties"]["$browser"] == "Chrome"


# -- the first-party script's route ----------------------------------------------------------


def page(path: str, **props: Any) -> dict[str, Any]:
    return {"event": "$pageview", "properties": {
        "$current_url": SITE + path, "$pathname": path.split("?")[0], "$host": "shop.example",
        "$referrer": "https://www.google.com/", "title": "Shop", **props}}


async def test_api_event_stores_a_pageview_with_a_derived_visitor(
        web: httpx.AsyncClient) -> None:
    headers = {"Origin": SITE, "Content-Type": "text/plain;charset=UTF-8", "User-Agent": CHROME,
               "X-Forwarded-For": "81.2.69.160"}
    for path in ("/?utm_source=news", "/pricing"):
        r = await web.post("/api/event", content=json.dumps(page(path)), headers=headers)
        assert r.status_code == 202, r.text
        assert r.headers["access-control-allow-origin"] == SITE
    r = await web.post("/api/event", content=json.dumps(page("/", **{"$ip": "8.8.8.8"})),
                       headers={**headers, "User-Agent": IPHONE})
    assert r.status_code == 202
    r = await web.post("/api/event", json={"event": "signup", "properties": {"plan": "pro"},
                                           "domain": "Shop.Example"}, headers=headers)
    assert r.status_code == 202
    stored = sorted(await events(web), key=lambda e: e["timestamp"])
    assert [e["type"] for e in stored] == ["$pageview"] * 3 + ["signup"]
    ids = [e["userId"] for e in stored]
    assert all(re.fullmatch(r"[0-9a-f]{16}", i) for i in ids)
    assert ids[0] == ids[1] == ids[3]  # same site, address and browser today
    assert ids[2] != ids[0]  # another browser
    first = stored[0]["properties"]
    assert first["$pathname"] == "/" and first["$current_url"] == SITE + "/?utm_source=news"
    assert first["$referrer"] == "https://www.google.com/" and first["$lib"] == "rta.js"
    assert (first["$browser"], first["$os"], first["$geoip_country_code"]) == (
        "Chrome", "Windows", "GB")
    assert stored[2]["properties"]["$geoip_country_code"] == "US"  # the event's $ip ...
    assert "$ip" not in stored[2]["properties"]  # ... used, never stored
    assert stored[3]["properties"]["plan"] == "pro"
    assert stored[3]["properties"]["$domain"] == "Shop.Example"
    assert all(e["sessionId"] is None for e in stored)


@pytest.mark.parametrize(("body", "field"), [
    (b"not json", None), (b"[1]", ""), (b'{"properties": {}}', "event"),
    (b'{"event": ""}', "event"), (b'{"event": "x", "properties": [1]}', "properties"),
    (json.dumps({"event": "x" * 201}).encode(), "event")])
async def test_api_event_refuses_bad_bodies_with_a_named_field(
        web: httpx.AsyncClient, body: bytes, field: str | None) -> None:
    r = await web.post("/api/event", content=body, headers={"Origin": SITE})
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    if field is not None:
        assert error["details"][0]["field"] == field
    assert await events(web) == []


async def test_api_event_with_odd_but_valid_input_is_stored(web: httpx.AsyncClient) -> None:
    body = page("/%zz?utm_source=<b>&x=☃", **{"$referrer": "::not a url::"})
    r = await web.post("/api/event", json=body, headers={"User-Agent": "☃ Mozilla/".encode(),
                                                         "X-Forwarded-For": "garbage"})
    assert r.status_code == 202, r.text
    (event,) = await events(web)
    assert event["properties"]["$referrer"] == "::not a url::"
    assert not any(k.startswith(("$geoip", "$browser")) for k in event["properties"])


async def test_the_script_is_served_small_and_cacheable(http: httpx.AsyncClient) -> None:
    r = await http.get("/js/rta.js", headers={"Origin": SITE})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
    assert r.headers["etag"] and "cookie" not in {k.lower() for k in r.headers}
    assert len(gzip.compress(r.content, 9)) < 2048
    assert b"localStorage" not in r.content.split(b"*/", 1)[1]  # (code, not the comment)
    assert b"document.cookie" not in r.content
