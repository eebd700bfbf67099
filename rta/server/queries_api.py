"""Behavioural queries and saved segments: /queries/funnel|cohort|abtest|execute, /segments.

Thin by design: each query takes its snapshot and runs in a worker thread through
`run_query` (bounded concurrency, 504 past the query timeout), so ingestion and WebSockets
keep flowing during a long query and the event loop never waits on query work.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from quart import Blueprint, Response
from quart_trio import QuartTrio

from rta.core.embedded import segments
from rta.core.engine import Engine
from rta.core.queries import behaviour
from rta.server.http import engine, int_arg, json_object, json_response, run_query

bp = Blueprint("queries_api", __name__)


def setup(app: QuartTrio, eng: Engine) -> None:
    """Publish the saved-segment resolver every filter uses (`"segment": "Premium Users"`)."""
    resolve = segments.resolver(eng)

    def segment_resolver(name: str) -> np.ndarray:
        return resolve(name)

    eng.extensions["segment_resolver"] = segment_resolver


Runner = Callable[..., dict[str, Any]]  # (engine, body, now, snap) -> response


def _snapshot_and_run(runner: Runner, eng: Engine, body: Any) -> dict[str, Any]:
    return runner(eng, body, None, eng.snapshot())


async def _run(runner: Runner, body: Any) -> Response:
    result = await run_query(_snapshot_and_run, runner, engine(), body)
    return json_response(result)


@bp.post("/queries/funnel")
async def funnel() -> Response:
    return await _run(behaviour.run_funnel, await json_object())


@bp.post("/queries/cohort")
async def cohort() -> Response:
    return await _run(behaviour.run_cohort, await json_object())


@bp.post("/queries/abtest")
async def abtest() -> Response:
    return await _run(behaviour.run_abtest, await json_object())


@bp.post("/queries/segment")
async def segment() -> Response:
    return await _run(behaviour.run_segment, await json_object())


@bp.post("/queries/execute")
async def execute() -> Response:
    """`{"type": "segment" | "funnel" | "cohort" | "abtest", "config": {...}}`."""
    return await _run(behaviour.run_query, await json_object())


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
