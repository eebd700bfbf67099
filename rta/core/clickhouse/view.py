"""What every ClickHouse query module reads through: the connection and the events table.

The table is a parameter (not a constant) so the sharding check can point the same SQL at
one shard's table, and a cluster at its Distributed table.

Thread rule: immutable; any thread (the connection is thread-safe).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from rta.core.clickhouse.connection import ClickHouse
from rta.core.clickhouse.filter_sql import Params, where_sql
from rta.core.clickhouse.schema import EVENTS, PERSON_LINKS
from rta.core.queries.filters import EventFilter


class Barrier:
    """Something to wait for once before the first statement of a query (the daemon's
    read-your-writes: events acknowledged before the query shipped)."""

    def __init__(self, wait: Callable[[], object]) -> None:
        self._wait = wait
        self._done = False

    def __call__(self) -> None:
        if not self._done:
            self._wait()
            self._done = True


# The raw value kinds a Map column per kind can hold ("s", "i", "f", "b").
ALL_KINDS = frozenset({"s", "i", "f", "b"})


@dataclass(frozen=True)
class View:
    """`kinds(key)`: the value kinds a property was ever stored with (the vocabulary tables,
    which every insert fills before its rows), or None where that is not known cheaply;
    SQL then reads only those kinds' Map columns: a text-only key skips three of four."""

    ch: ClickHouse
    table: str = EVENTS
    ready: Barrier | None = None
    kinds: Callable[[str], frozenset[str] | None] | None = None
    persons: bool = True  # `user` is the person (identity links applied); False: as sent
    group: str | None = None  # `user` is the key of this type's group ($groups.<type>)

    def kinds_of(self, key: str) -> frozenset[str]:
        """The kinds `key` may hold here (all four when unknown)."""
        known = None if self.kinds is None else self.kinds(key)
        return ALL_KINDS if known is None else known

    @property
    def events(self) -> str:
        """The events, as a source every query module reads `FROM` (see `events_source`)."""
        source = events_source(self.ch.database, self.table, self.persons)
        return source if self.group is None else group_source(source, self.group)

    def where(self, flt: EventFilter, params: Params, times: bool = True) -> str:
        return where_sql(flt, params, times=times)

    def rows(self, sql: str, params: Params | None = None) -> list[tuple[Any, ...]]:
        if self.ready is not None:
            self.ready()
        return self.ch.rows(sql, None if params is None else params.values)

    def arrow(self, sql: str, params: Params | None = None) -> pa.Table:
        if self.ready is not None:
            self.ready()
        return self.ch.arrow(sql, None if params is None else params.values)


def events_source(database: str, table: str = EVENTS, persons: bool = True) -> str:
    """The events table as a subquery with `raw_user` (the distinct id as sent, what the
    `userId` filter matches) and `user`: with `persons`, the person id of `person_links`
    where the id was linked (else the id itself), so every query counts persons without
    knowing about them; without, the id as sent."""
    events = f"`{database}`.`{table}`"
    if not persons:
        return f"(SELECT *, user AS raw_user FROM {events})"
    links = (f"(SELECT distinct_id, argMax(person_id, version) AS person_id "
             f"FROM `{database}`.`{PERSON_LINKS}` GROUP BY distinct_id)")
    return (f"(SELECT e.* REPLACE (if(p.person_id = '', e.user, p.person_id) AS user), "
            f"e.user AS raw_user FROM {events} AS e LEFT ANY JOIN {links} AS p "
            f"ON e.user = p.distinct_id)")


def group_key_sql(group_type: str) -> str:
    """The key of the `group_type` group an event names, NULL where none (an integer key
    as its decimal text, '' as none: `embedded/group_blocks.py` reads them alike)."""
    key = "'$groups." + group_type.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return (f"multiIf(mapContains(props_s, {key}) AND props_s[{key}] != '', props_s[{key}], "
            f"mapContains(props_i, {key}), toString(props_i[{key}]), NULL)")


def group_source(source: str, group_type: str) -> str:
    """`source` with `user` replaced by the event's `group_type` group key (NULL: none)."""
    return (f"(SELECT * REPLACE (CAST({group_key_sql(group_type)} AS Nullable(String)) "
            f"AS user) FROM {source})")
