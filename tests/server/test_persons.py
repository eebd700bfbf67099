"""Identity merging end to end: the real PostHog and Segment SDKs, hand-written identify
flows, POST /persons/merge, and links surviving a restart and a SIGKILL.

One `rta serve` process for the module; every test uses ids and event types of its own.
"""

from __future__ import annotations

import json
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

T0 = 1_700_000_000_000


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    proc = ServeProcess(str(tmp_path_factory.mktemp("persons") / "data"))
    yield proc.start()
    proc.stop()


@pytest.fixture
def http(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, timeout=30) as client:
        yield client


def tag() -> str:
    return uuid.uuid4().hex[:8]


def funnel(http: httpx.Client, steps: list[str], **params: str) -> dict[str, Any]:
    r = http.post("/queries/funnel", params=params,
                  json={"steps": [{"eventType": s} for s in steps], "timeRange": "last_24h"})
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def counts(answer: dict[str, Any]) -> list[int]:
    return [s["count"] for s in answer["steps"]]


def unique(http: httpx.Client, event_type: str, **params: str) -> int:
    r = http.get("/analytics/unique-users", params={"type": event_type,
                                                    "timeRange": "last_24h", **params})
    assert r.status_code == 200, r.text
    n: int = r.json()["uniqueUsers"]
    return n


def test_identify_by_hand_joins_the_login_boundary(http: httpx.Client) -> None:
    t = tag()
    anon, user = f"anon-{t}", f"user-{t}"
    events = [{"type": f"land{t}", "userId": anon}, {"type": f"signup{t}", "userId": anon},
              {"type": "$identify", "userId": user,
               "properties": {"$anon_distinct_id": anon}},
              {"type": f"buy{t}", "userId": user}]
    assert http.post("/events/batch", json=events).status_code == 202
    steps = [f"land{t}", f"signup{t}", f"buy{t}"]
    assert counts(funnel(http, steps)) == [1, 1, 1]
    assert counts(funnel(http, steps, identity="raw")) == [1, 1, 0]
    r = http.get("/events", params={"userId": anon})
    assert {(e["userId"], e["personId"]) for e in r.json()["events"]} == {(anon, user)}
    r = http.post("/export", json={"format": "ndjson", "fields": ["userId", "personId", "type"],
                                    "filter": {"userId": [anon, user]}})
    assert r.status_code == 200, r.text
    rows = [json.loads(line) for line in r.text.splitlines()]
    assert sorted((e["userId"], e["personId"]) for e in rows) == [
        (anon, user), (anon, user), (user, user), (user, user)]
    doc = http.get(f"/persons/{anon}").json()  # (and the profile: test_person_profiles.py)
    assert {k: doc[k] for k in ("personId", "distinctIds", "identified")} == {
        "personId": user, "distinctIds": [user, anon], "identified": True}
    # one event type sent to /events alone works the same way
    other = f"anon2-{t}"
    assert http.post("/events", json={"type": f"land{t}", "userId": other}).status_code == 202
    assert unique(http, f"land{t}") == 2
    assert http.post("/events", json={"type": "$identify", "userId": user, "properties": {
        "$anon_distinct_id": other}}).status_code == 202
    assert unique(http, f"land{t}") == 1  # the cached answer was dropped by the link
    assert unique(http, f"land{t}", identity="raw") == 2


