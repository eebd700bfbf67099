"""/queries/* and /segments over a real server."""

from __future__ import annotations

import time

import httpx

from tests.support import LiveServer


async def _seed(http: httpx.AsyncClient) -> int:
    now = int(time.time() * 1000)
    t = now - 60_000
    events = []
    for i in range(20):
        u = f"user_{i}"
        events.append({"type": "pageview", "userId": u, "timestamp": t,
                       "properties": {"page": "/", "plan": "premium" if i < 8 else "free"}})
        if i < 10:
            events.append({"type": "click", "userId": u, "timestamp": t + 1000,
                           "properties": {"category": "products"}})
        if i < 4:
            events.append({"type": "form_submit", "userId": u, "timestamp": t + 2000})
        events.append({"type": "experiment_assigned", "userId": u, "timestamp": t,
                       "properties": {"variant": "control" if i % 2 else "variant_a"}})
    r = await http.post("/events/batch", json=events)
    assert r.status_code in (200, 202), r.text
    return t


async def test_funnel_cohort_abtest(http: httpx.AsyncClient) -> None:
    t = await _seed(http)
    r = await http.post("/queries/funnel", json={
        "steps": [{"name": "Landing", "eventType": "pageview"},
                  {"name": "Product View", "eventType": "click",
                   "filters": {"category": "products"}},
                  {"name": "Checkout", "eventType": "form_submit"}],
        "startTime": t - 1, "endTime": t + 10_000, "timeLimit": 3600000})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [s["count"] for s in body["steps"]] == [20, 10, 4]
    assert body["steps"][1]["conversionRate"] == 50 and body["overallConversionRate"] == 20
    r = await http.post("/queries/cohort", json={"name": "User Retention",
                                                 "entryEvent": "pageview",
                                                 "retentionEvent": "click", "periods": 7,
                                                 "periodLength": 86400000})
    assert r.status_code == 200, r.text
    assert r.json()["average"]["counts"][0] == 10
    r = await http.post("/queries/abtest", json={
        "name": "Button Color Test", "eventType": "experiment_assigned",
        "variantProperty": "variant", "metricEvent": "form_submit", "minimumSampleSize": 100})
    assert r.status_code == 200, r.text
    ab = r.json()
    assert ab["verdict"] == "insufficient_sample"
    assert sum(v["exposures"] for v in ab["variants"]) == 20


async def test_segments_crud_and_filters(http: httpx.AsyncClient, server: LiveServer) -> None:
    await _seed(http)
    seg = {"name": "Premium Users", "type": "segment",
           "config": {"name": "Premium Users",
                      "filters": [{"property": "plan", "operator": "eq", "value": "premium"}],
                      "operator": "AND"}}
    r = await http.post("/queries/execute", json=seg)
    assert r.status_code == 200, r.text
    assert r.json()["userCount"] == 8 and len(r.json()["sampleUsers"]) == 8
    r = await http.post("/segments", json=seg)
    assert r.status_code == 201, r.text
    seg_id = r.json()["id"]
    assert (await http.post("/segments", json=seg)).status_code == 409
    r = await http.get("/segments")
    assert [s["name"] for s in r.json()["segments"]] == ["Premium Users"]
    r = await http.get(f"/segments/{seg_id}")
    assert r.json()["userCount"] == 8
    assert server.engine.services.segment_resolver("Premium Users").size == 8
    r = await http.post("/queries/funnel", json={"steps": ["pageview", "click"],
                                                 "segment": "Premium Users"})
    assert [s["count"] for s in r.json()["steps"]] == [8, 8]
    r = await http.post("/queries/execute", json={"type": "funnel", "config": {
        "steps": ["pageview", "form_submit"], "segment": "Premium Users"}})
    assert r.status_code == 200 and r.json()["totalCompleted"] == 4
    r = await http.delete("/segments/Premium Users")
    assert r.status_code == 200 and r.json()["deleted"] == seg_id
    assert (await http.get(f"/segments/{seg_id}")).status_code == 404
    assert (await http.delete(f"/segments/{seg_id}")).status_code == 404


async def test_bad_input_is_a_400_naming_the_field(http: httpx.AsyncClient) -> None:
    cases = [
        ("/queries/funnel", {"steps": [{"eventType": "a"}]}, "steps"),
        ("/queries/funnel", {"steps": ["a", "b"], "order": "zigzag"}, "order"),
        ("/queries/funnel", {"steps": ["a", "b"], "timeLimit": 0}, "timeLimit"),
        ("/queries/funnel", {"steps": ["a", "b"], "segment": "Nope"}, "segment"),
        ("/queries/abtest", {"metricEvent": "c"}, "variantProperty"),
        ("/queries/cohort", {"entryEvent": "a", "periods": -1}, "periods"),
        ("/queries/execute", {"type": "nope", "config": {}}, "type"),
        ("/queries/execute", {"type": "segment"}, "config"),
        ("/segments", {"filters": []}, "name"),
        # times past year 9999 and durations past 100 years: 400s, not overflows
        ("/queries/funnel", {"steps": ["a", "b"], "startTime": 253402300800000}, "startTime"),
        ("/queries/funnel", {"steps": ["a", "b"], "timeLimit": 1e20}, "timeLimit"),
        ("/queries/funnel", {"steps": ["a", "b"], "timeLimit": 2**63}, "timeLimit"),
        ("/queries/cohort", {"entryEvent": "a", "periodLength": 10**13}, "periodLength"),
        ("/queries/cohort", {"entryEvent": "a", "endTime": 1e20}, "endTime"),
    ]
    for path, body, field in cases:
        r = await http.post(path, json=body)
        assert r.status_code == 400, (path, body, r.text)
        assert r.json()["error"]["details"][0]["field"] == field, (path, r.json())
    r = await http.post("/queries/funnel", content=b"[1,2]")
    assert r.status_code == 400


async def test_abtest_control_must_be_a_variant_seen(http: httpx.AsyncClient) -> None:
    """A mistyped control would compare every variant against nothing: 400 naming the
    variants; a control given as text for numeric variant values still matches."""
    await _seed(http)
    body = {"eventType": "experiment_assigned", "variantProperty": "variant",
            "metricEvent": "form_submit"}
    r = await http.post("/queries/abtest", json={**body, "control": "nope"})
    assert r.status_code == 400, r.text
    detail = r.json()["error"]["details"][0]
    assert detail["field"] == "control" and detail["allowed"] == ["control", "variant_a"]
    r = await http.post("/queries/abtest", json={**body, "metricProperty": "page"})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["details"][0]["field"] == "metricProperty"
    now = int(time.time() * 1000)
    numeric = [{"type": "assigned", "userId": f"n{i}", "timestamp": now - 1000,
                "properties": {"arm": i % 2}} for i in range(10)]
    assert (await http.post("/events/batch", json=numeric)).status_code == 202
    r = await http.post("/queries/abtest", json={
        "eventType": "assigned", "variantProperty": "arm", "metricEvent": "form_submit",
        "control": "0"})
    assert r.status_code == 200, r.text
    assert [v["name"] for v in r.json()["variants"] if v["isControl"]] == [0]
