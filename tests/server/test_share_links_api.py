"""Share links against a real server: made by admins only, stored hashed, reaching their
one dashboard's data and nothing else (every registered route is tried with a link's
token), live updates over its `dashboard:<id>` channel, and refused at once when revoked
or expired, open WebSockets included."""

from __future__ import annotations

import gc
import hashlib
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from trio_websocket import WebSocketConnection, open_websocket_url

from rta.core.config import EngineConfig
from rta.server.security import required_scope
from rta.server.share_api import frame_ancestors
from tests.server.test_ws import no_protocol_pings
from tests.support import LiveServer, live_server

DASH = {"name": "kpis", "timeRange": "last_24h", "widgets": [
    {"type": "counter", "title": "Visits", "position": {"x": 0, "y": 0, "w": 3, "h": 2},
     "dataSource": {"type": "count", "eventType": "visit"}}]}


@pytest.fixture
async def secured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                  ) -> AsyncIterator[tuple[LiveServer, httpx.AsyncClient]]:
    """`auth on`, an admin client, and seven events."""
    no_protocol_pings(monkeypatch)  # (see there: they would hold the shutdown)
    config = EngineConfig(data_dir=str(tmp_path / "data"), max_events=1000)
    async with live_server(config, auth="on", share_frame_ancestors="'self' "
                           "https://wiki.example") as srv:
        secret, _ = srv.engine.services.tokens.create("admin", "owner")
        async with httpx.AsyncClient(base_url=srv.url, timeout=30, headers={
                "Authorization": f"Bearer {secret}"}) as admin:
            r = await admin.post("/events/batch", json=[{"type": "visit", "userId": f"u{i}"}
                                                        for i in range(7)])
            assert r.status_code == 202, r.text
            yield srv, admin


