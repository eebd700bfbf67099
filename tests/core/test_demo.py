"""The demo generator: deterministic, valid, and shaped like a real product's events."""

from __future__ import annotations

import itertools
import uuid
from collections import defaultdict

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rta.core.demo import (
    EVENT_TYPES,
    PROPERTY_TYPES,
    generate_arrow,
    iter_demo_events,
    table_events,
)
from rta.core.events import EventValidator
from rta.core.queries.timeparse import DAY

END = 1_790_000_000_000


@pytest.fixture(scope="module")
def table() -> pa.Table:
    return generate_arrow(60_000, users=2_000, days=30, seed=5, end_ms=END)


@pytest.fixture(scope="module")
def con(table: pa.Table) -> duckdb.DuckDBPyConnection:
    c = duckdb.connect()
    c.register("events", table)
    return c


def test_deterministic_and_exact_size() -> None:
    a = generate_arrow(5000, users=300, days=7, seed=42, end_ms=END)
    b = generate_arrow(5000, users=300, days=7, seed=42, end_ms=END)
    c = generate_arrow(5000, users=300, days=7, seed=43, end_ms=END)
    assert a.equals(b)
    assert not a.equals(c)
    for n in (0, 1, 3, 17, 999):
        assert generate_arrow(n, users=50, days=1, seed=n, end_ms=END).num_rows == n


def check_whole(table: pa.Table, n: int) -> None:
    """Exactly n rows, and every conversion carries the revenue of its session's purchase."""
    assert table.num_rows == n
    rows = table.select(["type", "sessionId", "properties.amount", "properties.quantity",
                         "properties.revenue"]).to_pylist()
    bought: dict[str, float] = {}
    for r in rows:
        if r["type"] == "purchase":
            bought[r["sessionId"]] = round(r["properties.amount"] * r["properties.quantity"], 2)
    for r in rows:
        if r["type"] == "conversion":
            assert r["properties.revenue"] == bought[r["sessionId"]]


# (n, users, days, seed) that once failed: the cut to exactly n events fell between a
# session's purchase and its conversion, and revenue was paired with purchases by position.
@pytest.mark.parametrize(("n", "users", "days", "seed"), [
    (500, 50, 1, 7), (2000, 10_000, 30, 10), (2000, 50, 1, 12), (5000, 3, 0.01, 19)])
def test_a_session_cut_after_its_purchase_still_generates(n: int, users: int, days: float,
                                                          seed: int) -> None:
    table = generate_arrow(n, users=users, days=days, seed=seed, end_ms=END)
    check_whole(table, n)
    types = table.column("type").to_pylist()
    assert types.count("purchase") == types.count("conversion") + 1


@settings(max_examples=150, deadline=None)
@given(n=st.integers(0, 3000), seed=st.integers(0, 2**32 - 1), users=st.integers(1, 20_000),
       days=st.sampled_from([0.001, 0.01, 1, 7, 30, 365]))
def test_generation_never_fails(n: int, seed: int, users: int, days: float) -> None:
    check_whole(generate_arrow(n, users=users, days=days, seed=seed, end_ms=END), n)


def test_schema_time_range_and_ids(table: pa.Table) -> None:
    assert table.column_names == ["id", "type", "userId", "sessionId", "timestamp",
                                  *("properties." + k for k in PROPERTY_TYPES)]
    for key, typ in PROPERTY_TYPES.items():
        assert table.schema.field("properties." + key).type == typ
    ts = table.column("timestamp").to_numpy()
    assert (np.diff(ts) >= 0).all()
    assert ts.min() >= END - 30 * DAY and ts.max() < END
    ids = table.column("id").to_pylist()
    assert len(set(ids)) == len(ids)
    assert all(uuid.UUID(i).version == 4 and str(uuid.UUID(i)) == i for i in ids[:2000])
    assert set(table.column("type").to_pylist()) == set(EVENT_TYPES)
    assert table.column("userId").null_count == 0 and table.column("sessionId").null_count == 0


def test_events_are_valid_and_typed_as_documented() -> None:
    events = list(iter_demo_events(3000, users=100, days=3, seed=2, end_ms=END))
    batch, rejected = EventValidator().validate_batch(events, now=END)
    assert not rejected and len(batch) == 3000
    for e in events:
        p = e["properties"]
        if e["type"] == "pageview":
            assert isinstance(p["duration"], int) and p["page"].startswith("/")
        elif e["type"] == "api_request":
            assert isinstance(p["duration"], float) and isinstance(p["status"], int)
        elif e["type"] == "purchase":
            assert isinstance(p["amount"], float) and isinstance(p["quantity"], int)
        elif e["type"] == "experiment_assigned":
            assert p["variant"] in ("control", "variant_a", "variant_b")


