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

Transport: `/ws` is served by an ASGI middleware in front of the Quart app
(`LiveWebSocketMiddleware`, installed by `setup`), which speaks the ASGI WebSocket protocol
to hypercorn directly. Quart's websocket wrapper adds a queue, a signal and context lookups
to every message; at 1,000 subscribers a tick was ~1,000 of those. The handshake runs the
same `security.check_access` as every other route (inside an app context), and refusals are
sent as HTTP responses (401/403/429) through the ASGI `websocket.http.response` extension.
The blueprint keeps a Quart route for `/ws` (the URL map feeds the OpenAPI document); it runs
the same session should the middleware ever be bypassed.
"""

from __future__ import annotations

import json
import logging
import socket
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import trio
from quart import Blueprint, g, websocket
from quart_trio import QuartTrio
from werkzeug.datastructures import Headers, MultiDict

from rta.core import jsonstrict
from rta.core.engine import Engine
from rta.core.errors import PayloadTooLarge, RtaError, ValidationError
from rta.core.live import LiveHub, Subscriber, encode, error_message
from rta.server.http import engine as current_engine
from rta.server.security import check_access, token_scope_allows
from rta.server.ws_ingest import IngestRequest, ingest_group, message_size, parse_ingest

bp = Blueprint("ws_api", __name__)
log = logging.getLogger("rta.server.ws")

WS_PATH = "/ws"
DEFAULT_QUEUE = 256
DEFAULT_EVENTS_RATE = 1000.0
INGEST_QUEUE = 4096  # ingest messages read but not yet committed; more pauses reading

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]
ReceiveText = Callable[[], Awaitable["str | bytes | None"]]  # None: the peer disconnected
SendText = Callable[[str], Awaitable[None]]


_NOSIGNAL = getattr(socket, "MSG_NOSIGNAL", 0)


class Forbidden(RtaError):
    status = 403
    code = "forbidden"


def setup(app: QuartTrio, engine: Engine) -> None:
    """Put the /ws middleware in front of this app (the hub is one of the engine's services,
    built by `create_app` before any feature's setup)."""
    app.asgi_app = LiveWebSocketMiddleware(app.asgi_app, app)  # type: ignore[method-assign, assignment]


# -- transports -------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class Access:
    """What a /ws connection may do, and the token it was granted on (None: no token)."""

    can_write: bool
    can_read: bool
    token_id: str | None = None


def _token_id() -> str | None:
    record = getattr(g, "rta_token", None)
    return None if record is None else str(record["id"])


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
        return refusal, Access(ok and token_scope_allows("write"),
                               ok and token_scope_allows("read"), _token_id())


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


_frame_cache: tuple[str | None, bytes] = (None, b"")


def text_frame(text: str) -> bytes:
    """`text` as one unmasked, final WebSocket text frame (RFC 6455 5.2), as a server sends.

    Cached for the last text: a broadcast hands the same string to every subscriber, so
    1,000 subscribers cost one encoding."""
    global _frame_cache
    if _frame_cache[0] is text:
        return _frame_cache[1]
    payload = text.encode()
    n = len(payload)
    if n < 126:
        head = bytes((0x81, n))
    elif n < 65536:
        head = bytes((0x81, 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x81, 127)) + n.to_bytes(8, "big")
    frame = head + payload
    _frame_cache = (text, frame)
    return frame


class DirectSender:
    """Writes server text frames straight to a hypercorn HTTP/1.1 connection's socket.

    Through ASGI each message costs a dict, wsproto framing, three protocol layers, a lock,
    a cancel scope and two trio checkpoints inside `send_all` (~150 us here), and a
    broadcast wakes one sender task per subscriber: a tick to 1,000 clients took longer than
    the 100 ms target. Here the (cached, shared) frame goes out with one non-blocking
    `send`, from the publisher itself when the subscriber has nothing queued
    (`Subscriber.direct`), else from the connection's sender task.

    Frames never interleave: every write, ours and hypercorn's own (pongs, close), happens
    under the connection's send lock. hypercorn's `trio.Lock` is swapped for a semaphore at
    attach time, because a partial write made by the publisher must keep the lock until the
    sender task writes the rest, and a trio.Lock may only be released by its owner.

    Attached only to plain-TCP HTTP/1.1 connections without a negotiated WebSocket extension
    (permessage-deflate changes the frames); anything else, including a hypercorn whose
    internals differ from what `attach` checks, goes through ASGI as usual.
    """

    partial_writes = 0  # frames whose tail went out through send_all (for the tests)

    def __init__(self, ws: Any, stream: trio.SocketStream, sock: socket.socket,
                 lock: trio.Semaphore, open_state: Any) -> None:
        self.ws = ws
        self.stream = stream
        self.sock = sock
        self.lock = lock
        self.open_state = open_state
        self.rest: memoryview | None = None  # the unwritten tail of a partial direct write
        self.broken = False
        self.sub: Subscriber | None = None

    @classmethod
    def attach(cls, send: Send) -> DirectSender | None:
        try:
            from hypercorn.protocol.h11 import H11Protocol
            from hypercorn.protocol.ws_stream import WSStream
            from hypercorn.trio.tcp_server import TCPServer
            from wsproto.connection import ConnectionState

            ws = getattr(send, "__self__", None)
            if not isinstance(ws, WSStream):
                return None
            proto = getattr(ws.send, "__self__", None)
            if not isinstance(proto, H11Protocol):
                return None  # HTTP/2 WebSockets multiplex streams over one socket
            server = getattr(proto.send, "__self__", None)
            if not isinstance(server, TCPServer):
                return None
            stream, lock = server.stream, server.send_lock
            if type(stream) is not trio.SocketStream:
                return None  # TLS
            sock = getattr(stream.socket, "_sock", None)
            if not isinstance(sock, socket.socket) or not isinstance(lock, trio.Lock) \
                    or lock.locked():
                return None
            if ws.connection._proto.extensions or ws.connection.state != ConnectionState.OPEN:
                return None
            semaphore = trio.Semaphore(1, max_value=1)
            server.send_lock = semaphore  # `async with` works the same for hypercorn
            return cls(ws, stream, sock, semaphore, ConnectionState.OPEN)
        except Exception:  # another hypercorn: ASGI it is
            return None

    def usable(self) -> bool:
        ws = self.ws
        return not self.broken and not ws.closed and ws.connection.state == self.open_state

    def _write(self, frame: bytes) -> int:
        """One non-blocking send (the lock held); a closed socket raises, never writes."""
        try:
            return self.sock.send(frame, _NOSIGNAL)
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError as exc:
            self.broken = True
            raise trio.BrokenResourceError(str(exc)) from exc

    def try_send(self, text: str) -> bool:
        """`Subscriber.direct`: write now if the socket takes it; False means "queue it"."""
        if not self.lock.value or not self.usable():
            return False
        frame = text_frame(text)
        self.lock.acquire_nowait()
        try:
            written = self._write(frame)
        except trio.BrokenResourceError:
            written = 0
        if written == len(frame):
            self.lock.release()
            return True
        if not written or self.sub is None:
            self.lock.release()
            return False
        DirectSender.partial_writes += 1
        self.rest = memoryview(frame)[written:]  # the lock stays held until `flush`
        self.sub.poke()
        return True

    async def flush(self) -> None:
        """Write the tail of a partial direct write, then let other writers in."""
        rest, self.rest = self.rest, None
        if rest is None:
            return
        try:
            await self.stream.send_all(rest)
        except BaseException:
            self.broken = True  # a partial frame is on the wire: no more frames
            raise
        finally:
            self.lock.release()

    def sender(self, fallback: SendText) -> SendText:
        async def send_text(text: str) -> None:
            await self.flush()
            if not self.usable():
                await fallback(text)
                return
            frame = text_frame(text)
            lock = self.lock
            if lock.value:
                lock.acquire_nowait()
            else:
                await lock.acquire()
            try:
                written = self._write(frame)
                if written < len(frame):
                    DirectSender.partial_writes += 1
                    try:
                        await self.stream.send_all(memoryview(frame)[written:])
                    except BaseException:
                        self.broken = True
                        raise
            finally:
                lock.release()
        return send_text

    def close(self) -> None:
        """The session ended: release a lock still held for an unwritten tail."""
        if self.rest is not None:
            self.rest = None
            self.broken = True
            self.lock.release()


@bp.websocket("/ws")
async def ws_endpoint() -> None:
    """Quart route, reached only without the middleware (security's hook did the auth)."""
    await websocket.accept()
    await run_session(current_engine(), websocket.receive, websocket.send,
                      Access(token_scope_allows("write"), token_scope_allows("read"),
                             _token_id()))


# -- the session ------------------------------------------------------------------------------


TOKEN_RECHECK_S = 0.5  # how soon a connection notices its token was revoked


async def run_session(eng: Engine, receive_text: ReceiveText, send_text: SendText,
                      access: Access, direct: DirectSender | None = None) -> None:
    """Serve one connection until the peer leaves (or its token is revoked): a reader (this
    task), a sender draining the subscriber's queues, and an ingest committer."""
    can_write, can_read = access.can_write, access.can_read
    hub: LiveHub = eng.served.live_hub
    sub = hub.connect()
    sub.send_control(hub.welcome(sub))
    if direct is not None:
        direct.sub = sub
        send_text = direct.sender(send_text)
        sub.direct = direct.try_send
    conn = _Connection(eng, hub, sub, can_write, can_read)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_sender, sub, send_text, nursery.cancel_scope,
                               None if direct is None else direct.flush)
            nursery.start_soon(conn.commit_loop)
            if access.token_id is not None:
                nursery.start_soon(_end_when_revoked, eng, sub, access.token_id,
                                   nursery.cancel_scope)
            while True:
                raw = await receive_text()
                if raw is None:
                    break
                await conn.handle(raw)
            nursery.cancel_scope.cancel()
    finally:
        hub.disconnect(sub)


