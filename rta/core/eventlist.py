"""Listing raw events newest first with keyset (cursor) paging."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from rta.core.errors import field_error
from rta.core.filters import EventFilter
from rta.core.render import render_events
from rta.core.store.block import Block
from rta.core.store.snapshot import Snapshot

MAX_LIMIT = 10_000


@dataclass(frozen=True)
class Cursor:
    ts: int
    hi: int
    lo: int

    def encode(self) -> str:
        raw = json.dumps([self.ts, self.hi, self.lo]).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            ts, hi, lo = json.loads(raw)
            return cls(int(ts), int(hi), int(lo))
        except Exception:
            raise field_error("cursor", "is not a cursor this server issued") from None


def list_events(snap: Snapshot, flt: EventFilter, limit: int = 100,
                cursor: Cursor | None = None) -> dict[str, Any]:
    """The newest `limit` matching events older than `cursor`, and the next cursor."""
    if limit < 1 or limit > MAX_LIMIT:
        raise field_error("limit", f"must be between 1 and {MAX_LIMIT}", value=limit)
    candidates: list[tuple[Block, np.ndarray]] = []
    end = flt.end
    if cursor is not None:
        end = cursor.ts + 1 if end is None else min(end, cursor.ts + 1)
    window = EventFilter(flt.start, end, flt.types, flt.users, flt.where, flt.segment_users)
    for block, sl, mask in window.select(snap):
        rows = np.arange(sl.start, sl.stop) if mask is None else sl.start + np.flatnonzero(mask)
        if cursor is not None:
            ts = block.ts[rows]
            at = ts == cursor.ts
            if at.any():
                hi, lo = block.id_hi[rows], block.id_lo[rows]
                older = (hi < cursor.hi) | ((hi == cursor.hi) & (lo < cursor.lo))
                rows = rows[~at | older]
        if len(rows) > limit:  # keep the newest `limit` plus any rows tied with the cutoff
            cutoff = block.ts[rows[-limit]]
            rows = rows[block.ts[rows] >= cutoff]
        if len(rows):
            candidates.append((block, rows))
    if not candidates:
        return {"events": [], "count": 0, "nextCursor": None}
    ts = np.concatenate([b.ts[r] for b, r in candidates])
    hi = np.concatenate([b.id_hi[r] for b, r in candidates])
    lo = np.concatenate([b.id_lo[r] for b, r in candidates])
    which = np.concatenate([np.full(len(r), i) for i, (_, r) in enumerate(candidates)])
    pos = np.concatenate([r for _, r in candidates])
    order = np.lexsort((lo, hi, ts))[::-1][:limit]
    events: list[dict[str, Any]] = [{}] * len(order)
    for i, (block, _) in enumerate(candidates):
        sel = np.flatnonzero(which[order] == i)
        if len(sel):
            rendered = render_events(block, pos[order[sel]], snap.dicts)
            for j, ev in zip(sel.tolist(), rendered, strict=True):
                events[j] = ev
    next_cursor = None
    if len(order) == limit:
        last = order[-1]
        next_cursor = Cursor(int(ts[last]), int(hi[last]), int(lo[last])).encode()
    return {"events": events, "count": len(events), "nextCursor": next_cursor}
