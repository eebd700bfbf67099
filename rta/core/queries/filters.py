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

Missing values: `neq`, `not_in`, `not_contains` and `not_exists` match events that lack the
property (as product-analytics tools do); every other operator needs the property present.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rta.core.embedded.store.block import Block
from rta.core.embedded.store.dictionary import Dictionary
from rta.core.embedded.store.snapshot import Snapshot
from rta.core.errors import ValidationError, field_error
from rta.core.events import BOOL, STR
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

    def select(self, snap: Snapshot) -> Iterator[tuple[Block, slice, np.ndarray | None]]:
        """(block, rows in the time range, mask within those rows or None for all)."""
        type_codes = None
        if self.types is not None:
            type_codes = np.array([c for c in (snap.dicts.types.lookup(t) for t in self.types)
                                   if c >= 0], dtype=np.int32)
            if not len(type_codes):
                return
        only_types = (self.users is None and self.where is None
                      and self.segment_users is None)
        for block, sl in snap.ranges(self.start, self.end):
            block_types = type_codes
            if type_codes is not None:
                counts = block.type_counts
                known = type_codes[type_codes < len(counts)]
                hits = int(counts[known].sum()) if len(known) else 0
                if not hits:
                    continue
                if hits == block.n:  # the zone map says every row is of a wanted type
                    if only_types:
                        yield block, sl, None
                        continue
                    block_types = None
            mask = self.mask(block, sl, snap, block_types, skip_types=block_types is None)
            if mask is not None and not mask.any():
                continue
            yield block, sl, mask

    def mask(self, block: Block, sl: slice, snap: Snapshot,
             type_codes: np.ndarray | None = None,
             skip_types: bool = False) -> np.ndarray | None:
        mask: np.ndarray | None = None

        def both(m: np.ndarray) -> None:
            nonlocal mask
            mask = m if mask is None else mask & m

        if self.types is not None and not skip_types:
            if type_codes is None:
                type_codes = np.array([snap.dicts.types.lookup(t) for t in self.types])
            t = block.type[sl]
            both(t == type_codes[0] if len(type_codes) == 1 else np.isin(t, type_codes))
        if self.users is not None:
            codes = np.array([snap.dicts.users.lookup(u) for u in self.users], dtype=np.int32)
            both(np.isin(block.user[sl], codes[codes >= 0]))
        if self.segment_users is not None:
            both(np.isin(block.user[sl], self.segment_users))
        if self.where is not None:
            both(self._eval(self.where, block, sl, snap))
        return mask

    def _eval(self, node: Predicate | Group, block: Block, sl: slice,
              snap: Snapshot) -> np.ndarray:
        if isinstance(node, Group):
            out = self._eval(node.items[0], block, sl, snap)
            for item in node.items[1:]:
                m = self._eval(item, block, sl, snap)
                out = out & m if node.op == "and" else out | m
            return out
        if node.op in NEGATIVE:
            return ~self._eval(Predicate(node.prop, NEGATIVE[node.op], node.value),
                               block, sl, snap)
        if node.prop in TOP_LEVEL:
            return self._eval_top(node, block, sl, snap)
        if node.prop.startswith(PROPERTY_PREFIX):  # 'properties.type': the property, not
            node = Predicate(node.prop[len(PROPERTY_PREFIX):], node.op, node.value)  # the field
        n = sl.stop - sl.start
        if node.op == "exists":
            return block.present(node.prop)[sl]
        values = node.value if node.op == "in" else [node.value]
        out = np.zeros(n, dtype=bool)
        strs = [v for v in values if isinstance(v, str)]
        nums = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
        bools = [v for v in values if isinstance(v, bool)]
        if strs:
            col = block.column(STR, node.prop)
            if col is not None:
                out |= self._string_match(node, strs, col[sl], snap.dicts.values)
        if nums and node.op not in ("contains", "starts_with", "ends_with"):
            num = block.numeric(node.prop)[sl]
            target = np.asarray(nums, dtype=np.float64)
            out |= _compare(num, node.op, target)
        if bools and node.op in ("eq", "in"):
            col = block.column(BOOL, node.prop)
            if col is not None:
                out |= np.isin(col[sl], np.asarray(bools, dtype=np.int8))
        return out

    def _string_match(self, node: Predicate, strs: list[str], codes: np.ndarray,
                      dictionary: Dictionary) -> np.ndarray:
        if node.op in ("eq", "in"):
            wanted = np.array([dictionary.lookup(s) for s in strs], dtype=np.int32)
            wanted = wanted[wanted >= 0]
            if not len(wanted):
                return np.zeros(len(codes), dtype=bool)
            return codes == wanted[0] if len(wanted) == 1 else np.isin(codes, wanted)
        lut = self._lut(node, strs[0], dictionary)
        return lut[np.where(codes < 0, len(lut) - 1, codes)]

    def _lut(self, node: Predicate, value: str, dictionary: Dictionary) -> np.ndarray:
        """A per-code truth table for a string operator, built once per query."""
        key = (node.prop, node.op, value)
        lut = self._luts.get(key)
        if lut is None or len(lut) != len(dictionary) + 1:
            words = dictionary.strings
            test: Callable[[str], bool]
            if node.op == "contains":
                test = lambda s: value in s  # noqa: E731
            elif node.op == "starts_with":
                test = lambda s: s.startswith(value)  # noqa: E731
            elif node.op == "ends_with":
                test = lambda s: s.endswith(value)  # noqa: E731
            else:
                ops = {"gt": str.__gt__, "gte": str.__ge__, "lt": str.__lt__, "lte": str.__le__}
                cmp = ops[node.op]
                test = lambda s: cmp(s, value)  # noqa: E731
            lut = np.fromiter((test(s) for s in words), dtype=bool, count=len(words))
            lut = np.append(lut, False)
            self._luts[key] = lut
        return lut

    def _eval_top(self, node: Predicate, block: Block, sl: slice,
                  snap: Snapshot) -> np.ndarray:
        col = TOP_LEVEL[node.prop]
        arr = getattr(block, col)[sl]
        if col == "ts":
            if node.op == "exists":
                return np.ones(len(arr), dtype=bool)
            values = node.value if node.op == "in" else [node.value]
            return _compare(arr.astype(np.float64), node.op, np.asarray(values, np.float64))
        if node.op == "exists":
            return arr >= 0
        dictionary = {"type": snap.dicts.types, "user": snap.dicts.users,
                      "session": snap.dicts.sessions}[col]
        values = node.value if node.op == "in" else [node.value]
        strs = [str(v) for v in values]
        return self._string_match(node, strs, arr, dictionary)


def _compare(values: np.ndarray, op: str, targets: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        if op in ("eq", "in"):
            return np.isin(values, targets) if len(targets) > 1 else values == targets[0]
        t = targets[0]
        if op == "gt":
            return values > t
        if op == "gte":
            return values >= t
        if op == "lt":
            return values < t
        if op == "lte":
            return values <= t
    return np.zeros(len(values), dtype=bool)


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
    'url^=/docs', 'email?' (exists), '!email?' (not exists), 'plan in pro,team'."""
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

