"""Share links over HTTP, and the read-only page they open.

    POST   /dashboards/{id}/share            {"expiresIn": "7d"} or {"expiresAt": ...}
    GET    /dashboards/{id}/share            the dashboard's links (never their secrets)
    DELETE /dashboards/{id}/share[/{linkId}] revoke one link, or all of the dashboard's
    GET    /share/{token}[?embed=1]           the dashboard, read-only, for anyone with the URL

Making, listing and revoking links needs `admin` (a link publishes data to people without
an account, as changing a dashboard does). The page is public; its requests carry the link's
token, which `security.py` holds to scope "share": that dashboard's definition and widget
data, its annotations and its `dashboard:<id>` WebSocket channel, nothing else. A revoked
or expired link is refused at once, and its open WebSocket connections are closed
(`ws_session`). The page may be framed by the origins of the `share_frame_ancestors`
setting (CSP `frame-ancestors`; `'self'` by default); `?embed=1` hides its header.
"""

from __future__ import annotations

import html
import re
from typing import Any
from urllib.parse import quote

from quart import Blueprint, Response, current_app, g, request
from quart_trio import QuartTrio

from rta.core.engine import Engine
from rta.core.share_links import ShareLinkStore, is_share_secret
from rta.server.http import (
    DEFAULT_BODY_LIMIT,
    engine,
    is_json_type,
    json_response,
    media_type,
    parse_json,
    read_body,
    unsupported_media,
)
from rta.server.web import load_asset

bp = Blueprint("share_api", __name__)
PAGE = "share.html"
DEFAULT_FRAME_ANCESTORS = "'self'"
# One CSP source expression: a keyword, a scheme, or a host source (no `;`, `,` or quotes
# that could end the directive or start another).
_SOURCE = re.compile(r"^(?:'self'|'none'|\*|[A-Za-z][A-Za-z0-9+.-]*:(?://[^\s;,']+)?"
                     r"|[^\s;,':]+(?::[0-9*]+)?)$")
PAGE_CSP = ("default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; "
            "style-src 'self' 'unsafe-inline'; script-src 'self'; base-uri 'none'; "
            "form-action 'none'")


def frame_ancestors(value: Any) -> str:
    """The `share_frame_ancestors` setting as a CSP source list; a malformed one is refused
    at start-up rather than written into a header."""
    text = str(value or "").strip() or DEFAULT_FRAME_ANCESTORS
    sources = text.replace(",", " ").split()
    bad = [s for s in sources if not _SOURCE.match(s)]
    if bad or ("'none'" in sources and len(sources) > 1):
        raise ValueError(f"share_frame_ancestors: {bad[0] if bad else text!r} is not a CSP "
                         "source list such as \"'self' https://intranet.example.com\"")
    return " ".join(sources)


def _shares() -> ShareLinkStore:
    return engine().services.shares


def _created_by() -> str | None:
    record = getattr(g, "rta_token", None)
    return None if record is None else record.get("name")


async def _optional_object() -> Any:
    """The JSON body, or {} for none (`rta dashboards share ID` sends nothing)."""
    raw = await read_body(DEFAULT_BODY_LIMIT)
    if not raw.strip():
        return {}
    if not is_json_type(media_type()):
        raise unsupported_media(media_type(), ["application/json"])
    return parse_json(raw)


def share_url(secret: str) -> str:
    """The link people open: under the `public_url` setting when set (a server behind a
    proxy or on another name), else under the address this request came to."""
    base = str(current_app.config["RTA_OPTIONS"].get("public_url") or "").rstrip("/")
    return (base or request.host_url.rstrip("/")) + "/share/" + quote(secret, safe="")


@bp.post("/dashboards/<dashboard_id>/share")
async def create_link(dashboard_id: str) -> Response:
    secret, record = _shares().create(dashboard_id, await _optional_object(), _created_by())
    url = share_url(secret)
    return json_response({**record, "token": secret, "url": url, "embedUrl": url + "?embed=1"},
                         201)


@bp.get("/dashboards/<dashboard_id>/share")
async def list_links(dashboard_id: str) -> Response:
    engine().metadata.get("dashboard", dashboard_id)  # 404 for no such dashboard
    links = _shares().list_links(dashboard_id)
    return json_response({"links": links, "total": len(links)})


@bp.delete("/dashboards/<dashboard_id>/share")
async def revoke_all(dashboard_id: str) -> Response:
    engine().metadata.get("dashboard", dashboard_id)
    revoked = _shares().revoke(dashboard_id)
    return json_response({"revoked": revoked, "total": len(revoked)})


@bp.delete("/dashboards/<dashboard_id>/share/<link_id>")
async def revoke_one(dashboard_id: str, link_id: str) -> Response:
    engine().metadata.get("dashboard", dashboard_id)
    revoked = _shares().revoke(dashboard_id, link_id)
    return json_response({"revoked": revoked, "total": len(revoked)})


@bp.get("/share/<token>")
async def share_page(token: str) -> Response:
    """The read-only dashboard page (public: the link's token is its credential)."""
    record = _shares().verify(token) if is_share_secret(token) else None
    headers = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
               "X-Content-Type-Options": "nosniff"}
    if record is None:  # (the API's JSON error, as every refusal is)
        return json_response({"error": {
            "code": "share_link_unavailable", "details": [{"field": "token"}],
            "message": "this share link is invalid, revoked or expired"}}, 404, headers={
            **headers, "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'"})
    ancestors = current_app.config["RTA_SHARE_FRAME_ANCESTORS"]
    body = load_asset(PAGE).body.replace(
        b"{{dashboardId}}", html.escape(record["dashboardId"], quote=True).encode())
    return Response(body, 200, content_type="text/html; charset=utf-8", headers={
        **headers, "Content-Security-Policy": f"{PAGE_CSP}; frame-ancestors {ancestors}"})


def setup(app: QuartTrio, _engine: Engine) -> None:
    options = app.config["RTA_OPTIONS"]
    app.config["RTA_SHARE_FRAME_ANCESTORS"] = frame_ancestors(
        options.get("share_frame_ancestors"))
