"""Alert rules: validation, window aggregates vs a naive recount (hypothesis), the ring of
counters vs a from-scratch build, backtests vs a naive replay, the evaluator's state machine
(for, cooldown, resolve) and anomaly detection on spikes vs noise."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rta.core.alerts as alerts_mod
from rta.core.alerts import (
    AlertEvaluator,
    Buckets,
    Ring,
    Rule,
    robust_z,
    validate_alert,
    window_values,
)
from rta.core.alerts import (
    backtest as backtest_result,
)
from rta.core.config import EngineConfig
from rta.core.engine import Engine
from rta.core.errors import ValidationError
from rta.core.query_services import context

SEED_EXAMPLE = {
    "name": "High Error Rate", "enabled": True,
    "condition": {"type": "threshold", "eventType": "error", "property": "count",
                  "operator": "gt", "threshold": 100, "timeWindow": 300000},
    "notification": {"channels": ["websocket", "log", "webhook"], "severity": "critical",
                     "message": "Error rate exceeded threshold!",
                     "webhookUrl": "https://hooks.example.com/alerts"},
    "cooldown": 60000}


def backtest(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """The backtest's answer as the API shows it (its typed result's JSON)."""
    return backtest_result(*args, **kwargs).to_json()


def rule_from(body: dict[str, Any], rid: str = "r1") -> Rule:
    return Rule.from_doc({**validate_alert(body), "id": rid})


def threshold_body(**cond: Any) -> dict[str, Any]:
    base = {"type": "threshold", "eventType": "e", "property": "count", "operator": "gt",
            "threshold": 1, "timeWindow": 5000}
    return {"name": "t", "condition": {**base, **cond}, "cooldown": 0,
            "notification": {"channels": ["websocket"]}}


def test_seed_example_validates_unchanged() -> None:
    doc = validate_alert(SEED_EXAMPLE)
    assert doc["condition"]["aggregation"] == "count"
    assert doc["condition"]["threshold"] == 100.0
    assert doc["notification"]["webhookUrl"] == "https://hooks.example.com/alerts"
    assert doc["cooldown"] == 60000
    rule = rule_from(SEED_EXAMPLE)
    assert rule.bucket_ms == 1000 and rule.window_buckets == 300


@pytest.mark.parametrize(("patch", "field"), [
    ({"condition": {**SEED_EXAMPLE["condition"], "operator": "bigger"}}, "condition.operator"),
    ({"condition": {**SEED_EXAMPLE["condition"], "type": "magic"}}, "condition.type"),
    ({"notification": {**SEED_EXAMPLE["notification"], "webhookUrl": "ftp://x/y"}},
     "notification.webhookUrl"),
    ({"notification": {**SEED_EXAMPLE["notification"], "webhookUrl": "javascript:alert(1)"}},
     "notification.webhookUrl"),
    ({"notification": {"channels": ["webhook"]}}, "notification.webhookUrl"),
    ({"notification": {"channels": ["sms"]}}, "notification.channels[0]"),
    ({"condition": {"type": "threshold", "eventType": "x"}}, "condition.threshold"),
    ({"condition": {**SEED_EXAMPLE["condition"], "aggregation": "sum"}}, "condition.property"),
    ({"condition": {**SEED_EXAMPLE["condition"], "timeWindow": "soon"}}, "condition.timeWindow"),
    ({"condition": {**SEED_EXAMPLE["condition"], "threshold": "high"}}, "condition.threshold"),
    ({"name": ""}, "name"),
    ({"cooldown": -5}, "cooldown"),
])
def test_bad_alerts_name_the_field(patch: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        validate_alert({**SEED_EXAMPLE, **patch})
    assert info.value.details[0]["field"] == field


def test_bucket_size_grows_with_the_window() -> None:
    assert rule_from(threshold_body(timeWindow="10m")).bucket_ms == 1000
    day = rule_from(threshold_body(timeWindow="1d"))
    assert day.bucket_ms == 144_000 and day.window_buckets == 600


events_strategy = st.lists(st.tuples(st.integers(0, 59), st.floats(-50, 50)), max_size=80)


@settings(max_examples=80, deadline=None)
@given(events=events_strategy, agg=st.sampled_from(["count", "sum", "avg", "min", "max", "p95"]),
       w=st.integers(1, 12))
def test_window_values_match_a_naive_recount(events: list[tuple[int, float]], agg: str,
                                             w: int) -> None:
    prop = "count" if agg == "count" else "v"
    rule = rule_from(threshold_body(property=prop, aggregation=agg, timeWindow=w * 1000))
    n = 60
    b_idx = np.array([e[0] for e in events], dtype=np.int64)
    vals = None if agg == "count" else np.array([e[1] for e in events])
    b = Buckets.build(0, n, b_idx, vals, agg == "p95")
    got = window_values(rule, b, np.arange(n))
    for end in range(n):
        window = [v for (bk, v) in events if end - w + 1 <= bk <= end]
        if agg == "count":
            want = float(len(window))
        elif not window:
            want = 0.0 if agg == "sum" else math.nan
        else:
            want = {"sum": sum(window), "avg": sum(window) / len(window), "min": min(window),
                    "max": max(window), "p95": float(np.percentile(window, 95))}[agg]
        if math.isnan(want):
            assert math.isnan(got[end])
        else:
            assert got[end] == pytest.approx(want, rel=1e-9, abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(events=st.lists(st.tuples(st.integers(0, 40), st.floats(-9, 9)), max_size=60),
       chunks=st.integers(1, 6))
def test_ring_matches_a_build_from_scratch(events: list[tuple[int, float]], chunks: int) -> None:
    ring = Ring(16, keep_values=True)
    newest = 40
    for part in np.array_split(np.arange(len(events)), chunks):
        sel = [events[i] for i in part]
        ring.add(np.array([e[0] for e in sel], dtype=np.int64),
                 np.array([e[1] for e in sel]), newest)
    # only buckets inside the ring's horizon survive (the newest 16 - FUTURE_BUCKETS)
    first = newest - 10
    got = ring.extract(first, 11)
    keep = [e for e in events if e[0] >= first]
    want = Buckets.build(first, 11, np.array([e[0] for e in keep], dtype=np.int64),
                         np.array([e[1] for e in keep]), True)
    np.testing.assert_allclose(got.count, want.count)
    np.testing.assert_allclose(got.total, want.total, atol=1e-9)
    np.testing.assert_array_equal(got.low, want.low)
    np.testing.assert_array_equal(got.high, want.high)
    assert got.values is not None and want.values is not None
    for a, b in zip(got.values, want.values, strict=True):
        np.testing.assert_allclose(np.sort(a), np.sort(b))


def test_robust_z() -> None:
    base = np.array([10, 11, 9, 10, 12, 8, 10, np.nan])
    z, med, scale = robust_z(30, base)
    assert med == 10 and scale == pytest.approx(max(1.4826 * 1.0, 1.2533 * 8 / 7))
    assert z == pytest.approx(20 / scale)
    assert robust_z(10, np.array([5.0, 5, 5]))[0] == math.inf  # flat baseline: any change
    assert robust_z(5, np.array([5.0, 5, 5]))[0] == 0
    assert robust_z(10, np.array([4.0, 4, 4]), counts=True) == (3.0, 4.0, 2.0)  # Poisson floor


# -- engine-backed --------------------------------------------------------------------------

T0 = 1_700_000_000_000


def engine_with(events: list[dict[str, Any]]) -> Engine:
    eng = Engine(EngineConfig(data_dir=None))
    if events:
        batch, rejected = eng.validator.validate_batch(events, now=T0 + 10_000_000)
        assert not rejected
        eng.store.append(batch)
    return eng


def naive_backtest(rule: Rule, events: list[dict[str, Any]], start: int, end: int
                   ) -> list[int]:
    """Evaluation times (bucket ends) where a threshold rule breaches, recomputed per point."""
    bms = rule.bucket_ms
    out = []
    for b in range(start // bms, (end - 1) // bms + 1):
        lo = (b - rule.window_buckets + 1) * bms
        hi = (b + 1) * bms
        vals = [e.get("properties", {}).get("v") for e in events
                if e["type"] == rule.event_type and lo <= e["timestamp"] < hi]
        if rule.counts_events:
            value: float = len(vals)
        else:
            nums = [v for v in vals if v is not None]
            if not nums and agg_empty_is_zero(rule):
                nums = [0]
            if not nums:
                continue
            value = {"sum": sum(nums), "avg": sum(nums) / len(nums), "max": max(nums),
                     "min": min(nums)}[rule.aggregation]
        import operator as op

        cmp = {"gt": op.gt, "gte": op.ge, "lt": op.lt, "lte": op.le}[rule.operator or "gt"]
        if cmp(value, rule.threshold):
            out.append(hi)
    return out


def agg_empty_is_zero(rule: Rule) -> bool:
    return rule.aggregation == "sum"  # the sum over no events is 0; avg/min/max undefined


@settings(max_examples=40, deadline=None)
@given(seconds=st.lists(st.tuples(st.integers(0, 119), st.integers(0, 20)), max_size=60),
       agg=st.sampled_from(["count", "sum", "avg", "max", "min"]),
       threshold=st.integers(0, 30), window=st.integers(1, 20))
def test_backtest_matches_a_naive_replay(seconds: list[tuple[int, int]], agg: str,
                                         threshold: int, window: int) -> None:
    events = [{"type": "e", "userId": "u", "timestamp": T0 + s * 1000 + 17,
               "properties": {"v": v}} for s, v in seconds]
    events += [{"type": "other", "timestamp": T0 + 5000, "properties": {"v": 999}}]
    prop = "count" if agg == "count" else "v"
    body = threshold_body(property=prop, aggregation=agg, threshold=threshold,
                          timeWindow=window * 1000, operator="gte")
    rule = rule_from(body)
    eng = engine_with(events)
    start, end = T0, T0 + 120_000
    result = backtest(rule, context(eng).backend, start, end)
    breach_times = naive_backtest(rule, events, start, end)
    assert result["breachingEvaluations"] == len(breach_times)
    # firings start at the beginning of each run of consecutive breaching points
    runs = [t for i, t in enumerate(breach_times) if i == 0 or breach_times[i - 1] != t - 1000]
    assert [f["firedAt"] for f in result["firings"]] == runs
    eng.close()


def test_backtest_for_and_cooldown() -> None:
    # errors at 10/s during seconds 10-19 and 40-44, none otherwise
    events = [{"type": "e", "timestamp": T0 + s * 1000 + i} for s in [*range(10, 20),
                                                                       *range(40, 45)]
              for i in range(10)]
    eng = engine_with(events)
    rule = rule_from({**threshold_body(threshold=5, timeWindow=1000), "for": 3000})
    result = backtest(rule, context(eng).backend, T0, T0 + 60_000)
    assert [f["firedAt"] for f in result["firings"]] == [T0 + 14_000, T0 + 44_000]
    assert [f["resolvedAt"] for f in result["firings"]] == [T0 + 21_000, T0 + 46_000]
    cooled = rule_from({**threshold_body(threshold=5, timeWindow=1000), "cooldown": 60_000})
    result = backtest(cooled, context(eng).backend, T0, T0 + 60_000)
    assert [f["notified"] for f in result["firings"]] == [True, False]
    assert result["wouldHaveFired"]
    eng.close()


class Sink:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def __call__(self, payload: dict[str, Any]) -> None:
        self.sent.append(payload)


async def test_evaluator_fires_respects_cooldown_and_resolves(
        monkeypatch: pytest.MonkeyPatch) -> None:
    eng = engine_with([])
    sink = Sink()
    ev = AlertEvaluator(eng, publish=sink)
    eng.on_ingest(ev.on_ingest)
    doc = eng.metadata.create("alert", validate_alert(
        {**threshold_body(threshold=3, timeWindow=2000), "cooldown": 10_000}))
    ev.load(doc)
    state = ev.states[doc["id"]]
    now = T0 + 10_000_000

    async def burst(t: int, n: int) -> None:
        batch, _ = eng.validator.validate_batch(
            [{"type": "e", "timestamp": t} for _ in range(n)], now=t)
        await eng.ingest(batch)

    # the ring is relative to the wall clock: drive it by hand
    clock = {"now": now}
    monkeypatch.setattr(alerts_mod, "now_ms", lambda: clock["now"])
    try:
        ev.evaluate_all(now)
        assert state.status == "ok" and not sink.sent
        await burst(now, 5)
        ev.evaluate_all(now)
        assert state.status == "firing"
        assert [p["event"] for p in sink.sent] == ["fired"]
        assert sink.sent[0]["value"] == 5
        clock["now"] = now + 3000
        ev.evaluate_all(now + 3000)  # the window moved past the burst
        assert state.status == "resolved"
        assert [p["event"] for p in sink.sent] == ["fired", "resolved"]
        clock["now"] = now + 5000
        await burst(now + 5000, 5)
        ev.evaluate_all(now + 5000)  # fires again inside the cooldown: no notification
        assert state.status == "firing"
        assert [p["event"] for p in sink.sent] == ["fired", "resolved"]
        clock["now"] = now + 6000
        ev.evaluate_all(now + 6000)
        await burst(now + 10_500, 5)
        clock["now"] = now + 10_500
        ev.evaluate_all(now + 10_500)  # still firing, cooldown over: repeat notification
        assert [p["event"] for p in sink.sent] == ["fired", "resolved", "fired"]
        history = eng.metadata.history("alert", 10)
        assert [h["event"] for h in history][::-1] == ["fired", "resolved", "fired", "fired"]
        assert history[1].get("suppressed") is True
        assert ev.stats()["alertsTriggered"] == 2
        assert ev.stats()["activeAlerts"] == 1
    finally:
        eng.close()


async def test_evaluator_waits_out_for() -> None:
    eng = engine_with([])
    sink = Sink()
    ev = AlertEvaluator(eng, publish=sink)
    doc = eng.metadata.create("alert", validate_alert(
        {**threshold_body(threshold=0, operator="gte", timeWindow=1000), "for": 2000}))
    state = ev.load(doc)
    now = T0
    ev.evaluate_all(now)
    assert state.status == "pending"
    ev.evaluate_all(now + 1999)
    assert state.status == "pending" and not sink.sent
    ev.evaluate_all(now + 2000)
    assert state.status == "firing" and [p["event"] for p in sink.sent] == ["fired"]
    eng.close()


async def test_notifications_state_the_window_evaluated(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The window is whole buckets ending now: an event leaves it up to one bucket early,
    and the resolving notification's `window` shows the range that no longer holds it."""
    eng = engine_with([])
    sink = Sink()
    ev = AlertEvaluator(eng, publish=sink)
    eng.on_ingest(ev.on_ingest)
    state = ev.load(eng.metadata.create("alert", validate_alert(
        threshold_body(threshold=0, timeWindow=2000))))
    now = T0 + 10_000_000  # (a whole second)
    clock = {"now": now}
    monkeypatch.setattr(alerts_mod, "now_ms", lambda: clock["now"])
    try:
        batch, _ = eng.validator.validate_batch([{"type": "e", "timestamp": now + 900}],
                                                now=now + 900)
        await eng.ingest(batch)
        for t, value in ((now + 900, 1), (now + 1999, 1), (now + 2500, 0)):
            clock["now"] = t
            ev.evaluate_all(t)
            assert state.last_value == value, t
        assert [p["event"] for p in sink.sent] == ["fired", "resolved"]
        assert sink.sent[0]["window"] == {"start": now - 1000, "end": now + 900}
        window = sink.sent[1]["window"]
        assert window == {"start": now + 1000, "end": now + 2500}
        assert not window["start"] <= now + 900 <= window["end"]
    finally:
        eng.close()


