"""The /ws session protocol: subscriptions, pings and ingest messages over any transport.

`run_session` takes a receive and a send function for text, so the raw-ASGI middleware and
the Quart route serve the same protocol; messages are documented in `ws_api`.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio

from rta.core import jsonstrict
from rta.core.engine import Engine
from rta.core.errors import PayloadTooLarge, RtaError, ValidationError
from rta.core.live import LiveHub, Subscriber, encode, error_message
from rta.server.ws_ingest import IngestRequest, ingest_group, message_size, parse_ingest

if TYPE_CHECKING:
    from rta.server.ws_direct import DirectSender

log = logging.getLogger("rta.server.ws")

INGEST_QUEUE = 4096  # ingest messages read but not yet committed; more pauses reading
ReceiveText = Callable[[], Awaitable["str | bytes | None"]]  # None: the peer disconnected
SendText = Callable[[str], Awaitable[None]]


class Forbidden(RtaError):
    status = 403
    code = "forbidden"


@dataclass(frozen=True)
class Access:
    """What a /ws connection may do, and the token it was granted on (None: no token)."""

    can_write: bool
    can_read: bool
    token_id: str | None = None
    dashboard: str | None = None  # a share link: only this dashboard's channels, token_id its id


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
    conn.dashboard = access.dashboard
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_sender, sub, send_text, nursery.cancel_scope,
                               None if direct is None else direct.flush)
            nursery.start_soon(conn.commit_loop)
            if access.token_id is not None:
                nursery.start_soon(_end_when_revoked, eng, sub, access,
                                   nursery.cancel_scope)
            while True:
                raw = await receive_text()
                if raw is None:
                    break
                await conn.handle(raw)
            nursery.cancel_scope.cancel()
    finally:
        hub.disconnect(sub)


async def _end_when_revoked(eng: Engine, sub: Subscriber, access: Access,
                            scope: trio.CancelScope) -> None:
    """Scopes are checked at the handshake; a token revoked later (or a share link revoked
    or expired) must not keep an open connection streaming or ingesting, so it is re-checked
    here and the session ended."""
    token_id = str(access.token_id)
    share = access.dashboard is not None
    alive = eng.services.shares.alive if share else eng.services.tokens.alive
    while alive(token_id):
        await trio.sleep(TOKEN_RECHECK_S)
    text = ("this share link was revoked or has expired" if share
            else "this connection's token was revoked")
    sub.send_control(error_message(RtaError(text, [{"field": "token"}], code="unauthorized")))
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
        self.dashboard: str | None = None  # a share link's one dashboard
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
                if self.dashboard is not None and not _shared_channel(channel, self.dashboard):
                    raise Forbidden("a share link follows its own dashboard's channel only",
                                    [{"field": "channel",
                                      "allowed": f"dashboard:{self.dashboard}"}])
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


def _shared_channel(channel: str | None, dashboard: str) -> bool:
    """`dashboard:<id>` or `dashboard:<id>?timeRange=...` of the shared dashboard."""
    return channel is not None and channel.partition("?")[0] == f"dashboard:{dashboard}"


def _rid(request_id: Any) -> dict[str, Any]:
    return {} if request_id is None else {"requestId": request_id}
