"""WebSocket ingest: `event` / `events` messages validated and committed in groups.

Every message read while a commit runs is admitted on its own (`Engine.admit_one` /
`Engine.admit`, the path HTTP takes, so the same checks and the same `invalid_batch` error)
and the valid ones are committed with one `Engine.ingest` call (one group commit); one `ack`
answers the whole group.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from rta.core.engine import Engine
from rta.core.errors import PayloadTooLarge, RtaError, ValidationError, field_error
from rta.core.events import EventBatch

WS_PARTIAL_HINT = '(send "partial": true to store the valid ones)'


@dataclass
class IngestRequest:
    """One ingest message, parsed but not yet validated."""

    request_id: Any
    items: list[Any]
    partial: bool
    single: bool
    size: int  # bytes of the message: a bound on any one event's size


def message_size(raw: str | bytes) -> int:
    if isinstance(raw, bytes):
        return len(raw)
    return len(raw) if raw.isascii() else len(raw.encode())


def parse_ingest(eng: Engine, kind: str, msg: dict[str, Any], request_id: Any,
                 raw: str | bytes) -> IngestRequest:
    """An `event` or `events` message's shape checked (not its events): 400-style errors."""
    partial = msg.get("partial", False)
    if not isinstance(partial, bool):
        raise field_error("partial", "must be true or false")
    if kind == "event":
        if "event" not in msg:
            raise field_error("event", "is required: {\"type\": \"event\", \"event\": {...}}")
        return IngestRequest(request_id, [msg["event"]], False, True, message_size(raw))
    items = msg.get("events")
    if not isinstance(items, list):
        raise field_error("events", "must be a list of events")
    limit = eng.validator.limits.max_batch_events
    if len(items) > limit:
        raise PayloadTooLarge(f"message has {len(items)} events; the limit is {limit}",
                              [{"field": "events", "count": len(items), "limit": limit}],
                              code="batch_too_large")
    return IngestRequest(request_id, items, partial, False, message_size(raw))


async def ingest_group(eng: Engine, group: list[IngestRequest]) -> dict[str, Any]:
    """Admit every message of `group`, commit the valid events once; the ack's data."""
    now = time.time_ns() // 1_000_000
    errors: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    parts: list[EventBatch] = []
    committed: list[IngestRequest] = []
    for req in group:
        try:
            if req.single:
                part = eng.admit_one(req.items[0], now)
            else:
                admitted = eng.admit(req.items, partial=req.partial, now=now,
                                     size_bound=req.size, hint=WS_PARTIAL_HINT)
                part = admitted.batch
                rejected.extend({"requestId": req.request_id, **r} for r in admitted.rejected)
        except ValidationError as exc:
            errors.append({"requestId": req.request_id, "error": exc.to_dict()["error"]})
            continue
        if len(part):
            parts.append(part)
            committed.append(req)
    out: dict[str, Any] = {"messages": len(group),
                           "requestIds": [r.request_id for r in group if r.request_id is not None],
                           "accepted": 0, "duplicates": 0, "ids": [], "rejected": rejected,
                           "errors": errors}
    if parts:
        batch = parts[0] if len(parts) == 1 else EventBatch.concat(parts)
        try:
            result = await eng.ingest(batch)
        except RtaError as exc:
            errors.extend({"requestId": req.request_id, "error": exc.to_dict()["error"]}
                          for req in committed)
        else:
            out.update(accepted=result.accepted, duplicates=result.duplicates, ids=result.ids)
    return out
