"""Parity of paths between the embedded engine and ClickHouse on hypothesis logs (ties by
arrival, repeats, gaps of exactly the window, pages, sessions, filters, saved segments)."""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rta.core.embedded import segments
from rta.core.queries.backend import QueryContext
from rta.core.queries.behaviour import execute, parse
from tests.clickhouse.harness import Pair, same
from tests.clickhouse.test_parity_behaviour import SAVED, _clickhouse_context
from tests.paths_data import NOW, Log, path_bodies, path_logs, reference_answer

SETTINGS = settings(max_examples=int(os.environ.get("RTA_PARITY_EXAMPLES", "15")),
                    deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _answer(body: dict[str, Any], ctx: QueryContext) -> dict[str, Any]:
    return execute(parse("paths", body, ctx.now), ctx).to_json()


@SETTINGS
@given(log=path_logs(), bodies=st.lists(path_bodies(), min_size=1, max_size=4),
       saved=st.booleans())
def test_paths_match(log: Log, bodies: list[dict[str, Any]], saved: bool) -> None:
    pair = Pair.create()
    try:
        for batch in log:
            pair.ingest(batch, NOW)
        if saved:
            segments.create(pair.engine, {"name": SAVED, "filters": [
                {"property": "plan", "operator": "eq", "value": "pro"}]})
        embedded, _ = pair.contexts(NOW)
        clickhouse = _clickhouse_context(pair, NOW)
        for body in bodies:
            if saved:
                body = {**body, "segment": SAVED}
            mine = _answer(body, embedded)
            same(mine, _answer(body, clickhouse), f"paths {body}")
            if not saved:
                want = reference_answer(log, body)
                assert {k: mine[k] for k in want} == want
    finally:
        pair.close()
