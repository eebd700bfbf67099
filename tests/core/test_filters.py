"""The filter language against a naive per-event reference, on generated data."""

from __future__ import annotations

import operator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rta.core.embedded.store import ColumnStore, StoreConfig
from rta.core.errors import ValidationError
from rta.core.events import EventValidator
from rta.core.queries.filters import parse_cli_where, parse_filter

NOW = 1_800_000_000_000
KEYS = ["page", "n", "flag"]
values = st.one_of(st.sampled_from(["/a", "/b", "/ab", "x", "ü"]), st.integers(-3, 3),
                   st.sampled_from([0.5, 1.0, -2.5]), st.booleans())
events_st = st.lists(st.fixed_dictionaries({
    "type": st.sampled_from(["pageview", "click"]),
    "userId": st.sampled_from(["u1", "u2", "u3"]),
    "timestamp": st.integers(NOW - 100, NOW),
    "properties": st.dictionaries(st.sampled_from(KEYS), values, max_size=3)}),
    min_size=0, max_size=40)
OPS = ["eq", "neq", "gt", "gte", "lt", "lte", "in", "not_in", "contains", "not_contains",
       "starts_with", "ends_with", "exists", "not_exists"]


@st.composite
def predicates(draw: st.DrawFn) -> dict[str, Any]:
    op = draw(st.sampled_from(OPS))
    prop = draw(st.sampled_from(KEYS))
    if op in ("contains", "not_contains", "starts_with", "ends_with"):
        return {"property": prop, "operator": op, "value": draw(st.sampled_from(["a", "/", "b"]))}
    if op in ("in", "not_in"):
        return {"property": prop, "operator": op, "value": draw(st.lists(values, min_size=1,
                                                                          max_size=3))}
    if op in ("exists", "not_exists"):
        return {"property": prop, "operator": op}
    if op in ("gt", "gte", "lt", "lte"):
        v = draw(st.one_of(st.integers(-3, 3), st.sampled_from([0.5, "/a", "x"])))
        return {"property": prop, "operator": op, "value": v}
    return {"property": prop, "operator": op, "value": draw(values)}


def same_kind(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool)
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str)
    return True


def ref_match(event: dict[str, Any], pred: dict[str, Any]) -> bool:
    op = pred["operator"]
    value = event["properties"].get(pred["property"])
    target = pred.get("value")
    if op.startswith("not_") or op == "neq":
        positive = {"neq": "eq", "not_in": "in", "not_contains": "contains",
                    "not_exists": "exists"}[op]
        return not ref_match(event, {**pred, "operator": positive})
    if op == "exists":
        return value is not None
    if value is None:
        return False
    if op == "in":
        return any(ref_match(event, {**pred, "operator": "eq", "value": t}) for t in target)
    if op in ("contains", "starts_with", "ends_with"):
        if not isinstance(value, str):
            return False
        return {"contains": target in value, "starts_with": value.startswith(target),
                "ends_with": value.endswith(target)}[op]
    if not same_kind(value, target):
        return False
    if op == "eq":
        return bool(value == target)
    if isinstance(value, bool):
        return False
    cmp = {"gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}[op]
    return bool(cmp(value, target))


def run(events: list[dict[str, Any]], spec: dict[str, Any]) -> list[int]:
    store = ColumnStore(None, StoreConfig(max_head_events=15))
    for i, e in enumerate(events):
        e["id"] = f"e{i}"
    for start in range(0, len(events), 10):
        batch, rejected = EventValidator().validate_batch(events[start:start + 10], now=NOW)
        assert not rejected
        store.append(batch)
    flt = parse_filter(spec, now=NOW)
    snap = store.snapshot()
    out: list[int] = []
    for block, sl, mask in flt.select(snap):
        ids = block.ids(slice(sl.start, sl.stop))
        out += [int(x[1:]) for j, x in enumerate(ids) if mask is None or mask[j]]
    return sorted(out)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events_st, predicates())
def test_single_predicate_matches_reference(events: list[dict[str, Any]],
                                            pred: dict[str, Any]) -> None:
    got = run(events, {"where": [pred]})
    assert got == [i for i, e in enumerate(events) if ref_match(e, pred)]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events_st, st.lists(predicates(), min_size=1, max_size=3), st.sampled_from(["AND", "OR"]),
       st.sampled_from([None, "pageview", ["pageview", "click"]]),
       st.sampled_from([None, "u1"]), st.integers(NOW - 120, NOW))
def test_groups_types_users_and_time(events: list[dict[str, Any]], preds: list[dict[str, Any]],
                                     op: str, etype: Any, user: Any, start: int) -> None:
    spec: dict[str, Any] = {"where": [{"operator": op, "filters": preds}], "startTime": start,
                            "endTime": NOW}
    if etype is not None:
        spec["type"] = etype
    if user is not None:
        spec["userId"] = user
    combine = all if op == "AND" else any
    types = None if etype is None else ([etype] if isinstance(etype, str) else etype)
    expected = [i for i, e in enumerate(events)
                if combine(ref_match(e, p) for p in preds)
                and (types is None or e["type"] in types)
                and (user is None or e["userId"] == user)
                and start <= e["timestamp"] <= NOW]
    assert run(events, spec) == expected


