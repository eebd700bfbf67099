"""Ingestion over HTTP: the seed's /events contract, batches, validation, listing."""

from __future__ import annotations

import errno
import gzip
import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from rta.core.config import EngineConfig
from rta.server.events_api import fast_lane
from tests.server.test_hostile_transport import head, open_raw, read_answer
from tests.support import LiveServer, live_server

NOW_EVENT = {"type": "pageview", "userId": "user_123", "sessionId": "session_abc",
             "timestamp": 1699564800000,
             "properties": {"page": "/products", "duration": 3500, "referrer": "google.com"}}


async def count(http: httpx.AsyncClient) -> int:
    return (await http.get("/stats")).json()["store"]["events"]


async def test_seed_single_event(http: httpx.AsyncClient) -> None:
    r = await http.post("/events", json=NOW_EVENT)
    assert r.status_code == 202
    body = r.json()
    assert body["success"] is True and body["accepted"] == 1
    got = (await http.get("/events", params={"type": "pageview"})).json()["events"]
    assert got[0]["id"] == body["id"]
    assert got[0]["properties"] == NOW_EVENT["properties"]
    assert got[0]["timestamp"] == 1699564800000 and got[0]["userId"] == "user_123"
    assert got[0]["receivedAt"] > 0


async def test_batch_json_array(http: httpx.AsyncClient) -> None:
    events = [{"type": "click", "userId": f"u{i}", "timestamp": 1699564800000 + i}
              for i in range(50)]
    r = await http.post("/events/batch", json=events)
    assert r.status_code == 202
    assert r.json() == {"success": True, "accepted": 50, "duplicates": 0, "rejected": []}
    assert await count(http) == 50


async def test_batch_ndjson_gzip(http: httpx.AsyncClient) -> None:
    lines = "\n".join(json.dumps({"type": "t", "id": f"id-{i}"}) for i in range(20))
    r = await http.post("/events/batch", content=gzip.compress(lines.encode()),
                        headers={"Content-Type": "application/x-ndjson",
                                 "Content-Encoding": "gzip"})
    assert r.status_code == 202, r.text
    assert r.json()["accepted"] == 20


async def test_invalid_batch_is_rejected_whole_listing_every_index(
        http: httpx.AsyncClient) -> None:
    events = [{"type": "ok"}, {"type": ""}, {"type": "ok2"}, {"userId": "x"}, "str"]
    r = await http.post("/events/batch", json=events)
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == "invalid_batch"
    assert [d["index"] for d in err["details"]] == [1, 3, 4]
    assert all(d["field"] is not None and d["message"] for d in err["details"])
    assert await count(http) == 0


async def test_partial_batch_stores_the_valid_ones(http: httpx.AsyncClient) -> None:
    events = [{"type": "ok"}, {"type": ""}, {"type": "ok2"}]
    r = await http.post("/events/batch", params={"partial": "true"}, json=events)
    assert r.status_code == 202
    body = r.json()
    assert body["accepted"] == 2
    assert [x["index"] for x in body["rejected"]] == [1]
    assert await count(http) == 2


async def test_duplicate_ids_are_dropped_and_counted(http: httpx.AsyncClient) -> None:
    events = [{"type": "t", "id": f"dup-{i}"} for i in range(5)]
    assert (await http.post("/events/batch", json=events)).json()["accepted"] == 5
    again = (await http.post("/events/batch", json=events + events)).json()
    assert again["accepted"] == 0 and again["duplicates"] == 10
    single = (await http.post("/events", json=events[0])).json()
    assert single["duplicate"] is True
    stats = (await http.get("/stats")).json()
    assert stats["store"]["duplicatesDropped"] == 11
    assert await count(http) == 5