def test_disabling_an_alert_keeps_its_trigger_count() -> None:
    eng = engine_with([])
    ev = AlertEvaluator(eng, publish=Sink())
    doc = eng.metadata.create("alert", validate_alert(
        threshold_body(threshold=0, operator="gte", timeWindow=1000)))
    ev.load(doc)
    ev.evaluate_all(T0)
    assert ev.states[doc["id"]].triggered == 1
    off = ev.load({**doc, "enabled": False})
    assert off.triggered == 1 and off.status == "ok"
    assert ev.load({**doc, "enabled": True}).triggered == 1
    eng.close()


def anomaly_rule(**cond: Any) -> Rule:
    return rule_from({"name": "a", "cooldown": 0, "notification": {"channels": ["log"]},
                      "condition": {"type": "anomaly", "eventType": "e", "property": "count",
                                    "timeWindow": 1000, **cond}})


def noisy_events(seed: int, seconds: int, spike_at: int | None = None) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    out = []
    for s in range(seconds):
        n = int(rng.poisson(50))
        if s == spike_at:
            n = 400
        out += [{"type": "e", "timestamp": T0 + s * 1000 + i % 1000} for i in range(n)]
    return out


def test_anomaly_fires_on_a_spike_and_stays_quiet_on_noise() -> None:
    spiky = engine_with(noisy_events(1, 60, spike_at=40))
    result = backtest(anomaly_rule(), context(spiky).backend, T0 + 25_000, T0 + 60_000)
    assert [f["firedAt"] for f in result["firings"]] == [T0 + 41_000]
    assert result["firings"][0]["zScore"] > 3
    assert backtest(anomaly_rule(direction="down"), context(spiky).backend, T0 + 25_000,
                    T0 + 60_000)["firings"] == []
    # too little history: no verdict
    short = backtest(anomaly_rule(minBaselinePoints=12), context(spiky).backend, T0 + 1000,
                     T0 + 10_000)
    assert short["firings"] == []
    spiky.close()
    # Poisson noise: at z >= 3 a few per thousand evaluations may fire (that is what a
    # 3-sigma rule means); every injected spike is caught.
    noise_breaches = evaluations = caught = 0
    for seed in range(8):
        eng = engine_with(noisy_events(100 + seed, 60, spike_at=30 + seed * 3))
        res = backtest(anomaly_rule(), context(eng).backend, T0 + 25_000, T0 + 60_000)
        spike_end = T0 + (31 + seed * 3) * 1000
        caught += any(f["firedAt"] == spike_end for f in res["firings"])
        noise_breaches += sum(1 for f in res["firings"] if f["firedAt"] != spike_end)
        evaluations += res["evaluations"]
        eng.close()
    assert caught == 8
    assert noise_breaches <= 0.01 * evaluations


