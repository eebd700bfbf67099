"""Persons: the engine's identity service (links in, person-aware snapshots out).

- Links come from events (`identity.batch_links`, an `Engine.on_ingest` listener: it runs
  once the batch is durable and before the request is answered) and from `merge()` (the
  API's `POST /persons/merge`). Each group is appended to the `LinkLog` (fsynced) and
  folded into the `PersonGraph`.
- Crash safety: a kill between the WAL's fsync and the listener leaves events whose links
  are not in the log. Those events are still in the WAL, which the store replays into its
  head at start, so `open` re-reads the links of every unsealed block and applies the ones
  the log lacks (a link already applied is a no-op, so re-applying is harmless).
- Queries: `wrap(snapshot)` gives the snapshot whose blocks read `user` as the person's
  code (`embedded/person_blocks.py`), so every kernel counts persons; the raw distinct id
  stays readable (`raw_user`) for the `userId` filter and for rendering events. With no link
  at all snapshots are returned unchanged (no cost).
- A link that changes a person changes past answers: the mapping version moves, the store's
  change log records an all-time change (the result cache drops every answer) and
  `on_change` listeners (the ClickHouse shipper) hear the moved ids.
- `identity_mode` ("persons" or "raw") is a context variable the server sets per request
  (`?identity=raw`), read when a query context is built.

Thread rule: links are applied on the engine's event loop (`on_batch`, `merge`: the
store's change log and the shipper's queue are the loop's); a lock guards the graph, so
`remap`/`wrap`/`describe` may run on any thread.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from rta.core.errors import ConflictError, NotFoundError, field_error
from rta.core.events import MAX_ID_LENGTH
from rta.core.identity import (  # noqa: F401 (identity_mode, parse_identity: re-exported)
    ALIAS,
    MERGE,
    PERSONS,
    RAW,
    Link,
    batch_links,
    block_links,
    identity_mode,
    illegal_id,
    parse_identity,
)
from rta.core.person_graph import MERGED, REFUSED, Outcome, PersonGraph
from rta.core.person_log import LinkLog

if TYPE_CHECKING:
    from rta.core.embedded.store import ColumnStore, Snapshot
    from rta.core.events import EventBatch
    from rta.core.profiles import ProfileStore

log = logging.getLogger("rta.persons")
ALL_TIME = (-(1 << 62), 1 << 62)
MAX_MERGE_IDS = 100  # distinct ids one POST /persons/merge may name
ChangeListener = Callable[[int, list[tuple[str, str]]], None]


@dataclass(frozen=True)
class Remap:
    """person code per user code (`codes[u]`), for mapping `version`."""

    version: int
    codes: np.ndarray


class Persons:
    """Owns the link log and the person graph of one engine's store."""

    def __init__(self, store: ColumnStore, data_dir: str | None, fsync: bool = True) -> None:
        self.store = store
        self.graph = PersonGraph()
        self.log = LinkLog(data_dir, fsync)
        self.version = 0  # bumps whenever a link moves ids between persons
        self.links = 0
        self.refused = 0
        self.on_change: list[ChangeListener] = []
        self._seen: set[Link] = set()
        self._remap: Remap | None = None
        self._remap_lock = threading.Lock()
        self._lock = threading.RLock()  # the graph, the log and the version change together
        self._wrapped: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
        # person properties (`profiles.py`), set by the engine: `person.<key>` columns
        self.profiles: ProfileStore | None = None
        self._values: Any = None  # (profile version, PersonValues) of the latest wrap

    # -- opening ---------------------------------------------------------------------------

    def open(self) -> None:
        """Replay the log, then the links of events the log may have missed (unsealed)."""
        for link in self.log.read():
            self._fold(link)
        missed: list[Link] = []
        for block in self.store.snapshot().blocks:
            if block.label.startswith("seg-"):
                continue
            missed.extend(x for x in block_links(block, self.store.dicts)
                          if x not in self._seen)
        if missed:
            log.info("re-applying %d identity link(s) from the write-ahead log", len(missed))
            self._record(missed)

    def close(self) -> None:
        self.log.close()

    # -- links in ---------------------------------------------------------------------------

    def on_batch(self, batch: EventBatch) -> None:
        """The ingest listener: the links `batch` carries, applied and made durable."""
        links = batch_links(batch)
        if links:
            self._record(links)

    def merge(self, ids: Any, force: Any = False) -> dict[str, Any]:
        """`POST /persons/merge`: every id's person into the first id's person, all or
        nothing. 400 for bad input, 404 for an id never seen, 409 when an identified person
        would be merged without `force`."""
        if not isinstance(force, bool):
            raise field_error("force", "must be true or false")
        if not isinstance(ids, list) or not 2 <= len(ids) <= MAX_MERGE_IDS:
            raise field_error("distinctIds", f"must be an array of 2 to {MAX_MERGE_IDS} "
                              "distinct ids", length=len(ids) if isinstance(ids, list) else None)
        for i, x in enumerate(ids):
            if not isinstance(x, str) or not x or len(x) > MAX_ID_LENGTH:
                raise field_error(f"distinctIds[{i}]", "must be a non-empty string of at most "
                                  f"{MAX_ID_LENGTH} characters")
            if illegal_id(x):
                raise field_error(f"distinctIds[{i}]",
                                  f"'{x}' is a placeholder id and cannot be merged")
            try:
                x.encode("utf-8")
            except UnicodeEncodeError:
                raise field_error(f"distinctIds[{i}]", "must be valid Unicode text (it holds "
                                  "an unpaired surrogate escape)") from None
        seen: set[str] = set()
        for i, x in enumerate(ids):
            if x in seen:
                raise field_error(f"distinctIds[{i}]", f"'{x}' is listed twice (an id cannot "
                                  "be merged into itself)")
            seen.add(x)
        with self._lock:
            return self._merge(ids, force)

    def _merge(self, ids: list[str], force: bool) -> dict[str, Any]:
        codes = self.store.dicts.users.lookup_many(ids)
        unknown = [i for i, c in enumerate(codes.tolist()) if c < 0]
        if unknown:  # an id only ever named by a link (an $anon_distinct_id) is known too
            linked = self.graph.merged_ids()
            unknown = [i for i in unknown if ids[i] not in linked]
        if unknown:
            raise NotFoundError(f"distinctIds[{unknown[0]}]: no event was ever sent with "
                                f"distinct id '{ids[unknown[0]]}'",
                                [{"field": f"distinctIds[{i}]", "message": "unknown distinct id"}
                                 for i in unknown])
        call = MERGE if force else ALIAS
        links = [Link(call, ids[0], x) for x in ids[1:]]
        for i, link in enumerate(links, start=1):
            person = self.graph.person_of(link.source)
            target = self.graph.person_of(link.target)
            if person != target and self.graph.identified(person) and not force:
                raise ConflictError(
                    f"distinctIds[{i}]: '{link.source}' belongs to an identified person "
                    f"({person}); merging two identified persons needs \"force\": true",
                    [{"field": f"distinctIds[{i}]", "person": person,
                      "code": "already_identified"}])
        outcomes = self._record(links)
        person = self.graph.person_of(ids[0])
        return {"personId": person, "distinctIds": self.graph.members(person),
                "merged": sum(len(o.moved) for o in outcomes if o.status == MERGED)}

    def link(self, links: list[Link]) -> list[Outcome]:
        """Apply links given directly (imports, benchmarks): durable, in order."""
        return self._record(links)

    def _fold(self, link: Link) -> Outcome:
        self._seen.add(link)
        outcome = self.graph.apply(link)
        self.links += 1
        if outcome.status == REFUSED:
            self.refused += 1
        return outcome

    def _record(self, links: list[Link]) -> list[Outcome]:
        with self._lock:
            return self._record_locked(links)

    def _record_locked(self, links: list[Link]) -> list[Outcome]:
        self.log.append(links)
        outcomes = [self._fold(x) for x in links]
        moved = [(x, o.person) for o in outcomes if o.status == MERGED for x in o.moved]
        for o, link in zip(outcomes, links, strict=True):
            if o.status == REFUSED:
                log.info("refused to merge '%s' into '%s': its person is identified "
                         "(send $merge_dangerously to force it)", link.source, link.target)
        if moved:
            # every id that now sits in a moved person gets its row (its person may be new)
            rows = [(x, self.graph.person_of(x)) for x, _ in moved]
            self.version += 1
            self._remap = None
            self.store.touch(*ALL_TIME)  # after the swap: a cached answer cannot outlive it
            for listener in self.on_change:
                listener(self.version, rows)
        return outcomes

    def erase_ids(self, ids: list[str]) -> None:
        """Forget the persons of `ids` (an erasure, `rta/core/erasure.py`): out of the graph,
        and the links log rewritten as the remaining persons' links, so no id of theirs
        stays on disk. Answers change: the mapping version moves."""
        with self._lock:
            gone = set(ids)
            self.graph.forget(ids)
            self.log.rewrite(self.graph.replay_links())
            self._seen = {x for x in self._seen if x.target not in gone and x.source not in gone}
            self.version += 1
            self._remap = None
            self.store.touch(*ALL_TIME)

    # -- persons out ------------------------------------------------------------------------

    def person_of(self, distinct_id: str) -> str:
        return self.graph.person_of(distinct_id)

    def describe(self, person_or_id: str) -> dict[str, Any]:
        """`GET /persons/{id}`: the person an id (or person id) belongs to; 404 if unknown."""
        with self._lock:
            person = self.graph.person_of(person_or_id)
            members = self.graph.members(person)
            identified = self.graph.identified(person)
        known = self.store.dicts.users.lookup_many(members)
        if not (known >= 0).any() and person_or_id not in self.graph.merged_ids():
            raise NotFoundError(f"no person with id '{person_or_id}'",
                                [{"field": "id", "message": "unknown person or distinct id"}])
        return {"personId": person, "distinctIds": members, "identified": identified}

    def remap(self) -> Remap | None:
        """Person code per user code for the current mapping (None: no merged person)."""
        if not len(self.graph):
            return None
        users = self.store.dicts.users
        with self._remap_lock:
            current = self._remap
            n = len(users)
            if current is not None and current.version == self.version:
                if len(current.codes) >= n:
                    return current
                grown = np.concatenate((current.codes, np.arange(len(current.codes), n,
                                                                 dtype=np.int32)))
                self._remap = Remap(current.version, grown)
                return self._remap
            with self._lock:
                version = self.version
                merged = self.graph.merged_ids()
            ids = list(merged)
            codes = np.arange(n, dtype=np.int32)
            own = users.lookup_many(ids)
            roots = users.lookup_many([merged[x] for x in ids])
            keep = own >= 0
            own, roots = own[keep], roots[keep]
            # a person whose root never sent an event: its smallest code stands for it
            missing = roots < 0
            if missing.any():
                persons = np.array([merged[x] for x in ids], dtype=object)[keep][missing]
                order = np.lexsort((own[missing], persons.astype(str)))
                first: dict[str, int] = {}
                for p, c in zip(persons[order].tolist(), own[missing][order].tolist(),
                                strict=True):
                    first.setdefault(p, c)
                roots[missing] = [first[p] for p in persons.tolist()]
            codes[own] = roots
            self._remap = Remap(version, codes)
            return self._remap

    def wrap(self, snap: Snapshot) -> Snapshot:
        """`snap` with person-aware blocks: users remapped to persons (not when nothing is
        merged, or when the request asked for raw distinct ids) and person properties as
        `person.<key>` columns (once any person has a property). Unchanged when neither
        applies."""
        raw = identity_mode.get() == RAW
        remap = None if raw else self.remap()
        values = self._person_values(snap)
        if remap is None and values is None:
            return snap
        from rta.core.embedded.person_blocks import person_snapshot
        version = (raw, None if remap is None else remap.version)
        mapping = (*version, None if values is None else values.version)
        return person_snapshot(snap, None if remap is None else remap.codes, version,
                               self._wrapped, values, hash(mapping) & ((1 << 62) - 1))

    def _person_values(self, snap: Snapshot) -> Any:
        """The person property columns for the current profile version (None: none)."""
        profiles = self.profiles
        if profiles is None or profiles.empty():
            return None
        current = self._values
        version = profiles.version
        if current is not None and current.version == version:
            return current
        from rta.core.embedded.person_columns import PersonValues
        values = PersonValues(profiles, snap.dicts)
        self._values = values
        return values

    def count_users(self) -> int:
        """Distinct users stored (`/stats` totalUsers, the live totals): persons, or raw
        distinct ids when the request asked for them (`?identity=raw`). A person is one
        code of `remap()` that stands for itself (its root, or its smallest member's code
        when the root never sent an event)."""
        users = len(self.store.dicts.users)
        if identity_mode.get() == RAW:
            return users
        remap = self.remap()
        if remap is None:
            return users
        codes = remap.codes[:users]
        return int(np.count_nonzero(codes == np.arange(len(codes), dtype=codes.dtype)))

    def count_persons_of(self, distinct_ids: Iterable[str]) -> int:
        """How many persons `distinct_ids` (as sent) belong to (raw: how many ids)."""
        if identity_mode.get() == RAW or not len(self.graph):
            return sum(1 for _ in distinct_ids)
        with self._lock:
            person_of = self.graph.person_of
            return len({person_of(x) for x in distinct_ids})

    def stats(self) -> dict[str, Any]:
        return {"links": self.links, "refused": self.refused, "mergedIds": len(self.graph),
                "version": self.version}


def open_persons(store: ColumnStore, data_dir: str | None, fsync: bool = True) -> Persons:
    persons = Persons(store, data_dir, fsync)
    persons.open()
    return persons

