"""Ship the person mapping to ClickHouse's `person_links` (the identity links, folded).

The daemon folds links itself (`persons.py`) and sends ClickHouse its result: one row
`(distinct_id, person_id, version)` per id whose person changed, `version` being the
number of links folded so far (it only grows, across restarts too: the link log is
replayed in full). At start the whole mapping is sent again with the current version, so a
crash between folding a link and shipping its rows loses nothing; re-sent rows are
harmless (queries read the newest row per id). Queries wait (`wait_shipped`) until rows
queued before them are in, as they wait for events (read-your-writes).

Thread rule: `queue` on the event loop (a `Persons.on_change` listener); `run` is a task
of the engine's nursery, inserting from a worker thread; `wait_shipped` from query threads.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import pyarrow as pa
import trio

from rta.core.clickhouse.connection import ClickHouse
from rta.core.clickhouse.schema import PERSON_LINKS
from rta.core.errors import RtaError
from rta.core.persons import Persons

log = logging.getLogger("rta.person_shipper")
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


class PersonShipper:
    def __init__(self, ch: ClickHouse, persons: Persons,
                 on_shipped: Callable[[], None]) -> None:
        self.ch = ch
        self.persons = persons
        self.on_shipped = on_shipped
        self._pending: list[tuple[int, list[Row]]] = []
        self._queued = 0
        self._shipped = 0
        self._cond = threading.Condition()
        self._wake = trio.Event()
        self._started = False
        persons.on_change.append(self.queue)

    def queue(self, version: int, rows: list[Row]) -> None:
        with self._cond:
            self._pending.append((self.persons.links, rows))
            self._queued += 1
        self._wake.set()

    def mark(self) -> int:
        """What a query must wait for: every row group queued so far."""
        return self._queued

    def wait_shipped(self, mark: int, timeout: float = 10.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._shipped >= mark and self._started,
                                       timeout)

    def _ship(self, first: bool) -> None:
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
        with self._cond:
            self._shipped = max(self._shipped, upto)
            self._started = True
            self._cond.notify_all()
        if batch or first:
            self.on_shipped()

    async def run(self) -> None:
        first = True
        delay = 1.0
        while True:
            self._wake = trio.Event()
            try:
                await trio.to_thread.run_sync(self._ship, first)
            except (RtaError, OSError) as exc:
                log.error("could not ship person links to ClickHouse (%s); retrying", exc)
                await trio.sleep(delay)
                delay = min(delay * 2, 30.0)
                continue
            first, delay = False, 1.0
            if not self._pending:
                await self._wake.wait()
