"""The engine with ClickHouse holding the history (#17): what `backend = "clickhouse"` adds.

The local store keeps working exactly as before for acknowledgement (its WAL), live views and
alerts, over a recent window; the shipper moves every acknowledged event into ClickHouse and
the query layer reads ClickHouse (`query_services.context`). Opening checks the URL answers
and sets up or migrates the schema, so a bad URL fails at start with one line naming it.

Thread rule: `open_mode` at engine construction (blocking I/O: start-up only); the rest is
the shipper's (see `rta.core.shipper`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rta.core.clickhouse.connection import ClickHouse
from rta.core.clickhouse.schema import ensure_schema
from rta.core.config import EngineConfig
from rta.core.errors import BackendUnavailable, BacklogFull
from rta.core.shipper import ShipLog, Shipper


@dataclass
class ClickHouseMode:
    ch: ClickHouse
    ship_log: ShipLog
    shipper: Shipper
    wal_end: Callable[[], tuple[int, int]]  # the local WAL's end: (file, offset)

    def check_backlog(self) -> None:
        """BacklogFull (503) when the events waiting to ship fill their disk bound."""
        if self.shipper.backlog_full:
            raise BacklogFull(
                f"{self.shipper.backlog_bytes >> 20} MiB of events are waiting to ship to "
                f"ClickHouse ({self.ch.target.display}), the bound set by "
                "clickhouse_max_backlog_mb: retry once they have shipped",
                [{"lastError": self.shipper.last_error}])

    def stats(self) -> dict[str, Any]:
        return self.shipper.stats()

    def ack_mark(self) -> tuple[int, int]:
        """The WAL position past every event acknowledged so far: a query waits until the
        shipper is there (read-your-writes), so an ingested event is in its answer."""
        return self.wal_end()


def ship_log_for(config: EngineConfig) -> ShipLog | None:
    """The shipper's durable position (needed before the store opens: it keeps WAL files
    until they have shipped), or None for the embedded backend."""
    if config.backend != "clickhouse":
        return None
    if not config.data_dir:
        raise BackendUnavailable("backend clickhouse needs a data directory (its write-ahead "
                                 "log is where events wait to ship)")
    return ShipLog(config.data_dir)


def open_mode(config: EngineConfig, ship_log: ShipLog,
              wal_end: Callable[[], tuple[int, int]]) -> ClickHouseMode:
    """Connect, set up the schema and build the shipper; ClickHouseError names what failed."""
    if not config.clickhouse_url:
        raise BackendUnavailable("backend clickhouse needs clickhouse_url (--clickhouse-url or "
                                 "RTA_CLICKHOUSE_URL): http(s)://user:pass@host:8123/db or "
                                 "chdb:///path/to/dir")
    try:
        ch = ClickHouse.open(config.clickhouse_url)
    except ValueError as exc:  # the URL itself cannot be read
        raise BackendUnavailable(f"clickhouse_url {exc}") from None
    ensure_schema(ch, config.clickhouse_cluster, config.retention_days)
    assert config.data_dir is not None
    shipper = Shipper(ch, ship_log, os.path.join(config.data_dir, "wal"),
                      config.clickhouse_max_backlog_mb << 20)
    return ClickHouseMode(ch, ship_log, shipper, wal_end)
