"""The engine's query services, read in one place: backend, result cache, saved segments.

Queries and their callers reach these through here rather than through `engine.extensions`
directly, so when `Engine` carries them as typed attributes each accessor becomes one line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rta.core.embedded.backend import EmbeddedBackend
from rta.core.queries.backend import QueryContext, SegmentResolver
from rta.core.queries.query_cache import QueryCache
from rta.core.queries.timeparse import now_ms

if TYPE_CHECKING:
    from rta.core.embedded.store.snapshot import Snapshot
    from rta.core.engine import Engine


def now() -> int:
    """The query clock (ms): one reading per request, shared by parsing and execution."""
    return now_ms()


def query_cache(engine: Engine) -> QueryCache:
    """The engine's result cache (created on first use with the configured TTL)."""
    cache = engine.extensions.get("query_cache")
    if not isinstance(cache, QueryCache):
        cache = QueryCache(engine.config.cache_ttl_ms)
        engine.extensions["query_cache"] = cache
    return cache


def segment_resolver(engine: Engine) -> SegmentResolver | None:
    """Saved segment name -> members, when the server has published the resolver."""
    resolver: SegmentResolver | None = engine.extensions.get("segment_resolver")
    return resolver


def context(engine: Engine, now: int | None = None,
            snap: Snapshot | None = None) -> QueryContext:
    """A query context over `snap` (default: a fresh `engine.snapshot()`)."""
    snap = engine.snapshot() if snap is None else snap
    return QueryContext(EmbeddedBackend(engine, snap), segment_resolver(engine),
                        now_ms() if now is None else now)
