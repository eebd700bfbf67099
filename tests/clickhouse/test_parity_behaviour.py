"""Parity of cohort retention, A/B tests and segments between the embedded engine and
ClickHouse, on hypothesis-generated logs (ties, out-of-order batches, missing and mixed-kind
properties, unicode), including saved segments resolved by each backend itself."""

from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rta.core.clickhouse import segment_sql
from rta.core.clickhouse.backend import ClickHouseBackend
from rta.core.embedded import segments
from rta.core.errors import RtaError
from rta.core.queries.backend import QueryContext
from rta.core.queries.behaviour import execute, parse
from tests.clickhouse.event_logs import (
    DAY,
    HOUR,
    NOW,
    PREDICATES,
    T0,
    TYPES,
    USERS,
    event_logs,
)
from tests.clickhouse.harness import Pair, same

# (RTA_PARITY_EXAMPLES=500 for a long hunt)
SETTINGS = settings(max_examples=int(os.environ.get("RTA_PARITY_EXAMPLES", "25")), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SAVED = "saved ✓"  # the saved segment the queries may name
# query clocks: the log's end, and inside it (periods not started yet, events after now)
CLOCKS = st.sampled_from((NOW, NOW, T0 + 20 * DAY + 5 * HOUR, T0 + 3 * DAY))



def _where() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(PREDICATES, min_size=1, max_size=2),
        st.builds(lambda op, items: [{"operator": op, "filters": items}],
                  st.sampled_from(("AND", "OR")), st.lists(PREDICATES, min_size=1, max_size=3)),
        st.sampled_from(({"plan": "pro"}, {"variant": "test", "page": "/"})))


TIME_RANGES = st.fixed_dictionaries({}, optional={
    "startTime": st.integers(-2, 32).map(lambda d: T0 + d * DAY + 7 * HOUR),
    "endTime": st.integers(5, 40).map(lambda d: T0 + d * DAY - 1),
})


# -- logs dense in behaviour: few users doing the queries' events often, in 6 days ----------

BEHAVIOUR_TYPES = ("signup", "purchase", "experiment_assigned", "pageview")


DENSE_USERS = (*USERS[:7], *USERS[-2:])
# most assignments keep a user in one variant (so variants have several clean users)
HOME_VARIANT = dict(zip(DENSE_USERS, ("control", "test", "control", "test", "control", "test",
                                      "B", 1, True), strict=True))


def behaviour_event(rnd: random.Random) -> dict[str, Any]:
    ts = T0 + rnd.randint(0, 6 * 8) * 3 * HOUR + rnd.choice((0, 0, 1, -1))
    out: dict[str, Any] = {"type": rnd.choice(BEHAVIOUR_TYPES), "timestamp": ts}
    user = rnd.choice(DENSE_USERS) if rnd.random() < 0.9 else None
    if user is not None:
        out["userId"] = user
    props: dict[str, Any] = {}
    if rnd.random() < 0.75:
        props["variant"] = HOME_VARIANT[user] if user and rnd.random() < 0.85 else \
            rnd.choice(("control", "test", "B", 1, True, 1.0))
    if rnd.random() < 0.5:
        props["amount"] = rnd.choice((rnd.randint(0, 500), 0.5, 2.25, 0,
                                      round(rnd.uniform(0, 500), rnd.randint(0, 9))))
    if rnd.random() < 0.25:
        props["plan"] = rnd.choice(("free", "pro", 3))
    if props:
        out["properties"] = props
    return out


