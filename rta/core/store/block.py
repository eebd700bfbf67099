"""Block: an immutable, time-sorted run of events held as typed numpy columns.

Segments on disk and the in-memory head both present themselves as Blocks, so every query
kernel sees one shape. Missing values use sentinels instead of validity bitmaps (NaN for
floats, INT64_MIN for ints, -1 for codes and booleans) so columns stay plain numpy arrays that
memory-map zero-copy from Arrow IPC.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pyarrow as pa

from rta.core.events import BOOL, FLOAT, INT, INT64_MIN, STR, EventBatch
from rta.core.store.dictionary import Dictionaries

_HEX_LOWER = re.compile(r"[0-9a-f]{32}")
NULL_DTYPES: dict[str, tuple[type, object]] = {
    INT: (np.int64, INT64_MIN),
    FLOAT: (np.float64, np.nan),
    STR: (np.int32, -1),
    BOOL: (np.int8, -1),
}
BASE_COLUMNS = ("ts", "recv", "type", "user", "session", "id_hi", "id_lo")


def id_parts(text: str) -> tuple[int, int, bool]:
    """(high 64 bits, low 64 bits, is_custom) of an event id.

    Canonical UUIDs are stored as 16 bytes; any other id is hashed to 16 bytes and its text
    kept beside it so it round-trips exactly.
    """
    if len(text) == 36 and text[8] == text[13] == text[18] == text[23] == "-":
        digits = text[:8] + text[9:13] + text[14:18] + text[19:23] + text[24:]
        if _HEX_LOWER.fullmatch(digits):
            value = int(digits, 16)
            return value >> 64, value & 0xFFFFFFFFFFFFFFFF, False
    h = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=16).digest(), "big")
    return h >> 64, h & 0xFFFFFFFFFFFFFFFF, True


_KEY_MIX = np.uint64(0x9E3779B97F4A7C15)


def dedup_keys(hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """One well-spread uint64 per id for duplicate lookups.

    Generated ids share their high half within a process and count in their low half, so
    neither half alone is unique across restarts; this mix of both is (up to 2**-64 odds)."""
    return lo ^ (hi * _KEY_MIX)


def null_column(kind: str, n: int) -> np.ndarray:
    dtype, sentinel = NULL_DTYPES[kind]
    return np.full(n, sentinel, dtype=dtype)


@dataclass(eq=False)
class Block:
    ts: np.ndarray
    recv: np.ndarray
    type: np.ndarray
    user: np.ndarray
    session: np.ndarray
    id_hi: np.ndarray
    id_lo: np.ndarray
    id_text: pa.Array | None = None  # custom (non-UUID) ids; null where the id is a UUID
    props: Mapping[str, np.ndarray] = field(default_factory=dict)
    label: str = "head"

    @property
    def n(self) -> int:
        return len(self.ts)

    @cached_property
    def min_ts(self) -> int:
        return int(self.ts[0]) if self.n else 0

    @cached_property
    def max_ts(self) -> int:
        return int(self.ts[-1]) if self.n else -1

    @cached_property
    def type_counts(self) -> np.ndarray:
        return np.bincount(self.type, minlength=0) if self.n else np.zeros(0, np.int64)

    @cached_property
    def max_codes(self) -> dict[str, int]:
        """The largest type, user and session code (-1 if none): checked against the
        dictionaries when a segment opens."""
        return {c: int(getattr(self, c).max()) if self.n else -1
                for c in ("type", "user", "session")}

    @cached_property
    def property_keys(self) -> dict[str, list[str]]:
        """Property key -> the kinds it has in this block."""
        out: dict[str, list[str]] = {}
        for col in self.props:
            out.setdefault(col[2:], []).append(col[0])
        return out

    def nbytes(self) -> int:
        total = sum(getattr(self, c).nbytes for c in BASE_COLUMNS)
        total += sum(a.nbytes for a in self.props.values())
        if self.id_text is not None:
            total += self.id_text.nbytes
        return total

    def has_values(self, prop: str) -> bool:
        """Whether property column `<kind>:<key>` holds a value in any row."""
        col = self.props.get(prop)
        if col is None:
            return False
        if prop[0] == FLOAT:
            return not bool(np.isnan(col).all())
        return bool((col != NULL_DTYPES[prop[0]][1]).any())

    def scan(self, name: str) -> np.ndarray:
        """A base column, or property column `p:<kind>:<key>`, for a one-pass read (exports):
        a segment decodes it without evicting the columns queries keep decoded."""
        return self.props[name[2:]] if name.startswith("p:") else getattr(self, name)

    def scan_many(self, names: list[str]) -> dict[str, np.ndarray]:
        """`scan` of several columns (a segment reads and decompresses them together)."""
        return {name: self.scan(name) for name in names}

    def time_slice(self, start: int | None, end: int | None) -> slice:
        """Rows with start <= ts < end, by binary search on the sorted timestamps."""
        lo = 0 if start is None else int(np.searchsorted(self.ts, start, "left"))
        hi = self.n if end is None else int(np.searchsorted(self.ts, end, "left"))
        return slice(lo, max(lo, hi))

    def column(self, kind: str, key: str) -> np.ndarray | None:
        return self.props.get(kind + ":" + key)

    def numeric(self, key: str) -> np.ndarray:
        """float64 values of `key` (ints and floats merged, booleans excluded), NaN if absent."""
        f = self.props.get(FLOAT + ":" + key)
        i = self.props.get(INT + ":" + key)
        if i is None:
            return f if f is not None else null_column(FLOAT, self.n)
        as_float = np.where(i == INT64_MIN, np.nan, i.astype(np.float64))
        if f is None:
            return as_float
        return np.where(np.isnan(as_float), f, as_float)

    def present(self, key: str) -> np.ndarray:
        """True where the event has property `key` in any type."""
        mask = np.zeros(self.n, dtype=bool)
        for kind in self.property_keys.get(key, ()):
            col = self.props[kind + ":" + key]
            if kind == FLOAT:
                mask |= ~np.isnan(col)
            else:
                mask |= col != NULL_DTYPES[kind][1]
        return mask

    def ids(self, rows: np.ndarray | slice) -> list[str]:
        """Event ids as text for the given rows."""
        hi = self.id_hi[rows]
        lo = self.id_lo[rows]
        texts = self.id_text.take(pa.array(np.arange(self.n)[rows])).to_pylist() \
            if self.id_text is not None else [None] * len(hi)
        return [t if t is not None else str(uuid.UUID(int=(int(h) << 64) | int(low)))
                for h, low, t in zip(hi.tolist(), lo.tolist(), texts, strict=True)]

    def take(self, rows: np.ndarray) -> Block:
        return Block(
            **{c: getattr(self, c)[rows] for c in BASE_COLUMNS},
            id_text=None if self.id_text is None else self.id_text.take(pa.array(rows)),
            props={k: v[rows] for k, v in self.props.items()}, label=self.label)


def batch_id_words(batch: EventBatch) -> tuple[np.ndarray, np.ndarray, list[str | None] | None]:
    """(id_hi, id_lo, custom texts or None) of every event in `batch`, computed once and
    kept on the batch (dedup in `reserve` and the block in `apply` both need them)."""
    words = batch.id_words
    if words is None or len(words[0]) != len(batch.ids):
        words = batch.id_words = parse_ids(batch.ids)
    return words


def batch_dedup_keys(batch: EventBatch) -> np.ndarray:
    hi, lo, _ = batch_id_words(batch)
    return dedup_keys(hi, lo)


def parse_ids(ids: list[str]) -> tuple[np.ndarray, np.ndarray, list[str | None] | None]:
    """`id_parts` for a list of ids: canonical UUIDs (the usual case) are parsed as one
    (n, 36) byte matrix; only other ids take `id_parts` one by one."""
    n = len(ids)
    hi = np.zeros(n, dtype=np.uint64)
    lo = np.zeros(n, dtype=np.uint64)
    slow: range | list[int] = range(n)
    if n >= 16:  # (for a few ids, numpy's per-call overhead exceeds the work)
        rows: np.ndarray | None = None  # None: every id is 36 characters long
        texts = ids
        if set(map(len, ids)) != _LEN36:
            rows = np.flatnonzero(np.fromiter(map(len, ids), dtype=np.int64, count=n) == 36)
            texts = [ids[i] for i in rows.tolist()]
        try:
            data = "".join(texts).encode("ascii")
        except UnicodeEncodeError:
            data = b""  # some are not ASCII: all go one by one
        if data:
            h, low, canon = uuid_words(np.frombuffer(data, dtype=np.uint8).reshape(-1, 36))
            if rows is None:
                if canon.all():
                    return h, low, None
                rows = np.arange(n)
            good = rows[canon]
            hi[good] = h[canon]
            lo[good] = low[canon]
            done = np.zeros(n, dtype=bool)
            done[good] = True
            slow = np.flatnonzero(~done).tolist()
    custom: list[str | None] | None = None
    for i in slow:
        text = ids[i]
        h_, l_, is_custom = id_parts(text)
        hi[i] = h_
        lo[i] = l_
        if is_custom:
            if custom is None:
                custom = [None] * n
            custom[i] = text
    return hi, lo, custom


_HEXVAL = np.full(256, 255, dtype=np.uint16)
_HEXVAL[np.frombuffer(b"0123456789", np.uint8)] = np.arange(10)
_HEXVAL[np.frombuffer(b"abcdef", np.uint8)] = np.arange(10, 16)
# Two ASCII hex digits (as a little-endian uint16) -> their byte value, 0xFFFF if not hex.
_PAIR = ((_HEXVAL[np.arange(65536) & 0xFF] << 4) | _HEXVAL[np.arange(65536) >> 8]).astype(
    np.uint16)
_PAIR[(_HEXVAL[np.arange(65536) & 0xFF] == 255) | (_HEXVAL[np.arange(65536) >> 8] == 255)] = 0xFFFF
_LEN36 = {36}
_HEX_SPANS = ((0, 8), (9, 13), (14, 18), (19, 23), (24, 36))


def uuid_words(chars: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(hi, lo, canonical) for an (n, 36) ASCII matrix of candidate UUID texts; canonical =
    lowercase hex with dashes, exactly the texts `id_parts` stores as 16 bytes."""
    hexes = np.concatenate([chars[:, a:b] for a, b in _HEX_SPANS], axis=1)
    pairs = _PAIR[hexes.view(np.uint16)]  # (n, 16) byte values, 0xFFFF where not hex
    canon = ~(pairs > 0xFF).any(axis=1)
    canon &= (chars[:, 8] == 45) & (chars[:, 13] == 45) & (chars[:, 18] == 45) & (
        chars[:, 23] == 45)
    words = pairs.astype(np.uint8).view(">u8").astype(np.uint64)
    return words[:, 0], words[:, 1], canon


