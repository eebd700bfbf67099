"""Annotations against a real server: the author from the token, scopes, filters checked
against a naive reference, and bad input as 400s naming the field."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from rta.core.config import EngineConfig
from rta.core.queries.timeparse import now_ms, parse_iso
from tests.support import LiveServer, live_server

HOUR = 3_600_000


@pytest.fixture
async def secured(tmp_path: Path) -> AsyncIterator[LiveServer]:
    async with live_server(EngineConfig(data_dir=str(tmp_path / "data")), auth="on") as srv:
        yield srv


def client(srv: LiveServer, secret: str | None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    return httpx.AsyncClient(base_url=srv.url, timeout=30, headers=headers)


async def test_author_is_the_tokens_name_and_scopes_apply(secured: LiveServer) -> None:
    tokens = secured.engine.services.tokens
    (admin, _), (writer, _), (reader, _) = (tokens.create("admin", "boss"),
                                            tokens.create("write", "ci-deploy"),
                                            tokens.create("read", "viewer"))
    async with client(secured, writer) as w, client(secured, reader) as r, \
            client(secured, admin) as a, client(secured, None) as anonymous:
        made = await w.post("/annotations", json={"text": " v2.3 released ", "author": "me"})
        assert made.status_code == 201, made.text
        doc = made.json()
        assert doc["author"] == "ci-deploy" and doc["text"] == "v2.3 released"
        assert doc["dashboardId"] is None and abs(doc["timestamp"] - now_ms()) < 60_000
        assert made.headers["location"] == f"/annotations/{doc['id']}"
        assert (await r.post("/annotations", json={"text": "x"})).status_code == 403
        assert (await anonymous.post("/annotations", json={"text": "x"})).status_code == 401
        assert (await anonymous.get("/annotations")).status_code == 401
        assert (await r.get("/annotations")).json()["total"] == 1
        assert (await r.get(f"/annotations/{doc['id']}")).json() == doc
        for c in (r, w):
            assert (await c.delete(f"/annotations/{doc['id']}")).status_code == 403
        gone = await a.delete(f"/annotations/{doc['id']}")
        assert gone.status_code == 200 and gone.json()["id"] == doc["id"]
        assert (await a.delete(f"/annotations/{doc['id']}")).status_code == 404
        assert (await a.get(f"/annotations/{doc['id']}")).status_code == 404


async def test_filters_match_a_naive_reference(server: LiveServer,
                                               http: httpx.AsyncClient) -> None:
    dash = (await http.post("/dashboards", json={"name": "d", "widgets": []})).json()["id"]
    other = (await http.post("/dashboards", json={"name": "o", "widgets": []})).json()["id"]
    base = 1_700_000_000_000
    made = []
    for i, (offset, scope) in enumerate([(0, None), (HOUR, dash), (HOUR, other), (2 * HOUR, dash),
                                         (2 * HOUR, None), (5 * HOUR, other)]):
        body: dict[str, Any] = {"text": f"note {i}", "timestamp": base + offset}
        if scope:
            body["dashboardId"] = scope
        r = await http.post("/annotations", json=body)
        assert r.status_code == 201 and r.json()["author"] is None
        made.append(r.json())
    iso = await http.post("/annotations", json={"text": "iso", "timestamp":
                                                "2023-11-14T22:13:20Z", "author": "ann"})
    assert iso.json()["timestamp"] == parse_iso("2023-11-14T22:13:20Z") == base
    assert iso.json()["author"] == "ann"
    made.append(iso.json())

    def reference(lo: int | None, hi: int | None, d: str | None) -> list[str]:
        keep = [a for a in made if (lo is None or a["timestamp"] >= lo)
                and (hi is None or a["timestamp"] <= hi)
                and (d is None or a["dashboardId"] in (None, d))]
        keep.sort(key=lambda a: (a["timestamp"], a["createdAt"], a["id"]))
        return [a["id"] for a in keep]

    for lo in (None, base, base + 1, base + HOUR, base + 5 * HOUR + 1):
        for hi in (None, base, base + HOUR - 1, base + 2 * HOUR, base + 9 * HOUR):
            if lo is not None and hi is not None and lo > hi:
                continue
            for d in (None, dash, other):
                params = {k: v for k, v in (("from", lo), ("to", hi), ("dashboard", d))
                          if v is not None}
                r = await http.get("/annotations", params=params)
                assert r.status_code == 200, r.text
                got = [a["id"] for a in r.json()["annotations"]]
                assert got == reference(lo, hi, d), params


BAD = [
    ({}, "text"), ({"text": ""}, "text"), ({"text": "  "}, "text"), ({"text": 5}, "text"),
    ({"text": "x" * 1001}, "text"), ({"text": "x", "timestamp": "someday"}, "timestamp"),
    ({"text": "x", "timestamp": -1}, "timestamp"), ({"text": "x", "timestamp": True}, "timestamp"),
    ({"text": "x", "dashboardId": "nope"}, "dashboardId"),
    ({"text": "x", "dashboardId": 3}, "dashboardId"), ({"text": "x", "author": ""}, "author"),
    ({"text": "x", "author": "a" * 201}, "author"), ({"text": "x", "colour": "red"}, "colour"),
]


async def test_bad_input_is_a_400_naming_the_field(http: httpx.AsyncClient) -> None:
    for body, field in BAD:
        r = await http.post("/annotations", json=body)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["error"]["details"][0]["field"] == field, body
    assert (await http.get("/annotations")).json()["total"] == 0


async def test_bad_queries_and_bodies(http: httpx.AsyncClient) -> None:
    for params, field in (({"from": "whenever"}, "from"), ({"to": "x"}, "to"),
                          ({"from": "2000", "to": "1000"}, "from")):
        r = await http.get("/annotations", params=params)
        assert r.status_code == 400 and r.json()["error"]["details"][0]["field"] == field
    for raw in (b"[1]", b"nope", b'"text"'):
        assert (await http.post("/annotations", content=raw)).status_code == 400
    assert (await http.get("/annotations", params={"from": "last_7d"})).status_code == 200
