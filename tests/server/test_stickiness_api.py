"""POST /queries/stickiness, /queries/lifecycle and /queries/execute with those types, over
one real server: answers, warnings, and 400s that name the field."""

from __future__ import annotations

import httpx

DAY = 86_400_000
T0 = 1_717_200_000_000  # 2024-06-01T00:00Z, a Saturday


async def test_stickiness_and_lifecycle_over_http(http: httpx.AsyncClient) -> None:
    events = []
    for u, days in {"a": [0, 1, 2], "b": [0, 2], "c": [1], "d": [3, 4], "e": [-3, 2]}.items():
        for d in days:
            events.append({"type": "login", "userId": u, "timestamp": T0 + d * DAY + 5,
                           "properties": {"plan": "pro" if u in "ab" else "free"}})
    r = await http.post("/events/batch", json=events)
    assert r.status_code == 202, r.text
    rng = {"startTime": T0, "endTime": T0 + 5 * DAY - 1}

    r = await http.post("/queries/stickiness", json={"eventType": "login", **rng})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["periods"] == 5 and body["totalUsers"] == 5
    assert [s["users"] for s in body["stickiness"]] == [2, 2, 1, 0, 0]
    assert [s["cumulativeUsers"] for s in body["stickiness"]] == [5, 3, 1, 0, 0]
    assert body["stickiness"][0]["percentage"] == 40.0

    r = await http.post("/queries/stickiness", json={
        "eventType": "login", "interval": "week", "filters": {"plan": "pro"}, **rng})
    assert r.status_code == 200, r.text
    week = r.json()  # Sat 1st and Sun 2nd are one week, Mon 3rd to Wed 5th the next
    assert week["periods"] == 2 and [s["users"] for s in week["stickiness"]] == [0, 2]

    r = await http.post("/queries/lifecycle", json={"eventType": "login", **rng})
    assert r.status_code == 200, r.text
    life = r.json()
    assert [(p["new"], p["returning"], p["resurrecting"], p["dormant"])
            for p in life["periods"]] == [(2, 0, 0, 0), (1, 1, 0, -1), (0, 1, 2, -1),
                                          (1, 0, 0, -3), (0, 1, 0, 0)]
    assert life["totals"] == {"new": 4, "returning": 3, "resurrecting": 2, "dormant": -5}
    assert life["periods"][0]["date"] == "2024-06-01T00:00:00.000Z"

    r = await http.post("/queries/execute", json={
        "type": "lifecycle", "name": "logins", "config": {"eventType": "login", **rng}})
    assert r.status_code == 200, r.text
    assert r.json()["type"] == "lifecycle" and r.json()["periods"] == life["periods"]
    r = await http.post("/queries/execute", json={
        "type": "stickiness", "config": {"eventType": "login", **rng}})
    assert r.status_code == 200 and r.json()["stickiness"] == body["stickiness"]

    r = await http.post("/segments", json={"name": "Pro", "filters": [
        {"property": "plan", "operator": "eq", "value": "pro"}]})
    assert r.status_code == 201, r.text
    r = await http.post("/queries/lifecycle", json={"eventType": "login", "segment": "Pro",
                                                    **rng})
    assert r.status_code == 200, r.text
    assert r.json()["totals"] == {"new": 2, "returning": 2, "resurrecting": 1, "dormant": -3}

    r = await http.post("/queries/stickiness", json={"eventType": "logn", **rng})
    assert r.status_code == 200
    assert any(w["field"] == "eventType" for w in r.json()["warnings"])

    for path, payload, field in (
            ("/queries/stickiness", {}, "eventType"),
            ("/queries/stickiness", {"eventType": "login", "interval": "month"}, "interval"),
            ("/queries/lifecycle", {"eventType": "login", "interval": "hour"}, "interval"),
            ("/queries/lifecycle", {"eventType": "login", "startTime": 0}, "startTime"),
            ("/queries/stickiness", {"eventType": "login", "segment": "Nope"}, "segment"),
            ("/queries/lifecycle", {"eventType": "login", "filters": [{"property": "x",
                                                                        "operator": "zz"}]},
             "filters[0].operator"),
            ("/queries/execute", {"type": "stickiness", "config": {"eventType": 3}},
             "config.eventType")):
        r = await http.post(path, json=payload)
        assert r.status_code == 400, (path, payload, r.text)
        assert r.json()["error"]["details"][0]["field"] == field, r.json()
