"""GET /ws end to end: a real hypercorn server and real trio-websocket clients."""

from __future__ import annotations

import json
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import trio
from trio_websocket import WebSocketConnection, open_websocket_url, wrap_client_stream

from rta.client.ws import LiveConnection, LiveError, connect
from rta.core.config import EngineConfig
from tests.support import LiveServer, live_server


def no_protocol_pings(monkeypatch: pytest.MonkeyPatch) -> None:
    """hypercorn's per-connection ping task outlives a closed WebSocket by up to the ping
    interval, which holds every server shutdown for its graceful timeout (5 s). The app-level
    ping/pong is tested here; turn hypercorn's off so the suite stays fast."""
    import rta.daemon

    original = rta.daemon.hypercorn_config

    def config(host: str, port: int) -> Any:
        cfg = original(host, port)
        cfg.websocket_ping_interval = None
        return cfg

    monkeypatch.setattr(rta.daemon, "hypercorn_config", config)


@pytest.fixture
async def srv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[LiveServer]:
    no_protocol_pings(monkeypatch)
    config = EngineConfig(data_dir=str(tmp_path / "data"), alert_interval_ms=100)
    async with live_server(config, live_events_rate=1e9, ws_queue=16) as server:
        yield server


async def recv_until(conn: LiveConnection, pred: Any, timeout: float = 5) -> dict[str, Any]:
    with trio.fail_after(timeout):
        while True:
            msg = await conn.receive()
            if pred(msg):
                return msg


async def test_welcome_subscribe_unsubscribe_ping(srv: LiveServer) -> None:
    async with connect(srv.url) as conn:
        assert conn.welcome["type"] == "welcome"
        assert conn.welcome["data"]["version"] == srv.engine.version
        assert "metrics" in conn.welcome["data"]["channels"]
        reply = await conn.subscribe("alerts")
        assert reply["type"] == "subscribed" and reply["channel"] == "alerts"
        assert srv.engine.served.live_hub.subscribers("alerts") == 1
        reply = await conn.unsubscribe("alerts")
        assert reply["data"] == {"wasSubscribed": True}
        assert srv.engine.served.live_hub.subscribers("alerts") == 0
        pong = await conn.ping()
        assert pong["type"] == "pong" and isinstance(pong["timestamp"], int)


async def test_bad_messages_get_errors_and_the_connection_stays_up(srv: LiveServer) -> None:
    async with connect(srv.url) as conn:
        with pytest.raises(LiveError) as info:
            await conn.subscribe("nope")
        assert info.value.code == "unknown_channel"
        for raw, code in (("{not json", "invalid_json"), ("[1, 2]", "invalid_message"),
                          ('{"type": "dance"}', "unknown_message_type"),
                          ('{"type": "subscribe"}', "validation_error"),
                          ('{"type": "events", "events": 5}', "validation_error"),
                          ('{"type": "subscribe", "channel": "events", "filter": '
                           '{"where": [{"property": "x", "operator": "zz"}]}}',
                           "validation_error")):
            await conn.ws.send_message(raw)
            msg = await recv_until(conn, lambda m: m["type"] == "error")
            assert msg["code"] == code, raw
            assert msg["message"]
        assert (await conn.ping())["type"] == "pong"
        await conn.ws.send_message(b"\xff\xfe binary garbage")
        assert (await recv_until(conn, lambda m: m["type"] == "error"))["code"] == "invalid_json"
    async with httpx.AsyncClient(base_url=srv.url) as http:
        assert (await http.get("/health")).status_code == 200


def store_recv_and_users(srv: LiveServer) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    snap = srv.engine.snapshot()
    recv = np.concatenate([b.recv for b in snap.blocks])
    types = np.concatenate([b.type for b in snap.blocks])
    users = np.concatenate([b.user for b in snap.blocks])
    return recv, types, users


async def test_metrics_channel_matches_the_store(srv: LiveServer) -> None:
    rng = np.random.default_rng(5)
    async with connect(srv.url) as conn, httpx.AsyncClient(base_url=srv.url) as http:
        await conn.subscribe("metrics")
        for _ in range(4):
            events = [{"type": str(rng.choice(["pageview", "click", "signup"])),
                       "userId": f"u{rng.integers(30)}",
                       "properties": {"page": str(rng.choice(["/", "/a", "/b"]))}}
                      for _ in range(int(rng.integers(5, 40)))]
            assert (await http.post("/events/batch", json=events)).status_code == 202
        done = time.time() * 1000
        msg = await recv_until(conn, lambda m: m["channel"] == "metrics"
                               and m["timestamp"] > done + 5)
    data = msg["data"]
    recv, types, users = store_recv_and_users(srv)
    window = data["lastMinute"]
    in_min = (recv >= window["start"]) & (recv <= window["end"])
    names = srv.engine.store.dicts.types.strings
    want = Counter(names[t] for t in types[in_min])
    assert data["lastMinute"]["byType"] == dict(want)
    assert data["lastMinute"]["total"] == int(in_min.sum())
    active = users[(recv >= data["activeUsersWindow"]["start"]) & (users >= 0)]
    assert data["activeUsers5m"] == len(np.unique(active))
    assert data["totals"]["events"] == len(recv)
    sec = window["end"] // 1000
    secs = recv // 1000
    assert sum(data["perSecond"]) == int(((secs >= sec - 60) & (secs < sec)).sum())
    assert data["eventsPerSecond"] == int((secs == sec - 1).sum())