def test_posthog_sdk_identify_and_alias(url: str, http: httpx.Client) -> None:
    t = tag()
    anon, user, other = f"ph-anon-{t}", f"ph-user-{t}", f"ph-other-{t}"
    ph = Posthog("phc_test_key", host=url, max_retries=0, timeout=5, sync_mode=True,
                 enable_local_evaluation=False, feature_flags_request_timeout_seconds=1,
                 feature_flags_request_max_retries=0)
    try:
        ph.capture(f"land{t}", distinct_id=anon)
        ph.capture(f"signup{t}", distinct_id=anon)
        # what posthog-js sends on identify(): the new id, and the anonymous one
        ph.capture("$identify", distinct_id=user, properties={"$anon_distinct_id": anon,
                                                              "$set": {"plan": "pro"}})
        ph.capture(f"buy{t}", distinct_id=user)
        assert counts(funnel(http, [f"land{t}", f"signup{t}", f"buy{t}"])) == [1, 1, 1]
        # alias(previous_id, distinct_id): `$create_alias` merges `alias` into previous_id
        ph.capture(f"land{t}", distinct_id=other)
        ph.alias(previous_id=user, distinct_id=other)
        assert unique(http, f"land{t}") == 1
        assert set(http.get(f"/persons/{other}").json()["distinctIds"]) == {user, anon, other}
    finally:
        ph.shutdown()
        posthog.request.reset_sessions()


def test_segment_sdk_identify_and_alias(url: str, http: httpx.Client) -> None:
    t = tag()
    anon, user, old = f"sg-anon-{t}", f"sg-user-{t}", f"sg-old-{t}"
    client = Client("write_key_1", host=url, max_retries=0, timeout=5, sync_mode=True)
    try:
        client.track(anonymous_id=anon, event=f"land{t}")
        client.identify(user_id=user, anonymous_id=anon, traits={"plan": "pro"})
        client.track(user_id=user, event=f"buy{t}")
        client.track(user_id=old, event=f"land{t}")
        client.alias(previous_id=old, user_id=user)
        client.flush()
    finally:
        segment.analytics.request._session.close()
    assert counts(funnel(http, [f"land{t}", f"buy{t}"])) == [1, 1]
    assert http.get(f"/persons/{old}").json()["personId"] == user


def test_alias_chains_and_the_identified_rule(http: httpx.Client) -> None:
    t = tag()
    a, b, c, d = (f"{x}-{t}" for x in "abcd")
    events = [{"type": f"seen{t}", "userId": x} for x in (a, b, c, d)]
    events += [{"type": "$create_alias", "userId": a, "properties": {"alias": b}},
               {"type": "$alias", "userId": b, "properties": {"previousId": c}}]
    assert http.post("/events/batch", json=events).status_code == 202
    assert unique(http, f"seen{t}") == 2  # a+b+c, and d
    # d identifies itself (a $identify with an anon id), then a tries to absorb d: refused
    e = f"e-{t}"
    more = [{"type": f"seen{t}", "userId": e},
            {"type": "$identify", "userId": d, "properties": {"$anon_distinct_id": e}},
            {"type": "$identify", "userId": a, "properties": {"$anon_distinct_id": d}}]
    assert http.post("/events/batch", json=more).status_code == 202
    assert unique(http, f"seen{t}") == 2
    assert http.get(f"/persons/{d}").json()["personId"] == d
    # $merge_dangerously forces it
    assert http.post("/events", json={"type": "$merge_dangerously", "userId": a,
                                      "properties": {"alias": d}}).status_code == 202
    assert unique(http, f"seen{t}") == 1
    assert http.get(f"/persons/{e}").json()["personId"] == a


