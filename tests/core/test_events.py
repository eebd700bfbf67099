"""Event validation: every rule gives a precise error and leaves no trace in the batch."""

from __future__ import annotations

import json
import os
import uuid

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rta.core.errors import ValidationError
from rta.core.event_ids import new_event_id, new_event_ids, new_id_words
from rta.core.events import EventBatch, EventValidator, Limits

NOW = 1_800_000_000_000


def one(raw: object, limits: Limits | None = None) -> EventBatch:
    return EventValidator(limits).validate_one(raw, now=NOW)


def error_of(raw: object, limits: Limits | None = None) -> dict:
    with pytest.raises(ValidationError) as info:
        one(raw, limits)
    return info.value.to_dict()["error"]


def test_minimal_event_gets_id_and_timestamp() -> None:
    batch = one({"type": "pageview"})
    assert batch.types == ["pageview"]
    assert batch.timestamps == [NOW]
    assert len(batch.ids[0]) == 36
    assert batch.users == [None] and batch.sessions == [None]


def test_properties_are_flattened_and_typed() -> None:
    batch = one({"type": "t", "properties": {"page": "/a", "n": 3, "x": 1.5, "ok": True,
                                             "nested": {"deep": {"v": "z"}}, "none": None,
                                             "tags": ["a", "b"]}})
    assert batch.props == {"s:page": ([0], ["/a"]), "i:n": ([0], [3]), "f:x": ([0], [1.5]),
                           "b:ok": ([0], [True]), "s:nested.deep.v": ([0], ["z"]),
                           "s:tags": ([0], ['["a","b"]'])}


@pytest.mark.parametrize("ts, expected", [
    (1699564800000, 1699564800000),
    ("2023-11-09T21:20:00Z", 1699564800000),
    ("2023-11-09T21:20:00.123+00:00", 1699564800123),
    ("2023-11-09T22:20:00+01:00", 1699564800000),
    ("1699564800000", 1699564800000),
    (1699564800000.9, 1699564800000),
])
def test_timestamp_forms(ts: object, expected: int) -> None:
    assert one({"type": "t", "timestamp": ts}).timestamps == [expected]


@pytest.mark.parametrize("raw, field, code", [
    ({}, "type", "validation_error"),
    ({"type": ""}, "type", "validation_error"),
    ({"type": "  "}, "type", "validation_error"),
    ({"type": 5}, "type", "validation_error"),
    ({"type": "x" * 201}, "type", "validation_error"),
    ({"type": "t", "userId": 5}, "userId", "validation_error"),
    ({"type": "t", "sessionId": ["a"]}, "sessionId", "validation_error"),
    ({"type": "t", "timestamp": "yesterday-ish"}, "timestamp", "validation_error"),
    ({"type": "t", "timestamp": {}}, "timestamp", "validation_error"),
    ({"type": "t", "timestamp": True}, "timestamp", "validation_error"),
    ({"type": "t", "timestamp": NOW + 2 * 3600_000}, "timestamp", "timestamp_in_future"),
    ({"type": "t", "properties": "x"}, "properties", "validation_error"),
    ({"type": "t", "properties": [1]}, "properties", "validation_error"),
    ({"type": "t", "id": {"a": 1}}, "id", "validation_error"),
    ({"type": "t", "id": ""}, "id", "validation_error"),
    ("not an object", "", "validation_error"),
    ({"type": "t", "properties": {"a.b": 1, "a": {"b": 2}}}, "properties.a.b",
     "validation_error"),  # (keeping either value would drop the other silently)
    ({"type": "t", "properties": {"a": {"b": {"c": 1}}, "a.b": {"c": 2}}}, "properties.a.b.c",
     "validation_error"),
])
def test_invalid_events_name_the_field(raw: object, field: str, code: str) -> None:
    err = error_of(raw)
    assert err["code"] == code
    assert err["details"][0]["field"] == field
    assert err["message"]


def test_event_size_limit() -> None:
    limits = Limits(max_event_bytes=1024)
    err = error_of({"type": "t", "properties": {"blob": "x" * 2000}}, limits)
    assert err["code"] == "event_too_large"
    assert err["details"][0]["limit"] == 1024
    one({"type": "t", "properties": {"blob": "x" * 500}}, limits)


