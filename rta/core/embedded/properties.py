"""Which properties stored events carry, and of which value kinds, per event type.

For the dashboards' checks (a widget reading a property no event has, or aggregating text):
answered from the blocks' key metadata and type zone maps, touching a column only when a type
is asked for, and stopping at the first block that settles the question.

Thread rule: any thread, over one snapshot the caller holds (blocks are immutable).
"""

from __future__ import annotations

import numpy as np

from rta.core.embedded.store.block import NULL_DTYPES
from rta.core.embedded.store.snapshot import Snapshot


def property_kinds(snap: Snapshot, event_type: str | None, key: str,
                   numeric: bool = False) -> set[str] | None:
    """See `Backend.property_kinds`: costs about one column scan, not a table scan."""
    code = -1
    if event_type is not None:
        code = snap.dicts.types.lookup(event_type)
        if code < 0:
            return None
    found = False
    kinds: set[str] = set()
    for block in snap.blocks:
        if not block.n:
            continue
        if event_type is not None:
            counts = block.type_counts
            if code >= len(counts) or not counts[code]:
                continue
        found = True
        rows: np.ndarray | None = None
        for kind in block.property_keys.get(key, ()):
            if kind in kinds:
                continue
            if event_type is None:
                kinds.add(kind)
                continue
            if rows is None:
                rows = block.type == code
            col = block.props[kind + ":" + key][rows]
            present = ~np.isnan(col) if kind == "f" else col != NULL_DTYPES[kind][1]
            if bool(present.any()):
                kinds.add(kind)
        if kinds and (not numeric or kinds & {"i", "f"}):
            break
    return kinds if found else None


def known_properties(snap: Snapshot, event_type: str | None) -> dict[str, set[str]] | None:
    """See `Backend.known_properties`."""
    keys: dict[str, set[str]] = {}
    found = False
    code = -1
    if event_type is not None:
        code = snap.dicts.types.lookup(event_type)
        if code < 0:
            return None
    for block in snap.blocks:
        if not block.n:
            continue
        if event_type is None:
            found = True
            for key, kinds in block.property_keys.items():
                keys.setdefault(key, set()).update(kinds)
            continue
        counts = block.type_counts
        if code >= len(counts) or not counts[code]:
            continue
        found = True
        # (sparse keys stay sparse: a pass over the values present, not keys x rows)
        rows = np.flatnonzero(block.type == code)
        for name in block.prop_columns.select(rows).names_with_values():
            keys.setdefault(name[2:], set()).add(name[0])
    return keys if found else None