async def dashboard(admin: httpx.AsyncClient, name: str = "kpis") -> str:
    r = await admin.post("/dashboards", json={**DASH, "name": name})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def share(admin: httpx.AsyncClient, dashboard_id: str, **body: Any) -> dict[str, Any]:
    r = await admin.post(f"/dashboards/{dashboard_id}/share", json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


def concrete(rule: str, values: dict[str, str]) -> str:
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", lambda m: values.get(m.group(1), "x"), rule)


async def test_a_link_reaches_its_dashboard_and_nothing_else(secured: Any) -> None:
    srv, admin = secured
    mine, other = await dashboard(admin), await dashboard(admin, "other")
    link = await share(admin, mine)
    assert link["url"] == f"{srv.url}/share/{link['token']}"
    assert link["token"].startswith("rts_") and len(link["token"]) >= 4 + 43
    app = srv.engine  # (the routes come from the app the server runs)
    from rta.server.app import create_app
    rules = list(create_app(app).url_map.iter_rules())
    allowed = {("GET", f"/dashboards/{mine}"), ("GET", f"/dashboards/{mine}/data")}
    tried = 0
    async with httpx.AsyncClient(base_url=srv.url, timeout=30, headers={
            "Authorization": f"Bearer {link['token']}"}) as shared:
        for rule in rules:
            if getattr(rule, "websocket", False):
                continue
            for target in (mine, other):
                path = concrete(rule.rule, {"dashboard_id": target, "token": link["token"],
                                            "folder": "js", "path": "app.js"})
                for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
                    r = await shared.request(method, path, json={} if method in (
                        "POST", "PUT", "PATCH") else None)
                    tried += 1
                    if (method, path) in allowed:
                        assert r.status_code == 200, (method, path, r.text)
                    elif required_scope(method, path) is None:  # public: pages, /health
                        assert r.status_code not in (401, 403), (method, path, r.text)
                    else:
                        assert r.status_code == 403, (method, path, r.status_code, r.text)
                        assert r.json()["error"]["code"] == "forbidden"
        # annotations: only those shown on its own dashboard
        assert (await shared.get("/annotations", params={"dashboard": mine})).status_code == 200
        for params in ({}, {"dashboard": other}):
            assert (await shared.get("/annotations", params=params)).status_code == 403
        # the same token in the query string (as the page's WebSocket sends it) is held alike
        r = await shared.get("/events", headers={"Authorization": ""},
                             params={"token": link["token"]})
        assert r.status_code == 403
    assert tried > 60
    data = (await admin.get(f"/dashboards/{mine}/data")).json()
    assert data["widgets"][0]["data"]["value"] == 7


async def test_making_and_listing_links_needs_admin_and_keeps_only_a_hash(secured: Any) -> None:
    srv, admin = secured
    mine = await dashboard(admin)
    for scope in ("read", "write"):
        secret, _ = srv.engine.services.tokens.create(scope, scope)
        for method in ("POST", "GET", "DELETE"):
            r = await admin.request(method, f"/dashboards/{mine}/share",
                                    headers={"Authorization": f"Bearer {secret}"})
            assert r.status_code == 403, (scope, method)
    link = await share(admin, mine, expiresIn="7d", name="for the board")
    assert link["createdBy"] == "owner" and link["name"] == "for the board"
    assert 7 * 86_400_000 - 60_000 < link["expiresAt"] - link["createdAt"] <= 7 * 86_400_000
    listed = (await admin.get(f"/dashboards/{mine}/share")).json()
    assert listed["total"] == 1 and listed["links"][0]["id"] == link["id"]
    assert listed["links"][0]["expired"] is False
    text = json.dumps(listed)
    assert link["token"] not in text and "hash" not in text
    stored = srv.engine.metadata.list("share_link")
    assert stored[0]["hash"] == hashlib.sha256(link["token"].encode()).hexdigest()
    assert link["token"] not in json.dumps(stored)
    sqlite = (Path(srv.engine.config.data_dir) / "metadata.sqlite3").read_bytes()
    assert link["token"].encode() not in sqlite
    # bad input: 400 naming the field, 404 for what does not exist
    for body, field in (({"expiresAt": 1000}, "expiresAt"), ({"expiresIn": "soon"}, "expiresIn"),
                        ({"expiresIn": "1d", "expiresAt": "2999-01-01"}, "expiresIn"),
                        ({"colour": "red"}, "colour"), ({"name": 5}, "name")):
        r = await admin.post(f"/dashboards/{mine}/share", json=body)
        assert r.status_code == 400 and r.json()["error"]["details"][0]["field"] == field, body
    r = await admin.post(f"/dashboards/{mine}/share", content=b"[1]")
    assert r.status_code == 400
    assert (await admin.post("/dashboards/nope/share")).status_code == 404
    assert (await admin.get("/dashboards/nope/share")).status_code == 404
    assert (await admin.delete(f"/dashboards/{mine}/share/nope")).status_code == 404
    r = await admin.post(f"/dashboards/{mine}/share")  # no body: a link that never expires
    assert r.status_code == 201 and r.json()["expiresAt"] is None


async def test_the_page_opens_without_a_token_and_names_its_frame_ancestors(
        secured: Any) -> None:
    srv, admin = secured
    mine = await dashboard(admin)
    link = await share(admin, mine)
    async with httpx.AsyncClient(base_url=srv.url, timeout=30) as anonymous:
        page = await anonymous.get(f"/share/{link['token']}")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert f'content="{mine}"' in page.text
        csp = page.headers["content-security-policy"]
        assert "frame-ancestors 'self' https://wiki.example" in csp
        assert "x-frame-options" not in page.headers
        assert page.headers["cache-control"] == "no-store"
        assert page.headers["referrer-policy"] == "no-referrer"
        for token in ("rts_guess", "rta_" + link["token"][4:], "x" * 300):
            r = await anonymous.get(f"/share/{token}")
            assert r.status_code == 404 and "frame-ancestors 'none'" in \
                r.headers["content-security-policy"]
        # the rest of the API still wants a real token
        assert (await anonymous.get(f"/dashboards/{mine}/data")).status_code == 401
        # every other page keeps refusing to be framed
        assert (await anonymous.get("/")).headers["x-frame-options"] == "DENY"


def test_frame_ancestors_setting_is_a_source_list() -> None:
    assert frame_ancestors(None) == "'self'"
    assert frame_ancestors("https://a.example, 'self'") == "https://a.example 'self'"
    assert frame_ancestors("*.example.com:443") == "*.example.com:443"
    assert "\n" not in frame_ancestors("https://a.example\n https://b.example")
    for bad in ("'self'; script-src *", "'none' https://a.example",
                "'unsafe-inline'"):
        with pytest.raises(ValueError, match="share_frame_ancestors"):
            frame_ancestors(bad)


async def messages_until(ws: WebSocketConnection, kind: str) -> dict[str, Any]:
    with trio.fail_after(10):
        while True:
            msg = json.loads(await ws.get_message())
            if msg["type"] == kind:
                return dict(msg)


# trio-websocket's client leaves its TCP socket (made in trio.open_tcp_stream) unclosed when
# the server closes the connection first, which is what these tests provoke; the server's
# side is checked by `session_ended`.
CLIENT_SOCKET_LEAK = [pytest.mark.filterwarnings("ignore::ResourceWarning"),
                      pytest.mark.filterwarnings(
                          "ignore::pytest.PytestUnraisableExceptionWarning")]


async def session_ended(srv: LiveServer) -> None:
    """The server ended the connection's session (and closed the socket) by itself."""
    hub = srv.engine.served.live_hub
    with trio.fail_after(5):
        while hub.stats()["activeConnections"]:
            await trio.sleep(0.05)


@CLIENT_SOCKET_LEAK[0]
@CLIENT_SOCKET_LEAK[1]
async def test_live_channel_only_and_revocation_closes_the_socket(secured: Any) -> None:
    srv, admin = secured
    mine, other = await dashboard(admin), await dashboard(admin, "other")
    link = await share(admin, mine)
    async with open_websocket_url(f"{srv.ws_url}?token={link['token']}") as ws:
        await messages_until(ws, "welcome")
        for channel in ("metrics", "events", "alerts", f"dashboard:{other}",
                        f"dashboard:{mine}x", f"dashboard:{other}?dashboard:{mine}"):
            await ws.send_message(json.dumps({"type": "subscribe", "channel": channel}))
            err = await messages_until(ws, "error")
            assert err["code"] == "forbidden", channel
        await ws.send_message(json.dumps({"type": "event", "event": {"type": "x"}}))
        assert (await messages_until(ws, "error"))["code"] == "forbidden"
        channel = f"dashboard:{mine}?tz=60"
        await ws.send_message(json.dumps({"type": "subscribe", "channel": channel}))
        first = await messages_until(ws, "dashboard")
        assert first["channel"] == channel and first["data"]["widgets"][0]["data"]["value"] == 7
        r = await admin.post("/events", json={"type": "visit", "userId": "late"})
        assert r.status_code == 202
        with trio.fail_after(10):
            while True:  # a push with the new event (live updates, no polling)
                msg = await messages_until(ws, "dashboard")
                if msg["data"]["widgets"][0]["data"]["value"] == 8:
                    break
        r = await admin.delete(f"/dashboards/{mine}/share")
        assert r.status_code == 200 and r.json()["total"] == 1
        err = await messages_until(ws, "error")
        assert err["code"] == "unauthorized" and "revoked" in err["message"]
        await session_ended(srv)
    async with httpx.AsyncClient(base_url=srv.url, timeout=30) as anonymous:
        r = await anonymous.get(f"/dashboards/{mine}/data",
                                headers={"Authorization": f"Bearer {link['token']}"})
        assert r.status_code == 401
        assert (await anonymous.get(f"/share/{link['token']}")).status_code == 404
    gc.collect()  # (the client's socket, while its warning is ignored: see CLIENT_SOCKET_LEAK)


@CLIENT_SOCKET_LEAK[0]
@CLIENT_SOCKET_LEAK[1]
async def test_an_expired_link_is_refused_and_its_socket_closed(secured: Any) -> None:
    srv, admin = secured
    mine = await dashboard(admin)
    link = await share(admin, mine, expiresIn=1500)
    headers = {"Authorization": f"Bearer {link['token']}"}
    async with httpx.AsyncClient(base_url=srv.url, timeout=30, headers=headers) as shared:
        assert (await shared.get(f"/dashboards/{mine}/data")).status_code == 200
        async with open_websocket_url(f"{srv.ws_url}?token={link['token']}") as ws:
            await ws.send_message(json.dumps({"type": "subscribe",
                                              "channel": f"dashboard:{mine}"}))
            await messages_until(ws, "dashboard")
            err = await messages_until(ws, "error")  # (within ~1.5 s of making it)
            assert err["code"] == "unauthorized"
            await session_ended(srv)
        assert (await shared.get(f"/dashboards/{mine}/data")).status_code == 401
    listed = (await admin.get(f"/dashboards/{mine}/share")).json()["links"]
    assert listed[0]["expired"] is True
    gc.collect()


async def test_a_link_is_held_to_its_dashboard_where_auth_is_optional(
        server: LiveServer, http: httpx.AsyncClient) -> None:
    """Loopback with `auth auto` needs no token, but a presented link is still held to its
    scope, and a revoked one is refused (its page too)."""
    mine = await dashboard(http)
    link = await share(http, mine)
    headers = {"Authorization": f"Bearer {link['token']}"}
    assert (await http.get(f"/dashboards/{mine}/data", headers=headers)).status_code == 200
    assert (await http.get("/events", headers=headers)).status_code == 403
    assert (await http.get("/dashboards", headers=headers)).status_code == 403
    await http.delete(f"/dashboards/{mine}/share/{link['id']}")
    assert (await http.get(f"/dashboards/{mine}/data", headers=headers)).status_code == 401


async def test_links_use_the_public_url_behind_a_proxy(tmp_path: Path) -> None:
    """With `public_url` set (a proxy in front, perhaps under a path), the link is under it,
    not under the address the request came to; its token opens the page here."""
    config = EngineConfig(data_dir=str(tmp_path / "data"))
    async with live_server(config, public_url="https://analytics.example/rta/") as srv, \
            httpx.AsyncClient(base_url=srv.url, timeout=30) as http:
        link = await share(http, await dashboard(http))
        assert link["url"] == "https://analytics.example/rta/share/" + link["token"]
        assert link["embedUrl"] == link["url"] + "?embed=1"
        page = await http.get(link["url"].removeprefix("https://analytics.example/rta"))
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
