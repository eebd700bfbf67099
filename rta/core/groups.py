"""Groups: the engine's group service (types and group properties in, group lists out).

- Events name their groups in `properties.$groups` (`group_wire`); `$groupidentify` (and
  Segment `group`, mapped to `$group`) set a group's properties. `check` (an ingest check:
  it runs before the batch is written) refuses malformed group fields and a group type
  beyond `MAX_GROUP_TYPES`, so nothing of a refused batch is applied; `on_batch` (an ingest
  listener, once the batch is durable) appends new types and identify calls to the
  `GroupLog` (fsynced) and applies them.
- Properties: each identify call overwrites the properties it names, in arrival order
  (PostHog's `$group_set`); value kinds (string, integer, float, boolean) are kept.
- Crash safety: as `Persons.open`, the identify calls and types of unsealed blocks (the
  head replayed from the WAL) that the log lacks are re-applied at open (calls are known by
  their event id, so none is applied twice).
- Event counts and first/last seen come from the events themselves (`Backend.group_stats`),
  so they follow retention and erasure; groups known only from identify calls are listed
  with their identify times.
- Queries: `keys(group_type)` is the per-type dictionary of group keys the embedded
  engine's group-aware blocks code groups with (`embedded/group_blocks.py`).

Thread rule: `check`/`on_batch` on the engine's event loop; a lock guards the state, so
`describe`/`list`/`known_types` may run on any thread.
"""

from __future__ import annotations

import base64
import logging
import threading
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rta.core.errors import NotFoundError, ValidationError, field_error
from rta.core.group_log import GroupLog
from rta.core.group_wire import IDENTIFY_TYPES, GroupSet, read_batch, type_problem
from rta.core.ingest import invalid_batch

if TYPE_CHECKING:
    from rta.core.embedded.store import ColumnStore, Snapshot
    from rta.core.embedded.store.dictionary import Dictionary
    from rta.core.events import EventBatch
    from rta.core.queries.backend import Backend

log = logging.getLogger("rta.groups")
MAX_GROUP_TYPES = 5  # PostHog's limit per project
IDENTIFY_SET = frozenset(IDENTIFY_TYPES)
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


@dataclass
class GroupInfo:
    """A group's properties ({name: (kind, value)}) and its identify times."""

    props: dict[str, tuple[str, Any]]
    first_identified: int
    last_identified: int


