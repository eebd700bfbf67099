"""The filter language (`rta.core.queries.filters`) compiled to a ClickHouse WHERE clause.

Semantics follow the embedded evaluator (`rta.core.embedded.filter_eval`) exactly:
- a predicate needs the property present (in the kind it compares), except the negative
  operators (`neq`, `not_in`, `not_contains`, `not_exists`), which are NOT of their positive
  and so match events lacking the property;
- numbers compare with integer and float values alike (as Float64), text with text (byte
  order of UTF-8, which is code point order, as Python compares), booleans only by eq/in;
- a missing user or session matches no positive predicate.
Every predicate is made a plain 0/1 (`ifNull(..., 0)`) before NOT, so SQL's NULL never
leaks into the three-valued logic the embedded engine does not have.

Values travel as server-side parameters (`{p3:String}`), never spliced into the SQL text.

Thread rule: pure functions over their arguments; any thread.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from rta.core.queries.filters import (
    NEGATIVE,
    PROPERTY_PREFIX,
    TOP_LEVEL,
    EventFilter,
    Group,
    Predicate,
)

# `userId` filters match the distinct ids as sent: `raw_user`, which every events source
# exposes (`view.events_source`), while `user` is the person where ids are linked.
_TOP_COLUMNS = {"type": "type", "user": "raw_user", "session": "session", "ts": "ts"}
_CMP = {"eq": "=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


@dataclass
class Params:
    """Server-side query parameters, named in order of use."""

    values: dict[str, Any] = field(default_factory=dict)

    def add(self, value: Any, ch_type: str) -> str:
        name = f"p{len(self.values)}"
        self.values[name] = value
        return f"{{{name}:{ch_type}}}"


def numeric_expr(key_sql: str) -> str:
    """A property's numeric value (integer or float kind) as Nullable(Float64)."""
    return (f"if(mapContains(props_i, {key_sql}), toFloat64(props_i[{key_sql}]), "
            f"if(mapContains(props_f, {key_sql}), props_f[{key_sql}], NULL))")


def present_expr(key_sql: str) -> str:
    """Whether the event carries the property in any kind."""
    return (f"(mapContains(props_s, {key_sql}) OR mapContains(props_i, {key_sql}) OR "
            f"mapContains(props_f, {key_sql}) OR mapContains(props_b, {key_sql}))")


def where_sql(flt: EventFilter, params: Params, *, times: bool = True,
              members: str | None = None) -> str:
    """The filter as one boolean SQL expression ('1' for no condition).

    `members` is a SQL expression for the saved segment's users when `flt.segment_users` is
    set (the backend knows how its segment members travel)."""
    parts: list[str] = []
    if times and flt.start is not None:
        parts.append(f"ts >= {params.add(int(flt.start), 'Int64')}")
    if times and flt.end is not None:
        parts.append(f"ts < {params.add(int(flt.end), 'Int64')}")
    if flt.types is not None:
        parts.append(f"type IN {params.add(list(flt.types), 'Array(String)')}")
    if flt.users is not None:
        parts.append(f"ifNull(raw_user IN {params.add(list(flt.users), 'Array(String)')}, 0)")
    if flt.segment_users is not None:
        if members is None:
            members = params.add([str(u) for u in flt.segment_users], "Array(String)")
        parts.append(f"ifNull(user IN {members}, 0)")
    if flt.where is not None:
        parts.append(node_sql(flt.where, params))
    return " AND ".join(f"({p})" for p in parts) if parts else "1"


def member_sql(users: Iterable[object], params: Params) -> str:
    """The row's user is one of `users` (ids as strings; a null user is not)."""
    return f"ifNull(user IN {params.add([str(u) for u in users], 'Array(String)')}, 0)"


def where_in_segment(flt: EventFilter, params: Params, members: Iterable[object] | None, *,
                     times: bool = True) -> str:
    """`where_sql`, and the user among a saved segment's `members` when the backend
    resolved them to ids (None: no segment)."""
    cond = where_sql(flt, params, times=times)
    return cond if members is None else f"({cond}) AND {member_sql(members, params)}"


def node_sql(node: Predicate | Group, params: Params) -> str:
    """One predicate or group as a 0/1 expression."""
    if isinstance(node, Group):
        joiner = " AND " if node.op == "and" else " OR "
        return "(" + joiner.join(node_sql(item, params) for item in node.items) + ")"
    if node.op in NEGATIVE:
        return f"NOT {node_sql(Predicate(node.prop, NEGATIVE[node.op], node.value), params)}"
    if node.prop in TOP_LEVEL:
        return _top_sql(node, params)
    prop = node.prop
    if prop.startswith(PROPERTY_PREFIX):  # 'properties.type': the property, not the field
        prop = prop[len(PROPERTY_PREFIX):]
    key = params.add(prop, "String")
    if node.op == "exists":
        return present_expr(key)
    values = node.value if node.op == "in" else [node.value]
    strs = [v for v in values if isinstance(v, str)]
    nums = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    bools = [v for v in values if isinstance(v, bool)]
    alternatives: list[str] = []
    if strs:
        alternatives.append(f"(mapContains(props_s, {key}) AND "
                            f"{_text_sql('props_s[' + key + ']', node.op, strs, params)})")
    if nums and node.op not in ("contains", "starts_with", "ends_with"):
        alternatives.append(f"ifNull({_number_sql(numeric_expr(key), node.op, nums, params)}, 0)")
    if bools and node.op in ("eq", "in"):
        alternatives.append(f"(mapContains(props_b, {key}) AND props_b[{key}] IN "
                            f"{params.add(bools, 'Array(Bool)')})")
    if not alternatives:
        return "0"
    return "(" + " OR ".join(alternatives) + ")"


def _text_sql(expr: str, op: str, strs: list[str], params: Params) -> str:
    if op in ("eq", "in"):
        return f"{expr} IN {params.add(strs, 'Array(String)')}"
    value = params.add(strs[0], "String")
    if op == "contains":
        return f"position({expr}, {value}) > 0"
    if op == "starts_with":
        return f"startsWith({expr}, {value})"
    if op == "ends_with":
        return f"endsWith({expr}, {value})"
    return f"{expr} {_CMP[op]} {value}"


def _number_sql(expr: str, op: str, nums: list[float], params: Params) -> str:
    if op in ("eq", "in"):
        return f"{expr} IN {params.add([float(v) for v in nums], 'Array(Float64)')}"
    return f"{expr} {_CMP[op]} {params.add(float(nums[0]), 'Float64')}"


def _top_sql(node: Predicate, params: Params) -> str:
    column = _TOP_COLUMNS[TOP_LEVEL[node.prop]]
    if column == "ts":
        if node.op == "exists":
            return "1"
        values = node.value if node.op == "in" else [node.value]
        nums = [float(v) for v in values if isinstance(v, int | float)]  # (True is 1.0)
        if not nums or node.op in ("contains", "starts_with", "ends_with"):
            return "0"
        return _number_sql("toFloat64(ts)", node.op, nums, params)
    if node.op == "exists":
        return f"({column} IS NOT NULL)"
    values = node.value if node.op == "in" else [node.value]
    strs = [str(v) for v in values]
    return f"ifNull({_text_sql(column, node.op, strs, params)}, 0)"
