"""`rta serve --demo`'s live trickle continues the history at the history's rate (#23,
finding 4): before, 3-10 events a second against a few every 5 minutes of history made
every chart flat with a spike at "now"."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import trio
import trio.testing

from rta.cli import demo as cli_demo
from rta.cli.demo import DEMO_DAYS, DEMO_EVENTS, DEMO_USERS
from rta.core.demo import generate_arrow, hourly_rates
from rta.core.queries.timeparse import DAY, HOUR

END = 1_790_000_000_000 // DAY * DAY + 15 * HOUR  # 15:00 UTC, the busiest hour


class FakeEngine:
    def __init__(self) -> None:
        self.stamps: list[int] = []
        self.validator = self

    def validate_batch(self, batch: list[dict[str, Any]], now: int) -> tuple[Any, list[Any]]:
        return batch, []

    async def ingest(self, batch: list[dict[str, Any]]) -> None:
        self.stamps += [e["timestamp"] for e in batch]


async def test_trickle_runs_at_the_rate_of_the_history_it_continues(
        autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch) -> None:
    history = generate_arrow(DEMO_EVENTS, users=DEMO_USERS, days=DEMO_DAYS, seed=7,
                             end_ms=END)
    ts = np.asarray(history.column("timestamp"))
    rates = hourly_rates(history, END)
    assert 0.005 < rates.min() < rates.max() < 1.0  # events a second: a few a minute
    monkeypatch.setattr(cli_demo.time, "time", lambda: END / 1000 + trio.current_time())
    engine = FakeEngine()
    pool = generate_arrow(2_000, users=DEMO_USERS, days=1, seed=8, end_ms=END)
    with trio.move_on_after(HOUR / 1000):
        await cli_demo.trickle(engine, pool, rates)  # type: ignore[arg-type]
    sent = len(engine.stamps)
    assert engine.stamps[0] == END  # the first event goes out at once
    # the live hour holds about as many events as the same hour of the history's last days
    # (no cliff, no spike: the old trickle sent 4 a second, 14,400 an hour)
    same_hour = [int(((ts >= END - d * DAY) & (ts < END - d * DAY + HOUR)).sum())
                 for d in range(1, 9)]
    assert abs(sent - np.mean(same_hour[1:])) <= 2  # the week before the last day
    assert 0.5 * min(same_hour) < sent < 1.5 * max(same_hour)
    gaps = np.diff(engine.stamps)
    assert gaps.max() < 30_000  # evenly paced: no long silences
