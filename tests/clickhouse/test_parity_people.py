"""Parity of person-aware queries: the same logs with identity links (PostHog, Segment and
forced merges, some refused) through both backends. The embedded engine folds the links and
remaps its user codes; ClickHouse reads `person_links` (shipped as the daemon ships them)
through its events source. Unique users, top by users, funnels, retention, A/B tests,
segments and event pages (`personId`) must agree, and `identity=raw` must too."""

from __future__ import annotations

import io
import os
import random
from pathlib import Path
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rta.core.export import Export, parse_export
from rta.core.export_clickhouse import ClickHouseExport
from rta.core.identity import RAW, identity_mode
from rta.core.person_shipper import ship_all
from rta.core.queries import analytics, event_list
from rta.core.queries.analytics_specs import parse as parse_analytics
from rta.core.queries.event_list import parse_event_list
from rta.core.queries.timeparse import now_ms
from tests.clickhouse.event_logs import NOW, USERS
from tests.clickhouse.harness import Pair, same
from tests.clickhouse.test_parity_analytics import top_params, unique_params
from tests.clickhouse.test_parity_behaviour import (
    DENSE_USERS,
    LOGS,
    _answer,
    _clickhouse_context,
    abtest_bodies,
    cohort_bodies,
    segment_bodies,
)
from tests.clickhouse.test_parity_export import _rendered
from tests.clickhouse.test_parity_funnel import funnel_body
from tests.support import ServeProcess