async def test_events_channel_with_a_filter(srv: LiveServer) -> None:
    async with connect(srv.url) as conn, httpx.AsyncClient(base_url=srv.url) as http:
        await conn.subscribe("events", {"type": "click", "where": [
            {"property": "page", "operator": "starts_with", "value": "/pro"}]})
        events = [{"type": "click", "userId": "a", "properties": {"page": "/products"}},
                  {"type": "click", "userId": "b", "properties": {"page": "/home"}},
                  {"type": "pageview", "userId": "c", "properties": {"page": "/products"}},
                  {"type": "click", "userId": "d", "properties": {"page": "/pro/x"}}]
        await http.post("/events/batch", json=events)
        msg = await recv_until(conn, lambda m: m["channel"] == "events")
        assert [e["userId"] for e in msg["data"]["events"]] == ["a", "d"]
        assert msg["data"]["events"][0]["properties"] == {"page": "/products"}
        assert msg["data"]["sampleRate"] == 1.0
        await conn.unsubscribe("events")
        await http.post("/events/batch", json=events)
        with trio.move_on_after(0.3):
            msg = await recv_until(conn, lambda m: m["channel"] == "events")
            raise AssertionError("got events after unsubscribing")


async def stalled_client(url: str, nursery: trio.Nursery) -> WebSocketConnection:
    """A client that never reads, with a tiny receive buffer so the server's sends block."""
    host, port = url.replace("ws://", "").split("/")[0].split(":")
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    await sock.connect((host, int(port)))
    stream = trio.SocketStream(sock)
    ws = await wrap_client_stream(nursery, stream, host, "/ws", message_queue_size=1,
                                  receive_buffer_size=1024)
    await ws.send_message(json.dumps({"type": "subscribe", "channel": "events"}))
    return ws


async def test_a_stalled_client_does_not_delay_others(srv: LiveServer) -> None:
    n_batches, per_batch = 60, 100
    blob = "x" * 1500
    async with trio.open_nursery() as nursery:
        stalled = await stalled_client(srv.ws_url, nursery)
        async with connect(srv.url) as fast, httpx.AsyncClient(base_url=srv.url) as http:
            await fast.subscribe("events")
            hub = srv.engine.served.live_hub
            with trio.fail_after(5):
                while hub.subscribers("events") < 2:
                    await trio.sleep(0.01)
            got = 0
            latencies = []

            async def reader() -> None:
                nonlocal got
                while got < n_batches * per_batch:
                    msg = await fast.receive()
                    if msg["channel"] == "events":
                        got += len(msg["data"]["events"])
                        latencies.append(time.time() * 1000 - msg["timestamp"])

            async with trio.open_nursery() as inner:
                inner.start_soon(reader)
                started = time.perf_counter()
                for i in range(n_batches):
                    events = [{"type": "big", "userId": f"u{i}", "properties": {"blob": blob}}
                              for _ in range(per_batch)]
                    r = await http.post("/events/batch", json=events)
                    assert r.status_code == 202
                ingest_s = time.perf_counter() - started
                with trio.fail_after(10):
                    while got < n_batches * per_batch:
                        await trio.sleep(0.01)
            stats = (await http.get("/stats")).json()["websocket"]
        await stalled.aclose()
        nursery.cancel_scope.cancel()
    assert got == n_batches * per_batch  # the fast client saw every event
    assert stats["messagesDropped"] > 0  # the stalled one had its oldest updates dropped
    assert stats["activeConnections"] >= 1
    assert max(latencies) < 2000, max(latencies)
    assert ingest_s < 10


