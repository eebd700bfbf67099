"""Parity of the analytics queries and GET /events paging between the embedded engine and
ClickHouse, on hypothesis-generated logs (tied timestamps, late arrivals, mixed kinds).

Exact answers must be equal (floats to 1e-9 relative); approximate unique users must be
within three of their stated standard errors (plus one, for rounding and register
collisions among few users) of the embedded estimate, since the two sketches hash different
things (dense user codes embedded, user ids in ClickHouse)."""

from __future__ import annotations

import json
import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rta.core.queries import analytics, event_list
from rta.core.queries.analytics_specs import parse
from rta.core.queries.backend import QueryContext
from rta.core.queries.buckets import AGGREGATIONS, METRIC_AGGREGATIONS
from rta.core.queries.event_list import parse_event_list
from tests.clickhouse.event_logs import DAY, NOW, PAGES, TYPES, USERS, Log, event_logs
from tests.clickhouse.harness import Pair, same
from tests.clickhouse.test_parity_basics import PREDICATES

# RTA_PARITY_EXAMPLES=500 searches harder (minutes) than the default CI run (seconds).
SETTINGS = settings(max_examples=int(os.environ.get("RTA_PARITY_EXAMPLES", "20")),
                    deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
GROUP_FIELDS = ("page", "type", "eventType", "userId", "sessionId", "mixed", "plan", "amount",
                "properties.variant", "absent")
# page is text only (a 400 on both sides), absent is nowhere (empty series)
METRICS = ("amount", "amount", "amount", "mixed", "mixed", "absent", "page")


def _common(draw: st.DrawFn, body: dict[str, Any]) -> None:
    # (rarely narrowed: most queries should see many events and groups)
    if draw(st.integers(0, 3)) == 0:
        body["timeRange"] = draw(st.sampled_from(("last_7d", "last_30d", "last_24h")))
    if draw(st.integers(0, 4)) == 0:
        body["eventType"] = draw(st.sampled_from(TYPES))
    if draw(st.integers(0, 4)) == 0:
        body["where"] = draw(st.lists(PREDICATES, min_size=1, max_size=2))


@st.composite
def aggregate_params(draw: st.DrawFn) -> dict[str, Any]:
    aggregation = draw(st.sampled_from(AGGREGATIONS))
    body: dict[str, Any] = {"aggregation": aggregation}
    metric = draw(st.sampled_from((*METRICS, None)))
    if metric is None and aggregation in METRIC_AGGREGATIONS:
        metric = "amount"
    if metric is not None:
        body["metric"] = metric
    interval = draw(st.sampled_from((None, "1h", "6h", "1d", "7d")))
    if interval is not None:
        body["interval"] = interval
    if draw(st.integers(0, 3)):
        body["groupBy"] = draw(st.sampled_from(GROUP_FIELDS))
        body["limit"] = draw(st.integers(1, 6))
    if draw(st.integers(0, 3)) == 0:
        body["tzOffset"] = draw(st.sampled_from((330, -300)))
    _common(draw, body)
    return body


@st.composite
def count_params(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = {"groupBy": draw(st.sampled_from(GROUP_FIELDS))}
    if draw(st.booleans()):
        body["limit"] = draw(st.integers(1, 6))
    _common(draw, body)
    return body


@st.composite
def top_params(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = {"property": draw(st.sampled_from(GROUP_FIELDS)),
                            "n": draw(st.integers(1, 6)),
                            "sort": draw(st.sampled_from(("count", "users")))}
    _common(draw, body)
    return body


@st.composite
def unique_params(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = {}
    interval = draw(st.sampled_from((None, "1h", "1d", "7d")))
    if interval is not None:
        body["interval"] = interval
    if draw(st.booleans()):
        body["approximate"] = "true"
        # (precision 18 only over few buckets: the embedded engine allocates 2^18 registers
        # per bucket, ~17 s for hourly buckets over 20 days)
        body["precision"] = draw(st.sampled_from((4, 10, 14, 18) if interval in (None, "7d")
                                                 else (4, 10, 14)))
    _common(draw, body)
    return body


def _loaded(log: Log) -> Pair:
    pair = Pair.create()
    for batch in log:
        pair.ingest(batch, NOW)
    return pair


def _answer(kind: str, params: dict[str, Any], ctx: QueryContext) -> Any:
    """The response JSON, or the error a query raised (type and message)."""
    try:
        return analytics.execute(parse(kind, params, NOW), ctx).to_json()
    except Exception as exc:  # a 400 must be the same 400 on both sides
        return {"error": type(exc).__name__, "message": str(exc)}


def _check(pair: Pair, kind: str, queries: list[dict[str, Any]]) -> None:
    embedded, clickhouse = pair.contexts(NOW)
    for params in queries:
        want = _answer(kind, params, embedded)
        got = _answer(kind, params, clickhouse)
        assert "error" not in want or "error" in got, f"{kind} {params}: {got}"
        if params.get("approximate"):
            _approximately(want, got, f"{kind} {params}")
        else:
            same(want, got, f"{kind} {params}")


def _approximately(want: dict[str, Any], got: dict[str, Any], path: str) -> None:
    """Estimates within 3 standard errors (+1), everything else equal."""
    rel = want["relativeStandardError"]

    def close(a: int, b: int, where: str) -> None:
        assert abs(a - b) <= 3 * rel * max(a, b) + 1, f"{path}{where}: {a} !~ {b}"

    close(want["uniqueUsers"], got["uniqueUsers"], ".uniqueUsers")
    assert abs(want["standardError"] - got["standardError"]) <= \
        rel * (3 * rel * max(want["uniqueUsers"], got["uniqueUsers"]) + 1) + 1e-3, path
    for i, (a, b) in enumerate(zip(want.get("buckets") or [], got.get("buckets") or [],
                                   strict=True)):
        assert a["timestamp"] == b["timestamp"], f"{path}.buckets[{i}]"
        close(a["value"], b["value"], f".buckets[{i}]")
    rest = {"uniqueUsers", "standardError", "buckets"}
    same({k: v for k, v in want.items() if k not in rest},
         {k: v for k, v in got.items() if k not in rest}, path)
    assert len(want.get("buckets") or []) == len(got.get("buckets") or []), path


@SETTINGS
@given(log=event_logs(), queries=st.lists(aggregate_params(), min_size=1, max_size=5))
def test_aggregate_matches(log: Log, queries: list[dict[str, Any]]) -> None:
    pair = _loaded(log)
    try:
        _check(pair, "aggregate", queries)
    finally:
        pair.close()


@SETTINGS
@given(log=event_logs(), counts=st.lists(count_params(), min_size=1, max_size=2),
       tops=st.lists(top_params(), min_size=1, max_size=2),
       uniques=st.lists(unique_params(), min_size=1, max_size=3))
def test_count_top_and_unique_users_match(log: Log, counts: list[dict[str, Any]],
                                          tops: list[dict[str, Any]],
                                          uniques: list[dict[str, Any]]) -> None:
    pair = _loaded(log)
    try:
        _check(pair, "count", counts)
        _check(pair, "top", tops)
        _check(pair, "unique-users", uniques)
    finally:
        pair.close()


def test_approximate_unique_users_many_users() -> None:
    """Thousands of users: the HLL regime (not linear counting) within its stated error."""
    pair = Pair.create()
    try:
        events = [{"type": "pageview", "timestamp": NOW - (i % 500) * 60_000,
                   "userId": f"user-{i % 4000}"} for i in range(8000)]
        for i in range(0, len(events), 2000):
            pair.ingest(events[i:i + 2000], NOW)
        _check(pair, "unique-users", [
            {"approximate": "true", "precision": p, "interval": "1h"} for p in (10, 12, 14)])
        _, clickhouse = pair.contexts(NOW)
        got = analytics.execute(parse("unique-users", {"approximate": "true"}, NOW),
                                clickhouse).to_json()
        assert abs(got["uniqueUsers"] - 4000) <= 3 * got["standardError"] + 1
    finally:
        pair.close()


@st.composite
def event_list_args(draw: st.DrawFn) -> list[tuple[str, str]]:
    args: list[tuple[str, str]] = [("limit", str(draw(st.integers(1, 7))))]
    if draw(st.integers(0, 3)) == 0:
        args.append(("type", draw(st.sampled_from(TYPES))))
    if draw(st.integers(0, 3)) == 0:
        args.append(("userId", draw(st.sampled_from(USERS))))
    if draw(st.integers(0, 4)) == 0:
        args.append(("page", draw(st.sampled_from(PAGES))))
    if draw(st.integers(0, 4)) == 0:
        args.append(("mixed", draw(st.sampled_from(("3", "true", "/docs", "2.5")))))
    if draw(st.integers(0, 4)) == 0:
        args.append(("where", json.dumps(draw(st.lists(PREDICATES, min_size=1,
                                                       max_size=2)))))
    if draw(st.integers(0, 3)) == 0:
        args.append(("timeRange", draw(st.sampled_from(("last_7d", "last_24h")))))
    if draw(st.integers(0, 4)) == 0:
        args.append(("sessionId", draw(st.sampled_from(("s1", "s2")))))
    return args


def _pages(pair: Pair, args: list[tuple[str, str]], later: list[dict[str, Any]] | None
           ) -> None:
    """Follow the cursors to the end on both sides, comparing every page; `later` events
    arrive after the first page (cursors must stay valid as new events land)."""
    cursor: str | None = None
    for page_no in range(200):
        embedded, clickhouse = pair.contexts(NOW)
        query = parse_event_list(args + ([("cursor", cursor)] if cursor else []), NOW)
        want = event_list.execute(query, embedded).to_json()
        got = event_list.execute(query, clickhouse).to_json()
        same(want, got, f"page {page_no} of {args}")
        cursor = want["nextCursor"]
        if cursor is None:
            return
        if later and page_no == 0:
            pair.ingest(later, NOW)
    raise AssertionError("paging did not end")


@SETTINGS
@given(log=event_logs(), lists=st.lists(event_list_args(), min_size=1, max_size=3),
       later=st.one_of(st.none(), event_logs(max_size=10).map(lambda batches: batches[0])))
def test_event_pages_match(log: Log, lists: list[list[tuple[str, str]]],
                           later: list[dict[str, Any]] | None) -> None:
    pair = _loaded(log)
    try:
        for i, args in enumerate(lists):
            _pages(pair, args, later if i == 0 else None)
    finally:
        pair.close()


def test_event_page_renders_every_kind() -> None:
    """Nested keys, every value kind, custom ids, missing user and session, one tie."""
    pair = Pair.create()
    try:
        ts = NOW - DAY
        pair.ingest([
            {"id": "custom-id-1", "type": "a", "timestamp": ts,
             "properties": {"n": {"x": 1, "y": 2.5, "z": "t", "w": False}, "big": 2**60}},
            {"type": "a", "timestamp": ts, "userId": "u", "sessionId": "s",
             "properties": {"f": 3.0, "i": 3, "s": "3", "b": True, "e": ""}},
            {"id": "ABCDEF00-0000-0000-0000-000000000000", "type": "b", "timestamp": ts - 1},
        ], NOW)
        for limit in ("1", "2", "3"):
            _pages(pair, [("limit", limit)], None)
    finally:
        pair.close()


def test_mixed_kind_group_keys_and_ties() -> None:
    """'1', 1, 1.0, true, -0.0 and 0 as group keys, equal scores everywhere (the tie order
    decides), percentiles of one and two values, negative sums."""
    pair = Pair.create()
    try:
        values: list[Any] = ["1", 1, 1.0, True, False, -0.0, 0, 2.5, "", "b", "a", -3, 2**60]
        events = [{"type": "t", "timestamp": NOW - DAY + i * 3_600_000, "userId": f"u{i % 3}",
                   "properties": {"mixed": v, "amount": (-1) ** i * (i % 4) + 0.5}}
                  for i, v in enumerate(values * 2)]
        pair.ingest(events, NOW)
        pair.ingest([{"type": "t", "timestamp": NOW - DAY, "properties": {"amount": 7}}], NOW)
        _check(pair, "aggregate", [
            {"aggregation": a, "metric": m, "groupBy": g, "limit": lim, "interval": "6h"}
            for a in AGGREGATIONS for m, g, lim in (("amount", "mixed", 3),
                                                    ("mixed", "mixed", 20),
                                                    ("amount", "userId", 1))])
        _check(pair, "count", [{"groupBy": "mixed", "limit": lim} for lim in (1, 2, 5, 50)])
        _check(pair, "top", [{"property": "mixed", "n": n, "sort": s}
                             for n in (1, 2, 5, 50) for s in ("count", "users")])
    finally:
        pair.close()