def test_merge_api_rules_and_bad_input(http: httpx.Client) -> None:
    t = tag()
    x, y, z = f"x-{t}", f"y-{t}", f"z-{t}"
    assert http.post("/events/batch", json=[{"type": f"m{t}", "userId": u}
                                            for u in (x, y, z)]).status_code == 202

    def merge(body: Any) -> httpx.Response:
        return http.post("/persons/merge", json=body)

    for body, status, field in [
            ({"distinctIds": [x, x]}, 400, "distinctIds[1]"),
            ({"distinctIds": [x]}, 400, "distinctIds"),
            ({"distinctIds": [f"{x}-{i}" for i in range(101)]}, 400, "distinctIds"),
            ({"distinctIds": [x, "y" * 201]}, 400, "distinctIds[1]"),
            ({"distinctIds": "x"}, 400, "distinctIds"),
            ({"distinctIds": [x, 5]}, 400, "distinctIds[1]"),
            ({"distinctIds": [x, "null"]}, 400, "distinctIds[1]"),
            ({"distinctIds": [x, y], "force": "yes"}, 400, "force"),
            ({"distinctIds": [x, y], "extra": 1}, 400, "extra"),
            ({"distinctIds": [x, y, f"nobody-{t}"]}, 404, "distinctIds[2]")]:
        r = merge(body)
        assert r.status_code == status, (body, r.text)
        assert r.json()["error"]["details"][0]["field"] == field
    assert unique(http, f"m{t}") == 3  # nothing partially applied
    r = merge({"distinctIds": [x, y]})
    assert r.status_code == 200 and r.json() == {"personId": x, "distinctIds": [x, y],
                                                 "merged": 1}
    assert merge({"distinctIds": [z, f"w-{t}"]}).status_code == 404
    assert http.post("/events", json={"type": "$identify", "userId": z, "properties": {
        "$anon_distinct_id": f"w-{t}"}}).status_code == 202  # z is identified now
    r = merge({"distinctIds": [z, x]})
    assert r.status_code == 409 and r.json()["error"]["details"][0]["field"] == "distinctIds[1]"
    assert unique(http, f"m{t}") == 2
    assert merge({"distinctIds": [z, x], "force": True}).status_code == 200
    assert unique(http, f"m{t}") == 1
    assert http.get(f"/persons/nobody-{t}").status_code == 404
    r = http.get("/analytics/unique-users", params={"identity": "people"})
    assert r.status_code == 400 and r.json()["error"]["details"][0]["field"] == "identity"


