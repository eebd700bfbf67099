"""Behavioural queries: typed specs executed against a `QueryContext`.

    query = parse("funnel", body, now)        # pure (behaviour_specs)
    result = execute(query, ctx)              # worker thread: resolves the segment, computes
    body = result.to_json()                   # the API's response, at the edge

`parse_execute` reads the `/queries/execute` envelope. The dict-in, dict-out names
(`run_funnel`, `run_cohort`, `run_abtest`, `run_segment`, `run_query`) remain only for callers
not yet on the typed path (dashboards, alerts).

Thread rule: parse anywhere (pure); `execute` in the query's worker thread.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from rta.core.errors import field_error
from rta.core.queries import abtest, paths_results
from rta.core.queries.backend import QueryContext
from rta.core.queries.behaviour_results import BehaviourResult, ExecuteResult
from rta.core.queries.behaviour_specs import (
    AbTestQuery,
    CohortQuery,
    FunnelQuery,
    SegmentQuery,
    parse_abtest,
    parse_cohort,
    parse_funnel,
    parse_segment_query,
)
from rta.core.queries.paths_specs import PathsQuery, parse_paths
from rta.core.queries.stickiness_specs import (
    LifecycleQuery,
    StickinessQuery,
    parse_lifecycle,
    parse_stickiness,
)
from rta.core.queries.units import unit_backend, unit_group

if TYPE_CHECKING:
    from rta.core.engine import Engine

Snapshot = Any  # the backend's view of the data (the embedded engine's snapshot)

QUERY_TYPES = ("segment", "funnel", "cohort", "abtest", "paths", "stickiness", "lifecycle")
BehaviourQuery = (FunnelQuery | CohortQuery | AbTestQuery | SegmentQuery | PathsQuery
                  | StickinessQuery | LifecycleQuery)
PARSERS: dict[str, Callable[[Any, int], BehaviourQuery]] = {
    "funnel": parse_funnel, "cohort": parse_cohort, "abtest": parse_abtest,
    "segment": parse_segment_query, "paths": parse_paths, "stickiness": parse_stickiness,
    "lifecycle": parse_lifecycle}


def parse(kind: str, body: Any, now: int) -> BehaviourQuery:
    """Parse a behavioural query by kind: funnel, cohort, abtest, segment."""
    return PARSERS[kind](body, now)


@dataclass(frozen=True)
class ExecuteQuery:
    """POST /queries/execute: one behavioural query, named; `save` stores a segment."""

    type: str
    name: Any
    query: BehaviourQuery
    config: dict[str, Any]  # the definition as given (what `save` stores)
    save: bool


def parse_execute(body: Any, now: int) -> ExecuteQuery:
    """`{"type": ..., "name": ..., "config": {...}, "save": bool}`; errors in the config
    name their field under `config.`."""
    if not isinstance(body, dict):
        raise field_error("body", "must be a JSON object")
    qtype = body.get("type")
    if qtype not in QUERY_TYPES:
        raise field_error("type", f"must be one of {', '.join(QUERY_TYPES)}", value=qtype,
                          allowed=list(QUERY_TYPES))
    config = body.get("config")
    if not isinstance(config, dict):
        raise field_error("config", "is required and must be an object")
    config = dict(config)
    if body.get("name") is not None and "name" not in config:
        config["name"] = body["name"]
    with rerooted():
        query = parse(qtype, config, now)
    return ExecuteQuery(qtype, config.get("name"), query, config,
                        qtype == "segment" and body.get("save") is True)


class rerooted:
    """Re-root the field paths of errors raised inside under `config.`."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        details = getattr(exc, "details", None)
        if not isinstance(details, list):
            return
        for d in details:
            if isinstance(d, dict) and isinstance(d.get("field"), str):
                d["field"] = "config." + d["field"] if d["field"] else "config"


def resolve_segment(name: str | None, ctx: QueryContext) -> np.ndarray | None:
    """Members of the saved segment a behavioural query names (None when none is)."""
    if name is None:
        return None
    if ctx.segments is None:
        raise field_error("segment", "saved segments are not available here")
    try:
        return ctx.segments(name)
    except KeyError:
        raise field_error("segment", f"no saved segment named {name!r}", value=name) from None


