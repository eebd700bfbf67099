"""Dashboards over HTTP and WebSocket against a real server; the static web app's serving."""

from __future__ import annotations

import json
from typing import Any

import httpx
import trio
from trio_websocket import open_websocket_url

from rta.core.queries.timeparse import now_ms
from tests.support import LiveServer

COUNTER = {"type": "counter", "title": "Purchases", "position": {"x": 0, "y": 0, "w": 3, "h": 2},
           "dataSource": {"type": "count", "eventType": "purchase"}}


def events(n: int, etype: str = "purchase", start: int = 0) -> list[dict[str, Any]]:
    now = now_ms()
    return [{"type": etype, "userId": f"u{(start + i) % 5}", "timestamp": now - 1000 - i,
             "properties": {"amount": 10.0 + i, "page": "/p"}} for i in range(n)]


async def test_crud_round_trip(http: httpx.AsyncClient) -> None:
    r = await http.post("/dashboards", json={"name": "Revenue", "widgets": [COUNTER],
                                             "refreshInterval": 5000})
    assert r.status_code == 201, r.text
    doc = r.json()
    assert r.headers["Location"] == f"/dashboards/{doc['id']}"
    assert doc["widgets"][0]["id"] == "w1" and doc["layout"]["columns"] == 12
    listing = (await http.get("/dashboards")).json()
    assert listing["total"] == 1 and listing["dashboards"][0]["id"] == doc["id"]
    assert (await http.get(f"/dashboards/{doc['id']}")).json() == doc
    r = await http.put(f"/dashboards/{doc['id']}", json={**doc, "name": "Money"})
    assert r.status_code == 200 and r.json()["name"] == "Money"
    assert r.json()["createdAt"] == doc["createdAt"]
    assert (await http.delete(f"/dashboards/{doc['id']}")).json()["deleted"] is True
    r = await http.get(f"/dashboards/{doc['id']}")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert (await http.delete(f"/dashboards/{doc['id']}")).status_code == 404
    assert (await http.get(f"/dashboards/{doc['id']}/data")).status_code == 404


async def test_templates_endpoints(http: httpx.AsyncClient) -> None:
    for name in ("overview", "engagement", "performance", "errors", "web"):
        r = await http.post("/dashboards/template", json={"template": name})
        assert r.status_code == 201, r.text
        assert r.json()["template"] == name and r.json()["widgets"]
    r = await http.post("/dashboards/template", json={"template": "sales"})
    assert r.status_code == 400
    assert r.json()["error"]["details"][0]["field"] == "template"
    r = await http.post("/dashboards/templates", json={"template": "sales", "name": "Sales",
                                                       "widgets": [COUNTER]})
    assert r.status_code == 201, r.text
    again = await http.post("/dashboards/templates", json={"template": "sales", "widgets": []})
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"
    listing = (await http.get("/dashboards/templates")).json()["templates"]
    assert [t["name"] for t in listing][-1] == "sales" and not listing[-1]["builtin"]
    r = await http.post("/dashboards/template", json={"template": "sales", "name": "Q3"})
    assert r.status_code == 201 and r.json()["name"] == "Q3"
    assert (await http.delete("/dashboards/templates/sales")).status_code == 200
    assert (await http.delete("/dashboards/templates/overview")).status_code == 400


