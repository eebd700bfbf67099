"""POST /events/batch with an Arrow IPC stream: the same events, errors and storage as JSON."""

from __future__ import annotations

import gzip
import json
import struct
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rta.core.arrow_ingest import ARROW_STREAM, read_stream, table_events, validate_arrow
from rta.core.config import EngineConfig
from rta.core.embedded.store.block import block_from_batch
from rta.core.embedded.store.dictionary import Dictionaries
from rta.core.errors import ValidationError
from rta.core.events import EventBatch, EventValidator, Limits
from tests.support import live_server

NOW = 1_700_000_000_000
COLUMNS = ("id", "type", "userId", "sessionId", "timestamp")


def arrow_body(table: pa.Table, compression: str | None = None) -> bytes:
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression=compression)
    with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table, max_chunksize=7)  # several record batches
    return bytes(sink.getvalue().to_pybytes())


def to_table(events: list[dict[str, Any]], types: dict[str, pa.DataType]) -> pa.Table:
    """The events as columns: top-level fields and `properties.<key>`, absent = null."""
    names = [c for c in COLUMNS if c in types] + [k for k in types if k.startswith("properties.")]
    data = {}
    for name in names:
        key = name.removeprefix("properties.")
        if name in COLUMNS:
            data[name] = pa.array([e.get(name) for e in events], types[name])
        else:
            data[name] = pa.array([(e.get("properties") or {}).get(key) for e in events],
                                  types[name])
    return pa.table(data)


def stored(batch: Any) -> list[dict[str, Any]]:
    return [batch.event(i) for i in range(len(batch))]


TYPES = {"id": pa.string(), "type": pa.string(), "userId": pa.string(),
         "sessionId": pa.string(), "timestamp": pa.int64(),
         "properties.page": pa.string(), "properties.n": pa.int64(),
         "properties.d": pa.float64(), "properties.ok": pa.bool_()}

event_strategy = st.fixed_dictionaries({
    "id": st.one_of(st.none(), st.sampled_from(["a", "b", "x" * 201]),
                    st.uuids().map(str)),
    "type": st.one_of(st.none(), st.sampled_from(["click", "view", "", "  ", "t" * 201])),
    "userId": st.one_of(st.none(), st.sampled_from(["u1", "u2", "", "u" * 201])),
    "sessionId": st.one_of(st.none(), st.sampled_from(["s1", ""])),
    "timestamp": st.one_of(st.none(), st.integers(-5, NOW + 2 * 3_600_000)),
    "properties": st.fixed_dictionaries({}, optional={
        "page": st.text(max_size=5), "n": st.integers(-(2**63), 2**63 - 1),
        "d": st.floats(allow_nan=False, allow_infinity=False, width=64),
        "ok": st.booleans()}),
}).map(lambda e: {k: v for k, v in e.items() if v is not None})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(event_strategy, max_size=25))
def test_arrow_validates_exactly_like_json(events: list[dict[str, Any]]) -> None:
    """Same batch (ids given or both generated), same rejections, index = row."""
    validator = EventValidator(Limits())
    json_batch, json_rejected = validator.validate_batch(json.loads(json.dumps(events)), NOW)
    body = read_stream(arrow_body(to_table(events, TYPES)), 10_000)
    arrow_batch, arrow_rejected = validate_arrow(validator, body, NOW)
    assert arrow_rejected == json_rejected
    same_block(arrow_batch)
    same_record(arrow_batch)
    given_ids = [e.get("id") for e in events if e.get("id")]
    left, right = stored(json_batch), stored(arrow_batch)
    for a, b in zip(left, right, strict=True):
        if a["id"] not in given_ids:
            a["id"] = b["id"] = "generated"
        a["properties"] = dict(sorted(a["properties"].items()))
        b["properties"] = dict(sorted(b["properties"].items()))
    assert left == right


def same_block(batch: EventBatch) -> None:
    """The block the store builds from a batch's Arrow columns (`EventBatch.columns` or
    `EventBatch.arrow`, strings encoded once per distinct value) is the one it builds from
    the lists: same codes, same dictionaries."""
    if batch.arrow is None and batch.columns is None:
        return
    by_arrow, by_lists = Dictionaries(None), Dictionaries(None)
    left = block_from_batch(batch, by_arrow)
    lists = EventBatch(batch.received_at, list(batch.ids), list(batch.timestamps),
                       list(batch.types), list(batch.users), list(batch.sessions),
                       dict(batch.props.items()))
    right = block_from_batch(lists, by_lists)
    for name in ("ts", "recv", "type", "user", "session", "id_hi", "id_lo"):
        assert getattr(left, name).tolist() == getattr(right, name).tolist(), name
    assert set(left.props) == set(right.props)
    for key in left.props:
        np.testing.assert_array_equal(left.props[key], right.props[key], err_msg=key)
    for a, b in zip(by_arrow.all(), by_lists.all(), strict=True):
        assert list(a.strings) == list(b.strings)


