"""Annotations over HTTP: POST/GET /annotations, GET/DELETE /annotations/{id}.

Scopes (`security.required_scope`): reading needs `read`, creating `write` (a deploy
pipeline marks its releases with the token it sends events with), deleting `admin`. The
author is the token's name when a token was presented, else the body's `author`. A share
link's token may list the annotations of its own dashboard only (`?dashboard=<its id>`).
"""

from __future__ import annotations

from quart import Blueprint, Response, g, request

from rta.core import annotation_store
from rta.server.http import engine, json_object, json_response

bp = Blueprint("annotations_api", __name__)


def _token_name() -> str | None:
    record = getattr(g, "rta_token", None)
    if record is None or record.get("scope") == "share":
        return None
    name = record.get("name")
    return name if isinstance(name, str) and name else None


@bp.post("/annotations")
async def create_annotation() -> Response:
    doc = annotation_store.create(engine().metadata, await json_object(), _token_name())
    return json_response(doc, 201, headers={"Location": f"/annotations/{doc['id']}"})


@bp.get("/annotations")
async def list_annotations() -> Response:
    args = request.args
    docs = annotation_store.query(engine().metadata, args.get("from"), args.get("to"),
                             args.get("dashboard") or None)
    return json_response({"annotations": docs, "total": len(docs)})


@bp.get("/annotations/<annotation_id>")
async def get_annotation(annotation_id: str) -> Response:
    return json_response(annotation_store.get(engine().metadata, annotation_id))


@bp.delete("/annotations/<annotation_id>")
async def delete_annotation(annotation_id: str) -> Response:
    doc = annotation_store.delete(engine().metadata, annotation_id)
    return json_response({"deleted": True, "id": doc["id"], "annotation": doc})
