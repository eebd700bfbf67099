"""Per-bucket percentiles and distinct users (the contiguous-run kernels) against DuckDB.

Events span many small blocks (masked and unmasked parts), buckets spread across blocks,
some events lack the metric or the user, and values repeat, so the run splitting, NaN
dropping, the windowed whole-range quantile and both bitmap scatter paths are exercised.
"""

from __future__ import annotations

import math
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rta.core.embedded import timeseries
from rta.core.embedded.timeseries import _select_quantile, _windowed_quantile
from rta.core.queries import analytics
from tests.core.test_analytics import BASE, STEP, make_engine

SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
USERS = [f"u{i}" for i in range(12)] + [None]

events_st = st.lists(st.fixed_dictionaries({
    "type": st.sampled_from(["pageview", "click"]),
    "userId": st.sampled_from(USERS),
    "timestamp": st.integers(0, 40 * STEP).map(lambda o: BASE + o),
    "properties": st.fixed_dictionaries({}, optional={
        "m": st.one_of(st.integers(-5, 5), st.floats(-1e3, 1e3, allow_nan=False,
                                                     allow_infinity=False))})}),
    min_size=1, max_size=150)


def sorted_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(events, key=lambda e: e["timestamp"])


def to_duckdb(events: list[dict[str, Any]]) -> duckdb.DuckDBPyConnection:
    m = [e["properties"].get("m") for e in events]
    table = pa.table({
        "ts": pa.array([e["timestamp"] for e in events], pa.int64()),
        "type": [e["type"] for e in events],
        "user_id": pa.array([e["userId"] for e in events], pa.string()),
        "m": pa.array([None if v is None else float(v) for v in m], pa.float64())})
    con = duckdb.connect()
    con.register("events", table)
    return con


