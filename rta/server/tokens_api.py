"""Token management over HTTP (admin scope): GET/POST /tokens, DELETE /tokens/{ref}."""

from __future__ import annotations

from quart import Blueprint, Response

from rta.core.auth import TokenStore
from rta.server.http import engine, json_object, json_response

bp = Blueprint("tokens", __name__)


def _tokens() -> TokenStore:
    store: TokenStore = engine().services.tokens
    return store


@bp.get("/tokens")
async def list_tokens() -> Response:
    return json_response({"tokens": _tokens().list_tokens()})


@bp.post("/tokens")
async def create_token() -> Response:
    body = await json_object()
    secret, record = _tokens().create(str(body.get("scope", "read")), body.get("name"))
    return json_response({**record, "token": secret}, 201)


@bp.delete("/tokens/<ref>")
async def revoke_token(ref: str) -> Response:
    return json_response({"revoked": _tokens().revoke(ref)})