def test_a_table_without_ids_gives_events_without_ids() -> None:
    """(The standard shape of the benchmarks: the server generates the ids.)"""
    table = generate_arrow(50, users=5, days=1, seed=3, end_ms=END)
    with_ids = list(table_events(table))
    without = list(table_events(table.drop_columns(["id"])))
    assert [{k: v for k, v in e.items() if k != "id"} for e in with_ids] == without
    assert all("id" not in e for e in without)


def test_sessions_belong_to_one_user_and_clicks_follow_their_page(
        con: duckdb.DuckDBPyConnection) -> None:
    assert con.execute("SELECT count(*) FROM (SELECT sessionId FROM events GROUP BY sessionId "
                       "HAVING count(DISTINCT userId) > 1)").fetchone()[0] == 0
    # Every products click sits on /products; every conversion follows a purchase.
    assert con.execute("""SELECT count(*) FROM events WHERE type = 'click'
        AND "properties.category" = 'products' AND "properties.page" <> '/products'
        """).fetchone()[0] == 0
    revenue, expected = con.execute("""SELECT sum(c."properties.revenue"),
        sum(p."properties.amount" * p."properties.quantity") FROM events c
        JOIN events p ON p.sessionId = c.sessionId AND p.type = 'purchase'
        WHERE c.type = 'conversion'""").fetchone()
    assert revenue == pytest.approx(expected, rel=1e-6)


def test_funnel_narrows_at_every_step(con: duckdb.DuckDBPyConnection) -> None:
    sessions = [con.execute(f"SELECT count(DISTINCT sessionId) FROM events WHERE {cond}")
                .fetchone()[0] for cond in (
        "type = 'pageview'",
        "type = 'click' AND \"properties.category\" = 'products'",
        "type = 'form_submit'", "type = 'purchase'")]
    assert sessions[0] > sessions[1] > sessions[2] > sessions[3] > 0
    rates = [b / a for a, b in itertools.pairwise(sessions)]
    assert all(0.05 < r < 0.9 for r in rates)


def test_variant_b_converts_best(con: duckdb.DuckDBPyConnection) -> None:
    rows = con.execute("""
        WITH a AS (SELECT userId, min("properties.variant") v FROM events
                   WHERE type = 'experiment_assigned' GROUP BY userId)
        SELECT a.v, count(*) FILTER (e.type = 'form_submit'),
               count(*) FILTER (e.type = 'purchase')
        FROM a JOIN events e ON e.userId = a.userId GROUP BY a.v""").fetchall()
    rate = {v: bought / forms for v, forms, bought in rows}
    assert set(rate) == {"control", "variant_a", "variant_b"}
    assert rate["variant_b"] > rate["control"] + 0.05
    assert rate["variant_b"] > rate["variant_a"]


def test_signups_come_first_and_users_return_later(table: pa.Table) -> None:
    types = table.column("type").to_pylist()
    users = table.column("userId").to_pylist()
    ts = table.column("timestamp").to_pylist()
    signup: dict[str, int] = {}
    for t, u, s in zip(types, users, ts, strict=True):
        if t == "signup":
            assert u not in signup
            signup[u] = s
    assert len(signup) > 100
    sessions = table.column("sessionId").to_pylist()
    signup_session = {u: sessions[i] for i, (t, u) in enumerate(zip(types, users, strict=True))
                      if t == "signup"}
    for i, (u, s) in enumerate(zip(users, ts, strict=True)):  # only its own session precedes
        if u in signup and s < signup[u]:
            assert sessions[i] == signup_session[u]
    returned = defaultdict(set)
    for t, u, s in zip(types, users, ts, strict=True):
        if t == "login" and u in signup:
            returned[u].add((s - signup[u]) // DAY)
    day1 = sum(1 for d in returned.values() if 1 in d) / len(signup)
    day7 = sum(1 for d in returned.values() if 7 in d) / len(signup)
    assert day1 > day7 > 0  # cohort retention declines but does not vanish


def test_skewed_activity_and_latency_spikes(con: duckdb.DuckDBPyConnection) -> None:
    counts = [r[0] for r in con.execute(
        "SELECT count(*) c FROM events GROUP BY userId ORDER BY c DESC").fetchall()]
    assert counts[0] > 20 * np.median(counts)  # Zipf-like heavy users
    p50, p999, top = con.execute("""SELECT quantile_cont("properties.duration", 0.5),
        quantile_cont("properties.duration", 0.999), max("properties.duration")
        FROM events WHERE type = 'api_request'""").fetchone()
    assert p999 > 5 * p50 and top > 10 * p50
    errors_5xx = con.execute("""SELECT count(*) FROM events WHERE type = 'api_request'
        AND "properties.status" >= 500""").fetchone()[0]
    assert errors_5xx > 0