async def test_bad_input_is_a_400_naming_widget_and_field(http: httpx.AsyncClient) -> None:
    await http.post("/events/batch", json=events(3))
    cases = [
        ({"type": "radar", "dataSource": {"type": "count"}}, "widgets[1].type"),
        ({"type": "counter", "position": {"x": 1, "y": 0, "w": 3, "h": 2},
          "dataSource": {"type": "count"}}, "widgets[1].position"),
        ({"type": "counter", "position": {"x": 11, "y": 3, "w": 2, "h": 2},
          "dataSource": {"type": "count"}}, "widgets[1].position.w"),
        ({"type": "counter", "dataSource": {"type": "aggregation", "eventType": "purchase",
                                            "aggregation": "sum"}},
         "widgets[1].dataSource.metric"),
    ]
    for widget, field in cases:
        r = await http.post("/dashboards", json={"name": "x", "widgets": [COUNTER, widget]})
        assert r.status_code == 400, r.text
        detail = r.json()["error"]["details"][0]
        assert detail["field"] == field and detail["widget"] == 1
    # a property no stored event carries is what the data says, not a malformed dashboard:
    # saved, with a warning (#23)
    typo = {"type": "counter", "dataSource": {"type": "aggregation", "eventType": "purchase",
                                              "metric": "amont", "aggregation": "sum"}}
    r = await http.post("/dashboards", json={"name": "x", "widgets": [COUNTER, typo]})
    assert r.status_code == 201, r.text
    assert r.json()["warnings"] == [{"field": "widgets[1].dataSource.metric",
                                     "message": "no 'purchase' events carry property 'amont'; "
                                                "known: amount, page"}]
    await http.delete(f"/dashboards/{r.json()['id']}")
    for raw in (b"[]", b"{not json", b'"x"'):
        r = await http.post("/dashboards", content=raw,
                            headers={"Content-Type": "application/json"})
        assert r.status_code == 400
    r = await http.get("/dashboards/nope/data", params={"tz": "abc"})
    assert r.status_code in (400, 404)
    assert (await http.get("/dashboards")).json()["total"] == 0


async def test_data_matches_the_analytics_api(http: httpx.AsyncClient) -> None:
    await http.post("/events/batch", json=events(7) + events(4, "pageview", 100))
    doc = (await http.post("/dashboards/template", json={"template": "overview"})).json()
    r = await http.get(f"/dashboards/{doc['id']}/data", params={"tz": "60"})
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    data = r.json()
    assert data["dashboardId"] == doc["id"] and len(data["widgets"]) == len(doc["widgets"])
    assert all(w["error"] is None for w in data["widgets"]), data["widgets"]
    by_title = {w["title"]: w["data"] for w in data["widgets"]}
    count = (await http.get("/analytics/count", params={"timeRange": "last_24h"})).json()
    assert by_title["Events"]["value"] == count["count"] == 11
    assert by_title["Revenue"]["value"] == sum(10.0 + i for i in range(7))
    assert by_title["Activity by hour and weekday"]["total"] == 11
    assert by_title["Activity by hour and weekday"]["tzOffsetMinutes"] == 60
    short = (await http.get(f"/dashboards/{doc['id']}/data",
                            params={"timeRange": "last_15m"})).json()
    assert short["timeRange"] == "last_15m"
    r = await http.get(f"/dashboards/{doc['id']}/data", params={"timeRange": "forever"})
    assert r.status_code == 400


async def test_daily_series_follow_the_viewers_time_zone(http: httpx.AsyncClient) -> None:
    """Daily buckets start at the viewer's midnight (tz=330: 18:30 UTC), and a rolling
    window's first bucket is a whole day, counted exactly like the analytics API does."""
    now = now_ms()
    day = 86_400_000
    sample = [{"type": "visit", "userId": f"v{i % 9}", "timestamp": now - i * 3_600_000}
              for i in range(24 * 6)]
    assert (await http.post("/events/batch", json=sample)).status_code == 202
    doc = (await http.post("/dashboards", json={"name": "Daily", "widgets": [
        {"id": "d", "type": "line-chart", "title": "Visits a day", "dataSource": {
            "type": "count", "eventType": "visit", "interval": "1d",
            "timeRange": "last_7d"}}]})).json()
    for tz in (330, -300, 0):
        data = (await http.get(f"/dashboards/{doc['id']}/data", params={"tz": tz})).json()
        widget = data["widgets"][0]
        assert widget["error"] is None, widget
        stamps = widget["data"]["timestamps"]
        assert all((t + tz * 60_000) % day == 0 for t in stamps), (tz, stamps)
        assert stamps[0] <= now - 7 * day  # the first day is whole, not a sliver
        values = widget["data"]["series"][0]["values"]
        assert sum(v or 0 for v in values) == len(sample)
        api = (await http.post("/analytics/aggregate", json={
            "eventType": "visit", "interval": day, "tzOffset": tz,
            "startTime": stamps[0], "endTime": now})).json()
        assert [b["value"] for b in api["buckets"]][:len(values)] == values


