"""Reports on ClickHouse: the same report content from both backends on generated events
(headline figures, the previous period, tables), and reports, their delivery history and
silences kept in the shared ClickHouse metadata store."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from rta.core.clickhouse.metadata_store import ClickHouseMetadataStore
from rta.core.dashboards import Pinned
from rta.core.report_content import build_report
from rta.core.reports import HISTORY_KIND, KIND, Delivery, ReportScheduler, validate_report
from rta.core.silences import active_silence, validate_silence
from rta.core.targets import parse_target
from tests.clickhouse.event_logs import NOW, Log, event_logs
from tests.clickhouse.harness import Pair, chdb_database, same

DASHBOARD: dict[str, Any] = {"id": "d1", "name": "Mixed", "timeRange": "last_15d", "widgets": [
    {"type": "counter", "title": "Purchases",
     "dataSource": {"type": "count", "eventType": "purchase"}},
    {"type": "gauge", "title": "Average amount",
     "dataSource": {"type": "aggregation", "metric": "amount", "aggregation": "avg"}},
    {"type": "line-chart", "title": "Amount by plan",
     "dataSource": {"type": "aggregation", "metric": "amount", "aggregation": "sum",
                    "groupBy": "plan", "limit": 2}},
    {"type": "bar-chart", "title": "Views by page",
     "dataSource": {"type": "count", "eventType": "pageview", "groupBy": "page"}},
    {"type": "line-chart", "title": "Users",
     "dataSource": {"type": "unique_users"}},
    {"type": "table", "title": "Top pages",
     "dataSource": {"type": "top", "property": "page", "n": 3}},
    {"type": "pie-chart", "title": "Types", "dataSource": {"type": "count", "groupBy": "type"}},
]}


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(log=event_logs(min_size=3, max_size=60))
def test_report_content_matches(log: Log) -> None:
    pair = Pair.create()
    try:
        for batch in log:
            pair.ingest(batch, NOW)
        embedded, clickhouse = (build_report(Pinned(ctx), DASHBOARD)
                                for ctx in pair.contexts(NOW))
        assert embedded["errors"] == []
        same(clickhouse, embedded)
        assert [h["title"] for h in embedded["headlines"]][:2] == ["Purchases", "Average amount"]
        assert [t["title"] for t in embedded["tables"]] == ["Views by page", "Top pages", "Types"]
    finally:
        pair.close()


def test_reports_history_and_silences_in_the_shared_store() -> None:
    ch = chdb_database()
    try:
        one, two = ClickHouseMetadataStore(ch), ClickHouseMetadataStore(ch)
        dash = one.create("dashboard", {"name": "Ops", "widgets": []})
        doc = validate_report({"dashboardId": dash["id"], "schedule": "0 9 * * 1",
                               "tz": "Europe/Berlin", "to": ["email:ops@example.com"]},
                              SimpleNamespace(metadata=two))  # type: ignore[arg-type]
        stored = one.create(KIND, doc)
        assert two.get(KIND, stored["id"])["schedule"] == "0 9 * * 1"
        sched = ReportScheduler(SimpleNamespace(metadata=two), Delivery())  # type: ignore[arg-type]
        base = {"reportId": stored["id"], "runId": "x", "trigger": "manual",
                "scheduledFor": None}
        sched._record(base, parse_target("email:ops@example.com", "to"), 1,
                      {"status": "failed", "error": "no", "retryable": True})
        sched._record(base, parse_target("email:ops@example.com", "to"), 2,
                      {"status": "delivered"})
        history = one.history(HISTORY_KIND, 10, ref=stored["id"])
        assert [(h["attempt"], h["status"]) for h in history] == [(2, "delivered"),
                                                                  (1, "failed")]
        silence = one.create("silence", validate_silence({"for": "2h"}, None, NOW))
        assert active_silence(two, "any-alert", NOW + 1000)["id"] == silence["id"]
        assert active_silence(two, "any-alert", NOW + 3 * 3_600_000) is None
        two.delete(KIND, stored["id"])
        with pytest.raises(Exception, match="no report"):
            one.get(KIND, stored["id"])
    finally:
        ch.command(f"DROP DATABASE IF EXISTS `{ch.database}`")
