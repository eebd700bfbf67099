"""The transport guard: every request body is bounded in size and in time before any route
(the fast lanes included) sees it.

An ASGI middleware in front of everything else, because the limits must hold on every path:
Quart buffers a whole body before a route can look at it (1 GiB took 2.1 GB of RSS before
its 413), the ingest fast lane read without a timeout (a declared body that never came held
its request forever), and refusals sent before reading (401/403/404/405) drained bodies of
any length. Here, per request:

- a `Content-Length` over the route's limit (`body_limit`) is answered 413 at once, before
  any of the body is read;
- a body is counted while it arrives, and answered 413 as soon as it passes the limit;
- a body that stops arriving for `body_timeout` seconds is answered 408.

Those answers close the connection without reading the rest (`Connection.abort`, see
`rta.server.listener`), as does any answer sent before its request body was complete.
"""

from __future__ import annotations

from typing import Any

import trio
from quart_trio import QuartTrio

from rta.core.engine import Engine
from rta.core.errors import PayloadTooLarge, RtaError
from rta.server.http import DEFAULT_BODY_LIMIT, RequestTimeout, json_text
from rta.server.listener import Connection, current_connection
from rta.server.security import is_sdk_path, response_headers

Scope = dict[str, Any]
Message = dict[str, Any]
INGEST_PATHS = ("/events", "/events/batch")


def body_limit(path: str, eng: Engine) -> int:
    """The largest request body `path` takes: `max_batch_bytes` for ingestion (rta's and
    the SDKs' routes), `DEFAULT_BODY_LIMIT` (1 MiB) for every other route."""
    if path in INGEST_PATHS or is_sdk_path(path):
        return eng.validator.limits.max_batch_bytes
    return DEFAULT_BODY_LIMIT


def _framing(scope: Scope) -> tuple[int | None, bool, str | None]:
    """(declared Content-Length, chunked, Origin) from the request head (h11 validated it)."""
    length: int | None = None
    chunked = False
    origin: str | None = None
    for name, value in scope.get("headers") or ():
        if name == b"content-length" and length is None:
            try:
                length = int(value)
            except ValueError:
                length = None
        elif name == b"transfer-encoding":
            chunked = True
        elif name == b"origin" and origin is None:
            origin = value.decode("latin-1")
    return length, chunked, origin


class TransportGuard:
    """ASGI middleware enforcing the body limits above on every HTTP request."""

    def __init__(self, inner: Any, app: QuartTrio) -> None:
        self.inner = inner
        self.app = app
        eng: Engine = app.config["RTA_ENGINE"]
        self.engine = eng
        self.timeout = float(app.config["RTA_OPTIONS"].get("body_timeout") or 30.0)
        self.refusals = eng.metrics.counter(
            "rta_http_refused_total", "requests answered by the transport guard (reason: "
            "body_too_large, body_timeout)")

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        conn = current_connection()
        if conn is None or scope.get("type") not in ("http", "websocket"):
            await self.serve(scope, receive, send, conn)
            return
        conn.enter()
        try:
            await self.serve(scope, receive, send, conn)
        finally:
            conn.leave()

    async def serve(self, scope: Scope, receive: Any, send: Any,
                    conn: Connection | None) -> None:
        if scope.get("type") != "http":
            await self.inner(scope, receive, send)
            return
        path = scope.get("path") or ""
        limit = body_limit(path, self.engine)
        length, chunked, origin = _framing(scope)
        if length is not None and length > limit:
            await self._refuse(path, origin, send, receive, PayloadTooLarge(
                f"request body is {length} bytes; the limit for {path} is {limit}",
                [{"bytes": length, "limit": limit}]))
            return
        body = _Body(receive, send, limit, self.timeout,
                     complete=length == 0 or (length is None and not chunked))
        with body.scope:
            await self.inner(scope, body.receive, body.send)
        if body.error is None:
            return
        if body.started:  # (an answer already under way: it cannot become the error)
            if conn is not None:
                conn.abort()
            return
        await self._refuse(path, origin, send, receive, body.error)

    async def _refuse(self, path: str, origin: str | None, send: Any, receive: Any,
                      error: RtaError) -> None:
        """Answer `error` ourselves (the route never got to), then end the connection."""
        self.refusals.inc(reason="body_timeout" if error.status == 408 else "body_too_large")
        payload = json_text(error.to_dict()).encode()
        cors = (self.app.config.get("RTA_SECURITY") or {}).get("cors") or set()
        headers = [(b"content-type", b"application/json"),
                   (b"content-length", str(len(payload)).encode()),
                   (b"connection", b"close")]
        headers += [(k.lower().encode("latin-1"), v.encode("latin-1"))
                    for k, v in response_headers(path, origin, cors)]
        await send({"type": "http.response.start", "status": error.status, "headers": headers})
        await finish_unread(send, receive, {"type": "http.response.body", "body": payload},
                            self.timeout)


