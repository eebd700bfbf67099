"""The report scheduler: which reports come due when, and a scheduled run end to end in
process (the cron minute brought close by shifting the scheduler's clock)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio

import rta.core.reports as reports
from rta.core.config import EngineConfig
from rta.core.engine import open_engine
from rta.core.reports import Delivery, ReportScheduler
from rta.core.schedule import next_run

T0 = 1_796_000_000_000  # a fixed instant (2026-11-30)


def _doc(**extra: Any) -> dict[str, Any]:
    return {"id": "r1", "schedule": "0 9 * * *", "tz": "Europe/Berlin", "enabled": True,
            "updatedAt": 1, "dashboardId": "d", "to": ["slack:https://hooks.example.com/x"],
            **extra}


def test_due_runs_each_time_once_and_never_for_times_already_past() -> None:
    sched = ReportScheduler(engine=None, delivery=Delivery())  # type: ignore[arg-type]
    doc = _doc()
    first = next_run(doc["schedule"], doc["tz"], T0)
    assert sched.due([doc], T0) == []  # (a new report starts from now)
    assert sched.due([doc], first - 1) == []
    assert sched.due([doc], first) == [(doc, first)]
    assert sched.due([doc], first + 1000) == []  # once
    second = next_run(doc["schedule"], doc["tz"], first)
    assert second - first == 86_400_000
    late = second + 3 * 86_400_000  # the daemon slept through three runs: one catch-up run
    assert sched.due([doc], late) == [(doc, second)]
    assert sched.due([doc], late + 1000) == []
    changed = {**doc, "updatedAt": 2, "schedule": "30 7 * * *"}
    assert sched.due([changed], late + 2000) == []  # rescheduled from now, not run
    assert sched.due([{**changed, "enabled": False}], late + 10 ** 9) == []
    assert sched.due([], late) == [] and not sched._due


def test_only_the_lease_holder_sends_scheduled_runs() -> None:
    from types import SimpleNamespace

    def scheduler(engine: Any) -> ReportScheduler:
        return ReportScheduler(engine, Delivery())

    assert scheduler(SimpleNamespace(alert_lease=None)).sends_scheduled()
    assert scheduler(SimpleNamespace(alert_lease=SimpleNamespace(held=True))).sends_scheduled()
    assert not scheduler(SimpleNamespace(alert_lease=SimpleNamespace(held=False))
                         ).sends_scheduled()


async def test_a_scheduled_run_is_delivered_and_recorded(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    posted: list[tuple[str, dict[str, Any]]] = []
    done = trio.Event()

    async def post(url: str, payload: dict[str, Any]) -> dict[str, Any]:
        posted.append((url, payload))
        done.set()
        return {"status": "delivered", "statusCode": 200}

    real = reports.now_ms
    start = real()
    shift = 59_000 - start % 60_000  # the scheduler's clock starts 1 s before a minute
    monkeypatch.setattr(reports, "now_ms", lambda: real() + shift)
    async with open_engine(EngineConfig(data_dir=str(tmp_path / "d"))) as engine:
        dash = engine.metadata.create("dashboard", {"name": "Ops", "widgets": []})
        doc = engine.metadata.create(reports.KIND, {
            "name": "Ops report", "dashboardId": dash["id"], "schedule": "* * * * *",
            "tz": "UTC", "to": ["slack:https://hooks.example.com/x"], "enabled": True})
        sched = ReportScheduler(engine, Delivery(post_slack=post), tick_s=5)
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(sched.run)
                await done.wait()
                await trio.sleep(0.1)
                nursery.cancel_scope.cancel()
        assert posted[0][0] == "https://hooks.example.com/x"
        assert posted[0][1]["blocks"][0]["text"]["text"] == "Ops report"
        (entry,) = engine.metadata.history(reports.HISTORY_KIND, 10, ref=doc["id"])
        assert entry["trigger"] == "schedule" and entry["status"] == "delivered"
        assert entry["scheduledFor"] % 60_000 == 0
        assert entry["scheduledFor"] == start + shift + 1000
