"""Identity links carried by events: which distinct id joins which, and how.

SDKs do not call a "merge" endpoint; they send events whose type and properties say that
two distinct ids are one person (`sdk_mapping.py` maps them into rta events unchanged):

| event type           | target (merged into)  | source (merged)                | call      |
|----------------------|-----------------------|--------------------------------|-----------|
| `$identify`          | `userId`              | `$anon_distinct_id` (PostHog), | identify  |
|                      |                       | else `anonymousId` (Segment)   |           |
| `$create_alias`      | `userId`              | `alias` (PostHog)              | alias     |
| `$merge_dangerously` | `userId`              | `alias` (PostHog)              | merge     |
| `$alias`             | `userId`              | `previousId` (Segment)         | alias     |

rta's own clients send the same events to `/events` (e.g. `{"type": "$identify", "userId":
"u1", "properties": {"$anon_distinct_id": "anon-7"}}`). Pairs that name one id twice, or an
id PostHog refuses as a placeholder (`anonymous`, `null`, `0`, ...), carry no link.

Thread rule: pure; any thread.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from rta.core.errors import field_error
from rta.core.events import EventBatch

# How queries count users: as persons (the default) or as distinct ids as sent ("raw").
# The server sets it per request (`?identity=raw`); query contexts read it when built.
PERSONS = "persons"
RAW = "raw"
IDENTITY_MODES = (PERSONS, RAW)
identity_mode: contextvars.ContextVar[str] = contextvars.ContextVar("rta_identity",
                                                                     default=PERSONS)

IDENTIFY = "identify"
ALIAS = "alias"
MERGE = "merge"  # refuses nothing: $merge_dangerously, or the API's `force: true`
# event type -> (call, the properties naming the source id, first present wins)
LINK_TYPES: dict[str, tuple[str, tuple[str, ...]]] = {
    "$identify": (IDENTIFY, ("$anon_distinct_id", "anonymousId")),
    "$create_alias": (ALIAS, ("alias",)),
    "$merge_dangerously": (MERGE, ("alias",)),
    "$alias": (ALIAS, ("previousId",)),
}
LINK_TYPE_NAMES = frozenset(LINK_TYPES)

# Placeholder ids a buggy client sends for everyone; PostHog refuses to merge them, so does
# rta (one "null" id would otherwise join every visitor into one person).
_ILLEGAL_ANY_CASE = ("anonymous", "guest", "distinctid", "distinct_id", "id",
                     "not_authenticated", "email", "undefined", "true", "false")
_ILLEGAL_EXACT = ("[object Object]", "NaN", "None", "none", "null", "0", "undefined")


def _quoted(ids: Iterable[str]) -> set[str]:
    return {form for i in ids for form in (i, f"'{i}'", f'"{i}"')}


ILLEGAL_ANY_CASE = frozenset(_quoted(_ILLEGAL_ANY_CASE))
ILLEGAL_EXACT = frozenset(_quoted(_ILLEGAL_EXACT))


def illegal_id(distinct_id: str) -> bool:
    """Whether `distinct_id` is a placeholder no link may use."""
    return (not distinct_id.strip() or distinct_id.lower() in ILLEGAL_ANY_CASE
            or distinct_id in ILLEGAL_EXACT)


@dataclass(frozen=True)
class Link:
    """`source`'s person is merged into `target`'s person (`call` decides whether an
    identified source may be merged: only `merge` may)."""

    call: str
    target: str
    source: str

    def to_json(self) -> list[str]:
        return [self.call, self.target, self.source]

    @classmethod
    def from_json(cls, raw: Any) -> Link:
        call, target, source = raw
        return cls(str(call), str(target), str(source))


def id_text(value: Any) -> str | None:
    """An id property as text (SDKs send strings, sometimes numbers); None when unusable."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        return value or None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value == value:
        return str(int(value)) if value.is_integer() else repr(value)
    return None


def make_link(event_type: str, target: str | None, props: dict[str, Any]) -> Link | None:
    """The link one event carries (None: none, or an unusable one)."""
    spec = LINK_TYPES.get(event_type)
    if spec is None or target is None:
        return None
    call, keys = spec
    source = None
    for key in keys:
        source = id_text(props.get(key))
        if source is not None:
            break
    if source is None or source == target or illegal_id(source) or illegal_id(target):
        return None
    return Link(call, target, source)


def batch_links(batch: EventBatch) -> list[Link]:
    """The links of a validated batch, in arrival order (a set check first: most batches
    hold no identity event and cost one C-level pass)."""
    if LINK_TYPE_NAMES.isdisjoint(batch.type_names()):
        return []
    rows = [i for i, t in enumerate(batch.types) if t in LINK_TYPES]
    wanted = {key for spec in LINK_TYPES.values() for key in spec[1]}
    values: dict[int, dict[str, Any]] = {i: {} for i in rows}
    for name, (idx, vals) in batch.props.items():
        kind, _, key = name.partition(":")
        if key not in wanted or kind not in ("s", "i", "f"):
            continue
        for r, v in zip(idx, vals, strict=True):
            if r in values:
                values[r][key] = v
    out = []
    for i in rows:
        link = make_link(batch.types[i], batch.users[i], values[i])
        if link is not None:
            out.append(link)
    return out


def block_links(block: Any, dicts: Any) -> list[Link]:
    """The links of a stored block (the head replayed from the WAL at start), in row order."""
    codes = {dicts.types.lookup(t): t for t in LINK_TYPES}
    codes = {c: t for c, t in codes.items() if c >= 0}
    if not codes or not block.n:
        return []
    rows = np.flatnonzero(np.isin(block.type, np.array(list(codes), dtype=np.int32)))
    if not len(rows):
        return []
    users = dicts.users.decode(block.user[rows])
    wanted = {key for spec in LINK_TYPES.values() for key in spec[1]}
    values: list[dict[str, Any]] = [{} for _ in rows]
    for key in wanted:
        col = block.column("s", key)
        if col is not None:
            picked = col[rows]
            text = dicts.values.decode(picked)
            for j, code in enumerate(picked.tolist()):
                if code >= 0:
                    values[j][key] = text[j]
        for kind in ("i", "f"):
            col = block.column(kind, key)
            if col is None:
                continue
            for j, v in enumerate(col[rows].tolist()):
                if key not in values[j] and v == v and v != np.iinfo(np.int64).min:
                    values[j][key] = v
    types = block.type[rows].tolist()
    out = []
    for j, t in enumerate(types):
        user = users[j]
        link = make_link(codes[t], None if user is None else str(user), values[j])
        if link is not None:
            out.append(link)
    return out


def parse_identity(value: Any, field: str = "identity") -> str:
    """'persons' (the default) or 'raw' (count distinct ids as sent)."""
    if value is None or value == "":
        return PERSONS
    if value not in IDENTITY_MODES:
        raise field_error(field, "must be 'persons' or 'raw'", allowed=list(IDENTITY_MODES))
    return str(value)
