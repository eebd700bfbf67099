"""Silences: mute one alert or every alert for a time window.

Routes:
    POST /alerts/{id}/silence        {"for": "2h"} or {"until": time}, optional reason
    POST /alerts/silences            the same with "alertId" (absent or null: every alert)
    GET /alerts/silences             ?active=true for the ones muting now, ?alertId=...
    DELETE /alerts/silences/{id}     end a silence early
"""

from __future__ import annotations

from quart import Blueprint, Response, request

from rta.core import silences
from rta.core.alerts import ALERT_KIND, now_ms
from rta.server.http import bool_arg, engine, json_object, json_response

bp = Blueprint("silences_api", __name__)


@bp.post("/alerts/silences")
async def create_silence() -> Response:
    eng = engine()
    doc = silences.validate_silence(await json_object(), None, now_ms())
    if doc["alertId"] is not None:
        eng.metadata.get(ALERT_KIND, doc["alertId"])  # 404 for an unknown alert
    stored = eng.metadata.create(silences.KIND, doc)
    return json_response(silences.view(stored, now_ms()), 201)


@bp.post("/alerts/<alert_id>/silence")
async def silence_alert(alert_id: str) -> Response:
    eng = engine()
    eng.metadata.get(ALERT_KIND, alert_id)
    doc = silences.validate_silence(await json_object(), alert_id, now_ms())
    stored = eng.metadata.create(silences.KIND, doc)
    return json_response(silences.view(stored, now_ms()), 201)


@bp.get("/alerts/silences")
async def list_silences() -> Response:
    items = silences.list_silences(engine().metadata, now_ms(),
                                   request.args.get("alertId") or None,
                                   bool_arg("active"))
    return json_response({"silences": items, "total": len(items)})


@bp.delete("/alerts/silences/<silence_id>")
async def delete_silence(silence_id: str) -> Response:
    engine().metadata.delete(silences.KIND, silence_id)
    return json_response({"deleted": True, "id": silence_id})
