"""/ws below Quart: the ASGI middleware's handshake auth, the direct socket writes (frames
whole and in order under partial writes, stalls and interleaved pongs), the Quart fallback
route, and streamed ingest coalesced into group commits."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st
from trio_websocket import open_websocket_url
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Message,
    Ping,
    Pong,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.frame_protocol import FrameProtocol, Opcode

import rta.server.ws_api as ws_api
from rta.client.ws import LiveConnection, connect, stream_ingest
from rta.core.config import EngineConfig
from tests.server.test_ws import no_protocol_pings, recv_until
from tests.support import LiveServer, live_server


@pytest.fixture
async def srv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[LiveServer]:
    no_protocol_pings(monkeypatch)
    config = EngineConfig(data_dir=str(tmp_path / "data"))
    async with live_server(config, ws_queue=16) as server:
        yield server


def hub_of(srv: LiveServer) -> Any:
    return srv.engine.served.live_hub


# -- frames -----------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.one_of(st.text(max_size=300),
                 st.integers(0, 70_000).map(lambda n: "é" * (n // 2) + "x" * (n % 2)),
                 st.sampled_from([125, 126, 127, 65535, 65536, 65537]).map(lambda n: "a" * n)))
def test_text_frame_decodes_as_one_final_text_frame(text: str) -> None:
    frame = ws_api.text_frame(text)
    assert ws_api.text_frame(text) is frame  # cached for the broadcast
    proto = FrameProtocol(client=True, extensions=[])
    proto.receive_bytes(frame)
    (got,) = list(proto.received_frames())
    assert got.opcode is Opcode.TEXT and got.frame_finished and got.message_finished
    assert got.payload == text


# -- handshake auth ---------------------------------------------------------------------------


async def test_handshake_runs_check_access(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    no_protocol_pings(monkeypatch)
    config = EngineConfig(data_dir=str(tmp_path / "data"))
    async with live_server(config, auth="on") as srv:
        tokens = srv.engine.services.tokens
        read, _ = tokens.create("read", "r")
        write, _ = tokens.create("write", "w")
        admin, _ = tokens.create("admin", "a")
        for token, status, code in ((None, 401, "unauthorized"), ("rta_nope", 401,
                                    "unauthorized")):
            got, headers, body = await refused(srv.ws_url, token)
            assert got == status, token
            assert json.loads(body)["error"]["code"] == code
            if status == 401:
                assert b"Bearer" in headers[b"www-authenticate"]
        got, _, body = await refused(f"{srv.ws_url}?token=rta_nope")
        assert got == 401 and json.loads(body)["error"]["code"] == "unauthorized"
        assert srv.engine.store.stats()["events"] == 0
        async with connect(srv.url, read) as conn:  # Authorization: Bearer
            await conn.subscribe("metrics")
            await conn.send({"type": "event", "event": {"type": "x"}, "requestId": 7})
            err = await recv_until(conn, lambda m: m["type"] == "error")
            assert err["code"] == "forbidden" and err["requestId"] == 7
            await conn.send({"type": "events", "events": [{"type": "x"}], "requestId": 8})
            err = await recv_until(conn, lambda m: m["type"] == "error")
            assert err["code"] == "forbidden" and err["requestId"] == 8
            assert (await conn.ping())["type"] == "pong"  # and the connection stays up
        async with open_websocket_url(f"{srv.ws_url}?token={read}") as ws:  # ?token=
            assert json.loads(await ws.get_message())["type"] == "welcome"
        totals = await stream_ingest(srv.url, admin, [[{"type": "x"}] * 3], single=True)
        assert totals["accepted"] == 3 and totals["rejected"] == 0
        # A write-only token (an SDK's) may connect to stream events, but not read streams.
        totals = await stream_ingest(srv.url, write, [[{"type": "y"}] * 2], single=True)
        assert totals["accepted"] == 2
        async with connect(srv.url, write) as conn:
            await conn.send({"type": "subscribe", "channel": "metrics", "requestId": 9})
            err = await recv_until(conn, lambda m: m["type"] == "error")
            assert err["code"] == "forbidden" and err["requestId"] == 9
        assert srv.engine.store.stats()["events"] == 5


async def test_handshake_is_rate_limited_like_any_request(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    no_protocol_pings(monkeypatch)
    config = EngineConfig(data_dir=str(tmp_path / "data"))
    async with live_server(config, rate_limit_rps=0.01, rate_limit_burst=2) as srv:
        for _ in range(2):
            async with open_websocket_url(srv.ws_url) as ws:
                await ws.get_message()
        status, headers, body = await refused(srv.ws_url)
        assert status == 429 and int(headers[b"retry-after"]) >= 1
        assert json.loads(body)["error"]["code"] == "rate_limited"


async def refused(url: str, token: str | None = None
                  ) -> tuple[int, dict[bytes, bytes], bytes]:
    """(status, headers, body) of a handshake the server must refuse (wsproto over a plain
    socket: trio-websocket leaks its socket when a handshake is rejected)."""
    host, port = url.split("://")[1].split("/")[0].split(":")
    target = "/" + url.split("://")[1].split("/", 1)[1]
    conn = WSConnection(ConnectionType.CLIENT)
    headers = [(b"authorization", f"Bearer {token}".encode())] if token else []
    stream = await trio.open_tcp_stream(host, int(port))
    async with stream:
        await stream.send_all(conn.send(Request(host=host, target=target,
                                                extra_headers=headers)))
        status, got, body = 0, {}, b""
        with trio.fail_after(5):
            while True:
                data = await stream.receive_some(65536)
                conn.receive_data(data or None)
                for event in conn.events():
                    if isinstance(event, AcceptConnection):
                        raise AssertionError("the handshake was accepted")
                    if isinstance(event, RejectConnection):
                        status = event.status_code
                        got = {k.lower(): v for k, v in event.headers}
                        if not event.has_body:
                            return status, got, body
                    elif isinstance(event, RejectData):
                        body += event.data
                        if event.body_finished:
                            return status, got, body
                if not data:
                    raise AssertionError("closed before the refusal was complete")


# -- direct writes ----------------------------------------------------------------------------


class RawClient:
    """A sans-IO (wsproto) client over a socket with a tiny receive buffer: it can stop
    reading for as long as it likes and send pings the server's hypercorn answers itself."""

    def __init__(self, stream: trio.SocketStream, conn: WSConnection) -> None:
        self.stream = stream
        self.conn = conn
        self.texts: list[str] = []
        self.pongs = 0
        self._parts: list[str] = []

    @classmethod
    async def open(cls, url: str, rcvbuf: int = 4096) -> RawClient:
        host, port = url.split("://")[1].split("/")[0].split(":")
        sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        await sock.connect((host, int(port)))
        client = cls(trio.SocketStream(sock), WSConnection(ConnectionType.CLIENT))
        await client.stream.send_all(client.conn.send(Request(host=host, target="/ws")))
        while True:
            data = await client.stream.receive_some(65536)
            client.conn.receive_data(data)
            for event in client.conn.events():
                if isinstance(event, RejectConnection):
                    raise AssertionError(f"rejected: {event.status_code}")
                if isinstance(event, AcceptConnection):
                    client._collect()
                    return client

    def _collect(self) -> None:
        for event in self.conn.events():
            if isinstance(event, TextMessage):
                self._parts.append(event.data)
                if event.message_finished:
                    self.texts.append("".join(self._parts))
                    self._parts.clear()
            elif isinstance(event, Pong):
                self.pongs += 1
            elif isinstance(event, CloseConnection):
                raise AssertionError(f"server closed: {event.code} {event.reason}")
            elif not isinstance(event, Ping):
                raise AssertionError(f"unexpected {event!r}")

    async def send_json(self, message: dict[str, Any]) -> None:
        await self.stream.send_all(self.conn.send(Message(data=json.dumps(message))))

    async def ping(self) -> None:
        await self.stream.send_all(self.conn.send(Ping(b"p")))

    async def read_until(self, pred: Any, timeout: float = 10) -> None:
        with trio.fail_after(timeout):
            while not pred():
                data = await self.stream.receive_some(65536)
                assert data, "server closed the connection"
                self.conn.receive_data(data)  # raises on a malformed frame
                self._collect()


