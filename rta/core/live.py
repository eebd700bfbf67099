"""Live hub: publish/subscribe for WebSocket clients, with bounded per-subscriber queues.

Publishing never blocks and never waits for a client: a message is encoded once and offered
to every subscriber of its channel. Each subscriber holds at most `max_queue` undelivered
data messages; when a slow or stalled client falls behind, messages on *coalescing* channels
(`metrics`, and prefix channels registered with `coalesce=True`, such as `dashboard:<id>`)
replace the undelivered one of the same channel, and messages on other channels (`events`,
`alerts`) drop the oldest undelivered message. Both are counted (`stats()`), so ingestion and
the other clients never slow down for one client. Replies to a client's own requests
(`subscribed`, `pong`, ingest acks, errors) go on a separate control queue that is never
dropped; its size is bounded by the requests the client has in flight.

Server message shape (JSON text, one object per WebSocket message)::

    {"type": <kind>, "channel": <channel or null>, "timestamp": <ms epoch>, "data": {...}}

`type` is the channel's kind for channel data: "metrics", "events", "alerts", or the prefix
name without its colon ("dashboard" for "dashboard:<id>"); replies use "welcome",
"subscribed", "unsubscribed", "pong", "ack" and "error".

For the dashboards feature (and any other prefix channel)::

    hub.register_prefix("dashboard:", on_subscribe, on_unsubscribe=None, coalesce=True)
        on_subscribe(channel: str, subscriber: Subscriber) -> None | Awaitable[None]
            called before the subscription is confirmed; raise RtaError (e.g. NotFoundError)
            to refuse it (the client gets an error message); call
            hub.send(subscriber, channel, data) to give the newcomer an initial snapshot.
        on_unsubscribe(channel, subscriber) -> None, when a client leaves the channel.
    hub.publish(channel, data) -> int        subscribers the message was offered to
    hub.subscribers(channel) -> int          current subscriber count of one channel
    hub.active_channels() -> list[str]       channels with at least one subscriber

Thread rule: event loop only: the hub's queues are trio objects, and ingest listeners run on
the loop after a batch is applied.
"""

from __future__ import annotations

import inspect
import itertools
import json
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import trio

from rta.core.embedded.store.block import Block, null_column
from rta.core.embedded.store.dictionary import Dictionaries
from rta.core.embedded.store.snapshot import Snapshot
from rta.core.errors import RtaError, ValidationError, field_error
from rta.core.events import STR, EventBatch
from rta.core.queries.filters import EventFilter, SegmentResolver, parse_filter
from rta.core.queries.pageviews import batch_paths

BUILTIN_CHANNELS = ("metrics", "events", "alerts")
COALESCING = frozenset({"metrics"})
OnSubscribe = Callable[[str, "Subscriber"], "Awaitable[None] | None"]
OnUnsubscribe = Callable[[str, "Subscriber"], None]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def encode(kind: str, channel: str | None, data: Any, timestamp: int | None = None,
           **extra: Any) -> str:
    """One server message as JSON text (encoded once, shared by every recipient)."""
    msg: dict[str, Any] = {"type": kind, "channel": channel,
                           "timestamp": now_ms() if timestamp is None else timestamp,
                           "data": data}
    msg.update(extra)
    return json.dumps(msg, separators=(",", ":"), ensure_ascii=False, default=_json_default)


def error_message(exc: RtaError, channel: str | None = None, **extra: Any) -> str:
    err = exc.to_dict()["error"]
    return encode("error", channel, err, **err, **extra)


# -- per-batch columns ------------------------------------------------------------------------

_block_cache: tuple[EventBatch | None, Block | None] = (None, None)


def batch_block(batch: EventBatch, dicts: Dictionaries) -> Block:
    """The batch as a query Block (no ids), so live filters reuse the filter language.

    Cached for the last batch: the hub and the alert evaluator both look at every batch.
    Called after the store applied the batch, so every string already has its code.
    """
    global _block_cache
    if _block_cache[0] is batch and _block_cache[1] is not None:
        return _block_cache[1]
    n = len(batch)
    props: dict[str, np.ndarray] = {}
    for col, (rows, values) in batch.props.items():
        kind = col[0]
        arr = null_column(kind, n)
        idx = np.asarray(rows, dtype=np.int64)
        if kind == STR:
            arr[idx] = dicts.values.encode(values)
        else:
            arr[idx] = np.asarray(values, dtype=arr.dtype)
        props[col] = arr
    zeros = np.zeros(n, dtype=np.uint64)
    block = Block(ts=np.asarray(batch.timestamps, dtype=np.int64),
                  recv=np.full(n, batch.received_at, dtype=np.int64),
                  type=dicts.types.encode(batch.types),  # type: ignore[arg-type]
                  user=dicts.users.encode(batch.users),
                  session=dicts.sessions.encode(batch.sessions),
                  id_hi=zeros, id_lo=zeros, props=props, label="live")
    _block_cache = (batch, block)
    return block


