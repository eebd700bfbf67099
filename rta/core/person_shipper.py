"""Ship the person mapping to ClickHouse's `person_links` (the identity links, folded).

The daemon folds links itself (`persons.py`) and sends ClickHouse its result: one row
`(distinct_id, person_id, version)` per id whose person changed, `version` being the
number of links folded so far (it only grows, across restarts too: the link log is
replayed in full). At start the whole mapping is sent again with the current version, so a
crash between folding a link and shipping its rows loses nothing; re-sent rows are
harmless (queries read the newest row per id). Queries wait (`wait_shipped`) until rows
queued before them are in, as they wait for events (read-your-writes).

Thread rule: `queue` on the event loop (a `Persons.on_change` listener); the rest as
`side_shipper.SideShipper`.
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa

from rta.core.clickhouse.connection import ClickHouse
from rta.core.clickhouse.schema import PERSON_LINKS
from rta.core.persons import Persons
from rta.core.side_shipper import SideShipper

Row = tuple[str, str]


def insert_rows(ch: ClickHouse, rows: list[Row], version: int) -> None:
    """Insert mapping rows (blocking)."""
    if not rows:
        return
    table = pa.table({"distinct_id": pa.array([r[0] for r in rows], pa.string()),
                      "person_id": pa.array([r[1] for r in rows], pa.string()),
                      "version": pa.array([version] * len(rows), pa.uint64())})
    ch.insert_arrow(PERSON_LINKS, table)


def ship_all(ch: ClickHouse, persons: Persons) -> int:
    """The whole current mapping (start, tests); rows sent."""
    rows = list(persons.graph.merged_ids().items())
    insert_rows(ch, rows, persons.links)
    return len(rows)


class PersonShipper(SideShipper):
    what = "person links"

    def __init__(self, ch: ClickHouse, persons: Persons,
                 on_shipped: Callable[[], None]) -> None:
        super().__init__(on_shipped)
        self.ch = ch
        self.persons = persons
        self._pending: list[tuple[int, list[Row]]] = []
        persons.on_change.append(self.queue)

    def queue(self, version: int, rows: list[Row]) -> None:
        with self._cond:
            self._pending.append((self.persons.links, rows))
            self._queued_one()

    def _has_pending(self) -> bool:
        return bool(self._pending)

    def _send(self, first: bool) -> tuple[bool, int]:
        with self._cond:
            batch, self._pending = self._pending, []
            upto = self._queued
        try:
            if first:
                ship_all(self.ch, self.persons)
            for version, rows in batch:
                insert_rows(self.ch, rows, version)
        except BaseException:
            with self._cond:  # (sent again on the retry: rows are idempotent)
                self._pending = batch + self._pending
            raise
        return bool(batch), upto
