"""Segments in ClickHouse SQL: a definition evaluated per user, counts and a sample back.

A segment is per-user work, so it is one GROUP BY user over the events table (on a cluster,
whole on each shard): per user, whether they are in the universe (an event in the time
range), each referenced property's latest value (`argMax` by timestamp then arrival), each
event condition's count, and when they were first seen (their first arrival: the order of
the embedded engine's user codes, which orders its sample). Every latest value then becomes
an entry of per-user property maps shaped like the events table's, so the condition tree
compiles with the ordinary filter language (`filter_sql`) over rows that are users, exactly
as the embedded engine evaluates it over a synthetic block of users:

- a user-property predicate sees only the property's latest value (of one kind), and the
  negative operators match users who never set it;
- `properties.<field>` keeps its prefix in the condition but is read under the bare name,
  as the embedded engine reads it (so it sees a value only when the tree also names that
  bare property);
- top-level fields on a user row: `userId` is the user, type and session are missing, the
  timestamp is 0;
- an event condition is a count test, including users with no matching event.

`members` gives a saved segment's users (ids, the form this backend's queries take them in).

Thread rule: blocking I/O; the query's worker thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rta.core.clickhouse.filter_sql import Params, node_sql, present_expr, where_sql
from rta.core.clickhouse.view import View
from rta.core.queries.behaviour_results import SegmentResult
from rta.core.queries.behaviour_specs import SegmentQuery
from rta.core.queries.filters import PROPERTY_PREFIX, TOP_LEVEL, EventFilter, Group, Predicate
from rta.core.queries.segment_spec import EventCondition, Node, SegmentDef, pct, walk

_COUNT_OPS = {"eq": "=", "neq": "!=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
_MISSING = "\x00missing"  # a property name no user row carries
_KINDS = ((1, "props_s", "s"), (2, "props_i", "i"), (3, "props_f", "f"), (4, "props_b", "b"))


def result(view: View, q: SegmentQuery) -> SegmentResult:
    """Members, universe and the first `q.sample` members in first-seen order."""
    seg = q.definition
    params = Params()
    rows = _per_user(view, seg, params, first_seen=q.sample > 0)
    sample = "[]" if q.sample <= 0 else \
        f"arrayMap(x -> x.2, groupArraySortedIf({int(q.sample)})((first, user), member))"
    (count, total, users), = view.rows(
        f"SELECT countIf(member), count(), {sample} FROM ({rows})", params)
    count, total = int(count), int(total)
    return SegmentResult(seg.name, count, total, pct(count, total), [str(u) for u in users])


def members(view: View, definition: SegmentDef) -> np.ndarray:
    """The users of a segment definition (ids, dtype object), sorted."""
    params = Params()
    rows = _per_user(view, definition, params, first_seen=False)
    table = view.arrow(f"SELECT user FROM ({rows}) WHERE member ORDER BY user", params)
    return np.asarray(table.column("user").to_pylist(), dtype=object)


@dataclass
class _Columns:
    """What the per-user aggregation computes for one condition tree."""

    params: Params
    latest: dict[str, str] = field(default_factory=dict)  # property as named -> column
    counts: dict[int, str] = field(default_factory=dict)  # id(EventCondition) -> column
    aggregates: list[str] = field(default_factory=list)


def _per_user(view: View, seg: SegmentDef, params: Params, first_seen: bool) -> str:
    """SQL for one row per user of the universe: `user`, `member`, and `first` (their first
    arrival) when `first_seen`."""
    times = where_sql(EventFilter(start=seg.start, end=seg.end), params)
    cols = _Columns(params)
    if seg.tree is not None:
        for node in walk(seg.tree):
            if isinstance(node, Predicate) and node.prop != "userId":
                _latest(cols, node.prop, times)
            elif isinstance(node, EventCondition) and id(node) not in cols.counts:
                name = f"c{len(cols.counts)}"
                cols.counts[id(node)] = name
                cond = where_sql(node.flt, params, times=False)
                cols.aggregates.append(f"countIf(({cond}) AND ({times})) AS {name}")
    # every user ever seen, when the sample's order (first arrival) is wanted; else only
    # the events in range
    scope = "1" if first_seen else times
    # the sample's order: when the person's own id first arrived (the embedded engine orders
    # by user code, and a person's code is its id's)
    first = "minIf(seq, raw_user = user) AS first, " if first_seen else ""
    aggregates = "".join(f", {a}" for a in cols.aggregates)
    grouped = f"""
        SELECT user, {first}countIf({times}) > 0 AS in_range{aggregates}
        FROM {view.events}
        WHERE user IS NOT NULL AND ({scope})
        GROUP BY user"""
    condition = "1" if seg.tree is None else _tree_sql(seg.tree, cols)
    maps = ", ".join(_map_sql(cols.latest, code, name, short)
                     for code, name, short in _KINDS)
    keep = "first, " if first_seen else ""
    return f"""
        SELECT user, {keep}({condition}) AS member
        FROM (SELECT *, {maps}, CAST(NULL, 'Nullable(String)') AS type,
                     CAST(NULL, 'Nullable(String)') AS session, toInt64(0) AS ts,
                     user AS raw_user
              FROM ({grouped}))
        WHERE in_range"""


def _latest(cols: _Columns, prop: str, times: str) -> None:
    """Aggregate the user's latest value of `prop` ('type\\0key' for one event type's)."""
    if prop in cols.latest:
        return
    name = f"l{len(cols.latest)}"
    cols.latest[prop] = name
    etype, _, key = prop.rpartition("\x00")
    p = cols.params
    k = p.add(key, "String")
    where = f"({present_expr(k)}) AND ({times})"
    if etype:
        where += f" AND type = {p.add(etype, 'String')}"
    value = (f"(multiIf(mapContains(props_s, {k}), 1, mapContains(props_i, {k}), 2, "
             f"mapContains(props_f, {k}), 3, 4), props_s[{k}], props_i[{k}], props_f[{k}], "
             f"props_b[{k}])")
    cols.aggregates.append(f"argMaxIf({value}, (ts, seq), {where}) AS {name}")


def _map_sql(latest: dict[str, str], code: int, column: str, short: str) -> str:
    """The per-user map of one value kind: each latest value of that kind under its name."""
    if not latest:
        empty = {"s": "String", "i": "Int64", "f": "Float64", "b": "Bool"}[short]
        return f"CAST(map(), 'Map(String, {empty})') AS {column}"
    names = list(latest)
    cols = [latest[n] for n in names]
    key_array = "[" + ", ".join(f"'l{i}'" for i in range(len(names))) + "]"
    kinds = "[" + ", ".join(f"{c}.1" for c in cols) + "]"
    values = "[" + ", ".join(f"{c}.{code + 1}" for c in cols) + "]"
    return (f"mapFromArrays(arrayFilter((k, c) -> c = {code}, {key_array}, {kinds}), "
            f"arrayFilter((v, c) -> c = {code}, {values}, {kinds})) AS {column}")


def _tree_sql(node: Node, cols: _Columns) -> str:
    if isinstance(node, EventCondition):
        return f"({cols.counts[id(node)]} {_COUNT_OPS[node.op]} {int(node.value)})"
    if isinstance(node, Group):
        joiner = " AND " if node.op == "and" else " OR "
        return "(" + joiner.join(_tree_sql(item, cols) for item in node.items) + ")"
    return node_sql(_on_user_row(node, cols), cols.params)


def _on_user_row(pred: Predicate, cols: _Columns) -> Predicate:
    """The predicate naming the per-user map entry it reads (see the module docstring)."""
    if pred.prop in TOP_LEVEL:
        return pred
    read = pred.prop[len(PROPERTY_PREFIX):] if pred.prop.startswith(PROPERTY_PREFIX) \
        else pred.prop
    index = list(cols.latest).index(read) if read in cols.latest else -1
    return Predicate(f"l{index}" if index >= 0 else _MISSING, pred.op, pred.value)
