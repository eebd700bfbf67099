"""Person properties as virtual event columns: `person.<key>` on every block.

A filter or breakdown on `person.plan` reads `block.column("s", "person.plan")` like any
event property; `PersonBlock` answers it from here: the current value of the event's
person (the person its distinct id belongs to now), gathered by the block's raw user codes
from one array per key and kind over user codes. So every kernel (filters, breakdowns,
segments, funnels, A/B tests, exports) handles person properties without knowing them.

String values are codes of the store's values dictionary: `ProfileStore` interns every
person string value there when the update is applied (on the event loop, as ingest
does), so codes are stable and no kernel needs another dictionary.

`PersonValues` is built per profile version (properties or identity mapping changed); a
key's arrays are built on first use and grown when distinct ids appear later (an id linked
before it sent its first event belongs to a person that may have properties).

Thread rule: a lock guards the lazily built arrays; any thread.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from rta.core.embedded.store.block import INT64_MIN
from rta.core.person_props import value_kind

if TYPE_CHECKING:
    from rta.core.embedded.store.dictionary import Dictionaries
    from rta.core.profiles import ProfileStore

_NULL: dict[str, tuple[Any, Any]] = {"s": (np.int32, -1), "i": (np.int64, INT64_MIN),
                                     "f": (np.float64, np.nan), "b": (np.int8, -1)}


class PersonValues:
    """Per-key arrays over user codes for one profile version."""

    def __init__(self, profiles: ProfileStore, dicts: Dictionaries) -> None:
        self.version = profiles.version
        self.person_of = profiles.persons.graph.person_of
        self.members = profiles.persons.graph.members
        self.dicts = dicts
        self.props = profiles.all_properties()
        kinds: dict[str, set[str]] = {}
        for props in self.props.values():
            for k, v in props.items():
                kinds.setdefault(k, set()).add(value_kind(v))
        self.keys = set(kinds)
        self.key_kinds = {k: sorted(v) for k, v in kinds.items()}
        self._columns: dict[str, tuple[int, dict[str, np.ndarray]]] = {}
        self._lock = threading.Lock()

    def _put(self, cols: dict[str, np.ndarray], n: int, code: int, value: Any) -> None:
        kind = value_kind(value)
        col = cols.get(kind)
        if col is None:
            dtype, null = _NULL[kind]
            col = cols[kind] = np.full(n, null, dtype=dtype)
        col[code] = self.dicts.values.lookup(value) if kind == "s" else value

    def key(self, key: str) -> dict[str, np.ndarray] | None:
        """kind -> value per user code (null where the person lacks it); None when no
        person has `key`."""
        if key not in self.keys:
            return None
        users = self.dicts.users
        n = len(users)
        with self._lock:
            found = self._columns.get(key)
            if found is not None and found[0] == n:
                return found[1]
            if found is None:
                cols: dict[str, np.ndarray] = {}
                pairs = [(x, props[key]) for person, props in self.props.items()
                         if key in props for x in self.members(person)]
                codes: list[int] = (users.lookup_many([x for x, _ in pairs]).tolist()
                                    if pairs else [])
                for (_, value), code in zip(pairs, codes, strict=True):
                    if 0 <= code < n:
                        self._put(cols, n, code, value)
            else:  # ids seen since: grow, and look their persons up
                old, cols = found
                for kind, col in list(cols.items()):
                    dtype, null = _NULL[kind]
                    cols[kind] = np.concatenate([col, np.full(n - old, null, dtype=dtype)])
                new_ids = users.decode(np.arange(old, n, dtype=np.int32))
                for code, x in zip(range(old, n), new_ids, strict=True):
                    props = None if x is None else self.props.get(self.person_of(str(x)))
                    if props is not None and key in props:
                        self._put(cols, n, code, props[key])
            self._columns[key] = (n, cols)
            return cols

    def column(self, kind: str, key: str, raw: np.ndarray) -> np.ndarray | None:
        """`person.<key>`'s `kind` values for events of raw user codes `raw`."""
        cols = self.key(key)
        if cols is None or kind not in cols:
            return None
        col = cols[kind]
        dtype, null = _NULL[kind]
        ok = (raw >= 0) & (raw < len(col))
        if ok.all():
            return col[raw]
        out = np.full(len(raw), null, dtype=dtype)
        out[ok] = col[raw[ok]]
        return out

    def kinds(self, key: str) -> list[str]:
        cols = self.key(key)
        return [] if cols is None else list(cols)