def batch_mask(flt: EventFilter, batch: EventBatch, dicts: Dictionaries) -> np.ndarray | None:
    """Rows of `batch` matching `flt` (types and where; time bounds ignored); None = all."""
    block = batch_block(batch, dicts)
    snap = Snapshot(blocks=[], dicts=dicts, version=0)
    return flt.mask(block, slice(0, block.n), snap)


def batch_events(batch: EventBatch, rows: list[int]) -> list[dict[str, Any]]:
    """The given rows as API events, walking each property column once."""
    want = {r: i for i, r in enumerate(rows)}
    props: list[dict[str, Any]] = [{} for _ in rows]
    for col, (idx, vals) in batch.props.items():
        key = col[2:]
        for r, v in zip(idx, vals, strict=True):
            i = want.get(r)
            if i is not None:
                props[i][key] = v
    return [{"id": batch.ids[r], "type": batch.types[r], "userId": batch.users[r],
             "sessionId": batch.sessions[r], "timestamp": batch.timestamps[r],
             "properties": props[i], "receivedAt": batch.received_at}
            for i, r in enumerate(rows)]


# -- subscribers ------------------------------------------------------------------------------


class Subscriber:
    """One connection's queues. The server's sender task drains it with `next_messages`."""

    def __init__(self, hub: LiveHub, sid: int, max_queue: int) -> None:
        self.hub = hub
        self.id = sid
        self.max_queue = max_queue
        self.channels: set[str] = set()
        self.connected_at = now_ms()
        self._control: deque[str] = deque()
        self._data: deque[str] = deque()
        self._latest: dict[str, str] = {}
        self._wake = trio.Event()
        self._poked = False
        self.sent = 0
        self.dropped = 0
        self.coalesced = 0
        self.closed = False
        # Set by a transport that can write a message synchronously (see `offer`); `sending`
        # is true while its sender task holds messages taken from the queues.
        self.direct: Callable[[str], bool] | None = None
        self.sending = False

    def pending(self) -> int:
        return len(self._control) + len(self._data) + len(self._latest)

    def send_control(self, text: str) -> None:
        """A reply to the client's own request: never dropped."""
        self._control.append(text)
        self._wake.set()

    def drop_pending(self, channel: str) -> None:
        """Forget a coalesced update of `channel` not yet sent."""
        self._latest.pop(channel, None)

    def poke(self) -> None:
        """Wake the sender task even with nothing queued (the transport has work of its own)."""
        self._poked = True
        self._wake.set()

    def offer(self, channel: str, text: str, coalesce: bool) -> None:
        """Queue `text`, or hand it straight to the transport when nothing is queued or in
        flight (`direct`: a synchronous, non-blocking write; False means "queue it"). A
        broadcast then costs one write per idle subscriber and no task switch; order holds
        because a direct write only happens when no earlier message is waiting."""
        if (self.direct is not None and not self.sending and not self._control
                and not self._data and not self._latest and self.direct(text)):
            self.sent += 1
            self.hub.messages_sent += 1
            return
        if coalesce:
            if channel in self._latest:
                self.coalesced += 1
                self.hub.coalesced += 1
            self._latest[channel] = text
        else:
            if len(self._data) >= self.max_queue:
                self._data.popleft()
                self.dropped += 1
                self.hub.dropped += 1
            self._data.append(text)
        self._wake.set()

    async def next_messages(self) -> list[str]:
        """Wait for and take every queued message, control replies first (empty if poked)."""
        while not (self._control or self._data or self._latest or self._poked):
            self._wake = trio.Event()
            await self._wake.wait()
        self._poked = False
        out = list(self._control)
        self._control.clear()
        if self._latest:
            out.extend(self._latest.values())
            self._latest.clear()
        out.extend(self._data)
        self._data.clear()
        return out

    def mark_sent(self, count: int) -> None:
        self.sent += count
        self.hub.messages_sent += count

    def info(self) -> dict[str, Any]:
        return {"id": self.id, "channels": sorted(self.channels), "sent": self.sent,
                "dropped": self.dropped, "coalesced": self.coalesced, "queued": self.pending()}