def test_anomaly_needs_history_of_its_own_metric() -> None:
    """A type seen for the first time has no baseline (other types' older events do not
    make its empty past zeros); a sparse count needs more than one event to be anomalous."""
    other = [{"type": "other", "timestamp": T0 + s * 1000} for s in range(40)]
    first_ever = engine_with([*other, {"type": "e", "timestamp": T0 + 30_500}])
    assert backtest(anomaly_rule(), context(first_ever).backend, T0 + 26_000,
                    T0 + 40_000)["firings"] == []
    first_ever.close()
    seen_before = [*other, {"type": "e", "timestamp": T0 + 10_500}]
    one = engine_with([*seen_before, {"type": "e", "timestamp": T0 + 30_500}])
    assert backtest(anomaly_rule(), context(one).backend, T0 + 26_000, T0 + 40_000)["firings"] == []
    one.close()
    burst = engine_with([*seen_before, *({"type": "e", "timestamp": T0 + 30_000 + i}
                                         for i in range(5))])
    fired = backtest(anomaly_rule(), context(burst).backend, T0 + 26_000, T0 + 40_000)["firings"]
    assert [(f["firedAt"], f["zScore"]) for f in fired] == [(T0 + 31_000, 5.0)]
    burst.close()


async def test_live_anomaly_matches_backtest(monkeypatch: pytest.MonkeyPatch) -> None:
    events = noisy_events(3, 40, spike_at=39)
    eng = engine_with([])
    ev = AlertEvaluator(eng)
    eng.on_ingest(ev.on_ingest)
    monkeypatch.setattr(alerts_mod, "now_ms", lambda: T0 + 39_500)
    try:
        state = ev.load(eng.metadata.create("alert", validate_alert({
            "name": "a", "cooldown": 0, "notification": {"channels": ["log"]},
            "condition": {"type": "anomaly", "eventType": "e", "timeWindow": 1000}})))
        batch, _ = eng.validator.validate_batch(events, now=T0 + 39_500)
        await eng.ingest(batch)
        ev.evaluate(state, T0 + 39_999)
        assert state.status == "firing"
        assert state.last_detail["value"] == 400
        assert state.last_detail["zScore"] > 3
    finally:
        eng.close()


