"""Parity of counting groups (`unit: "group:company"`): behaviour logs whose events name a
company in `$groups` (string and integer keys, one group sent both ways, some events with
none) through both backends, plus two independent checks:

- unique groups against a naive Python count of distinct keys;
- funnels and retention by group against the users' query over a relabelled copy of the
  log whose `userId` is the group key (no group: no user), which is what counting groups
  means.
"""

from __future__ import annotations

import dataclasses
import os
import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rta.core.queries import analytics
from rta.core.queries.analytics_specs import parse as parse_analytics
from rta.core.queries.backend import QueryContext
from tests.clickhouse.event_logs import NOW
from tests.clickhouse.harness import Pair, same
from tests.clickhouse.test_parity_analytics import unique_params
from tests.clickhouse.test_parity_behaviour import LOGS, _answer, _clickhouse_context, cohort_bodies
from tests.clickhouse.test_parity_funnel import funnel_body

SETTINGS = settings(max_examples=int(os.environ.get("RTA_PARITY_EXAMPLES", "5")),
                    deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
KEYS: tuple[Any, ...] = ("acme", "globex", 7, "7", "Ünïcødé co", 12)
UNIT = "group:company"
Log = list[list[dict[str, Any]]]


def key_text(key: Any) -> str:
    return str(key)


@st.composite
def grouped_logs(draw: st.DrawFn) -> Log:
    """A behaviour log where most events name a company (ints and their text alike)."""
    log = [[dict(e) for e in batch] for batch in draw(LOGS)]
    rnd = random.Random(draw(st.integers(0, 2**32)))
    for batch in log:
        for event in batch:
            if rnd.random() < 0.8:
                props = dict(event.get("properties") or {})
                props["$groups"] = {"company": rnd.choice(KEYS)}
                event["properties"] = props
    log[0].append({"type": "signup", "userId": "u0", "timestamp": NOW - 3600_000,
                   "properties": {"$groups": {"company": "acme"}}})
    return log


def relabelled(log: Log) -> Log:
    """The log with each event's user replaced by its company's key (none: no user)."""
    out = []
    for batch in log:
        copy = []
        for event in batch:
            e = {k: v for k, v in event.items() if k != "userId"}
            group = (event.get("properties") or {}).get("$groups", {}).get("company")
            if group is not None:
                e["userId"] = key_text(group)
            copy.append(e)
        out.append(copy)
    return out


def loaded(log: Log) -> Pair:
    pair = Pair.create()
    for batch in log:
        pair.ingest(batch, NOW)
    return pair


def contexts(pair: Pair) -> tuple[QueryContext, QueryContext]:
    embedded, _ = pair.contexts(NOW)
    clickhouse = dataclasses.replace(_clickhouse_context(pair, NOW),
                                     group_types=pair.engine.groups.known_types)
    return embedded, clickhouse


def unique(params: dict[str, Any], ctx: QueryContext) -> Any:
    try:
        return analytics.execute(parse_analytics("unique-users", params, NOW), ctx).to_json()
    except Exception as exc:  # (both must fail alike)
        return {"error": type(exc).__name__, "message": str(exc)}


def strip_unit(answer: Any) -> Any:
    if isinstance(answer, dict):
        answer = {k: v for k, v in answer.items() if k not in ("unit", "cached")}
        if "countBy" in answer:
            answer["countBy"] = "users"
    return answer


@SETTINGS
@given(log=grouped_logs(), uniques=st.lists(unique_params(), min_size=1, max_size=3))
def test_unique_groups_match_and_equal_a_naive_count(log: Log,
                                                     uniques: list[dict[str, Any]]) -> None:
    pair = loaded(log)
    try:
        embedded, clickhouse = contexts(pair)
        for params in uniques:
            params = {k: v for k, v in params.items() if k not in ("approximate", "precision")}
            params["unit"] = UNIT
            same(unique(params, embedded), unique(params, clickhouse), f"unique {params}")
        # naive: distinct company keys over every stored event
        keys = {key_text(e["properties"]["$groups"]["company"]) for batch in log
                for e in batch if "$groups" in (e.get("properties") or {})}
        answer = unique({"unit": UNIT}, embedded)
        assert answer["uniqueUsers"] == len(keys)
        assert answer["events"] == sum(len(b) for b in log)
    finally:
        pair.close()


@SETTINGS
@given(log=grouped_logs(),
       funnels=st.lists(funnel_body(("signup", "purchase", "pageview",
                                     "experiment_assigned"), True), min_size=1, max_size=2),
       cohorts=st.lists(cohort_bodies(), min_size=1, max_size=2))
def test_group_funnels_and_retention_match_the_relabelled_users_queries(
        log: Log, funnels: list[dict[str, Any]], cohorts: list[dict[str, Any]]) -> None:
    pair, plain = loaded(log), loaded(relabelled(log))
    try:
        embedded, clickhouse = contexts(pair)
        ref_embedded, ref_clickhouse = contexts(plain)
        for body in funnels:
            body = {**body, "countBy": UNIT}
            body.pop("segment", None)
            ours = _answer("funnel", body, embedded)
            same(ours, _answer("funnel", body, clickhouse), f"funnel {body}")
            users = {**body, "countBy": "users"}
            same(strip_unit(ours), strip_unit(_answer("funnel", users, ref_embedded)),
                 f"funnel vs relabelled {body}")
        for body in cohorts:
            body = {**body, "unit": UNIT}
            body.pop("segment", None)
            ours = _answer("cohort", body, embedded)
            same(ours, _answer("cohort", body, clickhouse), f"cohort {body}")
            users = {k: v for k, v in body.items() if k != "unit"}
            same(strip_unit(ours), strip_unit(_answer("cohort", users, ref_clickhouse)),
                 f"cohort vs relabelled {body}")
    finally:
        pair.close()
        plain.close()