@dataclass
class _Prefix:
    on_subscribe: OnSubscribe | None
    on_unsubscribe: OnUnsubscribe | None
    coalesce: bool


@dataclass
class _EventsGroup:
    """Subscribers of `events` sharing one filter: matched, sampled and encoded once."""

    key: str
    flt: EventFilter | None
    spec: Any
    members: set[Subscriber] = field(default_factory=set)
    second: int = 0
    matched_this: int = 0
    matched_prev: int = 0
    sent_this: int = 0


class LiveHub:
    def __init__(self, max_queue: int = 256, events_rate: float = 1000.0,
                 dicts: Dictionaries | None = None, version: str = "",
                 segments: SegmentResolver | None = None, seed: int | None = None) -> None:
        """`events_rate`: the most events per second (per filter) the events channel sends;
        above it, events are sampled and each message states the sample rate."""
        self.max_queue = max_queue
        self.events_rate = float(events_rate)
        self.dicts = dicts
        self.version = version
        self.segments = segments
        self._ids = itertools.count(1)
        self._subs: dict[int, Subscriber] = {}
        self._by_channel: dict[str, set[Subscriber]] = {}
        self._prefixes: dict[str, _Prefix] = {}
        self._events_groups: dict[str, _EventsGroup] = {}
        self._sub_group: dict[Subscriber, _EventsGroup] = {}
        self._rng = np.random.default_rng(seed)
        self.messages_sent = 0
        self.dropped = 0
        self.coalesced = 0
        self.connections_total = 0
        self.events_sampled_out = 0

    # -- connections --------------------------------------------------------------------------

    def connect(self) -> Subscriber:
        sub = Subscriber(self, next(self._ids), self.max_queue)
        self._subs[sub.id] = sub
        self.connections_total += 1
        return sub

    def disconnect(self, sub: Subscriber) -> None:
        for channel in list(sub.channels):
            self.unsubscribe(sub, channel)
        sub.closed = True
        self._subs.pop(sub.id, None)

    def welcome(self, sub: Subscriber) -> str:
        return encode("welcome", None, {
            "version": self.version, "connectionId": sub.id,
            "channels": [*BUILTIN_CHANNELS, *(p + "<id>" for p in self._prefixes)],
            "maxQueue": self.max_queue, "eventsMaxRate": self.events_rate})

    # -- channels -----------------------------------------------------------------------------

    def register_prefix(self, prefix: str, on_subscribe: OnSubscribe | None = None,
                        on_unsubscribe: OnUnsubscribe | None = None,
                        coalesce: bool = True) -> None:
        """Accept channels named `prefix + <anything>` (see the module docstring)."""
        if not prefix or prefix in BUILTIN_CHANNELS:
            raise ValueError(f"bad channel prefix {prefix!r}")
        self._prefixes[prefix] = _Prefix(on_subscribe, on_unsubscribe, coalesce)

    def _prefix(self, channel: str) -> _Prefix | None:
        for prefix, handler in self._prefixes.items():
            if channel.startswith(prefix) and len(channel) > len(prefix):
                return handler
        return None

    def check_channel(self, channel: Any) -> str:
        if not isinstance(channel, str) or not channel:
            raise field_error("channel", "must be a channel name such as 'metrics'")
        if channel not in BUILTIN_CHANNELS and self._prefix(channel) is None:
            known = [*BUILTIN_CHANNELS, *(p + "<id>" for p in self._prefixes)]
            raise ValidationError(f"unknown channel {channel!r}; channels: {', '.join(known)}",
                                  [{"field": "channel", "value": channel, "allowed": known}],
                                  code="unknown_channel")
        return channel

    async def subscribe(self, sub: Subscriber, channel: Any,
                        options: dict[str, Any] | None = None) -> dict[str, Any]:
        """Add `sub` to `channel`; returns the details for the `subscribed` reply."""
        channel = self.check_channel(channel)
        info: dict[str, Any] = {}
        if channel == "events":
            info = self._join_events(sub, (options or {}).get("filter"))
        else:
            handler = self._prefix(channel)
            if handler is not None and handler.on_subscribe is not None:
                result = handler.on_subscribe(channel, sub)
                if inspect.isawaitable(result):
                    await result
        if sub.closed:
            return info
        sub.channels.add(channel)
        self._by_channel.setdefault(channel, set()).add(sub)
        return info

    def unsubscribe(self, sub: Subscriber, channel: str) -> bool:
        if channel not in sub.channels:
            return False
        sub.channels.discard(channel)
        members = self._by_channel.get(channel)
        if members is not None:
            members.discard(sub)
            if not members:
                del self._by_channel[channel]
        if channel == "events":
            self._leave_events(sub)
        else:
            handler = self._prefix(channel)
            if handler is not None and handler.on_unsubscribe is not None:
                handler.on_unsubscribe(channel, sub)
        return True

    def end_channel(self, channel: str, exc: RtaError) -> int:
        """Tell each subscriber of `channel` why it ended (an error on that channel, as a
        refused subscription gets) and unsubscribe them: a dashboard deleted, say."""
        members = list(self._by_channel.get(channel, ()))
        text = error_message(exc, channel)
        for sub in members:
            sub.drop_pending(channel)  # (no stale update after the notice)
            sub.send_control(text)
            self.unsubscribe(sub, channel)
        return len(members)

    def subscribers(self, channel: str) -> int:
        return len(self._by_channel.get(channel, ()))

    def active_channels(self) -> list[str]:
        return sorted(c for c, members in self._by_channel.items() if members)

    def _coalesces(self, channel: str) -> bool:
        if channel in COALESCING:
            return True
        handler = self._prefix(channel)
        return handler is not None and handler.coalesce

    @staticmethod
    def kind(channel: str) -> str:
        return channel.split(":", 1)[0]

    def publish(self, channel: str, data: Any, kind: str | None = None) -> int:
        """Offer `data` to every subscriber of `channel` without waiting for any of them."""
        members = self._by_channel.get(channel)
        if not members:
            return 0
        text = encode(kind or self.kind(channel), channel, data)
        coalesce = self._coalesces(channel)
        for sub in members:
            sub.offer(channel, text, coalesce)
        return len(members)

    def send(self, sub: Subscriber, channel: str, data: Any, kind: str | None = None) -> None:
        """Deliver `data` on `channel` to one subscriber (an initial snapshot, say)."""
        sub.offer(channel, encode(kind or self.kind(channel), channel, data),
                  self._coalesces(channel))

    # -- the events channel -------------------------------------------------------------------

    def _join_events(self, sub: Subscriber, spec: Any) -> dict[str, Any]:
        flt = None
        if spec is not None:
            flt = parse_filter(spec, "filter", segments=self.segments)
            flt.start = flt.end = None  # a live tail has no time range
        key = json.dumps(spec, sort_keys=True, default=str)
        self._leave_events(sub)
        group = self._events_groups.get(key)
        if group is None:
            group = self._events_groups[key] = _EventsGroup(key, flt, spec)
        group.members.add(sub)
        self._sub_group[sub] = group
        return {"filter": spec, "maxRate": self.events_rate}

    def _leave_events(self, sub: Subscriber) -> None:
        group = self._sub_group.pop(sub, None)
        if group is not None:
            group.members.discard(sub)
            if not group.members:
                self._events_groups.pop(group.key, None)

    def on_ingest(self, batch: EventBatch) -> None:
        """Engine listener: fan a durable batch out to the events channel's subscribers."""
        if not self._events_groups or not len(batch):
            return
        second = batch.received_at // 1000
        for group in list(self._events_groups.values()):
            self._publish_events(group, batch, second)

    def _publish_events(self, group: _EventsGroup, batch: EventBatch, second: int) -> None:
        n = len(batch)
        if group.flt is not None and self.dicts is not None:
            mask = batch_mask(group.flt, batch, self.dicts)
            rows = np.arange(n) if mask is None else np.flatnonzero(mask)
        else:
            rows = np.arange(n)
        matched = len(rows)
        if not matched:
            return
        if second != group.second:
            group.matched_prev = group.matched_this if second == group.second + 1 else 0
            group.matched_this = group.sent_this = 0
            group.second = second
        group.matched_this += matched
        observed = max(group.matched_prev, group.matched_this)
        rate = min(1.0, self.events_rate / observed) if observed else 1.0
        if rate < 1.0:
            rows = rows[self._rng.random(matched) < rate]
        room = max(0, int(self.events_rate) - group.sent_this)
        if len(rows) > room:
            rows = rows[:room]
        self.events_sampled_out += matched - len(rows)
        if not len(rows):
            return
        group.sent_this += len(rows)
        text = encode("events", "events", {
            "events": batch_events(batch, rows.tolist()), "matched": matched, "sent": len(rows),
            "sampleRate": round(len(rows) / matched, 6), "maxRate": self.events_rate})
        for sub in group.members:
            sub.offer("events", text, False)

    # -- introspection ------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """The `websocket` section of /stats."""
        return {
            "activeConnections": len(self._subs),
            "messagesSent": self.messages_sent,
            "channels": len(self.active_channels()),
            "activeChannels": {c: len(m) for c, m in sorted(self._by_channel.items())},
            "connectionsTotal": self.connections_total,
            "messagesDropped": self.dropped,
            "messagesCoalesced": self.coalesced,
            "eventsSampledOut": self.events_sampled_out,
            "queued": sum(s.pending() for s in self._subs.values()),
            "maxQueue": self.max_queue,
            "eventsMaxRate": self.events_rate,
        }