@pytest.mark.parametrize("body, headers, status, code", [
    (b"{not json", {"Content-Type": "application/json"}, 400, "invalid_json"),
    (b"[1,2", {"Content-Type": "application/json"}, 400, "invalid_json"),
    (b'{"type": 5}', {"Content-Type": "application/json"}, 400, "validation_error"),
    ('{"type": "t", "timestamp": "\u00b9"}'.encode(), {"Content-Type": "application/json"},
     400, "validation_error"),  # ('¹' passes str.isdigit; int() refuses it)
    # NaN and Infinity are not JSON: refused, not stored with the property dropped
    (b'{"type": "t", "properties": {"v": NaN}}', {"Content-Type": "application/json"}, 400,
     "invalid_json"),
    (b'[{"type": "t", "properties": {"v": -Infinity}}]', {"Content-Type": "application/json"},
     400, "invalid_json"),
    (b'{"type": "t"}\n{"type": "t", "timestamp": Infinity}\n',
     {"Content-Type": "application/x-ndjson"}, 400, "invalid_json"),
    (b'{"type": "t", "properties": {"v": 1e999}}', {"Content-Type": "application/json"}, 400,
     "invalid_json"),  # (a number past a double's range: infinity, dropped like NaN)
    (b"a,b\n1,2", {"Content-Type": "text/csv"}, 415, "unsupported_media_type"),
    (b"\x00\x01", {"Content-Type": "application/json", "Content-Encoding": "gzip"}, 400,
     "bad_encoding"),
    (b"\x1f\x8b\x08\x00garbage", {"Content-Type": "application/json",
                                  "Content-Encoding": "gzip"}, 400, "bad_encoding"),
    (b"{}", {"Content-Type": "application/json", "Content-Encoding": "br"}, 400,
     "unsupported_encoding"),
])
async def test_bad_single_events(http: httpx.AsyncClient, body: bytes,
                                 headers: dict[str, str], status: int, code: str) -> None:
    r = await http.post("/events", content=body, headers=headers)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code and err["message"] and isinstance(err["details"], list)
    assert await count(http) == 0


async def test_batch_must_be_an_array(http: httpx.AsyncClient) -> None:
    r = await http.post("/events/batch", json={"type": "x"})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "validation_error"


async def test_too_many_events_and_too_large(server: LiveServer,
                                             http: httpx.AsyncClient) -> None:
    limits = server.engine.validator.limits
    r = await http.post("/events/batch", json=[{"type": "t"}] * (limits.max_batch_events + 1))
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "batch_too_large"
    big = {"type": "t", "properties": {"x": "y" * (limits.max_event_bytes + 10)}}
    r = await http.post("/events", json=big)
    assert r.status_code == 400 and r.json()["error"]["code"] == "event_too_large"
    # (a raw request: the answer comes before the body is read and the connection closes, so
    # httpx's abandoned body stream would end the test with a ResourceWarning)
    stream = await open_raw(server.url)
    await stream.send_all(head("POST", "/events/batch", {
        "Host": "127.0.0.1", "Content-Type": "application/json",
        "Content-Length": str(limits.max_batch_bytes + 2)}) + b"[" + b" " * 65536)
    answer = await read_answer(stream)
    await stream.aclose()
    assert answer.status == 413 and answer.code == "payload_too_large"
    assert await count(http) == 0


async def test_future_timestamp_rejected(http: httpx.AsyncClient) -> None:
    r = await http.post("/events", json={"type": "t", "timestamp": 32503680000000})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "timestamp_in_future"


async def test_list_filters_paging_newest_first(http: httpx.AsyncClient) -> None:
    events = [{"type": "pageview" if i % 2 else "click", "userId": f"u{i % 3}",
               "timestamp": 1_700_000_000_000 + i * 1000,
               "properties": {"page": f"/p{i % 4}", "n": i}} for i in range(30)]
    await http.post("/events/batch", json=events)
    r = (await http.get("/events", params={"type": "pageview", "limit": 4})).json()
    assert [e["properties"]["n"] for e in r["events"]] == [29, 27, 25, 23]
    seen = []
    cursor = None
    while True:
        params = {"limit": 7, **({"cursor": cursor} if cursor else {})}
        page = (await http.get("/events", params=params)).json()
        seen += [e["properties"]["n"] for e in page["events"]]
        cursor = page["nextCursor"]
        if not cursor:
            break
    assert seen == list(range(29, -1, -1))
    r = (await http.get("/events", params={"page": "/p1", "userId": "u1"})).json()
    assert sorted(e["properties"]["n"] for e in r["events"]) == sorted(
        i for i in range(30) if i % 4 == 1 and i % 3 == 1)
    r = (await http.get("/events", params={"n": "5"})).json()
    assert [e["properties"]["n"] for e in r["events"]] == [5]
    r = (await http.get("/events", params={
        "startTime": 1_700_000_000_000 + 10_000, "endTime": 1_700_000_000_000 + 12_000})).json()
    assert [e["properties"]["n"] for e in r["events"]] == [12, 11, 10]
    where = json.dumps([{"property": "n", "operator": "gte", "value": 27}])
    r = (await http.get("/events", params={"where": where})).json()
    assert [e["properties"]["n"] for e in r["events"]] == [29, 28, 27]


