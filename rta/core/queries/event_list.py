"""GET /events as a typed query: raw events newest first, with keyset (cursor) paging.

`parse_event_list` turns the query string into an `EventListQuery` without touching data (a
saved segment stays a name); `execute` resolves it and asks the backend for one page, in the
query's worker thread. The cursor is part of the spec: where the previous page ended, as the
last event's timestamp and its arrival rank among events with that exact timestamp.

Thread rule: parse anywhere (pure); `execute` in the query's worker thread.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rta.core.errors import field_error
from rta.core.queries.analytics import resolve_filter
from rta.core.queries.backend import QueryContext
from rta.core.queries.filters import Group, Predicate, parse_filter, parse_where
from rta.core.queries.params import FilterSpec

MAX_LIMIT = 10_000
DEFAULT_LIMIT = 100
# Query parameters with a meaning of their own; any other one is a property equality filter
# (`token` authenticates clients that cannot send headers: it never filters).
RESERVED = frozenset({"type", "eventType", "userId", "sessionId", "startTime", "endTime",
                      "timeRange", "limit", "cursor", "segment", "where", "operator", "token"})


@dataclass(frozen=True)
class Cursor:
    """Where a page ended: the last event's timestamp and its arrival rank among the events
    with that exact timestamp (0 = the first to arrive). Ranks are stable: events arriving
    later take higher ones, and sealing keeps arrival order among equal timestamps."""

    ts: int
    rank: int

    def encode(self) -> str:
        raw = json.dumps([self.ts, self.rank]).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            ts, rank = json.loads(raw)
            return cls(int(ts), int(rank))
        except Exception:
            raise field_error("cursor", "is not a cursor this server issued") from None


@dataclass(frozen=True)
class EventListQuery:
    filter: FilterSpec
    limit: int = DEFAULT_LIMIT
    cursor: Cursor | None = None


@dataclass(frozen=True)
class EventPage:
    """One page: rendered events (as the API shows them) and the cursor of the next page."""

    events: list[dict[str, Any]]
    next_cursor: Cursor | None

    def to_json(self) -> dict[str, Any]:
        return {"events": self.events, "count": len(self.events),
                "nextCursor": None if self.next_cursor is None else self.next_cursor.encode()}


def parse_event_list(args: Sequence[tuple[str, str]], now: int | None = None) -> EventListQuery:
    """The query of a GET /events query string (its (name, value) pairs, repeats kept)."""
    first: dict[str, str] = {}
    for key, value in args:
        first.setdefault(key, value)

    def every(name: str) -> list[str]:
        return [v for k, v in args if k == name]

    spec: dict[str, Any] = {}
    for name in ("startTime", "endTime", "timeRange", "segment"):
        if first.get(name):
            spec[name] = first[name]
    types = every("type") or every("eventType")
    if types:
        spec["type"] = [t for v in types for t in v.split(",") if t]
    users = every("userId")
    if users:
        spec["userId"] = users
    flt = parse_filter(spec, path="", now=now, defer_segment=True)
    segments = () if flt.segment is None else (("segment", flt.segment),)
    flt.segment = None
    extra = _property_params(args)
    where_raw = first.get("where")
    if where_raw:
        try:
            where_json = json.loads(where_raw)
        except json.JSONDecodeError:
            raise field_error("where", "must be a JSON filter list") from None
        extra_where = parse_where(where_json, "where")
        if extra_where is not None:
            extra = extra_where if extra is None else Group("and", (extra, extra_where))
    session = first.get("sessionId")
    if session:
        sess = Predicate("sessionId", "eq", session)
        extra = Group("and", (sess,)) if extra is None else Group("and", (extra, sess))
    if extra is not None:
        flt.where = extra if flt.where is None else Group("and", (flt.where, extra))
    cursor_text = first.get("cursor")
    return EventListQuery(FilterSpec(flt, spec, segments), _limit(first.get("limit")),
                          Cursor.decode(cursor_text) if cursor_text else None)


def _limit(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    try:
        value = int(raw)
    except ValueError:
        raise field_error("limit", "must be an integer", value=raw) from None
    if not 1 <= value <= MAX_LIMIT:
        raise field_error("limit", f"must be between 1 and {MAX_LIMIT}", value=value)
    return value


def _property_params(args: Sequence[tuple[str, str]]) -> Group | None:
    """Query parameters that are not reserved become property equality filters (a number
    or a boolean also matches its typed value)."""
    items: list[Predicate | Group] = []
    for key, value in args:
        if key in RESERVED:
            continue
        prop = key[len("properties."):] if key.startswith("properties.") else key
        options: list[Predicate | Group] = [Predicate(prop, "eq", value)]
        try:
            options.append(Predicate(prop, "eq", float(value)))
        except ValueError:
            if value in ("true", "false"):
                options.append(Predicate(prop, "eq", value == "true"))
        items.append(options[0] if len(options) == 1 else Group("or", tuple(options)))
    return Group("and", tuple(items)) if items else None


def execute(query: EventListQuery, ctx: QueryContext) -> EventPage:
    """One page of events (the saved segment, if any, resolved here, in the worker)."""
    return ctx.backend.events(resolve_filter(query.filter, ctx), query.limit, query.cursor)
