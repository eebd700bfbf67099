"""Persons over HTTP: `POST /persons/merge`, `GET /persons` (list, search),
`GET /persons/{id}` (the profile), `POST /persons/{id}/properties`, `DELETE /persons/{id}`
(erasure, admin scope), and `?identity=raw`.

`setup` installs a before-request hook that reads `identity` (`persons`, the default, or
`raw`) from any request's query string into `persons.identity_mode`, so every query route
(analytics, queries, dashboards, exports) can count raw distinct ids without a parameter of
its own; the query context reads it when it is built.
"""

from __future__ import annotations

from typing import Any

from quart import Blueprint, Quart, Response, request
from werkzeug.datastructures import ImmutableMultiDict

from rta.core import person_profile
from rta.core.engine import Engine
from rta.core.errors import field_error
from rta.core.persons import identity_mode, parse_identity
from rta.core.profiles import parse_limit
from rta.server.http import engine, json_object, json_response, run_query

bp = Blueprint("persons", __name__)


@bp.post("/persons/merge")
async def merge() -> Response:
    body = await json_object()
    unknown = sorted(set(body) - {"distinctIds", "force"})
    if unknown:
        raise field_error(unknown[0], "unknown field (expected distinctIds, force)")
    # on the event loop, where ingest applies links too (a merge is one small fsynced append)
    result = engine().persons.merge(body.get("distinctIds"), body.get("force", False))
    return json_response(result)


@bp.get("/persons")
async def list_persons() -> Response:
    """Persons ordered by person id: `search` (in distinct ids and property values),
    `limit` (1-1000, default 100), `cursor` (the previous page's `nextCursor`)."""
    args = request.args
    unknown = sorted(set(args) - {"search", "limit", "cursor"})
    if unknown:
        raise field_error(unknown[0], "unknown parameter (expected search, limit, cursor)")
    limit = parse_limit(args.get("limit"))
    profiles = engine().profiles
    result = await run_query(profiles.list, args.get("search"), limit, args.get("cursor"))
    return json_response(result)


@bp.get("/persons/<path:person_id>")
async def show(person_id: str) -> Response:
    """The person an id belongs to: ids, properties, first and last seen, event count and
    the newest events."""
    return json_response(await run_query(person_profile.describe, engine(), person_id))


@bp.post("/persons/<path:person_id>/properties")
async def set_properties(person_id: str) -> Response:
    """Update a person's properties: `{"$set": {...}, "$set_once": {...}, "$unset": [...]}`
    (404 for an unknown id; all or nothing)."""
    body = await json_object()
    # on the event loop, where ingest applies updates too (one small fsynced append)
    return json_response(engine().profiles.set_properties(person_id, body))


@bp.delete("/persons/<path:person_id>")
async def erase(person_id: str) -> Response:
    # (erasure.py: the cut and swap on the event loop, the rewrites in worker threads)
    return json_response(await engine().erasure.erase(person_id))


def setup(app: Quart, eng: Engine) -> None:
    @app.before_request
    async def _identity() -> Any:
        args = request.args
        identity_mode.set(parse_identity(args.get("identity")))
        if "identity" in args:  # consumed here: the routes' own parameter checks never see it
            request.args = ImmutableMultiDict(  # type: ignore[misc]
                [(k, v) for k, v in args.items(multi=True) if k != "identity"])
        return None
