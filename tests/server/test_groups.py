"""Groups end to end: the real PostHog and Segment SDKs, the wire shapes by hand, the group
routes, counting groups (`unit: group:<type>`), bad input, and durability over a restart.

One `rta serve` process for the module. The store allows 5 group types in all, so the tests
share a few fixed types (`company`, `team`, `org`) and keep their keys apart with a tag.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import posthog.request
import pytest
import segment.analytics.request
from posthog import Posthog
from segment.analytics import Client

from tests.support import ServeProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    proc = ServeProcess(str(tmp_path_factory.mktemp("groups") / "data"))
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def http(server: ServeProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def tag() -> str:
    return uuid.uuid4().hex[:8]


def ok(r: httpx.Response, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json()


def test_posthog_sdk_groups_and_group_identify(server: ServeProcess,
                                               http: httpx.Client) -> None:
    t = tag()
    acme, globex = f"acme-{t}", f"globex-{t}"
    ph = Posthog("phc_test_key", host=server.url, max_retries=0, timeout=5, sync_mode=True,
                 enable_local_evaluation=False, feature_flags_request_timeout_seconds=1,
                 feature_flags_request_max_retries=0)
    try:
        ph.capture(f"open{t}", distinct_id=f"a-{t}", groups={"company": acme})
        ph.capture(f"open{t}", distinct_id=f"b-{t}", groups={"company": acme})
        ph.capture(f"open{t}", distinct_id=f"c-{t}", groups={"company": globex})
        ph.capture(f"open{t}", distinct_id=f"d-{t}")  # no group: left out of group counts
        ph.capture(f"pay{t}", distinct_id=f"b-{t}", groups={"company": acme})
        ph.group_identify("company", acme, {"name": "Acme", "seats": 12, "paid": True,
                                            "mrr": 99.5})
        ph.group_identify("company", acme, {"seats": 14})  # later calls overwrite
    finally:
        ph.shutdown()
        posthog.request.reset_sessions()
    group = ok(http.get(f"/groups/company/{acme}"))
    assert group["properties"] == {"mrr": 99.5, "name": "Acme", "paid": True, "seats": 14}
    # 3 events name it, and the 2 $groupidentify calls (their own $groups: none) do not
    assert group["eventCount"] == 3
    assert group["firstSeen"] <= group["lastSeen"]
    found = ok(http.get("/groups/company", params={"search": t}))
    assert [g["key"] for g in found["groups"]] == [acme, globex]
    assert found["groups"][1]["properties"] == {} and found["groups"][1]["eventCount"] == 1
    by_name = ok(http.get("/groups/company", params={"search": "ACME"}))
    assert acme in [g["key"] for g in by_name["groups"]]
    users = ok(http.get("/analytics/unique-users", params={"type": f"open{t}"}))
    groups = ok(http.get("/analytics/unique-users", params={"type": f"open{t}",
                                                            "unit": "group:company"}))
    assert (users["uniqueUsers"], groups["uniqueUsers"], groups["unit"]) == (
        4, 2, "group:company")
    funnel = ok(http.post("/queries/funnel", json={
        "steps": [f"open{t}", f"pay{t}"], "timeRange": "last_24h",
        "countBy": "group:company"}))
    assert [s["count"] for s in funnel["steps"]] == [2, 1]
    assert funnel["countBy"] == "group:company"


def test_segment_group_calls_and_context_group_id(server: ServeProcess,
                                                  http: httpx.Client) -> None:
    t = tag()
    key = f"seg-{t}"
    client = Client("write_key_1", host=server.url, max_retries=0, timeout=5, sync_mode=True)
    try:
        client.group(user_id=f"u-{t}", group_id=key, traits={"name": "Initech",
                                                             "employees": 40})
        client.track(user_id=f"u-{t}", event=f"use{t}", context={"groupId": key})
        client.track(user_id=f"v-{t}", event=f"use{t}", context={"groupId": key})
        client.track(user_id=f"w-{t}", event=f"use{t}")
        client.flush()
    finally:
        segment.analytics.request._session.close()
    group = ok(http.get(f"/groups/company/{key}"))
    assert group["properties"] == {"employees": 40, "name": "Initech"}
    assert group["eventCount"] == 3  # the group call and the two tracks naming it
    n = ok(http.get("/analytics/unique-users", params={"type": f"use{t}",
                                                       "unit": "group:company"}))
    assert n["uniqueUsers"] == 1


def test_wire_by_hand_integer_keys_retention_and_aggregate(http: httpx.Client) -> None:
    t = tag()
    day = 86_400_000
    base = (1_700_000_000_000 // day) * day
    gid = int(t, 16)  # an integer key: the same group as its decimal text
    events = [
        {"type": f"visit{t}", "userId": "x", "timestamp": base,
         "properties": {"$groups": {"team": gid}}},
        {"type": f"visit{t}", "userId": "y", "timestamp": base + day,
         "properties": {"$groups": {"team": str(gid)}}},
        {"type": f"visit{t}", "userId": "z", "timestamp": base,
         "properties": {"$groups": {"team": f"other-{t}"}}},
        {"type": "$groupidentify", "userId": "x", "timestamp": base,
         "properties": {"$group_type": "team", "$group_key": gid,
                        "$group_set": {"size": 3}}},
    ]
    ok(http.post("/events/batch", json=events), 202)
    group = ok(http.get(f"/groups/team/{gid}"))
    assert (group["eventCount"], group["properties"]) == (2, {"size": 3})
    grid = ok(http.post("/queries/cohort", json={
        "entryEvent": f"visit{t}", "periods": 2, "startTime": base, "endTime": base + day,
        "unit": "group:team"}))
    assert grid["unit"] == "group:team"
    assert grid["totalUsers"] == 2
    assert grid["cohorts"][0]["size"] == 2
    assert grid["cohorts"][0]["counts"][:2] == [2, 1]
    agg = ok(http.post("/analytics/aggregate", json={
        "eventType": f"visit{t}", "aggregation": "unique_users", "interval": "1d",
        "startTime": base, "endTime": base + 2 * day - 1, "unit": "group:team"}))
    assert agg["unit"] == "group:team"
    assert [b["value"] for b in agg["buckets"]] == [2, 1]


def error(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 400, r.text
    err: dict[str, Any] = r.json()["error"]
    return err


def test_bad_input_names_the_field_and_applies_nothing(http: httpx.Client) -> None:
    t = tag()
    # (the types every test uses exist first, whatever order the tests run in)
    ok(http.post("/events", json={"type": f"x{t}", "userId": "u", "properties": {
        "$groups": {"company": f"c-{t}", "team": f"t-{t}", "org": f"o-{t}"}}}), 202)
    err = error(http.post("/events", json={"type": f"x{t}", "userId": "u",
                                           "properties": {"$groups": "acme"}}))
    assert err["details"][0]["field"] == "properties.$groups"
    err = error(http.post("/events", json={"type": f"x{t}", "userId": "u", "properties": {
        "$groups": {"company": {"nested": "no"}}}}))
    assert err["details"][0]["field"] == "properties.$groups.company.nested"
    err = error(http.post("/events", json={"type": f"x{t}", "userId": "u", "properties": {
        "$groups": {"company": True}}}))
    assert err["details"][0]["field"] == "properties.$groups.company"
    err = error(http.post("/events/batch", json=[
        {"type": "$groupidentify", "userId": "u", "properties": {
            "$group_type": "company", "$group_key": f"fine-{t}", "$group_set": {"a": 1}}},
        {"type": "$groupidentify", "userId": "u", "properties": {
            "$group_type": "company", "$group_key": f"bad-{t}", "$group_set": "plan"}}]))
    assert err["code"] == "invalid_batch"
    assert err["details"][0]["field"] == "properties.$group_set"
    assert err["details"][0]["index"] == 1
    assert http.get(f"/groups/company/fine-{t}").status_code == 404  # nothing applied
    err = error(http.post("/events", json={"type": "$groupidentify", "userId": "u",
                                           "properties": {"$group_key": "k"}}))
    assert err["details"][0]["field"] == "properties.$group_type"
    # the sixth group type is refused, and the batch with it stored nothing
    known = [g["type"] for g in ok(http.get("/groups"))["types"]]
    fill = [f"t{i}{t}" for i in range(5 - len(known))]
    batch = [{"type": f"x{t}", "userId": "u", "properties": {"$groups": {g: "k"}}}
             for g in [*fill, f"sixth{t}"]]
    err = error(http.post("/events/batch", json=batch))
    assert err["details"][0]["code"] == "too_many_group_types"
    assert err["details"][0]["field"] == f"properties.$groups.sixth{t}"
    assert [g["type"] for g in ok(http.get("/groups"))["types"]] == known
    assert ok(http.get("/analytics/count", params={"type": f"x{t}"}))["count"] == 1
    # queries: an unknown type, a malformed unit
    err = error(http.get("/analytics/unique-users", params={"unit": "group:nope"}))
    assert err["details"][0]["field"] == "unit"
    err = error(http.get("/analytics/unique-users", params={"unit": "companies"}))
    assert err["details"][0]["field"] == "unit"
    err = error(http.post("/queries/funnel", json={"steps": ["a", "b"],
                                                   "countBy": "group:a.b"}))
    assert err["details"][0]["field"] == "countBy"
    err = error(http.post("/analytics/aggregate", json={"aggregation": "count",
                                                        "unit": "group:company"}))
    assert err["details"][0]["field"] == "unit"
    assert http.get("/groups/nope").status_code == 404
    assert http.get("/groups/company/never-sent").status_code == 404
    assert error(http.get("/groups/company", params={"limit": "0"}))["details"][0][
        "field"] == "limit"
    assert error(http.get("/groups/company", params={"cursor": "%%%"}))["details"][0][
        "field"] == "cursor"


def test_paging_and_restart_keep_types_and_properties(server: ServeProcess,
                                                     http: httpx.Client) -> None:
    t = tag()
    keys = [f"page-{t}-{i:02d}" for i in range(7)]
    events = [{"type": "$groupidentify", "userId": "u", "properties": {
        "$group_type": "org", "$group_key": k, "$groups": {"org": k},
        "$group_set": {"n": i, "ratio": i / 2, "on": i % 2 == 0, "label": f"L{i}"}}}
        for i, k in enumerate(keys)]
    ok(http.post("/events/batch", json=events), 202)
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"search": f"page-{t}", "limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = ok(http.get("/groups/org", params=params))
        assert page["total"] == 7
        seen += [g["key"] for g in page["groups"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == keys
    before = ok(http.get(f"/groups/org/{keys[3]}"))
    assert before["properties"] == {"label": "L3", "n": 3, "on": False, "ratio": 1.5}
    types = ok(http.get("/groups"))["types"]
    server.stop()
    open(server.log_path, "w").close()  # (start() reads the URL the new process logs)
    server.start()
    with httpx.Client(base_url=server.url, timeout=30) as again:
        assert ok(again.get(f"/groups/org/{keys[3]}")) == before
        assert ok(again.get("/groups"))["types"] == types


def test_cli_counts_and_shows_groups(server: ServeProcess, http: httpx.Client,
                                     tmp_path: Any) -> None:
    import json

    from typer.testing import CliRunner

    from rta.cli.main import app

    t = tag()
    events = [{"type": f"go{t}", "userId": u, "properties": {"$groups": {"company": k}}}
              for u, k in (("a", f"k1-{t}"), ("b", f"k1-{t}"), ("c", f"k2-{t}"))]
    events.append({"type": f"done{t}", "userId": "b", "properties": {
        "$groups": {"company": f"k1-{t}"}}})
    ok(http.post("/events/batch", json=events), 202)
    env = {"RTA_CONFIG": str(tmp_path / "none.toml"), "NO_COLOR": "1", "COLUMNS": "120"}

    def run(*args: str) -> Any:
        r = CliRunner().invoke(app, [*args, "--server", server.url, "--json"], env=env)
        assert r.exit_code == 0, r.stdout + r.stderr
        return json.loads(r.stdout)

    assert run("query", "unique", "--type", f"go{t}", "--unit",
               "group:company")["uniqueUsers"] == 2
    funnel = run("query", "funnel", "--step", f"go{t}", "--step", f"done{t}", "--count-by",
                 "group:company")
    assert [s["count"] for s in funnel["steps"]] == [2, 1]
    assert run("groups", "show", "company", f"k1-{t}")["eventCount"] == 3
    assert [g["key"] for g in run("groups", "list", "company", "--search",
                                  t)["groups"]] == [f"k1-{t}", f"k2-{t}"]
    bad = CliRunner().invoke(app, ["query", "unique", "--unit", "teams", "--server",
                                   server.url], env=env)
    assert bad.exit_code == 2
