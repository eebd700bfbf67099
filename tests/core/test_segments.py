"""Segments: latest user properties and event conditions against a naive reference."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rta.core.embedded import segments
from rta.core.errors import RtaError, ValidationError
from rta.core.queries import behaviour
from tests.core.test_funnel_data import NOW, T0, USERS, event_logs, make_engine


def _latest(events: list[dict[str, Any]], user: str, key: str) -> Any:
    best = None
    for i, e in enumerate(events):
        if e["userId"] == user and key in e["properties"] and (
                best is None or (e["timestamp"], i) >= best[0]):
            best = ((e["timestamp"], i), e["properties"][key])
    return None if best is None else best[1]


@settings(max_examples=60, deadline=None)
@given(events=event_logs(), value=st.integers(0, 2), op=st.sampled_from(("eq", "neq", "gte")),
       count=st.integers(0, 3), etype=st.sampled_from(("a", "b")),
       combine=st.sampled_from(("AND", "OR")))
def test_matches_reference(events: list[dict[str, Any]], value: int, op: str, count: int,
                           etype: str, combine: str) -> None:
    eng = make_engine(events)
    config = {"filters": [{"property": "k", "operator": op, "value": value},
                          {"eventType": etype, "count": {"operator": "gte", "value": count}}],
              "operator": combine, "sampleSize": 100}
    out = behaviour.run_segment(eng, config, NOW)
    universe = {e["userId"] for e in events}
    expected = set()
    for u in universe:
        v = _latest(events, u, "k")
        p1 = {"eq": v == value, "neq": v != value, "gte": v is not None and v >= value}[op]
        p2 = sum(1 for e in events if e["userId"] == u and e["type"] == etype) >= count
        if (p1 and p2) if combine == "AND" else (p1 or p2):
            expected.add(u)
    assert set(out["sampleUsers"]) == expected
    assert out["userCount"] == len(expected) and out["totalUsers"] == len(universe)


def test_seed_example_latest_values() -> None:
    events = [
        {"type": "signup", "userId": "a", "timestamp": T0, "properties": {"plan": "free"}},
        {"type": "upgrade", "userId": "a", "timestamp": T0 + 10,
         "properties": {"plan": "premium", "active": True}},
        {"type": "signup", "userId": "b", "timestamp": T0 + 20,
         "properties": {"plan": "premium", "active": True}},
        {"type": "downgrade", "userId": "b", "timestamp": T0 + 30, "properties": {"plan": "free"}},
        {"type": "signup", "userId": "c", "timestamp": T0, "properties": {"plan": "premium",
                                                                          "active": False}},
        {"type": "pageview", "userId": "d", "timestamp": T0},
    ]
    eng = make_engine(events, chunk=2, max_events=3)
    out = behaviour.run_query(eng, {"name": "Premium Users", "type": "segment", "config": {
        "name": "Premium Users",
        "filters": [{"property": "plan", "operator": "eq", "value": "premium"},
                    {"property": "active", "operator": "eq", "value": True}],
        "operator": "AND"}}, NOW)
    assert out["userCount"] == 1 and out["sampleUsers"] == ["a"] and out["totalUsers"] == 4
    # scope=event: anyone who ever had plan=premium on an event
    out = behaviour.run_segment(eng, {"filters": [
        {"property": "plan", "value": "premium", "scope": "event"}]}, NOW)
    assert sorted(out["sampleUsers"]) == ["a", "b", "c"]
    # never set: not_exists matches users without the property
    out = behaviour.run_segment(eng, {"filters": [{"property": "plan",
                                                   "operator": "not_exists"}]}, NOW)
    assert out["sampleUsers"] == ["d"]
    # nested OR group and an event-type-scoped latest value
    out = behaviour.run_segment(eng, {"filters": [
        {"operator": "OR", "filters": [{"property": "plan", "value": "free"},
                                       {"eventType": "pageview"}]},
        {"property": "plan", "eventType": "signup", "operator": "neq", "value": "free"}]}, NOW)
    assert sorted(out["sampleUsers"]) == ["b", "d"]


def test_saved_segments_resolve_in_other_queries() -> None:
    events = [{"type": "signup", "userId": u, "timestamp": T0,
               "properties": {"plan": "premium" if u in ("u1", "u2") else "free"}}
              for u in USERS]
    events += [{"type": "buy", "userId": u, "timestamp": T0 + 5} for u in ("u1", "u3")]
    eng = make_engine(events)
    doc = segments.create(eng, {"name": "Premium Users", "filters": [
        {"property": "plan", "value": "premium"}]})
    with pytest.raises(RtaError) as info:
        segments.create(eng, {"name": "Premium Users", "filters": []})
    assert info.value.status == 409
    assert segments.find(eng, "Premium Users")["id"] == doc["id"]
    codes = segments.resolver(eng)("Premium Users")
    assert sorted(eng.store.dicts.users.decode(codes).tolist()) == ["u1", "u2"]
    with pytest.raises(KeyError):
        segments.resolver(eng)("Nope")
    out = behaviour.run_funnel(eng, {"steps": ["signup", "buy"], "segment": "Premium Users"},
                               NOW)
    assert [s["count"] for s in out["steps"]] == [2, 1]
    shown = segments.show(eng, doc["id"])
    assert shown["userCount"] == 2 and shown["name"] == "Premium Users"
    segments.delete(eng, "Premium Users")
    with pytest.raises(ValidationError):
        behaviour.run_funnel(eng, {"steps": ["signup", "buy"], "segment": "Premium Users"},
                             NOW)


@pytest.mark.parametrize(("config", "field"), [
    ({"filters": [{"property": "plan", "operator": "like"}]}, "filters[0].operator"),
    ({"filters": [{"value": 3}]}, "filters[0]"),
    ({"filters": [{"eventType": "x", "count": {"operator": "gte", "value": -1}}]},
     "filters[0].count.value"),
    ({"filters": "plan=pro"}, "filters"),
    ({"operator": "XOR"}, "operator"),
    ({"sampleSize": 10**6}, "sampleSize"),
])
def test_bad_input_names_the_field(config: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        behaviour.run_segment(make_engine([]), config, NOW)
    assert info.value.details[0]["field"] == field


def test_execute_rejects_unknown_type() -> None:
    with pytest.raises(ValidationError) as info:
        behaviour.run_query(make_engine([]), {"type": "magic", "config": {}}, NOW)
    assert info.value.details[0]["field"] == "type"
    with pytest.raises(ValidationError) as info:
        behaviour.run_query(make_engine([]), {"type": "funnel", "config": {"steps": ["a"]}},
                            NOW)
    assert info.value.details[0]["field"] == "config.steps"
