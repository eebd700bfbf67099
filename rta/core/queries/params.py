"""Request parameters of the analytics queries: pure parsing, shared by every query kind.

Values may be strings (a query string gives them) or typed JSON values (a POST body). The
filter part becomes a `FilterSpec` that keeps a saved segment's *name*: resolving it needs
data, so it happens when the query runs, not here.

Thread rule: pure functions over their arguments; any thread.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from rta.core.errors import ValidationError, field_error
from rta.core.queries.filters import (
    EventFilter,
    Group,
    parse_cli_where,
    parse_filter,
    predicate_to_json,
)
from rta.core.queries.timeparse import parse_duration

FILTER_KEYS = ("type", "eventType", "types", "userId", "userIds", "startTime", "endTime",
               "timeRange", "where", "filters", "operator", "segment", "filter")
MAX_TZ_OFFSET = 14 * 60  # minutes: UTC-14:00 to UTC+14:00 covers every zone


@dataclass(frozen=True)
class FilterSpec:
    """A query's event filter before execution.

    `flt` carries everything but segment members; `segments` lists the saved segments named
    (field path for errors, name), resolved and intersected when the query runs; `canonical`
    is the JSON the request gave, the filter's part of the cache key.
    """

    flt: EventFilter
    canonical: Any
    segments: tuple[tuple[str, str], ...] = ()


def check_keys(params: Any, allowed: tuple[str, ...]) -> None:
    """Unknown parameters are refused, so a typo never silently changes an answer."""
    if not isinstance(params, dict):
        raise ValidationError("body must be a JSON object", [{"field": ""}])
    known = set(FILTER_KEYS) | set(allowed)
    for key in params:
        if key not in known and not key.startswith("properties."):
            raise field_error(key, "unknown parameter", allowed=[
                *sorted(known), "properties.<key>"])


def one(params: dict[str, Any], name: str) -> Any:
    """A scalar parameter (the last one when a query string repeats it)."""
    value = params.get(name)
    if isinstance(value, list | tuple) and value and all(isinstance(v, str) for v in value):
        return value[-1]
    return value


def where_items(value: Any, path: str) -> list[Any]:
    """`where` in any accepted form as a list of JSON filter items."""
    if value is None or value == "":
        return []
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list | tuple):
        items: list[Any] = []
        for i, v in enumerate(value):
            items.extend(where_items(v, f"{path}[{i}]") if isinstance(v, str) else [v])
        return items
    if isinstance(value, str):
        text = value.strip()
        if text[:1] in ("[", "{"):
            try:
                return where_items(json.loads(text), path)
            except json.JSONDecodeError:
                raise field_error(path, "is not valid JSON") from None
        try:
            return [predicate_to_json(parse_cli_where(text))]
        except ValidationError:
            raise field_error(path, "must be a JSON filter list or the compact form "
                              "'page=/x', 'duration>1000'", value=value) from None
    raise field_error(path, "must be a list of filters", value=value)


def _shorthand(key: str, value: Any) -> dict[str, Any]:
    """`properties.k=v` from a query string: equal as text, or as the number/boolean it spells."""
    prop = key[len("properties."):]
    if not prop:
        raise field_error(key, "needs a property name after 'properties.'")
    if isinstance(value, list | tuple):
        value = value[-1]
    options: list[dict[str, Any]] = [{"property": prop, "operator": "eq", "value": value}]
    if isinstance(value, str):
        try:
            options.append({"property": prop, "operator": "eq", "value": float(value)})
        except ValueError:
            if value in ("true", "false"):
                options.append({"property": prop, "operator": "eq", "value": value == "true"})
    return options[0] if len(options) == 1 else {"or": options}


def _type_list(value: Any) -> Any:
    if isinstance(value, str) and "," in value:
        return [t.strip() for t in value.split(",") if t.strip()]
    if isinstance(value, list | tuple):
        out = [t.strip() for v in value for t in str(v).split(",") if t.strip()]
        return out or None
    return value


def filter_spec(params: dict[str, Any], now: int) -> FilterSpec:
    """The query's filter: top-level filter keys, then a nested `filter` object (ANDed)."""
    spec: dict[str, Any] = {}
    for key in ("startTime", "endTime", "timeRange", "operator", "segment"):
        value = one(params, key)
        if value is not None and value != "":
            spec[key] = value
    for key in ("type", "eventType", "types"):
        value = params.get(key)
        if value is not None and value != "":
            spec[key] = _type_list(value)
    users = params.get("userId", params.get("userIds"))
    if users is not None and users != "":
        spec["userId"] = [users] if isinstance(users, str) else list(users)
    where = where_items(params.get("where", params.get("filters")), "where")
    where.extend(_shorthand(k, v) for k, v in params.items() if k.startswith("properties."))
    if where:
        spec["where"] = where
    flt = parse_filter(spec, path="", now=now, defer_segment=True)
    segments = [] if flt.segment is None else [("segment", flt.segment)]
    nested = params.get("filter")
    canonical: Any = spec
    if nested is not None:
        if isinstance(nested, str):
            try:
                nested = json.loads(nested)
            except json.JSONDecodeError:
                raise field_error("filter", "is not valid JSON") from None
        inner = parse_filter(nested, path="filter", now=now, defer_segment=True)
        if inner.segment is not None:
            segments.append(("filter.segment", inner.segment))
        flt = intersect(flt, inner)
        canonical = [spec, nested]
    flt.segment = None  # kept in `segments`, with the path its errors name
    return FilterSpec(flt, canonical, tuple(segments))


