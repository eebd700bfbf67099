"""Typed stickiness and lifecycle queries and their pure parsers (docs/statistics.md,
"Stickiness" and "Lifecycle").

    POST /queries/stickiness  {"eventType", "filters"|"where", "interval": "day"|"week",
                               "startTime", "endTime", "timeRange", "segment"}
    POST /queries/lifecycle   {"eventType", "filters"|"where",
                               "interval": "day"|"week"|"month", time range as above}

Thread rule: pure functions over their arguments; any thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rta.core.errors import field_error
from rta.core.queries.behaviour_specs import segment_name
from rta.core.queries.filters import EventFilter
from rta.core.queries.periods import PeriodGrid, parse_grid
from rta.core.queries.segment_spec import time_range, where_of

STICKINESS_INTERVALS = ("day", "week")


@dataclass(frozen=True)
class StickinessQuery:
    """Users by the number of `grid` periods in which they did `flt`'s event."""

    name: Any
    event_type: str
    flt: EventFilter  # the event type and filters (no time bounds: the grid gives them)
    grid: PeriodGrid
    segment: str | None = None  # a saved segment's name (its users only)


@dataclass(frozen=True)
class LifecycleQuery:
    """Per `grid` period: new, returning, resurrecting and dormant users of `flt`'s event."""

    name: Any
    event_type: str
    flt: EventFilter
    grid: PeriodGrid
    segment: str | None = None


def _common(body: Any, now: int, intervals: tuple[str, ...]
            ) -> tuple[str, EventFilter, PeriodGrid]:
    if not isinstance(body, dict):
        raise field_error("body", "must be a JSON object")
    etype = body.get("eventType", body.get("event"))
    if not isinstance(etype, str) or not etype.strip():
        raise field_error("eventType", "is required and must be an event type")
    interval = body.get("interval", "day")
    if interval not in intervals:
        raise field_error("interval", f"must be one of {', '.join(intervals)}",
                          value=interval, allowed=list(intervals))
    start, end = time_range(body, now)
    grid = parse_grid(body, start, end, now)
    return etype, EventFilter(types=(etype,), where=where_of(body, "")), grid


def parse_stickiness(body: Any, now: int) -> StickinessQuery:
    etype, flt, grid = _common(body, now, STICKINESS_INTERVALS)
    return StickinessQuery(body.get("name"), etype, flt, grid, segment_name(body))


def parse_lifecycle(body: Any, now: int) -> LifecycleQuery:
    etype, flt, grid = _common(body, now, ("day", "week", "month"))
    return LifecycleQuery(body.get("name"), etype, flt, grid, segment_name(body))
