"""Parity of person properties: the same logs with `$set`/`$set_once`/`$unset` updates and
identity links through both backends. The embedded engine reads `person.<key>` as virtual
columns of its person-aware blocks; ClickHouse merges `person_props` (shipped as the
daemon ships it) into the events' maps in its events source. Every query family of the
reference test (`tests/core/test_person_props_reference.py`), in both identity modes, and
exports (with the events' own columns) must agree."""

from __future__ import annotations

import io
import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rta.core.errors import RtaError
from rta.core.export import Export, parse_export
from rta.core.export_clickhouse import ClickHouseExport
from rta.core.identity import RAW, identity_mode
from rta.core.person_shipper import ship_all as ship_links
from rta.core.profile_shipper import ship_all as ship_props
from rta.core.queries import analytics
from rta.core.queries.analytics_specs import parse as parse_analytics
from tests.clickhouse.harness import Pair, same
from tests.clickhouse.test_parity_behaviour import _answer, _clickhouse_context
from tests.core.test_person_props_reference import DAY, T0, build, event, link, queries

NOW = T0 + 30 * DAY
SETTINGS = settings(max_examples=int(os.environ.get("RTA_PARITY_EXAMPLES", "5")),
                    deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
ANALYTICS = {"count": "count", "unique": "unique-users", "top": "top",
             "aggregate": "aggregate"}


def _run(kind: str, body: dict[str, Any], ctx: Any) -> Any:
    if kind in ANALYTICS:
        try:
            return analytics.execute(parse_analytics(ANALYTICS[kind], body, NOW), ctx).to_json()
        except RtaError as exc:
            return {"error": str(exc)}
    return _answer(kind, body, ctx)


@SETTINGS
@given(events=st.lists(event, min_size=1, max_size=30), links=st.lists(link, max_size=6),
       raw=st.booleans())
def test_person_properties_match_in_every_family(events: list[Any], links: list[Any],
                                                 raw: bool) -> None:
    pair = Pair.create()
    try:
        pair.ingest(build(events, links, False), NOW)
        ship_links(pair.ch, pair.engine.persons)  # (what the daemon's shippers send)
        ship_props(pair.ch, pair.engine.profiles)
        token = identity_mode.set(RAW) if raw else None
        try:
            embedded = pair.contexts(NOW)[0]
            clickhouse = _clickhouse_context(pair, NOW)
            for kind, body in queries("person."):
                if kind == "export":
                    spec = parse_export({**body, "fields": ["id", "userId", "type"]}, NOW)
                    ours = Export(pair.engine.snapshot(), spec, now=0)
                    theirs = ClickHouseExport(pair.ch, spec, now=0)
                    a, b = io.BytesIO(), io.BytesIO()
                    ours.write_to(a)
                    theirs.write_to(b)
                    assert sorted(b.getvalue().splitlines()) == \
                        sorted(a.getvalue().splitlines()), body
                    continue
                same(_run(kind, body, embedded), _run(kind, body, clickhouse),
                     f"{kind} {body}")
            # every column an export writes without `fields`: the events' own properties
            spec = parse_export({"format": "ndjson", "filter": {"where": [
                {"property": "person.plan", "operator": "exists"}]}}, NOW)
            assert Export(pair.engine.snapshot(), spec, now=0).columns == \
                ClickHouseExport(pair.ch, spec, now=0).columns
        finally:
            if token is not None:
                identity_mode.reset(token)
    finally:
        pair.close()