def test_past_horizon_hints_at_seconds() -> None:
    limits = Limits(past_horizon_ms=7 * 86_400_000)
    err = error_of({"type": "t", "timestamp": 1_699_564_800}, limits)
    assert err["code"] == "timestamp_too_old"
    assert "seconds" in err["message"]


def test_batch_reports_every_bad_index_and_keeps_good_ones() -> None:
    items = [{"type": "a"}, {"type": ""}, {"type": "b", "properties": {"k": 1}}, 7]
    batch, rejected = EventValidator().validate_batch(items, now=NOW)
    assert [r["index"] for r in rejected] == [1, 3]
    assert batch.types == ["a", "b"]
    assert batch.props == {"i:k": ([1], [1])}


def test_wal_payload_round_trip() -> None:
    batch = one({"type": "t", "userId": "ü", "properties": {"a": 1, "b": "é", "c": False}})
    again = EventBatch.from_json(batch.to_json())
    assert again == batch


scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20))
props = st.recursive(st.dictionaries(st.text(min_size=1, max_size=8), scalars, max_size=5),
                     lambda inner: st.dictionaries(st.text(min_size=1, max_size=8), inner,
                                                   max_size=3), max_leaves=10)
raw_events = st.one_of(
    st.fixed_dictionaries({"type": st.one_of(st.text(max_size=5), st.integers())},
                          optional={"userId": st.one_of(st.text(max_size=5), st.integers()),
                                    "timestamp": st.one_of(st.integers(-10, 2**62), st.text(
                                        max_size=30)),
                                    "properties": st.one_of(props, st.text(max_size=3))}),
    scalars)


@settings(max_examples=300, deadline=None)
@given(raw_events)
def test_validator_never_crashes(raw: object) -> None:
    """Any JSON value either validates or raises ValidationError with a field path."""
    try:
        batch = one(raw)
    except ValidationError as exc:
        assert "field" in exc.details[0]
        return
    json.loads(batch.to_json())  # what we accepted is always loggable to the WAL


# -- the column-wise fast path equals the per-event path -----------------------------------

def per_event(items: list[object], limits: Limits | None = None,
              size_bound: int | None = None) -> tuple[EventBatch, list[dict]]:
    """The per-event path alone (what every batch went through before the fast path)."""
    v = EventValidator(limits)
    check = size_bound is None or size_bound > v.limits.max_event_bytes
    return v._each(items, NOW, 0, check, False)


def same_batch(a: EventBatch, b: EventBatch, generated: set[int] = frozenset()) -> None:
    """Equal field by field, property columns in the same order (ids the server generated
    are fresh: only their shape is compared)."""
    assert [x for i, x in enumerate(a.ids) if i not in generated] == \
        [x for i, x in enumerate(b.ids) if i not in generated]
    for i in generated:
        assert len(a.ids[i]) == 36 and a.ids[i][14] == "8"
    assert (a.timestamps, a.types, a.users, a.sessions) == \
        (b.timestamps, b.types, b.users, b.sessions)
    assert list(a.props.items()) == list(b.props.items())
    assert [[type(v) for v in col[1]] for col in a.props.values()] == \
        [[type(v) for v in col[1]] for col in b.props.values()]


keys = st.one_of(*[st.sampled_from(["page", "n", "a.b", "a", "b"])] * 3,
                 st.sampled_from(["x" * 201, ""]), st.text(min_size=0, max_size=4))
values = st.one_of(st.none(), st.booleans(), st.integers(-1000, 1000), st.text(max_size=6),
                   st.integers(-2**70, 2**70), st.floats(-1e6, 1e6),
                   st.floats(allow_nan=True, allow_infinity=True),
                   st.lists(st.integers(-2**66, 2**66), max_size=2))
fast_props = st.recursive(st.dictionaries(keys, values, max_size=4),
                          lambda inner: st.dictionaries(keys, inner, max_size=3), max_leaves=8)
fast_events = st.fixed_dictionaries(
    {"type": st.one_of(*[st.sampled_from(["pageview", "click", " a", "\t"])] * 4,
                       st.sampled_from([" ", "x" * 201]), st.text(max_size=4),
                       st.integers(0, 3))},
    optional={
        "id": st.one_of(st.uuids().map(str), st.uuids().map(lambda u: str(u).upper()),
                        st.text(max_size=6), st.integers(-2**70, 2**70), st.none(),
                        st.just("x" * 201)),
        "userId": st.one_of(st.none(), st.just(""), st.text(max_size=5), st.integers(0, 9),
                            st.just("u" * 201)),
        "sessionId": st.one_of(st.none(), st.just(""), st.text(max_size=5)),
        "timestamp": st.one_of(st.none(), *[st.integers(NOW - 10**9, NOW)] * 3,
                               st.integers(-5, NOW + 2 * 3600_000),
                               st.just("2023-11-09T21:20:00Z"), st.just("1699564800000"),
                               st.floats(-1e20, 1e20), st.booleans(), st.text(max_size=4)),
        "properties": st.one_of(fast_props, st.none(), st.text(max_size=2)),
        "extra": st.integers()})


