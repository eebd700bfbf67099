"""Parity of what dashboards and alerts ask of a backend: the weekday x hour heatmap, raw
timestamps, property kinds per type, and whole alert backtests (threshold and anomaly)."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rta.core.alerts import Rule, validate_alert
from rta.core.alerts import backtest as backtest_result
from rta.core.queries.filters import EventFilter, Group, Predicate
from tests.clickhouse.event_logs import DAY, NOW, T0, TYPES, Log, event_logs
from tests.clickhouse.harness import Pair, same

MEASURES = (("count", None), ("unique_users", None), ("sum", "amount"), ("avg", "amount"),
            ("min", "mixed"), ("max", "amount"), ("count", "amount"))


def backtest(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """The backtest's answer as the API shows it (its typed result's JSON)."""
    return backtest_result(*args, **kwargs).to_json()


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(log=event_logs(), offset=st.sampled_from((0, 120, -300, 330)),
       etype=st.one_of(st.none(), st.sampled_from(TYPES)))
def test_heatmap_timestamps_and_property_kinds_match(log: Log, offset: int,
                                                     etype: str | None) -> None:
    pair = Pair.create()
    try:
        for batch in log:
            pair.ingest(batch, NOW)
        embedded, clickhouse = (c.backend for c in pair.contexts(NOW))
        where = Group("and", (Predicate("page", "neq", "/"),))
        for flt in (EventFilter(), EventFilter(types=(etype,) if etype else None, where=where,
                                               start=T0 + DAY, end=NOW)):
            for measure, metric in MEASURES:
                want = embedded.heatmap(flt, measure, metric, offset * 60_000)
                got = clickhouse.heatmap(flt, measure, metric, offset * 60_000)
                np.testing.assert_allclose(got, want, rtol=1e-9, equal_nan=True,
                                           err_msg=f"{measure} {metric} {flt}")
            for metric in (None, "amount", "mixed"):
                wt, wv = embedded.timestamps(flt, metric)
                gt, gv = clickhouse.timestamps(flt, metric)
                order_w = np.lexsort((np.nan_to_num(wv, nan=-1e300) if wv is not None
                                      else wt, wt))
                order_g = np.lexsort((np.nan_to_num(gv, nan=-1e300) if gv is not None
                                      else gt, gt))
                np.testing.assert_array_equal(gt[order_g], wt[order_w])
                if metric is not None:
                    assert wv is not None and gv is not None
                    np.testing.assert_allclose(gv[order_g], wv[order_w], equal_nan=True)
        assert clickhouse.total_events() == embedded.total_events()
        for key in ("page", "amount", "mixed", "nope", "plan"):
            for t in (None, etype, "missing-type"):
                assert clickhouse.property_kinds(t, key) == embedded.property_kinds(t, key), \
                    (t, key)
        for t in (None, etype, "missing-type"):
            assert clickhouse.known_properties(t) == embedded.known_properties(t), t
    finally:
        pair.close()


def _rule(condition: dict[str, Any]) -> Rule:
    return Rule.from_doc({**validate_alert({"name": "r", "cooldown": 0, "notification": {
        "channels": ["log"]}, "condition": condition}), "id": "r1"})


RULES = (
    {"type": "threshold", "eventType": "pageview", "property": "count", "operator": "gt",
     "threshold": 1, "timeWindow": 6 * 3_600_000},
    {"type": "threshold", "property": "amount", "aggregation": "avg", "operator": "gte",
     "threshold": 100, "timeWindow": DAY},
    {"type": "anomaly", "property": "count", "timeWindow": 3_600_000},
)


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(log=event_logs(min_size=2))
def test_alert_backtests_match(log: Log) -> None:
    pair = Pair.create()
    try:
        for batch in log:
            pair.ingest(batch, NOW)
        embedded, clickhouse = (c.backend for c in pair.contexts(NOW))
        for condition in RULES:
            rule = _rule(condition)
            same(backtest(rule, embedded, T0, NOW), backtest(rule, clickhouse, T0, NOW),
                 str(condition))
    finally:
        pair.close()