class Groups:
    """Owns the group log, the group types and the groups' properties of one engine."""

    def __init__(self, store: ColumnStore, data_dir: str | None, fsync: bool = True,
                 max_types: int = MAX_GROUP_TYPES) -> None:
        self.store = store
        self.log = GroupLog(data_dir, fsync)
        self.max_types = max_types
        self.types: list[str] = []  # in the order first seen (PostHog's group type index)
        self._durable: set[str] = set()
        self.groups: dict[str, dict[str, GroupInfo]] = {}
        self._seen: set[str] = set()  # event ids of applied identify calls
        self._keys: dict[str, Dictionary] = {}
        self._views: dict[str, tuple[Any, weakref.WeakKeyDictionary[Any, Any]]] = {}
        self._lock = threading.RLock()

    # -- opening ---------------------------------------------------------------------------

    def open(self) -> None:
        """Replay the log, then what unsealed blocks (the WAL's events) hold beyond it."""
        for types, sets in self.log.read():
            for t in types:
                self._add_type(t)
                self._durable.add(t)
            for s in sets:
                self._apply(s)
        missed_types: list[str] = []
        missed: list[GroupSet] = []
        for block in self.store.snapshot().blocks:
            if not block.n:
                continue
            # types of every stored block (its metadata; bulk loads skip the listener too)
            for prop in block.property_keys:
                name = prop[len("$groups."):] if prop.startswith("$groups.") else None
                if name and type_problem(name) is None and name not in self._durable \
                        and name not in missed_types:
                    missed_types.append(name)
            if not block.label.startswith("seg-"):
                missed.extend(s for s in _block_sets(block, self.store)
                              if s.event_id not in self._seen)
        for s in missed:
            if s.group_type not in self._durable and s.group_type not in missed_types:
                missed_types.append(s.group_type)
        if missed_types or missed:
            log.info("re-applying %d group type(s) and %d group identify call(s) from the "
                     "write-ahead log", len(missed_types), len(missed))
            with self._lock:
                self.log.append(missed_types, missed)
                for t in missed_types:
                    self._add_type(t)
                    self._durable.add(t)
                for s in missed:
                    self._apply(s)

    def close(self) -> None:
        self.log.close()

    # -- ingest ----------------------------------------------------------------------------

    def check(self, batch: EventBatch) -> None:
        """Refuse the whole batch (400) on malformed group fields or a group type beyond
        the limit; claims the batch's new types (a later batch sees them)."""
        if not _may_hold_groups(batch):
            return
        found = read_batch(batch)
        errors = list(found.errors)
        with self._lock:
            new = [t for t in sorted(found.types, key=lambda t: found.types[t][0])
                   if t not in self.types]
            room = self.max_types - len(self.types)
            for t in new[max(room, 0):]:
                row, fieldname = found.types[t]
                errors.append({"index": row, "field": fieldname, "code": "too_many_group_types",
                               "message": f"group type '{t}' would be type "
                               f"{len(self.types) + new.index(t) + 1}; at most "
                               f"{self.max_types} group types are allowed (known: "
                               f"{', '.join(self.types) or 'none'})"})
            if errors:
                errors.sort(key=lambda e: e["index"])
                first = errors[0]
                where = f"(first: {first['field']} {first['message']})"
                if len(batch) == 1:
                    raise ValidationError(f"{first['field']}: {first['message']}",
                                          [{k: v for k, v in first.items() if k != "index"}])
                raise invalid_batch(len({e["index"] for e in errors}), len(batch), errors,
                                    where)
            for t in new:
                self._add_type(t)

    def on_batch(self, batch: EventBatch) -> None:
        """The ingest listener: new types and identify calls, logged then applied."""
        if not _may_hold_groups(batch):
            return
        found = read_batch(batch)
        with self._lock:
            types = [t for t in found.types if t not in self._durable]
            sets = [s for s in found.sets if s.event_id not in self._seen]
            if not types and not sets:
                return
            self.log.append(types, sets)
            for t in types:
                self._add_type(t)
                self._durable.add(t)
            for s in sets:
                self._apply(s)

    def _add_type(self, group_type: str) -> None:
        if group_type not in self.types:
            self.types.append(group_type)

    def _apply(self, s: GroupSet) -> None:
        self._seen.add(s.event_id)
        self._add_type(s.group_type)
        groups = self.groups.setdefault(s.group_type, {})
        info = groups.get(s.key)
        if info is None:
            groups[s.key] = GroupInfo(dict(s.props), s.ts, s.ts)
            return
        info.props.update(s.props)
        info.first_identified = min(info.first_identified, s.ts)
        info.last_identified = max(info.last_identified, s.ts)

    # -- out -------------------------------------------------------------------------------

    def known_types(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self.types)

    def keys(self, group_type: str) -> Dictionary:
        """The in-memory dictionary coding `group_type`'s keys for group-aware blocks."""
        from rta.core.embedded.store.dictionary import Dictionary
        with self._lock:
            found = self._keys.get(group_type)
            if found is None:
                found = self._keys[group_type] = Dictionary(None)
            return found

    def wrap(self, snap: Snapshot, group_type: str) -> Snapshot:
        """`snap` (embedded) whose blocks count groups of `group_type` as users."""
        from rta.core.embedded.group_blocks import GroupDicts, group_snapshot
        keys = self.keys(group_type)
        with self._lock:
            view = self._views.get(group_type)
            if view is None or view[0].inner is not snap.dicts:
                view = self._views[group_type] = (GroupDicts(snap.dicts, keys),
                                                  weakref.WeakKeyDictionary())
        return group_snapshot(snap, group_type, keys, view[0], view[1])

    def require_type(self, group_type: str, fieldname: str = "type") -> None:
        """404 naming `fieldname` when no event or identify call ever named the type."""
        if group_type not in self.known_types():
            raise NotFoundError(f"no group type '{group_type}' (known: "
                                f"{', '.join(self.types) or 'none'})",
                                [{"field": fieldname, "message": "unknown group type"}])

    def _rows(self, backend: Backend, group_type: str) -> dict[str, dict[str, Any]]:
        """Every group of the type: key -> the API's row."""
        with self._lock:
            infos = {k: (dict(v.props), v.first_identified, v.last_identified)
                     for k, v in self.groups.get(group_type, {}).items()}
        rows: dict[str, dict[str, Any]] = {}
        for key, count, first, last in backend.group_stats(group_type):
            rows[key] = {"type": group_type, "key": key, "properties": {},
                         "firstSeen": first, "lastSeen": last, "eventCount": count}
        for key, (props, first, last) in infos.items():
            row = rows.get(key)
            if row is None:
                row = rows[key] = {"type": group_type, "key": key, "properties": {},
                                   "firstSeen": first, "lastSeen": last, "eventCount": 0}
            else:
                row["firstSeen"] = min(row["firstSeen"], first)
                row["lastSeen"] = max(row["lastSeen"], last)
            row["properties"] = {k: v for k, (_, v) in sorted(props.items())}
        return rows

    def list_groups(self, backend: Backend, group_type: str, search: Any = None,
             limit: Any = DEFAULT_LIMIT, cursor: Any = None) -> dict[str, Any]:
        """`GET /groups/{type}`: groups by key, `search` in keys and string property values
        (case-insensitive), `limit` per page, `cursor` from the previous page."""
        self.require_type(group_type)
        if search is not None and not isinstance(search, str):
            raise field_error("search", "must be a string")
        if isinstance(limit, str):
            limit = int(limit) if limit.strip().isdigit() else limit
        if isinstance(limit, bool) or not isinstance(limit, int) or \
                not 1 <= limit <= MAX_LIMIT:
            raise field_error("limit", f"must be an integer from 1 to {MAX_LIMIT}",
                              value=limit)
        after = _decode_cursor(cursor)
        rows = self._rows(backend, group_type)
        keys = sorted(rows)
        if search:
            needle = search.lower()
            keys = [k for k in keys if needle in k.lower() or any(
                isinstance(v, str) and needle in v.lower()
                for v in rows[k]["properties"].values())]
        total = len(keys)
        if after is not None:
            keys = [k for k in keys if k > after]
        page = keys[:limit]
        more = len(keys) > limit
        return {"type": group_type, "groups": [rows[k] for k in page], "total": total,
                "next": _encode_cursor(page[-1]) if more and page else None}

    def describe(self, backend: Backend, group_type: str, key: str) -> dict[str, Any]:
        """`GET /groups/{type}/{key}`; 404 for an unknown type or group."""
        self.require_type(group_type)
        row = self._rows(backend, group_type).get(key)
        if row is None:
            raise NotFoundError(f"no {group_type} group with key '{key}'",
                                [{"field": "key", "message": "unknown group"}])
        return row

    def summary(self) -> list[dict[str, Any]]:
        """Every group type, in PostHog's index order, with its identified groups."""
        with self._lock:
            return [{"type": t, "index": i, "identified": len(self.groups.get(t, {}))}
                    for i, t in enumerate(self.types)]

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"types": len(self.types),
                    "identified": sum(len(g) for g in self.groups.values())}