def test_parse_backtest_is_pure_and_names_the_field() -> None:
    from rta.core.alerts import parse_backtest

    doc = {**validate_alert({"name": "n", "condition": {"threshold": 1}}), "id": "a1"}
    q = parse_backtest(doc, {"timeRange": "last_1h", "notify": True}, T0)
    assert (q.start, q.end, q.notify, q.rule.id) == (T0 - 3_600_000, T0 + 1, True, "a1")
    assert (parse_backtest(doc, {}, T0).start, parse_backtest(doc, {}, T0).end) == (
        T0 - 86_400_000, T0)
    with pytest.raises(ValidationError) as bad:
        parse_backtest(doc, None, T0)
    assert bad.value.details == [{"field": ""}]
    with pytest.raises(ValidationError) as late:
        parse_backtest(doc, {"startTime": T0, "endTime": T0 - 1}, T0)
    assert late.value.details[0]["field"] == "startTime"


async def test_counter_rules_filter_by_person_properties(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A rule's `where` on `person.<key>` counts the ingested events whose person has it."""
    eng = engine_with([])
    sink = Sink()
    ev = AlertEvaluator(eng, publish=sink)
    eng.on_ingest(ev.on_ingest)
    body = threshold_body(threshold=2, timeWindow=2000)
    body["condition"]["filters"] = [{"property": "person.plan", "value": "pro"}]
    doc = eng.metadata.create("alert", validate_alert(body))
    ev.load(doc)
    state = ev.states[doc["id"]]
    now = T0 + 10_000_000
    monkeypatch.setattr(alerts_mod, "now_ms", lambda: now)
    batch, _ = eng.validator.validate_batch(
        [{"type": "e", "userId": "p", "timestamp": now, "properties": {"$set": {"plan": "pro"}}},
         {"type": "e", "userId": "p", "timestamp": now},
         {"type": "e", "userId": "f", "timestamp": now, "properties": {"$set": {"plan": "x"}}},
         {"type": "e", "userId": "p", "timestamp": now}], now=now)
    await eng.ingest(batch)
    ev.evaluate_all(now)
    assert state.status == "firing" and sink.sent[0]["value"] == 3
