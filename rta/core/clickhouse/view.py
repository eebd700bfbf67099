"""What every ClickHouse query module reads through: the connection and the events table.

The table is a parameter (not a constant) so the sharding check can point the same SQL at
one shard's table, and a cluster at its Distributed table.

Thread rule: immutable; any thread (the connection is thread-safe).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from rta.core.clickhouse.connection import ClickHouse
from rta.core.clickhouse.filter_sql import Params, where_sql
from rta.core.clickhouse.schema import EVENTS, PERSON_LINKS, PERSON_PROPS
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
    # whether to merge person properties (`person.<key>`) into the maps: asked once, after
    # the read-your-writes wait (None: never)
    person_props: Callable[[], bool] | None = None
    group: str | None = None  # `user` is the key of this type's group ($groups.<type>)
    # whether `person_links` holds any row (None: not known cheaply, assume so); without
    # links the person is the id as sent and the join is skipped (2-3x faster small queries)
    linked: Callable[[], bool] | None = None

    def kinds_of(self, key: str) -> frozenset[str]:
        """The kinds `key` may hold here (all four when unknown)."""
        known = None if self.kinds is None else self.kinds(key)
        return ALL_KINDS if known is None else known

    @property
    def events(self) -> str:
        """The events, as a source every query module reads `FROM` (see `events_source`)."""
        if self.ready is not None:
            self.ready()
        props = self.person_props is not None and self.person_props()
        persons = self.persons and (self.linked is None or self.linked())
        source = events_source(self.ch.database, self.table, persons, props)
        return source if self.group is None else group_source(source, self.group)

    def events_own_maps(self) -> tuple[str, str]:
        """(`events` as a source, the columns holding each event's own property maps): with
        person properties merged (`person.<key>` filters read the merged maps), the own
        maps are kept beside them, so listings show the properties as sent."""
        if self.ready is not None:
            self.ready()
        own = "props_s, props_i, props_f, props_b"
        if self.person_props is None or not self.person_props():
            return self.events, own
        persons = self.persons and (self.linked is None or self.linked())
        source = events_source(self.ch.database, self.table, persons, True, keep_maps=True)
        if self.group is not None:
            source = group_source(source, self.group)
        return source, "raw_" + own.replace(", ", ", raw_")

    def where(self, flt: EventFilter, params: Params, times: bool = True) -> str:
        return where_sql(flt, params, times=times)

    def rows(self, sql: str, params: Params | None = None,
             settings: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        if self.ready is not None:
            self.ready()
        return self.ch.rows(self._unjoined(sql), None if params is None else params.values,
                            settings)

    def arrow(self, sql: str, params: Params | None = None) -> pa.Table:
        if self.ready is not None:
            self.ready()
        return self.ch.arrow(self._unjoined(sql), None if params is None else params.values)

    def _unjoined(self, sql: str) -> str:
        """`sql` reading the events without the person join when nothing in it can read
        the person (no `user` identifier, no `*`): counts, type and property breakdowns,
        metric series pay no join (a hash probe per event, most of a small query's time)."""
        joined = events_source(self.ch.database, self.table, True)
        if joined not in sql:
            return sql
        rest = sql.replace(joined, "")
        if "*" in rest or _USER.search(rest):
            return sql
        return sql.replace(joined, events_source(self.ch.database, self.table, False))


# `user` as a name of its own (`e.user` too, not `raw_user`): where SQL may read the person
_USER = re.compile(r"(?<!\w)user(?!\w)")


def has_person_props(ch: ClickHouse) -> bool:
    """Whether any person property was shipped (else queries skip the join)."""
    (n,), = ch.rows(f"SELECT count() FROM (SELECT 1 FROM `{ch.database}`.`{PERSON_PROPS}` "
                    "LIMIT 1)")
    return bool(n)


def person_kinds(view: View, key: str) -> set[str]:
    """The value kinds person property `key` (`person.<key>`) has on some person now."""
    kinds = ("s", "i", "f", "b")
    latest = ", ".join(f"argMax(props_{k}, version) AS m_{k}" for k in kinds)
    params = Params()
    name = params.add(key, "String")
    counts = ", ".join(f"countIf(mapContains(m_{k}, {name}))" for k in kinds)
    (row,) = view.rows(f"SELECT {counts} FROM (SELECT {latest} FROM "
                       f"`{view.ch.database}`.`{PERSON_PROPS}` GROUP BY person_id)", params)
    return {k for k, n in zip(kinds, row, strict=True) if n}


def events_source(database: str, table: str = EVENTS, persons: bool = True,
                  person_props: bool = False, keep_maps: bool = False) -> str:
    """The events table as a subquery with `raw_user` (the distinct id as sent, what the
    `userId` filter matches) and `user`: with `persons`, the person id of `person_links`
    where the id was linked (else the id itself), so every query counts persons without
    knowing about them; without, the id as sent. With `person_props`, the current
    properties of each event's person (`person_props`, keys `person.<key>`) are merged
    into its property maps, so filters and breakdowns on `person.<key>` need nothing else
    (the person is the linked one even when `user` stays as sent); `keep_maps` also keeps
    the events' own maps as `raw_props_<kind>` (exports filter on the merged maps and
    write the events' own)."""
    events = f"`{database}`.`{table}`"
    if not persons and not person_props:
        return f"(SELECT *, user AS raw_user FROM {events})"
    links = (f"(SELECT distinct_id, argMax(person_id, version) AS person_id "
             f"FROM `{database}`.`{PERSON_LINKS}` GROUP BY distinct_id)")
    if not person_props:
        return (f"(SELECT e.* REPLACE (if(p.person_id = '', e.user, p.person_id) AS user), "
                f"e.user AS raw_user FROM {events} AS e LEFT ANY JOIN {links} AS p "
                f"ON e.user = p.distinct_id)")
    person = "if(p.person_id = '', e.user, p.person_id)"
    kinds = ("s", "i", "f", "b")
    raw_maps = "".join(f", e.props_{k} AS raw_props_{k}" for k in kinds) if keep_maps else ""
    mapped = (f"SELECT e.* REPLACE ({person if persons else 'e.user'} AS user), "
              f"e.user AS raw_user, {person} AS _person{raw_maps} "
              f"FROM {events} AS e LEFT ANY JOIN {links} AS p ON e.user = p.distinct_id")
    props = ("(SELECT person_id, " + ", ".join(
        f"argMax(props_{k}, version) AS props_{k}" for k in kinds)
        + f" FROM `{database}`.`{PERSON_PROPS}` GROUP BY person_id)")
    merged = ", ".join(f"mapUpdate(m.props_{k}, pp.props_{k}) AS props_{k}" for k in kinds)
    return (f"(SELECT m.* EXCEPT (_person) REPLACE ({merged}) FROM ({mapped}) AS m "
            f"LEFT ANY JOIN {props} AS pp ON m._person = pp.person_id)")


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
