"""Funnels in ClickHouse SQL, with the embedded engine's answers to the last tie.

ClickHouse's `windowFunnel` is not used. It orders events by timestamp alone (rta breaks
ties by arrival), lets one event complete two steps in some modes, has its own idea of
repeated and interrupted steps, and returns only a level, while every rta funnel also
reports the best attempt's times to convert and attributes a breakdown to that attempt's
step-1 event. So each entity's events are gathered into one array sorted by (ts, seq) and
every attempt is walked in array arithmetic: per mask a "next matching position" array
(`arrayReverseFill`) makes each step of each attempt O(1), so an entity costs O(events x
steps), never O(attempts x events). The rules (tie order, strict = the very next event,
`any` steps searched from the entry, exclusion voiding, deepest-then-earliest attempt) are
those of docs/statistics.md, step by step as `rta.core.embedded.funnel._compute_rows`
applies them. Only per-step aggregates leave ClickHouse (counts, sums and the two order
statistics the median and p90 interpolate between, per breakdown value); Python does the
final rounding exactly as the embedded engine does (numpy's linear percentile).

Thread rule: blocking I/O; the query's worker thread.
"""

from __future__ import annotations

import math
from typing import Any

from rta.core.clickhouse.filter_sql import Params, node_sql, where_sql
from rta.core.clickhouse.view import View
from rta.core.queries.behaviour_results import (
    FunnelBreakdown,
    FunnelResult,
    FunnelStep,
    FunnelSummary,
)
from rta.core.queries.behaviour_specs import FunnelQuery
from rta.core.queries.segment_spec import pct
from rta.core.queries.timeparse import iso

_WORD = 64  # masks packed per UInt64 flags word
_HIGH = 4294967296  # best-attempt key: depth * _HIGH + (_HIGH - 1 - entry position)


def _flag(mask: int) -> tuple[str, int]:
    """The flags word holding mask `mask` and its bit in it."""
    return f"w{mask // _WORD}", mask % _WORD


