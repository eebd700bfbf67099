"""Groups as events carry them: which group each event belongs to, and group identify calls.

Stored events hold nested objects as dotted keys (`events._flatten`), so the PostHog wire
shapes read as:

| sent                                           | stored property              |
|------------------------------------------------|------------------------------|
| `properties.$groups = {"company": "acme"}`     | `$groups.company` = "acme"   |
| `$groupidentify` `$group_type`, `$group_key`   | `$group_type`, `$group_key`  |
| `$groupidentify` `$group_set = {"plan": "x"}`  | `$group_set.plan` = "x"      |
| Segment `group` (`sdk_mapping`: type `$group`) | `$group_type`, `groupId`, `traits.*` |

A group key is a non-empty string or an integer (an integer and its decimal text are one
group); a group type is a name without '.' (a dotted name could not be told from a nested
object once flattened). Anything else is refused before the batch is stored (`check`).

Thread rule: pure; any thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rta.core.events import MAX_ID_LENGTH, EventBatch

GROUPS = "$groups"
GROUP_TYPE = "$group_type"
GROUP_KEY = "$group_key"
GROUP_SET = "$group_set"
IDENTIFY_TYPES = ("$groupidentify", "$group")  # PostHog's call, Segment's (sdk_mapping)
MAX_TYPE_LENGTH = 100
KEY_KINDS = ("s", "i")


@dataclass
class GroupSet:
    """One identify call: group `key` of `group_type` gets `props` ({name: (kind, value)})."""

    group_type: str
    key: str
    props: dict[str, tuple[str, Any]]
    ts: int
    event_id: str

    def to_json(self) -> list[Any]:
        return [self.group_type, self.key, {k: list(v) for k, v in self.props.items()},
                self.ts, self.event_id]

    @classmethod
    def from_json(cls, raw: Any) -> GroupSet:
        gtype, key, props, ts, event_id = raw
        return cls(str(gtype), str(key), {str(k): (str(v[0]), v[1]) for k, v in props.items()},
                   int(ts), str(event_id))


@dataclass
class BatchGroups:
    """What one batch says about groups: types used (first row naming each), identify calls,
    and the problems found (`{index, field, message}`)."""

    types: dict[str, tuple[int, str]] = field(default_factory=dict)  # type -> (row, field)
    sets: list[GroupSet] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)


def type_problem(name: str) -> str | None:
    """Why `name` cannot be a group type (None: it can)."""
    if not name or len(name) > MAX_TYPE_LENGTH:
        return f"a group type must be 1 to {MAX_TYPE_LENGTH} characters"
    if "." in name:
        return "a group type cannot contain '.'"
    return None


def key_text(kind: str, value: Any) -> str | None:
    """A stored group key as text (None: not a usable key)."""
    if kind == "s" and isinstance(value, str) and value and len(value) <= MAX_ID_LENGTH:
        return value
    if kind == "i" and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _key_problem(kind: str, value: Any) -> str:
    if kind == "s" and isinstance(value, str) and len(value) > MAX_ID_LENGTH:
        return f"a group key must be at most {MAX_ID_LENGTH} characters"
    if kind == "s":
        return "a group key must be a non-empty string"
    return "a group key must be a non-empty string or an integer (not a nested object)"


def read_batch(batch: EventBatch) -> BatchGroups:
    """Types, identify calls and problems of a validated batch, in row order."""
    out = BatchGroups()
    identify = [i for i, t in enumerate(batch.types) if t in IDENTIFY_TYPES]
    by_row: dict[int, dict[str, tuple[str, Any]]] = {i: {} for i in identify}
    errors: dict[int, dict[str, Any]] = {}

    def bad(row: int, fieldname: str, message: str) -> None:
        errors.setdefault(row, {"index": row, "field": fieldname, "message": message})

    for name, (rows, values) in batch.props.items():
        kind, _, key = name.partition(":")
        if key in (GROUPS, GROUP_SET):
            what = "an object of group type -> group key" if key == GROUPS else "an object"
            for r in rows:
                bad(r, f"properties.{key}", f"must be {what}")
        elif key.startswith(GROUPS + "."):
            gtype = key[len(GROUPS) + 1:]
            problem = type_problem(gtype)
            for r, v in zip(rows, values, strict=True):
                if problem is None and key_text(kind, v) is None:
                    bad(r, f"properties.{key}", _key_problem(kind, v))
                elif problem is not None:
                    bad(r, f"properties.{key}", problem + " (or the key is a nested object)")
                elif gtype not in out.types or r < out.types[gtype][0]:
                    out.types[gtype] = (r, f"properties.{key}")
        if identify and (key in (GROUP_TYPE, GROUP_KEY, "groupId")
                         or key.startswith(GROUP_SET + ".") or key.startswith("traits.")):
            for r, v in zip(rows, values, strict=True):
                found = by_row.get(r)
                if found is not None:
                    found[name] = (kind, v)
    for r in identify:
        _identify(batch, r, by_row[r], out, bad)
    out.errors = [errors[r] for r in sorted(errors)]
    return out


def _identify(batch: EventBatch, row: int, props: dict[str, tuple[str, Any]],
              out: BatchGroups, bad: Any) -> None:
    """One `$groupidentify` / `$group` event into a GroupSet (or a problem)."""
    gtype = props.get("s:" + GROUP_TYPE)
    if gtype is None:
        bad(row, f"properties.{GROUP_TYPE}", "is required (a group type such as 'company')")
        return
    problem = type_problem(gtype[1])
    if problem is not None:
        bad(row, f"properties.{GROUP_TYPE}", problem)
        return
    key: str | None = None
    names = (GROUP_KEY, "groupId") if batch.types[row] == "$group" else (GROUP_KEY,)
    for name in names:
        for kind in KEY_KINDS:
            found = props.get(f"{kind}:{name}")
            if found is not None:
                key = key_text(kind, found[1])
                if key is None:
                    bad(row, f"properties.{name}", _key_problem(kind, found[1]))
                    return
        if key is not None:
            break
    if key is None:
        bad(row, f"properties.{GROUP_KEY}", "is required (the group's key)")
        return
    prefixes = (GROUP_SET + ".", "traits.") if batch.types[row] == "$group" else (
        GROUP_SET + ".",)
    values: dict[str, tuple[str, Any]] = {}
    for name, (kind, v) in props.items():
        prop = name[2:]
        for prefix in prefixes:
            if prop.startswith(prefix):
                values[prop[len(prefix):]] = (kind, v)
    out.sets.append(GroupSet(gtype[1], key, values, batch.timestamps[row], batch.ids[row]))
    if gtype[1] not in out.types or row < out.types[gtype[1]][0]:
        out.types[gtype[1]] = (row, f"properties.{GROUP_TYPE}")


def parse_unit(value: Any, fieldname: str, allowed: tuple[str, ...]) -> str:
    """`users`, `sessions` (where `allowed`) or `group:<type>`; 400 naming `fieldname`."""
    from rta.core.errors import field_error
    if isinstance(value, str) and value.startswith("group:"):
        problem = type_problem(value[len("group:"):])
        if problem is None:
            return value
        raise field_error(fieldname, f"{problem}: '{value}'", value=value)
    if value in allowed:
        return str(value)
    names = ", ".join(allowed)
    raise field_error(fieldname, f"must be {names} or group:<type>", value=value,
                      allowed=[*allowed, "group:<type>"])


def unit_group(unit: str | None) -> str | None:
    """The group type a unit counts (None: users or sessions)."""
    if unit is not None and unit.startswith("group:"):
        return unit[len("group:"):]
    return None
