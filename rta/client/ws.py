"""WebSocket client for /ws: live subscriptions and streamed ingest (trio-websocket).

    async with connect(server) as conn:             # welcome read, subscriptions confirmed
        await conn.subscribe("metrics")
        msg = await conn.receive()                  # {"type", "channel", "timestamp", "data"}

    await follow(server, [("events", {"type": "error"})], on_message)   # reconnects on its own
    totals = await stream_ingest(server, token, batches)                # `rta ingest --stream`

Callbacks rather than async generators: a generator cannot safely yield from inside the
nursery a WebSocket connection owns.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any

import trio
from trio_websocket import (
    ConnectionClosed,
    HandshakeError,
    WebSocketConnection,
    open_websocket_url,
)

MAX_MESSAGE = 64 * 1024 * 1024
FLUSH_MESSAGES = 128  # streamed ingest: queued messages framed into one write
Subscription = tuple[str, dict[str, Any] | None]  # (channel, events filter or None)


class LiveError(Exception):
    """The server answered a request with an error message."""

    def __init__(self, message: dict[str, Any]) -> None:
        self.code = str(message.get("code", "error"))
        self.message = str(message.get("message", message))
        self.details = message.get("details", [])
        super().__init__(f"{self.code}: {self.message}")


def ws_url(server: str) -> str:
    """http://host:port -> ws://host:port/ws (https -> wss); ws:// URLs pass through."""
    url = server.rstrip("/")
    if url.startswith("http://"):
        url = "ws://" + url[len("http://"):]
    elif url.startswith("https://"):
        url = "wss://" + url[len("https://"):]
    elif not url.startswith(("ws://", "wss://")):
        url = "ws://" + url
    return url if url.endswith("/ws") else url + "/ws"


def _headers(token: str | None) -> list[tuple[bytes, bytes]]:
    return [(b"authorization", f"Bearer {token}".encode())] if token else []


class LiveConnection:
    """An open /ws connection. Replies and channel data arrive on one stream; messages that
    arrive while `subscribe` waits for its reply are kept for `receive`."""

    def __init__(self, ws: WebSocketConnection, welcome: dict[str, Any]) -> None:
        self.ws = ws
        self.welcome = welcome
        self._buffer: deque[dict[str, Any]] = deque()
        self._ids = 0

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send_message(json.dumps(message, separators=(",", ":")))

    async def _read(self) -> dict[str, Any]:
        msg: dict[str, Any] = json.loads(await self.ws.get_message())
        return msg

    async def receive(self) -> dict[str, Any]:
        if self._buffer:
            return self._buffer.popleft()
        return await self._read()

    async def request(self, message: dict[str, Any], reply: str) -> dict[str, Any]:
        """Send `message` and wait for its `reply` type (or raise LiveError)."""
        self._ids += 1
        rid = f"c{self._ids}"
        await self.send({**message, "requestId": rid})
        while True:
            msg = await self._read()
            if msg.get("requestId") == rid:
                if msg.get("type") == "error":
                    raise LiveError(msg)
                if msg.get("type") == reply:
                    return msg
            self._buffer.append(msg)

    async def subscribe(self, channel: str, filter: dict[str, Any] | None = None
                        ) -> dict[str, Any]:
        message: dict[str, Any] = {"type": "subscribe", "channel": channel}
        if filter is not None:
            message["filter"] = filter
        return await self.request(message, "subscribed")

    async def unsubscribe(self, channel: str) -> dict[str, Any]:
        return await self.request({"type": "unsubscribe", "channel": channel}, "unsubscribed")

    async def ping(self) -> dict[str, Any]:
        return await self.request({"type": "ping"}, "pong")


@asynccontextmanager
async def connect(server: str, token: str | None = None,
                  subscriptions: Iterable[Subscription] = (),
                  connect_timeout: float = 10) -> AsyncIterator[LiveConnection]:
    """Open /ws, read the welcome, subscribe; the connection closes with the block."""
    async with open_websocket_url(ws_url(server), extra_headers=_headers(token),
                                  max_message_size=MAX_MESSAGE, message_queue_size=64,
                                  connect_timeout=connect_timeout,
                                  disconnect_timeout=2) as ws:
        welcome = json.loads(await ws.get_message())
        conn = LiveConnection(ws, welcome)
        # One round trip first: hypercorn pings right after the handshake, and trio-websocket
        # fails if that ping lands while it is closing (short-lived connections do).
        await conn.ping()
        for channel, flt in subscriptions:
            await conn.subscribe(channel, flt)
        yield conn


