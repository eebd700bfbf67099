"""GET /ws: live channels (metrics, events, alerts, dashboard:<id>) and WebSocket ingest.

Client messages (JSON objects):
    {"type": "subscribe", "channel": "metrics"}
    {"type": "subscribe", "channel": "events", "filter": {"type": "pageview", "where": [...]}}
    {"type": "unsubscribe", "channel": "metrics"}
    {"type": "ping"}
    {"type": "event", "event": {...}, "requestId": 1}
    {"type": "events", "events": [...], "partial": true, "requestId": 2}

Server messages: {"type", "channel", "timestamp", "data"} (see rta.core.live). Ingest is
acknowledged once the events are durable: messages that arrive while a commit is running are
validated and committed together, and one `ack` answers them all:
    {"type": "ack", "channel": null, "timestamp": ..., "data": {"messages": 3,
     "requestIds": [1, 2, 3], "accepted": 5, "duplicates": 0, "ids": [...],
     "rejected": [{"requestId", "index", "error"}],   # dropped events (partial messages)
     "errors": [{"requestId", "error"}]}}              # messages refused as a whole
`partial` defaults to false, as over HTTP: one invalid event refuses its whole message.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

import trio
from quart import Blueprint, websocket
from quart_trio import QuartTrio

from rta.core.engine import Engine
from rta.core.errors import PayloadTooLarge, RtaError, ValidationError, field_error
from rta.core.events import EventBatch
from rta.core.live import LiveHub, LiveMetrics, Subscriber, encode, error_message
from rta.server.http import engine as current_engine

bp = Blueprint("ws_api", __name__)
log = logging.getLogger("rta.server.ws")

DEFAULT_QUEUE = 256
DEFAULT_EVENTS_RATE = 1000.0
INGEST_QUEUE = 1024  # messages waiting for the commit in flight; more pauses reading


def _option(app: QuartTrio, name: str, env: str, default: float) -> float:
    value = app.config.get("RTA_OPTIONS", {}).get(name)
    if value is None:
        value = os.environ.get(env)
    return float(value) if value not in (None, "") else default


def setup(app: QuartTrio, engine: Engine) -> None:
    """Create the hub and the metrics counters once per engine; start the 1 s ticker."""
    if "live_hub" in engine.extensions:
        return
    hub = LiveHub(max_queue=int(_option(app, "ws_queue", "RTA_WS_QUEUE", DEFAULT_QUEUE)),
                  events_rate=_option(app, "live_events_rate", "RTA_LIVE_EVENTS_RATE",
                                      DEFAULT_EVENTS_RATE),
                  dicts=engine.store.dicts, version=engine.version,
                  segments=engine.extensions.get("segment_resolver"))
    metrics = LiveMetrics()
    engine.extensions["live_hub"] = hub
    engine.extensions["live_metrics"] = metrics
    engine.on_ingest(_guarded(metrics.on_ingest))
    engine.on_ingest(_guarded(hub.on_ingest))
    engine.extensions.setdefault("stats_providers", {})["websocket"] = hub.stats

    async def ticker() -> None:
        while True:
            await trio.sleep(1.0 - (time.time() % 1.0) + 0.0005)  # on the second
            if hub.subscribers("metrics"):
                hub.publish("metrics", metrics_data(engine))

    engine.add_background(ticker)


def _guarded(fn: Any) -> Any:
    def listener(batch: EventBatch) -> None:
        try:
            fn(batch)
        except Exception:  # a live view must never break ingestion
            log.exception("live hub could not take a batch")
    return listener


def metrics_data(engine: Engine) -> dict[str, Any]:
    metrics: LiveMetrics = engine.extensions["live_metrics"]
    store = engine.store
    return metrics.snapshot(totals={
        "events": store.stats()["events"], "eventsProcessed": store.events_ingested,
        "users": len(store.dicts.users), "eventTypes": len(store.dicts.types),
        "eventsPerSecond5s": round(engine.rate.rate(), 2),
        "eventsRejected": engine.events_rejected})


@dataclass
class _IngestRequest:
    request_id: Any
    items: list[Any]
    partial: bool
    single: bool


@bp.websocket("/ws")
async def ws_endpoint() -> None:
    eng = current_engine()
    hub: LiveHub = eng.extensions["live_hub"]
    await websocket.accept()
    sub = hub.connect()
    sub.send_control(hub.welcome(sub))
    send_ingest, receive_ingest = trio.open_memory_channel[_IngestRequest](INGEST_QUEUE)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_sender, sub, nursery.cancel_scope)
            nursery.start_soon(_ingest_pump, eng, sub, receive_ingest)
            while True:
                raw = await websocket.receive()
                await _handle(eng, hub, sub, raw, send_ingest)
    finally:
        hub.disconnect(sub)


async def _sender(sub: Subscriber, scope: trio.CancelScope) -> None:
    try:
        while True:
            for text in await sub.next_messages():
                await websocket.send(text)
                sub.mark_sent(1)
    except Exception as exc:  # the peer went away mid-send: end this connection only
        log.debug("websocket %s send failed: %s", sub.id, exc)
        scope.cancel()


async def _handle(eng: Engine, hub: LiveHub, sub: Subscriber, raw: str | bytes,
                  ingest: trio.MemorySendChannel[_IngestRequest]) -> None:
    try:
        msg = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        sub.send_control(error_message(ValidationError(
            f"message is not valid JSON: {exc}", [{"message": str(exc)}], code="invalid_json")))
        return
    if not isinstance(msg, dict):
        sub.send_control(error_message(ValidationError(
            "a message must be a JSON object with a `type`", [{"field": ""}],
            code="invalid_message")))
        return
    kind = msg.get("type")
    channel = msg.get("channel") if isinstance(msg.get("channel"), str) else None
    request_id = msg.get("requestId", msg.get("id"))
    extra = {} if request_id is None else {"requestId": request_id}
    try:
        if kind == "subscribe":
            info = await hub.subscribe(sub, msg.get("channel"), msg)
            sub.send_control(encode("subscribed", channel, info, **extra))
            if channel == "metrics":
                hub.send(sub, "metrics", metrics_data(eng))
        elif kind == "unsubscribe":
            hub.check_channel(msg.get("channel"))
            was = hub.unsubscribe(sub, str(channel))
            sub.send_control(encode("unsubscribed", channel, {"wasSubscribed": was}, **extra))
        elif kind == "ping":
            sub.send_control(encode("pong", None, msg.get("data"), **extra))
        elif kind in ("event", "events"):
            await ingest.send(_parse_ingest(eng, kind, msg, request_id))
        else:
            raise ValidationError(
                f"unknown message type {kind!r}; send subscribe, unsubscribe, ping, event "
                "or events", [{"field": "type", "value": kind if isinstance(kind, str) else None,
                               "allowed": ["subscribe", "unsubscribe", "ping", "event",
                                           "events"]}], code="unknown_message_type")
    except RtaError as exc:
        sub.send_control(error_message(exc, channel, **extra))


def _parse_ingest(eng: Engine, kind: str, msg: dict[str, Any],
                  request_id: Any) -> _IngestRequest:
    partial = msg.get("partial", False)
    if not isinstance(partial, bool):
        raise field_error("partial", "must be true or false")
    if kind == "event":
        if "event" not in msg:
            raise field_error("event", "is required: {\"type\": \"event\", \"event\": {...}}")
        return _IngestRequest(request_id, [msg["event"]], False, True)
    items = msg.get("events")
    if not isinstance(items, list):
        raise field_error("events", "must be a list of events")
    limit = eng.validator.limits.max_batch_events
    if len(items) > limit:
        raise PayloadTooLarge(f"message has {len(items)} events; the limit is {limit}",
                              [{"field": "events", "count": len(items), "limit": limit}],
                              code="batch_too_large")
    return _IngestRequest(request_id, items, partial, False)


async def _ingest_pump(eng: Engine, sub: Subscriber,
                       requests: trio.MemoryReceiveChannel[_IngestRequest]) -> None:
    """Commit what arrived while the previous commit ran, as one batch (one fsync)."""
    limit = eng.validator.limits.max_batch_events
    async for first in requests:
        group = [first]
        count = len(first.items)
        while count < limit:
            try:
                nxt = requests.receive_nowait()
            except trio.WouldBlock:
                break
            group.append(nxt)
            count += len(nxt.items)
        sub.send_control(encode("ack", None, await _ingest_group(eng, group)))


async def _ingest_group(eng: Engine, group: list[_IngestRequest]) -> dict[str, Any]:
    validator = eng.validator
    now = time.time_ns() // 1_000_000
    errors: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    batches: list[tuple[_IngestRequest, EventBatch]] = []
    for req in group:
        if req.single:
            try:
                batch = validator.validate_one(req.items[0], now)
            except ValidationError as exc:
                eng.events_rejected += 1
                errors.append({"requestId": req.request_id, "error": exc.to_dict()["error"]})
                continue
        else:
            batch, bad = validator.validate_batch(req.items, now)
            if bad:
                eng.events_rejected += len(bad)
                if not req.partial:
                    err = ValidationError(
                        f"{len(bad)} of {len(req.items)} events are invalid; nothing was stored "
                        "(send \"partial\": true to store the valid ones)",
                        [{"index": r["index"], **r["error"]} for r in bad], code="invalid_batch")
                    errors.append({"requestId": req.request_id, "error": err.to_dict()["error"]})
                    continue
                rejected.extend({"requestId": req.request_id, **r} for r in bad)
        if len(batch):
            batches.append((req, batch))
    out: dict[str, Any] = {"messages": len(group),
                           "requestIds": [r.request_id for r in group if r.request_id is not None],
                           "accepted": 0, "duplicates": 0, "ids": [], "rejected": rejected,
                           "errors": errors}
    if batches:
        merged = merge_batches([b for _, b in batches])
        try:
            result = await eng.ingest(merged)
        except RtaError as exc:
            errors.extend({"requestId": req.request_id, "error": exc.to_dict()["error"]}
                          for req, _ in batches)
        else:
            out.update(accepted=result.accepted, duplicates=result.duplicates, ids=result.ids)
    return out


def merge_batches(batches: list[EventBatch]) -> EventBatch:
    """One batch holding every row of `batches`, in order (property rows re-indexed)."""
    if len(batches) == 1:
        return batches[0]
    out = EventBatch(received_at=batches[0].received_at)
    offset = 0
    for b in batches:
        out.ids.extend(b.ids)
        out.timestamps.extend(b.timestamps)
        out.types.extend(b.types)
        out.users.extend(b.users)
        out.sessions.extend(b.sessions)
        for col, (rows, values) in b.props.items():
            target = out.props.setdefault(col, ([], []))
            target[0].extend(r + offset for r in rows)
            target[1].extend(values)
        offset += len(b)
    return out
