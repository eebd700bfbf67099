"""Event validation: every rule gives a precise error and leaves no trace in the batch."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rta.core.errors import ValidationError
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
