"""Parity of stickiness and lifecycle between the embedded engine and ClickHouse, on the
behaviour logs of test_parity_behaviour (ties, out-of-order batches, mixed-kind properties,
unicode, events before the range and after now) with every interval and filters."""

from __future__ import annotations

import os
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.clickhouse.event_logs import DAY, HOUR, T0
from tests.clickhouse.test_parity_behaviour import (
    BEHAVIOUR_EVENTS,
    BEHAVIOUR_TYPES,
    CLOCKS,
    LOGS,
    SAVED,
    SAVED_DEFINITIONS,
    SETTINGS,
    _compare,
    _where,
)


@st.composite
def period_bodies(draw: st.DrawFn, intervals: tuple[str, ...]) -> dict[str, Any]:
    plain = draw(st.integers(0, 2)) > 0
    body: dict[str, Any] = {"name": "p", "eventType": draw(
        st.sampled_from(BEHAVIOUR_TYPES) if plain else BEHAVIOUR_EVENTS)}
    interval = draw(st.sampled_from((*intervals, None)))
    if interval is not None:
        body["interval"] = interval
    choice = draw(st.integers(0, 3))
    if choice == 0:
        body["timeRange"] = draw(st.sampled_from(("last_7d", "last_30d", "today")))
    elif choice > 1:
        body["startTime"] = T0 + draw(st.integers(-3, 8)) * DAY + draw(
            st.sampled_from((0, -1, 7 * HOUR)))
        if draw(st.booleans()):
            body["endTime"] = body["startTime"] + draw(st.integers(0, 40)) * DAY // 4
    if not plain and draw(st.booleans()):
        body["filters"] = draw(_where())
    if draw(st.integers(0, 4)) == 0:
        body["segment"] = SAVED
    return body


FEWER = settings(SETTINGS, max_examples=int(os.environ.get("RTA_PARITY_EXAMPLES", "15")))


@FEWER
@given(log=LOGS, bodies=st.lists(period_bodies(("day", "week")), min_size=1, max_size=4),
       now=CLOCKS, saved=SAVED_DEFINITIONS)
def test_stickiness_matches(log: list[list[dict[str, Any]]], bodies: list[dict[str, Any]],
                            now: int, saved: dict[str, Any]) -> None:
    _compare(log, "stickiness", bodies, now, saved)


@FEWER
@given(log=LOGS, bodies=st.lists(period_bodies(("day", "week", "month")), min_size=1,
                                 max_size=4), now=CLOCKS, saved=SAVED_DEFINITIONS)
def test_lifecycle_matches(log: list[list[dict[str, Any]]], bodies: list[dict[str, Any]],
                           now: int, saved: dict[str, Any]) -> None:
    _compare(log, "lifecycle", bodies, now, saved)
