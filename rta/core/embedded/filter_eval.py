"""The embedded engine's evaluation of the filter language over blocks.

The filter *spec* (`EventFilter`, `Predicate`, `Group`, parsing) is backend-neutral and lives
in `rta.core.queries.filters`; this turns one into row masks over the embedded store's
columns: time and type pruning by zone maps, string operators through per-code truth tables
built once per query (kept in the filter's `_luts`). Registered with `filters` on import of
`rta.core.embedded`, so `EventFilter.select/mask` keep working for their existing callers.

Thread rule: any thread, over one snapshot the caller holds for the whole query (blocks are
immutable).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from rta.core.embedded.person_blocks import raw_user
from rta.core.embedded.store.block import Block
from rta.core.embedded.store.dictionary import Dictionary
from rta.core.embedded.store.snapshot import Snapshot
from rta.core.events import BOOL, STR
from rta.core.queries.filters import (
    NEGATIVE,
    PROPERTY_PREFIX,
    TOP_LEVEL,
    EventFilter,
    Group,
    Predicate,
)


def select(flt: EventFilter, snap: Snapshot
           ) -> Iterator[tuple[Block, slice, np.ndarray | None]]:
    """(block, rows in the time range, mask within those rows or None for all)."""
    type_codes = None
    if flt.types is not None:
        type_codes = np.array([c for c in (snap.dicts.types.lookup(t) for t in flt.types)
                               if c >= 0], dtype=np.int32)
        if not len(type_codes):
            return
    only_types = (flt.users is None and flt.where is None
                  and flt.segment_users is None)
    for block, sl in snap.ranges(flt.start, flt.end):
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
        rows = mask(flt, block, sl, snap, block_types, skip_types=block_types is None)
        if rows is not None and not rows.any():
            continue
        yield block, sl, rows

def mask(flt: EventFilter, block: Block, sl: slice, snap: Snapshot,
         type_codes: np.ndarray | None = None,
         skip_types: bool = False) -> np.ndarray | None:
    mask: np.ndarray | None = None

    def both(m: np.ndarray) -> None:
        nonlocal mask
        mask = m if mask is None else mask & m

    if flt.types is not None and not skip_types:
        if type_codes is None:
            type_codes = np.array([snap.dicts.types.lookup(t) for t in flt.types])
        t = block.type[sl]
        both(t == type_codes[0] if len(type_codes) == 1 else np.isin(t, type_codes))
    if flt.users is not None:
        users = getattr(snap.dicts, "raw_users", snap.dicts.users)  # (group-aware: ids)
        codes = np.array([users.lookup(u) for u in flt.users], dtype=np.int32)
        both(np.isin(raw_user(block)[sl], codes[codes >= 0]))  # ids as sent
    if flt.segment_users is not None:
        both(np.isin(block.user[sl], flt.segment_users))
    if flt.where is not None:
        both(_eval(flt, flt.where, block, sl, snap))
    return mask

def _eval(flt: EventFilter, node: Predicate | Group, block: Block, sl: slice,
          snap: Snapshot) -> np.ndarray:
    if isinstance(node, Group):
        out = _eval(flt, node.items[0], block, sl, snap)
        for item in node.items[1:]:
            m = _eval(flt, item, block, sl, snap)
            out = out & m if node.op == "and" else out | m
        return out
    if node.op in NEGATIVE:
        return ~_eval(flt, Predicate(node.prop, NEGATIVE[node.op], node.value),
                           block, sl, snap)
    if node.prop in TOP_LEVEL:
        return _eval_top(flt, node, block, sl, snap)
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
            out |= _string_match(flt, node, strs, col[sl], snap.dicts.values)
    if nums and node.op not in ("contains", "starts_with", "ends_with"):
        num = block.numeric(node.prop)[sl]
        target = np.asarray(nums, dtype=np.float64)
        out |= _compare(num, node.op, target)
    if bools and node.op in ("eq", "in"):
        col = block.column(BOOL, node.prop)
        if col is not None:
            out |= np.isin(col[sl], np.asarray(bools, dtype=np.int8))
    return out

def _string_match(flt: EventFilter, node: Predicate, strs: list[str], codes: np.ndarray,
                  dictionary: Dictionary) -> np.ndarray:
    if node.op in ("eq", "in"):
        wanted = np.array([dictionary.lookup(s) for s in strs], dtype=np.int32)
        wanted = wanted[wanted >= 0]
        if not len(wanted):
            return np.zeros(len(codes), dtype=bool)
        return codes == wanted[0] if len(wanted) == 1 else np.isin(codes, wanted)
    lut = _lut(flt, node, strs[0], dictionary)
    return lut[np.where(codes < 0, len(lut) - 1, codes)]

def _lut(flt: EventFilter, node: Predicate, value: str, dictionary: Dictionary) -> np.ndarray:
    """A per-code truth table for a string operator, built once per query."""
    key = (node.prop, node.op, value)
    lut = flt._luts.get(key)
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
        flt._luts[key] = lut
    return lut

def _eval_top(flt: EventFilter, node: Predicate, block: Block, sl: slice,
              snap: Snapshot) -> np.ndarray:
    col = TOP_LEVEL[node.prop]
    arr = (raw_user(block) if col == "user" else getattr(block, col))[sl]  # ids as sent
    if col == "ts":
        if node.op == "exists":
            return np.ones(len(arr), dtype=bool)
        values = node.value if node.op == "in" else [node.value]
        return _compare(arr.astype(np.float64), node.op, np.asarray(values, np.float64))
    if node.op == "exists":
        return arr >= 0
    dictionary = {"type": snap.dicts.types,
                  "user": getattr(snap.dicts, "raw_users", snap.dicts.users),  # ids as sent
                  "session": snap.dicts.sessions}[col]
    values = node.value if node.op == "in" else [node.value]
    strs = [str(v) for v in values]
    return _string_match(flt, node, strs, arr, dictionary)


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