def same_record(batch: EventBatch) -> None:
    """A batch read back from its WAL record (the Arrow record of a columnar batch) is the
    batch, down to the block the store builds from it and the selections dedup makes."""
    again = EventBatch.from_json(batch.to_json())
    assert again == batch and stored(again) == stored(batch)
    if batch.columns is not None:
        assert again.columns is not None
        same_block(again)
        rows = list(range(0, len(batch), 2))
        assert stored(again.select(rows)) == [stored(batch)[i] for i in rows]


BAD = [  # one bad event of each kind, among good ones
    {"type": "ok", "id": "e1", "timestamp": NOW - 5},
    {"type": "", "id": "e2"},
    {"type": "ok", "id": "e3", "userId": "u" * 201},
    {"type": "ok", "id": "e4", "timestamp": int(time.time() * 1000) + 10 * 3_600_000},
    {"type": "ok", "id": "x" * 201},
    {"type": "ok", "id": "e6", "properties": {"page": "/p", "n": 3}},
]


async def _post(http: httpx.AsyncClient, body: bytes, kind: str, **params: str
                ) -> httpx.Response:
    return await http.post("/events/batch", content=body, params=params,
                           headers={"Content-Type": kind})


async def test_same_events_stored_and_same_errors_over_http(tmp_path: Path) -> None:
    good = [{"type": "signup" if i % 3 else "view", "id": f"id-{i}", "userId": f"u{i % 4}",
             "sessionId": None if i % 5 == 0 else f"s{i % 2}", "timestamp": NOW - i * 1000,
             "properties": {"page": f"/p{i}", **({"n": i} if i % 2 else {}),
                            "d": i / 4, "ok": i % 3 == 0}} for i in range(30)]
    table = to_table(good, TYPES)
    answers = []
    async with live_server(EngineConfig(data_dir=str(tmp_path / "json"))) as srv_json, \
            live_server(EngineConfig(data_dir=str(tmp_path / "arrow"))) as srv_arrow, \
            httpx.AsyncClient(base_url=srv_json.url) as hj, \
            httpx.AsyncClient(base_url=srv_arrow.url) as ha:
        rj = await _post(hj, json.dumps(good).encode(), "application/json")
        ra = await _post(ha, arrow_body(table, "zstd"), ARROW_STREAM)
        assert rj.status_code == ra.status_code == 202, ra.text
        assert rj.json() == ra.json() == {"success": True, "accepted": 30, "duplicates": 0,
                                          "rejected": []}
        # The same again: every event a duplicate, on both.
        ra = await _post(ha, arrow_body(table, "lz4"), ARROW_STREAM)
        assert ra.json()["duplicates"] == 30
        for http in (hj, ha):
            listed = (await http.get("/events", params={"limit": 100})).json()["events"]
            answers.append(sorted(({k: v for k, v in e.items() if k != "receivedAt"}
                                   for e in listed), key=lambda e: e["id"]))
        assert answers[0] == answers[1] and len(answers[0]) == 30

        # Bad events: the same 400, then with partial=true the same 202.
        bad_table = to_table(BAD, TYPES)
        rj = await _post(hj, json.dumps(BAD).encode(), "application/json")
        ra = await _post(ha, arrow_body(bad_table), ARROW_STREAM)
        assert rj.status_code == ra.status_code == 400
        assert rj.json() == ra.json()
        assert [d["index"] for d in ra.json()["error"]["details"]] == [1, 2, 3, 4]
        count = (await ha.get("/stats")).json()["store"]["events"]
        assert count == 30  # nothing of the refused batch stored
        rj = await _post(hj, json.dumps(BAD).encode(), "application/json", partial="true")
        ra = await _post(ha, arrow_body(bad_table), ARROW_STREAM, partial="true", ids="true")
        assert ra.status_code == 202 and ra.json()["accepted"] == 2
        assert ra.json()["rejected"] == rj.json()["rejected"]
        assert ra.json()["ids"] == ["e1", "e6"]
        # gzip over the whole body works as for JSON
        more = to_table([{"type": "g", "id": "gz"}], {"id": pa.string(), "type": pa.string()})
        r = await ha.post("/events/batch", content=gzip.compress(arrow_body(more)),
                          headers={"Content-Type": ARROW_STREAM, "Content-Encoding": "gzip"})
        assert r.status_code == 202 and r.json()["accepted"] == 1


