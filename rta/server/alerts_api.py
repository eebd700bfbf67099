"""Alerts: POST/GET /alerts, GET/PUT/PATCH/DELETE /alerts/{id}, GET /alerts/history,
POST /alerts/{id}/test (backtest over stored data; `{"notify": true}` also sends a test
notification through the rule's channels)."""

from __future__ import annotations

from typing import Any

import trio
from quart import Blueprint, Response, request

from rta.core import query_services
from rta.core.alerts import (
    ALERT_KIND,
    HISTORY_KIND,
    AlertEvaluator,
    Rule,
    now_ms,
    parse_backtest,
    run_backtest,
    validate_alert,
)
from rta.server.http import engine, int_arg, json_object, json_response, parse_json

bp = Blueprint("alerts_api", __name__)


def _evaluator() -> AlertEvaluator:
    return engine().served.alerts


def _view(doc: dict[str, Any]) -> dict[str, Any]:
    out = dict(doc)
    state = _evaluator().state_of(doc["id"])
    out["state"] = state if state is not None else {"status": "disabled"}
    if not doc.get("enabled", True):
        out["state"] = {**out["state"], "status": "disabled"}
    try:
        out["summary"] = Rule.from_doc(doc).describe()
    except Exception:  # an old stored shape: show it anyway
        pass
    return out


@bp.post("/alerts")
async def create_alert() -> Response:
    doc = validate_alert(await json_object())
    stored = engine().metadata.create(ALERT_KIND, doc)
    _evaluator().load(stored)
    return json_response(_view(stored), 201)


@bp.get("/alerts")
async def list_alerts() -> Response:
    alerts = [_view(d) for d in engine().metadata.list(ALERT_KIND)]
    return json_response({"alerts": alerts, "count": len(alerts)})


@bp.get("/alerts/history")
async def alert_history() -> Response:
    limit = int_arg("limit", 50, 1, 10_000) or 50
    alert_id = request.args.get("alertId") or None
    items = engine().metadata.history(HISTORY_KIND, limit, ref=alert_id)
    return json_response({"history": items, "count": len(items)})


@bp.get("/alerts/<alert_id>")
async def get_alert(alert_id: str) -> Response:
    return json_response(_view(engine().metadata.get(ALERT_KIND, alert_id)))


@bp.put("/alerts/<alert_id>")
async def replace_alert(alert_id: str) -> Response:
    eng = engine()
    eng.metadata.get(ALERT_KIND, alert_id)  # 404 before validating
    doc = validate_alert(await json_object())
    stored = eng.metadata.put(ALERT_KIND, alert_id, doc)
    _evaluator().load(stored)
    return json_response(_view(stored))


@bp.patch("/alerts/<alert_id>")
async def patch_alert(alert_id: str) -> Response:
    """Merge the given top-level fields (and condition/notification keys) into the rule."""
    eng = engine()
    current = eng.metadata.get(ALERT_KIND, alert_id)
    body = await json_object()
    merged = {k: v for k, v in current.items() if k not in ("id", "createdAt", "updatedAt")}
    for key, value in body.items():
        if key in ("condition", "notification") and isinstance(value, dict):
            merged[key] = {**merged.get(key, {}), **value}
        else:
            merged[key] = value
    stored = eng.metadata.put(ALERT_KIND, alert_id, validate_alert(merged))
    _evaluator().load(stored)
    return json_response(_view(stored))


@bp.delete("/alerts/<alert_id>")
async def delete_alert(alert_id: str) -> Response:
    engine().metadata.delete(ALERT_KIND, alert_id)
    _evaluator().remove(alert_id)
    return json_response({"success": True, "id": alert_id})


@bp.post("/alerts/<alert_id>/test")
async def test_alert(alert_id: str) -> Response:
    eng = engine()
    doc = eng.metadata.get(ALERT_KIND, alert_id)
    raw = await request.get_data(as_text=False)
    body: Any = parse_json(raw) if isinstance(raw, bytes) and raw.strip() else {}
    query = parse_backtest(doc, body, now_ms())
    ctx = query_services.context(eng)
    result = (await trio.to_thread.run_sync(run_backtest, query, ctx.backend, ctx)).to_json()
    if query.notify:
        ev = _evaluator()
        if alert_id not in ev.states:
            ev.load(doc)
        result["notification"] = ev.test_notification(alert_id)
    return json_response(result)
