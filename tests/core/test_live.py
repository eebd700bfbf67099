"""The live hub: channels, bounded queues (coalesce / drop), prefix channels, events sampling,
and the per-second metrics counters against a naive recount."""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest
import trio

from rta.core.embedded.store.dictionary import Dictionaries
from rta.core.errors import NotFoundError, ValidationError
from rta.core.events import EventValidator
from rta.core.live import LiveHub, LiveMetrics, Subscriber


def batch_of(events: list[dict], now: int = 1_700_000_000_000):
    batch, rejected = EventValidator().validate_batch(events, now=now)
    assert not rejected
    return batch


def make_hub(**kw) -> tuple[LiveHub, Dictionaries]:
    dicts = Dictionaries(None)
    return LiveHub(dicts=dicts, seed=1, **kw), dicts


def encode_batch(batch, dicts: Dictionaries) -> None:
    """What the store does before listeners run: every string gets its code."""
    dicts.types.encode(batch.types)
    dicts.users.encode(batch.users)
    dicts.sessions.encode(batch.sessions)
    for col, (_, values) in batch.props.items():
        if col.startswith("s:"):
            dicts.values.encode(values)


async def drain(sub: Subscriber) -> list[dict]:
    with trio.move_on_after(0.01):
        return [json.loads(m) for m in await sub.next_messages()]
    return []


async def test_subscribe_publish_unsubscribe() -> None:
    hub, _ = make_hub()
    a, b = hub.connect(), hub.connect()
    await hub.subscribe(a, "metrics")
    await hub.subscribe(b, "alerts")
    assert hub.subscribers("metrics") == 1
    assert hub.active_channels() == ["alerts", "metrics"]
    assert hub.publish("metrics", {"x": 1}) == 1
    got = await drain(a)
    assert [(m["type"], m["channel"], m["data"]) for m in got] == [("metrics", "metrics", {"x": 1})]
    assert isinstance(got[0]["timestamp"], int)
    assert await drain(b) == []
    assert hub.unsubscribe(a, "metrics") is True
    assert hub.unsubscribe(a, "metrics") is False
    assert hub.publish("metrics", {"x": 2}) == 0
    hub.disconnect(b)
    assert hub.active_channels() == []
    assert hub.stats()["activeConnections"] == 1


async def test_unknown_channel_is_a_validation_error() -> None:
    hub, _ = make_hub()
    sub = hub.connect()
    for bad in ("nope", "", None, 3, "dashboard:"):
        with pytest.raises(ValidationError):
            await hub.subscribe(sub, bad)


async def test_coalescing_keeps_only_the_latest_metrics() -> None:
    hub, _ = make_hub(max_queue=4)
    sub = hub.connect()
    await hub.subscribe(sub, "metrics")
    for i in range(10):
        hub.publish("metrics", {"i": i})
    got = await drain(sub)
    assert [m["data"]["i"] for m in got] == [9]
    assert hub.stats()["messagesCoalesced"] == 9


async def test_a_full_queue_drops_the_oldest_and_counts_it() -> None:
    hub, _ = make_hub(max_queue=3)
    slow, fast = hub.connect(), hub.connect()
    for s in (slow, fast):
        await hub.subscribe(s, "alerts")
    got_fast = []
    for i in range(10):
        hub.publish("alerts", {"i": i})
        got_fast += [m["data"]["i"] for m in await drain(fast)]
    assert got_fast == list(range(10))
    assert [m["data"]["i"] for m in await drain(slow)] == [7, 8, 9]
    assert slow.dropped == 7 and fast.dropped == 0
    assert hub.stats()["messagesDropped"] == 7


async def test_control_replies_are_never_dropped() -> None:
    hub, _ = make_hub(max_queue=1)
    sub = hub.connect()
    await hub.subscribe(sub, "alerts")
    for i in range(5):
        sub.send_control(json.dumps({"type": "ack", "i": i}))
        hub.publish("alerts", {"i": i})
    got = await drain(sub)
    assert [m["i"] for m in got if m["type"] == "ack"] == list(range(5))
    assert [m["data"]["i"] for m in got if m["type"] == "alerts"] == [4]


async def test_prefix_channels_for_dashboards() -> None:
    hub, _ = make_hub()
    seen: list[tuple[str, int]] = []
    left: list[str] = []

    async def on_subscribe(channel: str, sub: Subscriber) -> None:
        if channel == "dashboard:missing":
            raise NotFoundError("no dashboard with id 'missing'")
        seen.append((channel, sub.id))
        hub.send(sub, channel, {"initial": True})

    hub.register_prefix("dashboard:", on_subscribe, lambda ch, sub: left.append(ch))
    sub = hub.connect()
    await hub.subscribe(sub, "dashboard:abc")
    with pytest.raises(NotFoundError):
        await hub.subscribe(sub, "dashboard:missing")
    assert hub.active_channels() == ["dashboard:abc"]
    assert hub.subscribers("dashboard:abc") == 1
    hub.publish("dashboard:abc", {"update": 1})
    hub.publish("dashboard:abc", {"update": 2})  # coalesced with the previous one
    got = await drain(sub)
    assert [(m["type"], m["channel"], m["data"]) for m in got] == [
        ("dashboard", "dashboard:abc", {"update": 2})]
    assert seen == [("dashboard:abc", sub.id)]
    hub.disconnect(sub)
    assert left == ["dashboard:abc"] and hub.active_channels() == []


