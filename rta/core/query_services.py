"""The engine's query services, read in one place: backend, result cache, saved segments.

Queries and their callers reach the engine's services through these accessors only, so a
change in how `Engine` holds them (now `engine.services`) is one line here.

Thread rule: build a context on the event loop (it takes the snapshot the whole query
reads), then run the query in a worker thread.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from rta.core.embedded import segments
from rta.core.embedded.backend import EmbeddedBackend
from rta.core.embedded.segments import resolve_codes
from rta.core.queries.backend import QueryContext, SegmentResolver
from rta.core.queries.query_cache import QueryCache
from rta.core.queries.timeparse import now_ms

if TYPE_CHECKING:
    from rta.core.clickhouse.backend import ClickHouseBackend
    from rta.core.embedded.store.snapshot import Snapshot
    from rta.core.engine import Engine


def now() -> int:
    """The query clock (ms): one reading per request, shared by parsing and execution."""
    return now_ms()


def query_cache(engine: Engine) -> QueryCache:
    """The engine's result cache."""
    return engine.services.query_cache


def segment_resolver(engine: Engine, snap: Snapshot) -> SegmentResolver:
    """Saved segment name -> members evaluated over `snap`, the query's own snapshot, so a
    query reads one consistent view (KeyError for an unknown name)."""
    return partial(resolve_codes, engine, snap=snap)


def context(engine: Engine, now: int | None = None,
            snap: Snapshot | None = None) -> QueryContext:
    """A query context over `snap` (default: a fresh `engine.snapshot()`), or over ClickHouse
    when it holds the history (`backend = "clickhouse"`)."""
    clock = now_ms() if now is None else now
    if engine.clickhouse is not None and snap is None:
        return clickhouse_context(engine, clock)
    snap = engine.snapshot() if snap is None else snap
    return QueryContext(EmbeddedBackend(engine, snap), segment_resolver(engine, snap), clock,
                        engine.groups.known_types)


def clickhouse_context(engine: Engine, now: int) -> QueryContext:
    """Queries answered by ClickHouse SQL; saved segments evaluated there too (members travel
    as user ids)."""
    from rta.core.clickhouse.backend import ClickHouseBackend
    from rta.core.clickhouse.view import Barrier

    assert engine.clickhouse is not None
    shipper = engine.clickhouse.shipper
    wait_events = partial(shipper.wait_shipped, engine.clickhouse.ack_mark())
    people = engine.person_shipper
    wait_links = None if people is None else partial(people.wait_shipped, people.mark())
    profiles = engine.profile_shipper
    wait_props = None if profiles is None else partial(profiles.wait_shipped, profiles.mark())

    def ready() -> None:  # read-your-writes: events, then identity links and person
        wait_events()     # properties, sent before now
        if wait_links is not None:
            wait_links()
        if wait_props is not None:
            wait_props()

    backend = ClickHouseBackend(engine.clickhouse.ch, version=shipper.version,
                                changes=shipper.changed_since, clock=lambda: shipper.version,
                                ready=Barrier(ready))

    return QueryContext(backend, clickhouse_segments(engine, backend), now,
                        engine.groups.known_types)


def clickhouse_segments(engine: Engine, backend: ClickHouseBackend) -> SegmentResolver:
    """Saved segment name -> members evaluated by ClickHouse SQL (user id strings)."""
    def resolve(name: str) -> np.ndarray:
        from rta.core.clickhouse import segment_sql

        doc = engine.metadata.find_by_name(segments.KIND, name)
        if doc is None:
            raise KeyError(name)
        return segment_sql.members(backend.view, segments.parse_segment(doc, ""))

    return resolve


def save_segment(engine: Engine, definition: dict[str, Any]) -> dict[str, Any]:
    """Store a segment definition (409 on a name clash); the stored document."""
    return segments.create(engine, definition)
