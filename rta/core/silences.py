"""Silences: mute one alert, or every alert, for a time window.

A silence is a metadata document (kind "silence"): `alertId` (null: every alert),
`startsAt`, `endsAt` (ms), `reason`. While one is active, the evaluator still evaluates
and moves the rule's state, but sends nothing: the notification goes to the alert history
marked `muted` with the silence's id. Expired silences stay listed (with `active: false`)
until deleted, so the history's `silenceId` can be looked up.

Thread rule: any thread (the metadata store serialises itself).
"""

from __future__ import annotations

import logging
from typing import Any

from rta.core.errors import RtaError, ValidationError, field_error
from rta.core.metadata import Metadata
from rta.core.queries.timeparse import parse_duration, parse_time

log = logging.getLogger("rta.alerts")
KIND = "silence"
MAX_SILENCE_MS = 366 * 86_400_000


def validate_silence(body: Any, alert_id: str | None, now: int) -> dict[str, Any]:
    """`{"for": "2h"}` or `{"until": time}`, optional `startsAt` (default now), `reason`;
    `alertId` in the body when the path names none (absent or null: every alert)."""
    if not isinstance(body, dict):
        raise ValidationError("body must be a JSON object", [{"field": ""}])
    target = alert_id
    if target is None:
        given = body.get("alertId")
        if given is not None and (not isinstance(given, str) or not given):
            raise field_error("alertId", "must be an alert id, or null for every alert",
                              value=given)
        target = given
    starts = parse_time(body["startsAt"], "startsAt", now) if body.get("startsAt") is not None \
        else now
    if body.get("for") is not None and body.get("until") is not None:
        raise field_error("for", "give either for or until, not both")
    if body.get("for") is not None:
        ends = starts + parse_duration(body["for"], "for")
    elif body.get("until") is not None:
        ends = parse_time(body["until"], "until", now)
    else:
        raise field_error("for", "is required: how long to mute, such as '2h' (or give until)")
    if ends <= max(starts, now):
        raise field_error("until" if body.get("until") is not None else "for",
                          "the silence must end in the future")
    if ends - starts > MAX_SILENCE_MS:
        raise field_error("for", "a silence lasts at most 366 days")
    reason = body.get("reason", "")
    if not isinstance(reason, str) or len(reason) > 500:
        raise field_error("reason", "must be a string of at most 500 characters")
    return {"alertId": target, "startsAt": starts, "endsAt": ends, "reason": reason}


def view(doc: dict[str, Any], now: int) -> dict[str, Any]:
    return {**doc, "scope": "alert" if doc.get("alertId") else "all",
            "active": doc["startsAt"] <= now < doc["endsAt"]}


def list_silences(metadata: Metadata, now: int, alert_id: str | None = None,
                  active_only: bool = False) -> list[dict[str, Any]]:
    out = []
    for doc in metadata.list(KIND):
        item = view(doc, now)
        if alert_id is not None and doc.get("alertId") not in (None, alert_id):
            continue
        if active_only and not item["active"]:
            continue
        out.append(item)
    return out


def active_silence(metadata: Metadata, alert_id: str, now: int) -> dict[str, Any] | None:
    """The silence muting `alert_id` at `now` (the one ending last), or None. If the store
    cannot answer (a shared ClickHouse store away), nothing is muted: a notification sent
    during a silence is better than one lost."""
    try:
        docs = metadata.list(KIND)
    except RtaError as exc:
        log.warning("silences not read, notifying anyway: %s", exc.message)
        return None
    found = [d for d in docs
             if d.get("alertId") in (None, alert_id) and d["startsAt"] <= now < d["endsAt"]]
    return max(found, key=lambda d: d["endsAt"]) if found else None
