"""Person property updates: where they come from, what a malformed one is, how they fold.

An update names one distinct id and carries `$set` (key -> value), `$set_once` (key ->
value) and `$unset` (keys). They come from:

- any event's properties: PostHog `$set`, `$set_once`, `$unset` (also in `$identify`);
  stored events keep them flattened (`$set.plan`), which is how they are read back here;
- an `$identify` event's plain properties (not `$`-prefixed, not `anonymousId` or
  `context.*`) unless a PostHog SDK sent it (`$lib`; PostHog's event properties are not
  the person's): Segment `identify` traits, which `sdk_mapping` stores that way;
- `POST /persons/{id}/properties` (`parse_body`).

Values keep rta's kinds: string, integer, float, boolean (nested objects flatten to dotted
keys and arrays become their JSON text, as event properties do).

The fold (PostHog's rule): updates apply in the order they arrived; `$set` overwrites,
`$set_once` writes a key only while it is absent, `$unset` removes. A person's properties
are the fold of every update sent for any of its distinct ids, so a merge combines them as
if they had been sent for one id all along.

Thread rule: pure; any thread.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rta.core.errors import ValidationError, field_error
from rta.core.events import MAX_KEY_LENGTH, EventBatch

SET = "$set"
SET_ONCE = "$set_once"
UNSET = "$unset"
PREFIX = "person."  # filters and breakdowns name person properties `person.<key>`
MAX_VALUE_LENGTH = 65_536  # characters of one string value sent to the API
MAX_UPDATE_KEYS = 1_000  # keys one API update may name
_KINDS = ("s", "i", "f", "b")


@dataclass(frozen=True)
class Update:
    """One update of `distinct_id`'s properties (`event`: the event that carried it)."""

    distinct_id: str
    set: dict[str, Any] = field(default_factory=dict)
    set_once: dict[str, Any] = field(default_factory=dict)
    unset: tuple[str, ...] = ()
    event: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"d": self.distinct_id}
        if self.set:
            out["s"] = self.set
        if self.set_once:
            out["o"] = self.set_once
        if self.unset:
            out["u"] = list(self.unset)
        if self.event is not None:
            out["e"] = self.event
        return out

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Update:
        return cls(str(raw["d"]), dict(raw.get("s", {})), dict(raw.get("o", {})),
                   tuple(raw.get("u", ())), raw.get("e"))


def apply(props: dict[str, Any], update: Update) -> None:
    """Fold one update into `props` (in place): set, then set_once, then unset."""
    props.update(update.set)
    for key, value in update.set_once.items():
        props.setdefault(key, value)
    for key in update.unset:
        props.pop(key, None)


def fold(updates: Iterable[Update]) -> dict[str, Any]:
    props: dict[str, Any] = {}
    for update in updates:
        apply(props, update)
    return props


def value_kind(value: Any) -> str:
    """rta's kind of a stored property value."""
    if isinstance(value, bool):
        return "b"
    if isinstance(value, int):
        return "i"
    if isinstance(value, float):
        return "f"
    return "s"


# -- from events ---------------------------------------------------------------------------


def _unset_keys(text: Any) -> list[str] | None:
    """`$unset` as stored (the JSON text of a list of names); None when malformed."""
    if not isinstance(text, str):
        return None
    try:
        keys = json.loads(text)
    except ValueError:
        return None
    if not isinstance(keys, list) or not all(isinstance(k, str) and k for k in keys):
        return None
    return keys


def check_batch(batch: EventBatch) -> None:
    """Refuse a batch with a malformed `$set`, `$set_once` (not an object) or `$unset` (not
    a list of names): `invalid_batch`, each bad event by index (its position in the batch)
    and field. Costs one pass over the batch's column names unless one is there."""
    bad: dict[int, str] = {}
    props = batch.props
    for name in props:  # (names only: a columnar batch builds no list it is not asked for)
        key = name[2:]
        if key not in (SET, SET_ONCE, UNSET) and not key.startswith(UNSET + "."):
            continue
        rows, values = props[name]
        if key in (SET, SET_ONCE):
            for r in rows:
                bad.setdefault(r, f"properties.{key}")
        elif key == UNSET:
            for r, v in zip(rows, values, strict=True):
                if name[0] != "s" or _unset_keys(v) is None:
                    bad.setdefault(r, "properties.$unset")
        elif key.startswith(UNSET + "."):
            for r in rows:
                bad.setdefault(r, "properties.$unset")
    if not bad:
        return
    details = [{"index": r, "field": f, "code": "invalid",
                "message": ("must be an array of property names" if f.endswith(UNSET)
                            else "must be an object of person properties")}
               for r, f in sorted(bad.items())]
    first = details[0]
    raise ValidationError(
        f"{len(bad)} of {len(batch)} events are invalid; nothing was stored: "
        f"[{first['index']}].{first['field']} {first['message']}", details,
        code="invalid_batch")