SETTINGS = settings(max_examples=int(os.environ.get("RTA_PARITY_EXAMPLES", "5")),
                    deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
LINK_KINDS = (("$identify", "$anon_distinct_id"), ("$create_alias", "alias"),
              ("$merge_dangerously", "alias"), ("$alias", "previousId"),
              ("$identify", "anonymousId"))
IDS = (*DENSE_USERS, *USERS[7:10])
AGGREGATES = ({"interval": "1d"}, {"interval": "1d", "aggregation": "unique_users"},
              {"interval": "1d", "groupBy": "userId"},
              {"interval": "1d", "aggregation": "unique_users", "groupBy": "type"})


@st.composite
def linked_logs(draw: st.DrawFn) -> list[list[dict[str, Any]]]:
    """A behaviour log with link events spread among its batches."""
    log = [list(batch) for batch in draw(LOGS)]
    rnd = random.Random(draw(st.integers(0, 2**32)))
    for _ in range(rnd.randint(1, 8)):
        kind, prop = rnd.choice(LINK_KINDS)
        batch = rnd.choice(log)
        batch.insert(rnd.randint(0, len(batch)), {
            "type": kind, "userId": rnd.choice(IDS),
            "timestamp": NOW - rnd.randint(1, 9) * 3600_000, "properties": {prop: rnd.choice(IDS)}})
    return log


def _pair(log: list[list[dict[str, Any]]]) -> Pair:
    pair = Pair.create()
    for batch in log:
        pair.ingest(batch, NOW)
    ship_all(pair.ch, pair.engine.persons)  # (what the daemon's PersonShipper sends)
    return pair


def _both(pair: Pair, raw: bool, fn: Any) -> None:
    token = identity_mode.set(RAW) if raw else None
    try:
        fn()
    finally:
        if token is not None:
            identity_mode.reset(token)


def _analytics(pair: Pair, kind: str, params: dict[str, Any]) -> None:
    embedded, _ = pair.contexts(NOW)
    clickhouse = _clickhouse_context(pair, NOW)

    def run(ctx: Any) -> Any:
        try:
            return analytics.execute(parse_analytics(kind, params, NOW), ctx).to_json()
        except Exception as exc:
            return {"error": type(exc).__name__, "message": str(exc)}
    same(run(embedded), run(clickhouse), f"{kind} {params}")


def _behaviour(pair: Pair, kind: str, body: dict[str, Any]) -> None:
    embedded, _ = pair.contexts(NOW)
    same(_answer(kind, body, embedded), _answer(kind, body, _clickhouse_context(pair, NOW)),
         f"{kind} {body}")


def _events(pair: Pair, args: list[tuple[str, str]]) -> None:
    embedded, _ = pair.contexts(NOW)
    clickhouse = _clickhouse_context(pair, NOW)
    query = parse_event_list(args, NOW)
    same(event_list.execute(query, embedded).to_json(),
         event_list.execute(query, clickhouse).to_json(), f"events {args}")


@SETTINGS
@given(log=linked_logs(), uniques=st.lists(unique_params(), min_size=1, max_size=2),
       tops=st.lists(top_params(), min_size=1, max_size=2),
       funnels=st.lists(funnel_body(("signup", "purchase", "pageview",
                                     "experiment_assigned"), True), min_size=1, max_size=2),
       raw=st.booleans())
def test_people_analytics_funnels_and_events_match(
        log: list[list[dict[str, Any]]], uniques: list[dict[str, Any]],
        tops: list[dict[str, Any]], funnels: list[dict[str, Any]], raw: bool) -> None:
    pair = _pair(log)
    try:
        def check() -> None:
            for params in uniques:  # (exact: HyperLogLog estimates differ by design)
                params = {k: v for k, v in params.items()
                          if k not in ("approximate", "precision")}
                _analytics(pair, "unique-users", params)
            for params in tops:
                _analytics(pair, "top", params)
            # statements that never read the person skip the person join; those that do
            # keep it (unique users, a userId breakdown): both with links present
            for params in AGGREGATES:
                _analytics(pair, "aggregate", params)
            _analytics(pair, "count", {"groupBy": "type"})
            for body in funnels:
                _behaviour(pair, "funnel", body)
            _events(pair, [("limit", "500")])
            _events(pair, [("limit", "500"), ("userId", IDS[0])])
        _both(pair, raw, check)
    finally:
        pair.close()


@SETTINGS
@given(log=linked_logs(), cohorts=st.lists(cohort_bodies(), min_size=1, max_size=2),
       tests=st.lists(abtest_bodies(), min_size=1, max_size=2),
       segments_=st.lists(segment_bodies(), min_size=1, max_size=2))
def test_people_retention_abtests_and_segments_match(
        log: list[list[dict[str, Any]]], cohorts: list[dict[str, Any]],
        tests: list[dict[str, Any]], segments_: list[dict[str, Any]]) -> None:
    pair = _pair(log)
    try:
        for body in cohorts:
            body.pop("segment", None)
            _behaviour(pair, "cohort", body)
        for body in tests:
            body.pop("segment", None)
            _behaviour(pair, "abtest", body)
        for body in segments_:
            _behaviour(pair, "segment", body)
    finally:
        pair.close()


def test_a_login_funnel_counts_one_person_on_both() -> None:
    pair = Pair.create()
    try:
        t = NOW - 3600_000
        pair.ingest([{"type": "land", "userId": "anon", "timestamp": t},
                     {"type": "$identify", "userId": "u", "timestamp": t + 1,
                      "properties": {"$anon_distinct_id": "anon"}},
                     {"type": "buy", "userId": "u", "timestamp": t + 2}], NOW)
        ship_all(pair.ch, pair.engine.persons)
        body = {"steps": [{"eventType": "land"}, {"eventType": "buy"}], "startTime": t - 1}
        for ctx in (pair.contexts(NOW)[0], _clickhouse_context(pair, NOW)):
            assert _answer("funnel", body, ctx)["totalCompleted"] == 1
    finally:
        pair.close()


def test_a_clickhouse_daemon_ships_links_and_answers_by_person(tmp_path: Path) -> None:
    """`rta serve --backend clickhouse`: links reach ClickHouse with read-your-writes (no
    waiting in the test), across a SIGKILL and restart (the mapping is re-sent at start)."""
    data = tmp_path / "data"
    args = ("--backend", "clickhouse", "--clickhouse-url", f"chdb://{tmp_path / 'ch'}")
    t = now_ms() - 3600_000
    steps = {"steps": [{"eventType": "land"}, {"eventType": "buy"}], "timeRange": "last_30d"}
    for round_no in range(2):
        proc = ServeProcess(str(data), *args)
        url = proc.start()
        with httpx.Client(base_url=url, timeout=60) as http:
            if round_no == 0:
                assert http.post("/events/batch", json=[
                    {"type": "land", "userId": "anon", "timestamp": t},
                    {"type": "buy", "userId": "u", "timestamp": t + 2}]).status_code == 202
                assert http.post("/queries/funnel", json=steps).json()["totalCompleted"] == 0
                assert http.post("/events", json={
                    "type": "$identify", "userId": "u", "timestamp": t + 1,
                    "properties": {"$anon_distinct_id": "anon"}}).status_code == 202
            got = http.post("/queries/funnel", json=steps).json()
            assert got["totalCompleted"] == 1, got
            raw = http.post("/queries/funnel?identity=raw", json=steps).json()
            assert raw["totalCompleted"] == 0
            events = http.get("/events", params={"userId": "anon"}).json()["events"]
            assert [(e["userId"], e.get("personId")) for e in events] == [("anon", "u")]
        proc.kill()


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                HealthCheck.data_too_large])
@given(log=linked_logs(), fmt=st.sampled_from(("csv", "json", "ndjson", "parquet", "xlsx")),
       raw=st.booleans())
def test_people_exports_match(log: list[list[dict[str, Any]]], fmt: str, raw: bool) -> None:
    """`personId` (a field exports give when `fields` names it) and userId as sent."""
    pair = _pair(log)
    try:
        def check() -> None:
            spec = parse_export({"format": fmt, "fields": ["id", "userId", "personId", "type"],
                                 "filter": {"userId": list(IDS[:4])}}, NOW)
            ours = Export(pair.engine.snapshot(), spec, now=0)
            theirs = ClickHouseExport(pair.ch, spec, now=0)
            assert theirs.rows == ours.rows and theirs.columns == ours.columns
            a, b = io.BytesIO(), io.BytesIO()
            ours.write_to(a)
            theirs.write_to(b)
            assert _rendered(fmt, b.getvalue()) == _rendered(fmt, a.getvalue())
        _both(pair, raw, check)
    finally:
        pair.close()