async def _end_when_revoked(eng: Engine, sub: Subscriber, token_id: str,
                            scope: trio.CancelScope) -> None:
    """Scopes are checked at the handshake; a token revoked later must not keep an open
    connection streaming or ingesting, so it is re-checked here and the session ended."""
    tokens = eng.services.tokens
    while tokens.alive(token_id):
        await trio.sleep(TOKEN_RECHECK_S)
    sub.send_control(error_message(RtaError(
        "this connection's token was revoked", [{"field": "token"}], code="unauthorized")))
    await trio.sleep(0.2)  # (time for the sender to deliver that)
    scope.cancel()


async def _sender(sub: Subscriber, send_text: SendText, scope: trio.CancelScope,
                  flush: Callable[[], Awaitable[None]] | None) -> None:
    """Send whatever is queued, all of it per wake-up (the tick text is shared, not copied)."""
    try:
        while True:
            batch = await sub.next_messages()
            sub.sending = True
            sent = 0
            try:
                if flush is not None:
                    await flush()
                for text in batch:
                    await send_text(text)
                    sent += 1
            finally:
                sub.sending = False
                sub.mark_sent(sent)
    except Exception as exc:  # the peer went away mid-send: end this connection only
        log.debug("websocket %s send failed: %s", sub.id, exc)
        scope.cancel()


