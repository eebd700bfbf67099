"""Persons over HTTP: `POST /persons/merge`, `GET /persons/{id}`, `DELETE /persons/{id}`
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

from rta.core.engine import Engine
from rta.core.errors import field_error
from rta.core.persons import identity_mode, parse_identity
from rta.server.http import engine, json_object, json_response

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


@bp.get("/persons/<path:person_id>")
async def show(person_id: str) -> Response:
    return json_response(engine().persons.describe(person_id))


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
