"""Groups over HTTP: `GET /groups`, `GET /groups/{type}`, `GET /groups/{type}/{key}`.

Thin: the engine's `Groups` service owns types and properties; event counts and first/last
seen come from the query backend (`Backend.group_stats`), so they run in a worker thread
like any query. See docs/people.md, "Groups".
"""

from __future__ import annotations

from quart import Blueprint, Response, request

from rta.core import query_services as services
from rta.core.errors import field_error
from rta.server.http import engine, json_response, run_query

bp = Blueprint("groups_api", __name__)
LIST_ARGS = ("search", "limit", "cursor")


@bp.get("/groups")
async def types() -> Response:
    return json_response({"types": engine().groups.summary(),
                          "maxTypes": engine().groups.max_types})


@bp.get("/groups/<group_type>")
async def list_groups(group_type: str) -> Response:
    unknown = sorted(set(request.args) - set(LIST_ARGS))
    if unknown:
        raise field_error(unknown[0], "unknown parameter (expected search, limit, cursor)")
    eng = engine()
    eng.groups.require_type(group_type)
    ctx = services.context(eng)
    args = request.args
    result = await run_query(eng.groups.list_groups, ctx.backend, group_type,
                             args.get("search"), args.get("limit", "100"), args.get("cursor"))
    return json_response(result)


@bp.get("/groups/<group_type>/<path:key>")
async def show(group_type: str, key: str) -> Response:
    eng = engine()
    eng.groups.require_type(group_type)
    ctx = services.context(eng)
    return json_response(await run_query(eng.groups.describe, ctx.backend, group_type, key))
