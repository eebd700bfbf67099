"""Writing event batches into ClickHouse, once each even when a batch is retried.

Every insert carries a deduplication token (the shipper's daemon id and WAL position): a
batch sent again after a timeout or a crash is dropped by ClickHouse instead of stored twice
(`non_replicated_deduplication_window` on the table; replicated tables do it by default).

Thread rule: blocking I/O; worker threads (the shipper's), never the event loop.
"""

from __future__ import annotations

import numpy as np

from rta.core.clickhouse.connection import ClickHouse
from rta.core.clickhouse.rows import batch_table, vocabulary_tables
from rta.core.clickhouse.schema import EVENTS
from rta.core.events import EventBatch


def insert_batch(ch: ClickHouse, batch: EventBatch, seqs: np.ndarray, token: str) -> None:
    """Store `batch` (`seqs`: each row's arrival order) under the deduplication `token`."""
    if not len(batch):
        return
    types, kinds = vocabulary_tables(batch)
    ch.insert_arrow("event_types", types)
    if kinds.num_rows:
        ch.insert_arrow("property_kinds", kinds)
    ch.insert_arrow(EVENTS, batch_table(batch, seqs),
                    settings={"insert_deduplication_token": token,
                              "insert_deduplicate": 1})
