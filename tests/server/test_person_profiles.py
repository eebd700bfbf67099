"""Person profiles end to end: the real PostHog and Segment SDKs setting properties, rta's
POST /persons/{id}/properties, GET /persons (search, paging), GET /persons/{id}, person
filters and breakdowns over HTTP, bad input, and properties surviving a restart and a
SIGKILL.

One `rta serve` process for the module; every test uses ids and event types of its own.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import posthog.request
import pytest
import segment.analytics.request
from posthog import Posthog
from segment.analytics import Client

from tests.support import ServeProcess


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    proc = ServeProcess(str(tmp_path_factory.mktemp("profiles") / "data"))
    yield proc.start()
    proc.stop()


@pytest.fixture
def http(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, timeout=30) as client:
        yield client


def tag() -> str:
    return uuid.uuid4().hex[:8]


def props(http: httpx.Client, person: str) -> dict[str, Any]:
    r = http.get(f"/persons/{person}")
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()["properties"]
    return out


def count(http: httpx.Client, event_type: str, where: list[dict[str, Any]],
          **extra: Any) -> Any:
    r = http.post("/analytics/count", json={"eventType": event_type, "timeRange": "last_24h",
                                            "where": where, **extra})
    assert r.status_code == 200, r.text
    return r.json()


def test_posthog_sdk_sets_properties_and_merges_combine(url: str, http: httpx.Client) -> None:
    t = tag()
    anon, user = f"ph-anon-{t}", f"ph-user-{t}"
    ph = Posthog("phc_test_key", host=url, max_retries=0, timeout=5, sync_mode=True,
                 enable_local_evaluation=False, feature_flags_request_timeout_seconds=1,
                 feature_flags_request_max_retries=0)
    try:
        ph.capture(f"land{t}", distinct_id=anon,
                   properties={"$set_once": {"referrer": "ads", "plan": "trial"}})
        ph.capture("$identify", distinct_id=user, properties={
            "$anon_distinct_id": anon, "$set": {"plan": "pro", "seats": 3, "vip": True}})
        ph.capture(f"buy{t}", distinct_id=user, properties={"$set": {"ltv": 9.5},
                                                           "$unset": ["vip"]})
        ph.set(distinct_id=user, properties={"seats": 4})
        ph.set_once(distinct_id=user, properties={"referrer": "organic", "city": "Oslo"})
    finally:
        ph.shutdown()
        posthog.request.reset_sessions()
    # (the anonymous id's $set_once plan applied first; the later $set wins)
    assert props(http, anon) == {"city": "Oslo", "ltv": 9.5, "plan": "pro",
                                 "referrer": "ads", "seats": 4}
    doc = http.get(f"/persons/{anon}").json()
    assert doc["personId"] == user and set(doc["distinctIds"]) == {user, anon}
    assert doc["eventCount"] == 5 and doc["firstSeen"] <= doc["lastSeen"]
    assert doc["recentEvents"][0]["timestamp"] == doc["lastSeen"]
    assert {e["type"] for e in doc["recentEvents"]} >= {f"land{t}", f"buy{t}", "$identify"}
    # the events the anonymous id sent before login count as the pro person's
    assert count(http, f"land{t}", [{"property": "person.plan", "value": "pro"}])["count"] == 1
    assert count(http, f"land{t}", [{"property": "person.seats", "operator": "gt",
                                     "value": 3}])["count"] == 1
    assert count(http, f"land{t}", [{"property": "person.vip", "operator": "exists"}]
                 )["count"] == 0


def test_segment_identify_traits(url: str, http: httpx.Client) -> None:
    t = tag()
    anon, user = f"sg-anon-{t}", f"sg-user-{t}"
    client = Client("write_key_1", host=url, max_retries=0, timeout=5, sync_mode=True)
    try:
        client.track(anonymous_id=anon, event=f"land{t}")
        client.identify(user_id=user, anonymous_id=anon,
                        traits={"plan": "team", "address": {"city": "Lyon"}, "age": 41})
        client.track(user_id=user, event=f"buy{t}")
        client.flush()
    finally:
        segment.analytics.request._session.close()
    assert props(http, anon) == {"address.city": "Lyon", "age": 41, "plan": "team"}
    answer = count(http, f"land{t}", [], groupBy="person.plan")
    assert answer["groups"] == [{"key": "team", "count": 1, "share": 1.0}]


def test_properties_api_and_bad_input(http: httpx.Client) -> None:
    t = tag()
    a, b = f"a-{t}", f"b-{t}"
    assert http.post("/events/batch", json=[{"type": f"p{t}", "userId": x}
                                            for x in (a, b)]).status_code == 202
    r = http.post(f"/persons/{a}/properties", json={"$set": {"plan": "pro", "n": 1},
                                                    "$set_once": {"n": 5, "first": "x"}})
    assert r.status_code == 200, r.text
    assert r.json() == {"personId": a, "properties": {"first": "x", "n": 1, "plan": "pro"}}
    for body, status, field in [
            ({"$set": "pro"}, 400, "$set"),
            ({"$set": {"plan": "team"}, "$set_once": ["x"]}, 400, "$set_once"),
            ({"$set": {"plan": {"tier": 1}}}, 400, "$set.plan"),
            ({"$set": {"plan": None}}, 400, "$set.plan"),
            ({"$set": {"plan": "team"}, "$unset": "n"}, 400, "$unset"),
            ({"$set": {"plan": "team"}, "$unset": ["n", 3]}, 400, "$unset[1]"),
            ({"$set": {"plan": "team"}, "extra": 1}, 400, "extra"),
            ({}, 400, "body"),
            ([{"$set": {}}], 400, None)]:
        r = http.post(f"/persons/{a}/properties", json=body)
        assert r.status_code == status, (body, r.text)
        if field is not None:
            assert r.json()["error"]["details"][0]["field"] == field, r.text
    r = http.post(f"/persons/nobody-{t}/properties", json={"$set": {"plan": "x"}})
    assert r.status_code == 404
    assert props(http, a) == {"first": "x", "n": 1, "plan": "pro"}  # nothing applied
    # a malformed $set in a batch refuses the batch, naming the event and the field
    batch = [{"type": f"q{t}", "userId": b}] * 3 + [
        {"type": f"q{t}", "userId": b, "properties": {"$set": "pro"}}]
    r = http.post("/events/batch", json=batch)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert "[3].properties.$set" in err["message"]
    assert err["details"] == [{"index": 3, "field": "properties.$set", "code": "invalid",
                               "message": "must be an object of person properties"}]
    r = http.post("/events", json={"type": f"q{t}", "userId": b,
                                   "properties": {"$unset": "plan"}})
    assert r.status_code == 400 and r.json()["error"]["details"][0]["field"] == \
        "properties.$unset"
    assert count(http, f"q{t}", [])["count"] == 0
    # the PostHog route answers in its own error style
    r = http.post("/batch/", json={"api_key": "k", "batch": [
        {"event": f"q{t}", "distinct_id": b, "properties": {"$set_once": 7}}]})
    assert r.status_code == 400 and r.json()["type"] == "validation_error"
    assert count(http, f"q{t}", [])["count"] == 0
    assert props(http, b) == {}
    # a person property no person has matches nothing, without an error
    assert count(http, f"p{t}", [{"property": "person.nokey", "value": "x"}])["count"] == 0
    assert count(http, f"p{t}", [{"property": "person.nokey", "operator": "neq",
                                  "value": "x"}])["count"] == 2


def test_list_search_and_paging(http: httpx.Client) -> None:
    t = tag()
    ids = [f"l{t}-{i:02d}" for i in range(7)]
    events = [{"type": f"l{t}", "userId": x,
               "properties": {"$set": {"tier": "gold" if i % 2 else f"silver{t}"}}}
              for i, x in enumerate(ids)]
    assert http.post("/events/batch", json=events).status_code == 202
    r = http.get("/persons", params={"search": f"L{t}", "limit": 3})
    seen: list[str] = []
    pages = 0
    cursor = None
    while True:
        params: dict[str, Any] = {"search": f"l{t}", "limit": 3}
        if cursor:
            params["cursor"] = cursor
        r = http.get("/persons", params=params)
        assert r.status_code == 200, r.text
        page = r.json()
        seen += [p["personId"] for p in page["persons"]]
        pages += 1
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert seen == ids and pages == 3
    r = http.get("/persons", params={"search": f"SILVER{t}"})
    assert [p["personId"] for p in r.json()["persons"]] == ids[0::2]
    assert r.json()["persons"][0]["properties"] == {"tier": f"silver{t}"}
    for params, field in [({"limit": 0}, "limit"), ({"limit": "x"}, "limit"),
                          ({"cursor": "%%%"}, "cursor"), ({"sort": "x"}, "sort")]:
        r = http.get("/persons", params=params)
        assert r.status_code == 400 and r.json()["error"]["details"][0]["field"] == field


def test_properties_survive_restart_and_sigkill(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    proc = ServeProcess(data, "--max-events", "50")
    url = proc.start()
    try:  # some events sealed into a segment, the rest only in the WAL; then a SIGKILL
        with httpx.Client(base_url=url, timeout=30) as http:
            events = [{"type": "v", "userId": f"u{i}",
                       "properties": {"$set": {"plan": "pro" if i % 3 else "free", "i": i}}}
                      for i in range(60)]
            assert http.post("/events/batch", json=events).status_code == 202
            assert http.post("/persons/u1/properties",
                             json={"$set": {"note": "café ☕"}}).status_code == 200
    finally:
        proc.kill()
    proc = ServeProcess(data, "--max-events", "50")
    url = proc.start()
    try:  # (a clean stop and restart: tests/core/test_profiles.py)
        with httpx.Client(base_url=url, timeout=30) as http:
            assert props(http, "u1") == {"i": 1, "note": "café ☕", "plan": "pro"}
            assert count(http, "v", [{"property": "person.plan", "value": "free"}],
                         timeRange="last_7d")["count"] == 20
            assert http.post("/events", json={"type": "v", "userId": "u0", "properties": {
                "$set": {"plan": "pro"}}}).status_code == 202
            assert count(http, "v", [{"property": "person.plan", "value": "free"}],
                         timeRange="last_7d")["count"] == 19
    finally:
        proc.stop()
    assert os.path.exists(os.path.join(data, "persons", "properties.log"))


def test_properties_api_refuses_unpaired_surrogates(http: httpx.Client) -> None:
    """A lone surrogate escape (valid JSON, not encodable text) in a key, a value or an
    $unset name is a 400 naming the field, not a 500, and nothing is set."""
    t = tag()
    a = f"a-{t}"
    assert http.post("/events", json={"type": f"s{t}", "userId": a}).status_code == 202
    for raw, field in [('{"$set": {"plan": "\\ud800"}}', "$set.plan"),
                       ('{"$set_once": {"k\\udfff": 1}}', "$set_once.k"),
                       ('{"$set": {"ok": 1}, "$unset": ["\\ud800"]}', "$unset[0]")]:
        r = http.post(f"/persons/{a}/properties", content=raw.encode(),
                      headers={"content-type": "application/json"})
        assert r.status_code == 400, (raw, r.text)
        assert r.json()["error"]["details"][0]["field"].startswith(field)
    assert props(http, a) == {}
