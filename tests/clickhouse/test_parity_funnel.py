"""Parity of funnels: the ClickHouse SQL walk answers every funnel as the embedded engine
does (counts, rates, times to convert, breakdowns), on hypothesis-generated logs dense in
ties, repeated steps and out-of-order batches, plus the cases where ClickHouse's own
windowFunnel would answer differently."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rta.core.queries.behaviour import execute, parse
from rta.core.queries.behaviour_specs import FunnelQuery
from tests.clickhouse.event_logs import DAY, HOUR, NOW, PAGES, T0, TYPES, event_logs
from tests.clickhouse.harness import Pair, same

FEW_TYPES = (*TYPES[:3], TYPES[4])  # pageview, signup, purchase, unicode
FEW_USERS = ("u0", "u1", "ü-ser")


@st.composite
def dense_event(draw: st.DrawFn) -> dict[str, Any]:
    """Few users, types and instants: most events tie with another or repeat a step."""
    ts = T0 + draw(st.integers(0, 12)) * draw(st.sampled_from((HOUR // 2, 5 * HOUR, 1)))
    out: dict[str, Any] = {"type": draw(st.sampled_from((*FEW_TYPES[:3], *FEW_TYPES))),
                           "timestamp": ts}
    if draw(st.integers(0, 7)):
        out["userId"] = draw(st.sampled_from(FEW_USERS))
    if draw(st.integers(0, 2)):
        out["sessionId"] = f"s{draw(st.integers(0, 2))}"
    props: dict[str, Any] = {}
    if draw(st.booleans()):
        props["page"] = draw(st.sampled_from(PAGES))
    if draw(st.booleans()):
        props["mixed"] = draw(st.one_of(st.sampled_from(("/", "x", "1")), st.integers(0, 3),
                                        st.sampled_from((1.0, 2.5, -0.0)), st.booleans()))
    if draw(st.integers(0, 2)) == 0:
        props["plan"] = draw(st.sampled_from(("free", "pro", "团队")))
    if props:
        out["properties"] = props
    return out


def dense_logs() -> st.SearchStrategy[list[list[dict[str, Any]]]]:
    return st.lists(st.lists(dense_event(), min_size=5, max_size=25), min_size=2, max_size=5)


STEP_FILTERS = st.one_of(
    st.just({"property": "page", "operator": "eq", "value": "/"}),
    st.just({"property": "page", "operator": "neq", "value": "/docs"}),
    st.just({"property": "plan", "operator": "exists"}),
    st.just({"property": "mixed", "operator": "gt", "value": 0}),
    st.just({"property": "mixed", "operator": "not_exists"}),
    st.just({"property": "page", "operator": "contains", "value": "é"}),
)


def step(types: tuple[str, ...]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from(types), st.sampled_from(types), st.sampled_from(types),
        st.builds(lambda t, f: {"eventType": t, "filters": [f]}, st.sampled_from(types),
                  STEP_FILTERS))


def instant(draw: st.DrawFn) -> int:
    """A time on the grids dense_event draws from, or 1 ms before one (edges of ranges)."""
    unit = draw(st.sampled_from((1, HOUR // 2, 5 * HOUR)))
    return T0 + draw(st.integers(0, 12)) * unit - draw(st.sampled_from((0, 0, 1)))


@st.composite
def funnel_body(draw: st.DrawFn, types: tuple[str, ...], dense: bool) -> dict[str, Any]:
    steps = draw(st.lists(step(types), min_size=2, max_size=4))
    n = len(steps)
    body: dict[str, Any] = {"steps": steps,
                            "order": draw(st.sampled_from(("ordered", "strict", "any"))),
                            "countBy": draw(st.sampled_from(("users", "users", "sessions")))}
    window = draw(st.sampled_from((None, None, 1, 2, HOUR // 2, HOUR, 5 * HOUR, DAY, 3 * DAY)))
    if window is not None:
        body["timeLimit"] = window
    when = draw(st.integers(0, 2))
    if when == 1 and not dense:
        body["timeRange"] = draw(st.sampled_from(("last_7d", "last_30d", "last_24h")))
    elif when == 2:
        lo, hi = sorted((instant(draw), instant(draw)))
        body["startTime"] = lo
        body["endTime"] = hi
    if draw(st.integers(0, 2)) == 0:
        exclusions = []
        for _ in range(draw(st.integers(1, 2))):
            lo_step = draw(st.integers(0, n - 2))
            x: dict[str, Any] = {"eventType": draw(st.sampled_from(types)),
                                 "fromStep": lo_step,
                                 "toStep": draw(st.integers(lo_step + 1, n - 1))}
            if draw(st.booleans()):
                x["filters"] = [draw(STEP_FILTERS)]
            exclusions.append(x)
        body["exclusions"] = exclusions
    if draw(st.booleans()):
        body["breakdown"] = draw(st.sampled_from(("page", "mixed", "plan", "properties.page",
                                                  "absent")))
        if draw(st.integers(0, 3)) == 0:
            body["breakdownLimit"] = draw(st.integers(1, 3))
    if draw(st.integers(0, 4)) == 0:
        body["where"] = [draw(STEP_FILTERS)]
    return body


def check(pair: Pair, bodies: list[dict[str, Any]], members: list[str] | None = None) -> None:
    embedded, clickhouse = pair.contexts(NOW)
    for body in bodies:
        q = parse("funnel", body, NOW)
        assert isinstance(q, FunnelQuery)
        want = execute(q, embedded).to_json()
        got = execute(q, clickhouse).to_json()
        same(want, got, f"funnel {body}")
        if members is not None:
            # a saved segment's members: dictionary codes for the embedded engine, user id
            # strings for ClickHouse (each backend reads the members it produced)
            codes = pair.engine.snapshot().dicts.users.lookup_many(members)
            want = embedded.backend.funnel(replace(q, segment_users=codes)).to_json()
            got = clickhouse.backend.funnel(
                replace(q, segment_users=np.array(members, dtype=object))).to_json()
            same(want, got, f"funnel {body} for {members}")


def run(log: list[list[dict[str, Any]]], bodies: list[dict[str, Any]],
        members: list[str] | None = None) -> None:
    pair = Pair.create()
    try:
        for batch in log:
            pair.ingest(batch, NOW)
        check(pair, bodies, members)
    finally:
        pair.close()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(log=dense_logs(), bodies=st.lists(funnel_body(FEW_TYPES, True), min_size=3, max_size=6),
       members=st.one_of(st.none(), st.lists(st.sampled_from((*FEW_USERS, "nobody")),
                                             unique=True, max_size=3)))
def test_funnels_match_on_dense_logs(log: list[list[dict[str, Any]]],
                                     bodies: list[dict[str, Any]],
                                     members: list[str] | None) -> None:
    run(log, bodies, members)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(log=event_logs(max_size=120), bodies=st.lists(funnel_body(TYPES, False), min_size=2,
                                                      max_size=4))
def test_funnels_match_on_general_logs(log: list[list[dict[str, Any]]],
                                       bodies: list[dict[str, Any]]) -> None:
    run(log, bodies)


# -- the windowFunnel traps, by hand -----------------------------------------------------------

def _ev(etype: str, ts: int, user: str = "u1", **props: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": etype, "timestamp": T0 + ts, "userId": user,
                           "sessionId": "s-" + user}
    if props:
        out["properties"] = props
    return out


def _counts(pair: Pair, body: dict[str, Any]) -> list[int]:
    embedded, clickhouse = pair.contexts(NOW)
    q = parse("funnel", body, NOW)
    want = execute(q, embedded).to_json()
    got = execute(q, clickhouse).to_json()
    same(want, got, f"funnel {body}")
    return [s["count"] for s in got["steps"]]


@pytest.fixture
def pair() -> Any:
    p = Pair.create()
    yield p
    p.close()


def test_same_millisecond_counts_only_when_it_arrived_later(pair: Pair) -> None:
    # u1: signup arrives before the pageview of the same instant; u2: after it
    pair.ingest([_ev("signup", 0, "u1"), _ev("pageview", 0, "u1")], NOW)
    pair.ingest([_ev("pageview", 0, "u2"), _ev("signup", 0, "u2")], NOW)
    # u3: two batches, the later one holding the same instant (arrival order, not batch time)
    pair.ingest([_ev("pageview", 5, "u3")], NOW)
    pair.ingest([_ev("signup", 5, "u3"), _ev("pageview", 1, "u3")], NOW)
    for order in ("ordered", "strict", "any"):
        body = {"steps": ["pageview", "signup"], "order": order}
        assert _counts(pair, body) == [3, 2], order
        assert _counts(pair, {**body, "countBy": "sessions"}) == [3, 2], order


def test_a_repeated_step_needs_two_events(pair: Pair) -> None:
    pair.ingest([_ev("pageview", 0, "u1"),  # one pageview: depth 1
                 _ev("pageview", 0, "u2"), _ev("pageview", 0, "u2"),  # a tie: depth 2
                 _ev("pageview", 0, "u3"), _ev("signup", 1, "u3"), _ev("pageview", 2, "u3")],
                NOW)
    assert _counts(pair, {"steps": ["pageview", "pageview"]}) == [3, 2]
    assert _counts(pair, {"steps": ["pageview", "pageview"], "order": "strict"}) == [3, 1]
    assert _counts(pair, {"steps": ["pageview", "signup", "pageview"]}) == [3, 1, 1]
    # `any`: steps 2..N are searched from the entry, so one event may serve two of them
    assert _counts(pair, {"steps": ["pageview", "signup", "signup"], "order": "any"}) \
        == [3, 1, 1]


def test_strict_is_broken_by_any_event_in_between(pair: Pair) -> None:
    pair.ingest([_ev("pageview", 0, "u1"), _ev("click", 1, "u1"), _ev("signup", 2, "u1"),
                 _ev("pageview", 0, "u2"), _ev("signup", 2, "u2"),
                 # the later attempt of u3 is strict; the breakdown comes from it
                 _ev("pageview", 0, "u3", plan="free"), _ev("click", 1, "u3"),
                 _ev("pageview", 2, "u3", plan="pro"), _ev("signup", 3, "u3")], NOW)
    body: dict[str, Any] = {"steps": ["pageview", "signup"], "order": "strict",
                            "breakdown": "plan"}
    assert _counts(pair, body) == [3, 2]
    # a global filter narrows the steps, not the events that interrupt them
    assert _counts(pair, {**body, "where": [{"property": "plan", "operator": "exists"}]}) \
        == [1, 0]
    _, clickhouse = pair.contexts(NOW)
    got = execute(parse("funnel", body, NOW), clickhouse).to_json()
    assert {g["value"]: g["steps"][1]["count"] for g in got["breakdown"]} == \
        {None: 1, "pro": 1}
    assert _counts(pair, {"steps": ["pageview", "signup"]}) == [3, 3]


def test_exclusions_and_times_to_convert(pair: Pair) -> None:
    pair.ingest([_ev("pageview", 0, "u1"), _ev("click", 10, "u1"), _ev("signup", 20, "u1"),
                 _ev("pageview", 30, "u1"), _ev("signup", 70, "u1"),  # second attempt clean
                 _ev("pageview", 0, "u2"), _ev("click", 5, "u2"),  # void, no other attempt
                 _ev("pageview", 0, "u3"), _ev("signup", 0, "u3"), _ev("click", 0, "u3")],
                NOW)
    body = {"steps": ["pageview", "signup"],
            "exclusions": [{"eventType": "click", "fromStep": 0, "toStep": 1}]}
    assert _counts(pair, body) == [2, 2]
    _, clickhouse = pair.contexts(NOW)
    got = execute(parse("funnel", body, NOW), clickhouse).to_json()
    assert got["steps"][1]["avgTimeToConvert"] == 20.0
    assert got["steps"][1]["medianTimeToConvert"] == 20.0
    assert got["steps"][1]["p90TimeToConvert"] == 36.0
    # the to-step's own event is not "before" it: an exclusion of the step's type voids nothing
    same_type = {"steps": ["pageview", "signup"],
                 "exclusions": [{"eventType": "signup", "fromStep": 0, "toStep": 1}]}
    assert _counts(pair, same_type) == [3, 2]


def test_any_order_and_the_edges_of_ranges(pair: Pair) -> None:
    pair.ingest([_ev("pageview", 0, "u1"), _ev("purchase", 1, "u1"), _ev("signup", 2, "u1"),
                 _ev("pageview", 0, "u2"), _ev("signup", 10, "u2"),  # at the deadline
                 _ev("purchase", 11, "u2"),  # 1 ms past it
                 _ev("pageview", 21, "u3"), _ev("signup", 22, "u3"),  # after endTime
                 _ev("pageview", 20, "u4"), _ev("signup", 25, "u4")], NOW)  # at endTime
    body = {"steps": ["pageview", "signup", "purchase"], "timeLimit": 10,
            "startTime": T0, "endTime": T0 + 20}
    assert _counts(pair, {**body, "order": "any"}) == [3, 3, 1]
    assert _counts(pair, body) == [3, 3, 0]


def test_breakdown_keeps_kinds_apart(pair: Pair) -> None:
    # '1' and 1 (and 1.0) are different values with the same str(): text comes first
    pair.ingest([_ev("pageview", 0, "u1", mixed="1"), _ev("pageview", 0, "u2", mixed=1),
                 _ev("pageview", 0, "u3", mixed=1.0), _ev("pageview", 0, "u4", mixed=True),
                 _ev("pageview", 0, "u5", mixed="True"), _ev("pageview", 0, "u6", mixed=-0.0),
                 _ev("pageview", 0, "u7", mixed=0), _ev("signup", 1, "u2")], NOW)
    body = {"steps": ["pageview", "signup"], "breakdown": "mixed"}
    assert _counts(pair, body) == [7, 1]
    _, clickhouse = pair.contexts(NOW)
    got = execute(parse("funnel", body, NOW), clickhouse).to_json()
    assert [(g["value"], g["totalEntered"]) for g in got["breakdown"]] == \
        [(0, 2), (1, 2), ("1", 1), ("True", 1), (True, 1)]


# -- page steps (#19): a step on a pageview type matches every SDK's pageviews ----------------

PV_TYPES = ("pageview", "page", "$pageview")
PATH_ALIASES = ("$pathname", "path", "page", "context.page.path")


@st.composite
def mixed_sdk_event(draw: st.DrawFn) -> dict[str, Any]:
    """rta, Segment and PostHog pageviews carrying any page-path aliases (or none)."""
    out: dict[str, Any] = {"type": draw(st.sampled_from((*PV_TYPES, *PV_TYPES, "signup"))),
                           "timestamp": T0 + draw(st.integers(0, 12)) * HOUR // 2,
                           "userId": draw(st.sampled_from(FEW_USERS)),
                           "sessionId": f"s{draw(st.integers(0, 1))}"}
    keys = draw(st.lists(st.sampled_from(PATH_ALIASES), max_size=2, unique=True))
    if keys:
        out["properties"] = {k: draw(st.one_of(st.sampled_from(PAGES[:3]), st.integers(0, 1)))
                             for k in keys}
    return out


PAGE_STEP = st.builds(
    lambda t, key, op, page: {"eventType": t, "where": [{"property": key, "operator": op,
                                                          "value": page}]},
    st.sampled_from(PV_TYPES), st.sampled_from(PATH_ALIASES),
    st.sampled_from(("eq", "neq", "contains", "in")), st.sampled_from(PAGES[:3])).map(
        lambda s: {**s, "where": [{**s["where"][0], "value": [s["where"][0]["value"]]}]}
        if s["where"][0]["operator"] == "in" else s)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(log=st.lists(st.lists(mixed_sdk_event(), min_size=3, max_size=15), min_size=1,
                    max_size=3),
       bodies=st.lists(st.builds(
           lambda steps, order, unit, excl: {
               "steps": steps, "order": order, "countBy": unit,
               **({"exclusions": [{**excl, "fromStep": 0, "toStep": 1}]} if excl else {})},
           st.lists(st.one_of(PAGE_STEP, st.sampled_from((*PV_TYPES, "signup"))),
                    min_size=2, max_size=3),
           st.sampled_from(("ordered", "strict", "any")),
           st.sampled_from(("users", "sessions")), st.one_of(st.none(), PAGE_STEP)),
           min_size=2, max_size=4))
def test_page_steps_match_on_mixed_sdk_logs(log: list[list[dict[str, Any]]],
                                           bodies: list[dict[str, Any]]) -> None:
    pair = Pair.create()
    try:
        for batch in log:
            pair.ingest(batch, NOW)
        check(pair, bodies)
        # retention entry/return events and segments' "did event" read page steps alike
        embedded, clickhouse = pair.contexts(NOW)
        first, second = (b["steps"][0] for b in bodies[:2])
        entry, ret = (s if isinstance(s, dict) else {"eventType": s} for s in (first, second))
        cohort = {"entryEvent": entry["eventType"], "retentionEvent": ret["eventType"],
                  "periods": 3, "periodLength": 2 * HOUR, "startTime": T0,
                  "endTime": T0 + 6 * HOUR, "entryFilters": entry.get("where"),
                  "retentionFilters": ret.get("where")}
        segment = {"filters": [{**entry, "count": {"operator": "gte", "value": 2}}],
                   "sampleSize": 100}
        for kind, body in (("cohort", cohort), ("segment", segment)):
            q = parse(kind, body, NOW)
            same(execute(q, embedded).to_json(), execute(q, clickhouse).to_json(),
                 f"{kind} {body}")
    finally:
        pair.close()
