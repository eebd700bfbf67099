"""Typed behavioural queries (funnel, cohort, A/B test, segment) and their pure parsers.

Each parser validates the request body (the seed's payloads, see docs/statistics.md) into a
frozen spec; errors name the field, in the order the API always reported them. A saved
segment stays a name here: it is resolved when the query runs.

Thread rule: pure functions over their arguments; any thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rta.core.errors import field_error
from rta.core.group_wire import parse_unit, unit_group
from rta.core.queries.filters import EventFilter, Group, parse_where
from rta.core.queries.page_steps import step_filter
from rta.core.queries.segment_spec import (
    DEFAULT_SAMPLE,
    SegmentDef,
    parse_segment,
    sample_size,
    time_range,
    where_of,
)
from rta.core.queries.timeparse import DAY, parse_duration, parse_time_range

MIN_STEPS = 2
MAX_STEPS = 20
ORDERS = ("ordered", "strict", "any")
UNITS = ("users", "sessions")
DEFAULT_WINDOW = 14 * DAY
DEFAULT_BREAKDOWN_LIMIT = 25
RETENTION_TYPES = ("first_time", "recurring")
CRITERIA = ("on", "on_or_after")
MAX_PERIODS = 1000
MAX_COHORTS = 1000


def segment_name(body: dict[str, Any], path: str = "segment") -> str | None:
    """The saved segment a query is restricted to (None when none is named)."""
    spec = body.get("segment")
    if spec is None:
        return None
    if not isinstance(spec, str) or not spec:
        raise field_error(path, "must be the name of a saved segment")
    return spec


# -- funnel ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Step:
    """`flt` is what the kernels match (a page step's, see `page_steps`); `where` is the
    user's own condition, as written (warnings speak of it)."""

    name: str
    event_type: str
    flt: EventFilter
    where: Group | None = None


@dataclass(frozen=True)
class Exclusion:
    event_type: str
    flt: EventFilter
    from_step: int
    to_step: int
    where: Group | None = None


@dataclass(frozen=True)
class FunnelQuery:
    """`segment_users` is filled in at execution from `segment` (the kernels read it)."""

    steps: list[Step]
    start: int | None
    end: int | None  # exclusive
    window: int
    order: str = "ordered"
    unit: str = "users"
    exclusions: tuple[Exclusion, ...] = ()
    breakdown: str | None = None
    breakdown_limit: int = DEFAULT_BREAKDOWN_LIMIT
    where: Group | None = None
    segment_users: Any = None
    segment: str | None = None


def parse_funnel(body: Any, now: int | None) -> FunnelQuery:
    """Validate the seed's funnel payload (plus options); errors name the field."""
    if not isinstance(body, dict):
        raise field_error("body", "must be a JSON object")
    steps_spec = body.get("steps")
    if not isinstance(steps_spec, list):
        raise field_error("steps", "is required: a list of 2 to 20 steps")
    if not MIN_STEPS <= len(steps_spec) <= MAX_STEPS:
        raise field_error("steps", f"must have {MIN_STEPS} to {MAX_STEPS} steps, "
                          f"got {len(steps_spec)}", count=len(steps_spec))
    steps = [_parse_step(s, f"steps[{i}]") for i, s in enumerate(steps_spec)]
    start, end = time_range(body, now)
    window = parse_duration(body.get("timeLimit", DEFAULT_WINDOW), "timeLimit")
    order = body.get("order", "ordered")
    if order not in ORDERS:
        raise field_error("order", f"must be one of {', '.join(ORDERS)}", value=order,
                          allowed=list(ORDERS))
    unit = body.get("countBy", body.get("unit", "users"))
    if unit_group(unit if isinstance(unit, str) else None) is not None or \
            unit == "group:":  # groups: "group:<type>" (queries/units.py)
        unit = parse_unit(unit, "countBy", UNITS)
    elif unit not in UNITS:
        raise field_error("countBy", "must be users or sessions", value=unit,
                          allowed=list(UNITS))
    names = [s.name for s in steps]
    excl_spec = body.get("exclusions", [])
    if not isinstance(excl_spec, list):
        raise field_error("exclusions", "must be a list")
    exclusions = tuple(_parse_exclusion(x, f"exclusions[{i}]", names)
                       for i, x in enumerate(excl_spec))
    breakdown = body.get("breakdown")
    if breakdown is not None:
        if isinstance(breakdown, dict):
            breakdown = breakdown.get("property")
        if not isinstance(breakdown, str) or not breakdown:
            raise field_error("breakdown", "must be a property name")
        breakdown = breakdown.removeprefix("properties.")
    limit = body.get("breakdownLimit", DEFAULT_BREAKDOWN_LIMIT)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
        raise field_error("breakdownLimit", "must be an integer from 1 to 1000", value=limit)
    where = parse_where(body.get("where"), "where")
    return FunnelQuery(steps, start, end, window, order, unit, exclusions, breakdown, limit,
                       where, None, segment_name(body))


def _event_type(spec: dict[str, Any], path: str) -> str:
    etype = spec.get("eventType", spec.get("type", spec.get("event")))
    if not isinstance(etype, str) or not etype.strip():
        raise field_error(f"{path}.eventType", "is required and must be an event type")
    return etype


def _parse_step(spec: Any, path: str) -> Step:
    if isinstance(spec, str):
        spec = {"eventType": spec}
    if not isinstance(spec, dict):
        raise field_error(path, "must be an object with eventType")
    etype = _event_type(spec, path)
    name = spec.get("name", etype)
    if not isinstance(name, str) or not name:
        raise field_error(f"{path}.name", "must be a non-empty string")
    where = where_of(spec, path)
    return Step(name, etype, step_filter(etype, where), where)


def _step_ref(value: Any, names: list[str], path: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(names):
        return value
    if isinstance(value, str) and value in names:
        return names.index(value)
    raise field_error(path, f"must be a step index 0..{len(names) - 1} or a step name",
                      value=value)


def _parse_exclusion(spec: Any, path: str, names: list[str]) -> Exclusion:
    if not isinstance(spec, dict):
        raise field_error(path, "must be an object with eventType, fromStep, toStep")
    etype = _event_type(spec, path)
    lo = _step_ref(spec.get("fromStep", 0), names, f"{path}.fromStep")
    hi = _step_ref(spec.get("toStep", len(names) - 1), names, f"{path}.toStep")
    if hi <= lo:
        raise field_error(f"{path}.toStep", "must come after fromStep", fromStep=lo, toStep=hi)
    where = where_of(spec, path)
    return Exclusion(etype, step_filter(etype, where), lo, hi, where)


# -- cohort retention --------------------------------------------------------------------------

@dataclass(frozen=True)
class CohortQuery:
    """`entry`/`ret` are None when the cohort is defined by its filters alone (any event
    type); `breakdown` splits the grid by a property's value at each membership's entry
    event."""

    name: Any
    now: int
    entry: str | None
    ret: str | None
    periods: int
    length: int
    rtype: str
    criterion: str
    start: int
    end: int  # exclusive
    cohorts: int
    entry_flt: EventFilter
    ret_flt: EventFilter
    segment: str | None
    breakdown: str | None = None
    breakdown_limit: int = DEFAULT_BREAKDOWN_LIMIT
    entry_where: Group | None = None  # the filters as written (`entry_flt` may be a page
    ret_where: Group | None = None  # step's, see `page_steps`); warnings speak of these
    unit: str = "users"  # or "group:<type>": the grid counts groups (queries/units.py)


def parse_cohort(body: Any, now: int) -> CohortQuery:
    if not isinstance(body, dict):
        raise field_error("body", "must be a JSON object")
    by_filter = body.get("entryEvent") is None and bool(body.get("entryFilters"))
    entry = None if by_filter else _event(body, "entryEvent")
    ret = _event(body, "retentionEvent", entry) if (
        entry is not None or body.get("retentionEvent") is not None) else None
    periods = body.get("periods", 7)
    if isinstance(periods, bool) or not isinstance(periods, int) or \
            not 1 <= periods <= MAX_PERIODS:
        raise field_error("periods", f"must be an integer from 1 to {MAX_PERIODS}",
                          value=periods)
    length = parse_duration(body.get("periodLength", DAY), "periodLength")
    rtype = body.get("retentionType", "first_time")
    if rtype not in RETENTION_TYPES:
        raise field_error("retentionType", f"must be one of {', '.join(RETENTION_TYPES)}",
                          value=rtype, allowed=list(RETENTION_TYPES))
    criterion = body.get("criterion", "on")
    if criterion not in CRITERIA:
        raise field_error("criterion", f"must be one of {', '.join(CRITERIA)}",
                          value=criterion, allowed=list(CRITERIA))
    start, end = parse_time_range(body.get("startTime"), body.get("endTime"), now,
                                  time_range=body.get("timeRange"))
    if end is None:
        end = now + 1
    if start is None:  # (no events precede 1970: a grid reaching further back is empty)
        start = max(0, (now // length - periods) * length)
    if start >= end:
        raise field_error("startTime", "must be before endTime")
    ncoh = -(-(end - start) // length)
    if ncoh > MAX_COHORTS:
        raise field_error("periodLength", f"the range holds {ncoh} periods; at most "
                          f"{MAX_COHORTS} cohorts", cohorts=ncoh)
    entry_where = _filters(body, "entryFilters")
    ret_where = _filters(body, "retentionFilters")
    entry_flt = EventFilter(where=entry_where) if entry is None else step_filter(entry,
                                                                                  entry_where)
    ret_flt = EventFilter(where=ret_where) if ret is None else step_filter(ret, ret_where)
    breakdown, limit = _breakdown(body)
    unit = body.get("unit", "users")
    unit = "users" if unit in (None, "users") else parse_unit(unit, "unit", ("users",))
    return CohortQuery(body.get("name"), now, entry, ret, periods, length, rtype, criterion,
                       start, end, ncoh, entry_flt, ret_flt, segment_name(body), breakdown,
                       limit, entry_where, ret_where, unit)


def _filters(body: dict[str, Any], key: str) -> Group | None:
    """`entryFilters`/`retentionFilters` (errors name `filters`, as they always have)."""
    if not body.get(key):
        return None
    return where_of({"filters": body[key]}, "")


def _breakdown(body: dict[str, Any]) -> tuple[str | None, int]:
    """`breakdown` (a property name, or {"property": name}) and `breakdownLimit`."""
    breakdown = body.get("breakdown")
    if breakdown is not None:
        if isinstance(breakdown, dict):
            breakdown = breakdown.get("property")
        if not isinstance(breakdown, str) or not breakdown:
            raise field_error("breakdown", "must be a property name")
        breakdown = breakdown.removeprefix("properties.")
    limit = body.get("breakdownLimit", DEFAULT_BREAKDOWN_LIMIT)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
        raise field_error("breakdownLimit", "must be an integer from 1 to 1000", value=limit)
    return breakdown, limit


def _event(body: dict[str, Any], key: str, default: str | None = None) -> str:
    value = body.get(key, default)
    if not isinstance(value, str) or not value.strip():
        raise field_error(key, "is required and must be an event type")
    return value


# -- A/B test ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class AbTestQuery:
    name: Any
    assign: str  # the assignment event type
    variant_property: str
    metric_event: str
    metric_property: str | None
    minimum_sample: int
    control: Any
    level: float
    alpha: float
    variants: list[Any] | None
    split: dict[str, float] | None
    start: int | None
    end: int | None
    assign_flt: EventFilter
    metric_flt: EventFilter
    segment: str | None


def _opt_str(body: dict[str, Any], key: str, required: bool = True,
             default: str | None = None) -> str | None:
    value = body.get(key, default)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise field_error(key, "is required and must be a non-empty string")
    return value.removeprefix("properties.") if key.endswith("Property") else value


def parse_abtest(body: Any, now: int | None) -> AbTestQuery:
    if not isinstance(body, dict):
        raise field_error("body", "must be a JSON object")
    assign = _opt_str(body, "eventType", default="experiment_assigned")
    vprop = _opt_str(body, "variantProperty")
    metric = _opt_str(body, "metricEvent")
    mprop = _opt_str(body, "metricProperty", required=False)
    assert assign is not None and vprop is not None and metric is not None
    min_n = body.get("minimumSampleSize", 100)
    if isinstance(min_n, bool) or not isinstance(min_n, int) or min_n < 0:
        raise field_error("minimumSampleSize", "must be a non-negative integer", value=min_n)
    control = body.get("control", "control")
    if not isinstance(control, str | int | float) or isinstance(control, bool):
        raise field_error("control", "must be the control variant's value")
    level = body.get("confidenceLevel", 0.95)
    if isinstance(level, bool) or not isinstance(level, int | float) or not 0.5 <= level < 1:
        raise field_error("confidenceLevel", "must be a number in [0.5, 1)", value=level)
    alpha = round(1.0 - float(level), 12)  # 0.05, not 0.050000000000000044
    wanted = body.get("variants")
    if wanted is not None and (not isinstance(wanted, list) or len(wanted) < 2 or not all(
            isinstance(v, str | int | float) and not isinstance(v, bool) for v in wanted)):
        raise field_error("variants", "must list at least two variant values")
    split = body.get("expectedSplit")
    if split is not None and (not isinstance(split, dict) or not split or not all(
            isinstance(w, int | float) and not isinstance(w, bool) and w > 0
            for w in split.values())):
        raise field_error("expectedSplit", "must map variant values to positive weights")
    start, end = time_range(body, now)
    assign_flt = EventFilter(types=(assign,), where=where_of(body, "") if (
        "filters" in body or "where" in body) else None)
    metric_flt = EventFilter(types=(metric,), where=where_of(
        {"filters": body["metricFilters"]}, "") if body.get("metricFilters") else None)
    return AbTestQuery(body.get("name"), assign, vprop, metric, mprop, min_n, control, level,
                       alpha, wanted, split, start, end, assign_flt, metric_flt,
                       segment_name(body))


# -- segment -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class SegmentQuery:
    """Evaluate a segment definition: matching users, the universe, a sample."""

    definition: SegmentDef
    sample: int = DEFAULT_SAMPLE


def parse_segment_query(body: Any, now: int | None) -> SegmentQuery:
    if not isinstance(body, dict):
        raise field_error("config", "must be an object")
    seg = parse_segment(body, "", now)
    return SegmentQuery(seg, sample_size(body.get("sampleSize", body.get("limit"))))