IDENTIFY = "$identify"
# keys of an `$identify` event that are not traits: the ids Segment's mapping adds, and its
# context (`sdk_mapping.segment_event`)
_NOT_TRAITS = ("anonymousId", "userId", "previousId")
_SET_P, _ONCE_P = SET + ".", SET_ONCE + "."
POSTHOG_LIB = "$lib"  # every PostHog SDK names itself: its events carry no traits


def _slot(key: str, identify: bool) -> tuple[int, str] | None:
    """Where a stored property goes in an update: 0 set, 1 set_once, 2 unset, 3 trait (a
    plain property of an `$identify` event not sent by a PostHog SDK, i.e. without `$lib`:
    Segment's identify traits, rta's own), or None."""
    if key.startswith(_SET_P):
        return 0, key[len(_SET_P):]
    if key.startswith(_ONCE_P):
        return 1, key[len(_ONCE_P):]
    if key == UNSET:
        return 2, ""
    if identify and not key.startswith(("$", "context.")) and key not in _NOT_TRAITS:
        return 3, key
    return None


def _has_updates(names: Iterable[str], identify: bool) -> bool:
    return any(_slot(name[2:], identify) is not None for name in names)


Entry = tuple[dict[str, Any], dict[str, Any], list[str], dict[str, Any]]


def _put(entry: Entry, slot: int, sub: str, value: Any) -> None:
    if slot == 2:
        entry[2].extend(_unset_keys(value) or [])
    elif slot == 1:
        entry[1][sub] = value
    elif slot == 0:
        entry[0][sub] = value
    else:
        entry[3][sub] = value


def _updates(per_row: dict[int, Entry], users: dict[int, str | None],
             ids: dict[int, str]) -> list[Update]:
    out = []
    for r in sorted(per_row):
        user = users[r]
        s, o, u, traits = per_row[r]
        s = {**traits, **s}  # (an explicit $set wins over a top-level copy)
        if user is None or not (s or o or u):
            continue
        out.append(Update(user, s, o, tuple(u), ids[r]))
    return out


def batch_updates(batch: EventBatch) -> list[Update]:
    """The person property updates of a validated batch, in arrival order: `$set`,
    `$set_once`, `$unset` in any event, and an `$identify` event's plain properties."""
    identify = IDENTIFY in batch.type_names()
    if not _has_updates(batch.props, identify):
        return []
    identify_rows = {i for i, t in enumerate(batch.types) if t == IDENTIFY} if identify \
        else set()
    lib = batch.props.get("s:" + POSTHOG_LIB)
    if lib is not None and identify_rows:  # (PostHog's properties are the event's own)
        identify_rows.difference_update(lib[0])
    per_row: dict[int, Entry] = {}
    for name, (rows, values) in batch.props.items():
        found = _slot(name[2:], identify)
        if found is None:
            continue
        slot, sub = found
        for r, v in zip(rows, values, strict=True):
            if slot == 3 and r not in identify_rows:
                continue
            _put(per_row.setdefault(r, ({}, {}, [], {})), slot, sub, v)
    return _updates(per_row, {r: batch.users[r] for r in per_row},
                    {r: batch.ids[r] for r in per_row})


