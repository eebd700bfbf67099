"""The parity harness: one event log stored by both backends, one query asked of both.

The embedded engine ingests through its one ingest path; every batch it makes durable is
handed (by the engine's ingest listener, as the shipper gets them) to ClickHouse with seqs
counting up in arrival order. Both backends then answer the same typed query with the same
clock and their answers' JSON must be equal.

chdb runs one ClickHouse engine per process at one path, so every test shares it and gets a
database of its own.
"""

from __future__ import annotations

import math
import os
import tempfile
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import trio

from rta.core import query_services
from rta.core.clickhouse.backend import ClickHouseBackend
from rta.core.clickhouse.connection import ClickHouse, parse_url
from rta.core.clickhouse.inserts import insert_batch
from rta.core.clickhouse.schema import ensure_schema
from rta.core.config import EngineConfig
from rta.core.engine import Engine
from rta.core.events import EventBatch
from rta.core.queries.backend import QueryContext

CHDB_DIR = os.environ.get("RTA_TEST_CHDB_DIR") or os.path.join(
    tempfile.gettempdir(), f"rta-test-chdb-{os.getpid()}")


# With RTA_CLICKHOUSE_URL (a real server or cluster node), every parity test runs there
# instead of in chdb, each in a database of its own.
SERVER_URL = os.environ.get("RTA_CLICKHOUSE_URL") or None


def chdb_database() -> ClickHouse:
    """A fresh database with rta's schema: in the process's chdb engine, or on the server
    RTA_CLICKHOUSE_URL names."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    ch = ClickHouse(parse_url(SERVER_URL or f"chdb://{CHDB_DIR}", database=name))
    ensure_schema(ch)
    return ch


@dataclass
class Pair:
    """An in-memory embedded engine and a ClickHouse database holding the same events."""

    engine: Engine
    ch: ClickHouse
    seq: int = 0
    batches: list[EventBatch] = field(default_factory=list)

    @classmethod
    def create(cls, config: EngineConfig | None = None) -> Pair:
        pair = cls(Engine(config or EngineConfig(fsync=False)), chdb_database())
        pair.engine.on_ingest(pair.batches.append)
        return pair

    def ingest(self, events: list[dict[str, Any]], now: int) -> int:
        """Store `events` in both (one batch, whole or refused); events accepted."""
        async def submit() -> int:
            return (await self.engine.submit(events, partial=False, now=now)).accepted
        accepted = trio.run(submit)
        for batch in self.batches:
            seqs = np.arange(self.seq, self.seq + len(batch), dtype=np.uint64)
            insert_batch(self.ch, batch, seqs, f"test-{self.seq}")
            self.seq += len(batch)
        self.batches.clear()
        return accepted

    def contexts(self, now: int) -> tuple[QueryContext, QueryContext]:
        """(embedded, clickhouse) contexts over the same data and clock."""
        embedded = query_services.context(self.engine, now=now)
        backend = ClickHouseBackend(self.ch)
        return embedded, QueryContext(backend, query_services.clickhouse_segments(
            self.engine, backend), now)

    def close(self) -> None:
        self.ch.command(f"DROP DATABASE IF EXISTS `{self.ch.database}`")
        self.engine.close()


def same(a: Any, b: Any, path: str = "$", rel: float = 1e-9) -> None:
    """Assert two JSON values equal, floats to `rel` relative; the path names a difference."""
    numbers = (isinstance(a, int | float) and isinstance(b, int | float)
               and not isinstance(a, bool) and not isinstance(b, bool))
    if numbers and (isinstance(a, float) or isinstance(b, float)):
        if math.isnan(a) and math.isnan(b):
            return
        assert math.isclose(a, b, rel_tol=rel, abs_tol=1e-12), f"{path}: {a!r} != {b!r}"
        return
    if isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), f"{path}: keys {sorted(a)} != {sorted(b)}"
        for k in a:
            same(a[k], b[k], f"{path}.{k}", rel)
        return
    if isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), f"{path}: {len(a)} items != {len(b)}\n{a}\n{b}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            same(x, y, f"{path}[{i}]", rel)
        return
    assert type(a) is type(b) and a == b, f"{path}: {a!r} != {b!r}"
