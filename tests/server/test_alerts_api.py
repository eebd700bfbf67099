"""/alerts end to end: CRUD, bad input, persistence, firing latency over the WebSocket,
cooldown and resolution, webhooks to a real local HTTP receiver (retried after a 500), and
the backtest endpoint."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from hypercorn.config import Config as HyperConfig
from hypercorn.trio import serve as hypercorn_serve

from rta.client.ws import LiveConnection, connect
from rta.core.config import EngineConfig
from tests.server.test_ws import no_protocol_pings
from tests.support import LiveServer, live_server

SEED_EXAMPLE = {
    "name": "High Error Rate", "enabled": True,
    "condition": {"type": "threshold", "eventType": "error", "property": "count",
                  "operator": "gt", "threshold": 100, "timeWindow": 300000},
    "notification": {"channels": ["websocket", "log", "webhook"], "severity": "critical",
                     "message": "Error rate exceeded threshold!",
                     "webhookUrl": "https://hooks.example.com/alerts"},
    "cooldown": 60000}


def config_for(tmp_path: Path) -> EngineConfig:
    return EngineConfig(data_dir=str(tmp_path / "data"), alert_interval_ms=50)


@pytest.fixture
async def srv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[LiveServer]:
    no_protocol_pings(monkeypatch)
    async with live_server(config_for(tmp_path), webhook_backoff=0.05,
                           allow_private_webhooks=True) as server:
        yield server


@pytest.fixture
async def http(srv: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=srv.url, timeout=10) as client:
        yield client


def rule(threshold: float = 5, window: int = 2000, **extra: Any) -> dict[str, Any]:
    return {"name": "errors", "condition": {
        "type": "threshold", "eventType": "error", "property": "count", "operator": "gt",
        "threshold": threshold, "timeWindow": window},
        "notification": {"channels": ["websocket", "log"], "severity": "critical",
                         "message": "too many errors"}, "cooldown": 0, **extra}


async def errors(http: httpx.AsyncClient, n: int, **props: Any) -> None:
    r = await http.post("/events/batch", json=[{"type": "error", "userId": f"u{i}",
                                               "properties": props} for i in range(n)])
    assert r.status_code == 202


async def next_alert(conn: LiveConnection, timeout: float = 3) -> dict[str, Any]:
    with trio.fail_after(timeout):
        while True:
            msg = await conn.receive()
            if msg["channel"] == "alerts":
                return msg["data"]


async def test_crud_round_trip(http: httpx.AsyncClient) -> None:
    r = await http.post("/alerts", json=SEED_EXAMPLE)
    assert r.status_code == 201
    created = r.json()
    alert_id = created["id"]
    assert created["name"] == "High Error Rate"
    assert created["condition"] == {**SEED_EXAMPLE["condition"], "aggregation": "count",
                                    "threshold": 100.0}
    assert created["notification"] == SEED_EXAMPLE["notification"]
    assert created["state"]["status"] == "ok"
    listed = (await http.get("/alerts")).json()
    assert [a["id"] for a in listed["alerts"]] == [alert_id] and listed["count"] == 1
    assert (await http.get(f"/alerts/{alert_id}")).json()["summary"] == \
        "count of error over 300000 ms > 100"
    replaced = (await http.put(f"/alerts/{alert_id}", json={**SEED_EXAMPLE, "name": "B"})).json()
    assert replaced["name"] == "B" and replaced["createdAt"] == created["createdAt"]
    patched = (await http.patch(f"/alerts/{alert_id}", json={
        "enabled": False, "condition": {"threshold": 7}})).json()
    assert patched["condition"]["threshold"] == 7 and patched["state"]["status"] == "disabled"
    assert (await http.delete(f"/alerts/{alert_id}")).json() == {"success": True,
                                                                "id": alert_id}
    for method in ("get", "delete"):
        r = await getattr(http, method)(f"/alerts/{alert_id}")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = await http.put(f"/alerts/{alert_id}", json=SEED_EXAMPLE)
    assert r.status_code == 404
    r = await http.post(f"/alerts/{alert_id}/test")
    assert r.status_code == 404


@pytest.mark.parametrize(("patch", "field"), [
    ({"condition": {**SEED_EXAMPLE["condition"], "operator": "approx"}}, "condition.operator"),
    ({"condition": {**SEED_EXAMPLE["condition"], "type": "vibes"}}, "condition.type"),
    ({"notification": {**SEED_EXAMPLE["notification"], "webhookUrl": "file:///etc/passwd"}},
     "notification.webhookUrl"),
])
async def test_bad_alerts_are_400(http: httpx.AsyncClient, patch: dict[str, Any],
                                  field: str) -> None:
    r = await http.post("/alerts", json={**SEED_EXAMPLE, **patch})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == "validation_error" and err["details"][0]["field"] == field
    for body in ("not json", "[1]"):
        r = await http.post("/alerts", content=body,
                            headers={"Content-Type": "application/json"})
        assert r.status_code == 400
    assert (await http.get("/alerts")).json()["count"] == 0
    r = await http.get("/alerts/history?limit=zero")
    assert r.status_code == 400


async def test_alerts_survive_a_restart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    no_protocol_pings(monkeypatch)
    async with live_server(config_for(tmp_path)) as server, \
            httpx.AsyncClient(base_url=server.url) as client:
        alert_id = (await client.post("/alerts", json=SEED_EXAMPLE)).json()["id"]
    async with live_server(config_for(tmp_path)) as server, \
            httpx.AsyncClient(base_url=server.url) as client:
        got = (await client.get(f"/alerts/{alert_id}")).json()
        assert got["name"] == SEED_EXAMPLE["name"]
        assert got["state"]["status"] == "ok"


async def test_fires_within_two_seconds_resolves_and_respects_cooldown(
        srv: LiveServer, http: httpx.AsyncClient) -> None:
    alert_id = (await http.post("/alerts", json=rule(cooldown=60_000))).json()["id"]
    async with connect(srv.url, subscriptions=[("alerts", None)]) as conn:
        await errors(http, 5)  # at the threshold, not over it
        with trio.move_on_after(0.3):
            await next_alert(conn)
            raise AssertionError("fired at the threshold")
        crossed = time.perf_counter()
        await errors(http, 1)
        fired = await next_alert(conn, timeout=2)
        latency = time.perf_counter() - crossed
        assert latency < 2, latency
        assert fired["event"] == "fired" and fired["alertId"] == alert_id
        assert fired["value"] == 6 and fired["threshold"] == 5
        assert fired["severity"] == "critical" and fired["message"] == "too many errors"
        resolved = await next_alert(conn, timeout=4)  # the 2 s window moves past the burst
        assert resolved["event"] == "resolved"
        await errors(http, 6)  # crosses again inside the cooldown: no notification
        with trio.move_on_after(0.5):
            await next_alert(conn)
            raise AssertionError("notified inside the cooldown")
    state = (await http.get(f"/alerts/{alert_id}")).json()["state"]
    assert state["status"] == "firing" and state["triggered"] == 2
    history = (await http.get("/alerts/history", params={"limit": 10})).json()["history"]
    assert [h["event"] for h in history][::-1] == ["fired", "resolved", "fired"]
    assert history[0]["suppressed"] is True
    stats = (await http.get("/stats")).json()["alerts"]
    assert stats["alertsTriggered"] == 2 and stats["activeAlerts"] == 1
    assert stats["alertsEvaluated"] > 0


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """A real HTTP server (hypercorn, trio) that fails the first request with a 500."""
    received: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Callable[[], Awaitable[dict[str, Any]]],
                  send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        received.append({"path": scope["path"], "body": json.loads(body),
                         "headers": {k.decode(): v.decode() for k, v in scope["headers"]}})
        status = 500 if len(received) == 1 else 200
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    cfg = HyperConfig()
    cfg.bind = ["127.0.0.1:0"]
    cfg.accesslog = None
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(partial(hypercorn_serve, app, cfg,  # type: ignore[arg-type]
                                            shutdown_trigger=shutdown.wait))
        yield binds[0] + "/hook", received
        shutdown.set()


async def test_webhook_is_retried_after_a_500(
        srv: LiveServer, http: httpx.AsyncClient,
        receiver: tuple[str, list[dict[str, Any]]]) -> None:
    url, received = receiver
    body = rule(threshold=2)
    body["notification"] = {"channels": ["webhook"], "severity": "warning",
                            "message": "hook", "webhookUrl": url}
    alert_id = (await http.post("/alerts", json=body)).json()["id"]
    await errors(http, 3)
    with trio.fail_after(5):
        while len(received) < 2:
            await trio.sleep(0.02)
        while True:
            history = (await http.get("/alerts/history",
                                      params={"alertId": alert_id})).json()["history"]
            if any(h["event"] == "webhook" for h in history):
                break
            await trio.sleep(0.02)
    assert [r["body"]["event"] for r in received] == ["fired", "fired"]
    assert received[1]["body"]["alertId"] == alert_id and received[1]["path"] == "/hook"
    assert received[1]["headers"]["content-type"] == "application/json"
    delivery = next(h for h in history if h["event"] == "webhook")
    assert delivery["status"] == "delivered" and delivery["attempts"] == 2
    assert delivery["attemptLog"] == [{"statusCode": 500}, {"statusCode": 200}]


async def test_webhook_failure_is_recorded(srv: LiveServer, http: httpx.AsyncClient) -> None:
    with trio.socket.socket() as s:  # a port nobody listens on
        await s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    body = rule(threshold=0)
    body["notification"] = {"channels": ["webhook"], "webhookUrl": f"http://127.0.0.1:{port}/x"}
    alert_id = (await http.post("/alerts", json=body)).json()["id"]
    await errors(http, 1)
    with trio.fail_after(5):
        while True:
            history = (await http.get("/alerts/history",
                                      params={"alertId": alert_id})).json()["history"]
            hooks = [h for h in history if h["event"] == "webhook"]
            if hooks:
                break
            await trio.sleep(0.05)
    assert hooks[0]["status"] == "failed" and hooks[0]["attempts"] == 4
    assert "Connect" in hooks[0]["error"]


async def test_backtest_lists_when_it_would_have_fired(http: httpx.AsyncClient) -> None:
    now = int(time.time() * 1000)
    base = now - 3_600_000 - now % 1000
    events = []
    for minute, n in ((10, 8), (11, 8), (40, 12)):
        for i in range(n):
            events.append({"type": "error", "userId": f"u{i}",
                           "timestamp": base + minute * 60_000 + i * 100})
    assert (await http.post("/events/batch", json=events)).status_code == 202
    body = rule(threshold=5, window=10_000)
    alert_id = (await http.post("/alerts", json=body)).json()["id"]
    r = await http.post(f"/alerts/{alert_id}/test", json={"timeRange": "last_2h"})
    assert r.status_code == 200
    result = r.json()
    fired = [f["firedAt"] for f in result["firings"]]
    # 8 errors within 0.8 s cross 5 at the 6th; the window is 10 s, so each burst is one firing
    assert fired == [base + m * 60_000 + 1000 for m in (10, 11, 40)]
    assert all(f["resolvedAt"] == f["firedAt"] + 10_000 for f in result["firings"])
    assert result["wouldHaveFired"] is True
    quiet = (await http.post(f"/alerts/{alert_id}/test",
                             json={"startTime": base + 20 * 60_000,
                                   "endTime": base + 30 * 60_000})).json()
    assert quiet["firings"] == [] and quiet["wouldHaveFired"] is False
    r = await http.post(f"/alerts/{alert_id}/test", json={"startTime": "nonsense"})
    assert r.status_code == 400
