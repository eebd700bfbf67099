"""Alert metrics (a query's value per window): the values against plain-Python references
(funnel conversion with ties and repeats, unique users, day-N retention, formulas), the
anomaly baselines, backtests, and the runner applying outcomes to the rule's state."""

from __future__ import annotations

import math
from typing import Any

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rta.core import alert_metrics as am
from rta.core.alerts import AlertEvaluator, Rule, validate_alert
from rta.core.config import EngineConfig
from rta.core.engine import Engine
from rta.core.query_services import context

T0 = 1_700_000_000_000
H = 3_600_000
SETTINGS = settings(max_examples=30, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def engine_with(events: list[dict[str, Any]]) -> Engine:
    eng = Engine(EngineConfig(data_dir=None))
    if events:
        batch, rejected = eng.validator.validate_batch(events, now=T0 + 1000 * H)
        assert not rejected
        eng.store.append(batch)
    return eng


def rule_for(metric: dict[str, Any], window: int = H, **cond: Any) -> Rule:
    body = {"name": "m", "cooldown": 0, "notification": {"channels": ["log"]},
            "condition": {"type": "threshold", "operator": "lt", "threshold": 50,
                          "timeWindow": window, "metric": metric, **cond}}
    return Rule.from_doc({**validate_alert(body), "id": "r"})


def value(rule: Rule, eng: Engine, end: int) -> float | None:
    v = am.window_value(rule, context(eng, now=end), end)
    return None if math.isnan(v) else v


events_st = st.lists(st.tuples(st.sampled_from(["visit", "signup", "other"]),
                               st.sampled_from(["u1", "u2", "u3", "u4"]),
                               st.integers(0, 40)), max_size=40)


@SETTINGS
@given(raw=events_st, limit=st.sampled_from([5, 10, 100]), end=st.integers(10, 45))
def test_funnel_conversion_matches_python(raw: list[tuple[str, str, int]], limit: int,
                                          end: int) -> None:
    """Two ordered steps counted by users: a user converts when a signup follows (later, or
    tied and sent later) one of their visits in the window within timeLimit, before the
    window's end. Minutes on a coarse grid make ties and repeats common."""
    m = 60_000
    events = [{"type": t, "userId": u, "timestamp": T0 + x * m} for t, u, x in raw]
    eng = engine_with(events)
    metric = {"kind": "funnel", "steps": ["visit", "signup"], "timeLimit": limit * m}
    rule = rule_for(metric, window=20 * m)
    stop = T0 + end * m
    entered, converted = set(), set()
    for i, (t, u, x) in enumerate(raw):
        ts = T0 + x * m
        if t != "visit" or not stop - 20 * m <= ts < stop:
            continue
        entered.add(u)
        if any(t2 == "signup" and u2 == u and (x2, j) > (x, i) and T0 + x2 * m <= ts + limit * m
               and T0 + x2 * m < stop for j, (t2, u2, x2) in enumerate(raw)):
            converted.add(u)
    want = round(100 * len(converted) / len(entered), 2) if entered else None
    assert value(rule, eng, stop) == want
    by_name = rule_for({**metric, "step": "signup"}, window=20 * m)
    assert value(by_name, eng, stop) == want
    eng.close()


@SETTINGS
@given(raw=events_st, end=st.integers(10, 45))
def test_unique_users_and_formula_match_python(raw: list[tuple[str, str, int]],
                                               end: int) -> None:
    m = 60_000
    eng = engine_with([{"type": t, "userId": u, "timestamp": T0 + x * m} for t, u, x in raw])
    stop = T0 + end * m
    inside = [(t, u) for t, u, x in raw if stop - 20 * m <= T0 + x * m < stop]
    users = rule_for({"kind": "unique_users", "eventType": "visit"}, window=20 * m)
    assert value(users, eng, stop) == len({u for t, u in inside if t == "visit"})
    formula = rule_for({"kind": "formula", "formula": "S / V * 100", "series": [
        {"name": "S", "eventType": "signup"}, {"name": "V", "eventType": "visit"}]},
        window=20 * m)
    s = sum(1 for t, _ in inside if t == "signup")
    v = sum(1 for t, _ in inside if t == "visit")
    got = value(formula, eng, stop)
    assert (got is None and v == 0) or (got is not None and math.isclose(got, s / v * 100))
    eng.close()


def test_day_n_retention_counts_completed_cohorts() -> None:
    """Day cohorts: u1, u2 enter on day 0 (u1 back on day 1), u3 on day 1 (back on day 2),
    u4 on day 2 (its day 1 has not ended at the evaluation time, so it is left out)."""
    d = 24 * H
    events = [{"type": "signup", "userId": "u1", "timestamp": T0 + 10},
              {"type": "signup", "userId": "u2", "timestamp": T0 + 20},
              {"type": "open", "userId": "u1", "timestamp": T0 + d + 5},
              {"type": "signup", "userId": "u3", "timestamp": T0 + d + 7},
              {"type": "open", "userId": "u3", "timestamp": T0 + 2 * d + 9},
              {"type": "signup", "userId": "u4", "timestamp": T0 + 2 * d + 11},
              {"type": "open", "userId": "u4", "timestamp": T0 + 2 * d + 12}]
    eng = engine_with(events)
    start = T0 - T0 % d
    rule = rule_for({"kind": "retention", "entryEvent": "signup", "retentionEvent": "open",
                     "day": 1}, window=3 * d)
    assert value(rule, eng, start + 3 * d) == pytest.approx(100 * 2 / 3)
    eng.close()


stick_st = st.lists(st.tuples(st.sampled_from(["visit", "visit", "other"]),
                              st.sampled_from(["u1", "u2", "u3", "u4", "u5"]),
                              st.integers(0, 6 * 24)), max_size=50)


@SETTINGS
@given(raw=stick_st, end=st.integers(24, 7 * 24), days=st.integers(1, 4),
       k=st.integers(1, 5), where=st.booleans())
def test_stickiness_share_matches_python(raw: list[tuple[str, str, int]], end: int, days: int,
                                         k: int, where: bool) -> None:
    """Percent of the window's users of `visit` active on >= k distinct UTC days inside the
    window (events at hour granularity: window edges and day edges cut through them)."""
    events = [{"type": t, "userId": u, "timestamp": T0 + x * H, "properties": {"n": x % 3}}
              for t, u, x in raw]
    eng = engine_with(events)
    metric: dict[str, Any] = {"kind": "stickiness", "eventType": "visit", "minPeriods": k}
    if where:
        metric["where"] = [{"property": "n", "operator": "neq", "value": 0}]
    k = min(k, days + 1)
    metric["minPeriods"] = k
    rule = rule_for(metric, window=days * 24 * H)
    stop = T0 + end * H
    active: dict[str, set[int]] = {}
    for t, u, x in raw:
        ts = T0 + x * H
        if t == "visit" and stop - days * 24 * H <= ts < stop and (not where or x % 3 != 0):
            active.setdefault(u, set()).add(ts // (24 * H))
    want = (round(100 * sum(len(d) >= k for d in active.values()) / len(active), 2)
            if active else None)
    assert value(rule, eng, stop) == want
    eng.close()


def test_stickiness_validation_names_the_field() -> None:
    from rta.core.errors import ValidationError

    for metric, field in (
            ({"kind": "stickiness", "eventType": "visit", "minPeriods": 9}, "minPeriods"),
            ({"kind": "stickiness", "eventType": "visit", "minPeriods": "2"}, "minPeriods"),
            ({"kind": "stickiness", "eventType": "visit", "interval": "month"}, "interval"),
            ({"kind": "stickiness", "minPeriods": 2}, "eventType"),
            ({"kind": "stickiness", "eventType": "v", "startTime": 1}, "startTime"),
            ({"kind": "stickiness", "eventType": "v", "bogus": 1}, "bogus")):
        with pytest.raises(ValidationError) as err:
            rule_for(metric, window=7 * 24 * H)
        assert err.value.details[0]["field"] == f"condition.metric.{field}", (metric, err.value)
    assert rule_for({"kind": "stickiness", "eventType": "v", "minPeriods": 8},
                    window=7 * 24 * H).metric is not None


def test_stickiness_backtest_fires_when_users_stop_coming_back() -> None:
    """Ten users visit every day for a week, then each only once: the share on >= 2 of the
    last 3 days drops from 100% to 0 and the threshold (< 50) fires once."""
    d = 24 * H
    start = T0 - T0 % d
    events = [{"type": "visit", "userId": f"u{i}", "timestamp": start + day * d + 5 * H}
              for i in range(10) for day in range(7)]
    events += [{"type": "visit", "userId": f"u{i}", "timestamp": start + (7 + i % 3) * d + H}
               for i in range(10)]
    eng = engine_with(events)
    rule = rule_for({"kind": "stickiness", "eventType": "visit", "minPeriods": 2},
                    window=3 * d, evaluateEvery="6h")
    result = am.backtest(rule, context(eng, now=start + 11 * d), start + 4 * d, start + 11 * d)
    firings = result.to_json()["firings"]
    assert len(firings) == 1 and firings[0]["value"] < 50
    assert start + 8 * d < firings[0]["firedAt"] <= start + 10 * d + 6 * H
    eng.close()


def test_anomaly_on_unique_users_fires_on_a_spike() -> None:
    """Five users an hour for a day, then fifty: the aligned hourly baselines see ~5."""
    events = [{"type": "visit", "userId": f"u{h}-{i}", "timestamp": T0 + h * H + i * 1000}
              for h in range(30) for i in range(5 if h != 28 else 50)]
    eng = engine_with(events)
    rule = rule_for({"kind": "unique_users", "eventType": "visit"}, window=H,
                    type="anomaly", evaluateEvery="10m", baselineWindows=24,
                    minBaselinePoints=5)
    start = T0 - T0 % H
    result = am.backtest(rule, context(eng, now=start + 30 * H), start + 27 * H,
                         start + 30 * H)
    firings = result.to_json()["firings"]
    assert firings and firings[0]["value"] == 50 and firings[0]["zScore"] > 3
    # (hour 28's visits are at 13:20 past the hour: the first 10-minute step whose window
    # holds all fifty is 20 minutes past)
    assert firings[0]["firedAt"] == start + 28 * H + 20 * 60_000
    assert result.step_ms == 600_000
    eng.close()


async def test_runner_applies_outcomes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The runner evaluates a due metric rule in a worker thread and moves its state;
    counter rules are untouched by it and metric rules get no counters."""
    now = T0 + 10 * H
    eng = engine_with([{"type": "visit", "userId": f"u{i}", "timestamp": now - 1000}
                       for i in range(3)])
    monkeypatch.setattr("rta.core.alerts.now_ms", lambda: now)
    monkeypatch.setattr(am, "TICK_S", 0.01)
    ev = AlertEvaluator(eng)
    doc = eng.metadata.create("alert", validate_alert({
        "name": "few users", "cooldown": 0, "notification": {"channels": ["log"]},
        "condition": {"type": "threshold", "operator": "lt", "threshold": 5,
                      "timeWindow": "1h", "evaluateEvery": "1s",
                      "metric": {"kind": "unique_users", "eventType": "visit"}}}))
    state = ev.load(doc)
    assert not state.ring.count.any()
    ev.evaluate_all(now)  # counter evaluation skips metric rules
    assert state.evaluations == 0
    with trio.move_on_after(2):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(am.run_metric_rules, ev, lambda t: context(eng, now=t))
            while state.evaluations == 0:
                await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
    assert state.status == "firing" and state.last_value == 3.0
    eng.close()
