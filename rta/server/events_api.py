"""Ingestion and raw event listing: POST /events, POST /events/batch, GET /events."""

from __future__ import annotations

import json
from typing import Any

from quart import Blueprint, Response, request

from rta.core.errors import PayloadTooLarge, ValidationError, field_error
from rta.core.eventlist import Cursor, list_events
from rta.core.filters import Group, Predicate, parse_filter, parse_where
from rta.server.http import (
    NDJSON_TYPES,
    bool_arg,
    engine,
    int_arg,
    is_json_type,
    json_response,
    media_type,
    parse_json,
    read_body,
    unsupported_media,
)

bp = Blueprint("events", __name__)
RESERVED = {"type", "eventType", "userId", "sessionId", "startTime", "endTime", "timeRange",
            "limit", "cursor", "where", "segment", "operator"}


def parse_events_body(raw: bytes, kind: str) -> tuple[list[Any], int]:
    """A JSON array (or {"events": [...]}) or NDJSON, by content type; with an upper bound
    on any one event's encoded size (a line's length, or the whole body's)."""
    if kind in NDJSON_TYPES:
        items: list[Any] = []
        longest = 0
        for lineno, line in enumerate(raw.splitlines()):
            longest = max(longest, len(line))
            if not line.strip():
                continue
            try:
                items.append(json.loads(line))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise ValidationError(f"line {lineno + 1} is not valid JSON: {exc}",
                                      [{"index": len(items), "line": lineno + 1,
                                        "message": str(exc)}], code="invalid_json") from None
        return items, longest
    if not is_json_type(kind):
        raise unsupported_media(kind, ["application/json", "application/x-ndjson"])
    body = parse_json(raw)
    if isinstance(body, dict) and isinstance(body.get("events"), list):
        body = body["events"]
    if not isinstance(body, list):
        raise ValidationError("a batch must be a JSON array of events (or NDJSON)",
                              [{"field": "", "got": type(body).__name__}])
    return body, len(raw)


@bp.post("/events")
async def ingest_one() -> Response:
    eng = engine()
    raw = await read_body(eng.validator.limits.max_batch_bytes)
    kind = media_type()
    if kind in NDJSON_TYPES:
        return await _ingest_many(*parse_events_body(raw, kind))
    if not is_json_type(kind):
        raise unsupported_media(kind, ["application/json"])
    body = parse_json(raw)
    if isinstance(body, list):
        return await _ingest_many(body, len(raw))
    try:
        batch = eng.validator.validate_one(body)
    except ValidationError:
        eng.events_rejected += 1
        raise
    result = await eng.ingest(batch)
    event_id = batch.ids[0]
    return json_response({"success": True, "id": event_id, "accepted": result.accepted,
                          "duplicates": result.duplicates,
                          "duplicate": result.duplicates > 0}, 202)


@bp.post("/events/batch")
async def ingest_batch() -> Response:
    eng = engine()
    raw = await read_body(eng.validator.limits.max_batch_bytes)
    return await _ingest_many(*parse_events_body(raw, media_type()))


async def _ingest_many(items: list[Any], size_bound: int | None = None) -> Response:
    eng = engine()
    limit = eng.validator.limits.max_batch_events
    if len(items) > limit:
        raise PayloadTooLarge(f"batch has {len(items)} events; the limit is {limit}",
                              [{"field": "", "count": len(items), "limit": limit}],
                              code="batch_too_large")
    partial = bool_arg("partial")
    batch, rejected = eng.validator.validate_batch(items, size_bound=size_bound)
    if rejected:
        eng.events_rejected += len(rejected)
        if not partial:
            raise ValidationError(
                f"{len(rejected)} of {len(items)} events are invalid; nothing was stored "
                "(send ?partial=true to store the valid ones)",
                [{"index": r["index"], "field": r["error"]["details"][0].get("field", ""),
                  "code": r["error"]["code"], "message": r["error"]["message"]}
                 for r in rejected],
                code="invalid_batch")
    result = await eng.ingest(batch)
    payload: dict[str, Any] = {"success": True, "accepted": result.accepted,
                               "duplicates": result.duplicates, "rejected": rejected}
    if bool_arg("ids"):
        payload["ids"] = batch.ids
    return json_response(payload, 202)


def _property_params() -> Group | None:
    """Query parameters that are not reserved become property equality filters."""
    items: list[Predicate | Group] = []
    for key, value in request.args.items(multi=True):
        if key in RESERVED:
            continue
        prop = key[len("properties."):] if key.startswith("properties.") else key
        options: list[Predicate | Group] = [Predicate(prop, "eq", value)]
        try:
            options.append(Predicate(prop, "eq", float(value)))
        except ValueError:
            if value in ("true", "false"):
                options.append(Predicate(prop, "eq", value == "true"))
        items.append(options[0] if len(options) == 1 else Group("or", tuple(options)))
    return Group("and", tuple(items)) if items else None


def filter_from_args() -> dict[str, Any]:
    spec: dict[str, Any] = {}
    for name in ("startTime", "endTime", "timeRange", "segment"):
        if request.args.get(name):
            spec[name] = request.args[name]
    types = request.args.getlist("type") or request.args.getlist("eventType")
    if types:
        spec["type"] = [t for v in types for t in v.split(",") if t]
    users = request.args.getlist("userId")
    if users:
        spec["userId"] = users
    return spec


@bp.get("/events")
async def get_events() -> Response:
    eng = engine()
    spec = filter_from_args()
    flt = parse_filter(spec, path="", segments=eng.extensions.get("segment_resolver"))
    extra = _property_params()
    where_raw = request.args.get("where")
    if where_raw:
        try:
            where_json = json.loads(where_raw)
        except json.JSONDecodeError:
            raise field_error("where", "must be a JSON filter list") from None
        extra_where = parse_where(where_json, "where")
        if extra_where is not None:
            extra = extra_where if extra is None else Group("and", (extra, extra_where))
    session = request.args.get("sessionId")
    if session:
        sess = Predicate("sessionId", "eq", session)
        extra = Group("and", (sess,)) if extra is None else Group("and", (extra, sess))
    if extra is not None:
        flt.where = extra if flt.where is None else Group("and", (flt.where, extra))
    limit = int_arg("limit", 100, 1, 10_000) or 100
    cursor_text = request.args.get("cursor")
    cursor = Cursor.decode(cursor_text) if cursor_text else None
    return json_response(list_events(eng.snapshot(), flt, limit, cursor))
