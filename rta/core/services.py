"""The engine's services as typed attributes, built in one explicit order.

Two stages, because two kinds of caller open an engine:

- `Services` (every engine, built in `Engine.__init__`): the token store, the query result
  cache, the saved-segment resolver and its cache, and the `/stats` sections. Local
  commands (`rta ingest --local`, `rta token --data-dir`, benchmarks) need these and nothing
  else.
- `Serving` (an engine that serves, built once by `Engine.start_serving`): the live metrics,
  the live hub (which needs the segment resolver) and the alert evaluator (which publishes
  to the hub and notifies through the webhook sender the server supplies). Building them
  registers their ingest listeners and background tasks, so a local command never runs the
  alert loop.

Each service is created before anything that uses it, so nothing waits for another to
appear.

Thread rule: built and wired on the event loop, in the order above; the query cache and the
segment resolver are also called from query worker threads (the cache locks itself; the
segment cache is a dict of immutable arrays, written whole).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import trio

from rta.core.alerts import AlertEvaluator, WebhookSender
from rta.core.auth import TokenStore
from rta.core.events import EventBatch
from rta.core.live import LiveHub, LiveMetrics
from rta.core.queries.query_cache import QueryCache
from rta.core.share_links import ShareLinkStore

if TYPE_CHECKING:
    from rta.core.engine import Engine

log = logging.getLogger("rta.services")

StatsProvider = Callable[[], dict[str, Any]]
# (segment id, updatedAt, snapshot version, person mapping version)
SegmentCache = dict[tuple[str, int, int, int], np.ndarray]
# `/stats` sections in the order the API has always listed them; others follow.
STATS_ORDER = ("queryCache", "alerts", "export", "websocket")
DEFAULT_WS_QUEUE = 256
DEFAULT_EVENTS_RATE = 1000.0


class SegmentResolver:
    """name -> user codes (int32) of a saved segment; KeyError for an unknown name.

    Call it on the event-loop thread (it takes a snapshot), like every snapshot.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def __call__(self, name: str) -> np.ndarray:
        from rta.core.embedded.segments import resolve_codes  # the kernels import the engine
        return resolve_codes(self._engine, name)


@dataclass
class Services:
    """What every engine has; see the module docstring for the order."""

    tokens: TokenStore
    query_cache: QueryCache
    segment_cache: SegmentCache
    segment_resolver: SegmentResolver
    shares: ShareLinkStore
    stats_providers: dict[str, StatsProvider] = field(default_factory=dict)

    @classmethod
    def build(cls, engine: Engine) -> Services:
        cache = QueryCache(engine.config.cache_ttl_ms)
        services = cls(tokens=TokenStore(engine.metadata), query_cache=cache,
                       segment_cache={}, segment_resolver=SegmentResolver(engine),
                       shares=ShareLinkStore(engine.metadata))
        services.stats_providers["queryCache"] = cache.statistics
        return services

    def stats_sections(self) -> dict[str, StatsProvider]:
        """The `/stats` sections a service contributes, in the API's order."""
        known = [name for name in STATS_ORDER if name in self.stats_providers]
        rest = [name for name in self.stats_providers if name not in STATS_ORDER]
        return {name: self.stats_providers[name] for name in known + rest}


@dataclass(frozen=True)
class ServingOptions:
    """What the server decides about the live services (from settings or environment)."""

    ws_queue: int = DEFAULT_WS_QUEUE
    live_events_rate: float = DEFAULT_EVENTS_RATE
    notifier: WebhookSender | None = None  # only the server can build one (HTTP client)


@dataclass
class Serving:
    """The services of an engine that serves: built once, in this order."""

    live_metrics: LiveMetrics
    live_hub: LiveHub
    alerts: AlertEvaluator

    @classmethod
    def build(cls, engine: Engine, options: ServingOptions) -> Serving:
        metrics = LiveMetrics()
        hub = LiveHub(max_queue=int(options.ws_queue), events_rate=options.live_events_rate,
                      dicts=engine.store.dicts, version=engine.version,
                      segments=engine.services.segment_resolver)

        def publish(payload: dict[str, Any]) -> None:
            hub.publish("alerts", payload)

        alerts = AlertEvaluator(engine, interval_ms=engine.config.alert_interval_ms,
                                publish=publish, send_webhook=options.notifier)
        serving = cls(metrics, hub, alerts)
        engine.on_ingest(alerts.on_ingest)
        engine.on_ingest(_guarded(metrics.on_ingest))
        engine.on_ingest(_guarded(hub.on_ingest))
        engine.services.stats_providers["alerts"] = alerts.stats
        engine.services.stats_providers["websocket"] = hub.stats
        engine.add_background(alerts.run)
        engine.add_background(lambda: _metrics_ticker(engine, serving))
        return serving

    def metrics_data(self, engine: Engine) -> dict[str, Any]:
        """The `metrics` channel's message: this second's counters and the store totals."""
        store = engine.store
        return self.live_metrics.snapshot(persons=engine.persons.count_persons_of, totals={
            "events": store.stats()["events"], "eventsProcessed": store.events_ingested,
            "users": engine.persons.count_users(), "eventTypes": len(store.dicts.types),
            "eventsPerSecond5s": round(engine.rate.rate(), 2),
            "eventsRejected": engine.events_rejected})


def _guarded(fn: Callable[[EventBatch], None]) -> Callable[[EventBatch], None]:
    def listener(batch: EventBatch) -> None:
        try:
            fn(batch)
        except Exception:  # a live view must never break ingestion
            log.exception("live hub could not take a batch")
    return listener


async def _metrics_ticker(engine: Engine, serving: Serving) -> None:
    """Publish the metrics channel on every second, while anyone listens."""
    while True:
        await trio.sleep(1.0 - (time.time() % 1.0) + 0.0005)  # on the second
        if serving.live_hub.subscribers("metrics"):
            serving.live_hub.publish("metrics", serving.metrics_data(engine))


