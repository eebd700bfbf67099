"""DELETE /persons/{id} end to end on a real `rta serve`: the receipt, the answers after it
(compared with the log without the person), /health answering while it runs, bad input,
and no byte of the person in any file of the data directory once the daemon has stopped."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx

from rta.server.security import required_scope
from tests.erasure_support import T0, find_bytes, victim_events
from tests.support import ServeProcess

RANGE = {"startTime": str(T0 - 1), "endTime": str(T0 + 86_400_000)}


def unique(http: httpx.Client, event_type: str, **params: str) -> int:
    r = http.get("/analytics/unique-users", params={"type": event_type, **RANGE, **params})
    assert r.status_code == 200, r.text
    n: int = r.json()["uniqueUsers"]
    return n


def count(http: httpx.Client, event_type: str) -> int:
    r = http.get("/analytics/count", params={"type": event_type, **RANGE})
    assert r.status_code == 200, r.text
    n: int = r.json()["count"]
    return n


def answers(http: httpx.Client) -> dict[str, Any]:
    return {t: (count(http, t), unique(http, t), unique(http, t, identity="raw"))
            for t in ("page", "signup", "purchase")}


def test_erasure_over_http(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    events, needles = victim_events("http")
    victim = {"anon-http-victim", "login-http-victim"}
    kept = [e for e in events if e["userId"] not in victim]
    proc = ServeProcess(data, "--max-events", "60")
    url = proc.start()
    try:
        with httpx.Client(base_url=url, timeout=60) as http:
            r = http.post("/events/batch", json=events)
            assert r.status_code == 202, r.text
            assert http.get("/persons/anon-http-victim").json()["personId"] == \
                "login-http-victim"
            # person properties: one only the victim has (sent through the API, in no
            # event), one another person has too (it must stay theirs)
            for who, props in (("login-http-victim", {"note": "posted-http-victim",
                                                      "team": "shared-team"}),
                               ("other-http-0", {"team": "shared-team"})):
                r = http.post(f"/persons/{who}/properties", json={"$set": props})
                assert r.status_code == 200, r.text
            needles = [*needles, "posted-http-victim"]
            healthy: list[int] = []
            stop, polling = threading.Event(), threading.Event()

            def poll() -> None:
                with httpx.Client(base_url=url, timeout=30) as h:
                    while not stop.is_set():
                        healthy.append(h.get("/health").status_code)
                        polling.set()

            poller = threading.Thread(target=poll)
            poller.start()
            assert polling.wait(30)  # (one answer before the erasure: a quick one may win)
            try:
                r = http.delete("/persons/login-http-victim")
            finally:
                stop.set()
                poller.join()
            assert r.status_code == 200, r.text
            receipt = r.json()
            assert receipt["eventsRemoved"] == len(events) - len(kept)
            assert receipt["distinctIdsErased"] == 2 and receipt["segmentsRewritten"] >= 1
            assert set(receipt) >= {"personId", "distinctIds", "tookMs", "erasedAt"}
            assert healthy and set(healthy) == {200}
            # the answers are those of the log without the person
            want = {t: (sum(e["type"] == t for e in kept),
                        len({e["userId"] for e in kept if e["type"] == t}),
                        len({e["userId"] for e in kept if e["type"] == t}))
                    for t in ("page", "signup", "purchase")}
            assert answers(http) == want
            for x in victim:
                r = http.get(f"/persons/{x}")
                assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
                r = http.get("/events", params={"userId": x, **RANGE})
                assert r.status_code == 200 and r.json()["events"] == []
            r = http.delete("/persons/login-http-victim")  # (again: unknown now)
            assert r.status_code == 404, r.text
            assert set(r.json()["error"]) == {"code", "message", "details"}
            r = http.delete("/persons/" + "x" * 300)
            assert r.status_code == 400 and r.json()["error"]["details"][0]["field"] == "id"
            other = http.get("/persons/other-http-0").json()
            assert other["properties"].get("team") == "shared-team"
            r = http.get("/analytics/count", params={
                **RANGE, "where": '[{"property": "person.team", "operator": "eq", '
                                  '"value": "shared-team"}]'})
            assert r.status_code == 200, r.text
            assert r.json()["count"] == sum(e["userId"] == "other-http-0" for e in kept)
            listed = http.get("/persons", params={"limit": "1000"}).json()
            assert not any(n in str(listed) for n in needles)
            page = http.get("/events", params={"limit": "1000", **RANGE}).json()["events"]
            assert len(page) == len(kept)
            assert not any(n in str(page) for n in needles)
    finally:
        proc.stop()
    # (stopped: the head sealed, the WAL closed; the restart is tests/core/test_erasure.py's)
    assert find_bytes(data, needles) == []


def test_erasure_needs_the_admin_scope() -> None:
    assert required_scope("DELETE", "/persons/someone") == "admin"