def block_updates(block: Any, dicts: Any) -> list[Update]:
    """The updates of a stored block (the head replayed from the WAL at start), row order."""
    if not block.n:
        return []
    code = dicts.types.lookup(IDENTIFY)
    identify_rows = block.type == code if code >= 0 else None
    if identify_rows is not None:
        lib = block.column("s", POSTHOG_LIB)
        if lib is not None:
            identify_rows &= lib < 0
    identify = identify_rows is not None and bool(identify_rows.any())
    names = [n for n in block.props if _slot(n[2:], identify) is not None]
    per_row: dict[int, Entry] = {}
    for name in names:
        kind, key = name[0], name[2:]
        slot, sub = _slot(key, identify) or (0, "")
        col = block.column(kind, key)
        if col is None:
            continue
        present = col >= 0 if kind in ("s", "b") else (
            ~np.isnan(col) if kind == "f" else col != np.iinfo(np.int64).min)
        if slot == 3:
            assert identify_rows is not None
            present &= identify_rows
        rows = np.flatnonzero(present)
        if not len(rows):
            continue
        raw = col[rows]
        values: list[Any]
        if kind == "s":
            values = [str(x) for x in dicts.values.decode(raw)]
        elif kind == "b":
            values = [bool(x) for x in raw.tolist()]
        else:
            values = raw.tolist()
        for r, v in zip(rows.tolist(), values, strict=True):
            _put(per_row.setdefault(r, ({}, {}, [], {})), slot, sub, v)
    if not per_row:
        return []
    order = sorted(per_row)
    users = dicts.users.decode(block.user[np.asarray(order)])
    ids = block.ids(np.asarray(order))
    return _updates(per_row, {r: None if u is None else str(u)
                              for r, u in zip(order, users, strict=True)},
                    dict(zip(order, ids, strict=True)))


# -- from the API ----------------------------------------------------------------------------


def _check_text(text: str, path: str) -> None:
    """JSON lets an unpaired surrogate escape through; it is not text the logs can hold."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise field_error(path, "must be valid Unicode text (it holds an unpaired "
                          "surrogate escape)") from None


def _check_key(key: Any, path: str) -> None:
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
        raise field_error(path, f"property names must be 1 to {MAX_KEY_LENGTH} characters")
    _check_text(key, path)


def _values(spec: Any, path: str) -> dict[str, Any]:
    if spec is None:
        return {}
    if not isinstance(spec, dict):
        raise field_error(path, "must be an object of person properties",
                          got=type(spec).__name__)
    if len(spec) > MAX_UPDATE_KEYS:
        raise field_error(path, f"names at most {MAX_UPDATE_KEYS} properties")
    out: dict[str, Any] = {}
    for key, value in spec.items():
        _check_key(key, f"{path}.{key}")
        if isinstance(value, float) and (value != value or value in (float("inf"),
                                                                     float("-inf"))):
            raise field_error(f"{path}.{key}", "must be a finite number")
        if isinstance(value, int) and not isinstance(value, bool) \
                and not -(2**63) <= value < 2**63:
            value = float(value)
        if not isinstance(value, str | int | float | bool):
            raise field_error(f"{path}.{key}", "must be a string, number or boolean "
                              "(remove a property with $unset)")
        if isinstance(value, str) and len(value) > MAX_VALUE_LENGTH:
            raise field_error(f"{path}.{key}", f"is longer than {MAX_VALUE_LENGTH} characters")
        if isinstance(value, str):
            _check_text(value, f"{path}.{key}")
        out[key] = value
    return out


def parse_body(body: Any, distinct_id: str) -> Update:
    """`POST /persons/{id}/properties`: {"$set": {...}, "$set_once": {...}, "$unset": [...]},
    all or nothing (400 naming the field)."""
    if not isinstance(body, dict):
        raise field_error("body", "must be a JSON object")
    unknown = sorted(set(body) - {SET, SET_ONCE, UNSET})
    if unknown:
        raise field_error(unknown[0], "unknown field (expected $set, $set_once, $unset)")
    s = _values(body.get(SET), SET)
    o = _values(body.get(SET_ONCE), SET_ONCE)
    raw_unset = body.get(UNSET)
    unset: list[str] = []
    if raw_unset is not None:
        if not isinstance(raw_unset, list) or len(raw_unset) > MAX_UPDATE_KEYS:
            raise field_error(UNSET, f"must be an array of at most {MAX_UPDATE_KEYS} "
                              "property names")
        for i, key in enumerate(raw_unset):
            _check_key(key, f"{UNSET}[{i}]")
            unset.append(key)
    if not (s or o or unset):
        raise field_error("body", "names no property: send $set, $set_once or $unset")
    return Update(distinct_id, s, o, tuple(unset))


def person_key(prop: str) -> str | None:
    """'person.plan' -> 'plan'; None for an event property."""
    return prop[len(PREFIX):] if prop.startswith(PREFIX) and len(prop) > len(PREFIX) else None
