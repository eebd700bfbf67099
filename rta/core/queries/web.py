"""Web analytics: headline figures with the previous period, breakdowns, visitors now.

    query = parse_web(params, now, dimension)      # pure (web_specs)
    result = execute(query, ctx, settings, cache)  # worker thread
    body = result.to_json()

Visits are derived by the backend over the events the filter selects inside the range
(rules: docs/web.md): a visit that began before the range is counted from its first event
inside it. Without a start time the range is all data up to now and there is no previous
period; with one, the previous period is the same length just before it. The answers go
through the result cache like every analytics answer.

Thread rule: parse anywhere; `execute` in the query's worker thread.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np

from rta.core.queries.analytics import resolve_filter
from rta.core.queries.backend import QueryContext
from rta.core.queries.filters import EventFilter
from rta.core.queries.query_cache import QueryCache
from rta.core.queries.web_results import BreakdownResult, RealtimeResult, WebResult
from rta.core.queries.web_specs import REALTIME_MS, VisitSpec, WebQuery, WebSettings

WebAnswer = WebResult | BreakdownResult | RealtimeResult


def _key(flt: EventFilter, canonical: object) -> str:
    seg = None
    if flt.segment_users is not None:
        data = np.ascontiguousarray(flt.segment_users).tobytes()
        seg = hashlib.blake2b(data, digest_size=12).hexdigest()
    return json.dumps([canonical, flt.start, flt.end, seg], sort_keys=True, default=str,
                      separators=(",", ":"))


def visit_spec(flt: EventFilter, canonical: object, bots: bool,
               settings: WebSettings) -> VisitSpec:
    return VisitSpec(flt, _key(flt, canonical), bots, settings)


def _bounded(flt: EventFilter, start: int | None, end: int) -> EventFilter:
    return dataclasses.replace(flt, start=start, end=end, _luts={})


def execute(query: WebQuery, ctx: QueryContext, settings: WebSettings,
            cache: QueryCache | None = None) -> WebAnswer:
    """Answer a web query (from the cache while it is still valid)."""
    flt = resolve_filter(query.filter, ctx)
    end = flt.end if flt.end is not None else query.now + 1
    bounds = ctx.backend.time_bounds()
    if flt.end is None and bounds is not None:
        end = max(end, bounds[1] + 1)
    start = flt.start
    canonical = query.filter.canonical
    key = json.dumps(["web", query.dimension, query.limit, query.bots, settings.timeout_ms,
                      settings.own_hosts, _key(_bounded(flt, start, end), canonical)],
                     default=str, separators=(",", ":"))
    lo = start if start is not None else (bounds[0] if bounds else None)
    if cache is not None and query.dimension != "realtime":
        hit = cache.get(key, ctx.backend)
        if hit is not None:
            return dataclasses.replace(hit, cached=True)
    backend = ctx.backend
    result: WebAnswer
    prev_range: tuple[int, int] | None = None
    if query.dimension == "realtime":
        now_flt = _bounded(flt, max(query.now - REALTIME_MS + 1, start or 0), query.now + 1)
        totals = backend.web_totals(visit_spec(now_flt, canonical, query.bots, settings))
        return RealtimeResult(totals.visitors, REALTIME_MS)
    current = visit_spec(_bounded(flt, start, end), canonical, query.bots, settings)
    if query.dimension is not None:
        rows = backend.web_breakdown(current, query.dimension, query.limit)
        result = BreakdownResult(query.dimension, lo, end - 1, rows)
    else:
        totals = backend.web_totals(current)
        previous = None
        if start is not None:
            prev_range = (start - (end - start), start - 1)
            previous = backend.web_totals(visit_spec(
                _bounded(flt, prev_range[0], start), canonical, query.bots, settings))
        now_flt = _bounded(flt, max(query.now - REALTIME_MS + 1, start or 0), query.now + 1)
        realtime = backend.web_totals(visit_spec(now_flt, canonical, query.bots,
                                                 settings)).visitors
        result = WebResult(lo, end - 1, totals, previous, prev_range, realtime)
    if cache is not None:
        first = prev_range[0] if isinstance(result, WebResult) and prev_range else start
        cache.put(key, result, backend.version, first, end)
    return result