def close(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


@SETTINGS
@given(events=events_st, interval=st.sampled_from([STEP, 3 * STEP, 20 * STEP]),
       agg=st.sampled_from(["p50", "p90", "p95", "p99"]), typed=st.booleans(),
       in_order=st.booleans())
def test_quantile_series_and_total_match_duckdb(events: list[dict[str, Any]], interval: int,
                                                agg: str, typed: bool,
                                                in_order: bool) -> None:
    if in_order:  # time-ordered appends: buckets run across block boundaries
        events = sorted_events(events)
    eng = make_engine(events, chunk=5)
    con = to_duckdb(events)
    q = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}[agg]
    start, end = BASE, BASE + 41 * STEP
    where = f"ts >= {start} AND ts < {end} AND m IS NOT NULL" + (
        " AND type = 'pageview'" if typed else "")
    rows = con.execute(f"SELECT (ts - {start}) // {interval}, quantile_cont(m, {q}), count(*) "
                       f"FROM events WHERE {where} GROUP BY 1").fetchall()
    total = con.execute(f"SELECT quantile_cont(m, {q}), count(*) FROM events "
                        f"WHERE {where}").fetchone()
    assert total is not None
    body: dict[str, Any] = {"metric": "m", "aggregation": agg, "interval": interval,
                            "startTime": start, "endTime": end - 1}
    if typed:
        body["eventType"] = "pageview"
    out = analytics.run_aggregate(eng, body)
    sql = {b: (v, n) for b, v, n in rows}
    for b in out["buckets"]:
        value, n = sql.get((b["timestamp"] - start) // interval, (None, 0))
        assert b["count"] == n
        assert close(b["value"], value), (b, value)
    assert out["total"]["count"] == total[1]
    assert close(out["total"]["value"], total[0]), (out["total"], total)


@SETTINGS
@given(events=events_st, interval=st.sampled_from([STEP, 7 * STEP, 60 * STEP]),
       typed=st.booleans(), in_order=st.booleans(), short_run=st.sampled_from([0, 1 << 30]))
def test_unique_series_and_total_match_duckdb(events: list[dict[str, Any]], interval: int,
                                              typed: bool, in_order: bool,
                                              short_run: int) -> None:
    """Both bitmap fills: a loop over bucket runs (SHORT_RUN 0) and one scatter."""
    saved = timeseries.SHORT_RUN
    timeseries.SHORT_RUN = short_run
    try:
        check_unique_series(events, interval, typed, in_order)
    finally:
        timeseries.SHORT_RUN = saved


def check_unique_series(events: list[dict[str, Any]], interval: int, typed: bool,
                        in_order: bool) -> None:
    if in_order:
        events = sorted_events(events)
    eng = make_engine(events, chunk=5)
    con = to_duckdb(events)
    start, end = BASE, BASE + 41 * STEP
    # distinct users among events with a user; `events` counts every matching event
    where = f"ts >= {start} AND ts < {end}" + (" AND type = 'pageview'" if typed else "")
    first = start - start % interval
    rows = con.execute(f"SELECT (ts - {first}) // {interval}, count(DISTINCT user_id), "
                       f"count(*) FROM events WHERE {where} GROUP BY 1").fetchall()
    total = con.execute(f"SELECT count(DISTINCT user_id), count(*) FROM events "
                        f"WHERE {where}").fetchone()
    assert total is not None
    params: dict[str, Any] = {"startTime": start, "endTime": end - 1, "interval": interval}
    if typed:
        params["type"] = "pageview"
    out = analytics.run_unique_users(eng, params)
    sql = {b: (u, n) for b, u, n in rows}
    for b in out["buckets"]:
        users, n = sql.get((b["timestamp"] - first) // interval, (0, 0))
        assert (b["value"], b["events"]) == (users, n), (b, users, n)
    assert out["uniqueUsers"] == total[0]
    assert out["events"] == total[1]


@settings(max_examples=80, deadline=None)
@given(groups=st.lists(st.lists(st.integers(-20, 20), min_size=1, max_size=30), min_size=2,
                       max_size=6),
       q=st.sampled_from([0.0, 0.5, 0.9, 0.95, 0.99, 1.0]),
       low=st.integers(-25, 25), width=st.integers(0, 50))
def test_windowed_quantile_is_exact_for_any_window(groups: list[list[int]], q: float, low: int,
                                                   width: int) -> None:
    """Any window, even one that misses the answer (the full-selection fallback), gives
    exactly the quantile of all values."""
    arrays = [np.array(g, dtype=np.float64) for g in groups]
    expected = _select_quantile(np.concatenate(arrays), q)
    got = _windowed_quantile(arrays, q, float(low), float(low + width))
    assert got == expected


@settings(max_examples=80, deadline=None)
@given(runs=st.lists(st.lists(st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
                              max_size=8), min_size=1, max_size=8),
       agg=st.sampled_from(["count", "sum", "avg", "min", "max"]))
def test_add_runs_matches_add_exactly(runs: list[list[float]], agg: str) -> None:
    """Contiguous runs fold to bit-identical results as per-row keys (same summation order)."""
    values = np.array([v for r in runs for v in r], dtype=np.float64)
    keys = np.repeat(np.arange(len(runs)), [len(r) for r in runs])
    pos = np.concatenate(([0], np.cumsum([len(r) for r in runs]))).astype(np.int64)
    by_rows = timeseries.Accumulator(agg, len(runs), 0)
    by_rows.add(keys, values)
    by_runs = timeseries.Accumulator(agg, len(runs), 0)
    by_runs.add_runs(values, pos)
    (v1, c1), (v2, c2) = by_rows.result(), by_runs.result()
    assert c1.tolist() == c2.tolist()
    assert np.array_equal(v1, v2, equal_nan=True)


@SETTINGS
@given(events=events_st, tz=st.sampled_from([0, 330, -300, 840, -720, 45]),
       interval=st.sampled_from([STEP, 7 * STEP, 60 * STEP]), agg=st.sampled_from(
           ["count", "unique_users", "sum"]))
def test_buckets_follow_the_tz_offset(events: list[dict[str, Any]], tz: int, interval: int,
                                      agg: str) -> None:
    """`tzOffset` shifts bucket boundaries to local time (daily buckets at local midnight);
    every bucket still counts exactly the events DuckDB puts in it, within the range."""
    eng = make_engine(events, chunk=7)
    con = to_duckdb(events)
    offset = tz * 60_000
    start, end = BASE + 3 * STEP + 17, BASE + 37 * STEP
    first = start - (start + offset) % interval
    measure = {"count": "count(*)", "unique_users": "count(DISTINCT user_id)",
               "sum": "sum(m)"}[agg]
    rows = con.execute(f"SELECT (ts - {first}) // {interval}, {measure} FROM events "
                       f"WHERE ts >= {start} AND ts < {end} GROUP BY 1").fetchall()
    body: dict[str, Any] = {"aggregation": agg, "interval": interval, "tzOffset": tz,
                            "startTime": start, "endTime": end - 1}
    if agg == "sum":
        body["metric"] = "m"
    out = analytics.run_aggregate(eng, body)
    assert out["buckets"][0]["timestamp"] == first
    assert all((b["timestamp"] + offset) % interval == 0 for b in out["buckets"])
    sql = dict(rows)
    for b in out["buckets"]:
        expected = sql.get((b["timestamp"] - first) // interval) or 0
        assert close(b["value"] or 0, expected), (b, expected)
    unique = analytics.run_unique_users(eng, {"startTime": start, "endTime": end - 1,
                                              "interval": interval, "tzOffset": tz})
    assert [b["timestamp"] for b in unique["buckets"]] == [b["timestamp"]
                                                          for b in out["buckets"]]
