"""One filter language for every query, export and alert.

JSON shape (every key optional):
    {"type": "pageview" | ["pageview", "click"],        # also "eventType" / "types"
     "startTime": ..., "endTime": ..., "timeRange": "last_7d",
     "userId": "u1" | ["u1", "u2"],
     "where": [{"property": "page", "operator": "eq", "value": "/x"}, ...],
     "operator": "AND" | "OR",                           # how `where` items combine
     "segment": "Premium Users"}
`where` items may be predicates, groups ({"operator": "OR", "filters": [...]}, {"and": [...]},
{"or": [...]}) or the shorthand {"page": "/x", "plan": "pro"} meaning equality.
A predicate's `property` is a property key ('page' or 'properties.page') or one of the
top-level fields type, userId, sessionId, timestamp.

This module is the filter *spec* (data and parsing, backend-neutral); evaluating one over
the embedded store's blocks is `rta.core.embedded.filter_eval`.

Missing values: `neq`, `not_in`, `not_contains` and `not_exists` match events that lack the
property (as product-analytics tools do); every other operator needs the property present.

Thread rule: pure functions over their arguments; any thread.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from rta.core.errors import ValidationError, field_error
from rta.core.queries.timeparse import parse_time_range

OPERATORS = ("eq", "neq", "gt", "gte", "lt", "lte", "in", "not_in", "contains", "not_contains",
             "starts_with", "ends_with", "exists", "not_exists")
NEGATIVE = {"neq": "eq", "not_in": "in", "not_contains": "contains", "not_exists": "exists"}
TOP_LEVEL = {"type": "type", "eventType": "type", "userId": "user", "sessionId": "session",
             "timestamp": "ts"}
PROPERTY_PREFIX = "properties."
SegmentResolver = Callable[[str], np.ndarray]  # saved segment name -> user codes


@dataclass(frozen=True)
class Predicate:
    prop: str
    op: str
    value: Any = None


@dataclass(frozen=True)
class Group:
    op: str  # "and" | "or"
    items: tuple[Predicate | Group, ...]


@dataclass
class EventFilter:
    start: int | None = None
    end: int | None = None  # exclusive
    types: tuple[str, ...] | None = None
    users: tuple[str, ...] | None = None
    where: Group | None = None
    segment_users: np.ndarray | None = None  # user codes of a saved segment
    segment: str | None = None  # a saved segment's name, resolved when the query runs
    _luts: dict[tuple[str, str, str], np.ndarray] = field(default_factory=dict, repr=False)

    def intersect(self, other: EventFilter) -> EventFilter:
        """Events matching both filters."""
        def tighter(a: int | None, b: int | None, pick: Callable[[int, int], int]) -> int | None:
            return b if a is None else a if b is None else pick(a, b)

        types = self.types if other.types is None else other.types if self.types is None \
            else tuple(t for t in self.types if t in other.types)
        users = self.users if other.users is None else other.users if self.users is None \
            else tuple(u for u in self.users if u in other.users)
        wheres = tuple(w for w in (self.where, other.where) if w is not None)
        seg = self.segment_users if other.segment_users is None else other.segment_users \
            if self.segment_users is None else np.intersect1d(self.segment_users,
                                                               other.segment_users)
        return EventFilter(tighter(self.start, other.start, max), tighter(self.end, other.end,
                                                                           min),
                           types, users, Group("and", wheres) if wheres else None, seg)

    def select(self, snap: Any) -> Iterator[tuple[Any, slice, np.ndarray | None]]:
        """(block, rows in the time range, mask within those rows or None for all), by the
        registered backend's evaluator (the embedded engine's `filter_eval.select`)."""
        return _evaluator().select(self, snap)

    def mask(self, block: Any, sl: slice, snap: Any, type_codes: np.ndarray | None = None,
             skip_types: bool = False) -> np.ndarray | None:
        """This filter's rows among `block[sl]` (None: all), by the registered evaluator."""
        return _evaluator().mask(self, block, sl, snap, type_codes, skip_types)


class FilterEvaluator(Protocol):
    """How a backend evaluates a filter over its own blocks (the embedded engine registers
    `rta.core.embedded.filter_eval` when it is imported, i.e. before any snapshot exists)."""

    def select(self, flt: EventFilter, snap: Any) -> Iterator[tuple[Any, slice,
                                                                    np.ndarray | None]]: ...

    def mask(self, flt: EventFilter, block: Any, sl: slice, snap: Any,
             type_codes: np.ndarray | None = None,
             skip_types: bool = False) -> np.ndarray | None: ...


