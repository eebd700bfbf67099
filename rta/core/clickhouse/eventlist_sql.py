"""GET /events in ClickHouse SQL: raw events newest first with the embedded engine's cursors.

Clients page with cursors one backend issued and may resume on another (a daemon switched to
ClickHouse), so the order and the cursor must be the embedded ones: by timestamp, then the
last to arrive first (`seq`, the arrival order), and a cursor is (timestamp, arrival rank
among every stored event with that exact timestamp, matching or not). A rank is turned back
into a set of events as "the first `rank` arrivals at that timestamp", which is what the
embedded engine keeps (so events arriving after a page was read never shift the next one).
Events render as the embedded engine renders them: properties in their stored kinds
(integers as ints), flattened keys, a missing user or session as null.

Thread rule: blocking I/O; the query's worker thread.
"""

from __future__ import annotations

from typing import Any

from rta.core.clickhouse.filter_sql import Params
from rta.core.clickhouse.view import View
from rta.core.errors import field_error
from rta.core.queries.event_list import Cursor, EventPage
from rta.core.queries.filters import EventFilter

MAX_LIMIT = 10_000


def list_events(view: View, flt: EventFilter, limit: int = 100,
                cursor: Cursor | None = None) -> EventPage:
    """The newest `limit` matching events older than `cursor`, and the next cursor (set
    whenever the page is full, as the embedded engine does)."""
    if limit < 1 or limit > MAX_LIMIT:
        raise field_error("limit", f"must be between 1 and {MAX_LIMIT}", value=limit)
    params = Params()
    conds = [view.where(flt, params)]
    if cursor is not None:
        conds.append(_older_than(view, cursor, params))
    source, maps = view.events_own_maps()  # (properties as sent, not the person's merged)
    rows = view.rows(
        f"SELECT id, type, raw_user, session, ts, recv, seq, {maps}, user "
        f"FROM {source} WHERE {' AND '.join(f'({c})' for c in conds)} "
        f"ORDER BY ts DESC, seq DESC LIMIT {int(limit)}", params)
    events = [_render(row) for row in rows]
    next_cursor = None
    if len(rows) == limit:
        last_ts, last_seq = int(rows[-1][4]), int(rows[-1][6])
        p = Params()
        (rank,), = view.rows(
            f"SELECT count() FROM {view.events} WHERE ts = {p.add(last_ts, 'Int64')} "
            f"AND seq < {p.add(last_seq, 'UInt64')}", p)
        next_cursor = Cursor(last_ts, int(rank))
    return EventPage(events, next_cursor)


def _older_than(view: View, cursor: Cursor, params: Params) -> str:
    """Events before the cursor: older timestamps, and at its timestamp the first `rank`
    arrivals (found first, so no subquery runs per shard of a Distributed table)."""
    at = params.add(int(cursor.ts), "Int64")
    p = Params()
    found = view.rows(f"SELECT seq FROM {view.events} "
                      f"WHERE ts = {p.add(int(cursor.ts), 'Int64')} "
                      f"ORDER BY seq LIMIT 1 OFFSET {max(int(cursor.rank), 0)}", p)
    if not found:  # fewer events at that timestamp than the rank: every one is older
        return f"ts <= {at}"
    return f"ts < {at} OR (ts = {at} AND seq < {params.add(int(found[0][0]), 'UInt64')})"


def _render(row: tuple[Any, ...]) -> dict[str, Any]:
    """One event as the API shows it (a page holds at most MAX_LIMIT of them)."""
    event_id, etype, user, session, ts, recv, _, strs, ints, floats, bools, person = row
    props: dict[str, Any] = {}
    for kind_values, cast in ((strs, str), (ints, int), (floats, float), (bools, bool)):
        for key, value in kind_values.items():
            props[str(key)] = cast(value)
    # `personId`: the person of the distinct id (the id itself where it was never merged)
    return {"id": str(event_id), "type": str(etype), "userId": user,
            "personId": person, "sessionId": session,
            "timestamp": int(ts), "receivedAt": int(recv),
            "properties": dict(sorted(props.items()))}  # (key order: as the embedded one)