async def follow(server: str, subscriptions: list[Subscription],
                 on_message: Callable[[dict[str, Any]], bool | None],
                 token: str | None = None, reconnect: bool = True,
                 on_status: Callable[[str, str], None] | None = None,
                 max_backoff: float = 5.0, retry_first: bool = False) -> None:
    """Deliver channel messages to `on_message` until it returns False.

    With `reconnect`, a lost or refused connection is retried with backoff (0.25 s doubling
    to `max_backoff`); `on_status(state, detail)` hears "connected" / "reconnecting".
    The first connection's failure is raised unless `retry_first` (so a wrong URL fails
    fast). Subscription errors (unknown channel, bad filter) raise LiveError and are not retried.
    """
    backoff = 0.25
    connected_once = retry_first
    while True:
        try:
            async with connect(server, token, subscriptions) as conn:
                backoff = 0.25
                connected_once = True
                if on_status is not None:
                    on_status("connected", str(conn.welcome.get("data", {}).get("version", "")))
                while True:
                    msg = await conn.receive()
                    if msg.get("type") == "error":
                        raise LiveError(msg)
                    if on_message(msg) is False:
                        return
        except BrokenPipeError:
            raise  # our stdout closed (`| head`), not the connection: stop, do not reconnect
        except (ConnectionClosed, HandshakeError, OSError, trio.BrokenResourceError) as exc:
            if not reconnect or not connected_once:
                raise
            if on_status is not None:
                on_status("reconnecting", f"{type(exc).__name__}: {exc}")
            await trio.sleep(backoff)
            backoff = min(max_backoff, backoff * 2)


class _PipelinedSocket:
    """A small WebSocket client (wsproto over a trio stream) for streamed ingest.

    trio-websocket writes every message with its own lock and `send_all` (~35 us of client
    CPU per message here); this frames many queued messages into one write, so a stream of
    single events costs the client ~10 us each. Replies are read as text messages; pings
    are answered; a close or EOF raises trio_websocket's ConnectionClosed, a refused
    handshake its ConnectionRejected, as `connect` would.
    """

    def __init__(self, stream: trio.abc.Stream, conn: Any) -> None:
        self.stream = stream
        self.conn = conn
        self.lock = trio.Lock()
        self.inbox: deque[str] = deque()
        self._parts: list[str] = []

    @classmethod
    async def open(cls, url: str, token: str | None, timeout: float) -> _PipelinedSocket:
        import ssl
        from urllib.parse import urlsplit

        from trio_websocket import ConnectionRejected, ConnectionTimeout
        from wsproto import ConnectionType, WSConnection
        from wsproto.events import AcceptConnection, RejectConnection, RejectData, Request

        parts = urlsplit(ws_url(url))
        secure = parts.scheme == "wss"
        host = parts.hostname or "localhost"
        port = parts.port or (443 if secure else 80)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        stream: trio.abc.Stream
        try:
            with trio.fail_after(timeout):
                if secure:
                    stream = await trio.open_ssl_over_tcp_stream(
                        host, port, ssl_context=ssl.create_default_context())
                else:
                    stream = await trio.open_tcp_stream(host, port)
                conn = WSConnection(ConnectionType.CLIENT)
                netloc = host if parts.port is None else f"{host}:{port}"
                await stream.send_all(conn.send(Request(
                    host=netloc, target=target, extra_headers=_headers(token))))
                status, headers, body = 0, [], b""
                while True:
                    data = await stream.receive_some(65536)
                    conn.receive_data(bytes(data) if data else None)
                    for event in conn.events():
                        if isinstance(event, AcceptConnection):
                            return cls(stream, conn)
                        if isinstance(event, RejectConnection):
                            status, headers = event.status_code, list(event.headers)
                            if not event.has_body:
                                raise ConnectionRejected(status, tuple(headers), None)
                        elif isinstance(event, RejectData):
                            body += event.data
                            if event.body_finished:
                                raise ConnectionRejected(status, tuple(headers), body)
                    if not data:
                        raise ConnectionRejected(status, tuple(headers), body or None)
        except trio.TooSlowError:
            raise ConnectionTimeout() from None

    async def send_many(self, texts: list[str]) -> None:
        from wsproto.events import TextMessage

        data = b"".join([self.conn.send(TextMessage(data=t)) for t in texts])
        async with self.lock:
            await self.stream.send_all(data)

    async def receive(self) -> dict[str, Any]:
        from trio_websocket import CloseReason, ConnectionClosed
        from wsproto.events import CloseConnection, Ping, TextMessage

        while not self.inbox:
            # Events first: the handshake's read may already hold the first messages.
            events = list(self.conn.events())
            if not events:
                data = await self.stream.receive_some(65536)
                if not data:
                    raise ConnectionClosed(CloseReason(1006, "connection lost"))
                self.conn.receive_data(bytes(data))
                continue
            for event in events:
                if isinstance(event, TextMessage):
                    self._parts.append(event.data)
                    if event.message_finished:
                        self.inbox.append("".join(self._parts))
                        self._parts.clear()
                elif isinstance(event, Ping):
                    async with self.lock:
                        await self.stream.send_all(self.conn.send(event.response()))
                elif isinstance(event, CloseConnection):
                    raise ConnectionClosed(CloseReason(event.code, event.reason or None))
        msg: dict[str, Any] = json.loads(self.inbox.popleft())
        return msg

    async def aclose(self) -> None:
        from wsproto.events import CloseConnection

        try:
            with trio.move_on_after(2):
                async with self.lock:
                    await self.stream.send_all(self.conn.send(CloseConnection(code=1000)))
        except Exception:  # already gone
            pass
        await self.stream.aclose()