def intersect(a: EventFilter, b: EventFilter) -> EventFilter:
    """Events matching both filters."""
    def both_range(x: int | None, y: int | None, pick: Callable[[int, int], int]) -> int | None:
        return y if x is None else x if y is None else pick(x, y)

    types = a.types if b.types is None else b.types if a.types is None else tuple(
        t for t in a.types if t in b.types)
    users = a.users if b.users is None else b.users if a.users is None else tuple(
        u for u in a.users if u in b.users)
    where = a.where if b.where is None else b.where if a.where is None else Group(
        "and", (a.where, b.where))
    seg = a.segment_users if b.segment_users is None else b.segment_users \
        if a.segment_users is None else np.intersect1d(a.segment_users, b.segment_users)
    out = EventFilter(start=both_range(a.start, b.start, max), end=both_range(a.end, b.end, min),
                      types=types, users=users, where=where, segment_users=seg)
    if out.start is not None and out.end is not None and out.start >= out.end:
        out.end = out.start  # empty, not an error: the two ranges simply do not overlap
    return out


def int_param(params: dict[str, Any], name: str, default: int, lo: int, hi: int) -> int:
    raw = one(params, name)
    if raw is None or raw == "":
        return default
    try:
        if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
            raise ValueError
        value = int(raw)
    except (TypeError, ValueError):
        raise field_error(name, "must be an integer", value=raw) from None
    if not lo <= value <= hi:
        raise field_error(name, f"must be between {lo} and {hi}", value=value)
    return value


def tz_offset(params: dict[str, Any]) -> int:
    """`tzOffset`: minutes east of UTC that bucket boundaries follow (330 for India, -300 for
    New York in winter), in ms; 0 (UTC) by default."""
    return int_param(params, "tzOffset", 0, -MAX_TZ_OFFSET, MAX_TZ_OFFSET) * 60_000


def bool_param(params: dict[str, Any], name: str) -> bool:
    raw = one(params, name)
    if raw is None or isinstance(raw, bool):
        return bool(raw)
    text = str(raw).strip().lower()
    if text in ("1", "true", "yes", "on", ""):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise field_error(name, "must be true or false", value=raw)


def property_name(params: dict[str, Any], name: str, required: bool) -> str | None:
    raw = one(params, name)
    if raw is None or raw == "":
        if required:
            raise field_error(name, "is required: the property (or type, userId) to use")
        return None
    if not isinstance(raw, str):
        raise field_error(name, "must be a property name", value=raw)
    return raw.strip()


def interval(params: dict[str, Any]) -> int | None:
    raw = one(params, "interval")
    if raw is None or raw == "" or raw == "auto":
        return None
    return parse_duration(raw, "interval")


def require_numeric(kinds: set[str], prop: str, field: str) -> None:
    """400 (naming `field`) when property `prop` holds values (`kinds`: 'i', 'f', 's', 'b')
    but none of them numbers: it cannot be summed. Every backend's `check_numeric`."""
    if kinds and not kinds & {"i", "f"}:
        names = sorted({"s": "string", "b": "boolean"}.get(k, k) for k in kinds)
        raise field_error(field, f"property {prop!r} is not numeric (it holds "
                          f"{' and '.join(names)} values)", value=prop,
                          allowed="a property with numeric values")