@pytest.mark.parametrize("params, field", [
    ({"limit": "0"}, "limit"), ({"limit": "10001"}, "limit"), ({"limit": "abc"}, "limit"),
    ({"startTime": "garbage"}, "startTime"), ({"cursor": "!!"}, "cursor"),
    ({"startTime": "2000", "endTime": "1000"}, "startTime"),
    ({"where": "[{\"property\": \"x\", \"operator\": \"like\"}]"}, "where[0].operator"),
])
async def test_list_bad_params(http: httpx.AsyncClient, params: dict[str, str],
                               field: str) -> None:
    r = await http.get("/events", params=params)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["details"][0]["field"] == field


async def test_health_stats_and_unknown_routes(http: httpx.AsyncClient) -> None:
    health = (await http.get("/health")).json()
    assert health["status"] == "ok" and health["version"]
    stats = (await http.get("/stats")).json()
    for section, keys in {"aggregator": ["eventsProcessed", "eventsPerSecond", "eventsInMemory",
                                         "uniqueEventTypes", "totalUsers"],
                          "alerts": ["alertsEvaluated", "alertsTriggered", "activeAlerts"],
                          "websocket": ["activeConnections", "messagesSent", "channels"],
                          "store": ["segments", "bytesInMemory", "bytesOnDisk", "walBytes",
                                    "duplicatesDropped"]}.items():
        assert set(keys) <= set(stats[section]), section
    r = await http.get("/no/such/thing")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = await http.delete("/events")
    assert r.status_code == 405 and "error" in r.json()


async def test_gzip_responses_when_accepted(http: httpx.AsyncClient) -> None:
    await http.post("/events/batch", json=[{"type": "t", "properties": {"x": "y" * 50}}] * 50)
    r = await http.get("/events", headers={"Accept-Encoding": "gzip"})
    assert r.headers.get("content-encoding") == "gzip"
    assert r.json()["count"] == 50


async def test_bodies_only_the_standard_parser_reads_exactly(http: httpx.AsyncClient) -> None:
    """orjson parses the hot path; where it would read a body differently from `json`
    (integers beyond 64 bits, a byte-order mark, UTF-16) the result is `json`'s; NaN, which
    `json` alone reads, is refused as the invalid JSON it is."""
    big = 123456789012345678901234567890
    body = f'[{{"type":"t","id":{big},"properties":{{"n":{big},"l":[{big}]}}}}]'.encode()
    r = await http.post("/events/batch", params={"ids": "true"}, content=body,
                        headers={"Content-Type": "application/json"})
    assert r.status_code == 202, r.text
    assert r.json()["ids"] == [str(big)]
    got = (await http.get("/events")).json()["events"][0]
    assert got["properties"] == {"n": float(big), "l": f"[{big}]"}
    r = await http.post("/events", content=b'{"type":"t","timestamp":%d}' % (big * 10**3))
    err = r.json()["error"]
    assert err["code"] == "timestamp_in_future" and err["details"][0]["value"] == big * 10**3
    r = await http.post("/events/batch", content=b'[{"type":"nan","properties":{"x":NaN}}]')
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"  # not JSON
    r = await http.post("/events", content=b'\xef\xbb\xbf{"type":"bom"}')
    assert r.status_code == 202
    r = await http.post("/events", content='{"type":"utf16"}'.encode("utf-16"))
    assert r.status_code == 202
    lines = f'{{"type":"nd","id":{big}}}\n{{"type":"nd","properties":{{"x":1}}}}\n'.encode()
    r = await http.post("/events/batch", params={"ids": "true"}, content=lines,
                        headers={"Content-Type": "application/x-ndjson"})
    assert r.status_code == 202 and r.json()["ids"][0] == str(big)
    types = {e["type"]: e for e in (await http.get("/events")).json()["events"]}
    assert "nan" not in types
    assert {"bom", "utf16", "nd"} <= set(types)