async def stream_ingest(url: str, token: str | None,
                        batches: Iterable[list[dict[str, Any]]], *, single: bool = False,
                        partial: bool = True, window: int = 20_000,
                        on_progress: Callable[[dict[str, Any]], None] | None = None,
                        connect_timeout: float = 10) -> dict[str, Any]:
    """Send events over one WebSocket, pipelined, and wait until every one is acknowledged.

    `url` is the server (http://host:port) or its ws:// URL. Each batch goes as one
    `events` message (`single=True`: one `event` message per event); queued messages are
    framed into one write, up to `FLUSH_MESSAGES` at a time. At most `window` events are
    unacknowledged at a time. Acks come once the events are durable (the server commits
    every message it has read as one group). Returns totals: accepted, duplicates,
    rejected, messages, events, and up to 100 errors, each with its `batch` (0-based),
    `index` in the batch when it names one event, and `invalid`: how many events the error
    lists (its `details` keep the first five).
    """
    totals: dict[str, Any] = {"accepted": 0, "duplicates": 0, "rejected": 0, "messages": 0,
                              "events": 0, "errors": []}
    sizes: dict[int, tuple[int, int, int]] = {}  # requestId -> (events, batch, first index)
    state = {"inflight": 0}
    progress = trio.Event()
    done_sending = trio.Event()

    def note_error(req: Any, entry: dict[str, Any]) -> None:
        if len(totals["errors"]) < 100:
            err = entry.get("error", {})
            info = sizes.get(req, (0, -1, 0)) if isinstance(req, int) else (0, -1, 0)
            index = entry.get("index")
            totals["errors"].append({"batch": info[1],
                                     "index": info[2] + index if index is not None
                                     else info[2] if info[0] == 1 else None,
                                     "code": err.get("code"), "message": err.get("message"),
                                     "invalid": len(err.get("details", [])),
                                     "details": err.get("details", [])[:5]})

    async def read_acks(ws: _PipelinedSocket) -> None:
        nonlocal progress
        while True:
            msg = await ws.receive()
            kind = msg.get("type")
            if kind == "error":
                raise LiveError(msg)
            if kind != "ack":
                continue
            data = msg["data"]
            totals["accepted"] += data["accepted"]
            totals["duplicates"] += data["duplicates"]
            for entry in data.get("rejected", []):
                totals["rejected"] += 1
                note_error(entry.get("requestId"), entry)
            for entry in data.get("errors", []):
                rid = entry.get("requestId")
                totals["rejected"] += sizes.get(rid, (0, 0, 0))[0] if isinstance(rid, int) \
                    else 0
                note_error(rid, entry)
            for rid in data.get("requestIds", []):
                n = sizes.pop(rid, (0, 0, 0))[0]
                state["inflight"] -= n
            progress.set()
            progress = trio.Event()
            if on_progress is not None:
                on_progress(totals)
            if done_sending.is_set() and not sizes:
                return

    started = trio.current_time()
    ws = await _PipelinedSocket.open(url, token, connect_timeout)
    try:
        welcome = await ws.receive()
        if welcome.get("type") == "error":
            raise LiveError(welcome)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_acks, ws)
            rid = 0
            queued: list[str] = []
            for batch_no, batch in enumerate(batches):
                chunks: Iterable[list[dict[str, Any]]] = ([e] for e in batch) if single \
                    else [batch]
                for offset, chunk in enumerate(chunks):
                    if not chunk:
                        continue
                    while state["inflight"] >= window:
                        if queued:
                            await ws.send_many(queued)
                            queued = []
                        else:
                            await progress.wait()
                    sizes[rid] = (len(chunk), batch_no, offset if single else 0)
                    state["inflight"] += len(chunk)
                    message: dict[str, Any] = (
                        {"type": "event", "event": chunk[0], "requestId": rid} if single else
                        {"type": "events", "events": chunk, "partial": partial,
                         "requestId": rid})
                    queued.append(json.dumps(message, separators=(",", ":")))
                    totals["messages"] += 1
                    totals["events"] += len(chunk)
                    rid += 1
                    if len(queued) >= FLUSH_MESSAGES or not single:
                        await ws.send_many(queued)
                        queued = []
            if queued:
                await ws.send_many(queued)
            done_sending.set()
            if not sizes:
                nursery.cancel_scope.cancel()
    finally:
        await ws.aclose()
    totals["seconds"] = round(trio.current_time() - started, 3)
    return totals