async def finish_unread(send: Any, receive: Any, message: Message, timeout: float) -> None:
    """Send the last message of an answer whose request body was not read to its end.

    hypercorn would keep reading that body, and once its queue to the app is full it blocks,
    so the last message of the answer never completes. Under our listener the message goes
    out as "more to come" (the bytes are on the wire, framed by Content-Length or not at
    all) and the connection is aborted; elsewhere the body is taken and dropped while the
    message is sent, for at most `timeout` seconds."""
    conn = current_connection()
    if conn is not None:
        await send({**message, "more_body": True})
        conn.abort()
        await trio.lowlevel.checkpoint()  # (the abort cancelled this task: ends here)
        return

    async def sink() -> None:
        while (await receive()).get("type") == "http.request":
            pass

    async with trio.open_nursery() as nursery:
        nursery.start_soon(sink)
        with trio.move_on_after(timeout):
            await send(message)
        nursery.cancel_scope.cancel()


class _Body:
    """The receive/send pair the app gets for one request: counts the body against its
    limit and times its stalls; an answer started before the body ended closes the
    connection after it."""

    def __init__(self, receive: Any, send: Any, limit: int, timeout: float,
                 complete: bool) -> None:
        self._receive = receive
        self._send = send
        self.limit = limit
        self.timeout = timeout
        self.complete = complete
        self.received = 0
        self.started = False
        self.error: RtaError | None = None
        self.scope = trio.CancelScope()

    async def receive(self) -> Message:
        if self.complete or self.error is not None:
            message: Message = await self._receive()  # (after the body: the disconnect)
            return message
        with trio.move_on_after(self.timeout):
            message = await self._receive()
            if message.get("type") == "http.request":
                self.received += len(message.get("body") or b"")
                if self.received > self.limit:
                    await self._fail(PayloadTooLarge(
                        f"request body is over the limit of {self.limit} bytes",
                        [{"bytes": self.received, "limit": self.limit}]))
                if not message.get("more_body", False):
                    self.complete = True
            return message
        await self._fail(RequestTimeout(
            f"the request body stalled: nothing arrived for {self.timeout:g} s "
            f"({self.received} bytes received)",
            [{"timeoutSeconds": self.timeout, "received": self.received}]))
        raise AssertionError("unreachable")  # pragma: no cover

    async def _fail(self, error: RtaError) -> None:
        """Stop the app (its tasks are all inside `scope`); the guard answers `error`."""
        self.error = error
        self.scope.cancel()
        await trio.lowlevel.checkpoint()  # raises Cancelled

    async def send(self, message: Message) -> None:
        kind = message.get("type")
        if kind == "http.response.start":
            self.started = True
            if not self.complete:
                message = {**message, "headers": [*message.get("headers", ()),
                                                  (b"connection", b"close")]}
        elif (kind == "http.response.body" and not message.get("more_body", False)
              and not self.complete):
            await finish_unread(self._send, self._receive, message, self.timeout)
            return
        await self._send(message)