async def test_failing_widget_carries_its_own_error(http: httpx.AsyncClient) -> None:
    widgets = [COUNTER, {"type": "gauge", "position": {"x": 3, "y": 0, "w": 3, "h": 2},
                         "dataSource": {"type": "aggregation", "eventType": "signup",
                                        "metric": "plan", "aggregation": "avg"}}]
    doc = (await http.post("/dashboards", json={"name": "x", "widgets": widgets})).json()
    signup = {"type": "signup", "userId": "u1", "timestamp": now_ms() - 10,
              "properties": {"plan": "pro"}}
    await http.post("/events/batch", json=[*events(2), signup])
    data = (await http.get(f"/dashboards/{doc['id']}/data")).json()
    ok, bad = data["widgets"]
    assert ok["data"]["value"] == 2 and ok["error"] is None
    assert bad["data"] is None and "not numeric" in bad["error"]["message"]


async def recv_json(ws: Any, timeout: float = 5) -> dict[str, Any]:
    with trio.fail_after(timeout):
        msg: dict[str, Any] = json.loads(await ws.get_message())
        return msg


async def test_live_channel_pushes_new_data(server: LiveServer,
                                            http: httpx.AsyncClient) -> None:
    doc = (await http.post("/dashboards", json={"name": "live", "widgets": [COUNTER],
                                                "refreshInterval": 60_000})).json()
    channel = f"dashboard:{doc['id']}"
    async with open_websocket_url(server.ws_url) as ws:
        await ws.send_message(json.dumps({"type": "subscribe", "channel": "dashboard:nope"}))
        await ws.send_message(json.dumps({"type": "subscribe", "channel": channel}))
        seen: list[dict[str, Any]] = []
        refused = False
        while not any(m["type"] == "dashboard" for m in seen):
            msg = await recv_json(ws)
            refused = refused or (msg["type"] == "error" and "nope" in json.dumps(msg))
            seen.append(msg)
        first = next(m for m in seen if m["type"] == "dashboard")
        assert first["channel"] == channel
        assert first["data"]["widgets"][0]["data"]["value"] == 0
        assert refused
        t0 = trio.current_time()
        await http.post("/events/batch", json=events(5))
        while True:
            msg = await recv_json(ws, 3)
            if msg["type"] == "dashboard" and msg["data"]["widgets"][0]["data"]["value"] == 5:
                break
        assert trio.current_time() - t0 < 3
        # a channel with its own time range and time zone
        await ws.send_message(json.dumps({"type": "subscribe",
                                          "channel": channel + "?timeRange=last_1h&tz=120"}))
        while True:
            msg = await recv_json(ws)
            if msg["type"] == "dashboard" and msg["channel"].endswith("tz=120"):
                assert msg["data"]["timeRange"] == "last_1h"
                break


