"""Erasure in ClickHouse: a person's events and identity rows deleted (#18, part 5).

`ALTER TABLE ... DELETE` with `mutations_sync = 2` returns once the mutation has rewritten
the affected parts on every replica, so the rows are gone from disk (not masked, as a
lightweight `DELETE FROM` leaves them until the next merge) when `erase` returns. With a
cluster the mutation runs on each shard's local table (`ON CLUSTER`).

Only rows shipped before the erasure's cut are deleted (`seq` below `before_seq`, the first
seq of the WAL file opened at the cut), so events of an erased id sent again afterwards are
new data, as in the embedded store.

Thread rule: blocking statements; called from the erasure's worker thread (or inline at
start-up and in tests), never on the event loop.
"""

from __future__ import annotations

from rta.core.clickhouse.connection import ClickHouse
from rta.core.clickhouse.schema import EVENTS, PERSON_LINKS, PERSON_PROPS

SYNC = {"mutations_sync": 2}


def _table(ch: ClickHouse, name: str, cluster: str | None) -> str:
    db = ch.target.database
    if cluster:
        return f"`{db}`.`{name}_local` ON CLUSTER `{cluster}`"
    return f"`{db}`.`{name}`"


def count_events(ch: ClickHouse, ids: list[str], before_seq: int | None = None) -> int:
    """Events of `ids` stored (before `before_seq` when given)."""
    where, params = _where(ids, before_seq)
    rows = ch.rows(f"SELECT count() FROM `{ch.target.database}`.`{EVENTS}` WHERE {where}",
                   params)
    return int(rows[0][0])


def _where(ids: list[str], before_seq: int | None) -> tuple[str, dict[str, object]]:
    params: dict[str, object] = {"ids": list(ids)}
    where = "user IN {ids:Array(String)}"
    if before_seq is not None:
        where += " AND seq < {before:UInt64}"
        params["before"] = before_seq
    return where, params


def erase(ch: ClickHouse, ids: list[str], before_seq: int | None = None,
          cluster: str | None = None) -> int:
    """Delete the events of `ids` and their `person_links` rows; events deleted."""
    if not ids:
        return 0
    found = count_events(ch, ids, before_seq)
    where, params = _where(ids, before_seq)
    if found:
        ch.command(f"ALTER TABLE {_table(ch, EVENTS, cluster)} DELETE WHERE {where}", params,
                   settings=SYNC)
    ch.command(f"ALTER TABLE {_table(ch, PERSON_LINKS, cluster)} DELETE WHERE "
               "distinct_id IN {ids:Array(String)} OR person_id IN {ids:Array(String)}",
               {"ids": list(ids)}, settings=SYNC)
    return found


def erase_person_props(ch: ClickHouse, ids: list[str], cluster: str | None = None) -> None:
    """Delete the `person_props` rows of `ids` (the person's folded properties)."""
    if ids:
        ch.command(f"ALTER TABLE {_table(ch, PERSON_PROPS, cluster)} DELETE WHERE "
                   "person_id IN {ids:Array(String)}", {"ids": list(ids)}, settings=SYNC)