def execute(query: BehaviourQuery, ctx: QueryContext) -> BehaviourResult:
    """Run a behavioural query (in the caller's worker thread)."""
    backend = ctx.backend
    if isinstance(query, FunnelQuery):
        members = resolve_segment(query.segment, ctx)
        if unit_group(query.unit) is not None:  # groups: the users' funnel over groups
            grouped = unit_backend(ctx, query.unit, "countBy", members).funnel(
                dataclasses.replace(query, unit="users", segment_users=members))
            return dataclasses.replace(grouped, count_by=query.unit)
        return backend.funnel(dataclasses.replace(query, segment_users=members))
    if isinstance(query, CohortQuery):
        members = resolve_segment(query.segment, ctx)
        if unit_group(query.unit) is not None:
            cohort = unit_backend(ctx, query.unit, "unit", members).cohort(query, members)
            return dataclasses.replace(cohort, unit=query.unit)
        return backend.cohort(query, members)
    if isinstance(query, AbTestQuery):
        members = resolve_segment(query.segment, ctx)
        if query.metric_property:
            backend.check_numeric(query.metric_property, "metricProperty")
        return abtest.analyse(query, backend.ab_exposures(query, members))
    if isinstance(query, PathsQuery):
        return paths_results.build(query, backend.paths(query, resolve_segment(query.segment,
                                                                               ctx)))
    if isinstance(query, StickinessQuery):
        return backend.stickiness(query, resolve_segment(query.segment, ctx))
    if isinstance(query, LifecycleQuery):
        return backend.lifecycle(query, resolve_segment(query.segment, ctx))
    return backend.segment(query)


def execute_named(query: ExecuteQuery, ctx: QueryContext) -> ExecuteResult:
    """POST /queries/execute without the save (the caller stores the segment: I/O)."""
    with rerooted():
        result = execute(query.query, ctx)
    return ExecuteResult(query.type, query.name, result)


# -- compatibility: dict in, dict out (until dashboards and alerts use the typed path) -------

def _context(engine: Engine, now: int | None, snap: Snapshot | None) -> QueryContext:
    from rta.core import query_services as services

    return services.context(engine, now, snap)


def _run(kind: str, engine: Engine, body: Any, now: int | None,
         snap: Snapshot | None) -> dict[str, Any]:
    ctx = _context(engine, now, snap)
    return execute(parse(kind, body, ctx.now), ctx).to_json()


def run_funnel(engine: Engine, body: Any, now: int | None = None,
               snap: Snapshot | None = None) -> dict[str, Any]:
    return _run("funnel", engine, body, now, snap)


def run_cohort(engine: Engine, body: Any, now: int | None = None,
               snap: Snapshot | None = None) -> dict[str, Any]:
    return _run("cohort", engine, body, now, snap)


def run_abtest(engine: Engine, body: Any, now: int | None = None,
               snap: Snapshot | None = None) -> dict[str, Any]:
    return _run("abtest", engine, body, now, snap)


def run_segment(engine: Engine, body: Any, now: int | None = None,
                snap: Snapshot | None = None) -> dict[str, Any]:
    return _run("segment", engine, body, now, snap)


def run_query(engine: Engine, body: Any, now: int | None = None,
              snap: Snapshot | None = None) -> dict[str, Any]:
    """POST /queries/execute as a dict call, `"save": true` included."""
    from rta.core import query_services as services

    ctx = _context(engine, now, snap)
    query = parse_execute(body, ctx.now)
    result = execute_named(query, ctx)
    if query.save:
        result = dataclasses.replace(result, saved=services.save_segment(engine, query.config))
    return result.to_json()


def run_stickiness(engine: Engine, body: Any, now: int | None = None,
                   snap: Snapshot | None = None) -> dict[str, Any]:
    return _run("stickiness", engine, body, now, snap)


def run_lifecycle(engine: Engine, body: Any, now: int | None = None,
                  snap: Snapshot | None = None) -> dict[str, Any]:
    return _run("lifecycle", engine, body, now, snap)