async def test_live_channel_follows_edits_and_ends_on_delete(
        server: LiveServer, http: httpx.AsyncClient) -> None:
    """An edit is pushed without waiting for events or the refresh interval; a deleted
    dashboard's subscribers are told, and the channel ends (pings still answered)."""
    doc = (await http.post("/dashboards", json={"name": "before", "widgets": [COUNTER],
                                                "refreshInterval": 60_000})).json()
    channel = f"dashboard:{doc['id']}"
    async with open_websocket_url(server.ws_url) as ws:
        await ws.send_message(json.dumps({"type": "subscribe", "channel": channel}))
        while (await recv_json(ws))["type"] != "dashboard":
            pass
        await http.put(f"/dashboards/{doc['id']}", json={**doc, "name": "after"})
        while True:
            msg = await recv_json(ws, 3)
            if msg["type"] == "dashboard":
                assert msg["data"]["name"] == "after"
                break
        assert (await http.delete(f"/dashboards/{doc['id']}")).status_code == 200
        while True:
            msg = await recv_json(ws, 3)
            if msg["type"] == "error":
                break
        assert msg["channel"] == channel and msg["code"] == "not_found"
        assert "deleted" in msg["message"]
        await http.post("/events/batch", json=events(3))
        await ws.send_message(json.dumps({"type": "ping"}))
        while (msg := await recv_json(ws, 3))["type"] != "pong":
            assert msg["type"] != "dashboard"  # (unsubscribed: no more pushes)


async def test_web_app_is_served_with_types_and_cache_headers(
        http: httpx.AsyncClient) -> None:
    r = await http.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert r.headers["cache-control"] == "no-cache"
    assert '<script type="module" src="/js/app.js">' in r.text
    for path, ctype in (("/js/app.js", "text/javascript"), ("/css/dashboard.css", "text/css"),
                        ("/img/favicon.svg", "image/svg+xml"),
                        ("/vendor/chart-4.6.1.umd.min.js", "text/javascript")):
        res = await http.get(path)
        assert res.status_code == 200 and res.headers["content-type"].startswith(ctype), path
        assert (await http.get(path, headers={"If-None-Match": res.headers["etag"]})
                ).status_code == 304
    vendor = await http.get("/vendor/chart-4.6.1.umd.min.js")
    assert "immutable" in vendor.headers["cache-control"]
    for bad in ("/js/../../core/engine.py", "/js/missing.js", "/vendor/.hidden"):
        assert (await http.get(bad)).status_code == 404
    missing = await http.get("/no/such/endpoint")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


async def test_cli_dashboards_commands(server: LiveServer, http: httpx.AsyncClient) -> None:
    from typer.testing import CliRunner

    from rta.cli.main import app

    runner = CliRunner()

    async def rta(*args: str) -> Any:
        return await trio.to_thread.run_sync(
            lambda: runner.invoke(app, [*args, "--server", server.url]))

    await http.post("/events/batch", json=events(4))
    r = await rta("dashboards", "create", "--template", "overview", "--name", "Ops", "--json")
    assert r.exit_code == 0, r.output
    created = json.loads(r.stdout)
    assert created["name"] == "Ops" and created["url"].endswith(f"#/dashboards/{created['id']}")
    r = await rta("dashboards", "list", "--json")
    assert [d["id"] for d in json.loads(r.stdout)["dashboards"]] == [created["id"]]
    r = await rta("dashboards", "list")
    assert r.exit_code == 0 and "Ops" in r.stdout
    r = await rta("dashboards", "show", created["id"], "--json")
    shown = json.loads(r.stdout)
    revenue = next(w for w in shown["data"]["widgets"] if w["title"] == "Revenue")
    assert revenue["data"]["value"] == sum(10.0 + i for i in range(4))
    r = await rta("dashboards", "show", created["id"])
    assert r.exit_code == 0 and "Revenue" in r.stdout
    r = await rta("dashboards", "open", created["id"], "--no-browser")
    assert r.stdout.strip() == created["url"]
    r = await rta("dashboards", "templates", "--json")
    assert {t["name"] for t in json.loads(r.stdout)["templates"]} >= {"overview", "errors"}
    r = await rta("dashboards", "create", "--template", "nope")
    assert r.exit_code == 4 and "template" in r.output
    r = await rta("dashboards", "show", "missing-id")
    assert r.exit_code == 4
    r = await rta("dashboards", "delete", created["id"])
    assert r.exit_code == 0
    assert (await http.get("/dashboards")).json()["total"] == 0


