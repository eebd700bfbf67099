"""Validated event batches as Arrow tables shaped like the `events` table.

A batch's properties are columnar already ('kind:key' -> row indexes and values); each kind
becomes one Map column, built from sorted (row, key, value) triples without a Python object
per row.

Thread rule: pure functions over their arguments; any thread.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from rta.core.events import BOOL, FLOAT, INT, STR, EventBatch

MAP_COLUMNS = {STR: "props_s", INT: "props_i", FLOAT: "props_f", BOOL: "props_b"}
_VALUE_TYPES = {STR: pa.string(), INT: pa.int64(), FLOAT: pa.float64(), BOOL: pa.bool_()}


def map_column(n: int, kind: str, rows: np.ndarray, keys: pa.Array, values: pa.Array
               ) -> pa.Array:
    """One kind's Map column for `n` rows from (row, key, value) triples in any order."""
    order = pa.array(np.argsort(rows, kind="stable"))
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(np.bincount(rows, minlength=n), out=offsets[1:])
    return pa.MapArray.from_arrays(pa.array(offsets), keys.take(order),
                                   values.cast(_VALUE_TYPES[kind]).take(order))


def _map_column(n: int, kind: str, entries: list[tuple[str, list[int], list[Any]]]) -> pa.Array:
    rows = [np.asarray(r, dtype=np.int64) for _, r, _ in entries]
    all_rows = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    values: list[Any] = []
    for _, _, v in entries:
        values.extend(v)
    # each key's name once, repeated by index (no Python string per value)
    names = pa.array([key for key, _, _ in entries], pa.string())
    which = np.repeat(np.arange(len(entries), dtype=np.int32), [len(r) for r in rows])
    return map_column(n, kind, all_rows, names.take(pa.array(which)),
                      pa.array(values, _VALUE_TYPES[kind]))


def batch_table(batch: EventBatch, seqs: np.ndarray) -> pa.Table:
    """The batch as `events` rows; `seqs` is each row's arrival order."""
    n = len(batch)
    by_kind: dict[str, list[tuple[str, list[int], list[Any]]]] = {k: [] for k in MAP_COLUMNS}
    for name, (rows, values) in batch.props.items():
        kind, _, key = name.partition(":")
        by_kind[kind].append((key, rows, values))
    columns: dict[str, pa.Array] = {
        "ts": pa.array(batch.timestamps, pa.int64()),
        "recv": pa.array(np.full(n, batch.received_at, dtype=np.int64)),
        "seq": pa.array(np.asarray(seqs, dtype=np.uint64)),
        "id": pa.array(batch.ids, pa.string()),
        "type": pa.array(batch.types, pa.string()),
        "user": pa.array(batch.users, pa.string()),
        "session": pa.array(batch.sessions, pa.string()),
    }
    for kind, column in MAP_COLUMNS.items():
        columns[column] = _map_column(n, kind, by_kind[kind])
    return pa.table(columns)


def batch_vocabulary(batch: EventBatch) -> tuple[list[str], list[tuple[str, str]]]:
    """The batch's distinct event types, and (property, kind) pairs."""
    return (sorted(set(batch.types)),
            sorted({(name.partition(":")[2], name.partition(":")[0]) for name in batch.props}))


def vocabulary_tables(types: list[str], pairs: list[tuple[str, str]]
                      ) -> tuple[pa.Table, pa.Table]:
    """Rows of the `event_types` and `property_kinds` tables."""
    return (pa.table({"type": pa.array(types, pa.string())}),
            pa.table({"key": pa.array([k for k, _ in pairs], pa.string()),
                      "kind": pa.array([k for _, k in pairs], pa.string())}))