def block_from_batch(batch: EventBatch, dicts: Dictionaries) -> Block:
    """Encode a validated batch into columns (unsorted; `sort_block` orders it)."""
    n = len(batch)
    his, los, custom = batch_id_words(batch)
    props: dict[str, np.ndarray] = {}
    for col, (rows, values) in batch.props.items():
        kind = col[0]
        if kind == STR:
            vals = dicts.values.encode(values)
        elif kind == BOOL:
            vals = np.array(values, dtype=np.int8)
        else:
            vals = np.array(values, dtype=NULL_DTYPES[kind][0])
        if len(rows) == n:  # rows ascend, one entry per row: every row has it
            props[col] = vals
        else:
            arr = null_column(kind, n)
            arr[np.array(rows, dtype=np.int64)] = vals
            props[col] = arr
    return Block(
        ts=np.array(batch.timestamps, dtype=np.int64),
        recv=np.full(n, batch.received_at, dtype=np.int64),
        type=dicts.types.encode(batch.types),
        user=dicts.users.encode(batch.users),
        session=dicts.sessions.encode(batch.sessions),
        id_hi=his, id_lo=los,
        id_text=None if custom is None else pa.array(custom, type=pa.string()),
        props=props)


def concat_blocks(blocks: list[Block], label: str = "head") -> Block:
    """One block holding all rows of `blocks`, property columns unioned (nulls filled)."""
    if len(blocks) == 1:
        return blocks[0]
    if not blocks:
        return empty_block(label)
    cols = {c: np.concatenate([getattr(b, c) for b in blocks]) for c in BASE_COLUMNS}
    names: dict[str, None] = {}
    for b in blocks:
        names.update(dict.fromkeys(b.props))
    props = {}
    for name in names:
        parts = [b.props[name] if name in b.props else null_column(name[0], b.n) for b in blocks]
        props[name] = np.concatenate(parts)
    id_text = None
    if any(b.id_text is not None for b in blocks):
        id_text = pa.concat_arrays([
            b.id_text if b.id_text is not None else pa.nulls(b.n, pa.string())
            for b in blocks])
    return Block(**cols, id_text=id_text, props=props, label=label)


def sort_block(block: Block) -> Block:
    """The block ordered by timestamp (stable: arrival order breaks ties)."""
    if block.n < 2 or bool(np.all(block.ts[1:] >= block.ts[:-1])):
        return block
    order = np.argsort(block.ts, kind="stable")
    return block.take(order)


def empty_block(label: str = "empty") -> Block:
    z64 = np.zeros(0, np.int64)
    z32 = np.zeros(0, np.int32)
    zu = np.zeros(0, np.uint64)
    return Block(z64, z64, z32, z32, z32, zu, zu, label=label)
