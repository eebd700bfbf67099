"""What a page in the operator's browser, or a malformed client, must not get: cross-origin
writes and WebSocket streams, DNS-rebound requests, a revoked token's open stream, a stuck
keep-alive connection after a refusal, and 500s for input nested or sized past the parser."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, RejectConnection, Request

from rta.client.ws import connect
from rta.core.config import EngineConfig
from tests.server.test_ws import recv_until
from tests.support import LiveServer, live_server

ALERT = {"name": "csrf", "condition": {"type": "threshold", "eventType": "pageview",
                                       "operator": "gt", "threshold": 0, "timeWindow": 60000},
         "notification": {"channels": ["log"]}}


async def handshake(srv: LiveServer, headers: list[tuple[bytes, bytes]],
                    host: str | None = None) -> int:
    """The status of a /ws handshake (101 when accepted)."""
    addr, port = srv.url.split("://")[1].split(":")
    conn = WSConnection(ConnectionType.CLIENT)
    stream = await trio.open_tcp_stream(addr, int(port))
    async with stream:
        await stream.send_all(conn.send(Request(host=host or f"{addr}:{port}", target="/ws",
                                                extra_headers=headers)))
        with trio.fail_after(5):
            while True:
                conn.receive_data(await stream.receive_some(65536) or None)
                for event in conn.events():
                    if isinstance(event, AcceptConnection):
                        return 101
                    if isinstance(event, RejectConnection):
                        return int(event.status_code)


async def test_foreign_pages_cannot_write_or_stream(http: httpx.AsyncClient,
                                                    server: LiveServer) -> None:
    evil = {"Origin": "https://evil.example", "Content-Type": "text/plain"}
    for path, body in (("/alerts", ALERT), ("/events", {"type": "x"}),
                       ("/dashboards", {"name": "d", "widgets": []}), ("/tokens", {})):
        r = await http.post(path, content=json.dumps(ALERT if path == "/alerts" else body),
                            headers=evil)
        assert r.status_code == 403 and r.json()["error"]["code"] == "origin_forbidden", path
    assert (await http.get("/alerts")).json()["alerts"] == []
    assert server.engine.store.stats()["events"] == 0
    # the daemon's own page (same origin) and SDK routes (any origin) are not affected
    own = {"Origin": server.url}
    assert (await http.post("/alerts", json=ALERT, headers=own)).status_code == 201
    sdk = await http.post("/capture/", json={"api_key": "k", "event": "e", "distinct_id": "u"},
                          headers={"Origin": "https://shop.example"})
    assert sdk.status_code == 200
    assert await handshake(server, [(b"origin", b"https://evil.example")]) == 403
    assert await handshake(server, [(b"origin", server.url.encode())]) == 101
    assert await handshake(server, []) == 101  # (not a browser: no Origin)


async def test_configured_origins_may_write(tmp_path: Path) -> None:
    config = EngineConfig(data_dir=str(tmp_path / "data"))
    async with live_server(config, cors_origins="https://app.example") as srv, \
            httpx.AsyncClient(base_url=srv.url) as http:
        r = await http.post("/events", json={"type": "x"},
                            headers={"Origin": "https://app.example"})
        assert r.status_code == 202
        assert await handshake(srv, [(b"origin", b"https://app.example")]) == 101


async def test_loopback_trust_answers_only_loopback_names(http: httpx.AsyncClient,
                                                          server: LiveServer) -> None:
    """A DNS-rebinding page reaches 127.0.0.1 under its own name: refused, reads included."""
    rebound = {"Host": "attacker.example:8080"}
    for path in ("/events", "/", "/analytics/count"):
        r = await http.get(path, headers=rebound)
        assert r.status_code == 403 and r.json()["error"]["code"] == "host_forbidden", path
    assert (await http.get("/health", headers=rebound)).status_code == 200
    assert (await http.get("/events", headers={"Host": "localhost"})).status_code == 200
    assert await handshake(server, [], host="attacker.example") == 403


async def test_a_revoked_token_ends_its_open_stream(tmp_path: Path) -> None:
    config = EngineConfig(data_dir=str(tmp_path / "data"))
    async with live_server(config, auth="on") as srv:
        tokens = srv.engine.services.tokens
        secret, record = tokens.create("admin", "a")
        async with connect(srv.url, secret) as conn:
            await conn.subscribe("metrics")
            tokens.revoke(record["id"])
            with trio.fail_after(5):
                err = await recv_until(conn, lambda m: m["type"] == "error")
            assert err["code"] == "unauthorized" and "revoked" in err["message"]


async def test_a_refusal_before_the_body_does_not_stall_the_connection(
        tmp_path: Path) -> None:
    """The body arrives after the 401: the next request on that connection is answered, or
    the connection is closed; it is never left hanging."""
    config = EngineConfig(data_dir=str(tmp_path / "data"))
    async with live_server(config, auth="on") as srv:
        addr, port = srv.url.split("://")[1].split(":")
        body = b'[{"type":"x"}]'
        stream = await trio.open_tcp_stream(addr, int(port))
        async with stream:
            await stream.send_all(b"POST /events/batch HTTP/1.1\r\nHost: " + addr.encode()
                                  + b"\r\nContent-Type: application/json\r\nContent-Length: "
                                  + str(len(body)).encode() + b"\r\n\r\n")
            await trio.sleep(0.05)
            await stream.send_all(body)
            await trio.sleep(0.05)
            got = b""
            with trio.fail_after(5):
                while b"\r\n\r\n" not in got:
                    got += await stream.receive_some(65536)
            assert got.startswith(b"HTTP/1.1 401")
            try:
                await stream.send_all(b"GET /health HTTP/1.1\r\nHost: " + addr.encode()
                                      + b"\r\n\r\n")
            except trio.BrokenResourceError:
                return  # closed: the client reconnects
            with trio.fail_after(5):
                while True:
                    data = await stream.receive_some(65536)
                    if not data or b"HTTP/1.1 200" in data:
                        break


async def test_input_past_the_parser_is_a_400(http: httpx.AsyncClient) -> None:
    deep = "[" * 5000 + "]" * 5000
    huge = '{"type": "x", "properties": {"v": ' + "1" * 5000 + "}}"
    for raw in (deep, huge):
        for path in ("/events", "/events/batch", "/analytics/count", "/alerts"):
            r = await http.post(path, content=raw, headers={"Content-Type": "application/json"})
            assert r.status_code == 400, (path, r.text[:200])
    nested_where = json.dumps({"where": json.loads('{"and": [' * 400 + "{}" + "]}" * 400)})
    r = await http.post("/analytics/count", content=nested_where,
                        headers={"Content-Type": "application/json"})
    assert 400 <= r.status_code < 500
    r = await http.post("/v1/track", json={"event": "e", "userId": "u"},
                        headers={"Authorization": "Basic \u00e9".encode()})
    assert r.status_code < 500  # (an unreadable key is no key: loopback needs none)
