"""POST /queries/paths and /queries/execute type paths over a real server: the answer's
shape, pages, 400s naming the field, and warnings for unknown start points."""

from __future__ import annotations

import time

import httpx


async def test_paths_over_http(http: httpx.AsyncClient) -> None:
    t = int(time.time() * 1000) - 600_000
    events = []
    for i in range(6):
        u = f"user_{i}"
        seq = ["pageview", "signup", "purchase"] if i < 4 else ["pageview", "pageview", "click"]
        for j, etype in enumerate(seq):
            events.append({"type": etype, "userId": u, "timestamp": t + j * 1000,
                           "properties": {"page": f"/p{j}"} if etype == "pageview" else {}})
    events.append({"type": "$pageview", "userId": "ph", "timestamp": t,
                   "properties": {"$pathname": "/p0"}})
    r = await http.post("/events/batch", json=events)
    assert r.status_code in (200, 202), r.text

    r = await http.post("/queries/paths", json={"startPoint": "pageview", "steps": 3,
                                                 "startTime": t - 1})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["totalPaths"] == 6 and body["direction"] == "forward"
    nodes = {n["id"]: n for n in body["nodes"]}
    assert nodes["1_pageview"]["users"] == 6
    assert nodes["2_signup"] == {"id": "2_signup", "step": 2, "name": "signup", "users": 4,
                                 "dropoff": 0}
    assert nodes["3_purchase"]["dropoff"] == 4
    assert {"source": "1_pageview", "target": "2_pageview", "users": 2} in body["links"]

    r = await http.post("/queries/paths", json={"pathType": "pages", "collapseRepeats": True,
                                                 "startTime": t - 1})
    assert r.status_code == 200, r.text
    pages = r.json()
    assert pages["nodes"][0] == {"id": "1_/p0", "step": 1, "name": "/p0", "users": 7,
                                 "dropoff": 5}
    assert pages["links"] == [{"source": "1_/p0", "target": "2_/p1", "users": 2}]

    r = await http.post("/queries/execute", json={"type": "paths", "name": "to purchase",
                                                   "config": {"endPoint": "purchase"}})
    assert r.status_code == 200, r.text
    back = r.json()
    assert back["type"] == "paths" and back["direction"] == "backward"
    assert {"source": "2_signup", "target": "1_purchase", "users": 4} in back["links"]

    for payload, field in (({"steps": 0}, "steps"), ({"steps": 21}, "steps"),
                           ({"startPoint": "a", "endPoint": "b"}, "endPoint"),
                           ({"unit": "teams"}, "unit")):
        r = await http.post("/queries/paths", json=payload)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["details"][0]["field"] == field
    r = await http.post("/queries/execute", json={"type": "paths", "config": {"steps": 50}})
    assert r.status_code == 400
    assert r.json()["error"]["details"][0]["field"] == "config.steps"

    r = await http.post("/queries/paths", json={"startPoint": "signupp"})
    assert r.status_code == 200
    assert r.json()["totalPaths"] == 0
    assert r.json()["warnings"][0]["field"] == "startPoint"
