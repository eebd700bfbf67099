"""Metadata in ClickHouse: the documents every daemon in front of one database shares (#17).

Several rta daemons ship into one ClickHouse database; an alert, dashboard, segment, token
or template created through one of them must be listed, used and deletable through every
other. So with a ClickHouse server the documents live in ClickHouse tables (schema version
2, `rta.core.clickhouse.schema`) instead of each daemon's sqlite file, behind exactly the
`rta.core.metadata.Metadata` interface of the sqlite store: the same ids, `createdAt` /
`updatedAt` fields, orders and NotFoundError cases.

    metadata          one row per write: (kind, id, name, body JSON, created_at, updated_at,
                      version, deleted). A reader takes each id's row of the highest
                      (version, body) with argMax, so it never depends on when the
                      ReplacingMergeTree merges (no FINAL needed; exact through a
                      Distributed table too, since one id's rows share a shard). A delete
                      writes a tombstone row (deleted = 1).
    metadata_history  append-only rows (kind, ref, at, seq, body), read newest seq first.

`version` (and the history's `seq`) is this process's wall clock in nanoseconds, forced to
grow within the process: the later of two writes to one document wins, by the writers'
clocks across daemons (last writer wins; clock skew between daemons larger than the gap
between two edits of one document can let the earlier edit win).

Name uniqueness is best effort across daemons: callers check `find_by_name` and then
`create` (409 on a clash), which is exact within one daemon but not atomic across two: two
daemons creating the same name within the same few milliseconds can both succeed, leaving
two documents; `find_by_name` then answers the earlier created, as the sqlite store does.

Tokens created in a data directory's sqlite file (`rta token create --data-dir`, the way to
make the first admin token) stay valid on that daemon: with `local` given, reads of the
kinds in LOCAL_KINDS also see the local file's documents (ClickHouse's win on an id clash),
and deleting one that is only local deletes it there. Tokens are read on the ingest path
(authentication), and ingest must keep acknowledging while ClickHouse is away: so while it
is unreachable, token lists answer from the last list read (retried every STALE_S).

Thread rule: any thread (the connection is thread-safe; writes and their version counter
take this store's lock). Every call is blocking I/O; callers on the event loop accept a
round trip per call, as they accepted a sqlite read.
"""

from __future__ import annotations

import builtins
import json
import logging
import threading
import time
import uuid
from typing import Any

from rta.core.clickhouse.connection import ClickHouse, ClickHouseError
from rta.core.clickhouse.schema import HISTORY, METADATA, write_settings
from rta.core.metadata import Metadata, not_found

LOCAL_KINDS = ("token",)
STALE_S = 5.0  # while ClickHouse is unreachable: how long a failed token read is not retried
log = logging.getLogger("rta.metadata")

_LATEST = """SELECT id, t.2 AS created, t.4 AS body FROM (
    SELECT id, argMax((deleted, created_at, name, body), (version, body)) AS t
    FROM `{db}`.{table} WHERE kind = {{kind:String}}{where} GROUP BY id)
WHERE t.1 = 0{having} ORDER BY created, id{limit}"""


