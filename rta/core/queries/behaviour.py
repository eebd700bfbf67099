"""Behavioural queries behind stable names: what the HTTP API, dashboards and alerts call.

Each function takes the request body (the seed's JSON payload) and returns the exact API
response; bad input raises `ValidationError` naming the field. `snap` pins the data a query
reads (default: a fresh `engine.snapshot()`, which is safe from any thread).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rta.core.embedded import funnel, retention, segments
from rta.core.embedded.store.snapshot import Snapshot
from rta.core.errors import field_error
from rta.core.queries import abtest

if TYPE_CHECKING:
    from rta.core.engine import Engine

QUERY_TYPES = ("segment", "funnel", "cohort", "abtest")


def run_funnel(engine: Engine, body: Any, now: int | None = None,
              snap: Snapshot | None = None) -> dict[str, Any]:
    return funnel.run(engine, body, now, snap)


def run_cohort(engine: Engine, body: Any, now: int | None = None,
              snap: Snapshot | None = None) -> dict[str, Any]:
    return retention.run(engine, body, now, snap)


def run_abtest(engine: Engine, body: Any, now: int | None = None,
              snap: Snapshot | None = None) -> dict[str, Any]:
    return abtest.run(engine, body, now, snap)


def run_segment(engine: Engine, body: Any, now: int | None = None,
               snap: Snapshot | None = None) -> dict[str, Any]:
    return segments.run(engine, body, now, snap)


def run_query(engine: Engine, body: Any, now: int | None = None,
              snap: Snapshot | None = None) -> dict[str, Any]:
    """POST /queries/execute: `{"type": ..., "name": ..., "config": {...}}`.

    For `segment`, `"save": true` also stores the definition as a saved segment (the seed's
    example creates "Premium Users" this way); the answer then carries `segment` (the doc).
    The answer is the query's own response with `type` and `name` added.
    """
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
    runner = {"segment": run_segment, "funnel": run_funnel, "cohort": run_cohort,
              "abtest": run_abtest}[qtype]
    try:
        result = runner(engine, config, now, snap)
    except Exception as exc:  # re-root field paths under `config.`
        _reroot(exc)
        raise
    if qtype == "segment" and body.get("save") is True:
        result["segment"] = segments.create(engine, config)
    return {"type": qtype, "name": config.get("name"), **result}


def _reroot(exc: Exception) -> None:
    details = getattr(exc, "details", None)
    if not isinstance(details, list):
        return
    for d in details:
        if isinstance(d, dict) and isinstance(d.get("field"), str):
            d["field"] = "config." + d["field"] if d["field"] else "config"
