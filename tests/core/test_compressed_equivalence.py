"""Compressed, lazily decoded segments answer exactly as dense in-memory blocks do.

The oracle tests elsewhere mostly run on in-memory stores; here the same event logs go into
an in-memory engine and into one with a data directory (small MAX_EVENTS: several sealed,
zstd-compressed segments), reopened so every segment is read back from disk and decoded with
no cache, and every query family must give identical answers."""

from __future__ import annotations

import tempfile
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rta.core.config import EngineConfig
from rta.core.embedded.eventlist import list_events
from rta.core.embedded.store.segment import LazyBlock
from rta.core.engine import Engine
from rta.core.queries import analytics, behaviour
from rta.core.queries.filters import EventFilter
from tests.core.test_funnel_data import NOW, T0, event_logs, make_engine

DAY = 86_400_000


def answers(eng: Engine) -> dict[str, Any]:
    span = {"startTime": T0 - 10, "endTime": T0 + 400}
    return {
        "count": analytics.run_count(eng, {"groupBy": "type", **span}),
        "series": analytics.run_aggregate(eng, {"interval": 50, **span}),
        "avg": analytics.run_aggregate(eng, {"interval": 100, "metric": "k",
                                             "aggregation": "avg", **span}),
        "p90": analytics.run_aggregate(eng, {"interval": 100, "metric": "x",
                                             "aggregation": "p90", **span}),
        "users": analytics.run_unique_users(eng, {"interval": 100, **span}),
        "top": analytics.run_top(eng, {"property": "page", "n": 3, **span}),
        "where": analytics.run_count(eng, {"where": {"page": "/a"}, **span}),
        "funnel": behaviour.run_funnel(eng, {
            "steps": [{"name": t, "eventType": t} for t in ("a", "b", "c")],
            "timeLimit": 120, "order": "ordered"}, NOW),
        "cohort": behaviour.run_cohort(eng, {
            "name": "r", "entryEvent": "a", "retentionEvent": "b", "periods": 3,
            "periodLength": 100, "startTime": T0 - 10, "endTime": T0 + 400}, NOW),
        "events": list_events(eng.snapshot(), EventFilter(), limit=1000).events,
    }


@st.composite
def rich_logs(draw: st.DrawFn) -> list[dict[str, Any]]:
    """`event_logs` plus a string, a float and a sometimes-missing property."""
    events = draw(event_logs(max_size=60))
    for e in events:
        e["properties"]["page"] = draw(st.sampled_from(["/a", "/b", "/c"]))
        if draw(st.booleans()):
            e["properties"]["x"] = draw(st.floats(-1e6, 1e6, allow_nan=False))
    return events


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(events=rich_logs(), max_events=st.integers(3, 25))
def test_sealed_compressed_segments_answer_like_dense_blocks(
        events: list[dict[str, Any]], max_events: int) -> None:
    dense = make_engine(events, max_events=10**6)
    expected = answers(dense)
    dense.close()
    with tempfile.TemporaryDirectory() as tmp:
        make_engine(events, max_events=max_events, data_dir=tmp).close()  # seals on close
        reopened = Engine(EngineConfig(data_dir=tmp, max_events=max_events, fsync=False,
                                       column_cache_mb=0))  # (no cache: every read decodes)
        try:
            segments = reopened.store.segments
            assert bool(segments) == bool(events) and not reopened.store.stats()["headEvents"]
            assert all(isinstance(s.block, LazyBlock) for s in segments)
            assert answers(reopened) == expected
        finally:
            reopened.close()
