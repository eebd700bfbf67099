"""Stickiness and lifecycle against a naive per-user Python reference (calendar arithmetic
with `datetime`, not the engine's period numbers) and DuckDB SQL, on hypothesis logs with
events on period boundaries, ties, repeats, users without events in range, and history
before the range; both embedded paths (the per-type user index and gathered rows)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rta.core.embedded import stickiness as stickiness_kernel
from rta.core.errors import ValidationError
from rta.core.queries import behaviour
from rta.core.queries.stickiness_specs import parse_lifecycle, parse_stickiness
from tests.core.test_analytics import make_engine

DAY = 86_400_000
T0 = 1_700_006_400_000  # Wednesday 2023-11-15T00:00Z
NOW = T0 + 60 * DAY
STATUSES = ("new", "returning", "resurrecting", "dormant")
SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

events_st = st.lists(st.builds(
    lambda t, u, d, off, plan: {
        "type": t, "userId": u, "timestamp": T0 + d * DAY + off,
        **({"properties": {"plan": plan}} if plan else {})},
    st.sampled_from(("x", "x", "y")), st.sampled_from(("u0", "u1", "u2", "u3", "ü4", "")),
    st.integers(-40, 45), st.sampled_from((0, 0, -1, 1, DAY // 2, DAY - 1)),
    st.sampled_from((None, "pro", "free"))), min_size=0, max_size=70)


def _dt(ms: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)


def period(interval: str, ms: int) -> tuple[int, ...]:
    """A period's identity by calendar arithmetic (independent of rta's numbering)."""
    d = _dt(ms)
    if interval == "day":
        return (d.date().toordinal(),)
    if interval == "week":
        return ((d.date() - timedelta(days=d.weekday())).toordinal(),)
    return (d.year, d.month)


def next_period(interval: str, p: tuple[int, ...]) -> tuple[int, ...]:
    if interval == "month":
        y, m = p
        return (y + (m == 12), m % 12 + 1)
    return (p[0] + (1 if interval == "day" else 7),)


def grid(interval: str, start: int, end: int) -> list[tuple[int, ...]]:
    """Periods overlapping [start, end]."""
    out = [period(interval, start)]
    while out[-1] != period(interval, end):
        out.append(next_period(interval, out[-1]))
    return out


def matches(e: dict[str, Any], etype: str, plan: str | None) -> bool:
    return bool(e["type"] == etype and e.get("userId") and
                (plan is None or e.get("properties", {}).get("plan") == plan))


def stickiness_ref(events: list[dict[str, Any]], interval: str, start: int, end: int,
                   plan: str | None) -> list[int]:
    periods = grid(interval, start, end)
    active: dict[str, set[tuple[int, ...]]] = {}
    for e in events:
        p = period(interval, e["timestamp"])
        if matches(e, "x", plan) and p in periods:
            active.setdefault(e["userId"], set()).add(p)
    hist = [0] * len(periods)
    for ps in active.values():
        hist[len(ps) - 1] += 1
    return hist


def lifecycle_ref(events: list[dict[str, Any]], interval: str, start: int, end: int,
                  plan: str | None) -> list[dict[str, int]]:
    periods = grid(interval, start, end)
    last = periods[-1]
    active: dict[str, set[tuple[int, ...]]] = {}
    for e in events:
        p = period(interval, e["timestamp"])
        if matches(e, "x", plan) and p <= last:
            active.setdefault(e["userId"], set()).add(p)
    rows = []
    prev = None
    for p in periods:
        row = dict.fromkeys(STATUSES, 0)
        for ps in active.values():
            before = prev if prev is not None else _previous(interval, p)
            if p in ps:
                if min(ps) == p:
                    row["new"] += 1
                elif before in ps:
                    row["returning"] += 1
                else:
                    row["resurrecting"] += 1
            elif before in ps:
                row["dormant"] -= 1
        rows.append(row)
        prev = p
    return rows


def _previous(interval: str, p: tuple[int, ...]) -> tuple[int, ...]:
    if interval == "month":
        y, m = p
        return (y - (m == 1), (m - 2) % 12 + 1)
    return (p[0] - (1 if interval == "day" else 7),)


@contextlib.contextmanager
def without_index(on: bool) -> Iterator[None]:
    """Force the gathered-rows path (as when keys cannot be indexed)."""
    if not on:
        yield
        return
    real = stickiness_kernel.EventIndex

    class NoIndex(real):  # type: ignore[misc, valid-type]
        def __init__(self, snap: Any) -> None:
            super().__init__(snap)
            self.ok = False

    stickiness_kernel.EventIndex = NoIndex  # type: ignore[misc]
    try:
        yield
    finally:
        stickiness_kernel.EventIndex = real  # type: ignore[misc]


RANGES = st.tuples(st.integers(-3, 30), st.sampled_from((0, 1, DAY // 3, DAY - 1)),
                   st.integers(0, 20), st.sampled_from((0, -1, DAY // 2)))


def _body(interval: str, rng: tuple[int, int, int, int], plan: str | None) -> dict[str, Any]:
    d0, off0, span, off1 = rng
    start = T0 + d0 * DAY + off0
    end = max(start, T0 + (d0 + span) * DAY + off1)
    body: dict[str, Any] = {"eventType": "x", "interval": interval, "startTime": start,
                            "endTime": end}
    if plan:
        body["filters"] = {"plan": plan}
    return body


@SETTINGS
@given(events=events_st, interval=st.sampled_from(("day", "week")), rng=RANGES,
       plan=st.sampled_from((None, "pro")), gathered=st.booleans())
def test_stickiness_matches_reference(events: list[dict[str, Any]], interval: str,
                                      rng: tuple[int, int, int, int], plan: str | None,
                                      gathered: bool) -> None:
    eng = make_engine(events)
    body = _body(interval, rng, plan)
    with without_index(gathered):
        out = behaviour.run_stickiness(eng, body, NOW)
    want = stickiness_ref(events, interval, body["startTime"], body["endTime"], plan)
    assert [r["users"] for r in out["stickiness"]] == want
    assert out["totalUsers"] == sum(want)
    assert [r["cumulativeUsers"] for r in out["stickiness"]] == [
        sum(want[k:]) for k in range(len(want))]
    assert out["periods"] == len(want)


@SETTINGS
@given(events=events_st, interval=st.sampled_from(("day", "week", "month")), rng=RANGES,
       plan=st.sampled_from((None, "pro")), gathered=st.booleans())
def test_lifecycle_matches_reference(events: list[dict[str, Any]], interval: str,
                                     rng: tuple[int, int, int, int], plan: str | None,
                                     gathered: bool) -> None:
    eng = make_engine(events)
    body = _body(interval, rng, plan)
    with without_index(gathered):
        out = behaviour.run_lifecycle(eng, body, NOW)
    want = lifecycle_ref(events, interval, body["startTime"], body["endTime"], plan)
    got = [{s: p[s] for s in STATUSES} for p in out["periods"]]
    assert got == want
    starts = [p["startTime"] for p in out["periods"]]
    assert [period(interval, t) for t in starts] == grid(interval, body["startTime"],
                                                          body["endTime"])
    assert all(period(interval, t - 1) != period(interval, t) for t in starts)


def _duckdb(events: list[dict[str, Any]]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.register("events", pa.table({
        "ts": pa.array([e["timestamp"] for e in events], pa.int64()),
        "type": pa.array([e["type"] for e in events], pa.string()),
        "user_id": pa.array([e["userId"] or None for e in events], pa.string())}))
    return con


@SETTINGS
@given(events=events_st, rng=RANGES)
def test_daily_stickiness_and_lifecycle_match_duckdb(events: list[dict[str, Any]],
                                                     rng: tuple[int, int, int, int]) -> None:
    eng = make_engine(events)
    body = _body("day", rng, None)
    first, last = body["startTime"] // DAY, body["endTime"] // DAY
    con = _duckdb(events)
    hist = dict(con.execute(f"""
        SELECT n, count(*) FROM (SELECT user_id, count(DISTINCT ts // {DAY}) AS n FROM events
            WHERE type = 'x' AND user_id IS NOT NULL AND ts // {DAY} BETWEEN {first} AND {last}
            GROUP BY user_id) GROUP BY n""").fetchall())
    out = behaviour.run_stickiness(eng, body, NOW)
    assert [r["users"] for r in out["stickiness"]] == [
        hist.get(k, 0) for k in range(1, last - first + 2)]
    rows = con.execute(f"""
        WITH a AS (SELECT DISTINCT user_id AS u, ts // {DAY} AS p FROM events
                   WHERE type = 'x' AND user_id IS NOT NULL AND ts // {DAY} <= {last}),
        f AS (SELECT u, min(p) AS fp FROM a GROUP BY u),
        s AS (SELECT a.p, CASE WHEN a.p = f.fp THEN 0
                               WHEN EXISTS (SELECT 1 FROM a b WHERE b.u = a.u AND b.p = a.p - 1)
                               THEN 1 ELSE 2 END AS st
              FROM a JOIN f USING (u)
              UNION ALL
              SELECT a.p + 1, 3 FROM a
              WHERE NOT EXISTS (SELECT 1 FROM a b WHERE b.u = a.u AND b.p = a.p + 1))
        SELECT p, st, count(*) FROM s WHERE p BETWEEN {first} AND {last} GROUP BY p, st
        """).fetchall()
    want = [[0, 0, 0, 0] for _ in range(last - first + 1)]
    for p, status, n in rows:
        want[p - first][status] = n if status < 3 else -n
    out2 = behaviour.run_lifecycle(eng, body, NOW)
    assert [[p[s] for s in STATUSES] for p in out2["periods"]] == want


def test_defaults_and_bad_input() -> None:
    q = parse_stickiness({"eventType": "x"}, NOW)
    assert q.grid.count == 8 and q.grid.interval == "day"
    assert q.grid.last == NOW // DAY
    q2 = parse_lifecycle({"eventType": "x", "interval": "month", "timeRange": "last_30d"}, NOW)
    assert q2.grid.interval == "month" and q2.grid.count in (1, 2)
    for body, field in (({}, "eventType"), ({"eventType": ""}, "eventType"),
                        ({"eventType": "x", "interval": "month"}, "interval"),
                        ({"eventType": "x", "interval": "hour"}, "interval"),
                        ({"eventType": "x", "startTime": 0}, "startTime"),
                        ({"eventType": "x", "filters": 3}, "filters"),
                        ({"eventType": "x", "startTime": NOW, "endTime": NOW - DAY},
                         "startTime")):
        with pytest.raises(ValidationError) as err:
            parse_stickiness(body, NOW)
        assert err.value.details[0]["field"] == field, (body, err.value.details)
    with pytest.raises(ValidationError) as err:
        parse_lifecycle({"eventType": "x", "interval": "year"}, NOW)
    assert err.value.details[0]["field"] == "interval"
