"""Lossless integer column encodings applied before a segment is compressed.

zstd alone sees 8-byte timestamps and 4-byte codes as mostly-noise bytes; after subtracting
the column's minimum (and, for time-ordered columns, taking differences first) the values fit
1-4 bytes and what remains compresses to a fraction of that. Every transform is exact modulo
2**64, so sentinels (INT64_MIN, -1) and full-width random ids survive unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# Columns stored as differences from the previous row: sorted (ts) or arrival-correlated.
DELTA_COLUMNS = frozenset({"ts", "recv", "id_lo"})
_WIDTHS = (np.uint8, np.uint16, np.uint32, np.uint64)


def encode_column(name: str, values: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    """(the narrowest unsigned array holding `values` exactly, how to decode it)."""
    kind = values.dtype.kind
    if kind not in "iu" or not len(values):
        return values, {"enc": "raw"}
    meta: dict[str, Any] = {"enc": "offset", "dtype": values.dtype.str}
    wide = values.astype(np.int64, copy=False) if kind == "i" else values.view(np.int64)
    if name in DELTA_COLUMNS:
        meta["enc"] = "delta"
        meta["first"] = int(wide[0])
        wide = np.diff(wide, prepend=wide[:1])  # (wraps modulo 2**64, as the cumsum undoing it)
    base = int(wide.min())
    shifted = (wide - np.int64(base)).view(np.uint64)
    top = int(shifted.max())
    width = next(w for w in _WIDTHS if top <= np.iinfo(w).max)
    meta["base"] = base
    return shifted.astype(width), meta


def decode_column(stored: np.ndarray, meta: dict[str, Any]) -> np.ndarray:
    """The original column of `encode_column`: one widening pass and an add (wrapping
    modulo the width, which is exact), plus a cumulative sum for deltas."""
    enc = meta["enc"]
    if enc == "raw":
        return stored
    dtype = np.dtype(meta["dtype"])
    if enc == "offset":
        out = stored.astype(dtype)  # (uint -> int wraps: the add below wraps it back)
        out += np.array([meta["base"]], np.int64).view(np.uint64).astype(dtype)[0]
        return out
    wide = stored.astype(np.int64)
    wide += np.int64(meta["base"])
    np.cumsum(wide, out=wide)
    wide += np.int64(meta["first"])
    return wide.view(dtype) if dtype.itemsize == 8 else wide.astype(dtype)