async def test_events_channel_filters_per_subscriber() -> None:
    hub, dicts = make_hub()
    all_sub, clicks, slow_pages = hub.connect(), hub.connect(), hub.connect()
    await hub.subscribe(all_sub, "events")
    await hub.subscribe(clicks, "events", {"filter": {"type": "click"}})
    await hub.subscribe(slow_pages, "events", {"filter": {
        "type": "pageview", "where": [{"property": "duration", "operator": "gt", "value": 100}]}})
    events = [{"type": "click", "userId": "u1", "properties": {"page": "/a"}},
              {"type": "pageview", "userId": "u2", "properties": {"page": "/b", "duration": 50}},
              {"type": "pageview", "userId": "u3", "properties": {"page": "/c", "duration": 500}}]
    batch = batch_of(events)
    encode_batch(batch, dicts)
    hub.on_ingest(batch)
    (m_all,) = await drain(all_sub)
    (m_click,) = await drain(clicks)
    (m_slow,) = await drain(slow_pages)
    assert [e["userId"] for e in m_all["data"]["events"]] == ["u1", "u2", "u3"]
    assert m_all["data"]["events"][1]["properties"] == {"page": "/b", "duration": 50}
    assert [e["userId"] for e in m_click["data"]["events"]] == ["u1"]
    assert [e["userId"] for e in m_slow["data"]["events"]] == ["u3"]
    assert m_all["data"]["sampleRate"] == 1.0


async def test_events_are_sampled_above_the_rate_and_say_so() -> None:
    hub, dicts = make_hub(events_rate=100)
    sub = hub.connect()
    await hub.subscribe(sub, "events")
    sent = 0
    for second in range(3):
        for _ in range(10):
            batch = batch_of([{"type": "x", "userId": f"u{i}"} for i in range(100)],
                             now=1_700_000_000_000 + second * 1000)
            encode_batch(batch, dicts)
            hub.on_ingest(batch)
        for m in await drain(sub):
            d = m["data"]
            assert d["sent"] == len(d["events"]) <= d["matched"]
            assert d["sampleRate"] == pytest.approx(d["sent"] / d["matched"], abs=1e-6)
            sent += d["sent"]
    assert 0 < sent <= 300  # never more than the rate per second
    assert hub.stats()["eventsSampledOut"] == 3000 - sent


def test_metrics_counters_match_a_naive_recount() -> None:
    rng = random.Random(7)
    metrics = LiveMetrics()
    base = 1_700_000_000_000
    arrivals: list[tuple[int, dict]] = []
    for step in range(400):
        recv = base + step * 997
        events = [{"type": rng.choice(["pageview", "click", "signup"]),
                   "userId": f"u{rng.randrange(60)}",
                   "properties": {"page": rng.choice(["/", "/a", "/b"])}}
                  for _ in range(rng.randrange(0, 6))]
        if not events:
            continue
        batch = batch_of(events, now=recv)
        metrics.on_ingest(batch)
        arrivals += [(recv, e) for e in events]
    now = base + 400 * 997 + 10
    snap = metrics.snapshot(now)
    sec = now // 1000
    last_min = [e for r, e in arrivals if r // 1000 >= sec - 59]
    assert snap["lastMinute"]["total"] == len(last_min)
    assert snap["lastMinute"]["byType"] == dict(Counter(e["type"] for e in last_min))
    assert {p["page"]: p["count"] for p in snap["topPages"]} == dict(
        Counter(e["properties"]["page"] for e in last_min))
    per_second = Counter(r // 1000 for r, _ in arrivals)
    assert snap["perSecond"] == [per_second.get(s, 0) for s in range(sec - 60, sec)]
    assert snap["eventsPerSecond"] == per_second.get(sec - 1, 0)
    active = {e["userId"] for r, e in arrivals if r // 1000 > sec - 300}
    assert snap["activeUsers5m"] == len(active)


async def test_direct_delivery_only_when_nothing_is_waiting() -> None:
    """A transport's synchronous write takes a message only when no earlier one is queued
    or in flight, so order holds; refused writes fall back to the queue."""
    hub, _ = make_hub(max_queue=4)
    sub = hub.connect()
    await hub.subscribe(sub, "alerts")
    await hub.subscribe(sub, "metrics")
    written: list[int] = []
    accept = {"on": True}

    def direct(text: str) -> bool:
        if accept["on"]:
            written.append(json.loads(text)["data"]["i"])
        return accept["on"]

    sub.direct = direct
    hub.publish("alerts", {"i": 0})
    assert written == [0] and await drain(sub) == []
    accept["on"] = False
    hub.publish("alerts", {"i": 1})  # the socket is full: queued
    accept["on"] = True
    hub.publish("alerts", {"i": 2})  # behind 1, so queued too
    hub.publish("metrics", {"i": 3})
    assert written == [0]
    assert [m["data"]["i"] for m in await drain(sub)] == [3, 1, 2]
    sub.send_control(json.dumps({"type": "pong"}))
    hub.publish("alerts", {"i": 4})  # a control reply is waiting
    sub.sending = True
    assert [m.get("data", {}).get("i") for m in await drain(sub)] == [None, 4]
    hub.publish("alerts", {"i": 5})  # the sender task still holds messages
    sub.sending = False
    assert [m["data"]["i"] for m in await drain(sub)] == [5]
    hub.publish("metrics", {"i": 6})
    assert written == [0, 6]
    assert hub.stats()["messagesSent"] == 2 and sub.sent == 2


async def test_poke_wakes_the_sender_with_nothing_queued() -> None:
    hub, _ = make_hub()
    sub = hub.connect()
    sub.poke()
    with trio.fail_after(1):
        assert await sub.next_messages() == []
    assert await drain(sub) == []
