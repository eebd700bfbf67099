"""Writing event batches into ClickHouse, once each even when a batch is retried.

Every insert carries a deduplication token (the shipper's daemon id and WAL position): a
batch sent again after a timeout or a crash is dropped by ClickHouse instead of stored twice
(`non_replicated_deduplication_window` on the table; replicated tables do it by default).

Thread rule: blocking I/O; worker threads (the shipper's), never the event loop.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from rta.core.clickhouse.connection import ClickHouse
from rta.core.clickhouse.rows import batch_table, batch_vocabulary, vocabulary_tables
from rta.core.clickhouse.schema import EVENTS
from rta.core.events import EventBatch


def insert_batch(ch: ClickHouse, batch: EventBatch, seqs: np.ndarray, token: str) -> None:
    """Store `batch` (`seqs`: each row's arrival order) under the deduplication `token`."""
    if len(batch):
        insert_events(ch, batch_table(batch, seqs), *batch_vocabulary(batch), token)


def insert_events(ch: ClickHouse, rows: pa.Table, types: list[str],
                  pairs: list[tuple[str, str]], token: str) -> None:
    """Store `events` rows under the deduplication `token`, and the names they use in the
    vocabulary tables (the vocabulary first: a name is never missing for a stored event)."""
    type_rows, kind_rows = vocabulary_tables(types, pairs)
    ch.insert_arrow("event_types", type_rows)
    if kind_rows.num_rows:
        ch.insert_arrow("property_kinds", kind_rows)
    ch.insert_arrow(EVENTS, rows, settings={"insert_deduplication_token": token,
                                            "insert_deduplicate": 1})
