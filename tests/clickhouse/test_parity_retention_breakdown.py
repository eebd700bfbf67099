"""Parity of cohort retention split by a property (its value at each membership's entry
event: mixed kinds, missing values, ties in one millisecond) and of cohorts defined by
filters alone (any event type), between the embedded engine and ClickHouse; and, on the
embedded side, that the groups add up to the whole grid."""

from __future__ import annotations

import os
from functools import partial
from typing import Any

import trio
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from rta.core import query_services
from rta.core.config import EngineConfig
from rta.core.engine import Engine
from rta.core.errors import ValidationError
from rta.core.queries.behaviour import execute, parse
from tests.clickhouse.event_logs import NOW
from tests.clickhouse.test_parity_behaviour import (
    CLOCKS,
    LOGS,
    SAVED_DEFINITIONS,
    SETTINGS,
    _compare,
    _where,
    cohort_bodies,
)


@st.composite
def breakdown_bodies(draw: st.DrawFn) -> dict[str, Any]:
    body = draw(cohort_bodies())
    if draw(st.integers(0, 3)) == 0:  # a cohort defined by its filters alone
        body.pop("entryEvent")
        if draw(st.booleans()):
            body.pop("retentionEvent", None)  # (returns: any event)
        body["entryFilters"] = draw(_where())
    if draw(st.integers(0, 4)) > 0:
        body["breakdown"] = draw(st.sampled_from(("variant", "plan", "amount", "mixed",
                                                  "properties.page", "absent")))
        if draw(st.integers(0, 3)) == 0:
            body["breakdownLimit"] = draw(st.integers(1, 3))
    return body


@settings(SETTINGS, max_examples=int(os.environ.get("RTA_PARITY_EXAMPLES", "15")))
@given(log=LOGS, bodies=st.lists(breakdown_bodies(), min_size=1, max_size=3),
       now=CLOCKS, saved=SAVED_DEFINITIONS)
def test_retention_breakdown_matches(log: list[list[dict[str, Any]]],
                                     bodies: list[dict[str, Any]], now: int,
                                     saved: dict[str, Any]) -> None:
    _compare(log, "cohort", bodies, now, saved)


@settings(SETTINGS, max_examples=20)
@given(log=LOGS, body=breakdown_bodies())
def test_first_time_groups_add_up_to_the_grid(log: list[list[dict[str, Any]]],
                                              body: dict[str, Any]) -> None:
    body = {**body, "breakdown": body.get("breakdown", "variant"), "breakdownLimit": 1000,
            "retentionType": "first_time"}
    body.pop("segment", None)
    try:
        query = parse("cohort", body, NOW)
    except ValidationError:  # (a range the API refuses, e.g. an end before the grid: no grid)
        assume(False)
    engine = Engine(EngineConfig(fsync=False))
    try:
        for batch in log:
            trio.run(partial(engine.submit, batch, partial=False, now=NOW))
        out = execute(query, query_services.context(engine, NOW)).to_json()
    finally:
        engine.close()
    groups = out["breakdown"]
    assert not out["breakdownTruncated"]
    assert sum(g["totalUsers"] for g in groups) == out["totalUsers"]
    for i, row in enumerate(out["cohorts"]):
        assert sum(g["cohorts"][i]["size"] for g in groups) == row["size"]
        for n, count in enumerate(row["counts"]):
            parts = [g["cohorts"][i]["counts"][n] for g in groups]
            assert (count is None and all(p is None for p in parts)) or count == sum(parts)
    values = [g["value"] for g in groups]
    assert len({(type(v).__name__, v) for v in values}) == len(values)