@st.composite
def behaviour_logs(draw: st.DrawFn) -> list[list[dict[str, Any]]]:
    """Dense behaviour batches (random from a drawn seed: hypothesis would draw them small)
    mixed among a general log's batches, in any arrival order."""
    rnd = random.Random(draw(st.integers(0, 2**32)))
    dense = [[behaviour_event(rnd) for _ in range(rnd.randint(10, 50))]
             for _ in range(rnd.randint(1, 3))]
    for batch in dense:  # the same user doing another event in the same millisecond
        for ev in rnd.sample(batch, len(batch) // 5):
            batch.insert(rnd.randint(0, len(batch)),
                         {**ev, "type": rnd.choice(BEHAVIOUR_TYPES), "properties": {
                             k: v for k, v in ev.get("properties", {}).items()
                             if rnd.random() < 0.5}})
    general = draw(event_logs(max_size=30))
    return draw(st.permutations(dense + general))


LOGS = behaviour_logs()
BEHAVIOUR_EVENTS = st.sampled_from((*BEHAVIOUR_TYPES, *TYPES, "never-seen"))
STARTS = st.sampled_from((T0, T0, T0 - DAY, T0 + 7 * HOUR, T0 + 2 * DAY))


# -- cohort ------------------------------------------------------------------------------------

@st.composite
def cohort_bodies(draw: st.DrawFn) -> dict[str, Any]:
    plain = draw(st.integers(0, 2)) > 0  # the dense log's events, no filters
    events = st.sampled_from(BEHAVIOUR_TYPES) if plain else BEHAVIOUR_EVENTS
    body: dict[str, Any] = {"entryEvent": draw(events), "name": "c"}
    if draw(st.booleans()):
        body["retentionEvent"] = draw(events)
    body["periods"] = draw(st.integers(1, 9))
    length = draw(st.sampled_from(("1d", "6h", "2d", DAY, 5 * HOUR + 7, None)))
    if length is not None:
        body["periodLength"] = length
    for key, options in (("retentionType", ("first_time", "recurring")),
                         ("criterion", ("on", "on_or_after"))):
        value = draw(st.sampled_from((*options, None)))
        if value is not None:
            body[key] = value
    if draw(st.integers(0, 3)) == 0:
        body.update(draw(TIME_RANGES))  # anywhere, or the default (periods before now)
    else:
        body["startTime"] = draw(STARTS)  # the dense part of the log
        if draw(st.booleans()):
            body["endTime"] = body["startTime"] + draw(st.integers(1, 12)) * DAY // 2
    if "startTime" in body and "endTime" in body and body["startTime"] >= body["endTime"]:
        del body["endTime"]
    for key in ("entryFilters", "retentionFilters"):
        if not plain and draw(st.integers(0, 2)) == 0:
            body[key] = draw(_where())
    if draw(st.integers(0, 4)) == 0:
        body["segment"] = SAVED
    return body


# -- A/B test ----------------------------------------------------------------------------------

VARIANT_VALUES = st.one_of(st.sampled_from(("control", "test", "B", "free", "pro", "/")),
                           st.integers(-5, 50), st.sampled_from((1.5, 0.0, 1.0, 3)))


@st.composite
def abtest_bodies(draw: st.DrawFn) -> dict[str, Any]:
    vprop = draw(st.sampled_from(("variant", "variant", "variant", "mixed", "plan",
                                  "properties.page")))
    body: dict[str, Any] = {
        "name": "ab", "eventType": draw(st.one_of(st.just("signup"), BEHAVIOUR_EVENTS)),
        "variantProperty": vprop,
        "metricEvent": draw(st.one_of(st.just("purchase"), BEHAVIOUR_EVENTS)),
        "minimumSampleSize": draw(st.integers(0, 3)),
        "control": draw(st.sampled_from(("control", "control", "test", "free", 1, "1", "/"))),
    }
    if draw(st.integers(0, 2)) > 0:  # the dense log's experiment, no filters
        body.update(eventType="signup", variantProperty="variant", metricEvent=draw(
            st.sampled_from(("purchase", "pageview"))), control="control")
        if draw(st.booleans()):
            body["metricProperty"] = "amount"
        if draw(st.integers(0, 3)) == 0:
            body["variants"] = draw(st.lists(st.sampled_from(("control", "test", "B", 1)),
                                             min_size=2, max_size=4, unique=True))
        if draw(st.integers(0, 3)) == 0:
            body.update(draw(TIME_RANGES))
        if draw(st.integers(0, 4)) == 0:
            body["segment"] = SAVED
        return body
    if draw(st.booleans()):
        body["metricProperty"] = draw(st.sampled_from(("amount", "amount", "mixed")))
    if draw(st.integers(0, 3)) == 0:
        body["variants"] = draw(st.lists(VARIANT_VALUES, min_size=2, max_size=4, unique=True))
    if draw(st.integers(0, 5)) == 0:
        body["filters"] = draw(_where())
    if draw(st.integers(0, 5)) == 0:
        body["metricFilters"] = draw(_where())
    if draw(st.integers(0, 3)) == 0:
        body["confidenceLevel"] = draw(st.sampled_from((0.9, 0.99, 0.5)))
    if draw(st.integers(0, 2)) == 0:
        body.update(draw(TIME_RANGES))
    if draw(st.integers(0, 4)) == 0:
        body["segment"] = SAVED
    return body


# -- segment -----------------------------------------------------------------------------------

USER_CONDITIONS = st.one_of(
    PREDICATES,
    st.builds(lambda pred, t: {**pred, "eventType": t}, PREDICATES, BEHAVIOUR_EVENTS),
    st.builds(lambda pred: {**pred, "scope": "event"}, PREDICATES),
)


@st.composite
def event_conditions(draw: st.DrawFn) -> dict[str, Any]:
    cond: dict[str, Any] = {"eventType": draw(BEHAVIOUR_EVENTS)}
    if draw(st.booleans()):
        cond["where"] = draw(_where())
    count = draw(st.one_of(st.none(), st.integers(0, 3),
                           st.fixed_dictionaries({
                               "operator": st.sampled_from(("eq", "neq", "gt", "gte", "lt",
                                                            "lte")),
                               "value": st.integers(0, 4)})))
    if count is not None:
        cond["count"] = count
    return cond


CONDITIONS = st.recursive(
    st.one_of(USER_CONDITIONS, event_conditions()),
    lambda inner: st.one_of(
        st.builds(lambda op, items: {"operator": op, "filters": items},
                  st.sampled_from(("AND", "OR")), st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda key, items: {key: items}, st.sampled_from(("and", "or")),
                  st.lists(inner, min_size=1, max_size=3))),
    max_leaves=5)


@st.composite
def segment_bodies(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = {"name": draw(st.sampled_from(("s", "Ünï"))),
                            "operator": draw(st.sampled_from(("AND", "OR")))}
    body["filters"] = draw(st.lists(CONDITIONS, min_size=0, max_size=3))
    body.update(draw(TIME_RANGES))
    if "startTime" in body and "endTime" in body and body["startTime"] >= body["endTime"]:
        del body["endTime"]
    sample = draw(st.sampled_from((None, 0, 1, 5, 1000)))
    if sample is not None:
        body["sampleSize"] = sample
    return body


SAVED_DEFINITIONS = st.one_of(
    st.just({"filters": []}),
    st.builds(lambda c: {"filters": [c]}, CONDITIONS),
)


# -- the comparison ----------------------------------------------------------------------------

def _answer(kind: str, body: dict[str, Any], ctx: QueryContext) -> Any:
    try:
        return execute(parse(kind, body, ctx.now), ctx).to_json()
    except RtaError as exc:
        return {"error": str(exc), "details": getattr(exc, "details", None)}


def _clickhouse_context(pair: Pair, now: int) -> QueryContext:
    """ClickHouse answering, saved segments evaluated by ClickHouse too (user ids)."""
    backend = ClickHouseBackend(pair.ch)

    def resolve(name: str) -> np.ndarray:
        doc = pair.engine.metadata.find_by_name(segments.KIND, name)
        if doc is None:
            raise KeyError(name)
        return segment_sql.members(backend.view, segments.parse_segment(doc, ""))

    return QueryContext(backend, resolve, now)


def _compare(log: list[list[dict[str, Any]]], kind: str, bodies: list[dict[str, Any]],
             now: int, saved: dict[str, Any] | None = None) -> None:
    pair = Pair.create()
    try:
        for batch in log:
            pair.ingest(batch, NOW)
        if saved is not None:
            segments.create(pair.engine, {**saved, "name": SAVED})
        embedded, _ = pair.contexts(now)
        clickhouse = _clickhouse_context(pair, now)
        if saved is not None:  # the saved segment's members agree (as user ids)
            want = segments.resolve_codes(pair.engine, SAVED)
            ids = sorted(pair.engine.snapshot().dicts.users.decode(want).tolist())
            got = clickhouse.segments(SAVED) if clickhouse.segments else None
            assert got is not None and ids == list(got), (ids, got)
        for body in bodies:
            same(_answer(kind, body, embedded), _answer(kind, body, clickhouse),
                 f"{kind} {body}")
    finally:
        pair.close()


@SETTINGS
@given(log=LOGS, bodies=st.lists(cohort_bodies(), min_size=1, max_size=4),
       now=CLOCKS, saved=SAVED_DEFINITIONS)
def test_cohort_retention_matches(log: list[list[dict[str, Any]]],
                                  bodies: list[dict[str, Any]], now: int,
                                  saved: dict[str, Any]) -> None:
    _compare(log, "cohort", bodies, now, saved)


@SETTINGS
@given(log=LOGS, bodies=st.lists(abtest_bodies(), min_size=1, max_size=4),
       now=CLOCKS, saved=SAVED_DEFINITIONS)
def test_abtest_matches(log: list[list[dict[str, Any]]], bodies: list[dict[str, Any]],
                        now: int, saved: dict[str, Any]) -> None:
    _compare(log, "abtest", bodies, now, saved)


@SETTINGS
@given(log=LOGS, bodies=st.lists(segment_bodies(), min_size=1, max_size=4),
       now=CLOCKS)
def test_segment_matches(log: list[list[dict[str, Any]]], bodies: list[dict[str, Any]],
                         now: int) -> None:
    _compare(log, "segment", bodies, now)
