"""Visits in ClickHouse SQL: window functions over (visitor, session id) partitions.

The same rules as the embedded engine (`rta.core.embedded.visits`, docs/web.md): events
with a user, without `$bot = true` unless asked, ordered by (ts, seq) within each (user,
session id) partition; among events without a session id a gap over the timeout starts a
new visit (`lagInFrame`, then a running `sum`). Visits without a pageview do not count.

Dimension labels are not computed in SQL: a first statement lists the distinct raw field
combinations of the pageviews read, `web_labels.label` names each (the same Python both
engines use, so a malformed URL is labelled alike), and the aggregation maps combinations
to label ids with `transform`. Raw fields are coalesced as the embedded engine does (the
first alias present wins; absent is '' here and -1 there, which every label treats alike).

Thread rule: any thread (blocking I/O on the view's connection).
"""

from __future__ import annotations

from rta.core.clickhouse.filter_sql import Params
from rta.core.clickhouse.view import View
from rta.core.queries import pageviews as pv
from rta.core.queries.web_labels import FIELDS, RAW_FIELDS, label
from rta.core.queries.web_results import DimensionRow, DimensionRows, VisitTotals, rank_rows
from rta.core.queries.web_specs import VisitSpec

PAGEVIEW, OTHER, INTERACTION = 1, 2, 3


def _field_sql(name: str, params: Params) -> str:
    """The first string alias present (the embedded `_coalesce`), '' when none."""
    parts = []
    for key in RAW_FIELDS[name]:
        k = params.add(key, "String")
        parts.append(f"mapContains(props_s, {k}), props_s[{k}]")
    return f"multiIf({', '.join(parts)}, '')"


def _combo_sql(names: tuple[str, ...], params: Params) -> str:
    """Raw fields as one unambiguous string: each as `<bytes>:<text>`."""
    pieces = []
    for name in names:
        expr = _field_sql(name, params)
        pieces.append(f"toString(length({expr})), ':', {expr}")
    return f"concat({', '.join(pieces)}, '')"


def _events_sql(view: View, spec: VisitSpec, params: Params, extra: str = "") -> str:
    bot = params.add(pv.BOT_KEY, "String")
    sess = params.add(pv.SESSION_KEY, "String")
    pv_types = params.add(list(pv.PAGEVIEW_TYPES), "Array(String)")
    other = params.add(list(pv.NON_INTERACTION_TYPES), "Array(String)")
    bots = "" if spec.bots else \
        f" AND NOT (mapContains(props_b, {bot}) AND props_b[{bot}])"
    return f"""SELECT assumeNotNull(user) AS u, ts, seq,
        multiIf(session IS NOT NULL, concat('c', assumeNotNull(session)),
                mapContains(props_s, {sess}), concat('p', props_s[{sess}]), '') AS sid,
        multiIf(type IN {pv_types}, {PAGEVIEW}, type IN {other}, {OTHER},
                {INTERACTION}) AS kind{extra}
      FROM {view.events}
      WHERE ({view.where(spec.flt, params)}) AND user IS NOT NULL{bots}"""


def _numbered_sql(view: View, spec: VisitSpec, params: Params, extra: str = "") -> str:
    """Events with their visit number `vno` within (u, sid)."""
    timeout = params.add(int(spec.settings.timeout_ms), "Int64")
    window = "PARTITION BY u, sid ORDER BY ts, seq"
    return f"""SELECT *, sum(new) OVER ({window} ROWS BETWEEN UNBOUNDED PRECEDING AND
            CURRENT ROW) AS vno
      FROM (SELECT *, toUInt64(sid = '' AND ts - lagInFrame(ts, 1, ts) OVER ({window}
                ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) > {timeout}) AS new
            FROM ({_events_sql(view, spec, params, extra)}))"""