async def test_direct_writes_keep_frames_whole_and_ordered(srv: LiveServer) -> None:
    hub = hub_of(srv)
    client = await RawClient.open(srv.ws_url)
    await client.send_json({"type": "subscribe", "channel": "alerts", "requestId": "s"})
    await client.read_until(lambda: any('"subscribed"' in t for t in client.texts))
    (sub,) = [s for s in hub._subs.values() if "alerts" in s.channels]
    assert sub.direct is not None  # the socket fast path is in use
    partial_before = ws_api.DirectSender.partial_writes
    blob = "é" * 12_000  # ~24 KB per message: the stalled socket fills within a few
    n, pings = 150, 0
    for i in range(n):
        hub.publish("alerts", {"seq": i, "blob": blob})
        if i % 10 == 0:  # hypercorn writes pongs, we queue control replies, meanwhile
            await client.ping()
            await client.send_json({"type": "ping", "requestId": i})
            pings += 1
        await trio.sleep(0.001)
    await client.read_until(lambda: any(f'"seq":{n - 1},' in t for t in client.texts)
                            and client.pongs == pings
                            and sum('"pong"' in t[:20] for t in client.texts) == pings)
    messages = [json.loads(t) for t in client.texts]  # every frame whole
    seqs = [m["data"]["seq"] for m in messages if m["type"] == "alerts"]
    assert seqs == sorted(set(seqs)) and seqs[-1] == n - 1
    assert all(m["data"]["blob"] == blob for m in messages if m["type"] == "alerts")
    assert [m["requestId"] for m in messages if m["type"] == "pong"] == list(range(0, n, 10))
    stats = hub.stats()
    assert stats["messagesDropped"] > 0 and len(seqs) + stats["messagesDropped"] == n
    assert ws_api.DirectSender.partial_writes > partial_before  # the tail path ran
    # the connection still works both ways afterwards
    await client.send_json({"type": "ping", "requestId": "last"})
    await client.read_until(lambda: '"requestId":"last"' in client.texts[-1])
    await client.stream.aclose()


