"""The /ws transport: an ASGI middleware in front of Quart that does the handshake (the same
`security.check_access` as every route), then runs the session over raw ASGI messages,
with frames to idle subscribers written directly (`ws_direct`) where the connection allows.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from quart import g
from quart_trio import QuartTrio
from werkzeug.datastructures import Headers, MultiDict

from rta.server.security import check_access, token_scope_allows
from rta.server.ws_direct import DirectSender
from rta.server.ws_session import Access, run_session

WS_PATH = "/ws"
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]


class LiveWebSocketMiddleware:
    """ASGI middleware: `/ws` WebSocket scopes are served here, everything else by Quart."""

    def __init__(self, inner: ASGIApp, app: QuartTrio) -> None:
        self.inner = inner
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") == "websocket" and scope.get("path") == WS_PATH:
            await serve_asgi(self.app, scope, receive, send)
        else:
            await self.inner(scope, receive, send)


def granted_token_id() -> str | None:
    record = getattr(g, "rta_token", None)
    return None if record is None else str(record["id"])


def shared_dashboard() -> str | None:
    """The one dashboard a share link's connection may follow (None: not a share link)."""
    record = getattr(g, "rta_token", None)
    return None if record is None else record.get("dashboard")


async def authorize(app: QuartTrio, scope: Scope) -> tuple[Any, Access]:
    """(refusal Response or None, what the connection may do) for a /ws handshake.

    The very checks every Quart route gets (`check_access`: token from the Authorization
    header, X-Rta-Token or ?token=, read scope, rate limit), run in an app context."""
    headers = Headers([(k.decode("latin-1"), v.decode("latin-1"))
                       for k, v in scope.get("headers", [])])
    query = scope.get("query_string", b"").decode("latin-1")
    args: MultiDict[str, str] = MultiDict(parse_qsl(query, keep_blank_values=True))
    client = scope.get("client")
    remote = client[0] if client else "<local>"
    async with app.app_context():
        refusal = check_access("GET", WS_PATH, headers, args, remote)
        ok = refusal is None
        dashboard = shared_dashboard()
        return refusal, Access(ok and token_scope_allows("write"),
                               ok and (dashboard is not None or token_scope_allows("read")),
                               granted_token_id(), dashboard)


async def _refuse(scope: Scope, send: Send, response: Any) -> None:
    """Answer the handshake with `response` (status, headers, JSON body), as Quart would."""
    if "websocket.http.response" in (scope.get("extensions") or {}):
        body = await response.get_data(as_text=False)
        await send({"type": "websocket.http.response.start", "status": response.status_code,
                    "headers": [(k.lower().encode("latin-1"), v.encode("latin-1"))
                                for k, v in response.headers.items()]})
        await send({"type": "websocket.http.response.body", "body": body, "more_body": False})
    else:  # a server without the extension: a bare refusal (HTTP 403)
        await send({"type": "websocket.close", "code": 1008})


async def serve_asgi(app: QuartTrio, scope: Scope, receive: Receive, send: Send) -> None:
    """One /ws connection over raw ASGI: handshake, auth, then the session."""
    first = await receive()
    if first.get("type") != "websocket.connect":
        return
    refusal, access = await authorize(app, scope)
    if refusal is not None:
        await _refuse(scope, send, refusal)
        return
    await send({"type": "websocket.accept"})
    peer_closed = False

    async def receive_text() -> str | bytes | None:
        nonlocal peer_closed
        while True:
            event = await receive()
            kind = event["type"]
            if kind == "websocket.receive":
                text = event.get("text")
                return text if text is not None else (event.get("bytes") or b"")
            if kind == "websocket.disconnect":
                peer_closed = True
                return None

    async def send_text(text: str) -> None:
        await send({"type": "websocket.send", "text": text})

    direct = DirectSender.attach(send)
    try:
        await run_session(app.config["RTA_ENGINE"], receive_text, send_text, access, direct)
    finally:
        if direct is not None:
            direct.close()
    if not peer_closed:
        await send({"type": "websocket.close", "code": 1000})
