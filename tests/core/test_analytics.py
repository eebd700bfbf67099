"""Analytics queries against a naive per-event Python reference on generated data.

The data lands in several sealed segments plus the head, with events on bucket boundaries,
missing properties, properties whose type varies between events, and unicode values.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rta.core.config import EngineConfig
from rta.core.engine import Engine
from rta.core.errors import ValidationError
from rta.core.queries import analytics

BASE = 1_700_000_000_000 - 1_700_000_000_000 % 3_600_000  # an hour boundary
STEP = 60_000
TYPES = ["pageview", "click", "ünï页"]
USERS = ["u1", "u2", "u3", "üser", None]
numbers = st.one_of(st.integers(-50, 50), st.sampled_from([0.5, 2.25, -1.5, 10.0, 1e6]))
mixed = st.one_of(numbers, st.sampled_from(["a", "b", "ü", "页", "10"]), st.booleans())
timestamps = st.one_of(
    st.integers(0, 20).map(lambda i: BASE + i * STEP),  # exactly on 1m boundaries
    st.integers(0, 20 * STEP).map(lambda o: BASE + o),
    st.integers(-1, 1).map(lambda d: BASE + 5 * STEP + d))  # around a 5m edge
events_st = st.lists(st.fixed_dictionaries(
    {"type": st.sampled_from(TYPES), "userId": st.sampled_from(USERS), "timestamp": timestamps},
    optional={"properties": st.fixed_dictionaries(
        {}, optional={"m": numbers, "v": mixed, "g": st.sampled_from(["x", "y", "ζ", "页"])})}),
    min_size=0, max_size=40)
SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def make_engine(events: list[dict[str, Any]], chunk: int = 4) -> Engine:
    """An in-memory engine whose events span sealed segments and the head (small appends
    collect in the head until it passes max_events and is sealed)."""
    eng = Engine(EngineConfig(data_dir=None, max_events=6, cache_ttl_ms=60_000))
    items = [dict(e, userId=e["userId"]) if e.get("userId") else
             {k: v for k, v in e.items() if k != "userId"} for e in events]
    for i in range(0, len(items), chunk):
        batch, rejected = eng.validator.validate_batch(items[i:i + chunk])
        assert not rejected
        eng.store.append(batch)
    return eng


def prop(event: dict[str, Any], key: str) -> Any:
    return event.get("properties", {}).get(key)


def numeric(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def tagged(value: Any) -> tuple[str, Any]:
    """A group key as (kind, value): True and 1 must not collide as they do in a dict."""
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, int | float):
        return ("n", float(value))
    return ("s", value)


def in_range(events: list[dict[str, Any]], start: int, end: int,
             types: list[str] | None = None) -> list[dict[str, Any]]:
    return [e for e in events if start <= e["timestamp"] < end
            and (types is None or e["type"] in types)]


def ref_value(agg: str, rows: list[dict[str, Any]], metric: str) -> tuple[Any, int]:
    if agg == "count":
        return len(rows), len(rows)
    if agg == "unique_users":
        users = [e["userId"] for e in rows if e.get("userId")]
        return len(set(users)), len(users)
    vals = [v for e in rows if (v := numeric(prop(e, metric))) is not None]
    if not vals:
        return (0.0 if agg == "sum" else None), 0
    if agg == "sum":
        return math.fsum(vals), len(vals)
    if agg == "avg":
        return math.fsum(vals) / len(vals), len(vals)
    if agg in ("min", "max"):
        return (min(vals) if agg == "min" else max(vals)), len(vals)
    q = {"p50": 50, "p90": 90, "p95": 95, "p99": 99}[agg]
    return float(np.percentile(np.array(vals), q)), len(vals)


def close(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)


@SETTINGS
@given(events=events_st,
       agg=st.sampled_from(["count", "sum", "avg", "min", "max", "p50", "p90", "p95", "p99",
                            "unique_users"]),
       interval=st.sampled_from([STEP, 5 * STEP, 7 * STEP]),
       window=st.tuples(st.integers(-2, 22), st.integers(1, 25)),
       types=st.sampled_from([None, ["pageview"], ["click", "ünï页"]]))
def test_aggregate_matches_reference(events: list[dict[str, Any]], agg: str, interval: int,
                                     window: tuple[int, int], types: list[str] | None) -> None:
    eng = make_engine(events)
    start = BASE + window[0] * STEP
    end = start + window[1] * STEP  # exclusive; the API's endTime is inclusive
    body: dict[str, Any] = {"aggregation": agg, "interval": interval, "startTime": start,
                            "endTime": end - 1, "metric": "m"}
    if types:
        body["eventType"] = types
    if agg in ("count", "unique_users"):
        del body["metric"]
    out = analytics.run_aggregate(eng, body)
    first = start - start % interval
    last = end + (-end) % interval
    assert out["interval"] == interval
    assert out["startTime"] == start and out["endTime"] == end - 1
    stamps = [b["timestamp"] for b in out["buckets"]]
    assert stamps == list(range(first, last, interval))
    for b in out["buckets"]:  # partial edge buckets hold only the in-range events
        rows = in_range(events, max(b["timestamp"], start),
                        min(b["timestamp"] + interval, end), types)
        value, count = ref_value(agg, rows, "m")
        assert b["count"] == count
        assert close(b["value"], value), (b, value)
    value, count = ref_value(agg, in_range(events, start, end, types), "m")
    assert out["total"]["count"] == count
    assert close(out["total"]["value"], value)


@SETTINGS
@given(events=events_st, agg=st.sampled_from(["count", "sum", "avg", "max", "p90",
                                                 "unique_users"]),
       group_by=st.sampled_from(["v", "g", "type", "userId"]))
def test_grouped_series_match_reference(events: list[dict[str, Any]], agg: str,
                                        group_by: str) -> None:
    eng = make_engine(events)
    body: dict[str, Any] = {"aggregation": agg, "interval": "5m", "startTime": BASE,
                            "endTime": BASE + 25 * STEP - 1, "groupBy": group_by,
                            "limit": 100}
    if agg not in ("count", "unique_users"):
        body["metric"] = "m"
    out = analytics.run_aggregate(eng, body)

    def key_of(e: dict[str, Any]) -> Any:
        if group_by == "type":
            return ("s", e["type"])
        if group_by == "userId":
            return ("s", e["userId"]) if e.get("userId") else None
        v = prop(e, group_by)
        return None if v is None else tagged(v)

    rows = in_range(events, BASE, BASE + 25 * STEP)
    groups: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for e in rows:
        if (k := key_of(e)) is not None:
            groups[k].append(e)
    expected = {k: ref_value(agg, g, "m") for k, g in groups.items()}
    expected = {k: v for k, v in expected.items() if v[1] > 0}
    got = {tagged(s["key"]): s for s in out["series"]}
    assert set(got) == set(expected)
    assert out["groups"] == len(expected)
    for k, s in got.items():
        assert s["total"]["count"] == expected[k][1]
        assert close(s["total"]["value"], expected[k][0])
        for b in s["buckets"]:
            sub = [e for e in groups[k] if b["timestamp"] <= e["timestamp"]
                   < b["timestamp"] + 5 * STEP]
            value, count = ref_value(agg, sub, "m")
            assert b["count"] == count
            assert close(b["value"], value)


@SETTINGS
@given(events=events_st, limit=st.integers(1, 3))
def test_series_limit_keeps_the_largest_groups(events: list[dict[str, Any]],
                                               limit: int) -> None:
    eng = make_engine(events)
    out = analytics.run_aggregate(eng, {"groupBy": "g", "limit": limit, "interval": "1h",
                                        "startTime": BASE, "endTime": BASE + 3_600_000 - 1})
    counts = Counter(prop(e, "g") for e in in_range(events, BASE, BASE + 3_600_000)
                     if prop(e, "g") is not None)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    assert [(s["key"], s["total"]["value"]) for s in out["series"]] == ranked


@SETTINGS
@given(events=events_st, group_by=st.sampled_from([None, "type", "v", "g", "userId"]),
       types=st.sampled_from([None, "pageview", "click,ünï页"]),
       window=st.sampled_from([None, (0, 10), (5, 5), (3, 30)]))
def test_count_matches_reference(events: list[dict[str, Any]], group_by: str | None,
                                 types: str | None, window: tuple[int, int] | None) -> None:
    eng = make_engine(events)
    params: dict[str, Any] = {}
    rows = events
    if types:
        params["type"] = types
        rows = [e for e in rows if e["type"] in types.split(",")]
    if window:
        start, end = BASE + window[0] * STEP, BASE + (window[0] + window[1]) * STEP
        params.update(startTime=str(start), endTime=str(end - 1))
        rows = in_range(rows, start, end)
    if group_by:
        params["groupBy"] = group_by
    out = analytics.run_count(eng, params)
    assert out["count"] == len(rows)
    if group_by is None:
        return
    if group_by in ("type", "userId"):
        keys = [("s", e.get(group_by)) if e.get(group_by) else None for e in rows]
    else:
        keys = [tagged(prop(e, group_by)) if prop(e, group_by) is not None else None
                for e in rows]
    expected = Counter(k for k in keys if k is not None)
    assert {tagged(g["key"]): g["count"] for g in out["groups"]} == dict(expected)
    assert [g["count"] for g in out["groups"]] == sorted(expected.values(), reverse=True)
    assert out["missing"] == keys.count(None)
    assert out["distinct"] == len(expected)
    for g in out["groups"]:
        assert close(g["share"], g["count"] / len(rows))


@SETTINGS
@given(events=events_st, interval=st.sampled_from([None, "5m", "1h"]),
       types=st.sampled_from([None, "click"]))
def test_unique_users_match_reference(events: list[dict[str, Any]], interval: str | None,
                                      types: str | None) -> None:
    eng = make_engine(events)
    params: dict[str, Any] = {"startTime": BASE, "endTime": BASE + 20 * STEP - 1}
    if interval:
        params["interval"] = interval
    if types:
        params["type"] = types
    out = analytics.run_unique_users(eng, params)
    sel = [types] if types else None
    if interval is None:
        rows = in_range(events, BASE, BASE + 20 * STEP, sel)
        assert out["uniqueUsers"] == len({e["userId"] for e in rows if e.get("userId")})
        assert out["events"] == len(rows)
        return
    step = {"5m": 5 * STEP, "1h": 3_600_000}[interval]
    assert out["interval"] == step
    for b in out["buckets"]:  # (a bucket counts only what lies inside the requested range)
        rows = in_range(events, max(b["timestamp"], params["startTime"]),
                        min(b["timestamp"] + step, params["endTime"] + 1), sel)
        assert b["value"] == len({e["userId"] for e in rows if e.get("userId")})
    rows = in_range(events, out["startTime"], out["endTime"] + 1, sel)
    assert out["uniqueUsers"] == len({e["userId"] for e in rows if e.get("userId")})
    approx = analytics.run_unique_users(eng, {**params, "approximate": "true"})
    assert approx["approximate"] is True
    assert approx["relativeStandardError"] == pytest.approx(1.04 / 128)
    # Linear counting is exact in practice for a handful of users.
    assert [b["value"] for b in approx["buckets"]] == [b["value"] for b in out["buckets"]]


@SETTINGS
@given(events=events_st, field=st.sampled_from(["v", "g", "m", "type", "userId"]),
       n=st.integers(1, 5), sort=st.sampled_from(["count", "users"]))
def test_top_matches_reference(events: list[dict[str, Any]], field: str, n: int,
                               sort: str) -> None:
    eng = make_engine(events)
    out = analytics.run_top(eng, {"property": field, "n": str(n), "sort": sort})

    def key_of(e: dict[str, Any]) -> Any:
        if field in ("type", "userId"):
            return ("s", e[field]) if e.get(field) else None
        v = prop(e, field)
        return None if v is None else tagged(v)

    counts: Counter[Any] = Counter()
    users: dict[Any, set[str]] = defaultdict(set)
    for e in events:
        k = key_of(e)
        if k is not None:
            counts[k] += 1
            if e.get("userId"):
                users[k].add(e["userId"])
    with_value = sum(counts.values())
    assert out["events"] == len(events)
    assert out["withValue"] == with_value
    assert out["distinct"] == len(counts)
    got = [(tagged(v["value"]), v["count"], v["uniqueUsers"]) for v in out["values"]]
    for k, c, u in got:
        assert counts[k] == c and len(users[k]) == u
    score = (lambda k: (len(users[k]), counts[k])) if sort == "users" else \
        (lambda k: (counts[k],))
    expected_scores = sorted((score(k) for k in counts), reverse=True)[:n]
    assert [score(k) for k, _, _ in got] == expected_scores
    assert out["otherCount"] == with_value - sum(c for _, c, _ in got)
    for v in out["values"]:
        assert close(v["share"], v["count"] / with_value)


def test_filters_apply_everywhere() -> None:
    events = [{"type": "pageview", "userId": f"u{i % 3}", "timestamp": BASE + i * STEP,
               "properties": {"page": "/a" if i % 2 else "/b", "duration": i * 100}}
              for i in range(12)]
    eng = make_engine(events)
    where = [{"property": "duration", "operator": "gte", "value": 500}]
    expect = [e for e in events if e["properties"]["duration"] >= 500]
    assert analytics.run_count(eng, {"where": where})["count"] == len(expect)
    assert analytics.run_count(eng, {"where": "duration>=500"})["count"] == len(expect)
    assert analytics.run_count(eng, {"where": '[{"property":"duration","operator":"gte",'
                                              '"value":500}]'})["count"] == len(expect)
    assert analytics.run_count(eng, {"properties.page": "/a"})["count"] == 6
    assert analytics.run_count(eng, {"filter": {"userId": ["u1"]}, "where": where})[
        "count"] == len([e for e in expect if e["userId"] == "u1"])
    assert analytics.run_unique_users(eng, {"where": where, "userId": "u0"})[
        "uniqueUsers"] == 1
    top = analytics.run_top(eng, {"property": "page", "where": where})
    assert sum(v["count"] for v in top["values"]) == len(expect)
    agg = analytics.run_aggregate(eng, {"where": where, "metric": "duration",
                                        "aggregation": "sum", "interval": "1h"})
    assert agg["total"]["value"] == sum(e["properties"]["duration"] for e in expect)


def test_empty_store_and_ranges() -> None:
    eng = make_engine([])
    out = analytics.run_aggregate(eng, {})
    assert out["buckets"] == [] and out["total"] == {"value": 0, "count": 0}
    out = analytics.run_aggregate(eng, {"startTime": BASE, "endTime": BASE + 3 * STEP - 1,
                                        "interval": "1m", "metric": "x", "aggregation": "avg"})
    assert [b["value"] for b in out["buckets"]] == [None, None, None]
    assert [b["count"] for b in out["buckets"]] == [0, 0, 0]
    assert analytics.run_count(eng, {})["count"] == 0
    assert analytics.run_unique_users(eng, {"interval": "1d"})["buckets"] == []
    assert analytics.run_top(eng, {"property": "page"})["values"] == []


def test_single_event_no_range_gives_one_bucket() -> None:
    eng = make_engine([{"type": "a", "userId": "u", "timestamp": BASE + 7,
                        "properties": {"m": 2}}])
    out = analytics.run_aggregate(eng, {"metric": "m", "aggregation": "sum"})
    assert out["total"] == {"value": 2.0, "count": 1}
    assert len(out["buckets"]) == 1 and out["buckets"][0]["timestamp"] <= BASE + 7


@pytest.mark.parametrize(("body", "field"), [
    ({"aggregation": "median"}, "aggregation"),
    ({"aggregation": "sum"}, "metric"),
    ({"aggregation": "sum", "metric": "page"}, "metric"),
    ({"interval": "1m", "startTime": BASE, "endTime": BASE + 20_000 * STEP}, "interval"),
    ({"interval": "soon"}, "interval"),
    ({"startTime": BASE + 10, "endTime": BASE}, "startTime"),
    ({"where": [{"property": "page", "operator": "like", "value": "x"}]},
     "where[0].operator"),
    ({"where": "justtext"}, "where"),
    ({"bogus": 1}, "bogus"),
    ({"limit": 0, "groupBy": "page"}, "limit"),
])
def test_bad_aggregate_input_names_the_field(body: dict[str, Any], field: str | None) -> None:
    eng = make_engine([{"type": "a", "userId": "u", "timestamp": BASE,
                        "properties": {"page": "/x"}}])
    with pytest.raises(ValidationError) as info:
        analytics.run_aggregate(eng, body)
    if field is not None:
        assert info.value.details[0]["field"] == field


def test_bad_other_input() -> None:
    eng = make_engine([])
    with pytest.raises(ValidationError):
        analytics.run_top(eng, {})
    with pytest.raises(ValidationError):
        analytics.run_top(eng, {"property": "p", "sort": "size"})
    with pytest.raises(ValidationError):
        analytics.run_unique_users(eng, {"approximate": "maybe"})
    with pytest.raises(ValidationError):
        analytics.run_count(eng, {"limit": "ten"})


def test_unknown_aggregation_lists_allowed_values() -> None:
    eng = make_engine([])
    with pytest.raises(ValidationError) as info:
        analytics.run_aggregate(eng, {"aggregation": "mode"})
    assert "p95" in info.value.details[0]["allowed"]


@pytest.mark.parametrize("size", [1, 40, 1000, 70_000])
def test_quantile_kernel_paths_match_numpy(size: int) -> None:
    """Every quantile path (one key, few keys, many small keys, huge key space)."""
    from rta.core.embedded.timeseries import Accumulator

    rng = np.random.default_rng(size)
    keys = rng.integers(0, size, 5000)
    values = rng.normal(size=5000).round(2)  # ties on purpose
    acc = Accumulator("p90", size, 0)
    for lo in range(0, 5000, 1700):  # several blocks
        acc.add(keys[lo:lo + 1700], values[lo:lo + 1700])
    got, count = acc.result()
    for k in np.unique(keys)[:300]:
        assert count[k] == np.count_nonzero(keys == k)
        assert close(got[k], float(np.percentile(values[keys == k], 90)))
    assert np.isnan(got[np.setdiff1d(np.arange(size), keys)]).all()


def test_integral_group_keys_stay_integers_up_to_int64() -> None:
    """2**53 is stored as an integer and exported as one; grouping shows it the same way."""
    eng = make_engine([{"type": "t", "timestamp": BASE + i, "properties": {"d": v}}
                       for i, v in enumerate([2**53, 2**53 - 1, -(2**53), 7])])
    out = analytics.run_count(eng, {"type": "t", "groupBy": "d"})
    keys = [g["key"] for g in out["groups"]]
    assert sorted(keys) == [-(2**53), 7, 2**53 - 1, 2**53]
    assert all(type(k) is int for k in keys)
    top = analytics.run_top(eng, {"type": "t", "property": "d", "n": 10})
    assert all(type(v["value"]) is int for v in top["values"])
    eng.close()


def test_a_stray_old_timestamp_does_not_break_default_series() -> None:
    """Seconds sent as ms land in 1970; a series with an interval and no startTime then
    covers the last 10,000 intervals instead of refusing the whole range."""
    recent = [{"type": "t", "userId": f"u{i}", "timestamp": BASE + i * 60_000}
              for i in range(30)]
    eng = make_engine([*recent, {"type": "t", "userId": "u0", "timestamp": BASE // 1000}])
    out = analytics.run_aggregate(eng, {"interval": "1h"})
    assert out["bucketCount"] <= 10_000
    assert sum(b["value"] for b in out["buckets"]) == 30
    assert out["startTime"] > BASE // 1000
    users = analytics.run_unique_users(eng, {"interval": "1h"})
    assert users["uniqueUsers"] == 30 and len(users["buckets"]) <= 10_000
    everything = analytics.run_count(eng, {})  # (no interval: the whole range, as before)
    assert everything["count"] == 31
    eng.close()
