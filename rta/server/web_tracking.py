"""`POST /api/event`: what the first-party script (`web/js/rta.js`, served at `/js/rta.js`)
sends.

One event a request, `{"event": "$pageview", "properties": {...}, "domain": "..."}`, sent
with `navigator.sendBeacon` as text/plain (so browsers send it cross-origin without a
preflight; the route is open to every origin, as the SDK routes are). The server names the
visitor: `DailySalt.visitor_id(site, ip, user agent)`, the cookieless daily hash
(`core/visitor_salt.py`), becomes the event's `userId`; the site is `domain` (the tag's
`data-domain`) or the page's host. The event is enriched like the SDK routes' (device,
browser, country; the IP is not stored), stamped with the server's clock and `$lib: rta.js`,
and goes through the same validation and ingest path as `POST /events`. Privacy model:
docs/web.md.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from quart import Blueprint, Response, current_app, request
from quart_trio import QuartTrio

from rta.core.engine import Engine
from rta.core.errors import ValidationError, field_error
from rta.core.queries.timeparse import now_ms
from rta.core.visitor_salt import DailySalt
from rta.server import enrichment
from rta.server.http import engine, json_response, parse_json, read_body

bp = Blueprint("web_tracking", __name__)
# A page's event is small: a generous bound that still refuses junk early.
MAX_BODY = 64 * 1024
MAX_NAME = 200
LIB = "rta.js"


def setup(app: QuartTrio, eng: Engine) -> None:
    enrichment.install(app)
    app.config["RTA_WEB_SALT"] = DailySalt(eng.config.data_dir)


def _site(body: Any) -> str:
    """The site a visitor is counted for: `domain`, else the page's host, else the Origin's."""
    if isinstance(body, dict):
        props = body.get("properties")
        host = props.get("$host") if isinstance(props, dict) else None
        for value in (body.get("domain"), host):
            if isinstance(value, str) and value.strip():
                return value.strip().lower()[:255]
    return (urlsplit(request.headers.get("Origin") or "").netloc or "").lower()


def tracked_event(body: Any, site_salt: DailySalt, ip: str | None, user_agent: str | None,
                  now: int, site: str) -> dict[str, Any]:
    """The raw rta event for one script request (before enrichment and validation)."""
    if not isinstance(body, dict):
        raise ValidationError("body must be a JSON object",
                              [{"field": "", "got": type(body).__name__}])
    name = body.get("event")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
        raise field_error("event", f"is required: a string of 1 to {MAX_NAME} characters")
    props = body.get("properties")
    if props is None:
        props = {}
    if not isinstance(props, dict):
        raise field_error("properties", "must be a JSON object")
    domain = body.get("domain")
    extra: dict[str, Any] = {"$lib": LIB}
    if isinstance(domain, str) and domain.strip():
        extra["$domain"] = domain.strip()[:255]
    visitor = site_salt.visitor_id(site, ip or "", user_agent or "", now)
    return {"type": name, "userId": visitor, "timestamp": now,
            "properties": {**props, **extra}}


@bp.post("/api/event")
async def api_event() -> Response:
    """POST /api/event: one event from the first-party script (`/js/rta.js`)."""
    eng = engine()
    now = now_ms()
    body = parse_json(await read_body(MAX_BODY))
    client = enrichment.request_client(browser=True)
    event = tracked_event(body, current_app.config["RTA_WEB_SALT"], client.ip,
                          client.user_agent, now, _site(body))
    enrichment.enrich([event], client)
    batch = eng.admit_one(event, now)
    await eng.ingest(batch)
    return json_response({"accepted": 1}, 202)