def _visits_sql(view: View, spec: VisitSpec, params: Params, extra: str = "",
                per_visit: str = "") -> str:
    return f"""SELECT u, countIf(kind = {PAGEVIEW}) AS pvs,
        countIf(kind = {INTERACTION}) AS acts, max(ts) - min(ts) AS dur{per_visit}
      FROM ({_numbered_sql(view, spec, params, extra)})
      GROUP BY u, sid, vno HAVING pvs > 0"""


def totals(view: View, spec: VisitSpec) -> VisitTotals:
    params = Params()
    (visitors, visits, pageviews, bounces, duration), = view.rows(
        f"""SELECT uniqExact(u), count(), sum(pvs), countIf(pvs = 1 AND acts = 0), sum(dur)
            FROM ({_visits_sql(view, spec, params)})""", params)
    return VisitTotals(int(visitors), int(visits), int(pageviews or 0), int(bounces),
                       int(duration or 0))


def _labels(view: View, spec: VisitSpec, dimension: str) -> tuple[list[str], list[int],
                                                                  list[str | None]]:
    """Distinct raw combinations of the pageviews read -> label ids, and the labels."""
    params = Params()
    names = FIELDS[dimension]
    cols = ", ".join(_field_sql(n, params) for n in names)
    sql = f"""SELECT DISTINCT {cols} FROM ({_events_sql(view, spec, params,
                                                           extra=', props_s')})
              WHERE kind = {PAGEVIEW}"""
    keys: list[str] = []
    ids: list[int] = []
    distinct: dict[str | None, int] = {}
    for row in view.rows(sql, params):
        raw = [str(v) for v in row]
        text = label(dimension, [v or None for v in raw], spec.settings.own_hosts)
        keys.append("".join(f"{len(v.encode())}:{v}" for v in raw))
        ids.append(distinct.setdefault(text, len(distinct)))
    return keys, ids, list(distinct)


def breakdown(view: View, spec: VisitSpec, dimension: str, limit: int) -> DimensionRows:
    keys, ids, names = _labels(view, spec, dimension)
    params = Params()
    combo = _combo_sql(FIELDS[dimension], params)
    k = params.add(keys, "Array(String)")
    v = params.add(ids, "Array(Int64)")
    lid = f"transform(ck, {k}, {v}, toInt64(-1))"
    extra = f", if(kind = {PAGEVIEW}, {combo}, '') AS ck"
    if dimension == "pages":
        sql = f"""SELECT {lid} AS lid, uniqExact(u), uniqExact(u, sid, vno), count(),
                uniqExactIf((u, sid, vno), vpv = 1 AND vact = 0)
            FROM (SELECT *, countIf(kind = {PAGEVIEW}) OVER w AS vpv,
                        countIf(kind = {INTERACTION}) OVER w AS vact
                  FROM ({_numbered_sql(view, spec, params, extra)})
                  WINDOW w AS (PARTITION BY u, sid, vno))
            WHERE kind = {PAGEVIEW} GROUP BY lid"""
    else:
        pick = "argMaxIf" if dimension == "exit-pages" else "argMinIf"
        per_visit = f", {pick}(ck, (ts, seq), kind = {PAGEVIEW}) AS vk"
        sql = f"""SELECT transform(vk, {k}, {v}, toInt64(-1)) AS lid, uniqExact(u), count(),
                sum(pvs), countIf(pvs = 1 AND acts = 0)
            FROM ({_visits_sql(view, spec, params, extra, per_visit)}) GROUP BY lid"""
    rows = []
    for lid_value, visitors, visits, pageviews, bounces in view.rows(sql, params):
        i = int(lid_value)
        if i < 0:  # (a combination stored between the two statements: never mislabelled;
            continue  # it counts from the next query on)
        rows.append(DimensionRow(names[i], int(visitors), int(visits), int(pageviews),
                                 int(bounces)))
    total = totals(view, spec).visitors if rows else 0
    return DimensionRows(rank_rows(rows, limit), len(rows), total)
