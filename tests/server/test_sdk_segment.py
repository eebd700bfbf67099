"""The Segment tracking API, driven by the real `segment-analytics-python` SDK and raw requests."""

from __future__ import annotations

import gzip
import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import segment.analytics.request
import trio
from segment.analytics import Client

from rta.core.queries.timeparse import now_ms
from tests.support import LiveServer

T0 = datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
T0_MS = 1704164645678
SKEW_SLACK_MS = 5_000  # sentAt is stamped a moment before the server reads its clock
AUTH = httpx.BasicAuth("write_key_1", "")


async def all_events(http: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    r = await http.get("/events", params={"limit": 1000, **params})
    assert r.status_code == 200, r.text
    events: list[dict[str, Any]] = r.json()["events"]
    return events


@pytest.fixture
def make_client(server: LiveServer) -> Iterator[Callable[..., tuple[Client, list[Any]]]]:
    """Segment clients that only talk to `server`: no retries, short timeouts."""
    made: list[Client] = []

    def make(**options: Any) -> tuple[Client, list[Any]]:
        errors: list[Any] = []
        c = Client("write_key_1", host=server.url, max_retries=0, timeout=5,
                   max_total_backoff_duration=0, max_rate_limit_duration=0,
                   on_error=lambda e, batch: errors.append(e), **options)
        made.append(c)
        return c, errors

    yield make
    for c in made:
        if c.consumers is not None:  # sync_mode clients have no consumers to join
            c.shutdown()
    # The SDK keeps a pooled keep-alive connection; close it so the server stops at once.
    segment.analytics.request._session.close()


async def in_thread(fn: Callable[[], Any]) -> Any:
    return await trio.to_thread.run_sync(fn)


async def test_sdk_calls_map_to_rta_events(http: httpx.AsyncClient,
                                           make_client: Callable[..., Any]) -> None:
    c, errors = make_client(sync_mode=True)

    def send() -> None:
        c.track("u1", "Order Completed", {"revenue": 9.5, "items": 2,
                                          "cart": {"coupon": "X"}},
                timestamp=T0, message_id="m-track")
        c.page("u1", "Docs", "Install", {"path": "/docs/install"}, message_id="m-page",
               timestamp=T0 + timedelta(seconds=1))
        c.screen("u1", "Settings", "Profile", message_id="m-screen")
        c.identify("u1", {"email": "u1@example.com", "plan": "pro"}, message_id="m-identify")
        c.track(anonymous_id="anon-7", event="Signed Out", message_id="m-anon")
        c.alias("anon-7", "u1", message_id="m-alias")
        c.group("u1", "acme", {"name": "Acme", "seats": 5}, message_id="m-group")

    await in_thread(send)
    assert errors == []
    ev = {e["id"]: e for e in await all_events(http)}
    assert set(ev) == {"m-track", "m-page", "m-screen", "m-identify", "m-anon", "m-alias",
                       "m-group"}
    track = ev["m-track"]
    assert (track["type"], track["userId"]) == ("Order Completed", "u1")
    assert abs(track["timestamp"] - T0_MS) < SKEW_SLACK_MS
    assert {k: track["properties"][k] for k in ("revenue", "items", "cart.coupon")} == {
        "revenue": 9.5, "items": 2, "cart.coupon": "X"}
    assert track["properties"]["context.library.name"] == "analytics-python"
    page = ev["m-page"]
    assert page["type"] == "pageview"
    assert abs(page["timestamp"] - (T0_MS + 1000)) < SKEW_SLACK_MS
    assert {k: page["properties"][k] for k in ("name", "category", "path")} == {
        "name": "Install", "category": "Docs", "path": "/docs/install"}
    screen = ev["m-screen"]
    assert (screen["type"], screen["properties"]["name"]) == ("screen", "Profile")
    assert abs(screen["timestamp"] - now_ms()) < 60_000
    identify = ev["m-identify"]
    assert (identify["type"], identify["userId"]) == ("$identify", "u1")
    assert identify["properties"]["email"] == "u1@example.com"
    assert identify["properties"]["plan"] == "pro"
    assert (ev["m-anon"]["type"], ev["m-anon"]["userId"]) == ("Signed Out", "anon-7")
    alias = ev["m-alias"]
    assert (alias["type"], alias["userId"], alias["properties"]["previousId"]) == (
        "$alias", "u1", "anon-7")
    group = ev["m-group"]
    assert (group["type"], group["properties"]["groupId"]) == ("$group", "acme")
    assert group["properties"]["traits.name"] == "Acme"
    assert "name" not in group["properties"]  # group traits are not the user's


async def test_identify_traits_are_filterable(http: httpx.AsyncClient,
                                              make_client: Callable[..., Any]) -> None:
    c, errors = make_client(sync_mode=True)
    await in_thread(lambda: [c.identify(f"u{i}", {"plan": "pro" if i % 2 else "free"})
                             for i in range(6)])
    assert errors == []
    pro = await all_events(http, type="$identify", plan="pro")
    assert sorted(e["userId"] for e in pro) == ["u1", "u3", "u5"]


async def test_sdk_batch_gzip_and_resend_is_deduplicated(
        http: httpx.AsyncClient, make_client: Callable[..., Any]) -> None:
    ids = [str(uuid.uuid4()) for _ in range(30)]

    def send_batch(c: Client) -> None:
        for i, mid in enumerate(ids):
            c.track(f"u{i % 3}", "step", {"i": i}, message_id=mid,
                    timestamp=T0 + timedelta(minutes=i))
        c.flush()

    first, errors1 = make_client(gzip=True, upload_size=100, upload_interval=0.5)
    await in_thread(lambda: send_batch(first))
    events = await all_events(http)
    assert sorted(e["id"] for e in events) == sorted(ids)
    assert len({e["receivedAt"] for e in events}) == 1  # one request carried them all
    by_id = {e["id"]: e for e in events}
    for i, mid in enumerate(ids):
        assert by_id[mid]["userId"] == f"u{i % 3}"
        assert by_id[mid]["properties"]["i"] == i
        assert abs(by_id[mid]["timestamp"] - (T0_MS + 60_000 * i)) < SKEW_SLACK_MS
    second, errors2 = make_client(upload_size=100, upload_interval=0.5)
    await in_thread(lambda: send_batch(second))
    assert len(await all_events(http)) == len(ids)
    assert errors1 == errors2 == []


# -- raw requests ----------------------------------------------------------------------------


def msg(i: int = 0, **extra: Any) -> dict[str, Any]:
    return {"type": "track", "event": "click", "userId": f"u{i}", "messageId": f"m{i}",
            "timestamp": "2024-01-02T03:04:05.678Z", "properties": {"button": "buy"}, **extra}


@pytest.mark.parametrize("kind", ["track", "page", "screen", "identify", "alias", "group"])
async def test_single_call_endpoints(http: httpx.AsyncClient, kind: str) -> None:
    body = {"userId": "u1", "messageId": "m1", "event": "click", "name": "Home",
            "previousId": "old", "groupId": "g", "traits": {"t": 1}}
    r = await http.post(f"/v1/{kind}", json=body, auth=AUTH)
    assert (r.status_code, r.json()) == (200, {"success": True})
    (event,) = await all_events(http)
    expected = {"track": "click", "page": "pageview", "screen": "screen",
                "identify": "$identify", "alias": "$alias", "group": "$group"}[kind]
    assert (event["type"], event["userId"], event["id"]) == (expected, "u1", "m1")


async def test_batch_context_write_key_in_body_and_skew(http: httpx.AsyncClient) -> None:
    now = now_ms()
    client_now = datetime.fromtimestamp(now / 1000, UTC) + timedelta(hours=3)  # fast clock
    skewed = msg(1, timestamp=(client_now - timedelta(seconds=30)).isoformat())
    original = msg(2, originalTimestamp="2024-01-02T03:04:05.678Z")
    del original["timestamp"]
    both = msg(3, anonymousId="a3", context={"ip": "1.2.3.4"})
    body = {"writeKey": "wk", "sentAt": client_now.isoformat(), "context": {"app": "web"},
            "batch": [skewed, original, both]}
    r = await http.post("/v1/batch", content=gzip.compress(json.dumps(body).encode()),
                        headers={"Content-Encoding": "gzip",
                                 "Content-Type": "application/json"})
    assert (r.status_code, r.json()) == (200, {"success": True})
    after = now_ms()
    ev = {e["userId"]: e for e in await all_events(http)}
    assert now - 30_000 <= ev["u1"]["timestamp"] <= after - 30_000
    assert abs(ev["u2"]["timestamp"] - now - (T0_MS - (now + 3 * 3_600_000))) < 5_000
    assert ev["u3"]["properties"]["anonymousId"] == "a3"
    assert "context.ip" not in ev["u3"]["properties"]  # used for the country, never stored
    assert ev["u3"]["properties"]["$geoip_country_code"] == "AU"
    assert ev["u3"]["properties"]["context.app"] == "web"


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/v1/batch", {"batch": [msg(1), msg(2, userId=None)]}, "batch[1].userId"),
    ("/v1/batch", {"batch": [msg(1), msg(2, type="explode")]}, "batch[1].type"),
    ("/v1/batch", {"batch": [msg(1), msg(2, event="")]}, "batch[1].event"),
    ("/v1/batch", {"batch": [msg(1), msg(2, timestamp="not a time")]}, "batch[1].timestamp"),
    ("/v1/batch", {"batch": [msg(1), msg(2, properties="x")]}, "batch[1].properties"),
    ("/v1/batch", {"batch": [msg(1), msg(2, messageId="x" * 300)]}, "batch[1].messageId"),
    ("/v1/batch", {"batch": [msg(1), "nope"]}, "batch[1]"),
    ("/v1/batch", {"batch": {"not": "a list"}}, "batch"),
    ("/v1/batch", {"batch": [msg(1)], "context": 5}, "context"),
    ("/v1/batch", [msg(1)], "body"),
    ("/v1/track", {"event": "x"}, "userId"),
    ("/v1/alias", {"userId": "u"}, "previousId"),
    ("/v1/group", {"userId": "u"}, "groupId"),
    ("/v1/identify", {"userId": "u", "traits": [1]}, "traits"),
])
async def test_malformed_payloads_are_400_and_store_nothing(
        http: httpx.AsyncClient, path: str, body: Any, field: str) -> None:
    r = await http.post(path, json=body, auth=AUTH)
    assert r.status_code == 400, r.text
    payload = r.json()
    assert payload["success"] is False and payload["message"] == payload["error"]["message"]
    assert field in [d.get("field") for d in payload["error"]["details"]]
    assert await all_events(http) == []


async def test_invalid_json_and_gzip_are_400(http: httpx.AsyncClient) -> None:
    for content, headers in [(b"{oops", {}), (b"oops", {"Content-Encoding": "gzip"})]:
        r = await http.post("/v1/batch", content=content, headers=headers, auth=AUTH)
        assert r.status_code == 400, r.text
        assert r.json()["success"] is False


async def test_empty_batch_is_accepted(http: httpx.AsyncClient) -> None:
    r = await http.post("/v1/batch", json={"batch": []}, auth=AUTH)
    assert (r.status_code, r.json()) == (200, {"success": True})