def _schema_bodies() -> list[tuple[bytes, str, str]]:
    ok = pa.table({"type": ["a", "b"]})
    good = arrow_body(ok, "zstd")
    bad_zstd = bytearray(good)
    bad_zstd[-60:-20] = b"\x00" * 40  # inside the compressed buffers
    not_utf8 = pa.Array.from_buffers(pa.string(), 3, [None, pa.py_buffer(
        struct.pack("<4i", 0, 1, 3, 4)), pa.py_buffer(b"a\xff\xfeb")])
    two = arrow_body(pa.table({"type": ["a", "b"], "properties.n": [7, 8]}))
    nodes = struct.pack("<4q", 2, 0, 2, 0)  # the batch's field nodes: (length, nulls) each
    at = two.index(nodes) + 16
    wrong_length = two[:at] + struct.pack("<q", 1) + two[at + 8:]
    return [
        (b"not arrow at all", "invalid_arrow", ""),
        (good[:-40], "invalid_arrow", ""),  # truncated stream
        (bytes(bad_zstd), "invalid_arrow", ""),  # does not decompress
        (arrow_body(pa.table({"type": ["a"], "timestamp": pa.array([1.5], pa.float16())})),
         "invalid_arrow_schema", "timestamp"),
        (arrow_body(pa.table({"type": ["a"], "properties.when": pa.array(
            [1], pa.date32())})), "invalid_arrow_schema", "properties.when"),
        (arrow_body(pa.table({"type": ["a", "b"], "properties.u": pa.UnionArray.from_dense(
            pa.array([0, 1], pa.int8()), pa.array([0, 0], pa.int32()),
            [pa.array([1]), pa.array(["x"])])})), "invalid_arrow_schema", "properties.u"),
        (arrow_body(pa.table({"type": ["a"], "properties.b": pa.array([b"x"], pa.binary())})),
         "invalid_arrow_schema", "properties.b"),
        (arrow_body(pa.table({"type": ["a"], "properties.": [1]})), "invalid_arrow_schema",
         "properties."),
        (arrow_body(pa.table({"type": ["a"], "properties": ['{"a": 1}'],
                              "properties.b": [2]})), "invalid_arrow_schema", "properties"),
        (arrow_body(pa.Table.from_batches([pa.RecordBatch.from_arrays(
            [pa.array(["a"] * 3), not_utf8], ["type", "userId"])])), "invalid_arrow", "userId"),
        (wrong_length, "invalid_arrow", ""),  # a column shorter than its batch
    ]


async def test_bad_arrow_bodies_are_400_naming_the_column(tmp_path: Path) -> None:
    async with live_server(EngineConfig(data_dir=str(tmp_path / "d"))) as srv, \
            httpx.AsyncClient(base_url=srv.url) as http:
        for body, code, column in _schema_bodies():
            for params in ({}, {"partial": "true"}):
                r = await _post(http, body, ARROW_STREAM, **params)
                assert r.status_code == 400, (code, column, r.text)
                err = r.json()["error"]
                assert err["code"] == code, (column, err)
                assert err["details"][0]["field"] == column, err
                if column == "userId":
                    assert err["details"][0]["row"] == 1
        # a column of a type JSON would refuse per event: refused per row, as JSON does
        assert (await http.get("/stats")).json()["store"]["events"] == 0
        r = await _post(http, arrow_body(pa.table({"type": ["a", "b", "c"],
                                                    "userId": pa.array([1, 2, 3])})),
                        ARROW_STREAM)
        assert r.status_code == 400
        assert [(d["index"], d["field"]) for d in r.json()["error"]["details"]] == [
            (0, "userId"), (1, "userId"), (2, "userId")]
        r = await _post(http, arrow_body(pa.table({"type": ["a"] * 3})), ARROW_STREAM,
                        partial="true")
        assert r.json()["accepted"] == 3


def test_row_limit_is_the_batch_limit() -> None:
    body = arrow_body(pa.table({"type": ["a"] * 20}))
    with pytest.raises(Exception) as info:
        read_stream(body, 10)
    assert getattr(info.value, "code", "") == "batch_too_large"
    assert "batch has 20 events; the limit is 10" in str(info.value)
    assert isinstance(read_stream(body, 20).rows, int)
    with pytest.raises(ValidationError):
        read_stream(b"", 10)