async def test_unpaired_surrogates_are_a_400_naming_the_event(http: httpx.AsyncClient) -> None:
    r = await http.post("/events/batch",
                        content=b'[{"type":"ok"},{"type":"t","properties":{"p":"\\ud800"}}]')
    assert r.status_code == 400, r.text
    details = r.json()["error"]["details"]
    assert [(d["index"], d["field"]) for d in details] == [(1, "properties.p")]
    r = await http.post("/events", content=b'{"type":"\\udc00x"}')
    assert r.status_code == 400 and r.json()["error"]["details"][0]["field"] == "type"
    r = await http.post("/events", content=b'{"type":"t","timestamp":"\\ud800"}')
    assert r.status_code == 400  # the value is echoed back, escaped
    assert r.json()["error"]["details"][0]["value"] == "\ud800"
    assert await count(http) == 0


async def test_mixed_batch_keeps_every_value_as_the_event_path_did(
        http: httpx.AsyncClient) -> None:
    """Valid but unusual rows (no id, numeric id, ISO or missing timestamps, nested and
    array properties, empty user ids) are stored exactly as the per-event path stores them."""
    events = [
        {"type": "a", "id": 7, "userId": "", "timestamp": "2023-11-09T21:20:00Z",
         "properties": {"page": "/x", "n": 1, "deep": {"er": {"v": True}}, "tags": [1, "b"]}},
        {"type": "b", "id": "78d44105-b207-46ed-b4ef-3676c0c988b6", "timestamp": 1699564800001,
         "properties": {"n": 2.5, "page": None, "r.s": "dotted"}},
        {"type": "c", "userId": "u", "sessionId": "s", "timestamp": 1699564800002},
    ]
    r = await http.post("/events/batch", params={"ids": "true"}, json=events)
    assert r.status_code == 202, r.text
    ids = r.json()["ids"]
    assert ids[:2] == ["7", "78d44105-b207-46ed-b4ef-3676c0c988b6"] and len(ids[2]) == 36
    got = {e["type"]: e for e in (await http.get("/events")).json()["events"]}
    assert got["a"]["properties"] == {"page": "/x", "n": 1, "deep.er.v": True,
                                      "tags": '[1,"b"]'}
    assert got["a"]["timestamp"] == 1699564800000 and got["a"]["userId"] is None
    assert got["b"]["properties"] == {"n": 2.5, "r.s": "dotted"}
    assert (got["c"]["id"], got["c"]["userId"], got["c"]["sessionId"]) == (ids[2], "u", "s")


async def _exchange(client: httpx.AsyncClient, method: str, path: str,
                    **kwargs: Any) -> tuple[int, dict[str, str], Any]:
    r = await client.request(method, path, **kwargs)
    headers = {k: v for k, v in r.headers.items() if k not in ("date", "content-length")}
    body = r.json()
    if isinstance(body, dict) and "id" in body:
        body["id"] = len(body["id"])  # generated: random
    return r.status_code, headers, body


