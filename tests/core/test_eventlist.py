"""GET /events order and paging: newest first by timestamp, then by arrival, every event
exactly once across pages, whatever seals happen and whatever arrives between pages."""

from __future__ import annotations

import uuid
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from rta.core.embedded.eventlist import list_events
from rta.core.embedded.store import ColumnStore, StoreConfig
from rta.core.events import EventValidator
from rta.core.queries.event_list import Cursor
from rta.core.queries.filters import EventFilter

NOW = 1_800_000_000_000
BASE = NOW - 60_000


def append(store: ColumnStore, events: list[dict[str, Any]]) -> None:
    validator = EventValidator()
    for i in range(0, len(events), 3):
        batch, rejected = validator.validate_batch(events[i:i + 3], now=NOW)
        assert not rejected
        store.append(batch)


def page_through(store: ColumnStore, size: int, flt: EventFilter,
                 between: list[dict[str, Any]] | None = None) -> list[int]:
    got: list[int] = []
    cursor = None
    while True:
        out = list_events(store.snapshot(), flt, limit=size, cursor=cursor)
        got += [e["properties"]["n"] for e in out.events]
        if out.next_cursor is None:
            return got
        cursor = Cursor.decode(out.to_json()["nextCursor"])  # (as a client sends it back)
        if between:  # newer arrivals between pages must not show up in later pages
            append(store, between)
            between = None


@settings(max_examples=120, deadline=None)
@given(stamps=st.lists(st.integers(0, 3), min_size=1, max_size=50),
       client_ids=st.booleans(), size=st.integers(1, 7), head=st.integers(2, 9),
       only_even=st.booleans())
def test_pages_run_newest_first_by_time_then_arrival(stamps: list[int], client_ids: bool,
                                                     size: int, head: int,
                                                     only_even: bool) -> None:
    store = ColumnStore(None, StoreConfig(max_head_events=head, fsync=False))
    events = [{"type": "even" if i % 2 == 0 else "odd", "timestamp": BASE + s,
               "properties": {"n": i}, **({"id": str(uuid.uuid4())} if client_ids else {})}
              for i, s in enumerate(stamps)]
    append(store, events)
    flt = EventFilter(types=["even"]) if only_even else EventFilter()
    wanted = [i for i in range(len(events)) if not only_even or i % 2 == 0]
    expected = sorted(wanted, key=lambda i: (stamps[i], i), reverse=True)
    later = [{"type": "even", "timestamp": BASE + 3, "properties": {"n": 1000 + i}}
             for i in range(4)]
    assert page_through(store, size, flt, later) == expected
    store.close()


def test_parse_keeps_a_saved_segment_as_a_name_and_token_never_filters() -> None:
    """Parsing touches no data: the segment is resolved when the query runs (in its worker
    thread); `token` authenticates browsers and must not become a property filter."""
    from rta.core.queries.event_list import parse_event_list

    q = parse_event_list([("segment", "vip"), ("token", "secret"), ("plan", "pro"),
                          ("limit", "5")])
    assert q.filter.segments == (("segment", "vip"),)
    assert q.limit == 5 and q.cursor is None
    assert "token" not in repr(q.filter.flt.where) and "plan" in repr(q.filter.flt.where)
