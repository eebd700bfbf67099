"""The durable person property log: `<data dir>/persons/properties.log` (a `FramedLog`).

One record per group of updates, fsynced before the request that carried them is answered.
`rewrite` replaces the whole file atomically: erasure uses it so no byte of a forgotten
person's values stays in the log.

Thread rule: one owner thread (the engine's event loop) appends and rewrites; opening reads
on any thread.
"""

from __future__ import annotations

from rta.core.framed_log import FramedLog
from rta.core.person_log import LOG_DIR
from rta.core.person_props import Update

LOG_NAME = "properties.log"


class ProfileLog(FramedLog):
    """Append-only updates; no data directory keeps them in memory only."""

    def __init__(self, data_dir: str | None, fsync: bool = True) -> None:
        super().__init__(data_dir, LOG_DIR, LOG_NAME, fsync)

    def read(self) -> list[Update]:
        """Every intact update, in the order written."""
        return [Update.from_json(raw) for r in self.records() for raw in r["updates"]]

    def append(self, updates: list[Update]) -> None:
        if updates:
            self.append_record({"updates": [u.to_json() for u in updates]})

    def rewrite(self, updates: list[Update]) -> None:
        """The log becomes exactly `updates` (one record), atomically."""
        self.rewrite_records([{"updates": [u.to_json() for u in updates]}] if updates else [])
