"""Erasure parity (#18 part 5): one linked log in both backends, one person erased from
each (the embedded store by `Erasure`, ClickHouse by `erasure_sql.erase`), then both must
answer alike: unique users, top, funnels, event pages; and `rta serve --backend
clickhouse` erases from ClickHouse through DELETE /persons/{id}."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import httpx
from hypothesis import given
from hypothesis import strategies as st

from rta.core.clickhouse.erasure_sql import count_events, erase
from rta.core.person_shipper import ship_all
from rta.core.queries.timeparse import now_ms
from tests.clickhouse.test_parity_analytics import top_params, unique_params
from tests.clickhouse.test_parity_funnel import funnel_body
from tests.clickhouse.test_parity_people import (
    IDS,
    SETTINGS,
    _analytics,
    _behaviour,
    _events,
    _pair,
    linked_logs,
)
from tests.support import ServeProcess


@SETTINGS
@given(log=linked_logs(), seed=st.integers(0, 2**32),
       uniques=st.lists(unique_params(), min_size=1, max_size=2),
       tops=st.lists(top_params(), min_size=1, max_size=1),
       funnels=st.lists(funnel_body(("signup", "purchase", "pageview"), True), min_size=1,
                        max_size=2))
def test_both_backends_answer_alike_after_an_erasure(
        log: list[list[dict[str, Any]]], seed: int, uniques: list[dict[str, Any]],
        tops: list[dict[str, Any]], funnels: list[dict[str, Any]]) -> None:
    pair = _pair(log)
    try:
        users = [x for x in IDS if pair.engine.store.dicts.users.lookup(x) >= 0]
        victim = random.Random(seed).choice(users)
        receipt = pair.engine.erasure.erase_sync(victim)
        ids = receipt["distinctIds"]
        assert count_events(pair.ch, ids) == receipt["eventsRemoved"]
        assert erase(pair.ch, ids) == receipt["eventsRemoved"]
        assert count_events(pair.ch, ids) == 0
        ship_all(pair.ch, pair.engine.persons)  # (what the daemon re-sends at start)
        for params in uniques:
            params = {k: v for k, v in params.items() if k not in ("approximate", "precision")}
            _analytics(pair, "unique-users", params)
        for params in tops:
            _analytics(pair, "top", params)
        for body in funnels:
            _behaviour(pair, "funnel", body)
        _events(pair, [("limit", "500")])
        _events(pair, [("limit", "500"), ("userId", victim)])
    finally:
        pair.close()


def test_a_clickhouse_daemon_erases_there_too(tmp_path: Path) -> None:
    data = tmp_path / "data"
    args = ("--backend", "clickhouse", "--clickhouse-url", f"chdb://{tmp_path / 'ch'}")
    t = now_ms() - 3600_000
    proc = ServeProcess(str(data), *args)
    url = proc.start()
    try:
        with httpx.Client(base_url=url, timeout=60) as http:
            events = [{"type": "land", "userId": u, "timestamp": t + i}
                      for i, u in enumerate(["anon", "v", "keep", "keep2", "v"])]
            events.append({"type": "$identify", "userId": "v", "timestamp": t + 9,
                           "properties": {"$anon_distinct_id": "anon"}})
            assert http.post("/events/batch", json=events).status_code == 202
            params = {"type": "land", "timeRange": "last_24h"}
            assert http.get("/analytics/unique-users", params=params).json()["uniqueUsers"] == 3
            r = http.delete("/persons/anon")
            assert r.status_code == 200, r.text
            assert r.json()["clickhouseEventsRemoved"] == 4
            assert r.json()["eventsRemoved"] == 4
            assert http.get("/analytics/unique-users", params=params).json()["uniqueUsers"] == 2
            assert http.get("/analytics/count", params=params).json()["count"] == 2
            assert http.get("/events", params={"userId": "v"}).json()["events"] == []
    finally:
        proc.stop()