def test_shorthand_and_top_level_fields() -> None:
    events = [{"type": "click", "userId": "u1", "timestamp": NOW - 5,
               "properties": {"category": "products"}},
              {"type": "click", "userId": "u2", "timestamp": NOW - 4,
               "properties": {"category": "other"}},
              {"type": "pageview", "userId": "u1", "timestamp": NOW - 3, "properties": {}}]
    assert run(events, {"where": {"category": "products"}}) == [0]
    assert run(events, {"where": {"properties.category": "other"}}) == [1]
    assert run(events, {"where": [{"property": "userId", "operator": "eq", "value": "u1"}]}) \
        == [0, 2]
    assert run(events, {"where": [{"property": "type", "operator": "in",
                                   "value": ["pageview"]}]}) == [2]
    assert run(events, {"where": [{"property": "timestamp", "operator": "gt",
                                   "value": NOW - 5}]}) == [1, 2]


@pytest.mark.parametrize("spec, field", [
    ({"where": [{"property": "x", "operator": "like", "value": 1}]}, "filter.where[0].operator"),
    ({"where": [{"property": "x", "operator": "in", "value": 1}]}, "filter.where[0].value"),
    ({"where": [{"property": "", "operator": "eq", "value": 1}]}, "filter.where[0].property"),
    ({"where": [{"property": "person.", "operator": "eq", "value": 1}]},
     "filter.where[0].property"),  # a person property needs its key
    ({"where": [{"property": "x", "operator": "contains", "value": 3}]},
     "filter.where[0].value"),
    ({"startTime": NOW, "endTime": NOW - 10}, "filter.startTime"),
    ({"startTime": "soon"}, "filter.startTime"),
    ({"type": 7}, "filter.type"),
    ({"operator": "XOR"}, "filter.operator"),
    ({"segment": "nobody"}, "filter.segment"),
])
def test_bad_filters_name_the_field(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_filter(spec, now=NOW)
    assert info.value.details[0]["field"] == field


@pytest.mark.parametrize("text, prop, op, value", [
    ("page=/products", "page", "eq", "/products"),
    ("duration>1000", "duration", "gt", 1000),
    ("duration>=1.5", "duration", "gte", 1.5),
    ("plan!=free", "plan", "neq", "free"),
    ("page~prod", "page", "contains", "prod"),
    ("url^=/docs", "url", "starts_with", "/docs"),
    ("active=true", "active", "eq", True),
    ("email?", "email", "exists", None),
    ("!email?", "email", "not_exists", None),
    ("plan in pro,team", "plan", "in", ["pro", "team"]),
    ("properties.page=/x", "page", "eq", "/x"),
    ("plan==pro", "plan", "eq", "pro"),
    ("day>2026-01-01", "day", "gt", "2026-01-01"),  # (ISO dates compare as text)
])
def test_cli_where(text: str, prop: str, op: str, value: Any) -> None:
    p = parse_cli_where(text)
    assert (p.prop, p.op, p.value) == (prop, op, value)


@pytest.mark.parametrize("text", ["amount>>3", "n<<2", "n>=>1", "plan!==pro", "n===1"])
def test_cli_where_refuses_doubled_operators(text: str) -> None:
    """A typo would otherwise compare with the text '>3' and silently match nothing."""
    with pytest.raises(ValidationError, match="starts with an operator"):
        parse_cli_where(text)


def test_relative_time_ranges() -> None:
    day = 86_400_000
    flt = parse_filter({"timeRange": "last_7d"}, now=NOW)
    assert (flt.start, flt.end) == (NOW - 7 * day, NOW + 1)
    flt = parse_filter({"timeRange": "today"}, now=NOW)
    assert flt.start == NOW - NOW % day
    flt = parse_filter({"timeRange": "yesterday"}, now=NOW)
    assert (flt.start, flt.end) == (NOW - NOW % day - day, NOW - NOW % day)
    flt = parse_filter({"startTime": "last_15m"}, now=NOW)
    assert flt.start == NOW - 15 * 60_000
    flt = parse_filter({"startTime": "2027-01-15T00:00:00Z", "endTime": "2027-01-16"}, now=NOW)
    assert (flt.start, flt.end) == (1_799_971_200_000, 1_800_057_600_001)


def test_property_named_like_a_field_and_intersect() -> None:
    events = [{"type": "click", "userId": "u1", "timestamp": NOW - 5,
               "properties": {"type": "button"}},
              {"type": "button", "userId": "u2", "timestamp": NOW - 4, "properties": {}}]
    assert run(events, {"where": {"properties.type": "button"}}) == [0]
    assert run(events, {"where": {"type": "button"}}) == [1]
    both = parse_filter({"type": ["click", "button"], "startTime": NOW - 10}, now=NOW).intersect(
        parse_filter({"type": "click", "endTime": NOW - 5}, now=NOW))
    assert (both.types, both.start, both.end) == (("click",), NOW - 10, NOW - 4)
