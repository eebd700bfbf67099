"""Parity of the backend basics and the filter language: counts and unique users under
every operator, on hypothesis-generated logs."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rta.core.queries import analytics
from rta.core.queries.analytics_specs import parse
from tests.clickhouse.event_logs import NOW, PREDICATES, TYPES, event_logs
from tests.clickhouse.harness import Pair, same


def _filters() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional={
        "eventType": st.sampled_from(TYPES),
        "where": st.lists(PREDICATES, min_size=1, max_size=3),
        "operator": st.sampled_from(("AND", "OR")),
        "timeRange": st.sampled_from(("last_7d", "last_30d", "last_24h")),
    })


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(log=event_logs(), params=st.lists(_filters(), min_size=1, max_size=4))
def test_count_and_unique_users_match(log: list[list[dict[str, Any]]],
                                      params: list[dict[str, Any]]) -> None:
    pair = Pair.create()
    try:
        for batch in log:
            pair.ingest(batch, NOW)
        embedded, clickhouse = pair.contexts(NOW)
        assert clickhouse.backend.time_bounds() == embedded.backend.time_bounds()
        for p in params:
            for kind in ("count", "unique-users"):
                q = parse(kind, p, NOW)
                want = analytics.execute(q, embedded).to_json()
                got = analytics.execute(q, clickhouse).to_json()
                same(want, got, f"{kind} {p}")
    finally:
        pair.close()