def test_links_survive_restart_and_sigkill(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    t = tag()
    proc = ServeProcess(data, "--max-events", "50")
    url = proc.start()
    try:
        with httpx.Client(base_url=url, timeout=30) as http:
            events = [{"type": f"v{t}", "userId": f"anon{i}"} for i in range(60)]
            events += [{"type": "$identify", "userId": f"u{i % 3}",
                        "properties": {"$anon_distinct_id": f"anon{i}"}} for i in range(60)]
            assert http.post("/events/batch", json=events).status_code == 202
            assert unique(http, f"v{t}") == 3
    finally:
        proc.stop()
    for stop in ("kill", "kill"):  # a clean stop above, then two SIGKILLs
        proc = ServeProcess(data, "--max-events", "50")
        url = proc.start()
        with httpx.Client(base_url=url, timeout=30) as http:
            assert unique(http, f"v{t}") == 3
            n = len(http.get("/persons/u0").json()["distinctIds"])
            assert http.post("/events/batch", json=[
                {"type": f"v{t}", "userId": f"late{n}"},
                {"type": "$identify", "userId": "u0",
                 "properties": {"$anon_distinct_id": f"late{n}"}}]).status_code == 202
            assert unique(http, f"v{t}") == 3
        getattr(proc, stop)()
    proc = ServeProcess(data)
    url = proc.start()
    try:
        with httpx.Client(base_url=url, timeout=30) as http:
            assert unique(http, f"v{t}") == 3
            assert len(http.get("/persons/u0").json()["distinctIds"]) == 20 + 1 + 2
    finally:
        proc.stop()


def test_saved_segments_and_caches_follow_links_and_identity_mode(http: httpx.Client) -> None:
    t = tag()
    a, b = f"sa-{t}", f"sb-{t}"
    assert http.post("/events/batch", json=[
        {"type": f"seg{t}", "userId": a, "properties": {"plan": "pro"}},
        {"type": f"seg{t}", "userId": b}]).status_code == 202
    name = f"pro-{t}"
    r = http.post("/segments", json={"name": name, "filters": [
        {"property": "plan", "operator": "eq", "value": "pro"}]})
    assert r.status_code == 201, r.text
    assert unique(http, f"seg{t}", segment=name) == 1
    assert http.post("/events", json={"type": "$identify", "userId": a, "properties": {
        "$anon_distinct_id": b}}).status_code == 202
    # b's events now belong to a's person, a member: both count, as one person
    r = http.get("/analytics/count", params={"type": f"seg{t}", "timeRange": "last_24h",
                                             "segment": name})
    assert r.json()["count"] == 2, r.text
    assert unique(http, f"seg{t}", segment=name) == 1
    r = http.get("/analytics/count", params={"type": f"seg{t}", "timeRange": "last_24h",
                                             "segment": name, "identity": "raw"})
    assert r.json()["count"] == 1, r.text
    assert unique(http, f"seg{t}", identity="raw") == 2
    assert unique(http, f"seg{t}") == 1


def test_merge_accepts_an_id_known_only_from_a_link(http: httpx.Client) -> None:
    """An id seen only as another event's `$anon_distinct_id` is a distinct id of that
    person (GET /persons shows it), so POST /persons/merge must know it too."""
    t = tag()
    a, b, anon = f"a-{t}", f"b-{t}", f"anon-{t}"
    assert http.post("/events/batch", json=[
        {"type": f"k{t}", "userId": a},
        {"type": "$identify", "userId": b, "properties": {"$anon_distinct_id": anon}},
    ]).status_code == 202
    assert http.get(f"/persons/{anon}").json()["personId"] == b
    r = http.post("/persons/merge", json={"distinctIds": [a, anon], "force": True})
    assert r.status_code == 200, r.text
    assert sorted(r.json()["distinctIds"]) == sorted([a, b, anon])


def test_merge_refuses_an_unpaired_surrogate(http: httpx.Client) -> None:
    """A lone surrogate escape in distinctIds is a 400 naming the id, not a 500."""
    t = tag()
    x = f"x-{t}"
    assert http.post("/events", json={"type": f"u{t}", "userId": x}).status_code == 202
    for ids in ([x, "\\ud800"], ["\\udfff", x]):
        raw = "{\"distinctIds\": [\"" + ids[0] + "\", \"" + ids[1] + "\"]}"
        r = http.post("/persons/merge", content=raw.encode(),
                      headers={"content-type": "application/json"})
        assert r.status_code == 400, r.text
        assert r.json()["error"]["details"][0]["field"] == \
            f"distinctIds[{ids.index(x) ^ 1}]"


async def test_live_user_totals_count_persons(url: str) -> None:
    """/stats totalUsers, the metrics channel's active users and its users total count
    persons: merging two ids drops each by one; `?identity=raw` still counts ids."""
    import time as time_mod

    import trio

    from rta.client.ws import connect

    def totals() -> tuple[int, int]:
        with httpx.Client(base_url=url, timeout=30) as client:
            persons = client.get("/stats").json()["aggregator"]["totalUsers"]
            raw = client.get("/stats", params={"identity": "raw"}).json()[
                "aggregator"]["totalUsers"]
        return persons, raw

    async def metrics(conn: Any) -> dict[str, Any]:
        done = time_mod.time() * 1000
        with trio.fail_after(10):
            while True:
                msg = await conn.receive()
                if msg["channel"] == "metrics" and msg["timestamp"] > done + 5:
                    return dict(msg["data"])

    t = tag()
    a, b = f"live-a-{t}", f"live-b-{t}"
    async with connect(url) as conn, httpx.AsyncClient(base_url=url, timeout=30) as http:
        await conn.subscribe("metrics")
        assert (await http.post("/events/batch", json=[
            {"type": "visit", "userId": a}, {"type": "visit", "userId": b}])).status_code == 202
        before, raw_before = totals()
        first = await metrics(conn)
        r = await http.post("/persons/merge", json={"distinctIds": [a, b]})
        assert r.status_code == 200, r.text
        after, raw_after = totals()
        assert (after, raw_after) == (before - 1, raw_before)
        second = await metrics(conn)
    assert second["activeUsers5m"] == first["activeUsers5m"] - 1
    assert second["totals"]["users"] == first["totals"]["users"] - 1 == after