@settings(max_examples=150, deadline=None)
@given(st.lists(fast_events, max_size=4), st.sampled_from([None, 1_000_000, 100]),
       st.sampled_from([None, 30 * 86_400_000]))
def test_fast_path_equals_per_event_path(items: list[dict], size_bound: int | None,
                                         horizon: int | None) -> None:
    limits = Limits(max_event_bytes=256, past_horizon_ms=horizon)
    fast = EventValidator(limits).fast_batch(items, NOW, size_bound)
    slow, rejected = per_event(items, limits, size_bound)
    if fast is None:
        return
    assert rejected == []
    same_batch(fast, slow, {i for i, e in enumerate(items) if e.get("id") is None})
    assert EventBatch.from_json(fast.to_json()) == fast


flat_values = st.one_of(st.none(), st.booleans(), st.integers(-1000, 1000),
                       st.text(max_size=3), st.floats(-1e6, 1e6), st.just(2**63))
flat_props = st.dictionaries(st.sampled_from(["a", "b", "c", "d", ""]), flat_values,
                             max_size=4)
flat_events = st.fixed_dictionaries({"type": st.just("t"), "timestamp": st.just(NOW - 1)},
                                    optional={"properties": st.one_of(st.none(), flat_props)})


@settings(max_examples=100, deadline=None)
@given(st.lists(flat_events, min_size=1, max_size=8))
def test_flat_properties_of_mixed_kinds_keep_the_per_event_order(items: list[dict]) -> None:
    """Flat properties are grouped by key, then split by kind: a key holding an integer in
    one event and a float or null in another gives the per-event path's columns, in its
    order (where each kind of the key first appears)."""
    fast = EventValidator().fast_batch(items, NOW)
    slow, rejected = per_event(items)
    if fast is None:
        assert rejected or any(2**63 in (e.get("properties") or {}).values() or
                               "" in (e.get("properties") or {}) for e in items)
        return
    assert rejected == []
    same_batch(fast, slow, set(range(len(items))))


def test_fast_path_takes_the_usual_shapes() -> None:
    """What SDKs send goes the fast way, with the per-event path's result."""
    items = [{"type": "pageview", "id": "78d44105-b207-46ed-b4ef-3676c0c988b6",
              "userId": "u1", "sessionId": "", "timestamp": NOW - 5,
              "properties": {"page": "/a", "n": 3, "x": 1.5, "ok": True, "none": None,
                             "tags": ["a", 2], "nested": {"deep": {"v": "z"}}}},
             {"type": "click", "id": 42, "timestamp": "2023-11-09T21:20:00Z",
              "properties": {"n": 2**62, "page": "/b"}},
             {"type": "click", "properties": {"page": "/c", "ok": False}}]
    fast = EventValidator().fast_batch(items, NOW)
    assert fast is not None
    slow, rejected = per_event(items)
    assert not rejected
    same_batch(fast, slow, {2})
    assert fast.props["i:n"] == ([0, 1], [3, 2**62])
    assert fast.props["s:tags"] == ([0], ['["a",2]'])


@pytest.mark.parametrize("items", [
    [{"type": "t"}, {"type": ""}],                           # invalid: errors by index
    [{"type": "t", "timestamp": 1e19}],                      # a float that may be an integer
    [{"type": "t", "properties": {"big": 1e19}}],
    [{"type": "t", "properties": {"l": [1e19]}}],
    [{"type": "t", "properties": {"n": 2**64}}],             # stored as a float
    [{"type": "t", "properties": {"a.b": 1, "a": {"b": 2}}}],  # the same key twice
    [{"type": "t", "properties": {"blob": "x" * 20_000}}],   # large: measured exactly
    [{"type": "t\ud800"}],                                    # not storable as UTF-8
])
def test_fast_path_steps_aside(items: list[dict]) -> None:
    assert EventValidator().fast_batch(items, NOW) is None
    batch, rejected = EventValidator().validate_batch(items, now=NOW)
    slow, slow_rejected = per_event(items)
    if "\ud800" in items[0]["type"]:  # the per-event path alone would fail to log it
        assert rejected[0]["error"]["details"][0]["field"] == "type"
        assert "surrogate" in rejected[0]["error"]["message"]
        return
    assert rejected == slow_rejected
    same_batch(batch, slow, set(range(len(batch))))  # (none of these has an id)


