"""Analytics endpoints: /analytics/aggregate, /count, /unique-users, /top, /web.

Thin by design: the request is parsed into a typed query (`rta.core.queries.analytics_specs`,
pure), answered from the result cache on the event loop when it may, and otherwise executed
through `run_query` (a worker thread, a concurrency cap and a timeout) so the event loop keeps
serving ingestion and WebSockets during a long query. A query naming a saved segment is
planned in the worker too: evaluating the segment is query work. A misspelt type or property,
or a comparison no stored value can match, adds `warnings` (`query_warnings`).
"""

from __future__ import annotations

from typing import Any

from quart import Blueprint, Response, request

from rta.core import query_services as services
from rta.core.queries import analytics, query_warnings, web
from rta.core.queries import compare as comparisons
from rta.core.queries import formula_query as formulas
from rta.core.queries.analytics_specs import parse
from rta.core.queries.web_specs import parse_web, settings_from
from rta.server.http import engine, json_object, json_response, run_query

bp = Blueprint("analytics_api", __name__)


def args_dict() -> dict[str, Any]:
    """Query arguments as a dict: one value as a string, repeated ones as a list."""
    out: dict[str, Any] = {}
    for key in request.args:
        values = request.args.getlist(key)
        out[key] = values[0] if len(values) == 1 else values
    return out


async def _run(kind: str, params: dict[str, Any]) -> Response:
    params, compare = comparisons.split_compare(params, kind)
    if kind == "aggregate" and formulas.is_formula_body(params):
        return await _run_formula(params, compare)
    eng = engine()
    now = services.now()
    query = parse(kind, params, now)
    ctx = services.context(eng, now)
    cache = services.query_cache(eng)
    if analytics.needs_worker(query):
        result = await run_query(analytics.execute, query, ctx, cache)
    else:
        planned = analytics.plan(query, ctx)
        hit = analytics.lookup(planned, cache)
        result = hit if hit is not None else await run_query(
            analytics.compute_and_remember, planned, cache)
    body = result.to_json()
    if compare is not None:  # (the previous period: a second query of the same shape)
        body["comparison"] = (await run_query(comparisons.compare, query, result, ctx,
                                              cache)).to_json()
    warnings = query_warnings.for_query(query, ctx.backend.vocabulary())
    return json_response(query_warnings.add_to(body, warnings))


async def _run_formula(params: dict[str, Any], compare: str | None) -> Response:
    """Named series and a formula (`series`, `formula`): rta.core.queries.formula_query."""
    eng = engine()
    now = services.now()
    query = formulas.parse_formula_query(params, now)
    ctx = services.context(eng, now)
    cache = services.query_cache(eng)
    result = await run_query(formulas.execute, query, ctx, cache)
    body = result.to_json()
    if compare is not None:
        body["comparison"] = (await run_query(comparisons.compare, query, result, ctx,
                                              cache)).to_json()
    warnings = formulas.warnings(query, ctx.backend.vocabulary())
    return json_response(query_warnings.add_to(body, warnings))


@bp.post("/analytics/aggregate")
async def aggregate() -> Response:
    body = await json_object()
    return await _run("aggregate", body)


@bp.get("/analytics/aggregate")
async def aggregate_get() -> Response:
    """The same query from query arguments, for links and curl."""
    return await _run("aggregate", args_dict())


async def _params() -> dict[str, Any]:
    """GET: the query arguments; POST: a JSON body of the same parameters (typed values,
    `where` as a real list)."""
    return args_dict() if request.method == "GET" else await json_object()


@bp.route("/analytics/count", methods=["GET", "POST"])
async def count() -> Response:
    return await _run("count", await _params())


@bp.route("/analytics/unique-users", methods=["GET", "POST"])
async def unique_users() -> Response:
    return await _run("unique-users", await _params())


@bp.route("/analytics/top", methods=["GET", "POST"])
async def top() -> Response:
    return await _run("top", await _params())


async def _web(dimension: str | None) -> Response:
    eng = engine()
    now = services.now()
    query = parse_web(args_dict(), now, dimension)
    ctx = services.context(eng, now)
    settings = settings_from(eng.config.visit_timeout_minutes, eng.config.web_own_hosts)
    result = await run_query(web.execute, query, ctx, settings, services.query_cache(eng))
    return json_response(result.to_json())


@bp.get("/analytics/web")
async def web_overview() -> Response:
    """Web analytics headline figures (visitors, visits, pageviews, views per visit, bounce
    rate, visit duration), each with the previous period's value and the change, and the
    visitors of the last five minutes."""
    return await _web(None)


@bp.get("/analytics/web/<dimension>")
async def web_breakdown(dimension: str) -> Response:
    """One web dimension (pages, entry-pages, exit-pages, sources, channels, utm-sources,
    utm-mediums, utm-campaigns, countries, browsers, os, devices): visitors, visits,
    pageviews, bounce rate and share per value; or `realtime`: visitors now."""
    return await _web(dimension)
