"""Copying an embedded store into ClickHouse (`rta clickhouse migrate`, #17 item 7).

Blocks are converted column by column (dictionary codes decoded once per block, properties
turned into the Map columns from their dense and sparse storage), never event by event, and
inserted with a deduplication token per block slice, so running the command again after an
interruption stores nothing twice. Rows are numbered in the store's arrival order (blocks
in snapshot order, rows in block order, which keeps arrival order among equal timestamps)
below 2**40, before anything a daemon ships (its seqs start at 2**40), as they arrived first.

Verification compares events per UTC day and type in the store and in ClickHouse.

Thread rule: blocking I/O from one thread (the CLI); the store it opens is its own.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from rta.core.clickhouse.connection import ClickHouse
from rta.core.clickhouse.inserts import insert_events
from rta.core.clickhouse.rows import MAP_COLUMNS, map_column
from rta.core.clickhouse.schema import EVENTS
from rta.core.embedded.store import ColumnStore, StoreConfig
from rta.core.embedded.store.block import Block, not_null
from rta.core.embedded.store.dictionary import Dictionaries
from rta.core.events import STR

DAY_MS = 86_400_000
SLICE_ROWS = 250_000


@dataclass
class MigrationReport:
    events: int = 0
    blocks: int = 0
    mismatches: list[tuple[str, str, int, int]] = field(default_factory=list)  # day, type,
    # events in the store, events in ClickHouse


def block_table(block: Block, dicts: Dictionaries, first_seq: int) -> pa.Table:
    """`block` as rows of the `events` table."""
    n = block.n
    strings = dicts.values.decoded()
    triples: dict[str, tuple[list[np.ndarray], list[pa.Array], list[pa.Array]]] = {
        k: ([], [], []) for k in MAP_COLUMNS}

    def add(kind: str, rows: np.ndarray, key: str | list[str], raw: np.ndarray) -> None:
        bucket = triples[kind]
        bucket[0].append(rows.astype(np.int64))
        keys = pa.array([key] * len(rows) if isinstance(key, str) else key, pa.string())
        bucket[1].append(keys)
        bucket[2].append(pa.array(strings[raw] if kind == STR else raw))

    columns = block.prop_columns
    for name in columns.dense_names():
        col = columns.dense_column(name)
        present = np.flatnonzero(not_null(name[0], col))
        if len(present):
            add(name[0], present, name[2:], col[present])
    for kind, group in columns.groups().items():
        if not len(group.rows):
            continue
        key_of_entry = np.searchsorted(group.offsets, np.arange(len(group.rows)), "right") - 1
        names = np.array([nm[2:] for nm in group.names], dtype=object)
        add(kind, np.asarray(group.rows), names[key_of_entry].tolist(),
            np.asarray(group.values))
    maps = {}
    for kind, column in MAP_COLUMNS.items():
        rows, keys, values = triples[kind]
        if rows:
            maps[column] = map_column(n, kind, np.concatenate(rows), pa.concat_arrays(keys),
                                      pa.concat_arrays([v.cast(values[0].type)
                                                        for v in values]))
        else:
            maps[column] = map_column(n, kind, np.zeros(0, np.int64), pa.array([], pa.string()),
                                      pa.array([], pa.string() if kind == STR else pa.int64()))
    return pa.table({
        "ts": pa.array(block.ts, pa.int64()),
        "recv": pa.array(block.recv, pa.int64()),
        "seq": pa.array(np.arange(first_seq, first_seq + n, dtype=np.uint64)),
        "id": pa.array(block.ids(slice(0, n)), pa.string()),
        "type": pa.array(dicts.types.decode(block.type), pa.string()),
        "user": pa.array(dicts.users.decode(block.user), pa.string()),
        "session": pa.array(dicts.sessions.decode(block.session), pa.string()),
        **maps,
    })


def migrate(data_dir: str, ch: ClickHouse,
            progress: Callable[[int, int], None] | None = None) -> MigrationReport:
    """Copy every event of the store at `data_dir` into `ch` (schema already set up), then
    verify counts per day and type. `progress(done, total)` after each slice."""
    store = ColumnStore(data_dir, StoreConfig(fsync=False))
    report = MigrationReport()
    try:
        snap = store.snapshot()
        blocks = [b for b in snap.blocks if b.n]
        total = sum(b.n for b in blocks)
        seq = 0
        for index, block in enumerate(blocks):
            types, pairs = _vocabulary(block, snap.dicts)
            for start in range(0, block.n, SLICE_ROWS):
                part = block if block.n <= SLICE_ROWS else block.take(
                    np.arange(start, min(block.n, start + SLICE_ROWS)))
                insert_events(ch, block_table(part, snap.dicts, seq + start), types, pairs,
                              f"migrate-{index}-{start}-{seq}")
                report.events += part.n
                if progress is not None:
                    progress(report.events, total)
            seq += block.n
            report.blocks += 1
        report.mismatches = verify(blocks, snap.dicts, ch)
    finally:
        store.close()
    return report


def _vocabulary(block: Block, dicts: Dictionaries) -> tuple[list[str], list[tuple[str, str]]]:
    """The block's event types and (property, kind) pairs, for the vocabulary tables."""
    types = sorted({t for t in dicts.types.decode(np.unique(block.type)) if t is not None})
    pairs = sorted({(key, kind) for key, kinds in block.property_keys.items()
                    for kind in kinds})
    return types, pairs


def verify(blocks: list[Block], dicts: Dictionaries, ch: ClickHouse
           ) -> list[tuple[str, str, int, int]]:
    """(day, type, store count, ClickHouse count) wherever the two differ."""
    import datetime as dt

    here: Counter[tuple[int, str]] = Counter()
    for block in blocks:
        days = block.ts // DAY_MS
        pairs, counts = np.unique(np.stack([days, block.type.astype(np.int64)]), axis=1,
                                  return_counts=True)
        names = dicts.types.decode(pairs[1])
        for day, name, c in zip(pairs[0].tolist(), names, counts.tolist(), strict=True):
            here[(int(day), str(name))] += int(c)
    there: Counter[tuple[int, str]] = Counter()
    for day, name, c in ch.rows(f"SELECT intDiv(ts, {DAY_MS}) AS d, type, count() "
                                f"FROM `{ch.database}`.{EVENTS} WHERE seq < {1 << 40} "
                                "GROUP BY d, type"):
        there[(int(day), str(name))] = int(c)
    out = []
    for key in sorted(set(here) | set(there)):
        if here[key] != there[key]:
            day = dt.datetime.fromtimestamp(key[0] * 86400, dt.UTC).date().isoformat()
            out.append((day, key[1], here[key], there[key]))
    return out
