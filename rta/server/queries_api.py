"""Behavioural queries and saved segments: /queries/funnel|cohort|abtest|paths|execute,
/segments.

Thin by design: each query is parsed into a typed spec (pure), takes its snapshot and runs in
a worker thread through `run_query` (bounded concurrency, 504 past the query timeout), so
ingestion and WebSockets keep flowing during a long query and the event loop never waits on
query work; saved segments are resolved inside that worker. Misspelt types and properties
add `warnings`.
"""

from __future__ import annotations

import dataclasses

from quart import Blueprint, Response

from rta.core import query_services as services
from rta.core.embedded import segments
from rta.core.queries import behaviour, query_warnings
from rta.server.http import engine, int_arg, json_object, json_response, run_query

bp = Blueprint("queries_api", __name__)


async def _run(kind: str) -> Response:
    """Parse (pure) on the event loop, then execute over a fresh snapshot in a worker."""
    body = await json_object()
    now = services.now()
    query = behaviour.parse(kind, body, now)
    ctx = services.context(engine(), now)
    result = await run_query(behaviour.execute, query, ctx)
    warnings = query_warnings.for_query(query, ctx.backend.vocabulary())
    return json_response(query_warnings.add_to(result.to_json(), warnings))


@bp.post("/queries/funnel")
async def funnel() -> Response:
    return await _run("funnel")


@bp.post("/queries/cohort")
async def cohort() -> Response:
    return await _run("cohort")


@bp.post("/queries/abtest")
async def abtest() -> Response:
    return await _run("abtest")


@bp.post("/queries/segment")
async def segment() -> Response:
    return await _run("segment")


@bp.post("/queries/paths")
async def paths() -> Response:
    return await _run("paths")


@bp.post("/queries/stickiness")
async def stickiness() -> Response:
    """Users by how many days (or weeks) of the range they did an event."""
    return await _run("stickiness")


@bp.post("/queries/lifecycle")
async def lifecycle() -> Response:
    """Per period: new, returning, resurrecting and dormant users of an event."""
    return await _run("lifecycle")


@bp.post("/queries/execute")
async def execute() -> Response:
    """`{"type": "segment" | "funnel" | "cohort" | "abtest" | "paths" | "stickiness" |
    "lifecycle", "config": {...}}`."""
    eng = engine()
    now = services.now()
    query = behaviour.parse_execute(await json_object(), now)
    ctx = services.context(eng, now)
    result = await run_query(behaviour.execute_named, query, ctx)
    if query.save:
        result = dataclasses.replace(result, saved=services.save_segment(eng, query.config))
    warnings = [dataclasses.replace(w, field=f"config.{w.field}") for w in
                query_warnings.for_query(query.query, ctx.backend.vocabulary())]
    return json_response(query_warnings.add_to(result.to_json(), warnings))


@bp.post("/segments")
async def create_segment() -> Response:
    doc = segments.create(engine(), await json_object())
    return json_response(doc, 201)


@bp.get("/segments")
async def list_segments() -> Response:
    docs = engine().metadata.list(segments.KIND)
    return json_response({"segments": docs, "total": len(docs)})


@bp.get("/segments/<ref>")
async def show_segment(ref: str) -> Response:
    """The saved definition plus its current userCount, totalUsers and sampleUsers."""
    eng = engine()
    sample = int_arg("sampleSize", segments.DEFAULT_SAMPLE, 0, segments.MAX_SAMPLE)
    assert sample is not None
    result = await run_query(lambda: segments.show(eng, ref, sample, None, eng.snapshot()))
    return json_response(result)


@bp.delete("/segments/<ref>")
async def delete_segment(ref: str) -> Response:
    doc = segments.delete(engine(), ref)
    return json_response({"deleted": doc["id"], "name": doc.get("name")})