async def test_the_quart_route_serves_without_the_middleware(
        srv: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    async def passthrough(self: Any, scope: Any, receive: Any, send: Any) -> None:
        await self.inner(scope, receive, send)

    monkeypatch.setattr(ws_api.LiveWebSocketMiddleware, "__call__", passthrough)
    async with connect(srv.url) as conn:
        assert conn.welcome["data"]["version"] == srv.engine.version
        await conn.subscribe("metrics")
        assert (await recv_until(conn, lambda m: m["type"] == "metrics"))["data"]["totals"]
        (sub,) = hub_of(srv)._subs.values()
        assert sub.direct is None
        totals = await stream_ingest(srv.url, None, [[{"type": "q"}] * 5], single=True)
        assert totals["accepted"] == 5


# -- streamed ingest --------------------------------------------------------------------------


async def test_pipelined_events_share_commits_and_each_is_acked(srv: LiveServer) -> None:
    n = 400
    async with connect(srv.url) as conn:
        conn_ws: LiveConnection = conn
        for i in range(n):
            await conn_ws.send({"type": "event", "requestId": i, "event": {
                "id": f"ev-{i}", "type": "click", "userId": f"u{i % 7}",
                "properties": {"n": i}}})
        await conn_ws.send({"type": "event", "requestId": "bad", "event": {"type": ""}})
        acked: list[Any] = []
        acks = 0
        ids: list[str] = []
        errors: list[Any] = []
        with trio.fail_after(10):
            while len(acked) < n + 1:
                msg = await conn_ws.receive()
                if msg["type"] == "ack":
                    acks += 1
                    acked += msg["data"]["requestIds"]
                    ids += msg["data"]["ids"]
                    errors += msg["data"]["errors"]
                    # durable and visible when acknowledged
                    assert srv.engine.store.stats()["events"] >= len(ids)
    assert sorted(acked, key=str) == sorted([*range(n), "bad"], key=str)
    assert ids == [f"ev-{i}" for i in range(n)]  # in order, one commit per ack
    assert [e["requestId"] for e in errors] == ["bad"]
    assert acks < n  # coalesced: messages read during a commit go into the next one
    assert srv.engine.store.stats()["events"] == n
    assert srv.engine.events_rejected == 1


async def test_stream_client_reads_messages_that_came_with_the_handshake() -> None:
    """A server that writes its 101 response and the welcome in one segment (hypercorn can):
    the client must not wait for more bytes before reading the welcome."""
    from wsproto.events import BytesMessage

    got: list[Any] = []

    async def fake_server(stream: trio.SocketStream) -> None:
        conn = WSConnection(ConnectionType.SERVER)
        while True:
            conn.receive_data(bytes(await stream.receive_some(65536)))
            requests = [e for e in conn.events() if isinstance(e, Request)]
            if requests:
                break
        welcome = json.dumps({"type": "welcome", "channel": None, "timestamp": 0, "data": {}})
        await stream.send_all(conn.send(AcceptConnection())
                              + conn.send(Message(data=welcome)))
        while not got:
            data = await stream.receive_some(65536)
            conn.receive_data(bytes(data) if data else None)
            got.extend(json.loads(e.data) for e in conn.events()
                       if isinstance(e, (TextMessage, BytesMessage)))
        ack = {"type": "ack", "channel": None, "timestamp": 0, "data": {
            "messages": 1, "requestIds": [got[0]["requestId"]], "accepted": 1,
            "duplicates": 0, "ids": ["x"], "rejected": [], "errors": []}}
        await stream.send_all(conn.send(Message(data=json.dumps(ack))))
        with trio.move_on_after(2):
            while await stream.receive_some(65536):
                pass

    async with trio.open_nursery() as nursery:
        (listener,) = await nursery.start(partial(trio.serve_tcp, fake_server, 0,
                                                  host="127.0.0.1"))
        port = listener.socket.getsockname()[1]
        with trio.fail_after(5):
            totals = await stream_ingest(f"http://127.0.0.1:{port}", None, [[{"type": "t"}]],
                                         single=True)
        nursery.cancel_scope.cancel()
    assert totals["accepted"] == 1 and got[0]["type"] == "event"
