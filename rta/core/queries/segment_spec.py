"""Segment definitions and the small helpers every behavioural spec shares: pure parsing.

A segment is a tree of conditions (see `rta.core.embedded.segments` for how the embedded
engine evaluates one): property predicates on each user's latest value, `EventCondition`s
(performed an event so many times), and AND/OR groups. Parsing needs no data.

Thread rule: pure functions over their arguments; any thread.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from rta.core.errors import field_error
from rta.core.queries.filters import EventFilter, Group, Predicate, parse_predicate, parse_where
from rta.core.queries.page_steps import step_filter
from rta.core.queries.timeparse import parse_time_range

DEFAULT_SAMPLE = 20
MAX_SAMPLE = 1000
_COUNT_OPS = ("eq", "neq", "gt", "gte", "lt", "lte")


def time_range(body: dict[str, Any], now: int | None) -> tuple[int | None, int | None]:
    return parse_time_range(body.get("startTime"), body.get("endTime"), now,
                            time_range=body.get("timeRange"))


def pct(num: float, den: float) -> float:
    """A percentage 0-100 rounded to 2 decimals; 0 when the denominator is 0."""
    return round(100.0 * num / den, 2) if den else 0.0


def where_of(spec: dict[str, Any], path: str) -> Group | None:
    """A `filters`/`where` value: the seed's {key: value} object, a list, or a group."""
    key = "filters" if "filters" in spec else "where"
    value = spec.get(key)
    if isinstance(value, dict) and not value:
        return None
    return parse_where(value, f"{path}.{key}" if path else key)


# -- segment definitions --------------------------------------------------------------------


@dataclass(frozen=True)
class EventCondition:
    """`flt` is what the backends count (a page step's, see `page_steps`); `written` the
    condition as the user wrote it (warnings speak of it)."""

    flt: EventFilter
    op: str
    value: int
    written: EventFilter | None = None


Node = Predicate | Group | EventCondition


@dataclass
class SegmentDef:
    name: str | None
    tree: Node | None
    start: int | None
    end: int | None


def parse_segment(config: Any, path: str = "config", now: int | None = None) -> SegmentDef:
    """Validate a segment definition (see the module docstring); errors name the field."""
    if not isinstance(config, dict):
        raise field_error(path or "config", "must be an object")
    prefix = f"{path}." if path else ""
    name = config.get("name")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise field_error(prefix + "name", "must be a non-empty string")
    op = str(config.get("operator", "AND")).lower()
    if op not in ("and", "or"):
        raise field_error(prefix + "operator", "must be AND or OR", value=config.get("operator"))
    items = config.get("filters", config.get("conditions", []))
    if isinstance(items, dict):
        items = [items]
    if not isinstance(items, list):
        raise field_error(prefix + "filters", "must be a list of conditions")
    tree = _parse_items(items, op, prefix + "filters") if items else None
    start, end = parse_time_range(config.get("startTime"), config.get("endTime"), now,
                                  prefix + "startTime", prefix + "endTime",
                                  config.get("timeRange"))
    return SegmentDef(name, tree, start, end)


def _parse_items(items: list[Any], op: str, path: str) -> Group:
    """A group whose items may include EventConditions (rewritten before evaluation)."""
    nodes: list[Any] = [_parse_node(item, f"{path}[{i}]") for i, item in enumerate(items)]
    return Group(op, tuple(nodes))


def _parse_node(spec: Any, path: str) -> Node:
    if not isinstance(spec, dict):
        raise field_error(path, "must be an object")
    for key in ("and", "or"):
        if isinstance(spec.get(key), list) and spec[key]:
            return _parse_items(spec[key], key, f"{path}.{key}")
    if isinstance(spec.get("filters"), list) and "property" not in spec and \
            "eventType" not in spec:
        op = str(spec.get("operator", "AND")).lower()
        if op not in ("and", "or"):
            raise field_error(f"{path}.operator", "must be AND or OR",
                              value=spec.get("operator"))
        if not spec["filters"]:
            raise field_error(f"{path}.filters", "must be a non-empty list")
        return _parse_items(spec["filters"], op, f"{path}.filters")
    scope = spec.get("scope", "user")
    if scope not in ("user", "event"):
        raise field_error(f"{path}.scope", "must be 'user' (latest value) or 'event'",
                          value=scope)
    etype = spec.get("eventType", spec.get("event"))
    if etype is not None and (not isinstance(etype, str) or not etype):
        raise field_error(f"{path}.eventType", "must be an event type name")
    if "property" in spec and scope == "user":
        pred = parse_predicate({k: v for k, v in spec.items()
                                if k in ("property", "operator", "op", "value")}, path)
        if etype is None:
            return pred
        # the latest value among events of one type: an event-type-scoped property
        assert isinstance(pred, Predicate)
        return Predicate(f"{etype}\x00{pred.prop}", pred.op, pred.value)
    where: Group | None
    if "property" in spec:  # scope == "event": has an event where the predicate holds
        node = parse_predicate({k: v for k, v in spec.items()
                                if k in ("property", "operator", "op", "value")}, path)
        where = node if isinstance(node, Group) else Group("and", (node,))
    else:
        if etype is None:
            raise field_error(path, "a condition needs `property` (user property) or "
                              "`eventType` (performed event)")
        where = where_of(spec, path) if ("where" in spec or "filters" in spec) else None
    count = spec.get("count", {"operator": "gte", "value": 1})
    if isinstance(count, int) and not isinstance(count, bool):
        count = {"operator": "gte", "value": count}
    if not isinstance(count, dict):
        raise field_error(f"{path}.count", "must be {operator, value}")
    cop = count.get("operator", "gte")
    cval = count.get("value", 1)
    if cop not in _COUNT_OPS:
        raise field_error(f"{path}.count.operator", f"must be one of {', '.join(_COUNT_OPS)}",
                          value=cop)
    if isinstance(cval, bool) or not isinstance(cval, int) or cval < 0:
        raise field_error(f"{path}.count.value", "must be a non-negative integer", value=cval)
    written = EventFilter(types=(etype,) if etype else None, where=where)
    flt = step_filter(etype, where) if etype else written
    return EventCondition(flt, cop, cval, written)


def walk(node: Node | None) -> Iterable[Node]:
    if node is None:
        return
    yield node
    if isinstance(node, Group):
        for item in node.items:
            yield from walk(item)


def sample_size(value: Any) -> int:
    if value is None:
        return DEFAULT_SAMPLE
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SAMPLE:
        raise field_error("sampleSize", f"must be an integer from 0 to {MAX_SAMPLE}",
                          value=value)
    return value


