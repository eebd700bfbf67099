"""Auth scopes, rate limits, CORS, security headers and /metrics on a real server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio

from rta.core.config import EngineConfig
from tests.support import LiveServer, live_server


@pytest.fixture
async def secured(engine_config: EngineConfig) -> AsyncIterator[LiveServer]:
    async with live_server(engine_config, auth="on") as srv:
        yield srv


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_scopes_are_enforced(secured: LiveServer) -> None:
    tokens = secured.engine.services.tokens
    read, _ = tokens.create("read", "r")
    write, _ = tokens.create("write", "w")
    admin, admin_rec = tokens.create("admin", "a")
    async with httpx.AsyncClient(base_url=secured.url) as http:
        assert (await http.get("/health")).status_code == 200
        r = await http.get("/events")
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
        assert "Bearer" in r.headers["WWW-Authenticate"]
        r = await http.get("/events", headers=bearer("rta_nope"))
        assert r.status_code == 401
        unknown_message = r.json()["error"]["message"]
        assert (await http.post("/events", json={"type": "t"}, headers=bearer(read))
                ).status_code == 403
        assert (await http.post("/events", json={"type": "t"}, headers=bearer(write))
                ).status_code == 202
        assert (await http.get("/events", headers=bearer(write))).status_code == 403
        assert (await http.get("/events", headers=bearer(read))).status_code == 200
        assert (await http.get("/events", params={"token": read})).status_code == 200
        assert (await http.get("/tokens", headers=bearer(read))).status_code == 403
        listed = (await http.get("/tokens", headers=bearer(admin))).json()["tokens"]
        assert {t["name"] for t in listed} == {"r", "w", "a"}
        assert all("hash" not in t and "token" not in t for t in listed)
        created = (await http.post("/tokens", json={"scope": "read", "name": "n"},
                                   headers=bearer(admin))).json()
        assert created["token"].startswith("rta_")
        assert (await http.get("/events", headers=bearer(created["token"]))).status_code == 200
        r = await http.delete(f"/tokens/{created['id']}", headers=bearer(admin))
        assert r.status_code == 200
        r = await http.get("/events", headers=bearer(created["token"]))
        assert r.status_code == 401
        assert r.json()["error"]["message"] == unknown_message  # no hint it ever existed
        r = await http.post("/tokens", json={"scope": "root"}, headers=bearer(admin))
        assert r.status_code == 400 and r.json()["error"]["details"][0]["field"] == "scope"
        assert admin_rec["scope"] == "admin"


async def test_loopback_default_needs_no_token_but_checks_presented_ones(
        http: httpx.AsyncClient, server: LiveServer) -> None:
    assert (await http.get("/events")).status_code == 200
    assert (await http.get("/events", headers=bearer("rta_wrong"))).status_code == 401
    # a presented token is held to its scope even where none is required
    read, _ = server.engine.services.tokens.create("read", "r")
    write, _ = server.engine.services.tokens.create("write", "w")
    r = await http.post("/events", json={"type": "t"}, headers=bearer(read))
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    assert (await http.get("/tokens", headers=bearer(write))).status_code == 403
    assert (await http.get("/events", headers=bearer(read))).status_code == 200
    assert (await http.post("/events", json={"type": "t"})).status_code == 202  # anonymous


async def test_rate_limit_answers_429_with_retry_after(engine_config: EngineConfig) -> None:
    async with live_server(engine_config, rate_limit_rps=2, rate_limit_burst=3) as srv, \
            httpx.AsyncClient(base_url=srv.url) as http:
        codes = [(await http.get("/events")).status_code for _ in range(5)]
        assert codes[:3] == [200, 200, 200] and 429 in codes[3:]
        r = await http.get("/events")
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
        assert r.json()["error"]["code"] == "rate_limited"
        assert (await http.get("/health")).status_code == 200  # health is never limited
    async with live_server(engine_config, rate_limit_rps=2, rate_limit_burst=3) as srv, \
            httpx.AsyncClient(base_url=srv.url) as http:
        codes = [(await http.get("/events", headers=bearer("rta_guess"))).status_code
                 for _ in range(6)]
        assert codes[:3] == [401, 401, 401] and 429 in codes[3:]  # guesses are limited too


async def test_cors_closed_by_default_and_configurable(http: httpx.AsyncClient,
                                                       tmp_path: Path) -> None:
    pre = {"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"}
    r = await http.options("/events", headers=pre)
    assert r.status_code == 403
    r = await http.get("/events", headers={"Origin": "http://evil.example"})
    assert "Access-Control-Allow-Origin" not in r.headers
    other = EngineConfig(data_dir=str(tmp_path / "other"))
    async with live_server(other, cors_origins="http://app.example") as srv, \
            httpx.AsyncClient(base_url=srv.url) as client:
        r = await client.options("/events", headers={**pre, "Origin": "http://app.example"})
        assert r.status_code == 204
        assert r.headers["Access-Control-Allow-Origin"] == "http://app.example"
        r = await client.get("/events", headers={"Origin": "http://app.example"})
        assert r.headers["Access-Control-Allow-Origin"] == "http://app.example"


async def test_security_headers(http: httpx.AsyncClient) -> None:
    r = await http.get("/health")
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]


async def test_metrics_exposition(http: httpx.AsyncClient) -> None:
    await http.post("/events/batch", json=[{"type": "t"}] * 3)
    await http.post("/events/batch", json=[{"type": ""}])
    text = (await http.get("/metrics")).text
    assert "rta_events_ingested_total 3" in text
    assert "rta_events_rejected_total 1" in text
    assert "rta_wal_fsync_seconds_count" in text
    assert "rta_store_events 3" in text


async def test_sdk_keys_are_rta_tokens_when_auth_is_on(secured: LiveServer) -> None:
    tokens = secured.engine.services.tokens
    write, _ = tokens.create("write", "sdk")
    read, _ = tokens.create("read", "reader")
    event = {"event": "pageview", "distinct_id": "u1", "properties": {}}
    async with httpx.AsyncClient(base_url=secured.url) as http:
        r = await http.post("/capture/", json={**event, "api_key": write})
        assert r.status_code == 200 and r.json() == {"status": 1}
        r = await http.post("/capture/", json={**event, "api_key": "phc_not_a_token"})
        assert r.status_code == 401
        r = await http.post("/capture/", json=event)
        assert r.status_code == 401
        r = await http.post("/capture/", json={**event, "api_key": read})
        assert r.status_code == 403
        r = await http.post("/v1/track", json={"userId": "u2", "event": "signup"},
                            auth=(write, ""))
        assert r.status_code == 200 and r.json()["success"] is True
        r = await http.post("/v1/track", json={"userId": "u2", "event": "signup"},
                            auth=("wrong", ""))
        assert r.status_code == 401
        pre = {"Origin": "https://customer.example", "Access-Control-Request-Method": "POST"}
        r = await http.options("/e/", headers=pre)
        assert r.status_code == 204  # browser SDKs post from any site
    assert secured.engine.store.stats()["events"] == 2


async def test_webhooks_to_private_addresses_are_refused(http: httpx.AsyncClient) -> None:
    alert = {"name": "internal probe", "condition": {
        "type": "threshold", "eventType": "error", "property": "count", "operator": "gt",
        "threshold": 0, "timeWindow": 60000},
        "notification": {"channels": ["webhook"], "severity": "warning", "message": "m",
                         "webhookUrl": "http://127.0.0.1:9/hook"}}
    created = await http.post("/alerts", json=alert)
    assert created.status_code == 201, created.text
    alert_id = created.json()["id"]
    r = await http.post(f"/alerts/{alert_id}/test", json={"notify": True})
    assert r.status_code == 200
    for _ in range(100):
        history = (await http.get("/alerts/history")).json()
        entries = history if isinstance(history, list) else history.get("history", [])
        text = str(entries)
        if "refused" in text:
            break
        await trio.sleep(0.05)
    assert "private or loopback" in text
    bad = {**alert, "notification": {**alert["notification"], "webhookUrl": "ftp://x/y"}}
    r = await http.post("/alerts", json=bad)
    assert r.status_code == 400
    assert r.json()["error"]["details"][0]["field"] == "notification.webhookUrl"