_EVALUATOR: list[FilterEvaluator] = []


def register_evaluator(evaluator: FilterEvaluator) -> None:
    """Install the evaluator `EventFilter.select/mask` delegate to."""
    _EVALUATOR[:] = [evaluator]


def _evaluator() -> FilterEvaluator:
    if not _EVALUATOR:
        raise RuntimeError("no filter evaluator registered: import a backend first")
    return _EVALUATOR[0]


def _names(value: Any, fieldname: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise field_error(fieldname, "must be a string or a non-empty list of strings")


def _property_name(name: str) -> str:
    """'properties.page' -> 'page'; 'properties.type' keeps its prefix so it is not taken
    for the top-level field `type`."""
    if name.startswith(PROPERTY_PREFIX):
        bare = name[len(PROPERTY_PREFIX):]
        return name if bare in TOP_LEVEL else bare
    return name


def parse_predicate(spec: Any, path: str) -> Predicate | Group:
    """One `where` item: a predicate, a group, or the {key: value} equality shorthand."""
    if not isinstance(spec, dict):
        raise field_error(path, "must be an object")
    for key in ("and", "or"):
        if key in spec and isinstance(spec[key], list):
            return parse_group(spec[key], key, f"{path}.{key}")
    if "filters" in spec and isinstance(spec["filters"], list):
        op = str(spec.get("operator", spec.get("op", "AND"))).lower()
        if op not in ("and", "or"):
            raise field_error(f"{path}.operator", "must be AND or OR", value=spec.get("operator"))
        return parse_group(spec["filters"], op, f"{path}.filters")
    if "property" in spec:
        prop = spec["property"]
        if not isinstance(prop, str) or not prop:
            raise field_error(f"{path}.property", "must be a non-empty string")
        if prop == "person.":
            raise field_error(f"{path}.property", "names no person property: use person.<key>")
        prop = _property_name(prop)
        op = str(spec.get("operator", spec.get("op", "eq")))
        if op not in OPERATORS:
            raise field_error(f"{path}.operator", f"must be one of {', '.join(OPERATORS)}",
                              value=op, allowed=list(OPERATORS))
        value = spec.get("value")
        if op in ("in", "not_in"):
            if not isinstance(value, list) or not value:
                raise field_error(f"{path}.value", f"must be a non-empty list for {op}")
        elif op in ("contains", "not_contains", "starts_with", "ends_with"):
            if not isinstance(value, str):
                raise field_error(f"{path}.value", f"must be a string for {op}")
        elif op in ("gt", "gte", "lt", "lte"):
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                raise field_error(f"{path}.value", f"must be a number or string for {op}")
        elif op in ("eq", "neq") and (value is None or isinstance(value, dict | list)):
            raise field_error(f"{path}.value", f"must be a scalar for {op}")
        return Predicate(prop, op, value)
    items = [Predicate(_property_name(k), "eq", v) for k, v in spec.items()]
    for k, v in spec.items():
        if v is None or isinstance(v, dict | list):
            raise field_error(f"{path}.{k}", "shorthand filters need a scalar value")
    if not items:
        raise field_error(path, "must not be empty")
    return items[0] if len(items) == 1 else Group("and", tuple(items))


def parse_group(items: Any, op: str, path: str) -> Group:
    if not isinstance(items, list) or not items:
        raise field_error(path, "must be a non-empty list")
    return Group(op, tuple(parse_predicate(item, f"{path}[{i}]")
                           for i, item in enumerate(items)))


def parse_where(spec: Any, path: str = "where", op: str = "and") -> Group | None:
    """`where` as a list (combined by `op`) or a single object; None when absent."""
    if spec is None:
        return None
    if isinstance(spec, list):
        return parse_group(spec, op, path) if spec else None
    if not isinstance(spec, dict):
        raise field_error(path, "must be a list of conditions or one condition object",
                          got=type(spec).__name__)
    node = parse_predicate(spec, path)
    return node if isinstance(node, Group) else Group("and", (node,))


def parse_filter(spec: Any, path: str = "filter", now: int | None = None,
                 segments: SegmentResolver | None = None,
                 defer_segment: bool = False) -> EventFilter:
    """Compile the JSON filter shape (see module docstring); errors name the field path.

    `defer_segment` keeps a saved segment's name (`flt.segment`) for the query to resolve
    when it runs (in its worker thread, under its limiter and timeout), so parsing stays
    pure; otherwise `segments` resolves it now.
    """
    if spec is None:
        return EventFilter()
    if not isinstance(spec, dict):
        raise field_error(path, "must be an object")
    prefix = f"{path}." if path else ""
    types = None
    for key in ("type", "eventType", "types"):
        if spec.get(key) is not None:
            types = _names(spec[key], prefix + key)
    users = _names(spec.get("userId", spec.get("userIds")), prefix + "userId")
    start, end = parse_time_range(spec.get("startTime"), spec.get("endTime"), now,
                                  prefix + "startTime", prefix + "endTime",
                                  spec.get("timeRange"))
    op = str(spec.get("operator", "AND")).lower()
    if op not in ("and", "or"):
        raise field_error(prefix + "operator", "must be AND or OR", value=spec.get("operator"))
    where = parse_where(spec.get("where", spec.get("filters")), prefix + "where", op)
    flt = EventFilter(start=start, end=end, types=types, users=users, where=where)
    name = spec.get("segment")
    if name is not None:
        if not isinstance(name, str):
            raise field_error(prefix + "segment", "must be a segment name")
        if defer_segment:
            flt.segment = name
            return flt
        if segments is None:
            raise field_error(prefix + "segment", "saved segments are not available here")
        try:
            flt.segment_users = segments(name)
        except KeyError:
            raise field_error(prefix + "segment", f"no saved segment named {name!r}") from None
    return flt


def parse_cli_where(expr: str) -> Predicate:
    """The compact CLI form: 'page=/products', 'duration>1000', 'plan!=free', 'page~prod',
    'url^=/docs', 'email?' (exists), '!email?' (not exists), 'plan in pro,team'.

    A missing value ('plan=', 'plan==') cannot be read: a ValidationError (the CLI exits 2),
    since it is a slip of the keyboard, not a question. A value of the wrong kind for the
    property ('amount>abc') reads fine (text compares as text) and only the data can tell it
    cannot match: the query answers with a warning (`query_warnings`)."""
    text = expr.strip()
    if text.endswith("?"):
        neg = text.startswith("!")
        return Predicate(text.strip("!?"), "not_exists" if neg else "exists")
    if " in " in text:
        key, _, vals = text.partition(" in ")
        return Predicate(key.strip(), "in", [parse_scalar(v) for v in vals.split(",")])
    for token, op in ((">=", "gte"), ("<=", "lte"), ("!=", "neq"), ("^=", "starts_with"),
                      ("$=", "ends_with"), ("!~", "not_contains"), ("~", "contains"),
                      (">", "gt"), ("<", "lt"), ("=", "eq")):
        if token in text:
            key, _, raw = text.partition(token)
            if op == "eq" and raw.startswith("="):
                raw = raw[1:]  # 'plan==pro', as programmers write it
            if raw.strip()[:1] in ("<", ">", "=", "!", "~"):
                raise ValidationError(  # 'n>>3', 'n<=>3': a typo, not a text to compare with
                    f"cannot read filter {expr!r}: the value after {token!r} starts with an "
                    "operator (a doubled operator?)", [{"field": "where", "value": expr}])
            if not raw.strip():
                raise ValidationError(  # 'plan=', 'plan==': the value is missing
                    f"cannot read filter {expr!r}: no value after {token!r} (to test whether "
                    f"the property is set, write '{key.strip()}?' or '!{key.strip()}?')",
                    [{"field": "where", "value": expr}])
            key = _property_name(key.strip())
            value: Any = raw.strip() if op in ("starts_with", "ends_with", "contains",
                                               "not_contains") else parse_scalar(raw)
            return Predicate(key, op, value)
    raise ValidationError(f"cannot read filter {expr!r}: use key=value, key>n, key~text, key?",
                          [{"field": "where", "value": expr}])


def parse_scalar(raw: str) -> Any:
    """Text typed as a JSON scalar would be: true/false, an int, a float, else the text."""
    text = raw.strip()
    if text in ("true", "false"):
        return text == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def predicate_to_json(node: Predicate | Group) -> dict[str, Any]:
    if isinstance(node, Group):
        return {"operator": node.op.upper(), "filters": [predicate_to_json(i) for i in node.items]}
    out: dict[str, Any] = {"property": node.prop, "operator": node.op}
    if node.value is not None:
        out["value"] = node.value
    return out