def _may_hold_groups(batch: EventBatch) -> bool:
    """Whether a batch can say anything about groups (C-level checks: most batches don't)."""
    return any("$group" in name for name in batch.props) or \
        not IDENTIFY_SET.isdisjoint(batch.type_names())


def _encode_cursor(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def _decode_cursor(cursor: Any) -> str | None:
    if cursor is None or cursor == "":
        return None
    if not isinstance(cursor, str):
        raise field_error("cursor", "must be the `next` value of the previous page")
    try:
        text = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_",
                                validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        text = ""
    if not text:
        raise field_error("cursor", "must be the `next` value of the previous page")
    return text


def _block_sets(block: Any, store: ColumnStore) -> list[GroupSet]:
    """The identify calls of a stored block (the head replayed from the WAL), row order."""
    import numpy as np

    from rta.core.embedded.render import render_events
    from rta.core.events import EventBatch, property_kind

    codes = [store.dicts.types.lookup(t) for t in IDENTIFY_TYPES]
    codes = [c for c in codes if c >= 0]
    if not codes:
        return []
    rows = np.flatnonzero(np.isin(block.type, np.array(codes, dtype=np.int32)))
    if not len(rows):
        return []
    events = render_events(block, rows, store.dicts)
    events.sort(key=lambda e: (e["receivedAt"], e["timestamp"]))
    batch = EventBatch(0)
    for i, e in enumerate(events):
        batch.ids.append(e["id"])
        batch.timestamps.append(e["timestamp"])
        batch.types.append(e["type"])
        batch.users.append(e["userId"])
        batch.sessions.append(e["sessionId"])
        for k, v in e["properties"].items():
            kv = property_kind(v)
            if kv is not None:
                col = batch.props.setdefault(f"{kv[0]}:{k}", ([], []))
                col[0].append(i)
                col[1].append(kv[1])
    return read_batch(batch).sets


def open_groups(store: ColumnStore, data_dir: str | None, fsync: bool = True) -> Groups:
    groups = Groups(store, data_dir, fsync)
    groups.open()
    return groups
