"""GET /ws: live channels (metrics, events, alerts, dashboard:<id>) and WebSocket ingest.

Client messages (JSON objects):
    {"type": "subscribe", "channel": "metrics"}
    {"type": "subscribe", "channel": "events", "filter": {"type": "pageview", "where": [...]}}
    {"type": "unsubscribe", "channel": "metrics"}
    {"type": "ping"}
    {"type": "event", "event": {...}, "requestId": 1}
    {"type": "events", "events": [...], "partial": true, "requestId": 2}

Server messages: {"type", "channel", "timestamp", "data"} (see rta.core.live). Ingest is
acknowledged once the events are durable: every message read while a commit is running is
validated into one batch and committed with one `engine.ingest` call (one group commit), and
one `ack` answers them all, naming each message by its requestId:
    {"type": "ack", "channel": null, "timestamp": ..., "data": {"messages": 3,
     "requestIds": [1, 2, 3], "accepted": 5, "duplicates": 0, "ids": [...],
     "rejected": [{"requestId", "index", "error"}],   # dropped events (partial messages)
     "errors": [{"requestId", "error"}]}}              # messages refused as a whole
`partial` defaults to false, as over HTTP: one invalid event refuses its whole message.
A message larger than `max_batch_bytes` (the HTTP batch limit) is answered with an error
message (code `payload_too_large`, no requestId: it is not parsed); the connection stays open.
Ingest messages need a token with write scope when auth applies (the handshake needs read,
as every /ws request does); without it they are answered with a `forbidden` error.

Modules, one job each: `ws_transport` (the ASGI middleware in front of Quart: handshake
with the same `security.check_access` as every route, refusals as HTTP responses through
the `websocket.http.response` extension), `ws_direct` (frames written straight to
hypercorn's socket for the fan-out: the only code that knows hypercorn's internals),
`ws_session` (the protocol above, over any transport), `ws_ingest` (ingest messages through
the engine's one ingest path). This module keeps the blueprint: a Quart route for `/ws`
(the URL map feeds the OpenAPI document) that runs the same session should the middleware
ever be bypassed.
"""

from __future__ import annotations

from quart import Blueprint, websocket
from quart_trio import QuartTrio

from rta.core.engine import Engine
from rta.server.http import engine as current_engine
from rta.server.security import token_scope_allows
from rta.server.ws_direct import DirectSender, text_frame
from rta.server.ws_session import Access, run_session
from rta.server.ws_transport import WS_PATH, LiveWebSocketMiddleware, granted_token_id

bp = Blueprint("ws_api", __name__)

__all__ = ["WS_PATH", "DirectSender", "LiveWebSocketMiddleware", "bp", "setup", "text_frame"]


def setup(app: QuartTrio, engine: Engine) -> None:
    """Put the /ws middleware in front of this app (the hub is one of the engine's services,
    built by `create_app` before any feature's setup)."""
    app.asgi_app = LiveWebSocketMiddleware(app.asgi_app, app)  # type: ignore[method-assign, assignment]


@bp.websocket("/ws")
async def ws_endpoint() -> None:
    """Quart route, reached only without the middleware (security's hook did the auth)."""
    await websocket.accept()
    await run_session(current_engine(), websocket.receive, websocket.send,
                      Access(token_scope_allows("write"), token_scope_allows("read"),
                             granted_token_id()))
