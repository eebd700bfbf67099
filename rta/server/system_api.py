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


@bp.get("/metrics")
async def metrics() -> Response:
    """Prometheus text exposition: engine metrics plus gauges read from /stats sections."""
    eng = engine()
    lines = [eng.metrics.render()]
    stats = eng.stats()["store"]
    gauges = {"rta_store_events": stats["events"], "rta_store_segments": stats["segments"],
              "rta_store_bytes_in_memory": stats["bytesInMemory"],
              "rta_store_bytes_on_disk": stats["bytesOnDisk"], "rta_wal_bytes": stats["walBytes"],
              "rta_uptime_seconds": eng.health()["uptime"]}
    for name, provider in eng.services.stats_sections().items():
        for key, value in provider().items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                gauges[f"rta_{name}_{_snake(key)}"] = value
    for name, value in gauges.items():
        lines.append(f"# TYPE {name} gauge\n{name} {value:g}\n")
    return Response("".join(lines), 200, mimetype="text/plain; version=0.0.4")


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")


@bp.get("/stats")
async def stats() -> Response:
    eng = engine()
    out: dict[str, Any] = eng.stats()
    # Feature services (alerts, websocket hub) contribute their own sections.
    for name, provider in eng.services.stats_sections().items():
        out[name] = provider()
    out.setdefault("alerts", {"alertsEvaluated": 0, "alertsTriggered": 0, "activeAlerts": 0})
    out.setdefault("websocket", {"activeConnections": 0, "messagesSent": 0, "channels": 0})
    return json_response(out)
