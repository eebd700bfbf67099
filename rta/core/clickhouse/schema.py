"""rta's ClickHouse tables, created and migrated by rta (idempotent, versioned).

    events          one row per stored event; MergeTree partitioned by month, ordered by
                    (type, user, ts, seq) so per-user scans of one event type read one range.
                    Properties keep rta's value kinds apart: one Map column per kind
                    (props_s text, props_i integer, props_f float, props_b boolean), as the
                    embedded store keeps one column per (kind, key).
    event_types     every event type stored      } the vocabulary (query warnings): read
    property_kinds  every (property, kind) seen  } cheaply instead of scanning events
    schema_version  the migrations applied
  version 2 (several daemons, one database: `rta.core.clickhouse.metadata_store`, `lease`):
    metadata        the documents (alerts, dashboards, segments, tokens, templates): one row
                    per write, ReplacingMergeTree(version) ordered by (kind, id); readers
                    take each id's newest row (argMax), a delete writes a tombstone row
    metadata_history  append-only history (alert notifications, webhook outcomes)
    leases          one row per (lease, daemon) claim, renewed by rewriting it; expired rows
                    leave by TTL a day later

`ts` is stored with T64 + LZ4: as small as Delta + ZSTD on rta's data and 2.5x faster to
read, and every query reads it (a database made before keeps its codec; `ALTER TABLE events
MODIFY COLUMN ts Int64 CODEC(T64, LZ4)` and `OPTIMIZE TABLE events FINAL` switch it).

`seq` is the arrival order (a daemon's WAL position and row), the tie-break among events
with the same timestamp that the API's paging and funnels use.

With a cluster (`clickhouse_cluster`) each table is created ON CLUSTER as a local table per
shard (`events_local`), and `events` is a Distributed table over it sharded by a hash of the
user, so per-user work (funnels, retention, segments) runs whole on each shard. The small
version 2 tables follow the same shape: plain (not Replicated) ReplacingMergeTree/MergeTree
local tables ON CLUSTER, each behind a Distributed table sharded by a hash of its key, so
every version of one document (or one daemon's lease claim) lands on one shard and the
argMax readers are exact; writers insert with `insert_distributed_sync` so a write is
visible to every daemon when it returns (`write_settings`). No Keeper is needed; a shard
with replicas gets its copies from the Distributed table's own fan-out (the default
`internal_replication` false; with it true, create these tables Replicated by hand).

Thread rule: call from one thread at start (blocking DDL).
"""

from __future__ import annotations

from collections.abc import Callable

from rta.core.clickhouse.connection import ClickHouse, ClickHouseError

SCHEMA_VERSION = 4
EVENTS = "events"
METADATA = "metadata"
HISTORY = "metadata_history"
LEASES = "leases"
PERSON_LINKS = "person_links"  # distinct id -> person id, newest version wins (#18)
PERSON_PROPS = "person_props"  # person id -> its properties (keys `person.<key>`), newest wins


def write_settings(cluster: str | None) -> dict[str, int] | None:
    """Insert settings for the version 2 tables: with a cluster, wait for the Distributed
    table to deliver the rows (read-your-writes for every daemon)."""
    return {"insert_distributed_sync": 1} if cluster else None


def _on_cluster(cluster: str | None) -> str:
    return f" ON CLUSTER `{cluster}`" if cluster else ""


def _events_ddl(db: str, table: str, cluster: str | None, retention_days: float) -> str:
    ttl = ""
    if retention_days > 0:
        seconds = int(retention_days * 86400)
        ttl = f"\nTTL toDateTime(intDiv(ts, 1000)) + INTERVAL {seconds} SECOND"
    return f"""CREATE TABLE IF NOT EXISTS `{db}`.`{table}`{_on_cluster(cluster)} (
    ts Int64 CODEC(T64, LZ4),
    recv Int64 CODEC(Delta, ZSTD(1)),
    seq UInt64,
    id String,
    type LowCardinality(String),
    user Nullable(String),
    session Nullable(String),
    props_s Map(LowCardinality(String), String),
    props_i Map(LowCardinality(String), Int64),
    props_f Map(LowCardinality(String), Float64),
    props_b Map(LowCardinality(String), Bool)
) ENGINE = MergeTree
PARTITION BY toYYYYMM(toDateTime(intDiv(ts, 1000), 'UTC'))
ORDER BY (type, user, ts, seq){ttl}
SETTINGS allow_nullable_key = 1, non_replicated_deduplication_window = 100000"""


def _steps(db: str, cluster: str | None, retention_days: float) -> dict[int, list[str]]:
    on = _on_cluster(cluster)
    local = f"{EVENTS}_local" if cluster else EVENTS
    v1 = [
        _events_ddl(db, local, cluster, retention_days),
        f"""CREATE TABLE IF NOT EXISTS `{db}`.event_types{on} (type String)
ENGINE = ReplacingMergeTree ORDER BY type""",
        f"""CREATE TABLE IF NOT EXISTS `{db}`.property_kinds{on} (
    key String, kind LowCardinality(String)) ENGINE = ReplacingMergeTree ORDER BY (key, kind)""",
    ]
    if cluster:
        v1.append(f"""CREATE TABLE IF NOT EXISTS `{db}`.{EVENTS}{on} AS `{db}`.{local}
ENGINE = Distributed(`{cluster}`, `{db}`, {local}, cityHash64(ifNull(user, '')))""")
    return {1: v1, 2: _v2(db, cluster), 3: _v3(db, cluster), 4: _v4(db, cluster)}