def test_unpaired_surrogates_are_named() -> None:
    items = [{"type": "ok"}, {"type": "t", "properties": {"p": "a\udc00"}},
             {"type": "t", "userId": "\ud800"}]
    batch, rejected = EventValidator().validate_batch(items, now=NOW)
    assert [(r["index"], r["error"]["details"][0]["field"]) for r in rejected] == [
        (1, "properties.p"), (2, "userId")]
    assert batch.types == ["ok"]
    with pytest.raises(ValidationError) as info:
        one({"type": "t", "sessionId": "\udfff"})
    assert info.value.details[0]["field"] == "sessionId"


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2**80, 2**80), st.floats(
        allow_nan=False, allow_infinity=False), st.text(max_size=5)),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text(max_size=4), inner, max_size=3)),
    max_leaves=10)
json_events = st.fixed_dictionaries(
    {"type": st.sampled_from(["a", "b"])},
    optional={"id": st.one_of(st.integers(-2**80, 2**80), st.text(max_size=3)),
              "timestamp": st.one_of(st.integers(0, 2**80), st.floats(0, 1e25)),
              "properties": st.dictionaries(st.sampled_from(["p", "q", "r.s"]), json_values,
                                            max_size=3),
              "userId": json_values})


@settings(max_examples=150, deadline=None)
@given(st.lists(json_events, max_size=5))
def test_orjson_parse_then_fast_path_equals_json_then_per_event(items: list[dict]) -> None:
    """The HTTP path parses with orjson (huge integers become floats) and validates
    column-wise; whenever the fast path answers, it is what `json` + the per-event path
    give. Anything else goes the exact way."""
    doc = json.dumps(items).encode()
    fast = EventValidator().fast_batch(orjson.loads(doc), NOW, len(doc))
    if fast is None:
        return
    slow, rejected = per_event(json.loads(doc), size_bound=len(doc))
    assert not rejected
    same_batch(fast, slow, {i for i, e in enumerate(items) if e.get("id") is None})


def test_generated_ids_are_distinct_v8_uuids() -> None:
    ids = new_event_ids(500) + new_event_ids(3) + [new_event_id() for _ in range(3)]
    assert len(set(ids)) == len(ids)
    for text in ids:
        u = uuid.UUID(text)
        assert u.version == 8 and u.variant == uuid.RFC_4122 and str(u) == text
    hi, lo = new_id_words(4)
    texts = {str(uuid.UUID(int=(int(h) << 64) | int(x))) for h, x in zip(hi, lo, strict=True)}
    assert len(texts) == 4 and not texts & set(ids)
    assert {uuid.UUID(t).version for t in texts} == {8}


def test_generated_ids_differ_in_a_forked_child() -> None:
    """The prefix is drawn again after a fork, so two processes never share ids."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report one id and leave at once
        os.write(write, new_event_id().encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 100).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert uuid.UUID(child).fields[:3] != uuid.UUID(new_event_id()).fields[:3]


@pytest.mark.parametrize("text", ["¹", "²³", "--5", "٣٤", "-", "1²"])
def test_digit_like_timestamp_strings_are_a_400_not_a_crash(text: str) -> None:
    """`str.isdigit()` is true for '¹' and friends, which `int()` refuses: found by the
    fast-path property test. Both paths must answer with a field error."""
    from rta.core.queries.timeparse import int_text

    assert int_text(text) is None
    event = {"type": "t", "timestamp": text}
    batch, rejected = EventValidator().validate_batch([event], now=NOW)
    assert not len(batch) and [r["index"] for r in rejected] == [0]
    assert rejected[0]["error"]["details"][0]["field"] == "timestamp"
    assert EventValidator().fast_batch([event], NOW) is None  # (the per-event path answers)
    assert [int_text(t) for t in ("0", "-12", "1700000000000")] == [0, -12, 1_700_000_000_000]
