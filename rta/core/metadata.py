"""Metadata: small JSON documents (alerts, dashboards, segments, tokens, alert history).

sqlite3 in the data dir (or in memory), one table of documents keyed by (kind, id). Writes
commit immediately: these are user-authored objects that must survive a restart.

`Metadata` is the interface the engine holds: this sqlite store, or (several daemons on one
ClickHouse server) `rta.core.clickhouse.metadata_store.ClickHouseMetadataStore`, the same
documents in ClickHouse tables so every daemon sees them.

Thread rule: any thread; one lock serialises the sqlite connection.
"""

from __future__ import annotations

import builtins
import json
import os
import sqlite3
import threading
import time
import uuid
from typing import Any, Protocol

from rta.core.errors import NotFoundError

SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    name TEXT,
    body TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE INDEX IF NOT EXISTS documents_name ON documents (kind, name);
CREATE TABLE IF NOT EXISTS history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    ref TEXT,
    at INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS history_kind ON history (kind, seq);
"""


class Metadata(Protocol):
    """What the engine needs of a metadata store (both stores satisfy it).

    Documents are JSON objects keyed by (kind, id); every stored copy carries `id`,
    `createdAt` and `updatedAt` (ms). `get`, `put` and `delete` raise NotFoundError for an
    id the kind does not hold; `create` replaces a document of the same id. Name uniqueness
    (ConflictError, 409) is the callers' rule, checked with `find_by_name`."""

    def create(self, kind: str, body: dict[str, Any],
               doc_id: str | None = None) -> dict[str, Any]: ...

    def put(self, kind: str, doc_id: str, body: dict[str, Any]) -> dict[str, Any]: ...

    def get(self, kind: str, doc_id: str) -> dict[str, Any]: ...

    def find_by_name(self, kind: str, name: str) -> dict[str, Any] | None: ...

    def list(self, kind: str) -> builtins.list[dict[str, Any]]: ...

    def delete(self, kind: str, doc_id: str) -> None: ...

    def append_history(self, kind: str, ref: str | None, body: dict[str, Any]) -> None: ...

    def history(self, kind: str, limit: int = 50,
                ref: str | None = None) -> builtins.list[dict[str, Any]]: ...

    def close(self) -> None: ...


def not_found(kind: str, doc_id: str) -> NotFoundError:
    """The error every store raises for a missing document."""
    return NotFoundError(f"no {kind} with id {doc_id!r}", [{"field": "id", "value": doc_id}])


class MetadataStore:
    @staticmethod
    def path(data_dir: str) -> str:
        """The database file of a data dir."""
        return os.path.join(data_dir, "metadata.sqlite3")

    def __init__(self, data_dir: str | None) -> None:
        path = ":memory:" if data_dir is None else self.path(data_dir)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        if data_dir is not None:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    def create(self, kind: str, body: dict[str, Any], doc_id: str | None = None) -> dict[str, Any]:
        """Store a new document; `id`, `createdAt` and `updatedAt` are set on the returned copy."""
        now = int(time.time() * 1000)
        doc = dict(body)
        doc["id"] = doc_id or doc.get("id") or str(uuid.uuid4())
        doc["createdAt"] = now
        doc["updatedAt"] = now
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO documents VALUES (?, ?, ?, ?, ?, ?)",
                (kind, doc["id"], doc.get("name"), json.dumps(doc), now, now))
        return doc

    def put(self, kind: str, doc_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Replace an existing document (404 if missing), keeping its id and creation time."""
        current = self.get(kind, doc_id)
        now = int(time.time() * 1000)
        doc = dict(body)
        doc["id"] = doc_id
        doc["createdAt"] = current["createdAt"]
        doc["updatedAt"] = now
        with self._lock:
            self._db.execute(
                "UPDATE documents SET name = ?, body = ?, updated_at = ? WHERE kind = ? AND id = ?",
                (doc.get("name"), json.dumps(doc), now, kind, doc_id))
        return doc

    def get(self, kind: str, doc_id: str) -> dict[str, Any]:
        with self._lock:
            row = self._db.execute("SELECT body FROM documents WHERE kind = ? AND id = ?",
                                   (kind, doc_id)).fetchone()
        if row is None:
            raise not_found(kind, doc_id)
        doc: dict[str, Any] = json.loads(row[0])
        return doc

    def find_by_name(self, kind: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT body FROM documents WHERE kind = ? AND name = ? ORDER BY created_at "
                "LIMIT 1", (kind, name)).fetchone()
        return None if row is None else json.loads(row[0])

    def list(self, kind: str) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT body FROM documents WHERE kind = ? ORDER BY created_at, id",
                (kind,)).fetchall()
        return [json.loads(r[0]) for r in rows]

    def delete(self, kind: str, doc_id: str) -> None:
        with self._lock:
            cur = self._db.execute("DELETE FROM documents WHERE kind = ? AND id = ?",
                                   (kind, doc_id))
        if cur.rowcount == 0:
            raise not_found(kind, doc_id)

    def append_history(self, kind: str, ref: str | None, body: dict[str, Any]) -> None:
        now = int(time.time() * 1000)
        with self._lock:
            self._db.execute("INSERT INTO history (kind, ref, at, body) VALUES (?, ?, ?, ?)",
                             (kind, ref, now, json.dumps(body)))

    def history(self, kind: str, limit: int = 50,
                ref: str | None = None) -> builtins.list[dict[str, Any]]:
        """Newest first."""
        sql = "SELECT body FROM history WHERE kind = ?"
        args: list[Any] = [kind]
        if ref is not None:
            sql += " AND ref = ?"
            args.append(ref)
        sql += " ORDER BY seq DESC LIMIT ?"
        args.append(limit)
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [json.loads(r[0]) for r in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()
