"""Funnel page steps over a real server (#19 item 1): pageviews sent through rta's API and
through PostHog's capture route both reach a `pageview` step on a page, and warnings speak
of the condition as the user wrote it."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx


def _ph(distinct: str, event: str, ts: int, **props: Any) -> dict[str, Any]:
    return {"event": event, "distinct_id": distinct, "uuid": str(uuid.uuid4()),
            "timestamp": datetime.fromtimestamp(ts / 1000, UTC).isoformat(), "properties": props}


async def test_page_steps_over_http(http: httpx.AsyncClient) -> None:
    t = int(time.time() * 1000) - 600_000
    rta = [{"type": "pageview", "userId": "r1", "timestamp": t, "properties": {"page": "/pricing"}},
           {"type": "signup", "userId": "r1", "timestamp": t + 1000},
           {"type": "pageview", "userId": "r2", "timestamp": t, "properties": {"page": "/docs"}},
           {"type": "signup", "userId": "r2", "timestamp": t + 1000}]
    r = await http.post("/events/batch", json=rta)
    assert r.status_code in (200, 202), r.text
    ph = [_ph("p1", "$pageview", t, **{"$pathname": "/pricing",
                                        "$current_url": "https://a.io/pricing?x=1"}),
          _ph("p1", "signup", t + 2000),
          _ph("p2", "$pageview", t, **{"$pathname": "/pricing"})]
    r = await http.post("/batch/", json={"api_key": "k", "batch": ph})
    assert r.status_code == 200, r.text

    for etype, key in (("pageview", "page"), ("$pageview", "$pathname")):
        body = {"steps": [{"eventType": etype, "filters": [
            {"property": key, "operator": "eq", "value": "/pricing"}]}, "signup"],
            "startTime": t - 1}
        r = await http.post("/queries/funnel", json=body)
        assert r.status_code == 200, r.text
        out = r.json()
        assert [s["count"] for s in out["steps"]] == [3, 2], (etype, out)
        assert out["steps"][0]["eventType"] == etype
        # the rewrite's aliases never surface in the warnings: only what was written
        text = json.dumps(out.get("warnings", []))
        for alias in ("context.page.path", '"path"'):
            assert alias not in text

    # a page step on a type or alias this data lacks is no mistake: it reads the others
    r = await http.post("/queries/funnel", json={"steps": [
        {"eventType": "page", "where": {"path": "/pricing"}}, "signup"], "startTime": t - 1})
    assert [s["count"] for s in r.json()["steps"]] == [3, 2]
    assert "warnings" not in r.json(), r.json()["warnings"]

    r = await http.post("/queries/funnel", json={"steps": ["pageview", "signup"],
                                                  "startTime": t - 1})
    assert [s["count"] for s in r.json()["steps"]] == [4, 3]
    # a misspelt property on a page step is warned about by the name the user gave
    r = await http.post("/queries/funnel", json={"steps": [
        {"eventType": "pageview", "where": {"pgae": "/pricing"}}, "signup"],
        "startTime": t - 1})
    assert r.status_code == 200, r.text
    warned = json.dumps(r.json().get("warnings", []))
    assert "pgae" in warned and "$pathname" not in warned


async def test_page_paths_over_http(http: httpx.AsyncClient) -> None:
    """Paths over pages name every SDK's pageviews by their page path (#19 item 2)."""
    t = int(time.time() * 1000) - 600_000
    r = await http.post("/events/batch", json=[
        {"type": "pageview", "userId": "r1", "timestamp": t, "properties": {"page": "/a"}},
        {"type": "pageview", "userId": "r1", "timestamp": t + 1000,
         "properties": {"url": "https://a.io/b?x=1"}},
        {"type": "page", "userId": "s1", "timestamp": t,
         "properties": {"context.page.path": "/a"}}])
    assert r.status_code in (200, 202), r.text
    r = await http.post("/batch/", json={"api_key": "k", "batch": [
        _ph("p1", "$pageview", t, **{"$pathname": "/a?utm_source=x"}),
        _ph("p1", "$pageview", t + 1000, **{"$current_url": "https://a.io/b"})]})
    assert r.status_code == 200, r.text
    r = await http.post("/queries/paths", json={"pathType": "pages", "startPoint": "/a",
                                                 "startTime": t - 1})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["totalPaths"] == 3
    assert {"source": "1_/a", "target": "2_/b", "users": 2} in out["links"]
