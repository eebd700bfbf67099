"""Period comparisons: the tests against scipy, and previous-period figures against counts
and user sets computed in plain Python."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.stats import binomtest

from rta.core.errors import ValidationError
from rta.core.queries import analytics
from rta.core.queries import compare as cmp
from rta.core.queries import formula_query as fq
from rta.core.queries.analytics_specs import parse
from rta.core.queries.backend import QueryContext
from rta.core.queries.compare_stats import binom_test_half, mcnemar_test, poisson_test
from tests.core.test_analytics import BASE, STEP, make_engine

SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
NOW = BASE + 100 * STEP


# -- statistics against scipy ------------------------------------------------------------

@SETTINGS
@given(x=st.integers(0, 400), y=st.integers(0, 400))
def test_poisson_test_is_scipys_exact_binomial(x: int, y: int) -> None:
    got = poisson_test(x, y).p_value
    want = binomtest(x, x + y, 0.5).pvalue if x + y else 1.0
    assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-300)


@pytest.mark.parametrize(("x", "n"), [(4_990, 10_000), (49_990_000, 100_000_000),
                                      (1_000_000, 2_005_000), (3, 5_000_000), (0, 50),
                                      (7, 7), (123_456, 250_000)])
def test_binomial_p_large_counts(x: int, n: int) -> None:
    assert math.isclose(binom_test_half(x, n), binomtest(x, n, 0.5).pvalue,
                        rel_tol=1e-6, abs_tol=1e-300)


@SETTINGS
@given(b=st.integers(0, 300), c=st.integers(0, 300), both=st.integers(0, 50))
def test_mcnemar_is_the_binomial_on_discordant_users(b: int, c: int, both: int) -> None:
    sig = mcnemar_test(b, c, both)
    want = binomtest(b, b + c, 0.5).pvalue if b + c else 1.0
    assert math.isclose(sig.p_value, want, rel_tol=1e-9, abs_tol=1e-300)
    assert sig.to_json()["significant"] == (want < 0.05)


# -- previous periods --------------------------------------------------------------------

def _ctx(events: list[dict[str, Any]]) -> QueryContext:
    from rta.core import query_services

    return query_services.context(make_engine(events), now=NOW)


def _run(kind: str, params: dict[str, Any], ctx: QueryContext) -> dict[str, Any]:
    params, mode = cmp.split_compare(params, kind)
    assert mode == "previous_period"
    q = parse(kind, params, NOW)
    r = analytics.execute(q, ctx)
    return {**r.to_json(), "comparison": cmp.compare(q, r, ctx).to_json()}


event_st = st.lists(st.fixed_dictionaries({
    "type": st.sampled_from(["pageview", "click"]),
    "userId": st.sampled_from(["u1", "u2", "u3", "u4", "u5"]),
    "timestamp": st.one_of(st.integers(0, 60).map(lambda i: BASE + i * STEP),
                           st.integers(0, 60 * STEP).map(lambda o: BASE + o))}),
    max_size=60)


def _in(events: list[dict[str, Any]], lo: int, hi: int, etype: str = "pageview"
        ) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == etype and lo <= e["timestamp"] < hi]


@SETTINGS
@given(events=event_st, length=st.sampled_from([10 * STEP, 17 * STEP + 1, 30 * STEP]))
def test_count_compare(events: list[dict[str, Any]], length: int) -> None:
    start = BASE + 60 * STEP - length
    out = _run("count", {"type": "pageview", "startTime": start,
                         "endTime": BASE + 60 * STEP - 1, "compare": "previous_period"},
               _ctx(events))
    c = out["comparison"]
    cur = len(_in(events, start, start + length))
    prev = len(_in(events, start - length, start))
    assert out["count"] == cur and c["value"] == prev and c["shiftMs"] == length
    assert (c["startTime"], c["endTime"]) == (start - length, start - 1)
    assert c["absoluteChange"] == cur - prev
    assert c["relativeChange"] == (None if prev == 0 else (cur - prev) / prev)
    want = binomtest(cur, cur + prev, 0.5).pvalue if cur + prev else 1.0
    assert math.isclose(c["significance"]["pValue"], want, rel_tol=1e-9)
    assert c["significance"]["test"] == "poisson_exact_conditional"


@SETTINGS
@given(events=event_st, length=st.sampled_from([10 * STEP, 17 * STEP + 1, 23 * STEP]),
       interval=st.sampled_from([None, 5 * STEP]))
def test_unique_users_compare_mcnemar(events: list[dict[str, Any]], length: int,
                                      interval: int | None) -> None:
    start = BASE + 60 * STEP - length
    params: dict[str, Any] = {"type": "pageview", "startTime": start,
                              "endTime": BASE + 60 * STEP - 1, "compare": "previous_period"}
    if interval:
        params["interval"] = interval
    out = _run("unique-users", params, _ctx(events))
    c = out["comparison"]
    shift = length if interval is None else -(-length // interval) * interval
    assert c["shiftMs"] == shift
    cur = {e["userId"] for e in _in(events, start, start + length)}
    prev = {e["userId"] for e in _in(events, start - shift, start + length - shift)}
    assert out["uniqueUsers"] == len(cur) and c["value"] == len(prev)
    sig = c["significance"]
    assert (sig["onlyCurrent"], sig["onlyPrevious"], sig["both"]) == (
        len(cur - prev), len(prev - cur), len(cur & prev))
    b, d = len(cur - prev), len(prev - cur)
    assert math.isclose(sig["pValue"], binomtest(b, b + d, 0.5).pvalue if b + d else 1.0)
    if interval:
        assert len(c["buckets"]) == len(out["buckets"])
        for cb, b_ in zip(c["buckets"], out["buckets"], strict=True):
            assert cb["timestamp"] == b_["timestamp"] - shift
            lo, hi = max(cb["timestamp"], start - shift), min(cb["timestamp"] + interval,
                                                              start + length - shift)
            assert cb["value"] == len({e["userId"] for e in _in(events, lo, hi)})


@SETTINGS
@given(events=event_st, interval=st.sampled_from([STEP, 5 * STEP, 7 * STEP]))
def test_series_compare_aligns_buckets(events: list[dict[str, Any]], interval: int) -> None:
    length = 20 * STEP
    start = BASE + 60 * STEP - length
    out = _run("aggregate", {"eventType": "pageview", "interval": interval,
                             "startTime": start, "endTime": start + length - 1,
                             "compare": "previous_period"}, _ctx(events))
    c = out["comparison"]
    shift = -(-length // interval) * interval
    assert c["shiftMs"] == shift
    assert len(c["buckets"]) == len(out["buckets"])
    for cur, prev in zip(out["buckets"], c["buckets"], strict=True):
        assert prev["timestamp"] == cur["timestamp"] - shift
        lo = max(prev["timestamp"], start - shift)
        hi = min(prev["timestamp"] + interval, start + length - shift)
        assert prev["value"] == len(_in(events, lo, hi))
        assert prev["absoluteChange"] == cur["value"] - prev["value"]
    total_prev = len(_in(events, start - shift, start + length - shift))
    assert c["value"] == total_prev
    assert c["significance"]["test"] == "poisson_exact_conditional"


def test_formula_compare() -> None:
    events = [{"type": t, "userId": "u1", "timestamp": BASE + i * STEP}
              for i, t in enumerate(["pageview", "click", "pageview", "click", "click",
                                     "pageview", "pageview", "click"])]
    ctx = _ctx(events)
    body = {"series": [{"name": "A", "eventType": "pageview"},
                       {"name": "B", "eventType": "click"}],
            "formula": "A / B", "interval": "2m", "startTime": BASE + 4 * STEP,
            "endTime": BASE + 8 * STEP - 1}
    q = fq.parse_formula_query(body, NOW)
    r = fq.execute(q, ctx)
    c = cmp.compare(q, r, ctx).to_json()
    assert r.total == 2 / 2 and c["value"] == 2 / 2 and c["shiftMs"] == 4 * STEP
    assert [b["value"] for b in c["buckets"]] == [1.0, 1.0]
    assert [b["value"] for b in r.to_json()["buckets"]] == [1.0, 1.0]
    assert c["significance"] is None and c["absoluteChange"] == 0


def test_sum_has_change_but_no_test() -> None:
    events = [{"type": "buy", "userId": "u1", "timestamp": BASE + i * STEP,
               "properties": {"m": i}} for i in range(10)]
    out = _run("aggregate", {"eventType": "buy", "aggregation": "sum", "metric": "m",
                             "interval": "5m", "startTime": BASE + 5 * STEP,
                             "endTime": BASE + 10 * STEP - 1, "compare": "previous_period"},
               _ctx(events))
    c = out["comparison"]
    assert c["value"] == 0 + 1 + 2 + 3 + 4 and out["total"]["value"] == 5 + 6 + 7 + 8 + 9
    assert c["relativeChange"] == (35 - 10) / 10 and c["significance"] is None


def test_empty_store_compares_to_nothing() -> None:
    out = _run("count", {"compare": "previous_period"}, _ctx([]))
    assert out["comparison"]["value"] is None and out["comparison"]["shiftMs"] is None


@pytest.mark.parametrize(("kind", "value"), [("aggregate", "last_week"), ("top", "previous_period"),
                                             ("count", 3)])
def test_bad_compare(kind: str, value: Any) -> None:
    with pytest.raises(ValidationError) as info:
        cmp.split_compare({"compare": value}, kind)
    assert info.value.details[0]["field"] == "compare"