# -- the metrics channel ----------------------------------------------------------------------


class LiveMetrics:
    """Per-second counters by arrival time, maintained from durable batches (no rescans).

    Arrival time, not event time: the live view shows what is arriving now; a backfill of
    old events still shows up as traffic.
    """

    def __init__(self, top_n: int = 10, page_key: str = "page") -> None:
        self.top_n = top_n
        self.page_key = page_key
        self._seconds: deque[tuple[int, list[Any]]] = deque()  # (sec, [n, types, pages])
        self._users_last: dict[str, int] = {}
        self._users_by_sec: deque[tuple[int, set[str]]] = deque()

    def on_ingest(self, batch: EventBatch) -> None:
        n = len(batch)
        if not n:
            return
        sec = batch.received_at // 1000
        if self._seconds and self._seconds[-1][0] >= sec:  # (> : the clock stepped back)
            slot = self._seconds[-1][1]
        else:
            slot = [0, Counter(), Counter()]
            self._seconds.append((sec, slot))
        slot[0] += n
        slot[1].update(batch.type_counts())
        if self.page_key == "page":  # every SDK's page fields (queries.pageviews)
            slot[2].update(batch_paths(batch.props))
        else:
            pages = batch.props.get(STR + ":" + self.page_key)
            if pages is not None:
                slot[2].update(pages[1])
        users = batch.user_names()
        if users:
            self._users_last.update(dict.fromkeys(users, sec))
            if self._users_by_sec and self._users_by_sec[-1][0] == sec:
                self._users_by_sec[-1][1].update(users)
            else:
                self._users_by_sec.append((sec, users))
        self._trim(sec)

    def _trim(self, sec: int) -> None:
        while self._seconds and self._seconds[0][0] <= sec - 61:
            self._seconds.popleft()
        while self._users_by_sec and self._users_by_sec[0][0] <= sec - 300:
            old, users = self._users_by_sec.popleft()
            for u in users:
                if self._users_last.get(u) == old:
                    del self._users_last[u]

    def snapshot(self, now: int | None = None, totals: dict[str, Any] | None = None,
                 persons: Callable[[Iterable[str]], int] | None = None) -> dict[str, Any]:
        """One tick: the last 60 s by second, by type and page, active users in 5 min
        (`persons`: how many persons some distinct ids are; else each id counts as one)."""
        now = now_ms() if now is None else now
        sec = now // 1000
        self._trim(sec)
        per_second = [0] * 60  # seconds sec-60 .. sec-1 (complete seconds)
        types: Counter[str] = Counter()
        pages: Counter[str] = Counter()
        total = 0
        for s, (n, t, p) in self._seconds:
            if sec - 60 <= s < sec:
                per_second[s - (sec - 60)] = n
            if s >= sec - 59:  # the last minute includes the current second so far
                total += n
                types.update(t)
                pages.update(p)
        recent = [u for u, s in self._users_last.items() if s > sec - 300]
        active = persons(recent) if persons is not None else len(recent)
        return {
            "eventsPerSecond": per_second[-1],
            "perSecond": per_second,
            "lastMinute": {"total": total, "byType": dict(types.most_common()),
                           "start": (sec - 59) * 1000, "end": now},
            "topTypes": [{"type": k, "count": v} for k, v in types.most_common(self.top_n)],
            "topPages": [{"page": k, "count": v} for k, v in pages.most_common(self.top_n)],
            "activeUsers5m": active,
            "activeUsersWindow": {"start": (sec - 299) * 1000, "end": now},
            "totals": totals or {},
        }
