"""Health and statistics: GET /health, GET /stats."""

from __future__ import annotations

from typing import Any

from quart import Blueprint, Response

from rta.server.http import engine, json_response

bp = Blueprint("system", __name__)


@bp.get("/health")
async def health() -> Response:
    eng = engine()
    info = eng.health()
    return json_response(info, 200)


@bp.get("/stats")
async def stats() -> Response:
    eng = engine()
    out: dict[str, Any] = eng.stats()
    # Feature services (alerts, websocket hub) contribute their own sections.
    for name, provider in eng.extensions.get("stats_providers", {}).items():
        out[name] = provider()
    out.setdefault("alerts", {"alertsEvaluated": 0, "alertsTriggered": 0, "activeAlerts": 0})
    out.setdefault("websocket", {"activeConnections": 0, "messagesSent": 0, "channels": 0})
    return json_response(out)