async def sdk_data(http: httpx.AsyncClient) -> None:
    """What posthog-js and analytics.js send: `$`-properties, no `page`, no `amount`."""
    now = now_ms()
    batch = [{"event": event, "distinct_id": f"d{i}", "timestamp": now - 60_000 - i,
              "properties": {"$current_url": "https://shop.example/cart", **props}}
             for i, (event, props) in enumerate([("$pageview", {}), ("pageview", {}),
                                                 ("purchase", {"price": 12.5})])]
    r = await http.post("/batch/", json={"api_key": "k", "batch": batch})
    assert r.status_code == 200, r.text
    r = await http.post("/v1/page", auth=("k", ""), json={
        "userId": "u1", "name": "Cart", "properties": {"path": "/cart"}})
    assert r.status_code == 200, r.text


async def test_template_dashboard_saves_over_sdk_data_with_warnings(
        http: httpx.AsyncClient) -> None:
    """#23: once PostHog/Segment data exists, a template's widgets read properties no event
    carries (`amount` on purchase; #19: pages are read from every SDK's fields). Saving
    still succeeds, with `warnings`; the widget says why it is empty; structural errors are
    still refused."""
    await sdk_data(http)
    r = await http.post("/dashboards/template", json={"template": "overview"})
    assert r.status_code == 201, r.text
    doc = r.json()
    r = await http.put(f"/dashboards/{doc['id']}", json={"name": "Shop"})
    assert r.status_code == 200, r.text
    renamed = r.json()
    assert renamed["name"] == "Shop"
    fields = {w["field"]: w["message"] for w in renamed["warnings"]}
    # (#19) the top pages read every SDK's page fields: nothing missing there any more
    assert not any(f.startswith("widgets[6]") for f in fields)
    assert "no 'purchase' events carry property 'amount'" in fields[
        "widgets[2].dataSource.metric"]
    assert "price" in fields["widgets[2].dataSource.metric"]
    assert all(set(w) == {"field", "message"} for w in renamed["warnings"])
    # the unchanged document PUT back (warnings included) is accepted, and never stored
    r = await http.put(f"/dashboards/{doc['id']}", json=renamed)
    assert r.status_code == 200, r.text
    assert r.json()["warnings"] == renamed["warnings"]
    stored = (await http.get(f"/dashboards/{doc['id']}")).json()
    assert "warnings" not in stored and stored["name"] == "Shop"
    # adding a widget over data that does not exist yet is a save too
    extra = {"type": "table", "dataSource": {"type": "top", "property": "colour"}}
    r = await http.put(f"/dashboards/{doc['id']}",
                       json={"widgets": [*stored["widgets"], extra]})
    assert r.status_code == 200, r.text
    assert any(w["field"].endswith("dataSource.property") and "'colour'" in w["message"]
               for w in r.json()["warnings"])
    r = await http.post("/dashboards", json={"name": "Ok", "widgets": [COUNTER]})
    assert r.status_code == 201 and "warnings" not in r.json()
    # structure is still checked: a bad widget type is a 400
    bad = {"type": "sparkline", "dataSource": {"type": "count"}}
    r = await http.put(f"/dashboards/{doc['id']}", json={"widgets": [bad]})
    assert r.status_code == 400
    assert r.json()["error"]["details"][0]["field"] == "widgets[0].type"
    # the widget over missing data renders empty and carries the reason
    data = (await http.get(f"/dashboards/{doc['id']}/data")).json()
    assert data["storeEvents"] == 4
    top = data["widgets"][6]
    assert top["error"] is None and top.get("warnings") is None
    assert top["data"]["labels"] == ["/cart"] and top["data"]["values"] == [3]
    revenue = data["widgets"][2]
    assert revenue["warnings"][0]["field"] == "widgets[2].dataSource.metric"
    assert "warnings" not in data["widgets"][0]
