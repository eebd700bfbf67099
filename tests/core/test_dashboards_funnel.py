"""The funnel widget reads a snapshot pruned to its range: its answer must not change."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rta.core import dashboards as dash
from rta.core.config import EngineConfig
from rta.core.dashboards.widgets import _funnel_view
from rta.core.embedded import funnel
from rta.core.embedded.funnel import windowed_snapshot
from rta.core.engine import Engine
from rta.core.events import EventValidator
from rta.core.queries.timeparse import DAY, HOUR, now_ms

NOW = now_ms()
TYPES = ["pageview", "click", "purchase", "signup"]


def make_events(n: int, seed: int, span: int) -> list[dict[str, Any]]:
    """Events over `span` ms before NOW, in time order (so sealed blocks cover time slices)."""
    rng = random.Random(seed)
    stamps = sorted(NOW - rng.randint(0, span) for _ in range(n))
    out = []
    for i, ts in enumerate(stamps):
        ev: dict[str, Any] = {"id": f"f{seed}-{i}", "type": rng.choice(TYPES),
                              "userId": f"u{rng.randint(1, 12)}", "timestamp": ts,
                              "properties": {"page": rng.choice(["/", "/a", "/b"])}}
        if rng.random() < 0.8:
            ev["sessionId"] = f"s{rng.randint(1, 30)}"
        out.append(ev)
    return out


def build(tmp: Path, events: list[dict[str, Any]]) -> Engine:
    eng = Engine(EngineConfig(data_dir=str(tmp / "data"), max_events=40))
    validator = EventValidator()
    for lo in range(0, len(events), 40):  # one batch per block, in time order
        batch, rejected = validator.validate_batch(events[lo:lo + 40], now=NOW)
        assert not rejected
        eng.store.append(batch)
    return eng


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(0, 300), seed=st.integers(0, 10_000),
       time_range=st.sampled_from(["last_1h", "last_24h", "last_7d", "last_30d"]),
       order=st.sampled_from(["ordered", "strict", "any"]),
       unit=st.sampled_from(["users", "sessions"]),
       limit=st.sampled_from([HOUR, 6 * HOUR, DAY, 3 * DAY]),
       filtered=st.booleans())
def test_funnel_widget_equals_the_funnel_over_every_block(
        tmp_path_factory: pytest.TempPathFactory, n: int, seed: int, time_range: str,
        order: str, unit: str, limit: int, filtered: bool) -> None:
    events = make_events(n, seed, 10 * DAY)
    eng = build(tmp_path_factory.mktemp("f"), events)
    try:
        steps: list[dict[str, Any]] = [{"name": "seen", "eventType": "pageview"},
                                       {"name": "clicked", "eventType": "click"},
                                       {"name": "bought", "eventType": "purchase"}]
        if filtered:
            steps[1]["filters"] = {"page": "/a"}
        src = {"type": "funnel", "steps": steps, "timeLimit": limit, "order": order,
               "countBy": unit}
        doc = dash.validate_dashboard({"name": "f", "widgets": [
            {"type": "funnel", "dataSource": src}]})
        out = dash.resolve_dashboard(eng, doc, time_range, now=NOW)
        widget = out["widgets"][0]
        assert widget["error"] is None, widget["error"]
        win = widget["window"]
        body = {"steps": steps, "startTime": win["start"], "endTime": win["end"] - 1,
                "timeLimit": limit, "order": order, "countBy": unit}
        snap = eng.snapshot()
        full = funnel.result(snap, funnel.parse(body, NOW, eng, snap))
        assert widget["data"] == _funnel_view(full)
        # the reference above read every block; so does a naive count of step-1 entrants
        entrants = {e["userId"] if unit == "users" else e.get("sessionId") for e in events
                    if e["type"] == "pageview" and win["start"] <= e["timestamp"] < win["end"]}
        entrants.discard(None)
        assert widget["data"]["steps"][0]["count"] == len(entrants)
    finally:
        eng.close()


def test_windowed_snapshot_drops_only_blocks_outside_the_range(tmp_path: Path) -> None:
    events = make_events(400, 7, 10 * DAY)
    eng = build(tmp_path, events)
    try:
        snap = eng.snapshot()
        live = [b for b in snap.blocks if b.n]
        lo, hi = NOW - DAY, NOW + DAY
        pruned = windowed_snapshot(snap, lo, hi)
        assert 0 < len(pruned.blocks) < len(live)
        assert all(b.max_ts >= lo and b.min_ts <= hi for b in pruned.blocks)
        assert [b for b in live if b.max_ts >= lo and b.min_ts <= hi] == pruned.blocks
        # the store's dictionaries, through a distinct object (its own user-index cache)
        assert pruned.dicts is not snap.dicts and pruned.dicts.users is snap.dicts.users
        assert windowed_snapshot(snap, lo, hi).dicts is pruned.dicts
        assert windowed_snapshot(snap, NOW - 30 * DAY, hi) is snap
    finally:
        eng.close()
