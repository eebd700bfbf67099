"""A person's profile as `GET /persons/{id}` answers it: identity, properties, activity.

Activity (first and last seen, event count, the newest events) is read through the query
backend (embedded or ClickHouse) with a `userId` filter on every distinct id of the
person, so both backends answer alike; it runs off the event loop like every query.

Thread rule: any thread (a worker thread under the server's query limiter).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rta.core import query_services
from rta.core.queries.filters import EventFilter

if TYPE_CHECKING:
    from rta.core.engine import Engine

RECENT_EVENTS = 10


def describe(engine: Engine, person_or_id: str, recent: int = RECENT_EVENTS) -> dict[str, Any]:
    """`{personId, distinctIds, identified, properties, firstSeen, lastSeen, eventCount,
    recentEvents}`; 404 (NotFoundError) for an id never seen."""
    out = engine.persons.describe(person_or_id)
    out["properties"] = engine.profiles.properties(out["personId"])
    ctx = query_services.context(engine)
    flt = EventFilter(users=tuple(out["distinctIds"]))
    ts, _ = ctx.backend.timestamps(flt, None)
    out["eventCount"] = len(ts)
    out["firstSeen"] = int(ts.min()) if len(ts) else None
    out["lastSeen"] = int(ts.max()) if len(ts) else None
    out["recentEvents"] = ctx.backend.events(flt, recent, None).events if recent else []
    return out