def _v2(db: str, cluster: str | None) -> list[str]:
    on = _on_cluster(cluster)
    tables = {
        METADATA: ('''kind LowCardinality(String), id String, name Nullable(String),
    body String, created_at Int64, updated_at Int64, version UInt64, deleted UInt8''',
                   "ReplacingMergeTree(version) ORDER BY (kind, id)", "cityHash64(kind, id)"),
        HISTORY: ('''kind LowCardinality(String), ref Nullable(String), at Int64, seq UInt64,
    body String''', "MergeTree ORDER BY (kind, seq)", "cityHash64(kind, ifNull(ref, ''))"),
        LEASES: ('''name String, holder String, claimed Int64, expires Int64, version UInt64''',
                 "ReplacingMergeTree(version) ORDER BY (name, holder)\n"
                 "TTL toDateTime(intDiv(expires, 1000)) + INTERVAL 1 DAY",
                 "cityHash64(name, holder)"),
    }
    out = []
    for table, (columns, engine, key) in tables.items():
        local = f"{table}_local" if cluster else table
        out.append(f"CREATE TABLE IF NOT EXISTS `{db}`.{local}{on} (\n    {columns}\n) "
                   f"ENGINE = {engine}")
        if cluster:
            out.append(f"CREATE TABLE IF NOT EXISTS `{db}`.{table}{on} AS `{db}`.{local}\n"
                       f"ENGINE = Distributed(`{cluster}`, `{db}`, {local}, {key})")
    return out


def _v3(db: str, cluster: str | None) -> list[str]:
    """`person_links`: one row per distinct id whose person is not itself alone, written by
    the daemon that folded the links (`core/person_shipper.py`); queries read the newest
    row per id (argMax by version)."""
    on = _on_cluster(cluster)
    local = f"{PERSON_LINKS}_local" if cluster else PERSON_LINKS
    out = [f"CREATE TABLE IF NOT EXISTS `{db}`.{local}{on} (\n    distinct_id String, "
           "person_id String, version UInt64\n) ENGINE = ReplacingMergeTree(version) "
           "ORDER BY distinct_id"]
    if cluster:
        out.append(f"CREATE TABLE IF NOT EXISTS `{db}`.{PERSON_LINKS}{on} AS `{db}`.{local}\n"
                   f"ENGINE = Distributed(`{cluster}`, `{db}`, {local}, cityHash64(distinct_id))")
    return out


def _v4(db: str, cluster: str | None) -> list[str]:
    """`person_props`: one row per person whose properties changed, written by the daemon
    that folded them (`core/profile_shipper.py`), keys already `person.<key>` so the events
    source merges them into the events' maps (`view.events_source`); newest version wins."""
    on = _on_cluster(cluster)
    local = f"{PERSON_PROPS}_local" if cluster else PERSON_PROPS
    out = [f"CREATE TABLE IF NOT EXISTS `{db}`.{local}{on} (\n    person_id String, "
           "props_s Map(LowCardinality(String), String), "
           "props_i Map(LowCardinality(String), Int64), "
           "props_f Map(LowCardinality(String), Float64), "
           "props_b Map(LowCardinality(String), Bool), version UInt64\n) "
           "ENGINE = ReplacingMergeTree(version) ORDER BY person_id"]
    if cluster:
        out.append(f"CREATE TABLE IF NOT EXISTS `{db}`.{PERSON_PROPS}{on} AS `{db}`.{local}\n"
                   f"ENGINE = Distributed(`{cluster}`, `{db}`, {local}, cityHash64(person_id))")
    return out


def schema_version(ch: ClickHouse) -> int:
    """The highest migration applied (0 for a database rta has not set up)."""
    found = ch.rows("SELECT count() FROM system.tables WHERE database = {db:String} "
                    "AND name = 'schema_version'", {"db": ch.database})
    if not found[0][0]:
        return 0
    return int(ch.rows(f"SELECT max(version) FROM `{ch.database}`.schema_version")[0][0])


def ensure_schema(ch: ClickHouse, cluster: str | None = None, retention_days: float = 0,
                  progress: Callable[[str], None] | None = None) -> int:
    """Create or migrate rta's tables; the schema version now in place.

    Refuses (ClickHouseError naming both versions) a database set up by a newer rta."""
    db = ch.database
    on = _on_cluster(cluster)
    ch.command(f"CREATE DATABASE IF NOT EXISTS `{db}`{on}")
    ch.command(f"""CREATE TABLE IF NOT EXISTS `{db}`.schema_version{on} (
    version UInt32, applied DateTime DEFAULT now()) ENGINE = MergeTree ORDER BY version""")
    current = schema_version(ch)
    if current > SCHEMA_VERSION:
        raise ClickHouseError(
            f"the database {db!r} has rta schema version {current}, newer than this rta "
            f"knows ({SCHEMA_VERSION}): upgrade rta")
    for version, statements in sorted(_steps(db, cluster, retention_days).items()):
        if version <= current:
            continue
        for sql in statements:
            ch.command(sql)
        ch.command(f"INSERT INTO `{db}`.schema_version (version) VALUES ({version})")
        if progress is not None:
            progress(f"schema version {version} applied")
    return SCHEMA_VERSION
