"""The result cache: hits while valid, never after new events landed in the range."""

from __future__ import annotations

from typing import Any

import numpy as np

from rta.core.config import EngineConfig
from rta.core.embedded.hll import HyperLogLog
from rta.core.engine import Engine
from rta.core.queries import analytics
from rta.core.queries.query_cache import QueryCache
from tests.core.test_analytics import BASE, STEP, make_engine


def add(eng: Engine, events: list[dict[str, Any]]) -> None:
    batch, rejected = eng.validator.validate_batch(events)
    assert not rejected
    eng.store.append(batch)


def ev(i: int, **props: Any) -> dict[str, Any]:
    return {"type": "pageview", "userId": f"u{i}", "timestamp": BASE + i * STEP,
            "properties": props}


def test_hit_then_invalidated_by_events_in_range() -> None:
    eng = make_engine([ev(i, n=i) for i in range(10)])
    params = {"startTime": BASE, "endTime": BASE + 10 * STEP - 1}
    first = analytics.run_count(eng, params)
    assert first["cached"] is False and first["count"] == 10
    again = analytics.run_count(eng, params)
    assert again["cached"] is True and again["count"] == 10
    add(eng, [ev(3, n=99)])  # inside the range: the cached answer is now wrong
    fresh = analytics.run_count(eng, params)
    assert fresh["cached"] is False and fresh["count"] == 11


def test_events_outside_the_range_keep_the_entry() -> None:
    eng = make_engine([ev(i) for i in range(10)])
    params = {"startTime": BASE, "endTime": BASE + 5 * STEP - 1, "interval": "1m"}
    analytics.run_unique_users(eng, params)
    add(eng, [ev(8)])  # after the range
    assert analytics.run_unique_users(eng, params)["cached"] is True
    add(eng, [ev(4)])  # in the last bucket
    out = analytics.run_unique_users(eng, params)
    assert out["cached"] is False


def test_series_cache_and_unbounded_queries() -> None:
    eng = make_engine([ev(i, n=i) for i in range(10)])
    body = {"metric": "n", "aggregation": "sum", "interval": "5m"}
    assert analytics.run_aggregate(eng, body)["total"]["value"] == 45
    assert analytics.run_aggregate(eng, body)["cached"] is True
    add(eng, [ev(50, n=5)])  # extends the data: the unbounded query must see it
    out = analytics.run_aggregate(eng, body)
    assert out["cached"] is False and out["total"]["value"] == 50


def test_ttl_expiry_and_disabled_cache() -> None:
    class Store:
        version = 1

        def changed_since(self, version: int, start: int | None, end: int | None) -> bool:
            return False

    cache = QueryCache(ttl_ms=1000)
    cache.put("k", {"a": 1}, 1, None, None, now=10.0)
    assert cache.get("k", Store(), now=10.5) == {"a": 1}
    assert cache.get("k", Store(), now=11.0) is None
    off = QueryCache(ttl_ms=0)
    off.put("k", {"a": 1}, 1, None, None)
    assert off.get("k", Store()) is None
    eng = Engine(EngineConfig(data_dir=None, cache_ttl_ms=0))
    add(eng, [ev(1)])
    analytics.run_count(eng, {})
    assert analytics.run_count(eng, {})["cached"] is False


def test_lru_bound() -> None:
    class Store:
        version = 1

        def changed_since(self, version: int, start: int | None, end: int | None) -> bool:
            return False

    cache = QueryCache(ttl_ms=60_000, max_entries=2)
    for k in "abc":
        cache.put(k, {k: 1}, 1, None, None)
    assert len(cache) == 2 and cache.get("a", Store()) is None


def test_hyperloglog_error_is_within_bounds() -> None:
    rng = np.random.default_rng(7)
    for n in (10, 1000, 50_000, 300_000):
        values = rng.choice(10_000_000, size=n, replace=False)
        hll = HyperLogLog()
        hll.add(np.concatenate([values, values[: n // 2]]))  # duplicates do not count
        est = hll.estimate()
        assert abs(est - n) <= max(4 * hll.standard_error * n, 1), (n, est)
    a, b = HyperLogLog(), HyperLogLog()
    a.add(np.arange(0, 20_000))
    b.add(np.arange(10_000, 30_000))
    a.merge(b)
    assert abs(a.estimate() - 30_000) <= 4 * a.standard_error * 30_000
