"""Annotations: dated notes ("v2.3 released", "incident 42") drawn on time-series charts.

Each is a metadata document of kind "annotation": `timestamp` (ms), `text`, `dashboardId`
(null: shown on every dashboard) and `author`. They live in the engine's `Metadata` store,
so the sqlite store and the shared ClickHouse store both keep them, and every daemon on one
ClickHouse database lists the same ones. They are few (people write them), so listing reads
the kind and filters here.

(Not `annotations.py`: `rta.core` has `from __future__ import annotations`, so
`from rta.core import annotations` would give the future feature, not the module.)

Thread rule: any thread (the metadata store serialises its own access).
"""

from __future__ import annotations

from typing import Any

from rta.core.errors import NotFoundError, ValidationError, field_error
from rta.core.metadata import Metadata
from rta.core.queries.timeparse import now_ms, parse_time, parse_time_range

KIND = "annotation"
DASHBOARD_KIND = "dashboard"
MAX_TEXT = 1000
MAX_AUTHOR = 200
FIELDS = ("timestamp", "text", "dashboardId", "author")


def _text(value: Any, field: str, limit: int, required: bool) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise field_error(field, "must be a non-empty string", value=value
                          if isinstance(value, str | int | float | bool) else None)
    text = value.strip()
    if len(text) > limit:
        raise field_error(field, f"must be at most {limit} characters", length=len(text))
    return text


def validate(metadata: Metadata, body: Any, author: str | None = None,
             now: int | None = None) -> dict[str, Any]:
    """The stored form of a POST body; `author` (the token's name) overrides the body's."""
    if not isinstance(body, dict):
        raise ValidationError("an annotation must be a JSON object", [{"field": ""}])
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise field_error(unknown[0], "unknown field", allowed=list(FIELDS))
    raw_ts = body.get("timestamp")
    timestamp = (now_ms() if now is None else now) if raw_ts is None \
        else parse_time(raw_ts, "timestamp", now)
    dashboard = body.get("dashboardId")
    if dashboard is not None:
        if not isinstance(dashboard, str) or not dashboard:
            raise field_error("dashboardId", "must be a dashboard id (a string) or null")
        try:
            metadata.get(DASHBOARD_KIND, dashboard)
        except NotFoundError:
            raise field_error("dashboardId", "no dashboard has this id",
                              value=dashboard) from None
    given = _text(body.get("author"), "author", MAX_AUTHOR, required=False)
    return {"timestamp": timestamp,
            "text": _text(body.get("text"), "text", MAX_TEXT, required=True),
            "dashboardId": dashboard, "author": author or given}


def create(metadata: Metadata, body: Any, author: str | None = None) -> dict[str, Any]:
    return metadata.create(KIND, validate(metadata, body, author))


def get(metadata: Metadata, annotation_id: str) -> dict[str, Any]:
    return metadata.get(KIND, annotation_id)


def delete(metadata: Metadata, annotation_id: str) -> dict[str, Any]:
    doc = metadata.get(KIND, annotation_id)
    metadata.delete(KIND, annotation_id)
    return doc


def query(metadata: Metadata, start: object = None, end: object = None,
          dashboard: str | None = None, now: int | None = None) -> list[dict[str, Any]]:
    """Annotations with start <= timestamp <= end (either open), oldest first.

    `dashboard` keeps the ones shown on that dashboard: its own and the global ones
    (no `dashboardId`)."""
    lo, hi = parse_time_range(start if start not in (None, "") else None,
                              end if end not in (None, "") else None, now,
                              start_field="from", end_field="to")
    out = []
    for doc in metadata.list(KIND):
        ts = doc.get("timestamp")
        if not isinstance(ts, int):
            continue
        if (lo is not None and ts < lo) or (hi is not None and ts >= hi):
            continue
        if dashboard is not None and doc.get("dashboardId") not in (None, dashboard):
            continue
        out.append(doc)
    out.sort(key=lambda d: (d["timestamp"], d.get("createdAt", 0), d["id"]))
    return out
