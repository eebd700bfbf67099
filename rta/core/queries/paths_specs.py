"""Paths: the typed spec of POST /queries/paths and its pure parser.

A path is one unit's (user's or session's) walk through its events from a start point, or
back from an end point; docs/statistics.md ("Paths") is the contract both backends answer.

Pages (`pathType: "pages"`): a pageview is what `rta.core.queries.pageviews` says (types
`pageview`, `page`, `$pageview`), named by its page path as the web views name it
(`pageviews.page_path` of the first string path alias and URL alias the event carries);
a pageview naming no page is not part of any path. Both backends read that one rule.

Thread rule: pure functions over their arguments; any thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rta.core.errors import field_error
from rta.core.queries.filters import Group
from rta.core.queries.segment_spec import time_range, where_of

PATH_TYPES = ("events", "pages")
UNITS = ("users", "sessions")
OTHER = "$other"  # the node every name outside a step's top K is grouped into
DEFAULT_STEPS = 5
MIN_STEPS, MAX_STEPS = 1, 20
DEFAULT_WINDOW_MINUTES = 30  # as PostHog's path sessions (a 30 minute gap ends a path)
MAX_WINDOW_MINUTES = 366 * 24 * 60
DEFAULT_TOP_K = 10
MAX_TOP_K = 100
MINUTE = 60_000


@dataclass(frozen=True)
class PathsQuery:
    """One path per unit: from the first `start_point` in the range (or the unit's first
    event), or back from the last `end_point`; `where` narrows the events paths are made of."""

    path_type: str = "events"
    start_point: str | None = None
    end_point: str | None = None
    steps: int = DEFAULT_STEPS
    unit: str = "users"
    window_minutes: int = DEFAULT_WINDOW_MINUTES
    top_k: int = DEFAULT_TOP_K
    collapse_repeats: bool = False
    start: int | None = None
    end: int | None = None  # exclusive
    where: Group | None = None
    segment: str | None = None

    @property
    def window_ms(self) -> int:
        return self.window_minutes * MINUTE

    @property
    def backward(self) -> bool:
        """Walk back from the end point (step 1 is the end point, step 2 the event before)."""
        return self.end_point is not None


def _int(body: dict[str, Any], key: str, default: int, lo: int, hi: int) -> int:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise field_error(key, f"must be an integer from {lo} to {hi}", value=value)
    return value


def _point(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise field_error(key, "must be a non-empty string (an event type, or a page with "
                          "pathType pages)", value=value)
    return value


def parse_paths(body: Any, now: int | None) -> PathsQuery:
    """Validate a paths request; every error names its field."""
    if not isinstance(body, dict):
        raise field_error("body", "must be a JSON object")
    path_type = body.get("pathType", "events")
    if path_type not in PATH_TYPES:
        raise field_error("pathType", "must be events or pages", value=path_type,
                          allowed=list(PATH_TYPES))
    start_point = _point(body, "startPoint")
    end_point = _point(body, "endPoint")
    if start_point is not None and end_point is not None:
        raise field_error("endPoint", "cannot be combined with startPoint: give one or neither")
    steps = _int(body, "steps", DEFAULT_STEPS, MIN_STEPS, MAX_STEPS)
    unit = body.get("unit", body.get("countBy", "users"))
    if unit not in UNITS:
        raise field_error("unit", "must be users or sessions", value=unit, allowed=list(UNITS))
    window = _int(body, "windowMinutes", DEFAULT_WINDOW_MINUTES, 1, MAX_WINDOW_MINUTES)
    top_k = _int(body, "topK", DEFAULT_TOP_K, 1, MAX_TOP_K)
    collapse = body.get("collapseRepeats", False)
    if not isinstance(collapse, bool):
        raise field_error("collapseRepeats", "must be true or false", value=collapse)
    start, end = time_range(body, now)
    if start is not None and end is not None and start >= end:
        raise field_error("startTime", "must be before endTime")
    segment = body.get("segment")
    if segment is not None and (not isinstance(segment, str) or not segment):
        raise field_error("segment", "must be the name of a saved segment")
    return PathsQuery(path_type, start_point, end_point, steps, unit, window, top_k, collapse,
                      start, end, where_of(body, ""), segment)
