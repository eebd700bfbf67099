"""User segments, and the event gathering every behavioural query shares.

A segment is a set of users. Its definition is a tree of conditions combined with AND/OR:

- **user-property conditions** (`{"property": "plan", "operator": "eq", "value": "premium"}`,
  the default) test each user's *latest* value of the property: the value on the user's most
  recent event (by timestamp, ties broken by arrival) that carries the property at all, within
  the segment's time range. Operators and missing-value rules are those of the filter language
  (`neq`, `not_in`, `not_contains`, `not_exists` match users who never set the property).
  `"eventType"` restricts which events supply the value.
- **event conditions** test what a user did: `{"eventType": "purchase", "where": [...],
  "count": {"operator": "gte", "value": 2}}` (default count `gte 1`), or a property condition
  with `"scope": "event"`, meaning "has at least one event on which the predicate holds".
- groups: `{"operator": "OR", "filters": [...]}` (also `{"and": [...]}` / `{"or": [...]}`).

The universe is every user with at least one event in the time range (all time by default).
Evaluation is columnar: each referenced property becomes one array of latest values indexed by
user code, event conditions become per-user counts (`bincount`), and the whole tree is then
evaluated by the ordinary filter language over a synthetic block whose rows are users.

Saved segments live in the metadata store (kind "segment") and are resolved by name, so any
query filter can say `"segment": "Premium Users"`.

Thread rule: any thread, over one snapshot the caller holds for the whole query (blocks are
immutable).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from rta.core.embedded import filter_eval
from rta.core.embedded.store.block import Block, null_column
from rta.core.embedded.store.snapshot import Snapshot
from rta.core.errors import NotFoundError, RtaError, ValidationError, field_error
from rta.core.events import BOOL, FLOAT, INT, INT64_MIN, STR
from rta.core.queries.behaviour_results import SegmentResult
from rta.core.queries.behaviour_specs import SegmentQuery, parse_segment_query
from rta.core.queries.filters import OPERATORS, EventFilter, Group, Predicate
from rta.core.queries.params import require_numeric
from rta.core.queries.segment_spec import (  # noqa: F401  (re-exported for the kernels)
    DEFAULT_SAMPLE,
    MAX_SAMPLE,
    EventCondition,
    Node,
    SegmentDef,
    parse_segment,
    pct,
    sample_size,
    time_range,
    walk,
    where_of,
)

if TYPE_CHECKING:
    from rta.core.engine import Engine

KIND = "segment"
_COND_PREFIX = "\x00cond"  # synthetic boolean columns for event conditions


# -- shared helpers for behavioural queries -----------------------------------------------


@dataclass
class Rows:
    """Events gathered for one query, in snapshot order (time-sorted within each block,
    blocks in arrival order), so a stable sort by (entity, ts) breaks timestamp ties by
    arrival."""

    ts: np.ndarray
    user: np.ndarray
    session: np.ndarray
    masks: list[np.ndarray]
    props: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.ts)


def type_codes(snap: Snapshot, flt: EventFilter) -> np.ndarray | None:
    if flt.types is None:
        return None
    return np.array([snap.dicts.types.lookup(t) for t in flt.types], dtype=np.int32)


def gather(snap: Snapshot, filters: list[EventFilter], start: int | None, end: int | None,
           *, member: np.ndarray | None = None, props: Iterable[str] = (),
           all_events: bool = False, base: EventFilter | None = None) -> Rows:
    """Rows in [start, end) matching any of `filters` (every row when `all_events`).

    `masks[i]` says which gathered rows match `filters[i]`; `base` is ANDed into every mask
    (global filters); `member` is a boolean lookup by user code (+1 trailing False for -1)
    restricting rows to a segment. `props` lists property keys whose values come along
    (per kind: 's' codes, 'i', 'f', 'b').
    """
    codes = [type_codes(snap, f) for f in filters]
    prune: np.ndarray | None = None
    if not all_events and codes and all(c is not None for c in codes):
        prune = np.unique(np.concatenate([c for c in codes if c is not None]))
        prune = prune[prune >= 0]
        if not len(prune):
            return _empty_rows(len(filters), props)
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray],
                      dict[str, dict[str, np.ndarray]]]] = []
    for block, sl in snap.ranges(start, end):
        if prune is not None:
            counts = block.type_counts
            known = prune[prune < len(counts)]
            if not len(known) or not counts[known].any():
                continue
        n = sl.stop - sl.start
        base_mask = filter_eval.mask(base, block, sl, snap, type_codes(snap, base)) \
            if base else None
        member_mask = member[block.user[sl]] if member is not None else None
        if member_mask is not None:
            base_mask = member_mask if base_mask is None else base_mask & member_mask
        masks = []
        for flt, c in zip(filters, codes, strict=True):
            mk = filter_eval.mask(flt, block, sl, snap, c)
            if mk is None:
                mk = np.ones(n, dtype=bool)
            if base_mask is not None:
                mk = mk & base_mask
            masks.append(mk)
        if all_events:  # global filters narrow the steps, not the events seen between them
            union = member_mask
        else:
            union = np.logical_or.reduce(masks) if masks else np.zeros(n, dtype=bool)
        if union is None:
            rows: np.ndarray | slice = slice(None)
        else:
            rows = np.flatnonzero(union)
            if not len(rows):
                continue
        pv: dict[str, dict[str, np.ndarray]] = {}
        for key in props:
            pv[key] = {}
            for kind in (STR, INT, FLOAT, BOOL):
                col = block.column(kind, key)
                if col is not None:
                    pv[key][kind] = col[sl][rows]
                else:
                    pv[key][kind] = null_column(kind, n)[rows]
        parts.append((block.ts[sl][rows], block.user[sl][rows], block.session[sl][rows],
                      [mk[rows] for mk in masks], pv))
    if not parts:
        return _empty_rows(len(filters), props)
    out = Rows(
        ts=np.concatenate([p[0] for p in parts]),
        user=np.concatenate([p[1] for p in parts]),
        session=np.concatenate([p[2] for p in parts]),
        masks=[np.concatenate([p[3][i] for p in parts]) for i in range(len(filters))])
    for key in props:
        out.props[key] = {k: np.concatenate([p[4][key][k] for p in parts])
                          for k in (STR, INT, FLOAT, BOOL)}
    return out


def _empty_rows(nfilters: int, props: Iterable[str]) -> Rows:
    z64 = np.zeros(0, np.int64)
    z32 = np.zeros(0, np.int32)
    rows = Rows(z64, z32, z32, [np.zeros(0, bool) for _ in range(nfilters)])
    for key in props:
        rows.props[key] = {k: null_column(k, 0) for k in (STR, INT, FLOAT, BOOL)}
    return rows


def check_numeric(snap: Snapshot, key: str, field: str) -> None:
    """A property that exists only as text or booleans cannot be summed: say so (400)."""
    require_numeric(snap.property_kinds(key), key, field)


def value_labels(values: dict[str, np.ndarray], snap: Snapshot) -> tuple[np.ndarray, list[Any]]:
    """Group ids per row (-1 where the property is missing) and the JSON value of each group.

    Strings, numbers and booleans stay distinct groups ('1' is not 1); ints and floats that
    are equal share one group.
    """
    n = len(values[STR])
    kind = np.zeros(n, dtype=np.int8)
    val = np.zeros(n, dtype=np.float64)
    s = values[STR]
    b = values[BOOL]
    num = np.where(values[INT] == INT64_MIN, np.nan, values[INT].astype(np.float64))
    num = np.where(np.isnan(num), values[FLOAT], num)
    has_b = b >= 0
    kind[has_b] = 3
    val[has_b] = b[has_b]
    has_n = ~np.isnan(num)
    kind[has_n] = 2
    val[has_n] = num[has_n]
    has_s = s >= 0
    kind[has_s] = 1
    val[has_s] = s[has_s]
    present = kind > 0
    ids = np.full(n, -1, dtype=np.int64)
    if not present.any():
        return ids, []
    pairs = np.stack([kind[present].astype(np.float64), val[present]], axis=1)
    uniq, inv = np.unique(pairs, axis=0, return_inverse=True)
    ids[present] = inv.reshape(-1)
    labels: list[Any] = []
    strings = snap.dicts.values.strings
    for k, v in uniq.tolist():
        if k == 1:
            labels.append(strings[int(v)])
        elif k == 2:
            labels.append(int(v) if float(v).is_integer() and abs(v) < 2**53 else v)
        else:
            labels.append(bool(v))
    return ids, labels


def member_lookup(codes: np.ndarray | None, snap: Snapshot) -> np.ndarray | None:
    """A boolean table indexed by user code (index -1, for 'no user', is False)."""
    if codes is None:
        return None
    table = np.zeros(len(snap.dicts.users) + 1, dtype=bool)
    codes = codes[(codes >= 0) & (codes < len(table) - 1)]
    table[codes] = True
    return table


def resolve_segment(engine: Engine, spec: Any, snap: Snapshot | None = None,
                    path: str = "segment") -> np.ndarray | None:
    """User codes of the saved segment named in `spec` (None when no segment was given)."""
    if spec is None:
        return None
    if not isinstance(spec, str) or not spec:
        raise field_error(path, "must be the name of a saved segment")
    try:
        return resolve_codes(engine, spec, snap)
    except KeyError:
        raise field_error(path, f"no saved segment named {spec!r}", value=spec) from None


def order_by(group: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """Stable order by (group, ts): like `np.lexsort((ts, group))`, several times faster.

    Sorting values is much faster in numpy than arg-sorting, so each pass sorts a composite
    int64 key `major * n + row` and reads the row back from the low part. Rows that tie keep
    their input order (arrival order for gathered rows). `group` must be >= 0.
    """
    n = len(ts)
    if n < 2:
        return np.arange(n, dtype=np.int64)
    idx = np.arange(n, dtype=np.int64)
    t_order: np.ndarray | None = None
    if not bool(np.all(ts[1:] >= ts[:-1])):
        lo = int(ts.min())
        if (int(ts.max()) - lo + 1) * n < 2**62:
            t_order = np.sort((ts - lo) * n + idx) % n
        else:
            t_order = np.argsort(ts, kind="stable")
    g = group if t_order is None else group[t_order]
    if (int(g.max()) + 1) * n < 2**62:
        o = np.sort(g.astype(np.int64) * n + idx) % n
    else:
        o = np.argsort(g, kind="stable")
    return o if t_order is None else t_order[o]


def first_per_group(keys: np.ndarray) -> np.ndarray:
    """Indexes of the first row of each run of equal values in sorted `keys`."""
    if not len(keys):
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))


def last_per_group(keys: np.ndarray) -> np.ndarray:
    if not len(keys):
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(np.concatenate((keys[1:] != keys[:-1], [True])))


# -- evaluation -----------------------------------------------------------------------------


def evaluate(snap: Snapshot, seg: SegmentDef) -> tuple[np.ndarray, np.ndarray]:
    """(members, universe): boolean arrays indexed by user code."""
    nusers = len(snap.dicts.users)
    universe = np.zeros(nusers, dtype=bool)
    for block, sl in snap.ranges(seg.start, seg.end):
        u = block.user[sl]
        universe |= np.bincount(u[u >= 0], minlength=nusers)[:nusers] > 0
    if seg.tree is None:
        return universe.copy(), universe
    props: dict[str, np.ndarray] = {}
    conds: dict[int, str] = {}
    latest_keys: set[str] = set()
    for node in walk(seg.tree):
        if isinstance(node, Predicate) and node.prop not in ("userId",):
            latest_keys.add(node.prop)
        elif isinstance(node, EventCondition):
            name = f"{_COND_PREFIX}{len(conds)}"
            conds[id(node)] = name
            counts = _event_counts(snap, node.flt, seg.start, seg.end, nusers)
            props[f"{BOOL}:{name}"] = _count_test(counts, node.op, node.value).astype(np.int8)
    for key in sorted(latest_keys):
        props.update(_latest_columns(snap, key, seg.start, seg.end, nusers))
    tree = _rewrite(seg.tree, conds)
    users = np.arange(nusers, dtype=np.int32)
    z64 = np.zeros(nusers, np.int64)
    m1 = np.full(nusers, -1, np.int32)
    zu = np.zeros(nusers, np.uint64)
    block = Block(z64, z64, m1, users, m1, zu, zu, props=props, label="users")
    where = tree if isinstance(tree, Group) else Group("and", (tree,))
    mask = filter_eval.mask(EventFilter(where=where), block, slice(0, nusers), snap)
    members = universe if mask is None else (mask & universe)
    return members, universe


def _rewrite(node: Node, conds: dict[int, str]) -> Predicate | Group:
    if isinstance(node, EventCondition):
        return Predicate(conds[id(node)], "eq", True)
    if isinstance(node, Group):
        items = [_rewrite(i, conds) for i in node.items]
        return Group(node.op, tuple(items))
    return node


def _count_test(counts: np.ndarray, op: str, value: int) -> np.ndarray:
    return {"eq": counts == value, "neq": counts != value, "gt": counts > value,
            "gte": counts >= value, "lt": counts < value, "lte": counts <= value}[op]


def _event_counts(snap: Snapshot, flt: EventFilter, start: int | None, end: int | None,
                  nusers: int) -> np.ndarray:
    counts = np.zeros(nusers, dtype=np.int64)
    codes = type_codes(snap, flt)
    for block, sl in snap.ranges(start, end):
        mask = filter_eval.mask(flt, block, sl, snap, codes)
        u = block.user[sl] if mask is None else block.user[sl][mask]
        u = u[u >= 0]
        if len(u):
            counts += np.bincount(u, minlength=nusers)[:nusers]
    return counts


def _latest_columns(snap: Snapshot, key: str, start: int | None, end: int | None,
                    nusers: int) -> dict[str, np.ndarray]:
    """Each user's latest value of `key` as typed columns indexed by user code.

    `key` may be 'eventType\\0prop' to take the value only from events of that type.
    """
    etype, _, prop = key.rpartition("\x00")
    tcode = snap.dicts.types.lookup(etype) if etype else None
    ts_parts, user_parts = [], []
    col_parts: dict[str, list[np.ndarray]] = {k: [] for k in (STR, INT, FLOAT, BOOL)}
    for block, sl in snap.ranges(start, end):
        if prop not in block.property_keys:
            continue
        mask = block.present(prop)[sl] & (block.user[sl] >= 0)
        if tcode is not None:
            mask &= block.type[sl] == tcode
        rows = np.flatnonzero(mask)
        if not len(rows):
            continue
        ts_parts.append(block.ts[sl][rows])
        user_parts.append(block.user[sl][rows])
        for kind in col_parts:
            col = block.column(kind, prop)
            col_parts[kind].append(col[sl][rows] if col is not None
                                   else null_column(kind, len(rows)))
    out: dict[str, np.ndarray] = {}
    if not ts_parts:
        return out
    ts = np.concatenate(ts_parts)
    user = np.concatenate(user_parts)
    order = order_by(user, ts)  # stable: ties keep arrival order, the last one wins
    last = order[last_per_group(user[order])]
    for kind, parts in col_parts.items():
        values = np.concatenate(parts)
        if kind == STR and not (values >= 0).any():
            continue
        col = null_column(kind, nusers)
        col[user[last]] = values[last]
        out[f"{kind}:{key}"] = col
    return out


def run(engine: Engine, body: Any, now: int | None = None,
        snap: Snapshot | None = None) -> dict[str, Any]:
    """Evaluate a segment definition: matching user count and a sample of user ids."""
    q = parse_segment_query(body, now)
    return result(snap or engine.snapshot(), q).to_json()


def result(snap: Snapshot, q: SegmentQuery) -> SegmentResult:
    members, universe = evaluate(snap, q.definition)
    return describe(snap, q.definition, members, universe, q.sample)


def describe(snap: Snapshot, seg: SegmentDef, members: np.ndarray, universe: np.ndarray,
             sample: int) -> SegmentResult:
    codes = np.flatnonzero(members)
    total = int(universe.sum())
    return SegmentResult(seg.name, len(codes), total, pct(len(codes), total),
                         snap.dicts.users.decode(codes[:sample].astype(np.int32)).tolist())


# -- saved segments --------------------------------------------------------------------------


_ALLOWED_KEYS = {"name", "description", "filters", "conditions", "operator", "startTime",
                 "endTime", "timeRange"}


def create(engine: Engine, body: Any) -> dict[str, Any]:
    """Validate and persist a segment; names are unique (409 on a clash)."""
    doc = _validated(body)
    if engine.metadata.find_by_name(KIND, doc["name"]) is not None:
        err = RtaError(f"a segment named {doc['name']!r} already exists",
                       [{"field": "name", "value": doc["name"]}], code="conflict")
        err.status = 409
        raise err
    return engine.metadata.create(KIND, doc)


def _validated(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ValidationError("body must be a JSON object", [{"field": ""}])
    if isinstance(body.get("config"), dict):  # the /queries/execute shape
        body = {**body["config"], "name": body["config"].get("name", body.get("name"))}
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise field_error("name", "is required and must be a non-empty string")
    unknown = sorted(set(body) - _ALLOWED_KEYS - {"id", "createdAt", "updatedAt", "type"})
    if unknown:
        raise field_error(unknown[0], "is not a segment field",
                          allowed=sorted(_ALLOWED_KEYS))
    parse_segment(body, "")
    doc = {k: v for k, v in body.items() if k in _ALLOWED_KEYS}
    doc["name"] = name.strip()
    return doc


def find(engine: Engine, ref: str) -> dict[str, Any]:
    """A saved segment by id, or else by name (404 when neither matches)."""
    try:
        return engine.metadata.get(KIND, ref)
    except NotFoundError:
        doc = engine.metadata.find_by_name(KIND, ref)
        if doc is None:
            raise NotFoundError(f"no segment with id or name {ref!r}",
                                [{"field": "id", "value": ref}]) from None
        return doc


def delete(engine: Engine, ref: str) -> dict[str, Any]:
    doc = find(engine, ref)
    engine.metadata.delete(KIND, doc["id"])
    return doc


def show(engine: Engine, ref: str, sample: int = DEFAULT_SAMPLE, now: int | None = None,
         snap: Snapshot | None = None) -> dict[str, Any]:
    """The saved document plus its current evaluation."""
    doc = find(engine, ref)
    seg = parse_segment(doc, "", now)
    snap = snap or engine.snapshot()
    members, universe = evaluate(snap, seg)
    out = dict(doc)
    out.update({k: v for k, v in describe(snap, seg, members, universe, sample).to_json().items()
                if k not in ("name", "type")})
    return out


def resolver(engine: Engine) -> Callable[[str], np.ndarray]:
    """name -> user codes (int32) of a saved segment; KeyError for an unknown name.

    Call it on the event-loop thread (it takes a snapshot), like every snapshot.
    """
    return lambda name: resolve_codes(engine, name)


def resolve_codes(engine: Engine, name: str, snap: Snapshot | None = None) -> np.ndarray:
    """User codes of the saved segment `name` evaluated over `snap` (KeyError if unknown).

    Cached per (segment id, its update time, snapshot version, person mapping): one query
    naming a segment in several places evaluates it once, and new events are always seen.
    """
    cache = engine.services.segment_cache
    doc = engine.metadata.find_by_name(KIND, name)
    if doc is None:
        raise KeyError(name)
    snap = snap or engine.snapshot()
    # (the person mapping too: members are persons, or distinct ids with identity=raw)
    key = (str(doc["id"]), int(doc.get("updatedAt", 0)), snap.version,
           int(getattr(snap, "mapping", -1)))
    codes = cache.get(key)
    if codes is None:
        members, _ = evaluate(snap, parse_segment(doc, ""))
        codes = np.flatnonzero(members).astype(np.int32)
        if len(cache) > 64:
            cache.clear()
        cache[key] = codes
    return codes


__all__ = ["OPERATORS", "Rows", "SegmentDef", "create", "delete", "evaluate", "find", "gather",
           "parse_segment", "resolve_codes", "resolver", "run", "show"]
