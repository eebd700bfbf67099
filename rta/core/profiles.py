"""Person profiles: the properties of each person, durable and folded (`docs/people.md`).

- Updates come from events (an `Engine.on_ingest` listener, after the identity links of the
  same batch) and from `set_properties` (`POST /persons/{id}/properties`). Each group is
  appended to the `ProfileLog` (fsynced) before it is applied, so a request's updates are
  durable before it is answered.
- A person's properties are the fold (`person_props.fold`: arrival order; `$set` wins,
  `$set_once` only while absent, `$unset` removes) of the updates of every distinct id it
  holds, so a merge combines persons retroactively, as links do for events. Folds are
  cached per person until one of its updates or the identity mapping changes.
- Crash safety: updates of events replayed from the WAL whose event id the log lacks are
  appended at `open` (a crash can only lose the log's tail, so order is kept).
- `forget(person_id, distinct_ids)` (erasure) drops every update of those ids from memory
  and rewrites the log without them, atomically.
- `version` moves with every change (and with the identity mapping): query caches and the
  embedded engine's person columns key on it; `on_change` listeners (the ClickHouse
  shipper) hear which persons changed.

Thread rule: changes on the engine's event loop; a lock guards the state so readers
(queries, `GET /persons`) may run on any thread.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rta.core.embedded.store.dictionary import ERASED
from rta.core.errors import NotFoundError, field_error
from rta.core.person_props import Update, apply, batch_updates, block_updates, parse_body
from rta.core.profile_log import ProfileLog

if TYPE_CHECKING:
    from rta.core.events import EventBatch
    from rta.core.persons import Persons

ProfileListener = Callable[[list[str]], None]  # person ids whose properties may have changed
MAX_LIST = 1000


class ProfileStore:
    """Owns the property log and every distinct id's updates for one engine."""

    def __init__(self, persons: Persons, data_dir: str | None, fsync: bool = True) -> None:
        self.persons = persons
        self.log = ProfileLog(data_dir, fsync)
        self.on_change: list[ProfileListener] = []
        self.updates = 0
        self._seq = 0
        self._by_id: dict[str, list[tuple[int, Update]]] = {}
        self._own_version = 0
        self._cache: dict[str, dict[str, Any]] = {}
        self._cache_mapping = -1
        self._lock = threading.RLock()
        self._listing: tuple[tuple[int, int, int], list[str]] | None = None
        persons.on_change.append(self._mapping_changed)

    # -- opening ---------------------------------------------------------------------------

    def open(self) -> None:
        logged = self.log.read()
        events = {u.event for u in logged if u.event is not None}
        for update in logged:
            self._add(update)
        self._intern(logged)
        missed: list[Update] = []
        store = self.persons.store
        for block in store.snapshot().blocks:
            if block.label.startswith("seg-"):
                continue
            missed.extend(u for u in block_updates(block, store.dicts)
                          if u.event not in events)
        if missed:
            self._record(missed)

    def close(self) -> None:
        self.log.close()

    # -- updates in ------------------------------------------------------------------------

    @property
    def version(self) -> tuple[int, int]:
        """Changes with any property update and with the identity mapping."""
        return (self._own_version, self.persons.version)

    def on_batch(self, batch: EventBatch) -> None:
        """The ingest listener: the batch's updates, durable then applied."""
        updates = batch_updates(batch)
        if updates:
            self._record(updates)

    def set_properties(self, person_or_id: str, body: Any) -> dict[str, Any]:
        """`POST /persons/{id}/properties`: 400 for a bad body, 404 for an unknown id;
        applied whole or not at all. Answers the person's properties after it."""
        described = self.persons.describe(person_or_id)  # 404 first: the id is the path
        person = described["personId"]
        update = parse_body(body, person)
        self._record([update])
        return {"personId": person, "properties": self.properties(person)}

    def apply(self, updates: list[Update]) -> None:
        """Apply updates given directly (imports, benchmarks): durable, in order."""
        if updates:
            self._record(updates)

    def strings(self) -> set[str]:
        """Every string value some person has now: erasure's pruning of the store's values
        dictionary must keep them (`_intern` put them there)."""
        return {v for props in self.all_properties().values() for v in props.values()
                if isinstance(v, str)}

    def held_strings(self, distinct_ids: set[str]) -> tuple[set[str], set[str]]:
        """(string values in the updates of `distinct_ids`, those in everyone else's): the
        values dictionary holds both (`_intern`); erasure forgets the first unless the
        second, or a remaining event, uses them."""
        mine: set[str] = set()
        others: set[str] = set()
        with self._lock:
            for distinct_id, entries in self._by_id.items():
                into = mine if distinct_id in distinct_ids else others
                into.update(v for _, u in entries for part in (u.set, u.set_once)
                            for v in part.values() if isinstance(v, str))
        return mine, others

    def invalidate(self) -> None:
        """Forget derived state (after the store's dictionary was rewritten: the embedded
        person columns hold its codes)."""
        with self._lock:
            self._cache.clear()
            self._own_version += 1
            self._listing = None
        self._intern([u for entries in self._by_id.values() for _, u in entries])

    def _intern(self, updates: list[Update]) -> None:
        """Person string values join the store's values dictionary, so the embedded engine's
        person columns are codes like any string property (`embedded/person_columns.py`)."""
        texts = sorted({v for u in updates for part in (u.set, u.set_once)
                        for v in part.values() if isinstance(v, str)})
        if texts:
            self.persons.store.dicts.values.encode(texts)

    def _add(self, update: Update) -> None:
        self._seq += 1
        self._by_id.setdefault(update.distinct_id, []).append((self._seq, update))
        self.updates += 1

    def _record(self, updates: list[Update]) -> None:
        with self._lock:
            self.log.append(updates)
            self._intern(updates)
            person_of = self.persons.person_of
            touched = sorted({person_of(u.distinct_id) for u in updates})
            before = {p: self.properties(p) for p in touched}
            after = {p: dict(v) for p, v in before.items()}
            for update in updates:
                self._add(update)
                # (the newest update folds onto the fold so far: no refold of the history)
                apply(after[person_of(update.distinct_id)], update)
            for person in touched:
                self._cache[person] = dict(sorted(after[person].items()))
            changed = [p for p in touched if after[p] != before[p]]
            if not changed:  # (SDKs repeat $set_once and $set: no answer can change)
                return
            self._own_version += 1
            self._listing = None
        self.persons.store.touch(-(1 << 62), 1 << 62)  # cached answers may depend on them
        for listener in self.on_change:
            listener(changed)

    def _mapping_changed(self, version: int, rows: list[tuple[str, str]]) -> None:
        """A link moved ids: the persons they joined now fold more updates."""
        with self._lock:
            self._cache.clear()
            self._listing = None
        persons = sorted({p for _, p in rows} | {x for x, _ in rows})  # (old roots too)
        if any(self._by_id.get(x) for x, _ in rows):
            for listener in self.on_change:
                listener(persons)

    def forget(self, person_id: str, distinct_ids: list[str]) -> int:
        """Erasure: every update of `distinct_ids` (and `person_id`) leaves memory and the
        log (rewritten atomically without them). The number of updates dropped."""
        with self._lock:
            ids = {person_id, *distinct_ids}
            dropped = sum(len(self._by_id.pop(x, [])) for x in ids)
            remaining = sorted((s, u) for entries in self._by_id.values() for s, u in entries)
            self.log.rewrite([u for _, u in remaining])
            self._cache.clear()
            self.updates -= dropped
            self._own_version += 1
            self._listing = None
        self.persons.store.touch(-(1 << 62), 1 << 62)
        for listener in self.on_change:
            listener(sorted(ids))
        return dropped

    # -- properties out ----------------------------------------------------------------------

    def properties(self, person: str) -> dict[str, Any]:
        """The current properties of `person` (a person id), keys sorted."""
        with self._lock:
            self._check_mapping()
            cached = self._cache.get(person)
            if cached is not None:
                return dict(cached)
            entries: list[tuple[int, Update]] = []
            for distinct_id in self.persons.graph.members(person):
                entries.extend(self._by_id.get(distinct_id, ()))
            props: dict[str, Any] = {}
            for _, update in sorted(entries, key=lambda e: e[0]):
                apply(props, update)
            props = dict(sorted(props.items()))
            self._cache[person] = props
            return dict(props)

    def _check_mapping(self) -> None:
        if self._cache_mapping != self.persons.version:
            self._cache.clear()
            self._cache_mapping = self.persons.version

    def all_properties(self) -> dict[str, dict[str, Any]]:
        """person id -> properties, for every person with at least one property."""
        with self._lock:
            persons = {self.persons.person_of(x) for x, v in self._by_id.items() if v}
            out = {p: self.properties(p) for p in sorted(persons)}
        return {p: v for p, v in out.items() if v}

    def key_values(self, key: str) -> list[tuple[str, Any]]:
        """(distinct id, value) for every distinct id whose person has property `key`
        (the ids of persons that never sent an event included: callers skip unknown ids)."""
        out: list[tuple[str, Any]] = []
        for person, props in self.all_properties().items():
            if key in props:
                value = props[key]
                out.extend((x, value) for x in self.persons.graph.members(person))
        return out

    def keys(self) -> set[str]:
        """Every property key some person has now."""
        return {k for props in self.all_properties().values() for k in props}

    def empty(self) -> bool:
        return not self.updates

    # -- listing ---------------------------------------------------------------------------

    def _person_ids(self) -> list[str]:
        """Every person (of every distinct id that sent an event or was updated), sorted."""
        users = self.persons.store.dicts.users
        key = (len(users), self.persons.version, self._own_version)
        with self._lock:
            if self._listing is not None and self._listing[0] == key:
                return self._listing[1]
        person_of = self.persons.graph.person_of
        ids = {person_of(x) for x in users.strings if x and not x.startswith(ERASED)}
        ids.update(person_of(x) for x, v in self._by_id.items() if v)
        listing = sorted(ids)
        with self._lock:
            self._listing = (key, listing)
        return listing

    def list(self, search: str | None, limit: int, cursor: str | None) -> dict[str, Any]:
        """`GET /persons`: persons ordered by id after `cursor`, those whose distinct ids or
        property values contain `search` (case-insensitive), at most `limit`."""
        after = _decode_cursor(cursor)
        needle = (search or "").casefold()
        persons = self._person_ids()
        import bisect
        start = bisect.bisect_right(persons, after) if after is not None else 0
        out: list[dict[str, Any]] = []
        last = None
        for person in persons[start:]:
            members = self.persons.graph.members(person)
            props = self.properties(person)
            if needle and not (any(needle in m.casefold() for m in members)
                               or any(needle in _text(v).casefold() for v in props.values())):
                continue
            out.append({"personId": person, "distinctIds": members,
                        "identified": self.persons.graph.identified(person),
                        "properties": props})
            last = person
            if len(out) >= limit:
                break
        more = last is not None and len(out) >= limit and persons[-1] != last
        return {"persons": out, "nextCursor": _encode_cursor(last) if more else None}

    def stats(self) -> dict[str, Any]:
        return {"propertyUpdates": self.updates}


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _encode_cursor(person: str | None) -> str | None:
    if person is None:
        return None
    return base64.urlsafe_b64encode(person.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str | None) -> str | None:
    if not cursor:
        return None
    try:
        text = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_",
                                validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        text = ""
    if not text:
        raise field_error("cursor", "is not a cursor this server gave")
    return text


def parse_limit(value: Any) -> int:
    try:
        n = int(value) if value not in (None, "") else 100
    except (TypeError, ValueError):
        raise field_error("limit", f"must be an integer from 1 to {MAX_LIST}") from None
    if not 1 <= n <= MAX_LIST:
        raise field_error("limit", f"must be an integer from 1 to {MAX_LIST}", value=n)
    return n


def open_profiles(persons: Persons, data_dir: str | None, fsync: bool = True) -> ProfileStore:
    profiles = ProfileStore(persons, data_dir, fsync)
    profiles.open()
    return profiles


__all__ = ["NotFoundError", "ProfileStore", "open_profiles", "parse_limit"]
