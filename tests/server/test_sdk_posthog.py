"""The PostHog capture API, driven by the real `posthog` SDK and by raw requests."""

from __future__ import annotations

import base64
import gzip
import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import posthog.request
import pytest
import trio
from posthog import Posthog

from rta.core.queries.timeparse import now_ms
from tests.support import LiveServer

T0 = datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
T0_MS = 1704164645678
SKEW_SLACK_MS = 5_000  # sent_at is stamped a moment before the server reads its clock


async def all_events(http: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    r = await http.get("/events", params={"limit": 1000, **params})
    assert r.status_code == 200, r.text
    events: list[dict[str, Any]] = r.json()["events"]
    return events


def client(server: LiveServer, **options: Any) -> Posthog:
    """A PostHog client that only ever talks to `server`: no flags, no retries, short waits."""
    errors: list[Any] = []
    ph = Posthog("phc_test_key", host=server.url, max_retries=0, timeout=5,
                 enable_local_evaluation=False, feature_flags_request_timeout_seconds=1,
                 feature_flags_request_max_retries=0, on_error=lambda e, b: errors.append(e),
                 **options)
    ph.test_errors = errors  # type: ignore[attr-defined]
    return ph


@pytest.fixture
def make_client(server: LiveServer) -> Iterator[Callable[..., Posthog]]:
    made: list[Posthog] = []

    def make(**options: Any) -> Posthog:
        ph = client(server, **options)
        made.append(ph)
        return ph

    yield make
    for ph in made:
        ph.shutdown()
    # The SDK keeps pooled keep-alive connections; close them so the server stops at once.
    posthog.request.reset_sessions()


async def in_thread(fn: Callable[[], Any]) -> Any:
    return await trio.to_thread.run_sync(fn)


async def test_sdk_capture_maps_every_field(server: LiveServer, http: httpx.AsyncClient,
                                            make_client: Callable[..., Posthog]) -> None:
    ph = make_client(sync_mode=True)
    event_id = str(uuid.uuid4())

    def send() -> None:
        ph.capture("clicked", distinct_id="user-1", timestamp=T0, uuid=event_id,
                   properties={"$session_id": "sess-1", "plan": "pro", "n": 3,
                               "ratio": 0.5, "ok": True, "nested": {"a": 1}})

    await in_thread(send)
    assert ph.test_errors == []  # type: ignore[attr-defined]
    (event,) = await all_events(http)
    assert event["id"] == event_id
    assert event["type"] == "clicked"
    assert event["userId"] == "user-1"
    assert event["sessionId"] == "sess-1"
    assert abs(event["timestamp"] - T0_MS) < SKEW_SLACK_MS
    props = event["properties"]
    assert {k: props[k] for k in ("plan", "n", "ratio", "ok", "nested.a", "$session_id")} == {
        "plan": "pro", "n": 3, "ratio": 0.5, "ok": True, "nested.a": 1, "$session_id": "sess-1"}
    assert props["$lib"] == "posthog-python"
    assert "token" not in props


async def test_sdk_batch_gzip_and_resend_is_deduplicated(
        server: LiveServer, http: httpx.AsyncClient,
        make_client: Callable[..., Posthog]) -> None:
    ids = [str(uuid.uuid4()) for _ in range(25)]

    def send_batch(ph: Posthog) -> None:
        for i, eid in enumerate(ids):
            ph.capture("step", distinct_id=f"u{i % 4}", uuid=eid,
                       timestamp=T0 + timedelta(seconds=i), properties={"i": i})
        ph.flush()

    first = make_client(gzip=True, flush_at=100, flush_interval=30)
    await in_thread(lambda: send_batch(first))
    events = await all_events(http)
    assert sorted(e["id"] for e in events) == sorted(ids)
    assert len({e["receivedAt"] for e in events}) == 1  # one request carried them all
    by_id = {e["id"]: e for e in events}
    for i, eid in enumerate(ids):
        assert by_id[eid]["userId"] == f"u{i % 4}"
        assert by_id[eid]["properties"]["i"] == i
        assert abs(by_id[eid]["timestamp"] - (T0_MS + 1000 * i)) < SKEW_SLACK_MS
    # The same batch again (an SDK retry after a lost response) is stored once.
    second = make_client(flush_at=100, flush_interval=30)
    await in_thread(lambda: send_batch(second))
    assert len(await all_events(http)) == len(ids)
    assert first.test_errors == second.test_errors == []  # type: ignore[attr-defined]


async def test_sdk_set_makes_person_properties_usable(
        server: LiveServer, http: httpx.AsyncClient,
        make_client: Callable[..., Posthog]) -> None:
    ph = make_client(sync_mode=True)
    await in_thread(lambda: ph.set(distinct_id="user-9",
                                   properties={"email": "a@b.c", "plan": "team"}))
    (event,) = await all_events(http)
    assert event["type"] == "$set"
    assert event["userId"] == "user-9"
    props = event["properties"]
    assert props["$set.email"] == "a@b.c"
    assert props["email"] == "a@b.c" and props["plan"] == "team"
    assert abs(event["timestamp"] - now_ms()) < 60_000


# -- raw requests, as other PostHog SDKs send them -----------------------------------------


def ph_event(i: int = 0, **extra: Any) -> dict[str, Any]:
    return {"event": "pageview", "distinct_id": f"d{i}", "uuid": str(uuid.UUID(int=i + 1)),
            "timestamp": "2024-01-02T03:04:05.678Z", "properties": {"$current_url": "/x"},
            **extra}


@pytest.mark.parametrize("path", ["/batch/", "/batch", "/capture/", "/capture", "/e/", "/e",
                                  "/i/v0/e/", "/i/v0/e"])
async def test_every_capture_path(http: httpx.AsyncClient, path: str) -> None:
    r = await http.post(path, json={"api_key": "k", "batch": [ph_event(1)]})
    assert (r.status_code, r.json()) == (200, {"status": 1})
    r = await http.post(path, json={"api_key": "k", **ph_event(2)})
    assert (r.status_code, r.json()) == (200, {"status": 1})
    events = await all_events(http)
    assert sorted(e["userId"] for e in events) == ["d1", "d2"]
    assert all(e["timestamp"] == T0_MS for e in events)  # no sent_at: taken as given


async def test_gzip_js_query_form(http: httpx.AsyncClient) -> None:
    body = gzip.compress(json.dumps([ph_event(1), ph_event(2)]).encode())
    r = await http.post("/e/?compression=gzip-js&ver=1.0", content=body,
                        headers={"Content-Type": "text/plain"})
    assert (r.status_code, r.json()) == (200, {"status": 1})
    r = await http.post("/batch/", content=gzip.compress(json.dumps(
        {"batch": [ph_event(3)]}).encode()), headers={"Content-Encoding": "gzip"})
    assert r.status_code == 200, r.text
    assert sorted(e["userId"] for e in await all_events(http)) == ["d1", "d2", "d3"]


async def test_base64_form_body_of_older_posthog_js(http: httpx.AsyncClient) -> None:
    data = base64.b64encode(json.dumps([ph_event(1, properties={
        "token": "phc_x", "$session_id": "s", "q": "a+b ü"})]).encode()).decode()
    r = await http.post("/e/", content=urlencode({"data": data, "compression": "base64"}),
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert (r.status_code, r.json()) == (200, {"status": 1})
    # Plain JSON in the form field works too, and '+' turned into ' ' by sloppy encoders.
    sloppy = "data=" + base64.b64encode(json.dumps(ph_event(2)).encode()).decode()
    r = await http.post("/capture/", content=sloppy.replace("+", " "),
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200, r.text
    events = {e["userId"]: e for e in await all_events(http)}
    assert events["d1"]["properties"] == {"$session_id": "s", "q": "a+b ü"}
    assert events["d1"]["sessionId"] == "s"
    assert set(events) == {"d1", "d2"}


async def test_api_key_in_body_or_query(http: httpx.AsyncClient) -> None:
    r = await http.post("/batch/", json=[ph_event(1, api_key="phc_event")])
    assert r.status_code == 200
    r = await http.post("/i/v0/e/?api_key=phc_q", json=ph_event(2))
    assert r.status_code == 200
    assert len(await all_events(http)) == 2


async def test_sent_at_and_offset_correct_client_clock_skew(http: httpx.AsyncClient) -> None:
    now = now_ms()
    # The client's clock runs 2 h behind: sent_at says 'now - 2h', the event 10 s before that.
    client_now = datetime.fromtimestamp(now / 1000, UTC) - timedelta(hours=2)
    skewed = ph_event(1, timestamp=(client_now - timedelta(seconds=10)).isoformat())
    historical = ph_event(2, properties={"$ignore_sent_at": True})
    offset = ph_event(3, offset=60_000)
    del offset["timestamp"]
    future = ph_event(4, timestamp="2999-01-01T00:00:00Z")
    r = await http.post("/batch/", json={"api_key": "k", "sent_at": client_now.isoformat(),
                                         "batch": [skewed, historical, offset, future]})
    assert r.status_code == 200, r.text
    after = now_ms()
    ev = {e["userId"]: e for e in await all_events(http)}
    assert now - 10_000 <= ev["d1"]["timestamp"] <= after - 10_000
    assert ev["d2"]["timestamp"] == T0_MS
    assert now - 60_000 <= ev["d3"]["timestamp"] <= after - 60_000
    assert now <= ev["d4"]["timestamp"] <= after  # far future: stored at receipt, as PostHog
    assert ev["d4"]["properties"]["$original_timestamp"] > after


@pytest.mark.parametrize(("body", "field"), [
    ({"batch": [ph_event(1), {"distinct_id": "x"}]}, "batch[1].event"),
    ({"batch": [ph_event(1), ph_event(2, distinct_id=None)]}, "batch[1].distinct_id"),
    ({"batch": [ph_event(1), ph_event(2, timestamp="yesterday-ish")]}, "batch[1].timestamp"),
    ({"batch": [ph_event(1), ph_event(2, properties=[1])]}, "batch[1].properties"),
    ({"batch": [ph_event(1), ph_event(2, distinct_id="x" * 300)]}, "batch[1].distinct_id"),
    ({"batch": [ph_event(1), 7]}, "batch[1]"),
    ({"batch": "nope"}, "batch"),
    ({"batch": []}, "batch"),
    ("just a string", "body"),
])
async def test_malformed_payloads_are_400_and_store_nothing(
        http: httpx.AsyncClient, body: Any, field: str) -> None:
    r = await http.post("/batch/", json=body)
    assert r.status_code == 400, r.text
    payload = r.json()
    assert payload["error"]["code"] and payload["detail"] == payload["error"]["message"]
    assert field in [d.get("field") for d in payload["error"]["details"]]
    assert await all_events(http) == []


@pytest.mark.parametrize(("content", "headers"), [
    (b"{not json", {}),
    (b"\x1f\x8b\x08garbage", {}),
    (b"garbage", {"Content-Encoding": "gzip"}),
    (b"data=!!!", {"Content-Type": "application/x-www-form-urlencoded"}),
    (b"other=1", {"Content-Type": "application/x-www-form-urlencoded"}),
    (b"data=abc&compression=lz64", {"Content-Type": "application/x-www-form-urlencoded"}),
    (b"", {}),
])
async def test_undecodable_bodies_are_400(http: httpx.AsyncClient, content: bytes,
                                          headers: dict[str, str]) -> None:
    r = await http.post("/e/", content=content, headers=headers)
    assert r.status_code == 400, r.text
    assert "detail" in r.json() and "error" in r.json()


async def test_oversized_batch_is_413(server: LiveServer, http: httpx.AsyncClient) -> None:
    limit = server.engine.validator.limits.max_batch_events
    r = await http.post("/batch/", json={"batch": [ph_event(i) for i in range(limit + 1)]})
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "batch_too_large"
    assert await all_events(http) == []