def test_struct_and_json_text_properties_match_nested_json() -> None:
    """A `properties` struct (nested, with null objects) and a `properties` column of JSON
    text give what the same nested JSON objects give."""
    props = [{"a": {"b": 1}, "c": "x"}, None, {"a": None, "c": "y"}, {"a": {"b": None}},
             {"a": {"b": 2**40}, "c": "z" * 300}]
    events = [{"type": "t", "id": f"s{i}", "timestamp": NOW - i} for i in range(len(props))]
    sent = [{**e, "properties": p} if p is not None else e for e, p in zip(events, props,
                                                                           strict=True)]
    validator = EventValidator(Limits())
    want = validator.validate_batch(json.loads(json.dumps(sent)), NOW)
    struct = pa.table({"id": [e["id"] for e in events], "type": ["t"] * 5,
                       "timestamp": [e["timestamp"] for e in events],
                       "properties": pa.array(props)})
    text = struct.set_column(3, "properties", pa.array(
        [None if p is None else json.dumps(p) for p in props]))
    assert want[1] == []
    for table in (struct, text, struct.slice(1)):
        batch, rejected = validate_arrow(validator, read_stream(arrow_body(table), 100), NOW)
        assert rejected == []
        assert stored(batch) == stored(want[0])[5 - table.num_rows:]


def test_a_body_that_decompresses_past_the_bound_is_refused() -> None:
    body = arrow_body(pa.table({"type": ["a"] * 20, "properties.s": ["x" * 10_000] * 20}),
                      "zstd")
    assert len(body) < 10_000
    with pytest.raises(Exception) as info:
        read_stream(body, 100, max_bytes=100_000)
    assert getattr(info.value, "code", "") == "batch_too_large"
    assert read_stream(body, 100, max_bytes=1_000_000).rows == 20


def exotic_table() -> pa.Table:
    """Every column type the schema allows, in several record batches, with nulls, ""
    user and session ids, a sparse property and a struct of properties."""
    n = 40
    return pa.table({
        "id": pa.array([f"e{i}" for i in range(n)], pa.large_string()),
        "type": pa.array(["view" if i % 3 else "buy" for i in range(n)]).dictionary_encode(),
        "userId": pa.array(["" if i % 5 == 0 else None if i % 7 == 0 else f"u{i % 4}"
                            for i in range(n)]),
        "sessionId": pa.array([f"s{i % 6}" if i % 2 else "" for i in range(n)],
                              pa.large_string()),
        "timestamp": pa.array([NOW - i * 1000 for i in range(n)], pa.timestamp("ms")),
        "properties.i32": pa.array([i - 20 if i % 4 else None for i in range(n)], pa.int32()),
        "properties.u64": pa.array([2**62 + i for i in range(n)], pa.uint64()),
        "properties.f32": pa.array([i / 3 for i in range(n)], pa.float32()),
        "properties.ok": pa.array([bool(i % 2) if i % 3 else None for i in range(n)]),
        "properties.rare": pa.array(["é🙂" if i == 17 else None for i in range(n)]),
        "properties.page": pa.array([f"/p{i % 3}" for i in range(n)]).dictionary_encode(),
        "properties.obj": pa.array([{"a": i, "b": "x" if i % 2 else None}
                                    if i % 9 else None for i in range(n)]),
    })


def test_every_column_type_is_stored_like_json(tmp_path: Path) -> None:
    """Over every allowed column type (dictionary and large strings, "" ids, sparse and
    struct properties, several record batches) the Arrow path gives the JSON path's batch,
    and the store's block from its Arrow columns is the block from its lists."""
    table = exotic_table()
    validator = EventValidator(Limits())
    batch, rejected = validate_arrow(validator, read_stream(arrow_body(table), 100), NOW)
    assert rejected == [] and (batch.arrow is not None or batch.columns is not None)
    assert batch.columns is not None and {"s:rare", "s:obj.b"} <= set(batch.columns.props)
    json_batch, _ = validator.validate_batch(
        json.loads(json.dumps(table_events(table))), NOW)
    assert stored(batch) == stored(json_batch)
    same_block(batch)
    same_record(batch)
    # A list replaced after validation (an identity merge, say) is what the store encodes.
    assert batch.arrow_column("userId") is not None
    batch.users = ["merged" if u else None for u in batch.users]
    batch.props["s:rare"] = (batch.props["s:rare"][0], ["/x"])
    assert batch.columns is None and batch.arrow_column("userId") is None
    dicts = Dictionaries(None)
    block = block_from_batch(batch, dicts)
    assert dicts.users.decode(block.user).tolist() == batch.users
    assert "/x" in dicts.values.strings and "é🙂" not in dicts.values.strings
    same_block(batch)