def _build_sql(view: View, q: FunnelQuery, params: Params) -> str:
    """The whole funnel as one query; rows are (group key..., per-step aggregates...)."""
    nsteps = len(q.steps)
    filters = [s.flt for s in q.steps] + [x.flt for x in q.exclusions]
    base = node_sql(q.where, params) if q.where is not None else None
    masks = []
    for flt in filters:
        cond = where_sql(flt, params, times=False)
        masks.append(f"({cond}) AND ({base})" if base is not None else cond)
    nwords = -(-len(masks) // _WORD)
    words = []
    for w in range(nwords):
        bits = [f"toUInt64(if(ifNull({masks[m]}, 0), {1 << (m % _WORD)}, 0))"
                for m in range(w * _WORD, min(len(masks), (w + 1) * _WORD))]
        words.append(" + ".join(bits))
    entity = "session" if q.unit == "sessions" else "user"
    where = [f"{entity} IS NOT NULL"]
    if q.start is not None:
        where.append(f"ts >= {params.add(int(q.start), 'Int64')}")
    if q.end is not None:  # steps may land up to end - 1 + window
        where.append(f"ts < {params.add(int(q.end) + int(q.window), 'Int64')}")
    if q.segment_users is not None:
        members = params.add([str(u) for u in q.segment_users], "Array(String)")
        where.append(f"ifNull(user IN {members}, 0)")
    if q.order != "strict":  # strict needs every event in between, whatever its type
        where.append("(" + " OR ".join(f"ifNull({m}, 0)" for m in masks) + ")")
    if q.breakdown is not None:
        key = params.add(q.breakdown, "String")
        first = masks[0]
        breakdown = [
            f"if({first}, multiIf(mapContains(props_s, {key}), 1, mapContains(props_i, {key})"
            f" OR mapContains(props_f, {key}), 2, mapContains(props_b, {key}), 3, 0), 0)",
            f"if({first} AND mapContains(props_s, {key}), props_s[{key}], '')",
            f"if({first}, multiIf(mapContains(props_i, {key}), toFloat64(props_i[{key}]), "
            f"mapContains(props_f, {key}), props_f[{key}], mapContains(props_b, {key}), "
            f"toFloat64(props_b[{key}]), 0.) + 0., 0.)",  # (+ 0. makes -0.0 the 0.0 group)
        ]
    else:
        breakdown = []
    row = ["ts", "seq", *words, *breakdown]
    gather = (f"SELECT assumeNotNull({entity}) AS e, arraySort(groupArray(tuple("
              f"{', '.join(row)}))) AS ev FROM {view.events} WHERE "
              + " AND ".join(f"({c})" for c in where) + " GROUP BY e")

    window = params.add(int(q.window), "Int64")
    end = params.add(int(q.end), "Int64") if q.end is not None else None
    cols = ["e", "ev.1 AS t", "length(t) AS n"]
    cols += [f"ev.{3 + w} AS w{w}" for w in range(nwords)]
    word0, bit0 = _flag(0)
    in_range = f" AND t[i] < {end}" if end is not None else ""
    cols.append(f"arrayFilter(i -> bitTest({word0}[i], {bit0}){in_range}, "
                f"arrayEnumerate(t)) AS p0")
    cols.append(f"arrayMap(s -> t[s] + {window}, p0) AS dl")

    def nexts(m: int) -> str:
        """Per position i (1-based, up to n + 1): the first position >= i matching mask m."""
        word, bit = _flag(m)
        return (f"arrayPushBack(arrayReverseFill(x -> x != 0, arrayMap((x, i) -> "
                f"if(bitTest(x, {bit}), i, 0), {word}, arrayEnumerate({word}))), 0) AS nx{m}")

    for k in range(1, nsteps):
        if q.order == "strict":
            word, bit = _flag(k)
            cols.append(f"arrayMap(a -> if(a < n AND bitTest({word}[a + 1], {bit}), a + 1, 0),"
                        f" p{k - 1}) AS c{k}")
        else:
            cols.append(nexts(k))
            after = "p0" if q.order == "any" else f"p{k - 1}"
            cols.append(f"arrayMap(a -> nx{k}[a + 1], {after}) AS c{k}")
        cols.append(f"arrayMap((a, c, d) -> if(a != 0 AND c != 0 AND t[c] <= d, c, 0), "
                    f"p{k - 1}, c{k}, dl) AS p{k}")
    cols.append("arrayMap(s -> t[s], p0) AS tm0")
    for k in range(1, nsteps):
        if q.order == "any":
            cols.append(f"arrayMap((a, c) -> greatest(a, t[c]), tm{k - 1}, p{k}) AS tm{k}")
        else:
            cols.append(f"arrayMap(c -> t[c], p{k}) AS tm{k}")
    later = [f"p{k}" for k in range(1, nsteps)]
    lam = ", ".join(f"x{k}" for k in range(1, nsteps))
    cols.append(f"arrayMap(({lam}) -> toUInt64(1 + "
                + " + ".join(f"(x{k} != 0)" for k in range(1, nsteps))
                + f"), {', '.join(later)}) AS depth")
    voids = []
    for j, x in enumerate(q.exclusions):
        m = nsteps + j
        cols.append(nexts(m))
        cols.append(f"arrayMap(a -> nx{m}[a + 1], p{x.from_step}) AS xe{j}")
        cols.append(f"arrayMap((a, b, x, d) -> a != 0 AND x != 0 AND t[x] <= d AND "
                    f"(b = 0 OR x < b), p{x.from_step}, p{x.to_step}, xe{j}, dl) AS v{j}")
        voids.append(f"v{j}")
    if voids:
        vlam = ", ".join(f"y{j}" for j in range(len(voids)))
        cols.append(f"arrayMap((dp, s, {vlam}) -> if("
                    + " OR ".join(f"y{j}" for j in range(len(voids)))
                    + f", toUInt64(0), toUInt64(dp * {_HIGH} + ({_HIGH - 1} - s))), depth, p0, "
                    f"{', '.join(voids)}) AS key")
    else:
        cols.append(f"arrayMap((dp, s) -> toUInt64(dp * {_HIGH} + ({_HIGH - 1} - s)), "
                    "depth, p0) AS key")
    best = [f"intDiv(arrayMax(key), {_HIGH}) AS best_depth",
            "indexOf(key, arrayMax(key)) AS best_at"]
    best += [f"tm{k}[best_at] - tm{k - 1}[best_at] AS dt{k}" for k in range(1, nsteps)]
    if q.breakdown is not None:
        nb = 3 + nwords
        cols += [f"ev.{nb} AS bka", f"ev.{nb + 1} AS bsa", f"ev.{nb + 2} AS bna"]
        best += ["bka[p0[best_at]] AS bk", "bsa[p0[best_at]] AS bs", "bna[p0[best_at]] AS bn"]
    walk = f"SELECT {', '.join(cols)} FROM ({gather})"
    pick = (f"SELECT {', '.join(best)} FROM ({walk}) "
            f"WHERE length(p0) > 0 AND arrayMax(key) > 0")

    aggs = [f"countIf(best_depth > {k}) AS n{k}" for k in range(nsteps)]
    for k in range(1, nsteps):
        aggs.append(f"sumIf(dt{k}, best_depth > {k}) AS s{k}")
        aggs.append(f"arraySort(groupArrayIf(dt{k}, best_depth > {k})) AS q{k}")
    if q.breakdown is not None:
        # one pass for every breakdown value and the whole funnel (grouping() = 1): the
        # counts would add up over values, but the median and p90 would not
        head = ["grouping(bk) AS g", "bk", "bs", "bn"]
        tail = " GROUP BY GROUPING SETS ((bk, bs, bn), ())"
    else:
        head = ["1 AS g"]
        tail = ""
    summed = f"SELECT {', '.join(head + aggs)} FROM ({pick}){tail}"
    out = [h.split(" AS ")[-1] for h in head] + [f"n{k}" for k in range(nsteps)]
    for k in range(1, nsteps):
        # the order statistics numpy's median and linear p90 read (1-based positions)
        out += [f"s{k}",
                f"q{k}[intDiv(n{k} - 1, 2) + 1]", f"q{k}[intDiv(n{k}, 2) + 1]",
                f"q{k}[toUInt64(floor((n{k} - 1) * 0.9)) + 1]",
                f"q{k}[least(toUInt64(floor((n{k} - 1) * 0.9)) + 2, n{k})]"]
    return f"SELECT {', '.join(out)} FROM ({summed})"


def _p90(lo: float, hi: float, n: int) -> float:
    """numpy's default (linear) 90th percentile from its two neighbouring order statistics."""
    virtual = (n - 1) * 0.9
    if virtual >= n - 1:
        return hi
    gamma = virtual - math.floor(virtual)
    diff = hi - lo
    if gamma >= 0.5:
        return hi - diff * (1 - gamma)
    return lo + diff * gamma


def _summary(names: list[str], types: list[str], counts: list[int],
             stats: list[tuple[int, float, float, float, float] | None]) -> FunnelSummary:
    """The summary the embedded engine builds, from per-step aggregates."""
    nsteps = len(names)
    steps = []
    for k in range(nsteps):
        prev = counts[k - 1] if k else counts[0]
        conv = pct(counts[k], prev) if k else (100.0 if counts[0] else 0.0)
        avg = median = p90 = None
        st = stats[k]
        if k and counts[k] and st is not None:
            total, mid_lo, mid_hi, p_lo, p_hi = st
            n = counts[k]
            avg = round(float(total) / float(n), 1)
            median = round((float(mid_lo) + float(mid_hi)) / 2, 1)
            p90 = round(_p90(float(p_lo), float(p_hi), n), 1)
        steps.append(FunnelStep(names[k], types[k], counts[k], conv,
                                round(100.0 - conv, 2) if prev else 0.0, prev - counts[k],
                                pct(counts[k], counts[0]), avg, median, p90))
    return FunnelSummary(tuple(steps), counts[0], counts[-1], pct(counts[-1], counts[0]))


def _label(kind: int, text: str, number: float) -> Any:
    """The breakdown value as JSON, as the embedded engine labels it."""
    if kind == 1:
        return text
    if kind == 2:
        return int(number) if float(number).is_integer() and abs(number) < 2**53 else number
    if kind == 3:
        return bool(number)
    return None


def _row_summary(q: FunnelQuery, row: tuple[Any, ...] | None, at: int) -> FunnelSummary:
    """The summary of one result row whose step columns begin at `at`."""
    nsteps = len(q.steps)
    names = [s.name for s in q.steps]
    types = [s.event_type for s in q.steps]
    if row is None:
        return _summary(names, types, [0] * nsteps, [None] * nsteps)
    counts = [int(c) for c in row[at:at + nsteps]]
    stats: list[tuple[int, float, float, float, float] | None] = [None]
    at += nsteps
    for _ in range(1, nsteps):
        total, a, b, c, d = row[at:at + 5]
        stats.append((int(total), float(a), float(b), float(c), float(d)))
        at += 5
    return _summary(names, types, counts, stats)


def result(view: View, q: FunnelQuery) -> FunnelResult:
    """Answer a funnel whose `segment_users` are resolved (user id strings)."""
    params = Params()
    rows = view.rows(_build_sql(view, q, params), params)
    whole = next((r for r in rows if int(r[0]) == 1), None)
    common = (q.order, q.unit, q.window, q.start, None if q.end is None else q.end - 1,
              None if q.start is None else iso(q.start))
    if q.breakdown is None:
        return FunnelResult(_row_summary(q, whole, 1), *common)
    groups = [(int(r[1]), FunnelBreakdown(_label(int(r[1]), str(r[2]), float(r[3])),
                                          _row_summary(q, r, 4)))
              for r in rows if int(r[0]) == 0]
    # (ties of str(value) are across kinds only: '1' vs 1; text, then number, then boolean)
    groups.sort(key=lambda g: (-g[1].summary.total_entered, str(g[1].value), g[0]))
    return FunnelResult(_row_summary(q, whole, 4), *common, q.breakdown,
                        len(groups) > q.breakdown_limit,
                        tuple(g for _, g in groups[:q.breakdown_limit]))