async def test_fast_lane_answers_exactly_as_the_routes(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """POST /events and /events/batch answered by the FastIngest middleware and by the
    Quart routes give the same status, headers and body, and store the same events;
    requests the lane must not answer (errors, tokens, CORS, ids=) go to the routes."""
    big = "x" * 2000
    requests: list[tuple[str, dict[str, Any]]] = [
        ("/events", {"json": NOW_EVENT}),
        ("/events", {"json": {**NOW_EVENT, "id": "a-1"}}),
        ("/events", {"json": {**NOW_EVENT, "id": "a-1"}}),  # a duplicate
        ("/events", {"json": [{"type": "list", "id": "l-1"}]}),
        ("/events/batch", {"json": [{"type": "b", "id": f"b-{i}"} for i in range(30)]}),
        ("/events/batch", {"json": {"events": [{"type": "w", "id": "w-1"}]}}),
        ("/events/batch", {"params": {"partial": "true"}, "json": [{"type": "p", "id": "p-1"}]}),
        ("/events/batch", {"params": {"partial": "true"}, "json": [{"type": ""}, {"type": "p"}]}),
        ("/events/batch", {"params": {"ids": "true"}, "json": [{"type": "i", "id": "i-1"}]}),
        ("/events/batch", {"content": gzip.compress(b'{"type":"g","id":"g-1"}\n'),
                           "headers": {"Content-Type": "application/x-ndjson",
                                       "Content-Encoding": "gzip"}}),
        ("/events/batch", {"json": [{"type": "big", "id": f"z{i}", "properties": {"b": big}}
                                    for i in range(3)],
                           "headers": {"Accept-Encoding": "gzip"}}),
        ("/events/batch", {"json": [{"type": ""}] * 40, "headers": {"Accept-Encoding": "gzip"}}),
        ("/events", {"json": {"type": "o", "id": "o-1"},
                     "headers": {"Origin": "http://example.com"}}),
        ("/events", {"json": {"type": "tok"}, "headers": {"Authorization": "Bearer nope"}}),
        ("/events", {"content": b"{not json"}),
        ("/events", {"content": b'{"type":"t"}', "headers": {"Content-Type": "text/csv"}}),
        ("/events", {"content": b'{"type":"t","properties":{"n":1e400}}'}),
        ("/events/batch", {"json": [{"type": "t"}] * 10_001}),
    ]
    results = []
    for fast in (True, False):
        config = EngineConfig(data_dir=str(tmp_path / f"data-{fast}"))
        async with live_server(config, fast_ingest=fast) as srv, httpx.AsyncClient(
                base_url=srv.url, timeout=30) as client:
            got = [await _exchange(client, "POST", path, **kw) for path, kw in requests]
            wal = srv.engine.store.wal
            assert wal is not None
            with monkeypatch.context() as m:
                m.setattr(wal, "write", _read_only)
                status, headers, body = await _exchange(client, "POST", "/events",
                                                        json={"type": "ro"})
                body = json.loads(json.dumps(body).replace(str(config.data_dir), "DATA"))
                got.append((status, headers, body))
            events = (await client.get("/events", params={"limit": 1000})).json()["events"]
            stored = sorted((e["type"], e["properties"], e["userId"], e["id"] if "-" in e["id"]
                             and len(e["id"]) < 36 else "") for e in events)
            lane = fast_lane(srv.engine)
            results.append((got, stored, lane.answered if lane else 0))
    (fast_got, fast_stored, answered), (slow_got, slow_stored, none) = results
    for request, a, b in zip([*requests, ("ro", {})], fast_got, slow_got, strict=True):
        assert a == b, request
    assert fast_stored == slow_stored
    assert answered == 10 and none == 0  # the 202s and the 507 that the lane may answer


def _read_only(payloads: list[bytes]) -> None:
    raise OSError(errno.EROFS, os.strerror(errno.EROFS))


async def test_fast_lane_streams_and_replays_chunked_bodies(server: LiveServer,
                                                           http: httpx.AsyncClient) -> None:
    """A body in many chunks is read whole; handed to the route, every chunk is replayed."""
    async def chunks(events: list[dict[str, Any]]) -> Any:
        text = json.dumps(events).encode()
        for i in range(0, len(text), 100):
            yield text[i:i + 100]

    good = [{"type": "c", "id": f"c-{i}", "properties": {"i": i}} for i in range(40)]
    r = await http.post("/events/batch", content=chunks(good))
    assert r.status_code == 202 and r.json()["accepted"] == 40
    lane = fast_lane(server.engine)
    assert lane is not None
    assert lane.answered == 1
    bad = [*good[:10], {"type": 5}, *good[10:]]
    r = await http.post("/events/batch", content=chunks(bad))
    assert r.status_code == 400
    assert [d["index"] for d in r.json()["error"]["details"]] == [10]
    r = await http.post("/events/batch", params={"partial": "1"}, content=chunks(bad))
    assert r.json()["accepted"] == 0 and r.json()["duplicates"] == 40  # the whole body arrived
    assert lane.answered == 1 and await count(http) == 40
