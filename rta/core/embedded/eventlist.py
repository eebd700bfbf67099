"""Listing raw events newest first with keyset (cursor) paging (the embedded backend's
`events`; the query and its cursor are `rta.core.queries.event_list`).

Thread rule: any thread, over one snapshot the caller holds for the whole query (blocks are
immutable).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rta.core.embedded import filter_eval
from rta.core.embedded.render import render_events
from rta.core.embedded.store.block import Block
from rta.core.embedded.store.snapshot import Snapshot
from rta.core.errors import field_error
from rta.core.queries.event_list import Cursor, EventPage
from rta.core.queries.filters import EventFilter

MAX_LIMIT = 10_000


def _ranks(snap: Snapshot, block: Block, rows: np.ndarray, ts: int) -> np.ndarray:
    """Arrival ranks of `rows` of `block` (all with timestamp `ts`) among the events with
    that timestamp: snapshot blocks run in arrival order (segments by seq, then the head),
    and stable sorts keep arrival order among equal timestamps within a block."""
    before = 0
    for other in snap.blocks:
        if other is block:
            break
        if other.n and other.min_ts <= ts <= other.max_ts:
            col = other.ts
            before += int(np.searchsorted(col, ts, "right") - np.searchsorted(col, ts, "left"))
    return before + (rows - int(np.searchsorted(block.ts, ts, "left")))


def list_events(snap: Snapshot, flt: EventFilter, limit: int = 100,
                cursor: Cursor | None = None) -> EventPage:
    """The newest `limit` matching events older than `cursor`, and the next cursor.

    Newest first: by timestamp, then by arrival (the last to arrive first), so events sent
    in one batch with one timestamp come back in reverse order of sending."""
    if limit < 1 or limit > MAX_LIMIT:
        raise field_error("limit", f"must be between 1 and {MAX_LIMIT}", value=limit)
    candidates: list[tuple[Block, np.ndarray, int]] = []
    end = flt.end
    if cursor is not None:
        end = cursor.ts + 1 if end is None else min(end, cursor.ts + 1)
    window = EventFilter(flt.start, end, flt.types, flt.users, flt.where, flt.segment_users)
    order_of = {id(b): i for i, b in enumerate(snap.blocks)}
    for block, sl, mask in filter_eval.select(window, snap):
        rows = np.arange(sl.start, sl.stop) if mask is None else sl.start + np.flatnonzero(mask)
        if cursor is not None:
            at = block.ts[rows] == cursor.ts
            if at.any():
                older = _ranks(snap, block, rows[at], cursor.ts) < cursor.rank
                keep = ~at
                keep[np.flatnonzero(at)[older]] = True
                rows = rows[keep]
        if len(rows) > limit:  # keep the newest `limit` plus any rows tied with the cutoff
            cutoff = block.ts[rows[-limit]]
            rows = rows[block.ts[rows] >= cutoff]
        if len(rows):
            candidates.append((block, rows, order_of[id(block)]))
    if not candidates:
        return EventPage([], None)
    ts = np.concatenate([b.ts[r] for b, r, _ in candidates])
    which = np.concatenate([np.full(len(r), i) for i, (_, r, _) in enumerate(candidates)])
    block_order = np.concatenate([np.full(len(r), k) for _, r, k in candidates])
    pos = np.concatenate([r for _, r, _ in candidates])
    order = np.lexsort((pos, block_order, ts))[::-1][:limit]
    events: list[dict[str, Any]] = [{}] * len(order)
    for i, (block, _, _) in enumerate(candidates):
        sel = np.flatnonzero(which[order] == i)
        if len(sel):
            rendered = render_events(block, pos[order[sel]], snap.dicts)
            for j, ev in zip(sel.tolist(), rendered, strict=True):
                events[j] = ev
    next_cursor = None
    if len(order) == limit:
        last = order[-1]
        block = candidates[int(which[last])][0]
        rank = int(_ranks(snap, block, pos[last:last + 1], int(ts[last]))[0])
        next_cursor = Cursor(int(ts[last]), rank)
    return EventPage(events, next_cursor)