async def test_ingest_over_the_socket_is_durable_before_the_ack(srv: LiveServer) -> None:
    async with connect(srv.url) as conn:
        ws = conn.ws
        await ws.send_message(json.dumps({"type": "event", "requestId": "one", "event": {
            "id": "e-1", "type": "signup", "userId": "u1", "properties": {"plan": "pro"}}}))
        await ws.send_message(json.dumps({"type": "events", "requestId": "many", "events": [
            {"id": f"e-{i}", "type": "click", "userId": "u2"} for i in range(2, 12)]}))
        await ws.send_message(json.dumps({"type": "event", "requestId": "dup", "event": {
            "id": "e-1", "type": "signup"}}))
        await ws.send_message(json.dumps({"type": "event", "requestId": "bad", "event": {
            "userId": "no type"}}))
        await ws.send_message(json.dumps({"type": "events", "requestId": "strict", "events": [
            {"type": "ok"}, {"type": 5}]}))
        await ws.send_message(json.dumps({"type": "events", "requestId": "lenient",
                                          "partial": True,
                                          "events": [{"type": "ok", "id": "e-20"}, {"type": 5}]}))
        acked: dict[str, Any] = {"requestIds": [], "accepted": 0, "duplicates": 0, "ids": [],
                                 "errors": [], "rejected": []}
        with trio.fail_after(5):
            while len(acked["requestIds"]) < 6:
                msg = await conn.receive()
                if msg["type"] != "ack":
                    continue
                d = msg["data"]
                # durable and visible by the time the ack is sent
                assert srv.engine.store.stats()["events"] >= acked["accepted"] + d["accepted"]
                for key in ("requestIds", "ids", "errors", "rejected"):
                    acked[key] += d[key]
                acked["accepted"] += d["accepted"]
                acked["duplicates"] += d["duplicates"]
    assert sorted(acked["requestIds"]) == sorted(
        ["one", "many", "dup", "bad", "strict", "lenient"])
    assert acked["accepted"] == 12 and acked["duplicates"] == 1
    assert set(acked["ids"]) == {f"e-{i}" for i in range(1, 12)} | {"e-20"}
    assert {e["requestId"] for e in acked["errors"]} == {"bad", "strict"}
    assert [(r["requestId"], r["index"]) for r in acked["rejected"]] == [("lenient", 1)]
    assert srv.engine.store.stats()["events"] == 12


async def test_stream_ingest_client(srv: LiveServer) -> None:
    from rta.client.ws import stream_ingest

    batches = [[{"type": "t", "userId": f"u{b}-{i}"} for i in range(50)] for b in range(4)]
    batches[2].append({"type": ""})
    batches[1].insert(3, {"type": 7})
    single = await stream_ingest(srv.url, None, batches[:2], single=True, window=7)
    assert single["accepted"] == 100 and single["messages"] == 101
    assert single["rejected"] == 1
    assert (single["errors"][0]["batch"], single["errors"][0]["index"]) == (1, 3)
    many = await stream_ingest(srv.url, None, batches[2:], window=60)
    assert many["accepted"] == 100 and many["rejected"] == 1
    assert many["errors"][0]["batch"] == 0 and many["errors"][0]["index"] == 50
    assert srv.engine.store.stats()["events"] == 200


async def test_many_clients_get_each_tick(srv: LiveServer) -> None:
    async with trio.open_nursery() as nursery:
        conns: list[WebSocketConnection] = []
        for _ in range(20):
            ws = await nursery.start(_open, srv.ws_url)
            conns.append(ws)
        ticks: list[int] = []

        async def first_tick(ws: WebSocketConnection) -> None:
            while True:
                msg = json.loads(await ws.get_message())
                if msg["type"] == "metrics":
                    ticks.append(msg["timestamp"])
                    return

        with trio.fail_after(5):
            async with trio.open_nursery() as inner:
                for ws in conns:
                    inner.start_soon(first_tick, ws)
        assert len(ticks) == 20
        assert srv.engine.served.live_hub.stats()["activeConnections"] == 20
        nursery.cancel_scope.cancel()


async def _open(url: str, task_status: trio.TaskStatus[WebSocketConnection]) -> None:
    async with open_websocket_url(url) as ws:
        await ws.get_message()  # welcome
        await ws.send_message(json.dumps({"type": "subscribe", "channel": "metrics"}))
        task_status.started(ws)
        await trio.sleep_forever()


async def test_prefix_channels_reach_real_clients(srv: LiveServer) -> None:
    hub = srv.engine.served.live_hub
    from rta.core.errors import NotFoundError

    def on_subscribe(channel: str, sub: Any) -> None:
        if channel.endswith("missing"):
            raise NotFoundError("no such dashboard")
        hub.send(sub, channel, {"widgets": []})

    hub.register_prefix("dashboard:", on_subscribe)
    async with connect(srv.url) as conn:
        await conn.subscribe("dashboard:d1")
        first = await recv_until(conn, lambda m: m["channel"] == "dashboard:d1")
        assert first["type"] == "dashboard" and first["data"] == {"widgets": []}
        assert hub.active_channels() == ["dashboard:d1"]
        hub.publish("dashboard:d1", {"widgets": [1]})
        msg = await recv_until(conn, lambda m: m["channel"] == "dashboard:d1")
        assert msg["data"] == {"widgets": [1]}
        with pytest.raises(LiveError) as info:
            await conn.subscribe("dashboard:missing")
        assert info.value.code == "not_found"
        with pytest.raises(LiveError):
            await conn.subscribe("elsewhere:x")
