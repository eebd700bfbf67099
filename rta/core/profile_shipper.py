"""Ship person properties to ClickHouse's `person_props` (one row per changed person).

The daemon folds properties itself (`profiles.py`) and sends ClickHouse the result: one
row `(person_id, props_s, props_i, props_f, props_b, version)` per person whose properties
changed, keys written `person.<key>` so the events source merges them into the events' maps
as they are (`clickhouse/view.py: events_source`). `version` is the microseconds since the
epoch when the row was made (it grows across restarts), and the newest row per person wins.
At start every person with properties is sent again, so a crash between an update and its
row loses nothing. A forgotten person (erasure) gets an empty row. Queries wait
(`wait_shipped`) until rows queued before them are in, as for the identity links.

Thread rule: `queue` on the event loop (a `ProfileStore.on_change` listener); the rest as
`side_shipper.SideShipper`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from rta.core.clickhouse.connection import ClickHouse
from rta.core.clickhouse.schema import PERSON_PROPS
from rta.core.person_props import PREFIX, value_kind
from rta.core.profiles import ProfileStore
from rta.core.side_shipper import SideShipper

_TYPES = {"s": pa.string(), "i": pa.int64(), "f": pa.float64(), "b": pa.bool_()}


def _version() -> int:
    return time.time_ns() // 1000


def insert_rows(ch: ClickHouse, rows: list[tuple[str, dict[str, Any]]]) -> None:
    """Insert `(person id, properties)` rows (blocking); empty properties clear a person."""
    if not rows:
        return
    maps: dict[str, list[list[tuple[str, Any]]]] = {k: [] for k in _TYPES}
    for _, props in rows:
        per_kind: dict[str, list[tuple[str, Any]]] = {k: [] for k in _TYPES}
        for key, value in props.items():
            per_kind[value_kind(value)].append((PREFIX + key, value))
        for kind, items in per_kind.items():
            maps[kind].append(items)
    version = _version()
    columns: dict[str, pa.Array] = {"person_id": pa.array([p for p, _ in rows], pa.string())}
    for kind, values in maps.items():
        columns[f"props_{kind}"] = pa.array(values, pa.map_(pa.string(), _TYPES[kind]))
    columns["version"] = pa.array([version] * len(rows), pa.uint64())
    ch.insert_arrow(PERSON_PROPS, pa.table(columns))


def ship_all(ch: ClickHouse, profiles: ProfileStore) -> int:
    """Every person's properties (start, tests); rows sent."""
    rows = list(profiles.all_properties().items())
    insert_rows(ch, rows)
    return len(rows)


class ProfileShipper(SideShipper):
    what = "person properties"

    def __init__(self, ch: ClickHouse, profiles: ProfileStore,
                 on_shipped: Callable[[], None]) -> None:
        super().__init__(on_shipped)
        self.ch = ch
        self.profiles = profiles
        self._pending: set[str] = set()
        profiles.on_change.append(self.queue)

    def queue(self, persons: list[str]) -> None:
        with self._cond:
            self._pending.update(persons)
            self._queued_one()

    def _has_pending(self) -> bool:
        return bool(self._pending)

    def _send(self, first: bool) -> tuple[bool, int]:
        with self._cond:
            batch, self._pending = self._pending, set()
            upto = self._queued
        try:
            if first:
                ship_all(self.ch, self.profiles)
            person_of = self.profiles.persons.person_of
            rows: dict[str, dict[str, Any]] = {}
            for p in sorted(batch):
                root = person_of(p)
                if root != p:
                    rows.setdefault(p, {})  # (merged away or erased: its row is cleared)
                rows[root] = self.profiles.properties(root)
            insert_rows(self.ch, sorted(rows.items()))
        except BaseException:
            with self._cond:  # (sent again on the retry: rows are idempotent)
                self._pending |= batch
            raise
        return bool(batch), upto
