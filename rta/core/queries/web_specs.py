"""Web analytics queries (visits, sources, pages, devices): typed specs and pure parsers.

`GET /analytics/web` takes the filter parameters every analytics route takes plus `bots`
(include events flagged `$bot`, default false); `GET /analytics/web/{dimension}` adds
`limit`. The visit rule's settings (`visit_timeout_minutes`, `web_own_hosts`) come from the
engine's configuration, not the request: they are the site's definition of a visit.

Thread rule: pure functions over their arguments; any thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rta.core.errors import field_error
from rta.core.queries import params as p
from rta.core.queries.filters import EventFilter
from rta.core.queries.params import FilterSpec

# Dimensions attributing a whole visit to one value (its landing pageview's), and `pages`,
# which counts every pageview of a path.
VISIT_DIMENSIONS = ("entry-pages", "exit-pages", "sources", "channels", "utm-sources",
                    "utm-mediums", "utm-campaigns", "countries", "browsers", "os", "devices")
DIMENSIONS = ("pages", *VISIT_DIMENSIONS)
WEB_KEYS = ("bots",)
BREAKDOWN_KEYS = ("bots", "limit")
MAX_LIMIT = 1000
REALTIME_MS = 5 * 60_000
DEFAULT_TIMEOUT_MINUTES = 30.0


@dataclass(frozen=True)
class WebSettings:
    """The site's visit rule: inactivity that ends a visit, and hosts that are its own."""

    timeout_ms: int = int(DEFAULT_TIMEOUT_MINUTES * 60_000)
    own_hosts: tuple[str, ...] = ()


@dataclass(frozen=True)
class VisitSpec:
    """What a backend derives visits from: the resolved filter (its range included), whether
    bot events count, and the visit rule. The unit of every web backend call."""

    flt: EventFilter = field(compare=False)
    key: str  # the filter's canonical form with its range: identifies the events read
    bots: bool
    settings: WebSettings


@dataclass(frozen=True)
class WebQuery:
    """GET /analytics/web[/{dimension}]: headline figures, or one dimension's breakdown."""

    filter: FilterSpec
    now: int
    bots: bool
    dimension: str | None = None
    limit: int = 10


def parse_web(params: Any, now: int, dimension: str | None = None) -> WebQuery:
    """The query behind `/analytics/web` (`dimension` None) or `/analytics/web/{dimension}`
    (also `realtime`)."""
    if dimension is not None and dimension != "realtime" and dimension not in DIMENSIONS:
        raise field_error("dimension", "must be one of " + ", ".join((*DIMENSIONS,
                                                                      "realtime")),
                          value=dimension, allowed=[*DIMENSIONS, "realtime"])
    p.check_keys(params, BREAKDOWN_KEYS if dimension in DIMENSIONS else WEB_KEYS)
    flt = p.filter_spec(params, now)
    bots = p.bool_param(params, "bots")
    limit = p.int_param(params, "limit", 10, 1, MAX_LIMIT) if dimension in DIMENSIONS else 10
    return WebQuery(flt, now, bots, dimension, limit)


def settings_from(timeout_minutes: float, own_hosts: Any) -> WebSettings:
    """The engine's web settings (`own_hosts`: a list or a comma-separated string)."""
    if isinstance(own_hosts, str):
        hosts = tuple(h.strip().lower() for h in own_hosts.split(",") if h.strip())
    else:
        hosts = tuple(str(h).strip().lower() for h in (own_hosts or ()) if str(h).strip())
    minutes = timeout_minutes if timeout_minutes and timeout_minutes > 0 else \
        DEFAULT_TIMEOUT_MINUTES
    return WebSettings(int(minutes * 60_000), hosts)
