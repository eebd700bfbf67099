"""Builders for export tests: large stores straight from numpy (no per-event Python)."""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa

from rta.core.embedded.store.block import Block
from rta.core.embedded.store.dictionary import Dictionaries
from rta.core.embedded.store.segment import write_segment
from rta.core.events import INT64_MIN

TYPES = ("pageview", "click", "purchase", "signup")
PAGES = ("/", "/pricing", "/docs", "/blog/a,b", 'say "hi"', "multi\nline", "ünï©ødé")


def numpy_block(dicts: Dictionaries, n: int, start_ts: int, seed: int = 0,
                users: int = 1000, step: int = 1) -> Block:
    """`n` time-sorted events: UUID ids, a few types, string/int/float/bool properties and a
    key (`mixed`) whose type varies between int, float, string and bool."""
    rng = np.random.default_rng(seed)
    type_codes = np.array([dicts.types.code(t) for t in TYPES], dtype=np.int32)
    user_codes = np.array([dicts.users.code(f"user-{i}") for i in range(users)], np.int32)
    page_codes = np.array([dicts.values.code(p) for p in PAGES], dtype=np.int32)
    word_codes = np.array([dicts.values.code(w) for w in ("alpha", "7", "")], np.int32)
    ts = start_ts + np.arange(n, dtype=np.int64) * step
    kinds = rng.integers(0, len(TYPES), n)
    user = user_codes[rng.integers(0, users, n)]
    user[rng.random(n) < 0.05] = -1
    session = np.full(n, -1, dtype=np.int32)
    page = np.where(kinds == 0, page_codes[rng.integers(0, len(page_codes), n)], -1)
    amount = np.where(kinds == 2, np.round(rng.random(n) * 100, 2), np.nan)
    quantity = np.where(kinds == 2, rng.integers(1, 5, n), INT64_MIN).astype(np.int64)
    flag = np.where(kinds == 3, rng.integers(0, 2, n), -1).astype(np.int8)
    which = rng.integers(0, 5, n)  # 0 int, 1 float, 2 string, 3 bool, 4 absent
    mixed_i = np.where(which == 0, rng.integers(-5, 5, n), INT64_MIN).astype(np.int64)
    mixed_f = np.where(which == 1, rng.integers(-5, 5, n) + 0.0, np.nan)
    mixed_f[(which == 1) & (rng.random(n) < 0.5)] += 0.25
    mixed_s = np.where(which == 2, word_codes[rng.integers(0, 3, n)], -1).astype(np.int32)
    mixed_b = np.where(which == 3, rng.integers(0, 2, n), -1).astype(np.int8)
    hi = rng.integers(0, 2**63, n, dtype=np.int64).astype(np.uint64)
    lo = rng.integers(0, 2**63, n, dtype=np.int64).astype(np.uint64)
    hi = (hi & ~np.uint64(0xF000)) | np.uint64(0x4000)  # a version-4 looking UUID
    return Block(ts=ts, recv=ts + 5, type=type_codes[kinds], user=user, session=session,
                 id_hi=hi, id_lo=lo, id_text=None,
                 props={"s:page": page.astype(np.int32), "f:amount": amount,
                        "i:quantity": quantity, "b:flag": flag, "i:mixed": mixed_i,
                        "f:mixed": mixed_f, "s:mixed": mixed_s, "b:mixed": mixed_b},
                 label="test")


def write_store(data_dir: str, n: int, per_segment: int = 250_000,
                start_ts: int = 1_700_000_000_000) -> None:
    """A data directory holding `n` events in sealed segments (open it with ColumnStore)."""
    from rta.core.embedded.store import ColumnStore, StoreConfig

    store = ColumnStore(data_dir, StoreConfig(fsync=False))
    seg_dir = os.path.join(data_dir, "segments")
    try:
        for seq, start in enumerate(range(0, n, per_segment), 1):
            size = min(per_segment, n - start)
            block = numpy_block(store.dicts, size, start_ts + start, seed=seq)
            store.dicts.sync()
            write_segment(seg_dir, seq, block, 0)
    finally:
        store.close()


def custom_ids(block: Block, every: int = 7) -> Block:
    """The block with a non-UUID id on every `every`-th row (kept as text in the store)."""
    texts = [f"evt,{i}\"x" if i % every == 0 else None for i in range(block.n)]
    block.id_text = pa.array(texts, pa.string())
    return block
