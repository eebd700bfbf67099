"""The sharding check (#17 item 5): the same events split by the hash of the user into two
tables (as a cluster's `Distributed` table shards them), each shard answering on its own,
the per-shard partial aggregates added up: equal to the unsharded answer. This is what makes
per-user work (funnels, retention, segments, distinct users) correct on a cluster: a user's
events are all on one shard, so nothing per user has to travel."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings

from rta.core.clickhouse.backend import ClickHouseBackend
from rta.core.queries import behaviour
from rta.core.queries.backend import QueryContext
from rta.core.queries.filters import EventFilter
from tests.clickhouse.event_logs import NOW, T0, TYPES, Log, event_logs
from tests.clickhouse.harness import Pair

SHARDS = 2


def _split(pair: Pair) -> list[ClickHouseBackend]:
    db = f"`{pair.ch.database}`"
    backends = []
    for shard in range(SHARDS):
        pair.ch.command(f"CREATE TABLE {db}.events_s{shard} AS {db}.events")
        pair.ch.command(f"INSERT INTO {db}.events_s{shard} SELECT * FROM {db}.events "
                        f"WHERE cityHash64(ifNull(user, '')) % {SHARDS} = {shard}")
        backends.append(ClickHouseBackend(pair.ch, table=f"events_s{shard}"))
    return backends


def _funnel_counts(ctx: QueryContext, body: dict[str, Any]) -> list[int]:
    result = behaviour.execute(behaviour.parse("funnel", body, NOW), ctx).to_json()
    return [step["count"] for step in result["steps"]]


def _cohort_counts(ctx: QueryContext, body: dict[str, Any]) -> list[list[int | None]]:
    result = behaviour.execute(behaviour.parse("cohort", body, NOW), ctx).to_json()
    return [[row["size"], *row["counts"]] for row in result["cohorts"]]


def _add(a: list[Any], b: list[Any]) -> list[Any]:
    if not a:
        return b
    return [_add(x, y) if isinstance(x, list) else (None if x is None else x + y)
            for x, y in zip(a, b, strict=True)]


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(log=event_logs(min_size=2))
def test_shard_partials_add_up_to_the_whole(log: Log) -> None:
    pair = Pair.create()
    try:
        for batch in log:
            pair.ingest(batch, NOW)
        whole = ClickHouseBackend(pair.ch)
        shards = _split(pair)
        flt = EventFilter(start=T0, end=NOW)
        assert sum(s.count(flt) for s in shards) == whole.count(flt)
        users = [s.unique_users(flt) for s in shards]
        assert tuple(map(sum, zip(*users, strict=True))) == whole.unique_users(flt)
        funnel = {"steps": [{"eventType": TYPES[0]}, {"eventType": TYPES[1]},
                            {"eventType": TYPES[2]}], "startTime": T0, "endTime": NOW,
                  "window": 7 * 86_400_000}
        cohort = {"entryEvent": TYPES[0], "retentionEvent": TYPES[3], "periods": 5,
                  "periodLength": 86_400_000, "startTime": T0, "endTime": NOW}
        contexts = [QueryContext(s, None, NOW) for s in shards]
        whole_ctx = QueryContext(whole, None, NOW)
        summed: list[Any] = []
        for ctx in contexts:
            summed = _add(summed, _funnel_counts(ctx, funnel))
        assert summed == _funnel_counts(whole_ctx, funnel)
        summed = []
        for ctx in contexts:
            summed = _add(summed, _cohort_counts(ctx, cohort))
        assert summed == _cohort_counts(whole_ctx, cohort)
    finally:
        pair.close()