class ClickHouseMetadataStore:
    """`Metadata` over ClickHouse tables shared by every daemon on the database."""

    def __init__(self, ch: ClickHouse, cluster: str | None = None,
                 local: Metadata | None = None) -> None:
        self.ch = ch
        self.local = local
        self._settings = write_settings(cluster)
        self._lock = threading.Lock()
        self._last = 0
        self._known: dict[str, builtins.list[dict[str, Any]]] = {}  # kind -> last list read
        self._retry_at = 0.0

    # -- writes ----------------------------------------------------------------------------

    def _version(self) -> int:
        with self._lock:
            self._last = max(self._last + 1, time.time_ns())
            return self._last

    def _write(self, kind: str, doc_id: str, doc: dict[str, Any] | None,
               created: int, updated: int) -> None:
        name = None if doc is None else doc.get("name")
        self.ch.command(
            f"INSERT INTO `{self.ch.database}`.{METADATA} (kind, id, name, body, created_at, "
            "updated_at, version, deleted) SELECT {kind:String}, {id:String}, "
            "{name:Nullable(String)}, {body:String}, {created:Int64}, {updated:Int64}, "
            "{version:UInt64}, {deleted:UInt8}",
            {"kind": kind, "id": doc_id, "name": name if isinstance(name, str) else None,
             "body": "{}" if doc is None else json.dumps(doc), "created": created,
             "updated": updated, "version": self._version(), "deleted": int(doc is None)},
            settings=self._settings)

    def create(self, kind: str, body: dict[str, Any], doc_id: str | None = None) -> dict[str, Any]:
        """Store a new document; `id`, `createdAt` and `updatedAt` are set on the returned copy
        (a document of the same id is replaced, as the sqlite store does)."""
        now = int(time.time() * 1000)
        doc = dict(body)
        doc["id"] = doc_id or doc.get("id") or str(uuid.uuid4())
        doc["createdAt"] = now
        doc["updatedAt"] = now
        self._write(kind, doc["id"], doc, now, now)
        return doc

    def put(self, kind: str, doc_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Replace an existing document (404 if missing), keeping its id and creation time."""
        if self.local is not None and kind in LOCAL_KINDS and self._shared(kind, doc_id) is None:
            return self.local.put(kind, doc_id, body)
        current = self.get(kind, doc_id)
        now = int(time.time() * 1000)
        doc = dict(body)
        doc["id"] = doc_id
        doc["createdAt"] = current["createdAt"]
        doc["updatedAt"] = now
        self._write(kind, doc_id, doc, int(current["createdAt"]), now)
        return doc

    def delete(self, kind: str, doc_id: str) -> None:
        if self._shared(kind, doc_id) is not None:
            self._write(kind, doc_id, None, 0, int(time.time() * 1000))
            return
        if self.local is not None and kind in LOCAL_KINDS:
            self.local.delete(kind, doc_id)  # (NotFoundError when it is not there either)
            return
        raise not_found(kind, doc_id)

    # -- reads -----------------------------------------------------------------------------

    def _docs(self, kind: str, doc_id: str | None = None, name: str | None = None,
              limit: int | None = None) -> builtins.list[dict[str, Any]]:
        sql = _LATEST.format(db=self.ch.database, table=METADATA,
                             where="" if doc_id is None else " AND id = {id:String}",
                             having="" if name is None else " AND t.3 = {name:String}",
                             limit="" if limit is None else f" LIMIT {int(limit)}")
        params: dict[str, Any] = {"kind": kind}
        if doc_id is not None:
            params["id"] = doc_id
        if name is not None:
            params["name"] = name
        return [json.loads(body) for _, _, body in self.ch.rows(sql, params)]

    def _shared(self, kind: str, doc_id: str) -> dict[str, Any] | None:
        found = self._docs(kind, doc_id=doc_id)
        return found[0] if found else None

    def get(self, kind: str, doc_id: str) -> dict[str, Any]:
        doc = self._shared(kind, doc_id)
        if doc is not None:
            return doc
        if self.local is not None and kind in LOCAL_KINDS:
            return self.local.get(kind, doc_id)
        raise not_found(kind, doc_id)

    def find_by_name(self, kind: str, name: str) -> dict[str, Any] | None:
        """The earliest created document of `kind` named `name` (None if there is none)."""
        if self.local is not None and kind in LOCAL_KINDS:
            named = [d for d in self.list(kind) if d.get("name") == name]
            return named[0] if named else None
        found = self._docs(kind, name=name, limit=1)
        return found[0] if found else None

    def list(self, kind: str) -> builtins.list[dict[str, Any]]:
        """Every document of `kind`, oldest created first (ties by id)."""
        if kind not in LOCAL_KINDS:
            return self._docs(kind)
        known = self._known.get(kind)
        if known is not None and time.monotonic() < self._retry_at:
            docs = list(known)
        else:
            try:
                docs = self._docs(kind)
            except ClickHouseError as exc:
                if known is None:
                    raise
                log.warning("%s list answered from its last read: %s", kind, exc.message)
                self._retry_at = time.monotonic() + STALE_S
                docs = list(known)
            else:
                self._known[kind] = list(docs)
        if self.local is not None:
            shared = {d["id"] for d in docs}
            docs += [d for d in self.local.list(kind) if d["id"] not in shared]
            docs.sort(key=lambda d: (int(d.get("createdAt", 0)), str(d["id"])))
        return docs

    # -- history ---------------------------------------------------------------------------

    def append_history(self, kind: str, ref: str | None, body: dict[str, Any]) -> None:
        self.ch.command(
            f"INSERT INTO `{self.ch.database}`.{HISTORY} (kind, ref, at, seq, body) SELECT "
            "{kind:String}, {ref:Nullable(String)}, {at:Int64}, {seq:UInt64}, {body:String}",
            {"kind": kind, "ref": ref, "at": int(time.time() * 1000), "seq": self._version(),
             "body": json.dumps(body)}, settings=self._settings)

    def history(self, kind: str, limit: int = 50,
                ref: str | None = None) -> builtins.list[dict[str, Any]]:
        """Newest first."""
        where = "" if ref is None else " AND ref = {ref:String}"
        params: dict[str, Any] = {"kind": kind, "limit": max(0, int(limit))}
        if ref is not None:
            params["ref"] = ref
        rows = self.ch.rows(
            f"SELECT body FROM `{self.ch.database}`.{HISTORY} WHERE kind = {{kind:String}}"
            f"{where} ORDER BY seq DESC, body DESC LIMIT {{limit:UInt64}}", params)
        return [json.loads(r[0]) for r in rows]

    def close(self) -> None:
        """The connection is the engine's (shared with the shipper); the local file is ours."""
        if self.local is not None:
            self.local.close()