class _Connection:
    def __init__(self, eng: Engine, hub: LiveHub, sub: Subscriber, can_write: bool,
                 can_read: bool = True) -> None:
        self.eng = eng
        self.hub = hub
        self.sub = sub
        self.can_write = can_write
        self.can_read = can_read
        self.pending: deque[IngestRequest] = deque()
        self.wake = trio.Event()
        self.room = trio.Event()

    async def handle(self, raw: str | bytes) -> None:
        sub = self.sub
        limit = self.eng.validator.limits.max_batch_bytes
        if len(raw) > limit // 4 and message_size(raw) > limit:
            # Refused unparsed (no message but ingest comes near this size), with an error
            # frame; the connection stays open. hypercorn's own cap on any message (16 MiB)
            # closes the connection with 1009 above that.
            size = message_size(raw)
            sub.send_control(error_message(PayloadTooLarge(
                f"message is {size} bytes; the limit is {limit} (max_batch_bytes)",
                [{"bytes": size, "limit": limit}])))
            return
        try:
            msg = jsonstrict.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            sub.send_control(error_message(ValidationError(
                f"message is not valid JSON: {exc}", [{"message": str(exc)}],
                code="invalid_json")))
            return
        if not isinstance(msg, dict):
            sub.send_control(error_message(ValidationError(
                "a message must be a JSON object with a `type`", [{"field": ""}],
                code="invalid_message")))
            return
        kind = msg.get("type")
        channel = msg.get("channel") if isinstance(msg.get("channel"), str) else None
        request_id = msg.get("requestId", msg.get("id"))
        try:
            if kind == "event" or kind == "events":
                await self.queue_ingest(self.parse_ingest(kind, msg, request_id, raw))
            elif kind == "subscribe":
                if not self.can_read:
                    raise Forbidden("this token's scope does not allow subscribing; it needs "
                                    "'read'", [{"field": "type", "need": "read"}])
                info = await self.hub.subscribe(sub, msg.get("channel"), msg)
                sub.send_control(encode("subscribed", channel, info, **_rid(request_id)))
                if channel == "metrics":
                    self.hub.send(sub, "metrics", self.eng.served.metrics_data(self.eng))
            elif kind == "unsubscribe":
                self.hub.check_channel(msg.get("channel"))
                was = self.hub.unsubscribe(sub, str(channel))
                sub.send_control(encode("unsubscribed", channel, {"wasSubscribed": was},
                                        **_rid(request_id)))
            elif kind == "ping":
                sub.send_control(encode("pong", None, msg.get("data"), **_rid(request_id)))
            else:
                raise ValidationError(
                    f"unknown message type {kind!r}; send subscribe, unsubscribe, ping, event "
                    "or events", [{"field": "type",
                                   "value": kind if isinstance(kind, str) else None,
                                   "allowed": ["subscribe", "unsubscribe", "ping", "event",
                                               "events"]}], code="unknown_message_type")
        except RtaError as exc:
            sub.send_control(error_message(exc, channel, **_rid(request_id)))
        except RecursionError:  # (a filter nested past the interpreter's limit)
            sub.send_control(error_message(ValidationError(
                "the message nests too deeply", [{"field": ""}]), channel, **_rid(request_id)))

    # -- ingest -------------------------------------------------------------------------------

    def parse_ingest(self, kind: str, msg: dict[str, Any], request_id: Any,
                     raw: str | bytes) -> IngestRequest:
        if not self.can_write:
            raise Forbidden("this token's scope does not allow ingest; it needs 'write'",
                            [{"field": "type", "need": "write"}])
        return parse_ingest(self.eng, kind, msg, request_id, raw)

    async def queue_ingest(self, req: IngestRequest) -> None:
        """Queue for the next commit; with INGEST_QUEUE messages waiting, stop reading."""
        while len(self.pending) >= INGEST_QUEUE:
            self.room = trio.Event()
            await self.room.wait()
        self.pending.append(req)
        self.wake.set()

    async def commit_loop(self) -> None:
        """Commit everything read while the previous commit ran, as one batch (one fsync)."""
        limit = self.eng.validator.limits.max_batch_events
        while True:
            while not self.pending:
                self.wake = trio.Event()
                await self.wake.wait()
            group = [self.pending.popleft()]
            count = len(group[0].items)
            while self.pending and count + len(self.pending[0].items) <= limit:
                req = self.pending.popleft()
                group.append(req)
                count += len(req.items)
            self.room.set()
            self.sub.send_control(encode("ack", None, await ingest_group(self.eng, group)))


def _rid(request_id: Any) -> dict[str, Any]:
    return {} if request_id is None else {"requestId": request_id}


